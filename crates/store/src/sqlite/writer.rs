//! The single writer thread: every write to the database goes through it.
//!
//! It takes jobs from a queue, runs as many as are waiting in one SQLite
//! transaction (each inside a savepoint, so a failing job changes nothing),
//! commits once (one fsync), and only then answers every job of the batch.
//! This is group commit: concurrent writers share an fsync, and no caller
//! hears "done" before its write is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::live::{LiveCache, LiveChange};
use super::tx::{SearchChange, SqliteTx, apply_search, exec, run_now};
use crate::notify::{Committed, Hub};
use crate::ops::{self, Env, WriteOp, WriteOutput};
use crate::precheck::Prechecks;
use crate::{Result, StoreError};

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

pub(crate) struct Job {
    pub(crate) op: WriteOp,
    pub(crate) reply: Reply,
}

/// Where a job's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<WriteOutput>>;

pub(crate) type JobSender = mpsc::Sender<Job>;

/// Counts of the writer's work, to observe group commit.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Database transactions committed (one fsync each).
    pub(crate) commits: AtomicU64,
    /// Jobs answered.
    pub(crate) jobs: AtomicU64,
}

/// Starts the writer thread on `conn`.
pub(crate) fn spawn(
    conn: Connection,
    lock: std::fs::File,
    checks: Arc<Prechecks>,
    live: Arc<LiveCache>,
    stats: Arc<WriterStats>,
    hub: Arc<Hub>,
) -> Result<JobSender> {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    let writer = Writer { conn, _lock: lock, checks, live, stats, hub };
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
    checks: Arc<Prechecks>,
    live: Arc<LiveCache>,
    stats: Arc<WriterStats>,
    hub: Arc<Hub>,
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
        let (ops, replies): (Vec<WriteOp>, Vec<Reply>) = batch.drain(..).map(|j| (j.op, j.reply)).unzip();
        if let Err(e) = exec(&self.conn, "BEGIN IMMEDIATE") {
            fail_all(replies, &e);
            return;
        }
        let mut effects = Effects::default();
        let results: Vec<Result<WriteOutput>> =
            ops.into_iter().map(|op| self.run_in_savepoint(op, &mut effects)).collect();
        // The full-text index changes of the jobs that succeeded, in order,
        // outside any savepoint, in the batch's transaction.
        if let Err(e) = apply_search(&self.conn, &effects.search) {
            tracing::error!(error = %e, "indexing failed; the batch was rolled back");
            let _ = self.conn.execute_batch("ROLLBACK");
            fail_all(replies, &e);
            return;
        }
        self.live.begin(&effects.live);
        let started = Instant::now();
        let committed = exec(&self.conn, "COMMIT");
        metrics::histogram!("ctxmesh_fsync_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = committed {
            tracing::error!(error = %e, "commit failed; the batch was rolled back");
            let _ = self.conn.execute_batch("ROLLBACK");
            self.live.finish(effects.live, false);
            fail_all(replies, &e);
            return;
        }
        self.live.finish(effects.live, true);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.jobs.fetch_add(replies.len() as u64, Ordering::Relaxed);
        // Publish before answering: a client that hears "done" and then
        // subscribes finds the revision in the log either way.
        for committed in effects.published {
            self.hub.publish(committed);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Runs one job in a savepoint: rolled back alone when it fails.
    fn run_in_savepoint(&mut self, op: WriteOp, effects: &mut Effects) -> Result<WriteOutput> {
        exec(&self.conn, "SAVEPOINT job")?;
        let env = Env { limits: &self.checks.limits, schemas: &self.checks.schemas };
        let mut tx = SqliteTx::writer(&mut self.conn);
        let result = run_now(ops::write(&mut tx, env, op));
        let job = Effects {
            published: std::mem::take(&mut tx.published),
            search: tx.search.take().unwrap_or_default(),
            live: tx.live.take().unwrap_or_default(),
        };
        if result.is_err() {
            exec(&self.conn, "ROLLBACK TO job")?;
        } else {
            effects.published.extend(job.published);
            effects.search.extend(job.search);
            effects.live.extend(job.live);
        }
        exec(&self.conn, "RELEASE job")?;
        result
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
}

fn fail_all(replies: Vec<Reply>, e: &StoreError) {
    for reply in replies {
        let _ = reply.send(Err(StoreError::Unavailable(format!("commit failed: {e}"))));
    }
}
