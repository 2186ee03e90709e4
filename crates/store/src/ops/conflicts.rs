//! Conflicts in storage: what a stale write's policy needs read before it
//! is planned (the version the writer was based on, the trust of the
//! agents involved), the conflict records a plan keeps, and resolutions.

use ctxmesh_core::Entry;
use ctxmesh_core::agent::Agent;
use ctxmesh_core::conflict::{Candidate, Choice, Conflict, ConflictStatus, Outcome, Proposed, Resolution, Severity};
use ctxmesh_core::context::Strategy;
use ctxmesh_core::error::{Error, ErrorCode};
use ctxmesh_core::history::commit_kinds;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::txn::{BaseRef, ChangeKind, PlanBuilder, Snapshot, TxnRequest, TxnScope, check_value};

use super::env::{Env, apply_plan};
use crate::clock::Clock;
use crate::coord::*;
use crate::error::Result;
use crate::objects::{AGENT, CONFLICT, conflict_id, decode};
use crate::tx::{ObjectFilter, Tx};

/// Loads into `snapshot` what settling the stale writes of `txn` needs:
/// each one's base version (when history still has it) and the trust of
/// `author` and of the current versions' authors.
pub(crate) async fn prepare(
    tx: &mut impl Tx,
    ctx: &str,
    txn: &TxnRequest,
    snapshot: &mut Snapshot,
    author: &str,
) -> Result<()> {
    let Some(stale) = txn.stale_writes(snapshot) else { return Ok(()) };
    let mut agents = vec![author.to_owned()];
    for s in stale {
        if let Some(base) = base_version(tx, ctx, &s.key, &s.base).await? {
            snapshot.bases.insert(s.key.clone(), base);
        }
        if let Some(current) = snapshot.entries.get(&s.key) {
            agents.push(current.author.clone());
        }
    }
    for id in agents {
        if let Some(object) = tx.object(AGENT, &id, false).await? {
            let agent: Agent = decode(&object)?;
            snapshot.trust.insert(id, agent.trust);
        }
    }
    Ok(())
}

/// The version of `key` that `base` names: `Some(None)` when the entry
/// was absent then, `None` when history does not have it (any more).
async fn base_version(tx: &mut impl Tx, ctx: &str, key: &str, base: &BaseRef) -> Result<Option<Option<Entry>>> {
    match base {
        BaseRef::Revision(0) | BaseRef::Version(0) => Ok(Some(None)),
        BaseRef::VClock(vc) if vc.is_empty() => Ok(Some(None)),
        BaseRef::Revision(r) => Ok(tx.entry_at(ctx, key, *r).await?.filter(|e| e.revision == *r).map(Some)),
        BaseRef::Version(v) => find_version(tx, ctx, key, |e| e.version == *v).await,
        BaseRef::VClock(vc) => find_version(tx, ctx, key, |e| &e.vclock == vc).await,
    }
}

/// The newest version of `key` that `wanted` accepts, searching history
/// from the newest.
async fn find_version(
    tx: &mut impl Tx,
    ctx: &str,
    key: &str,
    wanted: impl Fn(&Entry) -> bool,
) -> Result<Option<Option<Entry>>> {
    const PAGE: usize = 256;
    let mut before = i64::MAX as u64;
    loop {
        let page = tx.entry_versions(ctx, key, before, PAGE).await?;
        if let Some(found) = page.iter().filter_map(|v| v.entry.as_ref()).find(|e| wanted(e)) {
            return Ok(Some(Some(found.clone())));
        }
        match page.last() {
            Some(last) if page.len() == PAGE => before = last.revision,
            _ => return Ok(None),
        }
    }
}

/// Conflicts of a context with `status` (all when `None`), by id after
/// `after`.
pub(crate) async fn list(
    tx: &mut impl Tx,
    ctx: &ContextId,
    status: Option<ConflictStatus>,
    after: &str,
    limit: usize,
) -> Result<Vec<Conflict>> {
    tx.context(ctx.as_str()).await?;
    let filter = ObjectFilter {
        ctx: Some(ctx.as_str().to_owned()),
        state: status.map(|s| s.as_str().to_owned()),
        ..Default::default()
    };
    let after = if after.is_empty() { String::new() } else { conflict_id(ctx.as_str(), after) };
    tx.objects(CONFLICT, &filter, &after, limit).await?.iter().map(decode).collect()
}

/// One conflict.
pub(crate) async fn get(tx: &mut impl Tx, ctx: &ContextId, id: &str, lock: bool) -> Result<Conflict> {
    match tx.object(CONFLICT, &conflict_id(ctx.as_str(), id), lock).await? {
        Some(o) => decode(&o),
        None => Err(Error::not_found(format!("conflict {id:?} of context {:?}", ctx.as_str())).into()),
    }
}

/// Records a consensus on `key` that fell short as a pending conflict (one
/// revision: the record and its `conflict.detected`); the leading
/// candidate is the proposed value.
async fn record_escalation(
    tx: &mut impl Tx,
    env: Env<'_>,
    ctx: &ContextId,
    key: &str,
    author: &str,
    candidates: Vec<Candidate>,
) -> Result<Conflict> {
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let at = env.now().max(info.updated_at);
    let current = tx.entry_latest(&info.id, key, at).await?;
    let mut plan = PlanBuilder::new(&info, author, at, commit_kinds::TXN);
    let meta = current.as_ref().map(|c| c.meta.clone()).unwrap_or_default();
    let leading = candidates.first().map(|c| c.value.clone()).unwrap_or_default();
    let conflict = Conflict {
        id: plan.next_conflict_id(),
        context: info.id.clone(),
        key: key.to_owned(),
        strategy: Strategy::Manual,
        severity: Severity::High,
        status: ConflictStatus::Pending,
        outcome: Outcome::Pending,
        detected_revision: plan.revision(),
        detected_at: at,
        author: author.to_owned(),
        base_revision: None,
        current_revision: current.as_ref().map_or(0, |c| c.revision),
        current_author: current.as_ref().map(|c| c.author.clone()),
        fields: Vec::new(),
        tags: meta.tags.clone(),
        confidential: meta.confidential,
        proposed: Some(Proposed { value: leading, deleted: false, meta }),
        resolution: None,
        candidates,
    };
    plan.conflict(conflict.clone());
    apply_plan(tx, &mut info, plan.finish()).await?;
    Ok(conflict)
}

/// What a resolution needs besides the transaction.
struct Resolve {
    pub(crate) ctx: ContextId,
    pub(crate) id: String,
    pub(crate) choice: Choice,
    pub(crate) if_match: Option<u64>,
    pub(crate) author: String,
    pub(crate) scope: Option<TxnScope>,
}

/// Resolves a pending conflict in one revision: the chosen value is
/// written (unless the current one is kept), the record is marked
/// resolved, and `conflict.resolved` is logged. Writing needs the entry to
/// be at the revision the resolution is based on.
async fn resolve(tx: &mut impl Tx, env: Env<'_>, r: Resolve) -> Result<Conflict> {
    let mut ctx = tx.lock_context(r.ctx.as_str()).await?;
    let mut conflict = get(tx, &r.ctx, &r.id, true).await?;
    if conflict.status != ConflictStatus::Pending {
        let message = format!("conflict {:?} is already resolved", r.id);
        return Err(Error::Conflict { code: ErrorCode::InvalidTransition, message }.into());
    }
    let at = env.now().max(ctx.updated_at);
    let key = conflict.key.clone();
    let current = tx.entry_latest(&ctx.id, &key, at).await?;
    let mut plan = PlanBuilder::new(&ctx, &r.author, at, commit_kinds::TXN);
    let proposed = conflict.proposed.clone();
    let write = match r.choice {
        Choice::Current => None,
        Choice::Proposed => match proposed {
            Some(p) if p.deleted => Some(None),
            Some(p) => Some(Some((p.value, p.meta))),
            None => return Err(Error::invalid("choose", "this conflict kept no write aside").into()),
        },
        Choice::Value(v) => {
            let meta =
                proposed.map(|p| p.meta).or_else(|| current.as_ref().map(|c| c.meta.clone())).unwrap_or_default();
            Some(Some((v, meta)))
        }
    };
    let chose = match (&write, &conflict.proposed) {
        (None, _) => "current",
        (Some(Some((v, _))), Some(p)) if !p.deleted && *v == p.value => "proposed",
        (Some(None), _) => "proposed",
        _ => "value",
    };
    if let Some(write) = write {
        let expected = r.if_match.unwrap_or(conflict.current_revision);
        let actual = current.as_ref().map_or(0, |c| c.revision);
        if actual != expected {
            let readable = |e: &Entry| r.scope.as_ref().is_none_or(|s| s.read.permits_entry(e));
            return Err(Error::PreconditionFailed {
                key,
                current_revision: current.as_ref().map(|c| c.revision),
                current: current.filter(|e| readable(e)).map(Box::new),
                reason: Some(format!("the resolution is based on revision {expected}; resolve again")),
                fields: Vec::new(),
            }
            .into());
        }
        if let Some(scope) = &r.scope {
            scope.check_write(&key, current.as_ref(), write.as_ref().map(|(_, m)| m))?;
        }
        match write {
            Some((value, meta)) => {
                let compiled = env.schemas.get(&ctx)?;
                check_value(env.limits, &compiled, &key, &value)?;
                plan.put(&key, current.as_ref(), value, meta);
            }
            None => {
                if let Some(current) = &current {
                    plan.remove(current, ChangeKind::Deleted);
                }
            }
        }
    }
    conflict.status = ConflictStatus::Resolved;
    conflict.resolution =
        Some(Resolution { by: r.author.clone(), at, revision: plan.revision(), chose: chose.to_owned() });
    plan.conflict(conflict.clone());
    apply_plan(tx, &mut ctx, plan.finish()).await?;
    Ok(conflict)
}

pub(crate) async fn escalate(
    tx: &mut impl Tx,
    env: Env<'_>,
    Escalate { ctx, key, author, candidates }: Escalate,
) -> Result<CoordOutput> {
    let conflict = record_escalation(tx, env, &ctx, &key, &author, candidates).await?;
    Ok(CoordOutput::Conflict(Box::new(conflict)))
}

pub(crate) async fn resolve_conflict(
    tx: &mut impl Tx,
    env: Env<'_>,
    ResolveConflict { ctx, id, resolution, if_match, author, scope }: ResolveConflict,
) -> Result<CoordOutput> {
    let request = Resolve { ctx, id, choice: resolution, if_match, author, scope };
    let conflict = resolve(tx, env, request).await?;
    Ok(CoordOutput::Conflict(Box::new(conflict)))
}

pub(crate) async fn list_conflicts(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ListConflicts { ctx, status, after, limit }: ListConflicts,
) -> Result<CoordOutput> {
    Ok(CoordOutput::Conflicts(list(tx, &ctx, status, &after, limit).await?))
}

pub(crate) async fn get_conflict(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    GetConflict { ctx, id }: GetConflict,
) -> Result<CoordOutput> {
    Ok(CoordOutput::Conflict(Box::new(get(tx, &ctx, &id, false).await?)))
}
