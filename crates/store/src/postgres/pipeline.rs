//! Statements sent to PostgreSQL together, so that a transaction costs
//! about one round trip to the database per step that needs an answer, not
//! one per statement.
//!
//! A [`Pipeline`] buffers the statements whose answer nobody waits for
//! (`BEGIN`, `SAVEPOINT`, the rows of a revision, `COMMIT`...) and sends
//! them, in order, ahead of the next statement that must answer (a read, or
//! the end of the transaction): tokio-postgres pipelines the requests of
//! futures polled together on one connection, and the server runs them one
//! after the other, as if they had been sent one at a time.
//!
//! A buffered statement that fails aborts the transaction; the statements
//! after it fail too (the server refuses them until the transaction ends),
//! and `COMMIT` then rolls back without an error. So the pipeline checks
//! every answer: the first buffered statement that failed makes the
//! pipeline broken, and a broken pipeline's transaction is never reported
//! as committed.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;

use deadpool_postgres::{ClientWrapper, Object};
use futures::future::{MaybeDone, maybe_done};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{Result, StoreError};

/// A parameter of a buffered statement, owned until it is sent.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Round trips and statements sent to the database by this node, for the
/// metrics and for the tests that count them.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Pipelined groups of statements sent.
    round_trips: AtomicU64,
    /// Statements sent.
    statements: AtomicU64,
}

impl Stats {
    /// Round trips so far (a pipelined group of statements counts once).
    #[cfg(test)]
    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn count(&self, statements: usize) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.statements.fetch_add(statements as u64, Ordering::Relaxed);
        metrics::counter!("ctxmesh_postgres_round_trips_total").increment(1);
        metrics::counter!("ctxmesh_postgres_statements_total").increment(statements as u64);
    }
}

/// A statement waiting to be sent.
enum Pending {
    /// Sent with the simple query protocol (transaction control).
    Simple(Cow<'static, str>),
    /// A prepared statement and its parameters.
    Statement { sql: Cow<'static, str>, params: Vec<Param> },
}

/// The statement that ends a flush, whose answer the caller wants.
pub(crate) enum Tail<'a> {
    /// Its rows.
    Query(&'a str, &'a [&'a (dyn ToSql + Sync)]),
    /// The number of rows it changed.
    Execute(&'a str, &'a [&'a (dyn ToSql + Sync)]),
}

/// What a tail answered.
pub(crate) enum Answer {
    Rows(Vec<Row>),
    Count(u64),
}

/// What one pipelined statement answered.
enum Outcome {
    Done,
    Answer(Answer),
}

type Sent<'a> = Pin<Box<dyn Future<Output = std::result::Result<Outcome, tokio_postgres::Error>> + Send + 'a>>;

/// The statements of one transaction on one connection, buffered until an
/// answer is needed.
pub(crate) struct Pipeline<'c> {
    client: &'c ClientWrapper,
    stats: &'c Stats,
    pending: Vec<Pending>,
    /// Whether anything was sent (the transaction is open on the server).
    sent: bool,
    /// The error of the buffered statement that failed, if one did: the
    /// transaction is aborted.
    broken: Option<String>,
}

impl<'c> Pipeline<'c> {
    /// A pipeline whose first statement (sent with the first flush) is
    /// `begin`.
    pub(crate) fn begin(client: &'c ClientWrapper, stats: &'c Stats, begin: &'static str) -> Self {
        Pipeline { client, stats, pending: vec![Pending::Simple(begin.into())], sent: false, broken: None }
    }

    /// Buffers a transaction control statement (no parameters).
    pub(crate) fn push_simple(&mut self, sql: &'static str) {
        self.pending.push(Pending::Simple(sql.into()));
    }

    /// Buffers a statement whose answer is not needed.
    pub(crate) fn push(&mut self, sql: impl Into<Cow<'static, str>>, params: Vec<Param>) {
        self.pending.push(Pending::Statement { sql: sql.into(), params });
    }

    /// The error that broke the transaction, if a buffered statement failed.
    pub(crate) fn broken(&self) -> Option<StoreError> {
        self.broken.as_ref().map(|e| StoreError::Backend(format!("a pipelined statement failed: {e}")))
    }

    /// Whether anything was sent: a transaction is open on the server.
    pub(crate) fn sent(&self) -> bool {
        self.sent
    }

    /// Sends what is buffered, then `tails`, in one round trip; the
    /// answers of the tails, in order. A failed buffered statement breaks
    /// the pipeline and is the error; otherwise the first failed tail is.
    pub(crate) async fn flush(&mut self, tails: &[Tail<'_>]) -> Result<Vec<Answer>> {
        if let Some(e) = self.broken() {
            return Err(e);
        }
        let pending = std::mem::take(&mut self.pending);
        let client = self.client;
        // Statements are prepared first (concurrently, and only when this
        // connection has not prepared them yet): a request waiting for its
        // statement would be sent after those behind it.
        let mut sqls: Vec<&str> = Vec::new();
        for p in &pending {
            if let Pending::Statement { sql, .. } = p {
                sqls.push(sql);
            }
        }
        for tail in tails {
            match tail {
                Tail::Query(sql, _) | Tail::Execute(sql, _) => sqls.push(sql),
            }
        }
        let prepared = futures::future::try_join_all(sqls.iter().map(|sql| client.prepare_cached(sql))).await;
        let mut prepared = match prepared {
            Ok(prepared) => prepared.into_iter(),
            Err(e) => {
                // The buffered statements are lost with the error.
                if !pending.is_empty() {
                    self.broken = Some(e.to_string());
                }
                return Err(e.into());
            }
        };
        let mut futures: Vec<Sent<'_>> = Vec::with_capacity(pending.len() + tails.len());
        let buffered = pending.len();
        for p in pending {
            futures.push(match p {
                Pending::Simple(sql) => {
                    Box::pin(async move { client.batch_execute(&sql).await.map(|_| Outcome::Done) })
                }
                Pending::Statement { params, .. } => {
                    let statement = prepared.next().expect("one prepared statement per buffered statement");
                    Box::pin(async move {
                        let refs: Vec<&(dyn ToSql + Sync)> =
                            params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
                        client.execute(&statement, &refs).await.map(|_| Outcome::Done)
                    })
                }
            });
        }
        for tail in tails {
            let statement = prepared.next().expect("one prepared statement per tail");
            futures.push(match *tail {
                Tail::Query(_, params) => Box::pin(async move {
                    client.query(&statement, params).await.map(|rows| Outcome::Answer(Answer::Rows(rows)))
                }),
                Tail::Execute(_, params) => Box::pin(async move {
                    client.execute(&statement, params).await.map(|n| Outcome::Answer(Answer::Count(n)))
                }),
            });
        }
        self.sent = true;
        self.stats.count(futures.len());
        let outcomes = in_order(futures).await;
        let mut answers = Vec::with_capacity(tails.len());
        let mut failed = None;
        for (n, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(Outcome::Answer(answer)) => answers.push(answer),
                Ok(Outcome::Done) => {}
                Err(e) if n < buffered => {
                    if self.broken.is_none() {
                        self.broken = Some(e.to_string());
                        failed = Some(e);
                    }
                }
                Err(e) => {
                    if failed.is_none() {
                        failed = Some(e);
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(answers),
        }
    }

    /// Sends what is buffered and `COMMIT` in one round trip; `Ok` only
    /// when every statement succeeded and the transaction committed.
    pub(crate) async fn commit(&mut self) -> Result<()> {
        self.push_simple("COMMIT");
        self.flush(&[]).await?;
        Ok(())
    }

    /// Ends the transaction without committing: buffered statements are
    /// dropped; what was sent is rolled back.
    pub(crate) async fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        if self.sent {
            self.client.batch_execute("ROLLBACK").await?;
            self.stats.count(1);
        }
        Ok(())
    }
}

/// Polls `futures` in their order until all are done: each sends its
/// request on its first poll, so the requests leave in this order.
async fn in_order<'a>(futures: Vec<Sent<'a>>) -> Vec<std::result::Result<Outcome, tokio_postgres::Error>> {
    let mut slots: Vec<MaybeDone<Sent<'a>>> = futures.into_iter().map(maybe_done).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in slots.iter_mut() {
            done &= Pin::new(slot).poll(cx).is_ready();
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    slots.iter_mut().map(|slot| Pin::new(slot).take_output().expect("polled to completion")).collect()
}

/// A pooled connection that may be inside a transaction: if it is dropped
/// there (a panic, a cancelled read), the connection is closed rather than
/// returned to the pool, and the server rolls the transaction back.
pub(crate) struct Session {
    client: Option<Object>,
    open: AtomicBool,
}

impl Session {
    /// A connection taken from the pool, marked as inside a transaction
    /// until [`Session::set_open`] says otherwise.
    pub(crate) fn new(client: Object) -> Self {
        Session { client: Some(client), open: AtomicBool::new(true) }
    }

    /// The connection.
    pub(crate) fn client(&self) -> &ClientWrapper {
        self.client.as_ref().expect("held until dropped")
    }

    /// Marks the connection as inside a transaction (or not any more).
    pub(crate) fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Ends the read-only transaction the connection is in without making
    /// the caller wait: `COMMIT` is sent from a task of its own, and the
    /// connection goes back to the pool once it is answered.
    pub(crate) fn end_read_in_background(mut self) {
        if !*self.open.get_mut() {
            return;
        }
        let Some(client) = self.client.take() else { return };
        tokio::spawn(async move {
            if client.batch_execute("COMMIT").await.is_err() {
                drop(Object::take(client));
            }
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if *self.open.get_mut()
            && let Some(client) = self.client.take()
        {
            drop(Object::take(client));
        }
    }
}
