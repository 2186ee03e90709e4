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

use crate::clock::{Clock, SharedClock};
use crate::engine::Backend;
use crate::error::{Result, StoreError};
use crate::faults::{crashpoint, failpoint};
use crate::notify::{Committed, Hub};
use crate::ops::precheck::Prechecks;
use crate::ops::{self, ReadOp, ReadOutput, WriteOp, WriteOutput};
use crate::types::Durability;

mod listen;
mod pool;
mod schema;
mod tx;

use listen::Relay;
use pool::pool_error;
use tx::PgTx;

/// Most writes to one context committed in one transaction.
const MAX_BATCH: usize = 256;

/// Settings of the PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// A `postgres://` URL (libpq style parameters such as
    /// `options=-csearch_path%3Dname` are honoured).
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
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutput>>,
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
        let pg_config: tokio_postgres::Config =
            config.url.parse().map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
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
        };
        Ok(PostgresStore { shared: Arc::new(shared), listener })
    }
}

#[async_trait::async_trait]
impl Backend for PostgresStore {
    async fn write(&self, op: WriteOp) -> Result<WriteOutput> {
        let (reply, answer) = oneshot::channel();
        self.shared.enqueue(Job { op, reply });
        answer.await.map_err(|_| StoreError::Unavailable("the write was abandoned".into()))?
    }

    async fn read(&self, op: ReadOp) -> Result<ReadOutput> {
        let mut client = self.shared.pool.get().await.map_err(pool_error)?;
        // One snapshot for every query of the read.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let result = ops::read(&mut PgTx::new(&tx), self.shared.checks.clock.as_ref(), op).await;
        tx.commit().await?;
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
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        if self.durability == Durability::Relaxed {
            tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
        }
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
                tx.batch_execute("SAVEPOINT job").await?;
            }
            let mut job_tx = PgTx::new(&tx);
            let result = ops::write(&mut job_tx, env, &op).await;
            match (&result, alone) {
                (Ok(_), false) => {
                    published.append(&mut job_tx.published);
                    tx.batch_execute("RELEASE job").await?;
                }
                (Ok(_), true) => published.append(&mut job_tx.published),
                (Err(_), false) => tx.batch_execute("ROLLBACK TO job; RELEASE job").await?,
                (Err(_), true) => {
                    tx.rollback().await?;
                    return Ok((vec![result], Vec::new()));
                }
            }
            results.push(result);
        }
        let payloads: Vec<String> = published.iter().map(listen::payload).collect();
        if !payloads.is_empty() {
            // Delivered to every listening node when (and only if) the
            // transaction commits, in commit order.
            tx.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", &[&self.relay.channel(), &payloads])
                .await?;
        }
        failpoint("postgres::commit::before")?;
        let started = Instant::now();
        tx.commit().await?;
        metrics::histogram!("ctxmesh_fsync_seconds").record(started.elapsed().as_secs_f64());
        crashpoint("postgres::commit::after");
        Ok((results, published))
    }
}
