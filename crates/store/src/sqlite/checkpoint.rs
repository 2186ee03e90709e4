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
//! itself after its commit: this thread has copied most frames by then, the
//! writer copies the last ones, and its next transaction starts the WAL
//! over.

use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use crate::error::{Result, StoreError};

/// WAL pages after which a checkpoint is asked for (SQLite's default
/// automatic checkpoint threshold).
const CHECKPOINT_PAGES: c_int = 1000;

/// WAL pages after which the writer checkpoints itself.
const WRITER_CHECKPOINT_PAGES: c_int = 2 * CHECKPOINT_PAGES;

/// Starts the checkpoint thread on its own connection `conn` and hooks the
/// writer's connection `writer` to it.
pub(crate) fn start(writer: &mut Connection, conn: Connection) -> Result<()> {
    let (signal, wanted) = sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("ctxmesh-sqlite-checkpoint".into())
        .spawn(move || run(conn, wanted))
        .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
    // The hook replaces SQLite's automatic checkpoint on this connection.
    // It runs after a commit: an error returned here would make the commit
    // look failed, though it happened. A checkpoint that fails is tried
    // again after the next commit.
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: c_int| {
        if pages >= WRITER_CHECKPOINT_PAGES {
            if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::debug!(error = %e, "WAL checkpoint by the writer failed");
            }
        } else if pages >= CHECKPOINT_PAGES {
            ask(&signal);
        }
        Ok(())
    }))?;
    Ok(())
}

/// Asks for a checkpoint; one already asked for and not started is enough.
fn ask(signal: &SyncSender<()>) {
    match signal.try_send(()) {
        Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
    }
}

fn run(conn: Connection, wanted: Receiver<()>) {
    // Ends when the writer's connection (and its hook) is dropped.
    while wanted.recv().is_ok() {
        let injected = crate::faults::failpoint("sqlite::checkpoint");
        if let Err(e) = injected.and_then(|()| Ok(conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)?)) {
            tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again at the next commit");
        }
    }
}

/// The checkpoint thread's connection to the database at `path`, with the
/// writer's durability (`synchronous`).
pub(crate) fn connection(path: &Path, synchronous: &str) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000;"))?;
    Ok(conn)
}
