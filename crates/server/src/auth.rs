//! Authentication: who is calling.
//!
//! With tokens on (the default of `ctxmesh serve`), every `/v1` request
//! carries `Authorization: Bearer <token>`: the admin token, or an agent's
//! token issued at registration, or, with [`crate::jwt`] configured, a JWT
//! of the OpenID Connect issuer. Tokens are stored as SHA-256 hashes only.
//! With auth off (loopback only), a caller names itself with `X-Agent-Id`
//! and may do anything. Operational routes (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`) need no token.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ctxmesh_store::StoreError;
use ctxmesh_store::coord as req;

use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ADMIN, AGENT_HEADER, ANONYMOUS, Caller, agent_header};

/// How requests are authenticated.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// No tokens: callers name themselves with `X-Agent-Id`. Only for a
    /// server listening on loopback.
    #[default]
    Off,
    /// Bearer tokens: the admin token (kept as its hash) or agent tokens.
    Tokens {
        /// SHA-256 (hex) of the admin token.
        admin_hash: String,
    },
}

impl Auth {
    /// Token authentication with `admin_token` as the admin token.
    pub fn with_admin_token(admin_token: &str) -> Self {
        Auth::Tokens { admin_hash: hash_token(admin_token) }
    }
}

/// SHA-256 of a token, in hex: what the store keeps.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (256 bits).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("cmt_{hex}")
}

fn unauthenticated(message: &str) -> Response {
    let mut response = ApiError::new(ErrorCode::Unauthenticated, message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Middleware: authenticates `/v1` requests and records the [`Caller`].
pub(crate) async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path.starts_with("/v1/") || path == "/mcp" || path.starts_with("/mcp/")) {
        return next.run(req).await;
    }
    // A request from inside this node (an MCP tool call) carries the
    // caller its MCP request was authenticated as; extensions cannot come
    // from the network.
    if req.extensions().get::<Caller>().is_some() {
        return next.run(req).await;
    }
    let named = match agent_header(req.headers()) {
        Ok(named) => named,
        Err(e) => return e.into_response(),
    };
    let caller = match &state.config().auth {
        Auth::Off => Caller { agent: named.unwrap_or_else(|| ANONYMOUS.into()), admin: true, token: None, jwt: None },
        Auth::Tokens { admin_hash } => {
            let bearer = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim);
            let Some(token) = bearer.filter(|t| !t.is_empty()) else {
                return unauthenticated("send Authorization: Bearer <token> (the admin token or an agent's token)");
            };
            let hash = hash_token(token);
            if &hash == admin_hash {
                // The admin may act for an agent by naming it.
                Caller { agent: named.unwrap_or_else(|| ADMIN.into()), admin: true, token: None, jwt: None }
            } else if let Some(jwt) = state.config().jwt.as_ref().filter(|_| crate::jwt::looks_like_jwt(token)) {
                let (method, path) = (req.method().clone(), req.uri().path().to_owned());
                match crate::jwt::authenticate(&state, jwt, &method, &path, token, named.as_deref()).await {
                    Ok(caller) => caller,
                    Err(response) => return response,
                }
            } else {
                match state.store().coord(req::TokenOwner { hash: hash.clone() }).await {
                    Ok(agent) => {
                        if named.as_ref().is_some_and(|n| n != &agent.id) {
                            let message = format!("{AGENT_HEADER} names another agent than the token's");
                            return ApiError::new(ErrorCode::Forbidden, message).into_response();
                        }
                        Caller { agent: agent.id, admin: false, token: Some(hash), jwt: None }
                    }
                    Err(StoreError::Core(ctxmesh_core::Error::NotFound { .. })) => {
                        return unauthenticated("the token is not valid (unknown, rotated or revoked)");
                    }
                    Err(e) => return ApiError::from(e).into_response(),
                }
            }
        }
    };
    if let Some(limit) = state.config().rate_limit
        && !caller.admin
        && let Err(wait) = state.limiter().take(&caller.agent, limit, std::time::Instant::now())
    {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let message = format!("agent {:?} is over its request rate: retry in {seconds} s", caller.agent);
        let mut response = ApiError::new(ErrorCode::RateLimited, message).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("cmt_") && a.len() == 68);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
