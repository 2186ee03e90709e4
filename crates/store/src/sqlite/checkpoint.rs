//! WAL checkpoints on a thread of their own.
//!
//! SQLite checkpoints on the committing connection by default: the writer
//! thread would copy pages from the WAL into the database file and fsync
//! it, with every job of the next batch waiting. Here the writer's WAL hook
//! only signals this thread, which checkpoints with a connection of its
//! own. Checkpoints are `PASSIVE`, as SQLite's own automatic ones are: they
//! never wait for the writer or the readers.
//!
//! SQLite starts the WAL over from its beginning only when a write
//! transaction begins with every frame copied, which a checkpoint running
//! beside a busy writer never sees (the writer appends while it copies).
//! So once the WAL holds twice the threshold, the writer runs a checkpoint
//! itself once it has answered its batch: this thread has copied most
//! frames by then, the writer copies the last ones, and its next
//! transaction starts the WAL over. Between the two, this thread is asked
//! again only every half threshold of new pages (each checkpoint syncs the
//! WAL and the database file, which the commits' syncs would queue behind).
//!
//! With the commit log on, a checkpoint is also what lets it be trimmed:
//! the writer commits without syncing the database (the log is the
//! durability point),
//! so a record may leave the log only once the database file holds it
//! durably. A checkpoint that copies every frame of the WAL ends with the
//! database file synced: every batch committed before it started is then
//! durable there ([`Positions::durable`]), and the closed log segments
//! before that point are removed, here, off the writer's path.

use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::log::Trimmer;
use crate::error::{Result, StoreError};
use crate::faults::failpoint;

/// Where the commit log's records stand (lsns), shared by the writer and
/// the checkpoint thread.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// The record of the batch being committed (set before its COMMIT).
    pub(crate) committing: AtomicU64,
    /// The last record committed to the database.
    pub(crate) committed: AtomicU64,
    /// The last record durable in the database file itself: the log
    /// before it may be removed.
    pub(crate) durable: AtomicU64,
    /// Set by the writer's WAL hook: the writer checkpoints after its
    /// batch is answered.
    pub(crate) writer_due: AtomicBool,
}

/// Whether a checkpoint that reported `(frames in the WAL, frames
/// copied)` copied every frame (and so synced the database file).
fn complete((log, copied): (c_int, c_int)) -> bool {
    log >= 0 && log == copied
}

/// WAL pages after which a checkpoint is asked for (SQLite's default
/// automatic checkpoint threshold).
const CHECKPOINT_PAGES: c_int = 1000;

/// WAL pages after which the writer checkpoints itself.
const WRITER_CHECKPOINT_PAGES: c_int = 2 * CHECKPOINT_PAGES;

/// Starts the checkpoint thread on its own connection `conn` and hooks the
/// writer's connection `writer` to it.
pub(crate) fn start(
    writer: &mut Connection,
    conn: Connection,
    positions: Arc<Positions>,
    trimmer: Option<Trimmer>,
) -> Result<Asker> {
    let (signal, wanted) = sync_channel::<()>(1);
    let signal_for_writer = Asker(signal.clone());
    let hooked = positions.clone();
    // The WAL's pages when this thread was last asked.
    let mut asked_at: c_int = 0;
    std::thread::Builder::new()
        .name("ctxmesh-sqlite-checkpoint".into())
        .spawn(move || run(conn, wanted, positions, trimmer))
        .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
    // The hook replaces SQLite's automatic checkpoint on this connection.
    // It runs after a commit: an error returned here would make the commit
    // look failed, though it happened. A checkpoint that fails is tried
    // again after the next commit.
    writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: c_int| {
        if pages < asked_at {
            asked_at = 0; // the WAL started over
        }
        if pages >= WRITER_CHECKPOINT_PAGES {
            hooked.writer_due.store(true, Ordering::Release);
        } else if pages >= CHECKPOINT_PAGES && pages >= asked_at + CHECKPOINT_PAGES / 2 {
            asked_at = pages;
            ask(&signal);
        }
        Ok(())
    }))?;
    Ok(signal_for_writer)
}

/// Asks the checkpoint thread for a checkpoint (and to trim the log after
/// it), for the writer.
pub(crate) struct Asker(SyncSender<()>);

impl Asker {
    pub(crate) fn ask(&self) {
        ask(&self.0);
    }
}

/// Asks for a checkpoint; one already asked for and not started is enough.
fn ask(signal: &SyncSender<()>) {
    match signal.try_send(()) {
        Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
    }
}

fn run(conn: Connection, wanted: Receiver<()>, positions: Arc<Positions>, trimmer: Option<Trimmer>) {
    // Ends when the writer's connection (and its hook) is dropped.
    while wanted.recv().is_ok() {
        if let Err(e) = checkpoint(&conn, &positions) {
            tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again at the next commit");
        }
        let durable = positions.durable.load(Ordering::Acquire);
        if let Some(Err(e)) = trimmer.as_ref().map(|t| t.trim(durable)) {
            tracing::warn!(error = %e, "removing old commit log segments failed; it is tried again later");
        }
    }
}

/// One checkpoint; when it copies every frame, every batch committed
/// before it started is durable in the database file.
pub(crate) fn checkpoint(conn: &Connection, positions: &Positions) -> Result<()> {
    failpoint("sqlite::checkpoint")?;
    let committed = positions.committed.load(Ordering::Acquire);
    let counts = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)?;
    failpoint("sqlite::checkpoint::after")?;
    if complete(counts) {
        positions.durable.fetch_max(committed, Ordering::AcqRel);
    }
    Ok(())
}

/// The checkpoint thread's connection to the database at `path`, with the
/// writer's durability (`synchronous`).
pub(crate) fn connection(path: &Path, synchronous: &str) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000;"))?;
    Ok(conn)
}
