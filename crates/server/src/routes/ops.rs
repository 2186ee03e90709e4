//! Operations endpoints: health, readiness, metrics, the OpenAPI spec.

use axum::Json;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "operations", responses((status = 200)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "operations", responses((status = 200), (status = 503)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store().ping().await?;
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub(crate) async fn metrics() -> impl IntoResponse {
    let body = crate::metrics::render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "operations", responses((status = 200)))]
pub(crate) async fn openapi() -> Json<&'static Value> {
    Json(crate::openapi::spec())
}

pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}: see /openapi.json", uri.path()))
}

pub(crate) async fn fallback(uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {}: see /openapi.json", uri.path()))
}
