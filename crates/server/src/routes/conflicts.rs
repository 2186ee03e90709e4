//! Conflicts: the records stale writes left, and resolutions of the
//! pending ones (docs/conflicts.md).

use axum::Json;
use axum::extract::State;
use ctxmesh_core::Entry;
use ctxmesh_core::access::EntryScope;
use ctxmesh_core::conflict::{Conflict, ConflictStatus, ResolveRequest};
use ctxmesh_core::ids::ContextId;
use ctxmesh_store::ReadAt;
use ctxmesh_store::coord as req;

use serde::{Deserialize, Serialize};

use super::{P, context_id, page_size};
use crate::AppState;
use crate::authz::Scopes;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConflictParams {
    /// `pending` (the default), `resolved` or `all`.
    #[param(value_type = Option<String>, pattern = "^(pending|resolved|all)$")]
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 100).
    limit: Option<usize>,
}

/// A page of conflicts.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConflictList {
    conflicts: Vec<Conflict>,
    /// Pass as `cursor` for the next page.
    next_cursor: Option<String>,
}

/// A conflict with its siblings: the entry as it was when the write came
/// (`current`), next to the write kept aside (`proposed`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConflictView {
    #[serde(flatten)]
    conflict: Conflict,
    /// The entry at `current_revision` (null when it was absent).
    current: Option<Entry>,
}

/// Whether `scope` lets its holder see `conflict` (its entry's key, tags
/// and confidentiality).
fn visible(scope: &EntryScope, c: &Conflict) -> bool {
    scope.permits(&c.key, &c.tags, c.confidential, None)
}

/// The conflicts of a context: the pending ones by default.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/conflicts", operation_id = "listConflicts", tag = "conflicts", params(ConflictParams),
    responses((status = 200, body = ConflictList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(p): Q<ConflictParams>,
) -> ApiResult<Json<ConflictList>> {
    let ctx = context_id(&ctx)?;
    let status = match p.status.as_deref() {
        None | Some("pending") => Some(ConflictStatus::Pending),
        Some("resolved") => Some(ConflictStatus::Resolved),
        Some("all") => None,
        Some(_) => return Err(ApiError::invalid_argument("status", "status is pending, resolved or all")),
    };
    let limit = page_size(&state, p.limit, 100)?;
    let after = match &p.cursor {
        Some(c) => crate::cursor::decode::<String>(c)?,
        None => String::new(),
    };
    let read = req::ListConflicts { ctx, status, after, limit: limit + 1 };
    let mut conflicts = state.store().coord(read).await?;
    let more = conflicts.len() > limit;
    conflicts.truncate(limit);
    let next_cursor = more.then(|| conflicts.last().map(|c| crate::cursor::encode(&c.id))).flatten();
    conflicts.retain(|c| visible(&scopes.read, c));
    Ok(Json(ConflictList { conflicts, next_cursor }))
}

async fn conflict(state: &AppState, ctx: &ContextId, id: &str) -> ApiResult<Conflict> {
    Ok(state.store().coord(req::GetConflict { ctx: ctx.clone(), id: id.to_owned() }).await?)
}

/// One conflict, with its siblings.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/conflicts/{id}", operation_id = "getConflict", tag = "conflicts",
    responses((status = 200, body = ConflictView), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    scopes: Scopes,
    P((ctx, id)): P<(String, String)>,
) -> ApiResult<Json<ConflictView>> {
    let ctx = context_id(&ctx)?;
    let conflict = conflict(&state, &ctx, &id).await?;
    if !visible(&scopes.read, &conflict) {
        return Err(ctxmesh_core::Error::not_found(format!("conflict {id:?} of context {:?}", ctx.as_str())).into());
    }
    let key = ctxmesh_core::EntryKey::parse(&conflict.key)?;
    let current = match conflict.current_revision {
        0 => None,
        r => match state.store().get_entry(&ctx, &key, ReadAt::Revision(r)).await {
            Ok((entry, _)) => entry.filter(|e| scopes.read.permits_entry(e)),
            // History before the compaction point is gone.
            Err(ctxmesh_store::StoreError::Core(ctxmesh_core::Error::Compacted { .. })) => None,
            Err(e) => return Err(e.into()),
        },
    };
    Ok(Json(ConflictView { conflict, current }))
}

/// Resolve a pending conflict: `{"choose": "current"}` keeps the entry,
/// `{"choose": "proposed"}` applies the write kept aside, `{"value": V}`
/// writes a merged value; `if_match` (default: the conflict's
/// `current_revision`) is the entry revision the resolution is based on.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/conflicts/{id}/resolve", operation_id = "resolveConflict", tag = "conflicts",
    request_body = ResolveRequest,
    responses((status = 200, body = Conflict), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P((ctx, id)): P<(String, String)>,
    JsonBody(req): JsonBody<ResolveRequest>,
) -> ApiResult<Json<Conflict>> {
    let ctx = context_id(&ctx)?;
    if !visible(&scopes.read, &conflict(&state, &ctx, &id).await?) {
        return Err(ctxmesh_core::Error::not_found(format!("conflict {id:?} of context {:?}", ctx.as_str())).into());
    }
    let if_match = req.if_match;
    let op = req::ResolveConflict {
        ctx,
        id,
        resolution: req.choice()?,
        if_match,
        author: caller.agent,
        scope: scopes.txn(),
    };
    Ok(Json(state.store().coord(op).await?))
}
