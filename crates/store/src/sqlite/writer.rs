//! The single writer thread: every write to the database goes through it.
//!
//! It takes jobs from a queue, runs as many as are waiting in one SQLite
//! transaction (a failing job changes nothing: see `Writer::run_jobs`),
//! commits once (one fsync), and only then answers every job of the batch.
//! With the commit log on (`SqliteConfig::commit_log`), it first appends
//! what they changed to the log as one record and syncs it (the durability
//! point, see `super::log`), then commits without syncing. This is group
//! commit: concurrent writers share an fsync, no caller hears "done" before
//! its write is durable, and no reader sees a write before it is durable
//! (with the log, the transaction commits after the log sync).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::access::AccessCache;
use super::checkpoint::{self, Asker, Positions};
use super::live::{BatchChanges, LiveCache, LiveChange};
use super::log::{Appended, CommitLog};
use super::redo;
use super::tx::{SearchChange, SqliteTx, apply_search, exec, run_now};
use crate::error::{Result, StoreError};
use crate::faults::{crashpoint, failpoint};
use crate::notify::{Committed, Hub};
use crate::ops::precheck::Prechecks;
use crate::ops::{self, WriteOp, WriteOutput};

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

/// Memory the commit log record's buffer keeps between batches.
const REDO_KEPT_BYTES: usize = 1 << 20;

pub(crate) struct Job {
    pub(crate) op: WriteOp,
    pub(crate) reply: Reply,
    /// The `store.write` span of the request that submitted it (disabled
    /// unless traces are wanted): the batch size is recorded on it.
    pub(crate) span: tracing::Span,
}

/// Where a job's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<WriteOutput>>;

pub(crate) type JobSender = mpsc::Sender<Job>;

/// Counts of the writer's work, to observe group commit.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Database transactions committed (one fsync each, of SQLite's WAL or
    /// of the commit log).
    pub(crate) commits: AtomicU64,
    /// Jobs answered.
    pub(crate) jobs: AtomicU64,
    /// Batches run again with a savepoint per job (a job failed after
    /// writing rows).
    pub(crate) reruns: AtomicU64,
}

/// What the writer thread works with.
pub(crate) struct Parts {
    pub(crate) conn: Connection,
    /// The database's lock for this process, released when the thread ends.
    pub(crate) lock: std::fs::File,
    /// The commit log, when it is the durability point.
    pub(crate) log: Option<CommitLog>,
    pub(crate) positions: Arc<Positions>,
    /// The checkpoint thread (`None`: no thread, as in tests).
    pub(crate) checkpoints: Option<Asker>,
    pub(crate) checks: Arc<Prechecks>,
    pub(crate) live: Arc<LiveCache>,
    pub(crate) access: Arc<AccessCache>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) hub: Arc<Hub>,
}

impl Writer {
    fn new(parts: Parts) -> Writer {
        let Parts { conn, lock, log, positions, checkpoints, checks, live, access, stats, hub } = parts;
        Writer {
            conn,
            _lock: lock,
            log,
            positions,
            checkpoints,
            checks,
            live,
            access,
            stats,
            hub,
            changes: BatchChanges::default(),
            redo: Vec::with_capacity(64 * 1024),
        }
    }
}

/// Starts the writer thread.
pub(crate) fn spawn(parts: Parts) -> Result<JobSender> {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    let writer = Writer::new(parts);
    std::thread::Builder::new()
        .name("ctxmesh-sqlite-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
    Ok(tx)
}

struct Writer {
    conn: Connection,
    /// The database's lock for this process, released when the thread ends.
    _lock: std::fs::File,
    /// The durability point, when it is the commit log (`None`: SQLite's
    /// own synced commit).
    log: Option<CommitLog>,
    positions: Arc<Positions>,
    checkpoints: Option<Asker>,
    checks: Arc<Prechecks>,
    live: Arc<LiveCache>,
    /// Token owners and access inputs in memory, forgotten when a batch
    /// changes them.
    access: Arc<AccessCache>,
    stats: Arc<WriterStats>,
    hub: Arc<Hub>,
    /// What the jobs of the batch under way have changed so far.
    changes: BatchChanges,
    /// The commit log record of the batch under way: the writing calls of
    /// its jobs that succeeded (see `super::change`).
    redo: Vec<u8>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        tracing::debug!("sqlite writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        metrics::histogram!("ctxmesh_commit_batch_size").record(batch.len() as f64);
        for job in batch.iter() {
            job.span.record("ctxmesh.store.batch_size", batch.len() as i64);
        }
        let (ops, replies): (Vec<WriteOp>, Vec<Reply>) = batch.drain(..).map(|j| (j.op, j.reply)).unzip();
        let (results, effects) = match self.run_jobs(&ops, false) {
            Ok(done) => done,
            Err(e) => return self.abort(replies, &e, None, "a batch failed"),
        };
        // The full-text index changes of the jobs that succeeded, in order,
        // outside any savepoint, in the batch's transaction.
        if let Err(e) = apply_search(&self.conn, &effects.search) {
            return self.abort(replies, &e, None, "indexing failed");
        }
        // The durability point: the batch's record in the commit log,
        // synced (a batch that changed nothing has none).
        let appended = match self.append() {
            Ok(appended) => appended,
            Err(e) => return self.abort(replies, &e, None, "the commit log append failed"),
        };
        if let Err(e) = failpoint("sqlite::commit::before") {
            return self.abort(replies, &e, appended, "the commit failed");
        }
        self.live.begin(&effects.live);
        if effects.access_changed {
            self.access.begin();
        }
        let started = Instant::now();
        let committed = exec(&self.conn, "COMMIT");
        if self.log.is_none() {
            // SQLite's synced commit is the durability point.
            metrics::histogram!("ctxmesh_fsync_seconds").record(started.elapsed().as_secs_f64());
        }
        if effects.access_changed {
            self.access.finish();
        }
        if let Err(e) = committed {
            self.live.finish(effects.live, false);
            return self.abort(replies, &e, appended, "commit failed");
        }
        if let Some(appended) = appended {
            self.positions.committed.store(appended.lsn, Ordering::Release);
        }
        // Past the durability point: the failpoints here can only crash.
        crashpoint("sqlite::commit::after");
        self.live.finish(effects.live, true);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.jobs.fetch_add(replies.len() as u64, Ordering::Relaxed);
        // Publish before answering: a client that hears "done" and then
        // subscribes finds the revision in the log either way.
        for committed in effects.published {
            self.hub.publish(committed);
        }
        crashpoint("sqlite::answer::before");
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        if self.positions.writer_due.swap(false, Ordering::AcqRel) {
            self.checkpoint();
        }
    }

    /// Checkpoints on the writer's connection, outside any transaction, so
    /// that the next batch starts the WAL over (see `super::checkpoint`);
    /// the checkpoint thread then trims the log.
    fn checkpoint(&self) {
        match checkpoint::checkpoint(&self.conn, &self.positions) {
            Ok(()) => {
                if let Some(thread) = &self.checkpoints {
                    thread.ask();
                }
            }
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint by the writer failed"),
        }
    }

    /// Appends the batch's record to the commit log and syncs it, after
    /// noting in the batch's transaction that the database holds it.
    fn append(&mut self) -> Result<Option<Appended>> {
        let Some(log) = &mut self.log else { return Ok(None) };
        if self.redo.is_empty() {
            return Ok(None);
        }
        let lsn = log.next_lsn();
        redo::set_applied(&self.conn, lsn)?;
        self.positions.committing.store(lsn, Ordering::Release);
        let started = Instant::now();
        let appended = log.append(&self.redo)?;
        metrics::histogram!("ctxmesh_fsync_seconds").record(started.elapsed().as_secs_f64());
        Ok(Some(appended))
    }

    /// Fails every job of the batch with `e`: its transaction is rolled
    /// back and its commit log record, if appended, taken back.
    fn abort(&mut self, replies: Vec<Reply>, e: &StoreError, appended: Option<Appended>, what: &str) {
        tracing::error!(error = %e, "{what}; the batch was rolled back");
        if let (Some(appended), Some(log)) = (appended, &mut self.log) {
            log.undo(appended);
        }
        self.rollback();
        for reply in replies {
            let _ = reply.send(Err(e.for_failed_batch()));
        }
    }

    /// Runs the jobs of a batch in one transaction, so that a failing job
    /// changes nothing and the others are kept.
    ///
    /// First without savepoints: a job that fails before it writes a row
    /// (a refused precondition, bad input, an unknown context: nearly every
    /// failure) has changed nothing, and a savepoint per job costs a copy
    /// of every page each job touches. SQLite counts the rows written; if a
    /// job fails after writing some, the transaction is rolled back and the
    /// batch runs again with a savepoint per job (`savepoints`), each
    /// rolled back alone when its job fails. Nothing was answered yet, so
    /// running a job twice is invisible.
    fn run_jobs(&mut self, ops: &[WriteOp], savepoints: bool) -> Result<(Vec<Result<WriteOutput>>, Effects)> {
        exec(&self.conn, "BEGIN IMMEDIATE")?;
        self.changes.clear();
        self.redo.clear();
        // A batch of large writes leaves no large buffer behind it.
        self.redo.shrink_to(REDO_KEPT_BYTES);
        let mut effects = Effects::default();
        let mut results = Vec::with_capacity(ops.len());
        for (n, op) in ops.iter().enumerate() {
            if n > 0 {
                failpoint("sqlite::batch::mid")?;
            }
            if savepoints {
                exec(&self.conn, "SAVEPOINT job")?;
            }
            let written = self.conn.total_changes();
            let (result, job) = self.run_job(op);
            let result = match result {
                // No job of the batch can be written either.
                Err(e) if e.is_full() => return Err(e),
                result => result,
            };
            if result.is_ok() {
                self.changes.note(&job.live);
                effects.extend(job);
            } else {
                self.check_open()?;
                if savepoints {
                    exec(&self.conn, "ROLLBACK TO job")?;
                } else if self.conn.total_changes() != written {
                    self.stats.reruns.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("ctxmesh_write_batches_rerun_total").increment(1);
                    exec(&self.conn, "ROLLBACK")?;
                    return self.run_jobs(ops, true);
                }
            }
            if savepoints {
                exec(&self.conn, "RELEASE job")?;
            }
            results.push(result);
        }
        Ok((results, effects))
    }

    /// Runs one job; what it leaves for after the commit, if it succeeds.
    fn run_job(&mut self, op: &WriteOp) -> (Result<WriteOutput>, Effects) {
        let env = self.checks.env();
        let mark = self.redo.len();
        let redo = self.log.is_some().then_some(&mut self.redo);
        let mut tx = SqliteTx::writer(&mut self.conn, &self.live, &self.changes, redo);
        // A bug in one job (a panic) fails that job alone, like any other
        // failing job (its rows are undone by the batch's rerun with
        // savepoints), instead of ending the writer thread and with it
        // every later write.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_now(ops::write(&mut tx, env, op))))
            .unwrap_or_else(|_| {
                tracing::error!("a write panicked; it was answered with an internal error");
                Err(StoreError::Backend("the write hit a bug (a panic); the log has it".into()))
            });
        let job = Effects {
            published: std::mem::take(&mut tx.published),
            search: tx.search.take().unwrap_or_default(),
            live: tx.live.take().unwrap_or_default(),
            access_changed: tx.access_changed,
        };
        drop(tx);
        if result.is_err() {
            // What a failed job wrote is undone: so is its part of the record.
            self.redo.truncate(mark);
        }
        (result, job)
    }

    /// Fails when SQLite ended the transaction itself (it does on some I/O
    /// errors): the jobs after would otherwise each commit on their own.
    fn check_open(&self) -> Result<()> {
        if self.conn.is_autocommit() {
            return Err(StoreError::Unavailable("the database ended the batch's transaction".into()));
        }
        Ok(())
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// What the jobs of a batch that succeeded leave for after the commit.
#[derive(Default)]
struct Effects {
    /// Revisions to publish.
    published: Vec<Committed>,
    /// Full-text index changes, applied once before the commit.
    search: Vec<SearchChange>,
    /// Changes to live entries, for the cache.
    live: Vec<LiveChange>,
    /// Whether what authenticating or authorizing a request reads changed.
    access_changed: bool,
}

impl Effects {
    fn extend(&mut self, job: Effects) {
        self.published.extend(job.published);
        self.search.extend(job.search);
        self.live.extend(job.live);
        self.access_changed |= job.access_changed;
    }
}

#[cfg(test)]
mod tests {
    use ctxmesh_core::limits::Limits;
    use ctxmesh_core::{ContextId, TxnRequest};
    use serde_json::json;

    use super::*;

    /// A writer on a new database in `dir`, run by the test itself.
    fn writer(dir: &std::path::Path) -> Writer {
        let mut conn = Connection::open(dir.join("db.sqlite")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let log = CommitLog::open(&dir.join("db.sqlite-log"), 0, true, 1 << 20, |_, _| Ok(())).unwrap();
        Writer::new(Parts {
            conn,
            lock: std::fs::File::create(dir.join("db.sqlite.lock")).unwrap(),
            log: Some(log),
            positions: Arc::default(),
            checkpoints: None,
            checks: Arc::new(Prechecks::new(Limits::default(), crate::clock::system())),
            live: Arc::new(LiveCache::default()),
            access: Arc::default(),
            stats: Arc::default(),
            hub: Arc::new(Hub::default()),
        })
    }

    /// Runs `ops` as one batch: their answers.
    fn batch(writer: &mut Writer, ops: Vec<WriteOp>) -> Vec<Result<WriteOutput>> {
        let (mut jobs, mut answers) = (Vec::new(), Vec::new());
        for op in ops {
            let (reply, answer) = oneshot::channel();
            jobs.push(Job { op, reply, span: tracing::Span::none() });
            answers.push(answer);
        }
        writer.commit_batch(&mut jobs);
        answers.into_iter().map(|mut a| a.try_recv().expect("every job is answered")).collect()
    }

    fn create(id: &str, body: serde_json::Value) -> WriteOp {
        let mut body = body;
        body["id"] = json!(id);
        WriteOp::CreateContext { new: serde_json::from_value(body).unwrap(), author: "a".into() }
    }

    fn txn(id: &str, body: serde_json::Value) -> WriteOp {
        let txn: TxnRequest = serde_json::from_value(body).unwrap();
        WriteOp::Txn { id: ContextId::parse(id).unwrap(), txn, author: "a".into() }
    }

    fn put(id: &str, key: &str, value: serde_json::Value) -> WriteOp {
        txn(id, json!({"success": [{"op": "put", "key": key, "value": value}]}))
    }

    fn revision(writer: &Writer, id: &str) -> i64 {
        writer.conn.query_row("SELECT revision FROM contexts WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    }

    fn value(writer: &Writer, id: &str, key: &str) -> Option<String> {
        writer
            .conn
            .query_row(
                "SELECT v.value FROM entries e JOIN versions v ON v.ctx = e.ctx AND v.key = e.key \
                 AND v.revision = e.revision WHERE e.ctx = ?1 AND e.key = ?2",
                [id, key],
                |r| r.get(0),
            )
            .ok()
    }

    fn cas(id: &str, key: &str, revision: u64, value: serde_json::Value) -> WriteOp {
        txn(
            id,
            json!({"compare": [{"key": key, "revision": revision}], "success": [{"op": "put", "key": key, "value": value}]}),
        )
    }

    fn succeeded(answer: &Result<WriteOutput>) -> bool {
        matches!(answer, Ok(WriteOutput::Txn(r)) if r.succeeded)
    }

    /// The writer reads an entry from the live-entry cache only while no
    /// job of its batch has changed it: a compare-and-swap sees the writes
    /// before it in the same batch, and stale ones are refused.
    #[test]
    fn the_writer_reads_the_batch_own_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        // The context is held by the cache (as after a read), so the
        // batches' commits are written through to it.
        w.live.ticket("c");
        assert!(batch(&mut w, vec![create("c", json!({})), put("c", "k", json!(1))]).iter().all(Result::is_ok));
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        let (cached, _) = w.live.get("c", "k", now).expect("the cache holds the committed entry");
        assert_eq!(cached.map(|e| e.value), Some(json!(1)));
        let answers = batch(
            &mut w,
            vec![
                cas("c", "k", 2, json!(2)),
                cas("c", "k", 2, json!(3)),
                cas("c", "k", 3, json!(4)),
                cas("c", "other", 0, json!(5)),
                cas("c", "other", 0, json!(6)),
            ],
        );
        let ok: Vec<bool> = answers.iter().map(succeeded).collect();
        assert_eq!(ok, [true, false, true, true, false]);
        assert_eq!(value(&w, "c", "k"), Some("4".into()));
        assert_eq!(value(&w, "c", "other"), Some("5".into()));
        // The next batch reads what this one committed, from the cache.
        let (cached, _) = w.live.get("c", "k", now).expect("written through");
        assert_eq!(cached.map(|e| e.value), Some(json!(4)));
        let next = batch(&mut w, vec![cas("c", "k", 3, json!(7)), cas("c", "k", 4, json!(8))]);
        assert_eq!(next.iter().map(succeeded).collect::<Vec<_>>(), [false, true]);
        assert_eq!(value(&w, "c", "k"), Some("8".into()));
    }

    /// Jobs that fail without writing (a refused precondition, a schema
    /// violation) leave the others of their batch alone, without a second
    /// run.
    #[test]
    fn failures_before_writing_need_no_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let schema = json!({"schemas": {"n": {"type": "integer"}}});
        assert!(batch(&mut w, vec![create("c", schema)]).iter().all(Result::is_ok));
        let answers = batch(
            &mut w,
            vec![
                put("c", "a", json!(1)),
                txn(
                    "c",
                    json!({"compare": [{"key": "a", "revision": 0}], "success": [{"op": "put", "key": "a", "value": 9}]}),
                ),
                put("c", "n", json!("not a number")),
                put("c", "b", json!(2)),
            ],
        );
        assert!(matches!(&answers[0], Ok(WriteOutput::Txn(r)) if r.succeeded));
        assert!(matches!(&answers[1], Ok(WriteOutput::Txn(r)) if !r.succeeded), "a stale write is refused");
        assert!(matches!(&answers[2], Err(StoreError::Core(ctxmesh_core::Error::SchemaViolation { .. }))));
        assert!(matches!(&answers[3], Ok(WriteOutput::Txn(r)) if r.succeeded));
        assert_eq!(w.stats.reruns.load(Ordering::Relaxed), 0);
        assert_eq!((value(&w, "c", "a"), value(&w, "c", "b")), (Some("1".into()), Some("2".into())));
        assert_eq!(value(&w, "c", "n"), None);
        assert_eq!(revision(&w, "c"), 3);
    }

    /// A full disk refuses the whole batch with `Full` (SQLite's
    /// `max_page_count` stands in for the disk here), changes nothing, and
    /// writes go through again once there is room.
    #[test]
    fn a_full_disk_refuses_writes_until_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        assert!(batch(&mut w, vec![create("c", json!({})), put("c", "k", json!(0))]).iter().all(Result::is_ok));
        let pages: i64 = w.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        w.conn.execute_batch(&format!("PRAGMA max_page_count = {pages}")).unwrap();
        let big = json!("x".repeat(64 * 1024));
        let answers = batch(&mut w, vec![put("c", "a", json!(1)), put("c", "big", big.clone())]);
        let errors: Vec<String> =
            answers.iter().map(|a| a.as_ref().err().map(ToString::to_string).unwrap_or_default()).collect();
        assert!(answers.iter().all(|a| matches!(a, Err(e) if e.is_full())), "{errors:?}");
        assert_eq!(revision(&w, "c"), 2, "nothing of the batch was written");
        assert_eq!(value(&w, "c", "a"), None);
        w.conn.execute_batch("PRAGMA max_page_count = 1073741823").unwrap();
        let answers = batch(&mut w, vec![put("c", "a", json!(1)), put("c", "big", big)]);
        assert!(answers.iter().all(Result::is_ok), "writes go through again");
        assert_eq!(revision(&w, "c"), 4);
    }

    /// A job that fails after writing rows (here: it first removes an
    /// expired entry, then its value breaks the schema) is undone alone:
    /// the batch runs again with a savepoint per job, and the jobs before
    /// and after it are committed once each.
    #[test]
    fn a_job_failing_after_writing_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let schema = json!({"schemas": {"n": {"type": "integer"}}});
        let setup = batch(
            &mut w,
            vec![
                create("s", schema),
                create("other", json!({})),
                txn("s", json!({"success": [{"op": "put", "key": "old", "value": 1, "ttl_ms": 1}]})),
            ],
        );
        assert!(setup.iter().all(Result::is_ok));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let answers = batch(
            &mut w,
            vec![put("other", "a", json!(1)), put("s", "n", json!("not a number")), put("other", "b", json!(2))],
        );
        assert!(matches!(&answers[0], Ok(WriteOutput::Txn(r)) if r.succeeded && r.revision == 2));
        assert!(matches!(&answers[1], Err(StoreError::Core(ctxmesh_core::Error::SchemaViolation { .. }))));
        assert!(matches!(&answers[2], Ok(WriteOutput::Txn(r)) if r.succeeded && r.revision == 3));
        assert_eq!(w.stats.reruns.load(Ordering::Relaxed), 1, "the batch ran again with savepoints");
        // The failed job's expiry was undone with it.
        assert_eq!(revision(&w, "s"), 2);
        assert_eq!(value(&w, "s", "old"), Some("1".into()));
        // The others were applied once each.
        assert_eq!(revision(&w, "other"), 3);
        assert_eq!((value(&w, "other", "a"), value(&w, "other", "b")), (Some("1".into()), Some("2".into())));
        let versions: i64 =
            w.conn.query_row("SELECT count(*) FROM versions WHERE ctx = 'other'", [], |r| r.get(0)).unwrap();
        assert_eq!(versions, 2);
    }
}
