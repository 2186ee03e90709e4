//! Operations endpoints.

use reqwest::Method;
use serde_json::json;

use crate::{TestServer, expect_error};

#[tokio::test]
async fn health_and_readiness() {
    let s = TestServer::start().await;
    assert_eq!(s.get_json("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(s.get_json("/readyz").await, (200, json!({"status": "ready"})));
    expect_error(s.req(Method::GET, "/v2/nothing").send().await.unwrap(), 404, "not_found").await;
    expect_error(s.req(Method::POST, "/v1/contexts/c").send().await.unwrap(), 405, "method_not_allowed").await;
}

#[tokio::test]
async fn metrics_expose_route_latency_and_commit_figures() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "a", json!(1)).await;
    let text = s.req(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(text.contains("ctxmesh_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("route=\"/v1/contexts/{ctx}/entries/{*key}\""), "{text}");
    assert!(text.contains("ctxmesh_commit_batch_size_bucket"), "{text}");
    assert!(text.contains("ctxmesh_fsync_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn openapi_documents_the_api() {
    let s = TestServer::start().await;
    let (status, spec) = s.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    for p in [
        "/v1/contexts",
        "/v1/contexts/{ctx}",
        "/v1/contexts/{ctx}/entries",
        "/v1/contexts/{ctx}/entries/{key}",
        "/v1/contexts/{ctx}/txn",
        "/v1/contexts/{ctx}/document",
        "/v1/contexts/{ctx}/history",
        "/v1/contexts/{ctx}/diff",
        "/v1/contexts/{ctx}/rollback",
        "/v1/contexts/{ctx}/fork",
        "/v1/contexts/{ctx}/events",
        "/v1/contexts/{ctx}/watch",
        "/v1/messages",
        "/v1/ws",
        "/v1/whoami",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for s in ["Entry", "ContextInfo", "TxnRequest", "ErrorBody", "Identity"] {
        assert!(schemas.contains_key(s), "schema {s}");
    }
}
