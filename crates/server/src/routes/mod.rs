//! The routes of the v1 API, one module per resource.

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::{get, post};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_store::ReadAt;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

pub(crate) mod agents;
pub(crate) mod backup;
pub(crate) mod conflicts;
pub(crate) mod context_map;
pub(crate) mod contexts;
pub(crate) mod coord;
pub(crate) mod entries;
pub(crate) mod grants;
pub(crate) mod history;
pub(crate) mod mesh;
pub(crate) mod ops;
pub(crate) mod watch;
pub(crate) mod ws;

/// Every route of the server.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/contexts", post(contexts::create).get(contexts::list))
        .route("/v1/contexts/{ctx}", get(contexts::read).patch(contexts::update).delete(contexts::remove))
        .route("/v1/contexts/{ctx}/entries", get(entries::list))
        .route(
            "/v1/contexts/{ctx}/entries/{*key}",
            get(entries::read).put(entries::put).patch(entries::patch).delete(entries::remove),
        )
        .route("/v1/contexts/{ctx}/txn", post(entries::txn))
        .route("/v1/contexts/{ctx}/package", get(mesh::package))
        .route("/v1/contexts/{ctx}/context-map", get(context_map::read).put(context_map::put))
        .route("/v1/contexts/{ctx}/consensus", post(mesh::consensus))
        .route("/v1/contexts/{ctx}/search", get(mesh::search))
        .route("/v1/contexts/{ctx}/decisions", post(mesh::decision))
        .route("/v1/contexts/{ctx}/conflicts", get(conflicts::list))
        .route("/v1/contexts/{ctx}/conflicts/{id}", get(conflicts::read))
        .route("/v1/contexts/{ctx}/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/v1/contexts/{ctx}/document", get(entries::document))
        .route("/v1/contexts/{ctx}/history", get(history::commits))
        .route("/v1/contexts/{ctx}/diff", get(history::diff))
        .route("/v1/contexts/{ctx}/rollback", post(history::rollback))
        .route("/v1/contexts/{ctx}/fork", post(history::fork))
        .route("/v1/contexts/{ctx}/compact", post(history::compact))
        .route("/v1/contexts/{ctx}/events", get(history::events))
        .route("/v1/contexts/{ctx}/watch", get(watch::sse))
        .route("/v1/messages", post(watch::message))
        .route("/v1/whoami", get(agents::whoami))
        .route("/v1/agents", post(agents::register).get(agents::list))
        .route("/v1/agents/events", get(agents::feed))
        .route("/v1/agents/watch", get(agents::feed_watch))
        .route("/v1/agents/{id}", get(agents::read).patch(agents::update).delete(agents::remove))
        .route("/v1/agents/{id}/heartbeat", post(agents::heartbeat))
        .route("/v1/agents/{id}/token", post(agents::rotate_token).delete(agents::revoke_token))
        .route("/v1/agents/{id}/inbox", get(agents::inbox))
        .route("/v1/agents/{id}/inbox/watch", get(agents::inbox_watch))
        .route("/v1/contexts/{ctx}/grants", post(grants::grant).get(grants::list).delete(grants::revoke))
        .route("/v1/agents/{id}/shared", get(grants::shared))
        .route("/v1/audit", get(grants::audit))
        .route("/v1/policies", post(grants::add_policy).get(grants::policies))
        .route("/v1/policies/{id}", axum::routing::delete(grants::delete_policy))
        .route("/v1/contexts/{ctx}/locks", get(coord::list))
        .route("/v1/contexts/{ctx}/locks/{name}", post(coord::acquire).get(coord::read).delete(coord::release))
        .route("/v1/contexts/{ctx}/locks/{name}/refresh", post(coord::refresh))
        .route("/v1/handoffs", post(coord::request_handoff).get(coord::list_handoffs))
        .route("/v1/handoffs/{id}", get(coord::read_handoff))
        .route("/v1/handoffs/{id}/package", get(mesh::handoff_package))
        .route("/v1/handoffs/{id}/{action}", post(coord::step))
        .route("/v1/contexts/{ctx}/tasks", post(coord::assign).get(coord::list_context_tasks))
        .route("/v1/tasks", get(coord::list_tasks))
        .route("/v1/tasks/{id}", get(coord::read_task))
        .route("/v1/tasks/{id}/complete", post(coord::complete_task))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/backup", get(backup::backup))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/ui", get(crate::ui::index))
        .route("/ui/", get(crate::ui::index))
        .route("/ui/{*path}", get(crate::ui::asset))
        .fallback(ops::fallback)
        .method_not_allowed_fallback(ops::method_not_allowed)
}

/// Path parameters; a malformed one is `400`.
pub(crate) struct P<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, format!("bad path: {}", e.body_text())))
    }
}

/// `201 Created` with the new context and its `Location`.
pub(crate) fn created_context(info: ctxmesh_core::ContextInfo) -> axum::response::Response {
    use axum::response::IntoResponse;
    let location = format!("/v1/contexts/{}", info.id);
    (axum::http::StatusCode::CREATED, [(axum::http::header::LOCATION, location)], axum::Json(info)).into_response()
}

pub(crate) fn context_id(raw: &str) -> Result<ContextId, ApiError> {
    Ok(ContextId::parse(raw)?)
}

pub(crate) fn entry_key(raw: &str) -> Result<EntryKey, ApiError> {
    Ok(EntryKey::parse(raw)?)
}

/// `?at=REV` or `?as_of=RFC3339`: which state a read sees.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadAtParams {
    /// Read the state right after this revision.
    at: Option<u64>,
    /// Read the state as of this time (RFC 3339).
    as_of: Option<String>,
}

impl ReadAtParams {
    pub(crate) fn resolve(&self) -> Result<ReadAt, ApiError> {
        match (self.at, &self.as_of) {
            (Some(_), Some(_)) => Err(ApiError::invalid_argument("at", "give either at or as_of, not both")),
            (Some(0), None) => Err(ApiError::invalid_argument("at", "revisions start at 1")),
            (Some(rev), None) => Ok(ReadAt::Revision(rev)),
            (None, Some(ts)) => chrono::DateTime::parse_from_rfc3339(ts)
                .map(|t| ReadAt::Time(t.with_timezone(&chrono::Utc)))
                .map_err(|e| ApiError::invalid_argument("as_of", format!("as_of must be an RFC 3339 time: {e}"))),
            (None, None) => Ok(ReadAt::Latest),
        }
    }
}

/// The largest revision a store holds: revisions are signed 64-bit
/// integers in SQL.
pub(crate) const MAX_REVISION: u64 = i64::MAX as u64;

/// A revision given as `field`, such as `after`: at most [`MAX_REVISION`].
pub(crate) fn check_revision(field: &str, revision: u64) -> Result<u64, ApiError> {
    if revision > MAX_REVISION {
        return Err(ApiError::invalid_argument(field, format!("{field} is a revision: at most {MAX_REVISION}")));
    }
    Ok(revision)
}

/// A page size within the server's bounds.
pub(crate) fn page_size(state: &AppState, limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let max = state.config().max_page_size;
    match limit {
        None => Ok(default.min(max)),
        Some(0) => Err(ApiError::invalid_argument("limit", "limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::invalid_argument("limit", format!("limit must be at most {max}"))),
        Some(n) => Ok(n),
    }
}
