//! The embedded store: one SQLite file in WAL mode, written by one thread
//! with group commit (see [`writer`]), read through a small pool of
//! read-only connections that run on the blocking thread pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use ctxmesh_core::context::{ContextInfo, ContextPatch, NewContext};
use ctxmesh_core::error::Error;
use ctxmesh_core::history::{Commit, DiffChange};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::{TxnRequest, TxnResponse};
use ctxmesh_core::{Entry, Event, Limits, Timestamp};
use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::{broadcast, oneshot};

use crate::notify::{Committed, Hub};
use crate::{
    Compaction, Durability, EntryPage, EntryVersion, HistoryQuery, ListQuery, NewEvent, ReadAt, Result, Store,
    StoreError,
};

mod rows;
mod schema;
mod writer;

use rows::{VERSION_COLUMNS, load_context, resolve_at};
use writer::{Job, JobSender, WriteOp, WriteOutput, WriterStats};

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// fsync on every commit (`Full`) or not (`Relaxed`).
    pub durability: Durability,
    /// Limits enforced on writes.
    pub limits: Limits,
    /// Reader threads, each with its own read-only connection.
    pub readers: usize,
}

impl SqliteConfig {
    /// The defaults for a database file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig { path: path.into(), durability: Durability::Full, limits: Limits::default(), readers: 8 }
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    writer: JobSender,
    readers: ReadPool,
    stats: Arc<WriterStats>,
    hub: Arc<Hub>,
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

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(config: SqliteConfig) -> Result<Self> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(&config.path)?;
        let synchronous = match config.durability {
            Durability::Full => "FULL",
            Durability::Relaxed => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000;"
        ))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("could not enable WAL mode (got {mode})")));
        }
        schema::migrate(&mut conn)?;
        let stats = Arc::new(WriterStats::default());
        let hub = Arc::new(Hub::default());
        let writer = writer::spawn(conn, config.limits.clone(), stats.clone(), hub.clone())?;
        Ok(SqliteStore { writer, readers: ReadPool::new(&config.path, config.readers.max(1))?, stats, hub })
    }

    /// Commits and jobs so far: with concurrent writers, group commit makes
    /// `commits` smaller than `jobs`.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            jobs: self.stats.jobs.load(Ordering::Relaxed),
        }
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutput> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }
}

fn unexpected() -> StoreError {
    StoreError::Backend("the writer returned an unexpected output".into())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_context(&self, new: NewContext, author: &str) -> Result<ContextInfo> {
        match self.write(WriteOp::CreateContext { new, author: author.to_owned() }).await? {
            WriteOutput::Context(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn get_context(&self, id: &ContextId) -> Result<ContextInfo> {
        let id = id.clone();
        self.readers.read(move |conn| Ok(load_context(conn, id.as_str())?.info)).await
    }

    async fn list_contexts(&self, after: Option<&str>, limit: usize) -> Result<(Vec<ContextInfo>, bool)> {
        let after = after.unwrap_or("").to_owned();
        self.readers
            .read(move |conn| {
                let mut list = rows::list_contexts(conn, &after, limit + 1)?;
                let more = list.len() > limit;
                list.truncate(limit);
                Ok((list, more))
            })
            .await
    }

    async fn update_context(&self, id: &ContextId, patch: ContextPatch) -> Result<ContextInfo> {
        match self.write(WriteOp::UpdateContext { id: id.clone(), patch }).await? {
            WriteOutput::Context(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn delete_context(&self, id: &ContextId) -> Result<()> {
        self.write(WriteOp::DeleteContext { id: id.clone() }).await.map(|_| ())
    }

    async fn txn(&self, id: &ContextId, txn: TxnRequest, author: &str) -> Result<TxnResponse> {
        match self.write(WriteOp::Txn { id: id.clone(), txn, author: author.to_owned() }).await? {
            WriteOutput::Txn(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn get_entry(&self, id: &ContextId, key: &EntryKey, at: ReadAt) -> Result<(Option<Entry>, u64)> {
        let (id, key) = (id.clone(), key.clone());
        self.readers
            .read(move |conn| {
                let tx = conn.transaction()?;
                let ctx = load_context(&tx, id.as_str())?.info;
                match resolve_at(&tx, &ctx, at)? {
                    None => Ok((rows::entry_latest(&tx, &ctx.id, key.as_str(), Utc::now())?, ctx.revision)),
                    Some(rev) => Ok((rows::entry_at(&tx, &ctx.id, key.as_str(), rev)?, rev)),
                }
            })
            .await
    }

    async fn list_entries(&self, id: &ContextId, at: ReadAt, query: &ListQuery) -> Result<EntryPage> {
        let id = id.clone();
        let query = query.clone();
        self.readers
            .read(move |conn| {
                let tx = conn.transaction()?;
                let ctx = load_context(&tx, id.as_str())?.info;
                let after = query.after_key.as_deref().unwrap_or("");
                let limit = query.limit + 1;
                let (mut entries, revision) = match resolve_at(&tx, &ctx, at)? {
                    None => {
                        let list = rows::list_latest(&tx, &ctx.id, &query.prefix, after, limit, Some(Utc::now()))?;
                        (list, ctx.revision)
                    }
                    Some(rev) => (rows::list_at(&tx, &ctx.id, &query.prefix, after, limit, rev)?, rev),
                };
                let more = entries.len() > query.limit;
                entries.truncate(query.limit);
                Ok(EntryPage { entries, revision, more })
            })
            .await
    }

    async fn entry_history(&self, id: &ContextId, key: &EntryKey, query: HistoryQuery) -> Result<Vec<EntryVersion>> {
        let (id, key) = (id.clone(), key.clone());
        self.readers
            .read(move |conn| {
                let tx = conn.transaction()?;
                load_context(&tx, id.as_str())?;
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM versions WHERE ctx = ?1 AND key = ?2 AND revision < ?3 \
                     ORDER BY revision DESC LIMIT ?4"
                );
                let before = query.before.map_or(i64::MAX, |b| b as i64);
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows =
                    stmt.query_map(params![id.as_str(), key.as_str(), before, query.limit as i64], rows::version_row)?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(row?.into_version()?);
                }
                if out.is_empty() && query.before.is_none() {
                    return Err(Error::not_found(format!("entry {:?}", key.as_str())).into());
                }
                Ok(out)
            })
            .await
    }

    async fn context_history(&self, id: &ContextId, query: HistoryQuery) -> Result<Vec<Commit>> {
        let id = id.clone();
        self.readers
            .read(move |conn| {
                let tx = conn.transaction()?;
                load_context(&tx, id.as_str())?;
                let before = query.before.map_or(i64::MAX, |b| b as i64);
                let mut stmt = tx.prepare_cached(
                    "SELECT revision, at, author, kind, keys FROM commits WHERE ctx = ?1 AND revision < ?2 \
                     ORDER BY revision DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![id.as_str(), before, query.limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, String>(4)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (revision, at, author, kind, keys) = row?;
                    out.push(Commit {
                        revision: revision as u64,
                        at: rows::from_micros(at),
                        author,
                        kind,
                        keys: serde_json::from_str(&keys)?,
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn diff(&self, id: &ContextId, from: u64, to: u64) -> Result<Vec<DiffChange>> {
        let id = id.clone();
        self.readers
            .read(move |conn| {
                let tx = conn.transaction()?;
                let ctx = load_context(&tx, id.as_str())?.info;
                if from > to {
                    return Err(Error::invalid("from", "must not be greater than to").into());
                }
                // Revision 0 is the empty state before creation; readable
                // while nothing has been compacted.
                if from > 0 {
                    ctx.check_readable(from)?;
                } else if ctx.compacted_revision > 0 {
                    return Err(Error::Compacted { requested: 0, compacted: ctx.compacted_revision }.into());
                }
                ctx.check_readable(to)?;
                let keys: Vec<String> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT DISTINCT key FROM versions WHERE ctx = ?1 AND revision > ?2 AND revision <= ?3 ORDER BY key",
                    )?;
                    stmt.query_map(params![ctx.id, from as i64, to as i64], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?
                };
                let mut out = Vec::new();
                for key in keys {
                    let before = rows::entry_at(&tx, &ctx.id, &key, from)?;
                    let after = rows::entry_at(&tx, &ctx.id, &key, to)?;
                    out.extend(DiffChange::between(&key, before, after));
                }
                Ok(out)
            })
            .await
    }

    async fn rollback(&self, id: &ContextId, to: u64, author: &str) -> Result<u64> {
        match self.write(WriteOp::Rollback { id: id.clone(), to, author: author.to_owned() }).await? {
            WriteOutput::Revision(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn fork(&self, id: &ContextId, at: u64, new_id: &ContextId, author: &str) -> Result<ContextInfo> {
        let op = WriteOp::Fork { id: id.clone(), at, new_id: new_id.clone(), author: author.to_owned() };
        match self.write(op).await? {
            WriteOutput::Context(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn events(&self, id: &ContextId, after: u64, limit: usize) -> Result<Vec<Event>> {
        let id = id.clone();
        self.readers
            .read(move |conn| {
                let tx = conn.transaction()?;
                let ctx = load_context(&tx, id.as_str())?.info;
                if after + 1 < ctx.compacted_revision {
                    return Err(Error::Compacted { requested: after, compacted: ctx.compacted_revision }.into());
                }
                let mut stmt = tx.prepare_cached(
                    "SELECT event FROM events WHERE ctx = ?1 AND revision > ?2 ORDER BY revision, seq LIMIT ?3",
                )?;
                let rows =
                    stmt.query_map(params![id.as_str(), after as i64, limit as i64], |r| r.get::<_, String>(0))?;
                let mut out: Vec<Event> = Vec::new();
                for row in rows {
                    out.push(serde_json::from_str(&row?)?);
                }
                drop(stmt);
                // The events of one revision are delivered together: finish
                // the last revision even when the limit cut it.
                if let Some(last) = out.last().filter(|_| out.len() == limit) {
                    let (revision, seen) = (last.revision, out.iter().filter(|e| e.revision == last.revision).count());
                    let mut rest = tx.prepare_cached(
                        "SELECT event FROM events WHERE ctx = ?1 AND revision = ?2 ORDER BY seq LIMIT -1 OFFSET ?3",
                    )?;
                    let rows =
                        rest.query_map(params![id.as_str(), revision as i64, seen as i64], |r| r.get::<_, String>(0))?;
                    for row in rows {
                        out.push(serde_json::from_str(&row?)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn expire(&self, now: Timestamp) -> Result<u64> {
        match self.write(WriteOp::Expire { now }).await? {
            WriteOutput::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    async fn compact(&self, id: Option<&ContextId>, now: Timestamp) -> Result<Vec<Compaction>> {
        match self.write(WriteOp::Compact { id: id.cloned(), now }).await? {
            WriteOutput::Compactions(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    async fn append_event(&self, id: &ContextId, event: NewEvent, author: &str) -> Result<Event> {
        match self.write(WriteOp::AppendEvent { id: id.clone(), event, author: author.to_owned() }).await? {
            WriteOutput::Event(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    fn subscribe(&self, id: &ContextId) -> broadcast::Receiver<Arc<Committed>> {
        self.hub.subscribe(id.as_str())
    }

    async fn ping(&self) -> Result<()> {
        if self.writer.is_closed() {
            return Err(StoreError::Unavailable("the writer thread has stopped".into()));
        }
        self.readers.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
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
                        job(&mut conn);
                    }
                })
                .map_err(|e| StoreError::Backend(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(ReadPool { path: path.to_owned(), jobs })
    }

    fn open(path: &Path) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
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
        answer.await.map_err(|_| StoreError::Backend("a reader thread stopped".into()))?
    }
}
