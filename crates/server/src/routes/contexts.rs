//! `/v1/contexts`: create, list, read, update settings, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ctxmesh_core::context::{ContextInfo, ContextPatch, NewContext};
use serde::{Deserialize, Serialize};

use super::{P, context_id, created_context, page_size};
use crate::AppState;
use crate::cursor;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};

/// A page of contexts.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ContextList {
    contexts: Vec<ContextInfo>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size (default 100).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Create a context.
#[utoipa::path(post, path = "/v1/contexts", operation_id = "createContext", tag = "contexts", request_body = NewContext,
    responses((status = 201, body = ContextInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "The `parent` context does not exist"), (status = 409, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(mut new): JsonBody<NewContext>,
) -> ApiResult<impl IntoResponse> {
    // A child reads its parent as its creator may.
    if let Some(parent) = new.parent.clone() {
        let permission = ctxmesh_core::access::Permission::Read;
        let scopes =
            crate::authz::authorize(&state, &caller, &parent, permission, "POST /v1/contexts (parent)").await?;
        new.scope = (!scopes.read.is_all()).then_some(scopes.read);
    }
    let info = state.store().create_context(new, &caller.agent).await?;
    Ok(created_context(info))
}

/// List contexts by id.
#[utoipa::path(get, path = "/v1/contexts", operation_id = "listContexts", tag = "contexts", params(ListParams),
    responses((status = 200, body = ContextList), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ListParams>,
) -> ApiResult<Json<ContextList>> {
    let limit = page_size(&state, params.limit, 100)?;
    let after: Option<String> = params.cursor.as_deref().map(cursor::decode).transpose()?;
    let (mut contexts, more) = state.store().list_contexts(after.as_deref(), limit).await?;
    if !caller.admin {
        // Only what the caller may read; a page may come out short.
        let mut readable = Vec::with_capacity(contexts.len());
        for c in contexts {
            if crate::authz::can_read(&state, &caller, &c.id).await? {
                readable.push(c);
            }
        }
        contexts = readable;
    }
    let next_cursor = more.then(|| contexts.last().map(|c| cursor::encode(&c.id))).flatten();
    Ok(Json(ContextList { contexts, next_cursor }))
}

/// Read a context's settings and counters.
#[utoipa::path(get, path = "/v1/contexts/{ctx}", operation_id = "getContext", tag = "contexts",
    responses((status = 200, body = ContextInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(State(state): State<AppState>, P(ctx): P<String>) -> ApiResult<Json<ContextInfo>> {
    Ok(Json(state.store().get_context(&context_id(&ctx)?).await?))
}

/// Replace some settings of a context (policy, schemas, retention, labels).
#[utoipa::path(patch, path = "/v1/contexts/{ctx}", operation_id = "updateContext", tag = "contexts", request_body = ContextPatch,
    responses((status = 200, body = ContextInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    P(ctx): P<String>,
    JsonBody(patch): JsonBody<ContextPatch>,
) -> ApiResult<Json<ContextInfo>> {
    let info = state.store().update_context(&context_id(&ctx)?, patch).await?;
    state.mesh().remember(&info.id, &info.settings.mesh);
    Ok(Json(info))
}

/// Delete a context with all its entries and history.
#[utoipa::path(delete, path = "/v1/contexts/{ctx}", operation_id = "deleteContext", tag = "contexts",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(State(state): State<AppState>, P(ctx): P<String>) -> ApiResult<StatusCode> {
    state.store().delete_context(&context_id(&ctx)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
