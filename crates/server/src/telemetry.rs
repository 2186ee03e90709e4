//! Traces: one span per HTTP request, named and described after the
//! OpenTelemetry HTTP conventions, continuing the W3C trace context
//! (`traceparent`, `tracestate`) the request carries.
//!
//! Every span of the server is a `tracing` span at the DEBUG level: it
//! costs nothing unless a subscriber wants it (`CTXMESH_LOG=debug`, or the
//! OpenTelemetry exporter of `ctxmesh serve --otlp-endpoint`), and the
//! exporter sends whichever reach it. The span names and attributes are
//! listed in docs/observability.md. Integer attributes are recorded as
//! `i64`: the OpenTelemetry layer exports unsigned ones as strings.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::extract::Caller;

/// The span of a request, in its extensions: the authenticated caller is
/// recorded on it, and MCP tool calls made for the request are its
/// children.
#[derive(Clone, Debug)]
pub(crate) struct RequestSpan(pub(crate) tracing::Span);

/// The request headers, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The context id in `path` where `route` has `{ctx}`.
fn context_of<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    route.split('/').zip(path.split('/')).find(|(r, _)| *r == "{ctx}").map(|(_, p)| p)
}

/// Middleware: the request's span (`http.request`, exported as
/// `{method} {route}`), with the response's status recorded on it.
pub(crate) async fn trace(mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    // An MCP tool call goes through the router in process, for the MCP
    // request whose span it continues.
    let parent = req.extensions().get::<RequestSpan>().map(|s| s.0.clone());
    // No parent is a root span: the trace context of the request, if any,
    // is set below.
    let span = tracing::debug_span!(
        parent: parent.as_ref().and_then(|p| p.id()),
        "http.request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.as_deref(),
        url.path = req.uri().path(),
        http.response.status_code = tracing::field::Empty,
        ctxmesh.context = tracing::field::Empty,
        ctxmesh.agent = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return next.run(req).await;
    }
    if parent.is_none() {
        let cx = TraceContextPropagator::new().extract(&Headers(req.headers()));
        if opentelemetry::trace::TraceContextExt::has_active_span(&cx) {
            // Fails only without the OpenTelemetry layer (logs only).
            let _ = span.set_parent(cx);
        }
    }
    if let Some(ctx) = route.as_deref().and_then(|r| context_of(r, req.uri().path())) {
        span.record("ctxmesh.context", ctx);
    }
    // Set by the server itself (an MCP tool call), not by the network.
    if let Some(caller) = req.extensions().get::<Caller>() {
        span.record("ctxmesh.agent", caller.agent.as_str());
    }
    req.extensions_mut().insert(RequestSpan(span.clone()));
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    response
}

/// Middleware inside authentication: records the authenticated agent on
/// the request's span.
pub(crate) async fn record_caller(req: Request, next: Next) -> Response {
    if let (Some(RequestSpan(span)), Some(caller)) =
        (req.extensions().get::<RequestSpan>(), req.extensions().get::<Caller>())
    {
        span.record("ctxmesh.agent", caller.agent.as_str());
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_is_read_where_the_route_names_it() {
        assert_eq!(context_of("/v1/contexts/{ctx}/entries/{*key}", "/v1/contexts/c1/entries/a/b"), Some("c1"));
        assert_eq!(context_of("/v1/contexts/{ctx}", "/v1/contexts/c2"), Some("c2"));
        assert_eq!(context_of("/v1/agents/{id}", "/v1/agents/a1"), None);
    }
}
