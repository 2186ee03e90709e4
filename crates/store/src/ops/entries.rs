//! Contexts and their entries, written once over [`Tx`] for every
//! backend: what each entry operation of [`crate::Store`] reads, plans and
//! writes inside one database transaction (creating, forking and deleting
//! contexts, transactions, rollback, expiry, compaction, reads at a
//! revision, history and diffs).

use std::collections::BTreeMap;

use ctxmesh_core::context::{ContextInfo, ContextPatch, ForkOrigin, NewContext, Strategy};
use ctxmesh_core::error::Error;
use ctxmesh_core::event::types;
use ctxmesh_core::history::{Commit, DiffChange, commit_kinds};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::{ChangeKind, Plan, PlanBuilder, PlanInput, Snapshot, TxnRequest, TxnResponse, plan_txn};
use ctxmesh_core::{Entry, EntryMeta, Event, Timestamp};
use serde_json::Value;

use super::env::{Env, SYSTEM_AGENT, apply_plan};
use super::{broadcast, conflicts, locks};
use crate::clock::Clock;
use crate::error::Result;
use crate::notify::{Committed, SharedEvent};
use crate::objects::ALL;
use crate::tx::Tx;
use crate::types::{Compaction, EntryPage, EntryVersion, HistoryQuery, ListQuery, NewEvent, ReadAt};

// ---- writes ----

pub(crate) async fn create_context(
    tx: &mut impl Tx,
    env: Env<'_>,
    new: NewContext,
    author: &str,
) -> Result<ContextInfo> {
    let (id, settings, lineage) = new.into_lineage();
    settings.validate()?;
    let now = env.now();
    let entries = inherited(tx, env, &settings, lineage.clone(), now).await?;
    let info = insert_context(tx, env, &id, settings, author, now, None, lineage.parent).await?;
    finish_create(tx, info, author, now, commit_kinds::CREATE, entries).await
}

/// The entries a new context takes from its parent: those `inherit` names
/// (all when it names none) that `isolate` does not, that the creator may
/// read, never confidential ones; then the `override` values on top (a
/// key that is not inherited is added). Each is checked against the new
/// context's schemas and limits.
async fn inherited(
    tx: &mut impl Tx,
    env: Env<'_>,
    settings: &ctxmesh_core::ContextSettings,
    lineage: ctxmesh_core::context::Lineage,
    now: Timestamp,
) -> Result<Vec<(String, Value, EntryMeta)>> {
    let Some(parent) = &lineage.parent else {
        if !lineage.overrides.is_empty() || !lineage.inherit.is_empty() || !lineage.isolate.is_empty() {
            return Err(Error::invalid("parent", "inherit, override and isolate need a parent").into());
        }
        return Ok(Vec::new());
    };
    let source = tx.context(parent.as_str()).await?;
    let readable = |e: &Entry| lineage.scope.as_ref().is_none_or(|s| s.permits_entry(e));
    let mut entries: BTreeMap<String, (Value, EntryMeta)> = tx
        .list_latest(&source.id, "", "", ALL, Some(now))
        .await?
        .into_iter()
        .filter(|e| !e.meta.confidential && lineage.takes(&e.key) && readable(e))
        .map(|e| (e.key, (e.value, e.meta)))
        .collect();
    for (key, value) in lineage.overrides {
        let key = EntryKey::parse(&key)?.into_string();
        let meta = entries.remove(&key).map(|(_, m)| m).unwrap_or_default();
        entries.insert(key, (value, meta));
    }
    let schemas = ctxmesh_core::schema::CompiledSchemas::compile(&settings.schemas)?;
    let count = entries.len() as u64;
    if count > env.limits.max_entries_per_context {
        let limit = env.limits.max_entries_per_context;
        return Err(Error::TooLarge { what: "inherited entries".into(), limit, actual: count }.into());
    }
    for (key, (value, _)) in &entries {
        ctxmesh_core::txn::check_value(env.limits, &schemas, key, value)?;
    }
    Ok(entries.into_iter().map(|(k, (v, m))| (k, v, m)).collect())
}

#[allow(clippy::too_many_arguments)] // the columns of a new context
async fn insert_context(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &ContextId,
    settings: ctxmesh_core::ContextSettings,
    author: &str,
    now: Timestamp,
    forked_from: Option<ForkOrigin>,
    parent: Option<ContextId>,
) -> Result<ContextInfo> {
    let info = ContextInfo {
        parent: parent.map(|p| p.as_str().to_owned()),
        forked_from,
        ..ContextInfo::new(id.as_str(), author, settings, now)
    };
    if !tx.insert_context(&info).await? {
        return Err(Error::AlreadyExists { what: format!("context {:?}", id.as_str()) }.into());
    }
    env.schemas.forget(id.as_str());
    Ok(info)
}

/// Commits revision 1 of a new context: `context.created` and `entries`.
async fn finish_create(
    tx: &mut impl Tx,
    mut info: ContextInfo,
    author: &str,
    now: Timestamp,
    kind: &str,
    entries: Vec<(String, Value, EntryMeta)>,
) -> Result<ContextInfo> {
    let mut plan = PlanBuilder::new(&info, author, now, kind);
    let data = serde_json::json!({ "forked_from": info.forked_from });
    plan.event(types::CONTEXT_CREATED, None, None, info.forked_from.is_some().then_some(data));
    for (key, value, meta) in entries {
        plan.put(&key, None, value, meta);
    }
    apply_plan(tx, &mut info, plan.finish()).await?;
    Ok(info)
}

pub(crate) async fn update_context(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &ContextId,
    patch: ContextPatch,
) -> Result<ContextInfo> {
    let mut info = tx.lock_context(id.as_str()).await?;
    patch.apply(&mut info.settings);
    info.settings.validate()?;
    let now = env.now().max(info.updated_at);
    tx.update_settings(id.as_str(), &info.settings, now).await?;
    info.updated_at = now;
    Ok(info)
}

pub(crate) async fn delete_context(tx: &mut impl Tx, env: Env<'_>, id: &ContextId) -> Result<()> {
    let ctx = tx.lock_context(id.as_str()).await?;
    // The log goes with the context; watchers get one last event.
    let mut plan = PlanBuilder::new(&ctx, SYSTEM_AGENT, env.now().max(ctx.updated_at), types::CONTEXT_DELETED);
    let event = plan.event(types::CONTEXT_DELETED, None, None, None);
    tx.published().push(Committed {
        context: ctx.id.clone(),
        revision: event.revision,
        events: vec![SharedEvent::new(event)],
        deleted: true,
    });
    tx.delete_context(id.as_str()).await?;
    tx.delete_context_objects(id.as_str()).await?;
    env.schemas.forget(id.as_str());
    Ok(())
}

pub(crate) async fn txn(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &ContextId,
    txn: &TxnRequest,
    author: &str,
) -> Result<TxnResponse> {
    txn.validate(env.limits)?;
    let mut ctx = tx.lock_context(id.as_str()).await?;
    if let Some(fence) = &txn.fence {
        locks::check_fence(tx, &ctx.id, fence).await?;
    }
    let now = env.now().max(ctx.updated_at);
    expire_in(tx, &mut ctx, now).await?;
    let (mut plan, response) = plan_on(tx, env, &ctx, txn, author, now).await?;
    if !plan.is_empty() {
        let inboxes = broadcast::broadcasts(tx, &ctx, &mut plan, author, now).await?;
        apply_plan(tx, &mut ctx, plan).await?;
        broadcast::deliver(tx, inboxes).await?;
    }
    Ok(response)
}

/// Plans `txn` on `ctx` as it is in `tx`: reads what it compares and
/// reads, and what a stale write's policy needs, then plans.
pub(crate) async fn plan_on(
    tx: &mut impl Tx,
    env: Env<'_>,
    ctx: &ContextInfo,
    txn: &TxnRequest,
    author: &str,
    now: Timestamp,
) -> Result<(Plan, TxnResponse)> {
    let schemas = env.schemas.get(ctx)?;
    let read_set = txn.read_set();
    let mut snapshot = Snapshot::default();
    for key in &read_set.keys {
        if let Some(e) = tx.entry_latest(&ctx.id, key, now).await? {
            snapshot.entries.insert(key.clone(), e);
        }
    }
    for prefix in &read_set.prefixes {
        for e in tx.list_latest(&ctx.id, prefix, "", ALL, Some(now)).await? {
            snapshot.entries.insert(e.key.clone(), e);
        }
    }
    conflicts::prepare(tx, &ctx.id, txn, &mut snapshot, author).await?;
    let input = PlanInput { context: ctx, schemas: &schemas, limits: env.limits, author, now };
    Ok(plan_txn(&input, &snapshot, txn)?)
}

/// The writer's answer to `txn` when it is refused on the committed state
/// and would change nothing (`None` when only the writer can tell), and
/// the context as read. See [`crate::precheck`].
pub(crate) async fn precheck(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &ContextId,
    txn: &TxnRequest,
    author: &str,
) -> Result<(Option<TxnResponse>, ContextInfo)> {
    txn.validate(env.limits)?;
    let ctx = tx.context(id.as_str()).await?;
    if let Some(fence) = &txn.fence {
        locks::check_fence(tx, &ctx.id, fence).await?;
    }
    let now = env.now().max(ctx.updated_at);
    Ok((refused_alone(plan_on(tx, env, &ctx, txn, author, now).await?), ctx))
}

/// The response of a plan that refuses the whole transaction with nothing
/// to write: then it is the writer's answer too.
fn refused_alone((plan, response): (Plan, TxnResponse)) -> Option<TxnResponse> {
    (!response.succeeded && plan.is_empty()).then_some(response)
}

/// [`precheck`] on a copy of the committed state held in memory: the
/// context and the live entries of `txn`'s read set (absent when not
/// there). Only where nothing else is needed: no fence to check, no
/// prefix to read, and every compared key under `reject` (the other
/// policies read history and the agents' trust).
pub(crate) fn precheck_in_memory(
    env: Env<'_>,
    ctx: &ContextInfo,
    entries: BTreeMap<String, Entry>,
    txn: &TxnRequest,
    author: &str,
) -> Option<TxnResponse> {
    if txn.fence.is_some() || txn.validate(env.limits).is_err() {
        return None;
    }
    let policy = &ctx.settings.policy;
    if txn.comparisons().iter().any(|c| policy.rules_for(c.key.as_str()).strategy != Strategy::Reject) {
        return None;
    }
    let schemas = env.schemas.get(ctx).ok()?;
    let snapshot = Snapshot { entries, ..Snapshot::default() };
    let input =
        PlanInput { context: ctx, schemas: &schemas, limits: env.limits, author, now: env.now().max(ctx.updated_at) };
    refused_alone(plan_txn(&input, &snapshot, txn).ok()?)
}

pub(crate) async fn rollback(tx: &mut impl Tx, env: Env<'_>, id: &ContextId, to: u64, author: &str) -> Result<u64> {
    let mut ctx = tx.lock_context(id.as_str()).await?;
    ctx.check_readable(to)?;
    let now = env.now().max(ctx.updated_at);
    expire_in(tx, &mut ctx, now).await?;
    let target: BTreeMap<String, Entry> =
        tx.list_at(&ctx.id, "", "", ALL, to).await?.into_iter().map(|e| (e.key.clone(), e)).collect();
    let current: BTreeMap<String, Entry> =
        tx.list_latest(&ctx.id, "", "", ALL, None).await?.into_iter().map(|e| (e.key.clone(), e)).collect();

    let mut plan = PlanBuilder::new(&ctx, author, now, commit_kinds::ROLLBACK);
    let mut restored = 0u64;
    let mut removed = 0u64;
    for (_, entry) in current.iter().filter(|(k, _)| !target.contains_key(*k)) {
        plan.remove(entry, ChangeKind::Deleted);
        removed += 1;
    }
    for (key, old) in &target {
        let now_entry = current.get(key);
        if now_entry.is_some_and(|c| c.same_content(old)) {
            continue;
        }
        plan.put(key, now_entry, old.value.clone(), old.meta.clone());
        restored += 1;
    }
    let data = serde_json::json!({ "to": to, "restored": restored, "removed": removed });
    plan.event(types::CONTEXT_ROLLED_BACK, None, None, Some(data));
    let plan = plan.finish();
    let revision = plan.revision;
    apply_plan(tx, &mut ctx, plan).await?;
    Ok(revision)
}

pub(crate) async fn fork(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &ContextId,
    at: u64,
    new_id: &ContextId,
    author: &str,
) -> Result<ContextInfo> {
    // History up to `at` never changes; the source needs no lock.
    let source = tx.context(id.as_str()).await?;
    source.check_readable(at)?;
    let entries = tx.list_at(&source.id, "", "", ALL, at).await?;
    let now = env.now();
    let origin = ForkOrigin { context: source.id.clone(), revision: at };
    let info = insert_context(tx, env, new_id, source.settings.clone(), author, now, Some(origin), None).await?;
    let entries = entries.into_iter().map(|e| (e.key, e.value, e.meta)).collect();
    finish_create(tx, info, author, now, commit_kinds::FORK, entries).await
}

pub(crate) async fn append_event(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &ContextId,
    event: NewEvent,
    author: &str,
) -> Result<Event> {
    let mut ctx = tx.lock_context(id.as_str()).await?;
    let now = env.now().max(ctx.updated_at);
    let mut plan = PlanBuilder::new(&ctx, author, now, &event.kind);
    let logged = plan.event(&event.kind, event.key.as_deref(), event.priority, event.data);
    apply_plan(tx, &mut ctx, plan.finish()).await?;
    Ok(logged)
}

/// Removes the expired entries of one context as one revision.
pub(crate) async fn expire_context(tx: &mut impl Tx, id: &str, now: Timestamp) -> Result<u64> {
    let mut ctx = tx.lock_context(id).await?;
    let at = now.max(ctx.updated_at);
    expire_in(tx, &mut ctx, at).await
}

/// Removes the entries of `ctx` that expired at `now`, as one revision.
async fn expire_in(tx: &mut impl Tx, ctx: &mut ContextInfo, now: Timestamp) -> Result<u64> {
    let keys = tx.expired_keys(&ctx.id, now).await?;
    if keys.is_empty() {
        return Ok(0);
    }
    let mut plan = PlanBuilder::new(ctx, SYSTEM_AGENT, now, commit_kinds::EXPIRE);
    for key in &keys {
        // The entry as it is (expired, so not among the live ones).
        if let Some(entry) = tx.entry_at(&ctx.id, key, ctx.revision).await? {
            plan.remove(&entry, ChangeKind::Expired);
        }
    }
    apply_plan(tx, ctx, plan.finish()).await?;
    Ok(keys.len() as u64)
}

/// The contexts whose retention is bounded, for a compaction pass over all.
pub(crate) async fn contexts_with_retention(tx: &mut impl Tx) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = tx.list_contexts(&after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        ids.extend(page.into_iter().filter(|c| !c.settings.retention.is_unbounded()).map(|c| c.id));
    }
    Ok(ids)
}

/// Applies the retention policy of one context: history before the
/// compaction point is removed, except what reading the state there needs.
pub(crate) async fn compact_context(tx: &mut impl Tx, id: &str, now: Timestamp) -> Result<Option<Compaction>> {
    let ctx = tx.lock_context(id).await?;
    let retention = &ctx.settings.retention;
    let mut point = 0u64;
    if let Some(n) = retention.max_revisions {
        point = point.max((ctx.revision + 1).saturating_sub(n));
    }
    if let Some(ms) = retention.max_age_ms {
        // An age beyond the representable past keeps everything.
        let cutoff = chrono::Duration::try_milliseconds(ms.min(i64::MAX as u64) as i64)
            .and_then(|age| now.checked_sub_signed(age))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let first_young = tx.first_revision_since(&ctx.id, cutoff).await?;
        point = point.max(first_young.unwrap_or(ctx.revision));
    }
    let point = point.min(ctx.revision);
    if point <= ctx.compacted_revision.max(1) {
        return Ok(None);
    }
    let versions_removed = tx.remove_history_before(&ctx.id, point).await?;
    Ok(Some(Compaction { context: ctx.id.clone(), compacted_revision: point, versions_removed }))
}

// ---- reads ----

pub(crate) async fn list_contexts(
    tx: &mut impl Tx,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<ContextInfo>, bool)> {
    let mut list = tx.list_contexts(after.unwrap_or(""), limit + 1).await?;
    let more = list.len() > limit;
    list.truncate(limit);
    Ok((list, more))
}

/// Resolves a read position to a revision (`None`: the latest state),
/// checking that it is readable.
async fn resolve_at(tx: &mut impl Tx, ctx: &ContextInfo, at: ReadAt) -> Result<Option<u64>> {
    let rev = match at {
        ReadAt::Latest => return Ok(None),
        ReadAt::Revision(rev) => rev,
        ReadAt::Time(ts) => match tx.last_revision_at(&ctx.id, ts).await? {
            Some(rev) => rev,
            None if ctx.compacted_revision > 1 => {
                return Err(Error::Compacted { requested: 0, compacted: ctx.compacted_revision }.into());
            }
            None => {
                let what = format!("a revision of context {:?} at or before {}", ctx.id, ts.to_rfc3339());
                return Err(Error::not_found(what).into());
            }
        },
    };
    ctx.check_readable(rev)?;
    Ok(Some(rev))
}

pub(crate) async fn get_entry(
    tx: &mut impl Tx,
    clock: &dyn Clock,
    id: &ContextId,
    key: &EntryKey,
    at: ReadAt,
) -> Result<(Option<Entry>, u64)> {
    let ctx = tx.context(id.as_str()).await?;
    match resolve_at(tx, &ctx, at).await? {
        None => Ok((tx.entry_latest(&ctx.id, key.as_str(), clock.now()).await?, ctx.revision)),
        Some(rev) => Ok((tx.entry_at(&ctx.id, key.as_str(), rev).await?, rev)),
    }
}

pub(crate) async fn list_entries(
    tx: &mut impl Tx,
    clock: &dyn Clock,
    id: &ContextId,
    at: ReadAt,
    query: &ListQuery,
) -> Result<EntryPage> {
    let ctx = tx.context(id.as_str()).await?;
    let after = query.after_key.as_deref().unwrap_or("");
    let limit = query.limit + 1;
    let (mut entries, revision) = match resolve_at(tx, &ctx, at).await? {
        None => (tx.list_latest(&ctx.id, &query.prefix, after, limit, Some(clock.now())).await?, ctx.revision),
        Some(rev) => (tx.list_at(&ctx.id, &query.prefix, after, limit, rev).await?, rev),
    };
    let more = entries.len() > query.limit;
    entries.truncate(query.limit);
    Ok(EntryPage { entries, revision, more })
}

pub(crate) async fn entry_history(
    tx: &mut impl Tx,
    id: &ContextId,
    key: &EntryKey,
    query: HistoryQuery,
) -> Result<Vec<EntryVersion>> {
    tx.context(id.as_str()).await?;
    let before = query.before.unwrap_or(i64::MAX as u64);
    let out = tx.entry_versions(id.as_str(), key.as_str(), before, query.limit).await?;
    if out.is_empty() && query.before.is_none() {
        return Err(Error::not_found(format!("entry {:?}", key.as_str())).into());
    }
    Ok(out)
}

pub(crate) async fn context_history(tx: &mut impl Tx, id: &ContextId, query: HistoryQuery) -> Result<Vec<Commit>> {
    tx.context(id.as_str()).await?;
    tx.commits(id.as_str(), query.before.unwrap_or(i64::MAX as u64), query.limit).await
}

pub(crate) async fn diff(tx: &mut impl Tx, id: &ContextId, from: u64, to: u64) -> Result<Vec<DiffChange>> {
    let ctx = tx.context(id.as_str()).await?;
    if from > to {
        return Err(Error::invalid("from", "must not be greater than to").into());
    }
    // Revision 0 is the empty state before creation; readable while
    // nothing has been compacted.
    if from > 0 {
        ctx.check_readable(from)?;
    } else if ctx.compacted_revision > 0 {
        return Err(Error::Compacted { requested: 0, compacted: ctx.compacted_revision }.into());
    }
    ctx.check_readable(to)?;
    let mut out = Vec::new();
    for key in tx.changed_keys(&ctx.id, from, to).await? {
        let before = tx.entry_at(&ctx.id, &key, from).await?;
        let after = tx.entry_at(&ctx.id, &key, to).await?;
        out.extend(DiffChange::between(&key, before, after));
    }
    Ok(out)
}

pub(crate) async fn events(tx: &mut impl Tx, id: &ContextId, after: u64, limit: usize) -> Result<Vec<Event>> {
    let ctx = tx.context(id.as_str()).await?;
    if after.saturating_add(1) < ctx.compacted_revision {
        return Err(Error::Compacted { requested: after, compacted: ctx.compacted_revision }.into());
    }
    let mut out = tx.events(&ctx.id, after, limit).await?;
    // The events of one revision are delivered together: finish the last
    // revision even when the limit cut it.
    if let Some(last) = out.last().filter(|_| out.len() == limit) {
        let (revision, seen) = (last.revision, out.iter().filter(|e| e.revision == last.revision).count());
        out.extend(tx.revision_events(&ctx.id, revision, seen).await?);
    }
    Ok(out)
}
