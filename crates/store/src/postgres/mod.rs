//! The PostgreSQL store: several stateless ctxmesh nodes share one database.
//!
//! - **Order.** A write locks its context's row (`SELECT ... FOR UPDATE`)
//!   for the length of its transaction, so the revisions of a context are
//!   assigned one at a time across every node.
//! - **Batching.** On each node, writes to one context queue behind each
//!   other; the writes waiting when a transaction starts run together in it
//!   (each in a savepoint), so a hot context pays one lock and one commit
//!   for many writes. Writes to different contexts run in parallel on the
//!   connection pool, and PostgreSQL groups their commit flushes.
//! - **Round trips.** A write costs about one round trip to the database,
//!   not one per statement (see [`pipeline`]): statements nobody waits for
//!   (`BEGIN`, `SAVEPOINT`, the rows of a revision, `NOTIFY`, `COMMIT`) are
//!   buffered and sent, pipelined, ahead of the next statement that must
//!   answer. The round trip that starts a job takes the context's row lock
//!   and, in the same flight, reads what the job reads first (the entries
//!   of a transaction's read set, those expiring); the job's operation then
//!   finds them without asking again ([`tx::PgTx::prefetch`]). A single
//!   put or compare-and-swap is two round trips: `BEGIN` + lock + reads,
//!   then the revision's rows + `NOTIFY` + `COMMIT`. A batch of N jobs
//!   is N + 1. A read of one entry is one (`BEGIN` and the reads together;
//!   the read-only transaction's `COMMIT` is sent after the answer). Reads
//!   an operation makes later (a stale write's base version, agents to
//!   broadcast to) cost one round trip each, carrying the writes buffered
//!   before them.
//! - **Errors.** A pipelined statement that fails aborts the transaction
//!   and the statements after it fail with it; the server would then answer
//!   `COMMIT` with a rollback. The pipeline checks every answer, so such a
//!   batch fails as a whole and no job of it is acknowledged. A job that
//!   fails in the operation itself (not found, invalid, a refused fence) is
//!   undone alone: `ROLLBACK TO` its savepoint, pipelined like the rest.
//! - **Notifications.** Each commit sends `NOTIFY` with the context and
//!   revision; every node listens (see [`listen`]) and wakes its watchers
//!   with events read from the durable `events` table, never from the
//!   notification alone. A periodic check catches up anything a lost
//!   notification would have delayed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctxmesh_core::Limits;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::clock::{Clock, SharedClock};
use crate::engine::Backend;
use crate::error::{Result, StoreError};
use crate::faults::{crashpoint, failpoint};
use crate::notify::{Committed, Hub};
use crate::ops::precheck::Prechecks;
use crate::ops::{self, ReadOp, ReadOutput, WriteOp, WriteOutput};
use crate::types::Durability;

mod listen;
mod pipeline;
mod pool;
mod schema;
mod tls;
mod tx;

use listen::Relay;
use pipeline::{Pipeline, Session, Stats};
use pool::pool_error;
use tx::{PgTx, Prefetch};

pub use tls::connect;

/// Most writes to one context committed in one transaction.
const MAX_BATCH: usize = 256;

/// Settings of the PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// A `postgres://` URL (libpq style parameters such as
    /// `options=-csearch_path%3Dname` are honoured, and so are libpq's TLS
    /// parameters `sslmode`, `sslrootcert`, `sslcert` and `sslkey`: see
    /// [`connect`]).
    pub url: String,
    /// `Full`: a write is acknowledged after its commit is flushed.
    /// `Relaxed`: commits use `synchronous_commit = off`.
    pub durability: Durability,
    /// Limits enforced on writes.
    pub limits: Limits,
    /// Connections in the pool of this node.
    pub pool_size: usize,
    /// How often this node checks the revisions of the contexts it watches,
    /// in case a notification was lost.
    pub poll_interval: Duration,
    /// The clock the store stamps and expires by.
    pub clock: SharedClock,
}

impl PostgresConfig {
    /// The defaults for a database URL.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            durability: Durability::Full,
            limits: Limits::default(),
            pool_size: 16,
            poll_interval: Duration::from_secs(1),
            clock: crate::clock::system(),
        }
    }
}

/// The PostgreSQL store of one node.
pub struct PostgresStore {
    shared: Arc<Shared>,
    listener: tokio::task::JoinHandle<()>,
}

struct Shared {
    pool: Pool,
    checks: Arc<Prechecks>,
    durability: Durability,
    relay: Arc<Relay>,
    /// Per-context write queues of this node; a queue exists while a task
    /// is draining it.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    /// Round trips and statements sent to the database.
    stats: Stats,
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutput>>,
    /// The `store.write` span of the request that submitted it (disabled
    /// unless traces are wanted): the batch size is recorded on it.
    span: tracing::Span,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("schema", &self.shared.relay.channel()).finish()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects, runs the migrations and starts listening for the commits
    /// of other nodes.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let pg_config = tls::parse(&config.url)?;
        let pool = pool::build(pg_config.clone(), config.pool_size)?;
        let mut client = pool.get().await.map_err(pool_error)?;
        let schema = schema::migrate(&mut client).await?;
        drop(client);
        let relay = Arc::new(Relay::new(Arc::new(Hub::default()), pool.clone(), &schema, config.clock.clone()));
        let (listening, listens) = oneshot::channel();
        let listener = tokio::spawn(listen::run(relay.clone(), pg_config, config.poll_interval, listening));
        // A node that did not hear a commit could not wake its watchers:
        // it is ready only once it listens.
        if tokio::time::timeout(Duration::from_secs(30), listens).await.is_err() {
            listener.abort();
            return Err(StoreError::Unavailable("cannot listen for commit notifications on the database".into()));
        }
        let shared = Shared {
            pool,
            checks: Arc::new(Prechecks::new(config.limits, config.clock)),
            durability: config.durability,
            relay,
            queues: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        };
        Ok(PostgresStore { shared: Arc::new(shared), listener })
    }
}

#[async_trait::async_trait]
impl Backend for PostgresStore {
    async fn write(&self, op: WriteOp) -> Result<WriteOutput> {
        // A context's queue is drained in batches by one task: this
        // request's part is the submission and the wait for its batch to
        // commit.
        let span = tracing::debug_span!(
            "store.write",
            db.system.name = "postgresql",
            ctxmesh.store.batch_size = tracing::field::Empty,
        );
        let (reply, answer) = oneshot::channel();
        self.shared.enqueue(Job { op, reply, span: span.clone() });
        let wait = tracing::debug_span!(parent: &span, "store.durability_wait");
        answer
            .instrument(wait)
            .instrument(span)
            .await
            .map_err(|_| StoreError::Unavailable("the write was abandoned".into()))?
    }

    async fn read(&self, op: ReadOp) -> Result<ReadOutput> {
        let session = Session::new(self.shared.pool.get().await.map_err(pool_error)?);
        // One snapshot for every query of the read; BEGIN goes with the
        // first query.
        let mut pipe =
            Pipeline::begin(session.client(), &self.shared.stats, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        let result = read_in(&mut pipe, self.shared.checks.clock.as_ref(), op).await;
        let open = pipe.sent();
        drop(pipe);
        session.set_open(open);
        // Ending a read-only transaction changes nothing: the answer need
        // not wait for it.
        session.end_read_in_background();
        result
    }

    fn hub(&self) -> &Hub {
        self.shared.relay.hub()
    }

    fn prechecks(&self) -> &Arc<Prechecks> {
        &self.shared.checks
    }

    fn clock(&self) -> &dyn Clock {
        self.shared.checks.clock.as_ref()
    }

    async fn ping(&self) -> Result<()> {
        let client = self.shared.pool.get().await.map_err(pool_error)?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}

impl Shared {
    /// Queues a write behind the other writes of its context on this node,
    /// starting a task to drain the queue if there is none.
    fn enqueue(self: &Arc<Self>, job: Job) {
        let context = job.op.queue();
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let job = match queues.get(&context) {
            Some(queue) => match queue.send(job) {
                Ok(()) => return,
                // The draining task is gone (it panicked); start another.
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (queue, jobs) = mpsc::unbounded_channel();
        let _ = queue.send(job);
        queues.insert(context.clone(), queue);
        tokio::spawn(self.clone().drain(context, jobs));
    }

    async fn drain(self: Arc<Self>, context: String, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                // Senders queue under this lock: once the queue is seen
                // empty and removed under it, no job can be left behind.
                let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => {
                        queues.remove(&context);
                        return;
                    }
                }
            }
            self.commit_batch(&mut batch).await;
        }
    }

    /// Runs `batch` in one transaction and answers each job after COMMIT.
    async fn commit_batch(&self, batch: &mut Vec<Job>) {
        metrics::histogram!("ctxmesh_commit_batch_size").record(batch.len() as f64);
        for job in batch.iter() {
            job.span.record("ctxmesh.store.batch_size", batch.len() as i64);
        }
        let (ops, replies): (Vec<WriteOp>, Vec<_>) = batch.drain(..).map(|j| (j.op, j.reply)).unzip();
        match self.run_batch(ops).await {
            Ok((results, published)) => {
                for committed in published {
                    self.relay.publish(committed);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a write transaction failed; its writes were rolled back");
                for reply in replies {
                    let _ = reply.send(Err(e.for_failed_batch()));
                }
            }
        }
    }

    /// The results of `ops` and the revisions they committed; an error
    /// means nothing was committed.
    async fn run_batch(&self, ops: Vec<WriteOp>) -> Result<(Vec<Result<WriteOutput>>, Vec<Committed>)> {
        let session = Session::new(self.pool.get().await.map_err(pool_error)?);
        let mut pipe = Pipeline::begin(session.client(), &self.stats, "BEGIN");
        if self.durability == Durability::Relaxed {
            pipe.push_simple("SET LOCAL synchronous_commit = off");
        }
        // Until the transaction ends, a connection dropped with it (a panic)
        // is closed, not pooled.
        let outcome = self.run_in(&mut pipe, ops).await;
        let ended = match &outcome {
            Ok(Batch::Committed(..)) => Ok(()),
            Ok(Batch::RolledBack(_)) | Err(_) => pipe.rollback().await,
        };
        drop(pipe);
        // Neither committed nor rolled back for sure: the connection is
        // closed (the server rolls back), not pooled.
        session.set_open(ended.is_err());
        drop(session);
        match outcome? {
            Batch::Committed(results, published) => Ok((results, published)),
            Batch::RolledBack(results) => Ok((results, Vec::new())),
        }
    }

    /// Runs `ops` in the transaction `pipe` begins, one savepoint per job
    /// when there are several, and commits. Each job costs one round trip
    /// that takes the context's row lock and reads what the job reads
    /// first (sending the previous job's writes ahead of it), plus one per
    /// further read; the writes of the last job go with `COMMIT`.
    async fn run_in(&self, pipe: &mut Pipeline<'_>, ops: Vec<WriteOp>) -> Result<Batch> {
        let env = self.checks.env();
        let alone = ops.len() == 1;
        let mut results = Vec::with_capacity(ops.len());
        let mut published = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            if n > 0 {
                failpoint("postgres::batch::mid")?;
            }
            // A job that fails is undone alone; a lone job needs no
            // savepoint (the whole transaction is rolled back instead).
            if !alone {
                pipe.push_simple("SAVEPOINT job");
            }
            let mut job_tx = PgTx::new(pipe);
            if let Some(what) = write_prefetch(&op, env.now()) {
                job_tx.prefetch(what).await?;
            }
            let result = ops::write(&mut job_tx, env, &op).await;
            let mut job_published = std::mem::take(&mut job_tx.published);
            drop(job_tx);
            // A buffered write that failed (of this job or an earlier one)
            // aborted the transaction: nothing of the batch commits.
            if let Some(e) = pipe.broken() {
                return Err(e);
            }
            match (&result, alone) {
                (Ok(_), false) => {
                    published.append(&mut job_published);
                    pipe.push_simple("RELEASE job");
                }
                (Ok(_), true) => published.append(&mut job_published),
                (Err(_), false) => pipe.push_simple("ROLLBACK TO job; RELEASE job"),
                (Err(_), true) => return Ok(Batch::RolledBack(vec![result])),
            }
            results.push(result);
        }
        let payloads: Vec<String> = published.iter().map(listen::payload).collect();
        if !payloads.is_empty() {
            // Delivered to every listening node when (and only if) the
            // transaction commits, in commit order.
            let channel = self.relay.channel().to_owned();
            pipe.push(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                vec![Box::new(channel), Box::new(payloads)],
            );
        }
        failpoint("postgres::commit::before")?;
        let started = Instant::now();
        // The buffered writes, NOTIFY and COMMIT: one round trip.
        pipe.commit().await?;
        metrics::histogram!("ctxmesh_fsync_seconds").record(started.elapsed().as_secs_f64());
        crashpoint("postgres::commit::after");
        Ok(Batch::Committed(results, published))
    }
}

/// How a batch's transaction ended.
enum Batch {
    /// Committed: each job's result and the revisions committed.
    Committed(Vec<Result<WriteOutput>>, Vec<Committed>),
    /// Rolled back: a lone job failed.
    RolledBack(Vec<Result<WriteOutput>>),
}

/// How far past its start a write's prefetch reads the entries that
/// expire: the write asks which entries expired when it plans, a little
/// later.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(1);

/// What a write reads first: the row of the context it locks, and for a
/// transaction the entries it reads and those expiring.
fn write_prefetch(op: &WriteOp, now: ctxmesh_core::Timestamp) -> Option<Prefetch> {
    let locked = |ctx: &str| Prefetch { ctx: ctx.to_owned(), lock: true, keys: Vec::new(), expiring_by: None };
    match op {
        WriteOp::Txn { id, txn, .. } => Some(Prefetch {
            keys: txn.read_set().keys.into_iter().collect(),
            expiring_by: Some(now + EXPIRY_MARGIN),
            ..locked(id.as_str())
        }),
        WriteOp::Rollback { id, .. } => {
            Some(Prefetch { expiring_by: Some(now + EXPIRY_MARGIN), ..locked(id.as_str()) })
        }
        WriteOp::UpdateContext { id, .. } | WriteOp::DeleteContext { id } | WriteOp::AppendEvent { id, .. } => {
            Some(locked(id.as_str()))
        }
        WriteOp::Expire { id, .. } | WriteOp::Compact { id, .. } => Some(locked(id)),
        WriteOp::CreateContext { .. } | WriteOp::Fork { .. } | WriteOp::Coord(_) => None,
    }
}

/// What a read reads first, when that is known: the context, and the
/// entries a read of the latest state or a precheck reads.
fn read_prefetch(op: &ReadOp) -> Option<Prefetch> {
    let (id, keys) = match op {
        ReadOp::GetEntry { id, key, at: crate::types::ReadAt::Latest } => (id, vec![key.as_str().to_owned()]),
        ReadOp::Precheck { id, txn, .. } => (id, txn.read_set().keys.into_iter().collect()),
        _ => return None,
    };
    Some(Prefetch { ctx: id.as_str().to_owned(), lock: false, keys, expiring_by: None })
}

/// Runs a read in the transaction `pipe` begins.
async fn read_in(pipe: &mut Pipeline<'_>, clock: &dyn Clock, op: ReadOp) -> Result<ReadOutput> {
    let mut tx = PgTx::new(pipe);
    if let Some(what) = read_prefetch(&op) {
        tx.prefetch(what).await?;
    }
    ops::read(&mut tx, clock, op).await
}

#[cfg(test)]
mod tests {
    use ctxmesh_core::ids::{ContextId, EntryKey};
    use ctxmesh_core::txn::TxnRequest;
    use serde_json::{Value, json};

    use super::*;
    use crate::Store;
    use crate::types::ReadAt;

    fn cid(s: &str) -> ContextId {
        ContextId::parse(s).unwrap()
    }

    fn txn(v: Value) -> TxnRequest {
        serde_json::from_value(v).unwrap()
    }

    async fn store() -> PostgresStore {
        let url = crate::conformance::fresh_postgres_url().await;
        PostgresStore::connect(PostgresConfig { pool_size: 2, ..PostgresConfig::new(url) }).await.unwrap()
    }

    /// Round trips the database saw while `f` ran.
    async fn round_trips<T>(store: &PostgresStore, f: impl Future<Output = T>) -> (T, u64) {
        let before = store.shared.stats.round_trips();
        let out = f.await;
        (out, store.shared.stats.round_trips() - before)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_write_costs_two_round_trips_and_a_read_one() {
        let store = store().await;
        store.create_context(serde_json::from_value(json!({"id": "c"})).unwrap(), "a").await.unwrap();
        let id = cid("c");
        let put = |value: i64, revision: Option<u64>| {
            let mut t = json!({"success": [{"op": "put", "key": "k", "value": value}]});
            if let Some(r) = revision {
                t["compare"] = json!([{"key": "k", "revision": r}]);
            }
            store.txn(&id, txn(t), "a")
        };
        let key = EntryKey::parse("k").unwrap();
        // Both connections of the pool prepare their statements first.
        for n in 0..4 {
            let (entry, _) = store.get_entry(&cid("c"), &key, ReadAt::Latest).await.unwrap();
            put(n, entry.map(|e| e.revision)).await.unwrap();
        }
        let (written, trips) = round_trips(&store, put(10, None)).await;
        assert!(written.unwrap().succeeded);
        assert_eq!(trips, 2, "a put: lock and read, then write and commit");

        let (read, trips) = round_trips(&store, store.get_entry(&cid("c"), &key, ReadAt::Latest)).await;
        let entry = read.unwrap().0.unwrap();
        assert_eq!((entry.value.clone(), trips), (json!(10), 1), "a read of one entry: one round trip");

        let (swapped, trips) = round_trips(&store, put(11, Some(entry.revision))).await;
        assert!(swapped.unwrap().succeeded);
        assert_eq!(trips, 2, "a compare-and-swap");
        let (refused, trips) = round_trips(&store, put(12, Some(entry.revision))).await;
        assert!(!refused.unwrap().succeeded, "the compared revision is stale");
        // Settling a stale write also reads the version it was based on and
        // the trust of the agents involved (one round trip each).
        assert_eq!(trips, 5, "a refused compare-and-swap");
        let (entry, _) = store.get_entry(&cid("c"), &key, ReadAt::Latest).await.unwrap();
        assert_eq!(entry.unwrap().value, json!(11));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_in_a_batch_changes_nothing_and_the_others_commit() {
        let store = store().await;
        store.create_context(serde_json::from_value(json!({"id": "b"})).unwrap(), "a").await.unwrap();
        let put = |key: &str| WriteOp::Txn {
            id: cid("b"),
            txn: txn(json!({"success": [{"op": "put", "key": key, "value": key}]})),
            author: "a".into(),
        };
        // The middle job fails after taking the lock (revision 99 is not
        // there to roll back to).
        let failing = WriteOp::Rollback { id: cid("b"), to: 99, author: "a".into() };
        let ((results, published), trips) =
            round_trips(&store, async { store.shared.run_batch(vec![put("one"), failing, put("two")]).await.unwrap() })
                .await;
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        let revisions: Vec<u64> = published.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, [2, 3], "the failed job took no revision");
        // One round trip per job, one for the commit (and, on a connection
        // new to them, one to prepare the statements).
        assert!(trips <= 5, "{trips} round trips");
        let info = store.get_context(&cid("b")).await.unwrap();
        assert_eq!(info.revision, 3);
        for key in ["one", "two"] {
            let (entry, _) = store.get_entry(&cid("b"), &EntryKey::parse(key).unwrap(), ReadAt::Latest).await.unwrap();
            assert_eq!(entry.unwrap().value, json!(key));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_pipelined_statement_fails_the_commit_and_nothing_is_written() {
        let store = store().await;
        let session = Session::new(store.shared.pool.get().await.unwrap());
        session.client().batch_execute("CREATE TABLE t (n INTEGER PRIMARY KEY)").await.unwrap();
        let mut pipe = Pipeline::begin(session.client(), &store.shared.stats, "BEGIN");
        pipe.push("INSERT INTO t VALUES ($1)", vec![Box::new(1i32)]);
        // A duplicate key: the transaction is aborted, and the server then
        // answers COMMIT with a rollback, not an error.
        pipe.push("INSERT INTO t VALUES ($1)", vec![Box::new(1i32)]);
        pipe.push("INSERT INTO t VALUES ($1)", vec![Box::new(2i32)]);
        let err = pipe.commit().await.unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        assert!(pipe.broken().is_some());
        assert!(pipe.flush(&[]).await.is_err(), "a broken pipeline sends nothing more");
        drop(pipe);
        session.set_open(false);
        let rows = session.client().query("SELECT count(*) FROM t", &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 0, "nothing of the transaction was committed");
    }
}
