//! `ApiError`: every error response, in the JSON shape of docs/api.md
//! ("Errors"), with a stable code that decides the HTTP status. Internal
//! details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use ctxmesh_core::ErrorCode;
use ctxmesh_store::{DriverFailure, StoreError};
use serde::Serialize;
use serde_json::{Value, json};

/// An error answer: stable code (which decides the status), message and
/// details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
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
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Machine-readable details, e.g. the current entry of a `412`.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: json!({}) }
    }

    /// `400 invalid_argument` about one parameter.
    pub fn invalid_argument(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::InvalidArgument, message);
        e.details = json!({ "field": field });
        e
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `503 unavailable`: a dependency (an embedding endpoint, say) failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// `500 internal`: the details go to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error; the server log has the details")
    }

    /// The HTTP status of the answer: the status of its code.
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }
}

/// The HTTP status that answers `code` (the table of docs/api.md,
/// "Errors"). No wildcard: a new code has to be given its status here.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidJson
        | ErrorCode::InvalidBody
        | ErrorCode::InvalidArgument
        | ErrorCode::InvalidId
        | ErrorCode::InvalidKey
        | ErrorCode::InvalidTxn
        | ErrorCode::InvalidPatch
        | ErrorCode::InvalidSchema => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Conflict
        | ErrorCode::AlreadyExists
        | ErrorCode::Fenced
        | ErrorCode::InvalidTransition
        | ErrorCode::NotHolder
        | ErrorCode::Disconnected => StatusCode::CONFLICT,
        ErrorCode::Compacted => StatusCode::GONE,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::SchemaViolation => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
    }
}

impl From<ctxmesh_core::Error> for ApiError {
    fn from(e: ctxmesh_core::Error) -> Self {
        ApiError { code: e.code(), message: e.to_string(), details: e.details() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(e) => e.into(),
            StoreError::Unavailable(msg)
            | StoreError::Driver { kind: DriverFailure::Unavailable, message: msg, .. } => {
                tracing::warn!(%msg, "store unavailable");
                ApiError::new(ErrorCode::Unavailable, "the store is unavailable; retry later")
            }
            StoreError::Full(msg) | StoreError::Driver { kind: DriverFailure::Full, message: msg, .. } => {
                tracing::warn!(%msg, "storage full");
                ApiError::new(
                    ErrorCode::StorageFull,
                    "the server's disk is full; the write changed nothing: retry once space is freed",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let refused = (self.code == ErrorCode::Forbidden).then(|| Refusal(self.message.clone()));
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, details: self.details } };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(refused) = refused {
            response.extensions_mut().insert(refused);
        }
        if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE) {
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

    /// Every code answers with the status it always had (the table of
    /// docs/api.md), and the table names every code.
    #[test]
    fn every_code_has_its_status() {
        let table = [
            ("invalid_json", 400),
            ("invalid_body", 400),
            ("invalid_argument", 400),
            ("invalid_id", 400),
            ("invalid_key", 400),
            ("invalid_txn", 400),
            ("invalid_patch", 400),
            ("invalid_schema", 400),
            ("unauthenticated", 401),
            ("forbidden", 403),
            ("not_found", 404),
            ("method_not_allowed", 405),
            ("conflict", 409),
            ("already_exists", 409),
            ("fenced", 409),
            ("invalid_transition", 409),
            ("not_holder", 409),
            ("disconnected", 409),
            ("compacted", 410),
            ("precondition_failed", 412),
            ("too_large", 413),
            ("unsupported_media_type", 415),
            ("schema_violation", 422),
            ("precondition_required", 428),
            ("rate_limited", 429),
            ("internal", 500),
            ("unavailable", 503),
            ("storage_full", 507),
        ];
        for (name, status) in table {
            let code: ErrorCode = name.parse().unwrap();
            assert_eq!(status_of(code).as_u16(), status, "{name}");
        }
        let mut named: Vec<ErrorCode> = table.iter().map(|(name, _)| name.parse().unwrap()).collect();
        named.sort_unstable();
        named.dedup();
        assert_eq!(named.len(), ErrorCode::ALL.len(), "the table misses a code");
    }

    /// The body is `{"error": {"code", "message", "details"}}` with the
    /// code as its string, and the status is the code's.
    #[test]
    fn the_body_carries_the_code_as_a_string() {
        let e = ApiError::from(ctxmesh_core::Error::not_found("context \"a\""));
        let body = ErrorBody { error: ErrorDetail { code: e.code, message: e.message.clone(), details: e.details } };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"not_found","message":"context \"a\" not found","details":{}}}"#
        );
        assert_eq!(ApiError::invalid_argument("q", "no").into_response().status(), StatusCode::BAD_REQUEST);
    }

    /// The OpenAPI document lists the codes as the strings sent.
    #[test]
    fn the_openapi_document_lists_every_code() {
        let spec = crate::openapi::spec();
        let schemas = &spec["components"]["schemas"];
        assert_eq!(schemas["ErrorDetail"]["properties"]["code"]["$ref"], "#/components/schemas/ErrorCode");
        let listed: Vec<&str> =
            schemas["ErrorCode"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
    }

    /// A driver's errors are answered by their kind: `503`, `507`, or
    /// `500` without the driver's message.
    #[test]
    fn driver_errors_are_answered_by_kind() {
        let driver = |kind, message: &str| StoreError::Driver {
            kind,
            message: message.into(),
            source: Box::new(std::io::Error::other(message.to_owned())),
        };
        let gone = ApiError::from(driver(DriverFailure::Unavailable, "lost the database connection"));
        assert_eq!((gone.code, gone.status()), (ErrorCode::Unavailable, StatusCode::SERVICE_UNAVAILABLE));
        let full = ApiError::from(driver(DriverFailure::Full, "database or disk is full"));
        assert_eq!((full.code, full.status()), (ErrorCode::StorageFull, StatusCode::INSUFFICIENT_STORAGE));
        let broken = ApiError::from(driver(DriverFailure::Backend, "database disk image is malformed"));
        assert_eq!((broken.code, broken.status()), (ErrorCode::Internal, StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!broken.message.contains("malformed"));
    }

    /// A full disk is `507 storage_full` with `Retry-After`, and the
    /// driver's message stays in the log.
    #[test]
    fn a_full_disk_is_507_storage_full() {
        let e = ApiError::from(StoreError::Full("database or disk is full (/var/lib/secret)".into()));
        assert_eq!((e.status(), e.code), (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::StorageFull));
        assert!(!e.message.contains("/var/lib"));
        let response = e.into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
