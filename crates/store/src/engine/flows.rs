//! Operations made of several steps, each step its own transaction: a
//! coordination write that frees the locks of an agent it removes, the
//! sweeper's pass, and expiry and compaction over many contexts.

use ctxmesh_core::Timestamp;
use ctxmesh_core::error::Error;
use ctxmesh_core::ids::ContextId;

use super::backend::{Backend, output, unexpected_output};
use crate::coord::{
    CoordOp, CoordOutput, CoordWrite, DueAt, ExpireAgent, ExpireHandoff, ExpireLock, HeldLocks, Request, SweepReport,
};
use crate::error::{Result, StoreError};
use crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};
use crate::types::Compaction;

/// Runs one coordination request on `backend` as one operation, typed
/// (a write that removes an agent leaves its locks to [`coord_write`]).
async fn run<R: Request>(backend: &impl Backend, request: R) -> Result<R::Output> {
    let out = match request.into() {
        CoordOp::Write(op) => output!(backend.write(WriteOp::Coord(op)).await, WriteOutput::Coord)?,
        CoordOp::Read(op) => output!(backend.read(ReadOp::Coord(op)).await, ReadOutput::Coord)?,
    };
    R::output(out).ok_or_else(unexpected_output)
}

/// Runs a coordination write; when it removes or disconnects an agent,
/// then frees the locks it held (each in the transaction of its context,
/// which the lock order puts before the agent's).
pub(super) async fn coord_write(backend: &impl Backend, op: CoordWrite) -> Result<CoordOutput> {
    let leaving = match &op {
        CoordWrite::Unregister(r) => Some(r.id.clone()),
        CoordWrite::ExpireAgent(r) => Some(r.id.clone()),
        _ => None,
    };
    let out = output!(backend.write(WriteOp::Coord(op)).await, WriteOutput::Coord)?;
    if let Some(agent) = leaving
        && !matches!(out, CoordOutput::Unit)
    {
        release_locks_of(backend, &agent).await?;
    }
    Ok(out)
}

async fn release_locks_of(backend: &impl Backend, agent: &str) -> Result<u64> {
    let mut released = 0;
    for lock in run(backend, HeldLocks { agent: agent.to_owned() }).await? {
        let now = backend.clock().now();
        if run(backend, ExpireLock { ctx: lock.context, name: lock.name, now }).await?.is_some() {
            released += 1;
        }
    }
    Ok(released)
}

/// One pass of the sweeper: lapsed leases, expired locks, handoffs past
/// their deadline. Each item is its own transaction; an item deleted
/// meanwhile is skipped.
pub(super) async fn sweep(backend: &impl Backend, now: Timestamp) -> Result<SweepReport> {
    let due = run(backend, DueAt { now }).await?;
    let mut report = SweepReport::default();
    for id in due.agents {
        let leaving = id.clone();
        let expired = coord_write(backend, CoordWrite::ExpireAgent(ExpireAgent { id, now })).await;
        if skip_missing(expired.map(|out| ExpireAgent::output(out).flatten()))?.flatten().is_some() {
            report.agents_disconnected += 1;
            tracing::info!(agent = %leaving, "agent lease lapsed: disconnected, locks released");
        }
    }
    for (ctx, name) in due.locks {
        if skip_missing(run(backend, ExpireLock { ctx, name, now }).await)?.flatten().is_some() {
            report.locks_expired += 1;
        }
    }
    for id in due.handoffs {
        if skip_missing(run(backend, ExpireHandoff { id, now }).await)?.flatten().is_some() {
            report.handoffs_expired += 1;
        }
    }
    Ok(report)
}

/// `None` for an item deleted since it was listed.
fn skip_missing<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::Core(Error::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes every expired entry, one revision (and one transaction) per
/// context.
pub(super) async fn expire(backend: &impl Backend, now: Timestamp) -> Result<u64> {
    let ids = output!(backend.read(ReadOp::ExpiredContexts { now }).await, ReadOutput::Ids)?;
    let mut removed = 0;
    for id in ids {
        let done = skip_missing(output!(backend.write(WriteOp::Expire { id, now }).await, WriteOutput::Count))?;
        removed += done.unwrap_or(0);
    }
    Ok(removed)
}

/// Applies retention policies to one context, or to every context that
/// has one (skipping those deleted meanwhile).
pub(super) async fn compact(backend: &impl Backend, id: Option<&ContextId>, now: Timestamp) -> Result<Vec<Compaction>> {
    let ids = match id {
        Some(id) => vec![id.as_str().to_owned()],
        None => output!(backend.read(ReadOp::RetainedContexts).await, ReadOutput::Ids)?,
    };
    let mut done = Vec::new();
    for ctx in ids {
        let result = output!(backend.write(WriteOp::Compact { id: ctx, now }).await, WriteOutput::Compaction);
        match result {
            Ok(c) => done.extend(c),
            Err(StoreError::Core(Error::NotFound { .. })) if id.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
