//! The embedded store: one SQLite file in WAL mode, written by one thread
//! with group commit (see [`writer`]), optionally behind a commit log of
//! its own (see [`log`]), read by a fixed set of reader threads with
//! read-only connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use ctxmesh_core::Limits;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::txn::{TxnRequest, TxnResponse};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::clock::{Clock, SharedClock};
use crate::engine::Backend;
use crate::error::{Result, StoreError};
use crate::notify::Hub;
use crate::ops::precheck::Prechecks;
use crate::ops::{self, ReadOp, ReadOutput, WriteOp, WriteOutput};
use crate::types::{Durability, ReadAt};
use access::{AccessCache, AccessKey};
use live::LiveCache;

mod access;
pub mod backup;
mod change;
mod checkpoint;
pub mod floor;
mod live;
mod log;
mod redo;
mod schema;
mod snapshot;
mod tx;
mod writer;

use tx::{SqliteTx, run_now};
use writer::{Job, JobSender, WriterStats};

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// Sync on every commit (`Full`: SQLite's WAL, or the commit log when it
    /// is on) or not (`Relaxed`).
    pub durability: Durability,
    /// Limits enforced on writes.
    pub limits: Limits,
    /// Reader threads, each with its own read-only connection.
    pub readers: usize,
    /// The clock the store stamps and expires by.
    pub clock: SharedClock,
    /// How long opening waits for another store (a process just stopped,
    /// or a store just dropped) to let go of the database.
    pub lock_wait: std::time::Duration,
    /// Size at which a commit log segment is closed and the next begins.
    pub log_segment_bytes: u64,
    /// Whether the commit log is the durability point: each batch's record
    /// is appended to it and synced before SQLite commits without syncing.
    /// Off (the default), SQLite syncs its WAL at each commit, and a log
    /// left by an earlier start with it on is replayed, then removed.
    pub commit_log: bool,
}

impl SqliteConfig {
    /// The defaults for a database file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            durability: Durability::Full,
            limits: Limits::default(),
            readers: 8,
            clock: crate::clock::system(),
            lock_wait: std::time::Duration::from_secs(5),
            log_segment_bytes: 64 << 20,
            commit_log: false,
        }
    }

    /// The commit log's directory: `<database>-log` beside the database.
    pub fn log_dir(&self) -> PathBuf {
        let mut dir = self.path.as_os_str().to_owned();
        dir.push("-log");
        PathBuf::from(dir)
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    writer: JobSender,
    readers: ReadPool,
    stats: Arc<WriterStats>,
    hub: Arc<Hub>,
    checks: Arc<Prechecks>,
    /// Live entries read lately, kept exact by the writer.
    live: Arc<LiveCache>,
    /// Token owners and access inputs read lately, kept exact by the writer.
    access: Arc<AccessCache>,
    clock: SharedClock,
}

/// How many commits (fsyncs) the writer made for how many write jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitStats {
    /// Database commits, each one fsync.
    pub commits: u64,
    /// Writes committed by them.
    pub jobs: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.readers.path).finish()
    }
}

/// Prepared statements kept per connection: more than the store has, so
/// that no statement is parsed again (rusqlite keeps 16 by default, fewer
/// than one write uses, and an LRU cache that small re-prepares them all).
const STATEMENT_CACHE: usize = 128;

/// Takes the database for this process: the writer thread is its only
/// writer, which the cache of live entries and the notifications of
/// commits rely on. The lock (on `<database>.lock`) is held until the
/// writer thread ends (a store just dropped in this process lets go of it
/// within moments: it is waited for up to `wait`); the system releases it
/// if the process dies.
fn lock_database(path: &Path, wait: std::time::Duration) -> Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", Path::new(&lock_path).display())))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Unavailable(format!(
                    "the database {} is in use by another ctxmesh process (stop it, or use a data directory of its own)",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!("cannot lock {}: {e}", Path::new(&lock_path).display())));
            }
        }
    }
}

/// Page cache of the writer's connection, in KiB: 8 MiB keeps the pages a
/// write reads (SQLite's default of 2 MiB had it read them from the file
/// again), and stays small enough that clearing it at each transaction's
/// end is cheap (64 MiB made commits slower than 2 MiB).
const WRITER_CACHE_KIB: u32 = 8 * 1024;

/// Bytes the WAL file is cut back to when it starts over (it grows past
/// the checkpoint threshold while readers hold old snapshots).
const WAL_SIZE_LIMIT: u64 = 32 << 20;

/// Page cache of each reader's connection, in KiB.
const READER_CACHE_KIB: u32 = 16 * 1024;

/// Lookaside memory: SQLite's own small allocations come from it instead
/// of the C allocator. Its default is 100 slots of 1200 bytes, fewer than a
/// batch of writes uses (the writer's 2,000 slots took cas-many from 8,300
/// to 9,300 CAS/s); readers need fewer.
const LOOKASIDE_SLOT: std::ffi::c_int = 1200;
const WRITER_LOOKASIDE_SLOTS: std::ffi::c_int = 2000;
const READER_LOOKASIDE_SLOTS: std::ffi::c_int = 500;

/// Sets up a new connection: lookaside memory of `lookaside_slots`, and
/// statements prepared once that keep their plans (a large statement
/// cache, and the query planner stability guarantee, without which SQLite
/// prepares a statement again whenever a new value is bound to a `LIMIT ?`
/// or a range bound: most of the writer's time went there).
fn tune(conn: &Connection, lookaside_slots: std::ffi::c_int) -> Result<()> {
    // SAFETY: the connection was just opened and has run no statement, so
    // none of its lookaside memory is in use (the one condition of
    // SQLITE_DBCONFIG_LOOKASIDE); a null buffer makes SQLite allocate it.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            LOOKASIDE_SLOT,
            lookaside_slots,
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::debug!(rc, "SQLite kept its default lookaside memory");
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Opens the commit log, applying to the database the records it does not
/// hold yet (those a crash or power cut left out of it), then checkpoints
/// the database so that the log before that point can go. Without
/// `commit_log`, a log left by an earlier start is replayed, then removed.
fn recover(
    conn: &mut Connection,
    config: &SqliteConfig,
) -> Result<(Option<log::CommitLog>, Arc<checkpoint::Positions>)> {
    let positions = Arc::new(checkpoint::Positions::default());
    if !config.commit_log && !config.log_dir().exists() {
        return Ok((None, positions));
    }
    let applied = redo::applied(conn)?;
    let mut replayed = 0u64;
    let sync = config.durability == Durability::Full;
    let log = log::CommitLog::open(&config.log_dir(), applied, sync, config.log_segment_bytes, |lsn, payload| {
        replayed += 1;
        redo::replay(conn, lsn, payload)
    })?;
    if replayed > 0 {
        tracing::info!(records = replayed, "replayed the commit log into the database");
    }
    positions.committed.store(redo::applied(conn)?, Ordering::Release);
    // Not needed to open: the checkpoint thread tries again later.
    let trimmed = checkpoint::checkpoint(conn, &positions)
        .and_then(|()| log.trimmer().trim(positions.durable.load(Ordering::Acquire)));
    if let Err(e) = trimmed {
        tracing::warn!(error = %e, "checkpoint after opening failed; it is tried again later");
    }
    if config.commit_log {
        return Ok((Some(log), positions));
    }
    // Off: the database now holds every record durably, or the log stays
    // for the next start to replay.
    let durable = positions.durable.load(Ordering::Acquire);
    if durable + 1 >= log.next_lsn() {
        drop(log);
        std::fs::remove_dir_all(config.log_dir())
            .map_err(|e| StoreError::Backend(format!("cannot remove {}: {e}", config.log_dir().display())))?;
    }
    Ok((None, positions))
}

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(config: SqliteConfig) -> Result<Self> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let lock = lock_database(&config.path, config.lock_wait)?;
        snapshot::remove_stale_snapshots(&config.path);
        let mut conn = Connection::open(&config.path)?;
        tune(&conn, WRITER_LOOKASIDE_SLOTS)?;
        // With the commit log as the durability point, SQLite commits
        // without syncing (`NORMAL`: it may lose its last commits to a
        // power cut, which the log replays, never its consistency) and
        // syncs the database file at the end of each complete checkpoint.
        let synchronous = match config.durability {
            Durability::Full if !config.commit_log => "FULL",
            _ => "NORMAL",
        };
        // Savepoint journals (one savepoint per job of a batch) stay in
        // memory: they only matter until the batch commits or rolls back.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{WRITER_CACHE_KIB}; \
             PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
        ))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("could not enable WAL mode (got {mode})")));
        }
        schema::migrate(&mut conn)?;
        let (log, positions) = recover(&mut conn, &config)?;
        let checkpoints = checkpoint::connection(&config.path, synchronous)?;
        let trimmer = log.as_ref().map(log::CommitLog::trimmer);
        let checkpoints = checkpoint::start(&mut conn, checkpoints, positions.clone(), trimmer)?;
        let stats = Arc::new(WriterStats::default());
        let hub = Arc::new(Hub::default());
        let checks = Arc::new(Prechecks::new(config.limits.clone(), config.clock.clone()));
        let live = Arc::new(LiveCache::default());
        let access = Arc::new(AccessCache::default());
        let writer = writer::spawn(writer::Parts {
            conn,
            lock,
            log,
            positions,
            checkpoints: Some(checkpoints),
            checks: checks.clone(),
            live: live.clone(),
            access: access.clone(),
            stats: stats.clone(),
            hub: hub.clone(),
        })?;
        let readers = ReadPool::new(&config.path, config.readers.max(1))?;
        Ok(SqliteStore { writer, readers, stats, hub, checks, live, access, clock: config.clock.clone() })
    }

    /// Commits and jobs so far: with concurrent writers, group commit makes
    /// `commits` smaller than `jobs`.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            jobs: self.stats.jobs.load(Ordering::Relaxed),
        }
    }
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    async fn write(&self, op: WriteOp) -> Result<WriteOutput> {
        // The writer thread batches the jobs of many requests: this
        // request's part is the submission and the wait for its batch to
        // be durable.
        let span = tracing::debug_span!(
            "store.write",
            db.system.name = "sqlite",
            ctxmesh.store.batch_size = tracing::field::Empty,
        );
        let submitted = async {
            let (reply, rx) = oneshot::channel();
            self.writer
                .send(Job { op, reply, span: span.clone() })
                .await
                .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
            rx.instrument(tracing::debug_span!("store.durability_wait"))
                .await
                .map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
        };
        submitted.instrument(span.clone()).await
    }

    async fn read(&self, op: ReadOp) -> Result<ReadOutput> {
        // One entry at the latest revision: from memory when it is there.
        if let ReadOp::GetEntry { id, key, at: ReadAt::Latest } = &op {
            let hit = self.live.get(id.as_str(), key.as_str(), self.clock.now());
            metrics::counter!("ctxmesh_live_entry_reads_total", "cache" => if hit.is_some() { "hit" } else { "miss" })
                .increment(1);
            if let Some(hit) = hit {
                return Ok(ReadOutput::Entry(hit));
            }
            let (ctx, key) = (id.as_str().to_owned(), key.as_str().to_owned());
            let ticket = self.live.ticket(&ctx);
            let out = self.read_snapshot(op).await?;
            if let ReadOutput::Entry((entry, revision)) = &out {
                self.live.fill(&ctx, ticket, &key, entry, *revision);
            }
            return Ok(out);
        }
        // A token's owner, or what an access decision reads: from memory
        // when it is there.
        let access = match &op {
            ReadOp::Coord(read) => AccessKey::of(read),
            _ => None,
        };
        if let Some(key) = &access {
            let hit = self.access.get(key);
            metrics::counter!("ctxmesh_access_reads_total", "cache" => if hit.is_some() { "hit" } else { "miss" })
                .increment(1);
            if let Some(hit) = hit {
                return Ok(ReadOutput::Coord(hit));
            }
        }
        let access = access.map(|key| (key, self.access.ticket()));
        let seen = read_context(&op);
        // A check of a stale write reads the context: kept for the next.
        let ticket = match &op {
            ReadOp::Precheck { id, .. } => Some(self.live.ticket(id.as_str())),
            _ => None,
        };
        let out = self.read_snapshot(op).await;
        match (&out, ticket, access) {
            (Ok(ReadOutput::Refused((_, info))), Some(ticket), _) => self.live.fill_context(ticket, info),
            (Ok(ReadOutput::Coord(found)), _, Some((key, ticket))) => self.access.fill(key, ticket, found),
            _ => {}
        }
        self.live.read_done(seen.as_deref());
        out
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn prechecks(&self) -> &Arc<Prechecks> {
        &self.checks
    }

    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    fn refuse_in_memory(&self, id: &ContextId, txn: &TxnRequest, author: &str) -> Option<TxnResponse> {
        let read_set = txn.read_set();
        if !read_set.prefixes.is_empty() {
            return None;
        }
        let (ctx, entries) = self.live.snapshot(id.as_str(), &read_set.keys, self.clock.now())?;
        ops::entries::precheck_in_memory(self.checks.env(), &ctx, entries, txn, author)
    }

    async fn snapshot(&self) -> Result<Option<crate::types::Snapshot>> {
        let dest = snapshot::snapshot_path(&self.readers.path);
        // On a reader's connection: one read transaction, beside the
        // writer. Made there, the file is removed even if the caller has
        // gone by the time it is ready.
        let made = self
            .readers
            .read(move |conn| snapshot::vacuum_into(conn, &dest).map(|size| crate::types::Snapshot::new(dest, size)))
            .await?;
        Ok(Some(made))
    }

    async fn ping(&self) -> Result<()> {
        if self.writer.is_closed() {
            return Err(StoreError::Unavailable("the writer thread has stopped".into()));
        }
        self.readers.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }
}

/// The context a read of the database shows (`None`: any context).
fn read_context(op: &ReadOp) -> Option<String> {
    Some(match op {
        ReadOp::GetContext { id }
        | ReadOp::GetEntry { id, .. }
        | ReadOp::ListEntries { id, .. }
        | ReadOp::EntryHistory { id, .. }
        | ReadOp::ContextHistory { id, .. }
        | ReadOp::Diff { id, .. }
        | ReadOp::Events { id, .. }
        | ReadOp::Search { id, .. }
        | ReadOp::Precheck { id, .. } => id.as_str().to_owned(),
        _ => return None,
    })
}

impl SqliteStore {
    /// Runs a read on one of the reader threads, in one read transaction.
    async fn read_snapshot(&self, op: ReadOp) -> Result<ReadOutput> {
        let clock = self.clock.clone();
        self.readers
            .read(move |conn| {
                // One read transaction: every query of the read sees the
                // same committed state.
                tx::exec(conn, "BEGIN")?;
                let result = run_now(ops::read(&mut SqliteTx::new(conn), clock.as_ref(), op));
                tx::exec(conn, "COMMIT")?;
                result
            })
            .await
    }
}

/// A fixed set of reader threads, each owning a read-only connection, taking
/// jobs from one queue.
///
/// Callers enqueue a job and await its answer; nothing is held on behalf of a
/// future while it waits. (A semaphore of connections would be unfair here: a
/// permit handed to a future that is not being polled, such as one of many
/// watch streams of a WebSocket whose client is slow to read, would stall
/// every reader of the server.)
struct ReadPool {
    path: PathBuf,
    jobs: std::sync::mpsc::Sender<ReadJob>,
}

type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

impl ReadPool {
    fn new(path: &Path, size: usize) -> Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..size {
            let mut conn = Self::open(path)?;
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("ctxmesh-sqlite-reader-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        // A bug in one read (a panic) fails that read alone
                        // (its caller hears the reply was dropped); the
                        // thread and its connection go on serving.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn))).is_err() {
                            tracing::error!("a read panicked; it was answered with an internal error");
                        }
                    }
                })
                .map_err(|e| StoreError::Backend(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(ReadPool { path: path.to_owned(), jobs })
    }

    fn open(path: &Path) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        tune(&conn, READER_LOOKASIDE_SLOTS)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{READER_CACHE_KIB};"))?;
        Ok(conn)
    }

    /// Runs `f` on one of the reader threads.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        answer.await.map_err(|_| StoreError::Backend("the read failed unexpectedly (see the log)".into()))?
    }
}
