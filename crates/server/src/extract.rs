//! Extractors that turn malformed requests into clear `ApiError`s:
//! JSON bodies (content type, size, syntax, shape), query strings, and the
//! caller's identity.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body of type `T`. Requires `Content-Type:
/// application/json` (or another `+json` type accepted by the handler).
pub struct JsonBody<T>(pub T);

/// Checks that the request's media type is one of `accepted`.
pub(crate) fn require_content_type(
    parts_headers: &axum::http::HeaderMap,
    accepted: &[&str],
) -> Result<String, ApiError> {
    let raw = parts_headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if accepted.contains(&media.as_str()) {
        return Ok(media);
    }
    let shown = if media.is_empty() { "none".to_owned() } else { media };
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!("content type {shown} is not accepted here: send {}", accepted.join(" or ")),
    ))
}

/// Reads the whole body, honouring the configured size limit.
pub(crate) async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|rejection: BytesRejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::TooLarge, "the request body exceeds the configured limit")
        } else {
            ApiError::new(ErrorCode::InvalidBody, format!("could not read the request body: {rejection}"))
        }
    })
}

/// Parses JSON, telling syntax errors from shape errors. A shape error
/// names the field that is wrong (`needs`, `success[0].key`) in its message
/// and in `details.field`, and the shape accepted there, from the OpenAPI
/// document's schema of `T`, in its message and in `details.expected`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // A struct also deserializes from a JSON array of its fields in order;
    // the API's bodies and their parts are objects where the document
    // says so.
    if let Some((path, schema)) = crate::shape::array_for_object::<T>(bytes) {
        let place = if path == "." { "the body".to_owned() } else { format!("`{path}`") };
        let brief = crate::shape::brief(schema);
        let mut error = ApiError::new(
            ErrorCode::InvalidArgument,
            format!("{place} has the wrong shape: expected {brief}, got an array"),
        );
        error.details = serde_json::json!({ "field": path, "expected": schema });
        return Err(error);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().clone();
        (e.into_inner(), Some(path))
    });
    let e = match parsed.and_then(|v| de.end().map(|()| v).map_err(|e| (e, None))) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    use serde_json::error::Category;
    let (e, path) = e;
    match (e.classify(), path) {
        (Category::Data, Some(path)) => Err(shape_error::<T>(bytes, &e, &path)),
        _ => Err(ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}"))),
    }
}

/// The `400` of a body of the wrong shape, `e` at `path`.
fn shape_error<T>(bytes: &[u8], e: &serde_json::Error, path: &serde_path_to_error::Path) -> ApiError {
    // The position is in a body the caller may not have written itself
    // (an SDK built it): the path says where instead.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(at) if full[at..].contains(" column ") => &full[..at],
        _ => full.as_str(),
    };
    // Id and key validation happens while deserializing; keep their
    // specific codes.
    let code = if message.starts_with("invalid context id") {
        ErrorCode::InvalidId
    } else if message.starts_with("invalid key") {
        ErrorCode::InvalidKey
    } else {
        ErrorCode::InvalidArgument
    };
    let at = crate::shape::locate::<T>(bytes, path);
    let place = if at.path == "." { "the body".to_owned() } else { format!("`{}`", at.path) };
    let text = match (&at.schema, at.got) {
        (Some(schema), Some(got)) => {
            format!("{place} has the wrong shape: expected {}, got {got}", crate::shape::brief(schema))
        }
        _ if code != ErrorCode::InvalidArgument => format!("{place}: {message}"),
        (Some(schema), None) => {
            format!("{place} has the wrong shape: {message}; accepted there: {}", crate::shape::brief(schema))
        }
        (None, _) => format!("{place} has the wrong shape: {message}"),
    };
    let mut error = ApiError::new(code, text);
    error.details = serde_json::json!({ "field": at.path });
    if let Some(schema) = at.schema {
        error.details["expected"] = schema.clone();
    }
    error
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        require_content_type(req.headers(), &["application/json"])?;
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: an empty body is `T::default()`, anything else
/// must be JSON of type `T`.
pub struct MaybeJson<T>(pub T);

impl<S, T> FromRequest<S> for MaybeJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(T::default()));
        }
        require_content_type(&headers, &["application/json"])?;
        parse_json(&bytes).map(MaybeJson)
    }
}

/// A query string of type `T`; a bad one is `400 invalid_argument`.
pub struct Q<T>(pub T);

impl<S, T> FromRequestParts<S> for Q<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError::new(ErrorCode::InvalidArgument, format!("bad query string: {}", e.body_text()))),
        }
    }
}

/// The agent on whose behalf a request is made, as authenticated by
/// [`crate::auth`]: the owner of the request's agent token, or, for the
/// admin token or with auth off, the agent named by `X-Agent-Id` (default
/// `admin` or `anonymous`).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The agent id.
    pub agent: String,
    /// Whether the caller holds the admin token (or auth is off).
    pub admin: bool,
    /// The hash of the agent token it authenticated with (streams check
    /// that it is still valid).
    pub token: Option<String>,
    /// What the bearer JWT it authenticated with says (trust, expiry).
    pub jwt: Option<crate::jwt::JwtIdentity>,
}

/// The name of the admin acting as no agent.
pub const ADMIN: &str = "admin";

/// The name of a caller that names no agent on a server without tokens.
pub const ANONYMOUS: &str = "anonymous";

impl Caller {
    /// Whether the caller is the admin acting as no agent (no
    /// `X-Agent-Id`), with tokens or without.
    pub fn is_plain_admin(&self) -> bool {
        self.admin && (self.agent == ADMIN || self.agent == ANONYMOUS)
    }

    /// Allows the admin, or the agent `id` itself.
    pub fn require_self_or_admin(&self, id: &str) -> Result<(), ApiError> {
        if self.admin || self.agent == id {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, format!("only agent {id:?} or an admin can do this")))
        }
    }

    /// Allows the admin only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, "only an admin (the admin token) can do this"))
        }
    }
}

/// The header naming the calling agent.
pub const AGENT_HEADER: &str = "x-agent-id";

/// The agent `X-Agent-Id` names, if any; a malformed one is `400`.
pub(crate) fn agent_header(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(AGENT_HEADER) else { return Ok(None) };
    let agent = raw.to_str().ok().and_then(|s| ctxmesh_core::ContextId::parse(s).ok()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidId,
            "X-Agent-Id must be 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit",
        )
    })?;
    Ok(Some(agent.as_str().to_owned()))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            // Outside the authenticated routes: nobody in particular.
            None => {
                let agent = agent_header(&parts.headers)?.unwrap_or_else(|| ANONYMOUS.into());
                Ok(Caller { agent, admin: false, token: None, jwt: None })
            }
        }
    }
}
