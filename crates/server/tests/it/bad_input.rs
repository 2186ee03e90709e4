//! Bad input gets the right status and code, and changes nothing.

use ctxmesh_core::Limits;
use reqwest::Method;
use serde_json::json;

use crate::{TestServer, expect_error};

#[tokio::test]
async fn malformed_and_mistyped_bodies() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let rev = s.revision("c").await;
    let put = || s.req(Method::PUT, "/v1/contexts/c/entries/a");

    let r = put().header("content-type", "application/json").body("{\"value\": ").send().await.unwrap();
    expect_error(r, 400, "invalid_json").await;
    let r = put().header("content-type", "application/json").body("not json").send().await.unwrap();
    expect_error(r, 400, "invalid_json").await;
    let r = put().header("content-type", "text/plain").body("{\"value\": 1}").send().await.unwrap();
    expect_error(r, 415, "unsupported_media_type").await;
    let r = put().body("{\"value\": 1}").send().await.unwrap();
    expect_error(r, 415, "unsupported_media_type").await;
    let r = put().json(&json!({"kind": "note"})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = put().json(&json!({"value": 1, "confidence": "high"})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = put().json(&json!({"value": 1, "confidence": 7})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = put().json(&json!({"value": 1, "priority": "urgent"})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = put().json(&json!({"value": 1, "surprise": true})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = put().json(&json!({"value": 1, "ttl_ms": 10, "expires_at": "2100-01-01T00:00:00Z"})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = put().header("if-match", "yesterday").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = s.req(Method::POST, "/v1/contexts/c/txn").json(&json!({"success": "put everything"})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = s
        .req(Method::POST, "/v1/contexts")
        .json(&json!({"id": "d", "policy": {"strategy": "chaos"}}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_argument").await;

    assert_eq!(s.revision("c").await, rev, "nothing changed");
    assert_eq!(s.get_json("/v1/contexts/c/entries/a").await.0, 404);
    assert_eq!(s.get_json("/v1/contexts/d").await.0, 404);
}

#[tokio::test]
async fn invalid_ids_and_keys() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let r = s.req(Method::POST, "/v1/contexts").json(&json!({"id": "no spaces"})).send().await.unwrap();
    expect_error(r, 400, "invalid_id").await;
    let r = s.req(Method::POST, "/v1/contexts").json(&json!({"id": "-leading"})).send().await.unwrap();
    expect_error(r, 400, "invalid_id").await;
    let r = s.req(Method::POST, "/v1/contexts").json(&json!({"id": "x".repeat(129)})).send().await.unwrap();
    expect_error(r, 400, "invalid_id").await;
    expect_error(s.req(Method::GET, "/v1/contexts/bad%20id").send().await.unwrap(), 400, "invalid_id").await;
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/a%20b").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 400, "invalid_key").await;
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/a//b").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 400, "invalid_key").await;
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/a/").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 400, "invalid_key").await;
    let long = "k".repeat(513);
    let r =
        s.req(Method::PUT, &format!("/v1/contexts/c/entries/{long}")).json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 400, "invalid_key").await;
    let txn = json!({"success": [{"op": "put", "key": "bad key", "value": 1}]});
    expect_error(s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap(), 400, "invalid_key").await;
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/a")
        .header("x-agent-id", "bad agent")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_id").await;
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries?prefix=a%20").send().await.unwrap(), 400, "invalid_key")
        .await;
    assert_eq!(s.revision("c").await, 1);
}

#[tokio::test]
async fn unknown_contexts_and_entries() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    for (method, path) in [
        (Method::GET, "/v1/contexts/nope"),
        (Method::GET, "/v1/contexts/nope/entries"),
        (Method::GET, "/v1/contexts/nope/entries/a"),
        (Method::GET, "/v1/contexts/nope/history"),
        (Method::GET, "/v1/contexts/nope/document"),
        (Method::GET, "/v1/contexts/nope/events"),
        (Method::GET, "/v1/contexts/nope/diff?from=1"),
        (Method::DELETE, "/v1/contexts/nope"),
        (Method::GET, "/v1/contexts/c/entries/missing"),
        (Method::GET, "/v1/contexts/c/entries/missing/history"),
        (Method::DELETE, "/v1/contexts/c/entries/missing"),
    ] {
        let r = s.req(method.clone(), path).send().await.unwrap();
        expect_error(r, 404, "not_found").await;
    }
    let r = s.req(Method::PUT, "/v1/contexts/nope/entries/a").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 404, "not_found").await;
    let r = s.req(Method::POST, "/v1/contexts/nope/rollback").json(&json!({"to": 1})).send().await.unwrap();
    expect_error(r, 404, "not_found").await;
    let r = s.req(Method::POST, "/v1/contexts/c/rollback").json(&json!({"to": 0})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = s.req(Method::POST, "/v1/contexts/c/fork").json(&json!({"id": "d", "at": 0})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = s.req(Method::POST, "/v1/contexts/c/rollback").json(&json!({"to": "yesterday"})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    assert_eq!(s.revision("c").await, 1);
    assert_eq!(s.get_json("/v1/contexts/nope").await.0, 404, "a write to a missing context does not create it");
}

#[tokio::test]
async fn limits_answer_too_large() {
    let limits = Limits {
        max_body_bytes: 4096,
        max_value_bytes: 1024,
        max_key_bytes: 16,
        max_entries_per_context: 3,
        max_txn_ops: 4,
    };
    let s = TestServer::with_limits(limits).await;
    s.create(json!({"id": "c"})).await;
    let big_body = json!({"value": "x".repeat(5000)});
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/a").json(&big_body).send().await.unwrap();
    expect_error(r, 413, "too_large").await;
    let big_value = json!({"value": "x".repeat(2000)});
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/a").json(&big_value).send().await.unwrap();
    let body = expect_error(r, 413, "too_large").await;
    assert_eq!(body["error"]["details"]["limit"], 1024);
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/a-key-longer-than-16")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "too_large").await;
    let ops: Vec<_> = (0..5).map(|i| json!({"op": "get", "key": format!("k{i}")})).collect();
    let r = s.req(Method::POST, "/v1/contexts/c/txn").json(&json!({"success": ops})).send().await.unwrap();
    expect_error(r, 413, "too_large").await;
    for k in ["a", "b", "c"] {
        s.put("c", k, json!(1)).await;
    }
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/d").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(r, 413, "too_large").await;
    // Replacing an existing entry is still allowed at the limit.
    s.put("c", "a", json!(2)).await;
    assert_eq!(s.revision("c").await, 5);
    assert_eq!(s.get_json("/v1/contexts/c/entries/d").await.0, 404);
}

#[tokio::test]
async fn bad_query_parameters() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    for path in [
        "/v1/contexts/c/entries?limit=abc",
        "/v1/contexts/c/entries?limit=0",
        "/v1/contexts/c/entries?limit=100000",
        "/v1/contexts/c/entries?cursor=garbage",
        "/v1/contexts/c/entries?at=1&as_of=2020-01-01T00:00:00Z",
        "/v1/contexts/c/diff",
        "/v1/contexts/c/diff?from=2&to=1",
        "/v1/contexts/c/events?types=,",
        "/v1/contexts?cursor=%%%",
    ] {
        let r = s.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"]["code"].as_str().unwrap().starts_with("invalid_"), "{path}: {body}");
    }
}

/// Found by the API fuzz pass (scripts/fuzz-api): a lease too long for the
/// clock (`lease_ms` near `u64::MAX`) made registration panic in the
/// store's writer, after which the store answered every write with 503.
/// It is `400 invalid_argument`, and the store goes on working.
#[tokio::test]
async fn a_lease_too_long_for_the_clock_is_refused() {
    let s = TestServer::start().await;
    for lease_ms in [u64::MAX, i64::MAX as u64, 86_400_001] {
        let r =
            s.req(Method::POST, "/v1/agents").json(&json!({"id": "long", "lease_ms": lease_ms})).send().await.unwrap();
        let body = expect_error(r, 400, "invalid_argument").await;
        assert_eq!(body["error"]["details"]["field"], "lease_ms", "{body}");
    }
    assert_eq!(s.get_json("/v1/agents/long").await.0, 404, "nothing was registered");
    let r = s.req(Method::POST, "/v1/agents").json(&json!({"id": "ok"})).send().await.unwrap();
    assert_eq!(r.status(), 201, "the store still takes writes");
    let r = s.req(Method::PATCH, "/v1/agents/ok").json(&json!({"lease_ms": u64::MAX})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = s.req(Method::POST, "/v1/agents/ok/heartbeat").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Found by the API fuzz pass: the OpenAPI schema of a handoff request
/// allowed no object at all (its flattened context was closed to the
/// request's own fields). The request itself still refuses unknown fields.
#[tokio::test]
async fn a_handoff_request_refuses_unknown_fields() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    for id in ["a", "b"] {
        let r = s.req(Method::POST, "/v1/agents").json(&json!({"id": id})).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let handoff = |body: serde_json::Value| s.req(Method::POST, "/v1/handoffs").header("x-agent-id", "a").json(&body);
    let r = handoff(json!({"target": "b", "context": "c", "surprise": 1})).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = handoff(json!({"target": "b", "context": "c", "session": "s1", "user_intent": "ship it"}))
        .send()
        .await
        .unwrap();
    let (status, body) = crate::status_json(r).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["session"].as_str(), body["user_intent"].as_str()), (Some("s1"), Some("ship it")), "{body}");
}

/// Found by probing the fuzzed operations past the integer ranges their
/// document gives: `after=18446744073709551615` on a context's events
/// overflowed in the store's reader, which stopped that reader thread (a
/// handful of such requests left no reader, and every event read 503);
/// on a watch it overflowed in the handler. Revisions are at most
/// `i64::MAX`: anything above is `400 invalid_argument`.
#[tokio::test]
async fn a_revision_past_the_largest_is_refused() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "a", json!(1)).await;
    let too_far = u64::MAX;
    for _ in 0..20 {
        let r = s.req(Method::GET, &format!("/v1/contexts/c/events?after={too_far}")).send().await.unwrap();
        let body = expect_error(r, 400, "invalid_argument").await;
        assert_eq!(body["error"]["details"]["field"], "after", "{body}");
    }
    let r = s.req(Method::GET, &format!("/v1/contexts/c/events?after={}", i64::MAX)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the largest revision is a valid position");
    let (status, page) = s.get_json("/v1/contexts/c/events?after=0").await;
    assert_eq!((status, page["events"].as_array().map(Vec::len)), (200, Some(2)), "the store still reads: {page}");
    let r = s.req(Method::GET, &format!("/v1/contexts/c/watch?after={too_far}")).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r =
        s.req(Method::GET, "/v1/contexts/c/watch").header("last-event-id", too_far.to_string()).send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    assert_eq!(s.revision("c").await, 2);
}

/// Found the same way: a retention age too long for the clock was
/// accepted, and the next compaction of that context panicked in the
/// store's writer, after which the store answered every write with 503.
#[tokio::test]
async fn a_retention_age_too_long_for_the_clock_is_refused() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "retention": {"max_age_ms": 3_600_000}})).await;
    s.put("c", "a", json!(1)).await;
    let too_long = json!({"retention": {"max_age_ms": u64::MAX}});
    let r = s.req(Method::PATCH, "/v1/contexts/c").json(&too_long).send().await.unwrap();
    let body = expect_error(r, 400, "invalid_argument").await;
    assert_eq!(body["error"]["details"]["field"], "retention.max_age_ms", "{body}");
    let r = s
        .req(Method::POST, "/v1/contexts")
        .json(&json!({"id": "d", "retention": {"max_age_ms": u64::MAX}}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let (_, info) = s.get_json("/v1/contexts/c").await;
    assert_eq!(info["retention"]["max_age_ms"], 3_600_000, "nothing changed: {info}");
    let r = s.req(Method::POST, "/v1/contexts/c/compact").send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.put("c", "a", json!(2)).await;
    assert_eq!(s.revision("c").await, 3, "the store still takes writes");
}

/// A body of the wrong shape is answered with the path of the field that
/// is wrong and the shape accepted there, in the message and in
/// `details`, not with a position in a body the caller may not have
/// written itself.
#[tokio::test]
async fn a_shape_error_names_the_field_and_the_shape_it_takes() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let rev = s.revision("c").await;
    let refused = |body: &serde_json::Value, field: &str, expected: &str, got: &str| {
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("`{field}` has the wrong shape: expected ")), "{message}");
        assert!(message.contains(expected) && message.ends_with(got), "{message}");
        assert!(!message.contains("line 1") && !message.contains("column"), "{message}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
        assert!(body["error"]["details"]["expected"].is_object(), "{body}");
    };

    // Needs are an object of kinds, tags, keys and names, or a list of
    // names; not one name.
    let agent = json!({"id": "writer", "needs": "finding"});
    let r = s.req(Method::POST, "/v1/agents").json(&agent).send().await.unwrap();
    let body = expect_error(r, 400, "invalid_argument").await;
    refused(&body, "needs", r#""keys": [string], "kinds": [string], "names": [string]"#, "got a string");
    // Capabilities likewise.
    let agent = json!({"id": "writer", "capabilities": ["search"]});
    let r = s.req(Method::POST, "/v1/agents").json(&agent).send().await.unwrap();
    let body = expect_error(r, 400, "invalid_argument").await;
    refused(&body, "capabilities", r#""can_read": boolean"#, "got an array");
    assert_eq!(s.get_json("/v1/agents/writer").await.0, 404, "nothing registered");

    // Tags are a list of strings; relevance maps agents to numbers.
    let put = |body: serde_json::Value| s.req(Method::PUT, "/v1/contexts/c/entries/a").json(&body).send();
    let body = expect_error(put(json!({"value": 1, "tags": "market"})).await.unwrap(), 400, "invalid_argument").await;
    refused(&body, "tags", "[string]", "got a string");
    let body =
        expect_error(put(json!({"value": 1, "relevance": {"writer": "high"}})).await.unwrap(), 400, "invalid_argument")
            .await;
    refused(&body, "relevance.writer", "number", "got a string");
    // A field that is missing: the shape of the body is spelled out.
    let body = expect_error(put(json!({"kind": "note"})).await.unwrap(), 400, "invalid_argument").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("the body has the wrong shape: missing field `value`; accepted there: {"), "{message}");
    assert_eq!(body["error"]["details"]["field"], ".");
    assert_eq!(s.revision("c").await, rev, "nothing changed");
}

/// What the OpenAPI document says of a request is what the server
/// enforces: an object given as an array is refused at any depth (serde
/// alone reads a struct from the array of its fields), `If-Match` is an
/// entity tag, revisions in headers are digits only, and lengths count
/// characters, as JSON Schema does.
#[tokio::test]
async fn requests_are_held_to_the_document() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let rev = s.revision("c").await;

    // A struct's fields as an array, at the top and inside.
    let r = s.req(Method::PATCH, "/v1/contexts/c").json(&json!([null, null])).send().await.unwrap();
    let body = expect_error(r, 400, "invalid_argument").await;
    assert_eq!(body["error"]["details"]["field"], ".", "{body}");
    let r = s.req(Method::PATCH, "/v1/contexts/c").json(&json!({"retention": [5, null]})).send().await.unwrap();
    let body = expect_error(r, 400, "invalid_argument").await;
    assert_eq!(body["error"]["details"]["field"], "retention", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().ends_with("got an array"), "{body}");
    assert_eq!(s.revision("c").await, rev, "nothing changed");

    // If-Match: "1" or W/"1" or *, not a bare number.
    s.put("c", "a", json!(1)).await;
    let put = |tag: &'static str| {
        s.req(Method::PUT, "/v1/contexts/c/entries/a").header("if-match", tag).json(&json!({"value": 2})).send()
    };
    expect_error(put("2").await.unwrap(), 400, "invalid_argument").await;
    expect_error(put("\"+2\"").await.unwrap(), 400, "invalid_argument").await;
    let current = s.revision("c").await;
    let tag: &'static str = Box::leak(format!("W/\"{current}\"").into_boxed_str());
    assert_eq!(put(tag).await.unwrap().status(), 200);

    // Last-Event-ID and X-Fencing-Token take digits only.
    let r = s.req(Method::GET, "/v1/contexts/c/watch").header("last-event-id", "+1").send().await.unwrap();
    expect_error(r, 400, "invalid_argument").await;
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/b")
        .header("x-fencing-token", "deploy=+1")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_argument").await;

    // 128 characters of four bytes each make a valid tag; 129 do not.
    let tag = "𝄞".repeat(128);
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/t").json(&json!({"value": 1, "tags": [tag]})).send().await;
    assert_eq!(r.unwrap().status(), 201);
    let tag = "𝄞".repeat(129);
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/u").json(&json!({"value": 1, "tags": [tag]})).send().await;
    expect_error(r.unwrap(), 400, "invalid_argument").await;
}
