//! `ApiError`: every error response, in the JSON shape of DESIGN.md
//! section 5, with a stable code. Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

/// An error answer: status, stable code, message and details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message: what went wrong and what to do.
    pub message: String,
    /// Machine-readable details.
    pub details: Value,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object of an error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `precondition_failed`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Machine-readable details, e.g. the current entry of a `412`.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: json!({}) }
    }

    /// `400` with an `invalid_*` code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `400 invalid_argument` about one parameter.
    pub fn invalid_argument(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::bad_request("invalid_argument", message);
        e.details = json!({ "field": field });
        e
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `503 unavailable`: a dependency (an embedding endpoint, say) failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// `500 internal`: the details go to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the details")
    }
}

fn status_for(code: &str) -> StatusCode {
    match code {
        "not_found" => StatusCode::NOT_FOUND,
        "already_exists" | "conflict" | "fenced" | "invalid_transition" | "not_holder" | "disconnected" => {
            StatusCode::CONFLICT
        }
        "forbidden" => StatusCode::FORBIDDEN,
        "compacted" => StatusCode::GONE,
        "precondition_failed" => StatusCode::PRECONDITION_FAILED,
        "precondition_required" => StatusCode::PRECONDITION_REQUIRED,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "schema_violation" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<ctxmesh_core::Error> for ApiError {
    fn from(e: ctxmesh_core::Error) -> Self {
        let code = e.code();
        ApiError { status: status_for(code), code, message: e.to_string(), details: e.details() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(e) => e.into(),
            StoreError::Unavailable(msg) => {
                tracing::warn!(%msg, "store unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; retry later")
            }
            StoreError::Full(msg) => {
                tracing::warn!(%msg, "storage full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the server's disk is full; the write changed nothing: retry once space is freed",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refused = (self.code == "forbidden").then(|| Refusal(self.message.clone()));
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, details: self.details },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(refused) = refused {
            response.extensions_mut().insert(refused);
        }
        if matches!(self.status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Why a `403` was answered: the authorization guard records refusals
/// made after it (entry by entry, in the store) in the audit log.
#[derive(Clone, Debug)]
pub(crate) struct Refusal(pub(crate) String);

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk is `507 storage_full` with `Retry-After`, and the
    /// driver's message stays in the log.
    #[test]
    fn a_full_disk_is_507_storage_full() {
        let e = ApiError::from(StoreError::Full("database or disk is full (/var/lib/secret)".into()));
        assert_eq!((e.status, e.code), (StatusCode::INSUFFICIENT_STORAGE, "storage_full"));
        assert!(!e.message.contains("/var/lib"));
        let response = e.into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
