//! History: commits, diffs, rollback, fork, compaction and the event log.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::Utc;
use std::collections::HashSet;

use ctxmesh_core::Event;
use ctxmesh_core::access::{EntryScope, Permission};
use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::event::types;
use ctxmesh_core::history::{Commit, DiffChange};
use ctxmesh_core::ids::ContextId;
use ctxmesh_store::{Compaction, HistoryQuery, StoreError};
use serde::{Deserialize, Serialize};

use super::watch::FilterParams;
use super::{P, check_revision, context_id, created_context, page_size};
use crate::AppState;
use crate::authz::Scopes;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Only commits before this revision.
    before: Option<u64>,
    /// Page size (default 100).
    limit: Option<usize>,
}

/// The commits of a context, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CommitList {
    commits: Vec<Commit>,
    /// Pass as `before` for older commits; null when there are none.
    next_before: Option<u64>,
}

/// The commits of a context (revision, author, time, keys), newest first.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/history", operation_id = "listCommits", tag = "history", params(HistoryParams),
    responses((status = 200, body = CommitList), (status = 404, body = ErrorBody)))]
pub(crate) async fn commits(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(params): Q<HistoryParams>,
) -> ApiResult<Json<CommitList>> {
    let ctx = context_id(&ctx)?;
    let limit = page_size(&state, params.limit, 100)?;
    let mut commits = state.store().context_history(&ctx, HistoryQuery { before: params.before, limit }).await?;
    let next_before = (commits.len() == limit).then(|| commits.last().map(|c| c.revision)).flatten();
    if !scopes.read.is_all() {
        hide_keys(&state, &ctx, &scopes.read, &mut commits).await?;
    }
    Ok(Json(CommitList { commits, next_before }))
}

/// Removes from `commits` the keys whose entries `read` does not permit,
/// deciding each by the event its commit logged (which carries the entry's
/// tags and whether it is confidential). A key whose event was compacted
/// away is removed.
async fn hide_keys(state: &AppState, ctx: &ContextId, read: &EntryScope, commits: &mut [Commit]) -> ApiResult<()> {
    let (Some(lo), Some(hi)) = (commits.iter().map(|c| c.revision).min(), commits.iter().map(|c| c.revision).max())
    else {
        return Ok(());
    };
    let mut visible: HashSet<(u64, String)> = HashSet::new();
    let mut after = lo - 1;
    while after < hi {
        let events = match state.store().events(ctx, after, 1000).await {
            Ok(events) => events,
            Err(StoreError::Core(ctxmesh_core::Error::Compacted { compacted, .. })) if compacted > after + 1 => {
                after = compacted - 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(last) = events.last().map(|e| e.revision) else { break };
        for e in events.into_iter().filter(|e| e.revision <= hi && e.kind == types::CONTEXT_UPDATED) {
            if read.permits_event(&e)
                && let Some(key) = e.key
            {
                visible.insert((e.revision, key));
            }
        }
        after = last;
    }
    for commit in commits {
        let revision = commit.revision;
        commit.keys.retain(|k| visible.contains(&(revision, k.clone())));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffParams {
    /// The earlier revision (0: the empty state before creation).
    from: u64,
    /// The later revision (default: the current one).
    to: Option<u64>,
}

/// The changes between two revisions.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Diff {
    from: u64,
    to: u64,
    changes: Vec<DiffChange>,
}

/// What changed between revisions `from` and `to`, key by key.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/diff", operation_id = "getDiff", tag = "history", params(DiffParams),
    responses((status = 200, body = Diff), (status = 400, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(params): Q<DiffParams>,
) -> ApiResult<Json<Diff>> {
    let ctx = context_id(&ctx)?;
    let to = match params.to {
        Some(to) => to,
        None => state.store().get_context(&ctx).await?.revision,
    };
    let mut changes = state.store().diff(&ctx, params.from, to).await?;
    // A change is shown when both of its sides may be read.
    let readable = |e: &Option<ctxmesh_core::Entry>| e.as_ref().is_none_or(|e| scopes.read.permits_entry(e));
    changes.retain(|c| readable(&c.before) && readable(&c.after));
    Ok(Json(Diff { from: params.from, to, changes }))
}

/// `POST .../rollback`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackRequest {
    /// The revision whose state to restore.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    to: u64,
}

/// The revision a rollback committed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RollbackResponse {
    /// The new revision holding the restored state.
    revision: u64,
    /// The revision restored.
    restored_from: u64,
}

/// Restore the state as of `to` as a new revision; history is kept.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/rollback", operation_id = "rollbackContext", tag = "history", request_body = RollbackRequest,
    responses((status = 200, body = RollbackResponse), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    JsonBody(req): JsonBody<RollbackRequest>,
) -> ApiResult<Json<RollbackResponse>> {
    let ctx = context_id(&ctx)?;
    scopes.require_all(Permission::Write, "a rollback")?;
    let revision = state.store().rollback(&ctx, req.to, &caller.agent).await?;
    Ok(Json(RollbackResponse { revision, restored_from: req.to }))
}

/// `POST .../fork`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForkRequest {
    /// The new context's id.
    id: ContextId,
    /// The revision to fork from (default: the current one).
    at: Option<u64>,
}

/// Create a new context holding this one's entries as of a revision.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/fork", operation_id = "forkContext", tag = "history", request_body = ForkRequest,
    responses((status = 201, body = ContextInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn fork(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    JsonBody(req): JsonBody<ForkRequest>,
) -> ApiResult<impl IntoResponse> {
    let ctx = context_id(&ctx)?;
    scopes.require_all(Permission::Read, "a fork")?;
    let at = match req.at {
        Some(at) => at,
        None => state.store().get_context(&ctx).await?.revision,
    };
    let info = state.store().fork(&ctx, at, &req.id, &caller.agent).await?;
    Ok(created_context(info))
}

/// Apply the context's retention policy now (it also runs periodically).
#[utoipa::path(post, path = "/v1/contexts/{ctx}/compact", operation_id = "compactContext", tag = "history",
    responses((status = 200, body = Option<Compaction>), (status = 404, body = ErrorBody)))]
pub(crate) async fn compact(State(state): State<AppState>, P(ctx): P<String>) -> ApiResult<Json<Option<Compaction>>> {
    let ctx = context_id(&ctx)?;
    let done = state.store().compact(Some(&ctx), Utc::now()).await?;
    Ok(Json(done.into_iter().next()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    /// Only events of revisions after this one (default 0: from the start).
    #[serde(default)]
    after: u64,
    /// Most events to scan (default 100); all events of a revision are
    /// always returned together.
    limit: Option<usize>,
}

/// A page of the event log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventList {
    events: Vec<Event>,
    /// The last revision scanned: pass as `after` to continue. Equal to the
    /// request's `after` when nothing newer exists.
    last_revision: u64,
    /// Whether more events may follow right away.
    more: bool,
}

/// The event log of a context, oldest first, gap-free by revision.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/events", operation_id = "listEvents", tag = "events", params(EventParams, FilterParams),
    responses((status = 200, body = EventList), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(params): Q<EventParams>,
    Q(filter): Q<FilterParams>,
) -> ApiResult<Json<EventList>> {
    let ctx = context_id(&ctx)?;
    check_revision("after", params.after)?;
    let limit = page_size(&state, params.limit, 100)?;
    let mut filter = filter.filter()?;
    filter.scope = (!scopes.read.is_all()).then_some(scopes.read);
    let mut events = state.store().events(&ctx, params.after, limit).await?;
    let last_revision = events.last().map_or(params.after, |e| e.revision);
    let more = events.len() >= limit;
    events.retain(|e| filter.matches(e));
    Ok(Json(EventList { events, last_revision, more }))
}
