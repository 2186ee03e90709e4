//! MCP at `/mcp` (streamable HTTP), and the gateway that sends MCP tool
//! calls through this server's own router, on behalf of the MCP request's
//! authenticated caller.

use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use ctxmesh_mcp::{Body, Gateway, Mcp, StreamableHttpServerConfig};
use futures::StreamExt;
use futures::future::BoxFuture;
use tower::ServiceExt;

use crate::AppState;
use crate::extract::Caller;

/// Sends requests through the API router, in process.
struct RouterGateway {
    api: Router,
    /// Who acts when the MCP request carries no caller (stdio).
    default: Option<Caller>,
}

impl Gateway for RouterGateway {
    fn send(
        &self,
        caller: Option<http::Extensions>,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'static, Result<http::Response<Body>, String>> {
        let api = self.api.clone();
        // The caller was authenticated (and rate-limited) with the MCP
        // request; the API's middleware takes it as it is.
        let span = caller.as_ref().and_then(|e| e.get::<crate::telemetry::RequestSpan>().cloned());
        let caller = caller.and_then(|e| e.get::<Caller>().cloned()).or_else(|| self.default.clone());
        Box::pin(async move {
            let Some(caller) = caller else {
                return Err("the MCP request has no authenticated caller".to_owned());
            };
            let (parts, body) = request.into_parts();
            let mut request = http::Request::from_parts(parts, axum::body::Body::from(body));
            request.extensions_mut().insert(caller);
            // The tool call's span is a child of the MCP request's.
            if let Some(span) = span {
                request.extensions_mut().insert(span);
            }
            let response = api.oneshot(request).await.map_err(|e| e.to_string())?;
            Ok(response.map(|body| body.into_data_stream().map(|chunk| chunk.map_err(|e| e.to_string())).boxed()))
        })
    }
}

/// The `/mcp` service over `api` (the router without it).
pub(crate) fn service(state: &AppState, api: Router) -> ctxmesh_mcp::HttpService {
    let closing = state.inner.mcp_closing.child_token();
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(closing);
    // Sessions carry `resources/subscribe` of the protocol versions before
    // 2026-07-28 (later ones are stateless).
    config = config.with_legacy_session_mode(true);
    if !matches!(state.config().auth, crate::auth::Auth::Off) {
        // Every request carries a bearer token, which a rebinding page
        // cannot send: any Host may reach it. With auth off (loopback
        // only), only loopback Host names are served.
        config = config.disable_allowed_hosts();
    }
    config =
        config.with_max_request_body_bytes(usize::try_from(state.config().limits.max_body_bytes).unwrap_or(usize::MAX));
    Mcp::http_service(Arc::new(RouterGateway { api, default: None }), config)
}

/// An MCP server over this node's API, acting as the admin (`ctxmesh mcp`
/// on the embedded store, for one user) or as `agent` named by the admin.
pub fn local(state: AppState, agent: Option<&str>) -> Mcp {
    let api = crate::api(state);
    let caller =
        Caller { agent: agent.unwrap_or(crate::extract::ADMIN).to_owned(), admin: true, token: None, jwt: None };
    Mcp::new(Arc::new(RouterGateway { api, default: Some(caller) }))
}
