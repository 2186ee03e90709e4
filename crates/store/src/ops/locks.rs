//! Locks with fencing tokens: acquire, release, refresh, expiry, and the
//! fence check of a fenced write.

use ctxmesh_core::agent::{Agent, AgentStatus};
use ctxmesh_core::coord::{Lock, check_ttl, parse_lock_name};
use ctxmesh_core::error::{Error, ErrorCode};
use ctxmesh_core::event::types;
use serde_json::json;

use super::env::{Env, SYSTEM_AGENT};
use super::streams::log_event;
use crate::clock::Clock;
use crate::coord::*;
use crate::error::Result;
use crate::objects::*;
use crate::tx::{ObjectFilter, Tx};

pub(crate) async fn acquire(
    tx: &mut impl Tx,
    env: Env<'_>,
    Acquire { ctx, name, agent: who, ttl_ms }: Acquire,
) -> Result<CoordOutput> {
    parse_lock_name(&name)?;
    check_ttl(ttl_ms)?;
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let holder = registered(tx, &who, "a lock's holder must be: its locks end with its lease").await?;
    if holder.status == AgentStatus::Disconnected {
        return Err(Error::Conflict {
            code: ErrorCode::Disconnected,
            message: format!("agent {who:?} is disconnected: send a heartbeat first"),
        }
        .into());
    }
    let mut lock = match tx.object(LOCK, &lock_id(ctx.as_str(), &name), true).await? {
        Some(o) => decode(&o)?,
        None => Lock::new(ctx.as_str(), &name),
    };
    let at = env.now();
    let expired_holder = lock.holder.clone().filter(|_| lock.held_by(at).is_none());
    if !lock.acquire(&who, at, ttl_ms) {
        return Ok(CoordOutput::Lock { acquired: false, lock });
    }
    if let Some(previous) = expired_holder.filter(|p| p != &who) {
        // The TTL ran out before the sweeper saw it: say so first.
        let data = json!({ "name": name, "holder": previous, "fencing_token": lock.fencing_token - 1 });
        log_event(tx, env, &mut info, types::LOCK_EXPIRED, SYSTEM_AGENT, None, data).await?;
    }
    tx.put_object(&lock_object(&lock)?).await?;
    let data = json!({
        "name": name, "holder": who, "lock_id": lock.lock_id,
        "fencing_token": lock.fencing_token, "expires_at": lock.expires_at,
    });
    log_event(tx, env, &mut info, types::LOCK_ACQUIRED, &who, None, data).await?;
    Ok(CoordOutput::Lock { acquired: true, lock })
}

pub(crate) async fn release(
    tx: &mut impl Tx,
    env: Env<'_>,
    Release { ctx, name, agent: who, lock_id: id }: Release,
) -> Result<CoordOutput> {
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let mut lock: Lock = load(tx, LOCK, &lock_id(ctx.as_str(), &name), true).await?;
    lock.check_holder(&who, id.as_deref(), env.now())?;
    let token = lock.fencing_token;
    lock.release();
    tx.put_object(&lock_object(&lock)?).await?;
    let data = json!({ "name": name, "holder": who, "fencing_token": token });
    log_event(tx, env, &mut info, types::LOCK_RELEASED, &who, None, data).await?;
    Ok(CoordOutput::Lock { acquired: false, lock })
}

pub(crate) async fn refresh(
    tx: &mut impl Tx,
    env: Env<'_>,
    Refresh { ctx, name, agent: who, lock_id: id, ttl_ms }: Refresh,
) -> Result<CoordOutput> {
    check_ttl(ttl_ms)?;
    tx.lock_context(ctx.as_str()).await?;
    let mut lock: Lock = load(tx, LOCK, &lock_id(ctx.as_str(), &name), true).await?;
    let at = env.now();
    lock.check_holder(&who, id.as_deref(), at)?;
    lock.refresh(at, ttl_ms);
    tx.put_object(&lock_object(&lock)?).await?;
    Ok(CoordOutput::Lock { acquired: true, lock })
}

pub(crate) async fn expire_lock(
    tx: &mut impl Tx,
    env: Env<'_>,
    ExpireLock { ctx, name, now }: ExpireLock,
) -> Result<CoordOutput> {
    let mut info = tx.lock_context(&ctx).await?;
    let Some(object) = tx.object(LOCK, &lock_id(&ctx, &name), true).await? else {
        return Ok(CoordOutput::Unit);
    };
    let mut lock: Lock = decode(&object)?;
    let Some(holder) = lock.holder.clone() else { return Ok(CoordOutput::Unit) };
    // Its TTL ran out, or its holder's lease did (or it left).
    let holder_gone = match tx.object(AGENT, &holder, false).await? {
        Some(o) => decode::<Agent>(&o)?.status == AgentStatus::Disconnected,
        None => true,
    };
    if lock.held_by(now).is_some() && !holder_gone {
        return Ok(CoordOutput::Unit); // refreshed meanwhile
    }
    lock.release();
    tx.put_object(&lock_object(&lock)?).await?;
    let data = json!({
        "name": name, "holder": holder, "fencing_token": lock.fencing_token,
        "reason": if holder_gone { "holder disconnected" } else { "ttl" },
    });
    log_event(tx, env, &mut info, types::LOCK_EXPIRED, SYSTEM_AGENT, None, data).await?;
    Ok(CoordOutput::Lock { acquired: false, lock })
}

pub(crate) async fn get_lock(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    GetLock { ctx, name }: GetLock,
) -> Result<CoordOutput> {
    parse_lock_name(&name)?;
    tx.context(ctx.as_str()).await?;
    let lock = match tx.object(LOCK, &lock_id(ctx.as_str(), &name), false).await? {
        Some(o) => decode(&o)?,
        None => Lock::new(ctx.as_str(), &name),
    };
    Ok(CoordOutput::Lock { acquired: false, lock })
}

pub(crate) async fn list_locks(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ListLocks { ctx }: ListLocks,
) -> Result<CoordOutput> {
    tx.context(ctx.as_str()).await?;
    let filter = ObjectFilter { ctx: Some(ctx.as_str().to_owned()), ..Default::default() };
    let objects = tx.objects(LOCK, &filter, "", usize::MAX >> 1).await?;
    Ok(CoordOutput::Locks(objects.iter().map(decode).collect::<Result<_>>()?))
}

pub(crate) async fn held_locks(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    HeldLocks { agent }: HeldLocks,
) -> Result<CoordOutput> {
    Ok(CoordOutput::Locks(locks_held_by(tx, &agent).await?))
}

/// Refuses a write fenced with a token older than the lock's latest.
pub(crate) async fn check_fence(tx: &mut impl Tx, ctx: &str, fence: &ctxmesh_core::coord::Fence) -> Result<()> {
    let lock = match tx.object(LOCK, &lock_id(ctx, &fence.lock), false).await? {
        Some(o) => decode(&o)?,
        None => Lock::new(ctx, &fence.lock),
    };
    Ok(lock.check_fence(fence.token)?)
}

/// The locks an agent holds, for releasing them when it disconnects.
pub(crate) async fn locks_held_by(tx: &mut impl Tx, agent: &str) -> Result<Vec<Lock>> {
    let filter = ObjectFilter { owner: Some(agent.to_owned()), ..Default::default() };
    tx.objects(LOCK, &filter, "", ALL).await?.iter().map(decode).collect()
}
