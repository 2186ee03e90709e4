//! Entries: writes with metadata and preconditions, patches, deletes, TTL,
//! schemas, listing and reads as of a revision or time.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestServer, expect_error, status_json};

#[tokio::test]
async fn put_and_get_with_all_metadata() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let body = json!({
        "value": {"revenue": 394.3}, "kind": "finding", "tags": ["apple", "q4"], "confidence": 0.9,
        "priority": "high", "depends_on": ["sources/10k"], "relevance": {"writer": 0.8},
        "expires_at": "2100-01-01T00:00:00Z", "confidential": true
    });
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/findings/apple-revenue")
        .header("x-agent-id", "researcher")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let (_, created) = status_json(r).await;
    let r = s.req(Method::GET, "/v1/contexts/c/entries/findings/apple-revenue").send().await.unwrap();
    assert_eq!(r.headers()["etag"], "\"2\"");
    let (status, got) = status_json(r).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    for field in ["value", "kind", "tags", "confidence", "priority", "depends_on", "relevance", "confidential"] {
        assert_eq!(got[field], body[field], "{field}");
    }
    assert_eq!(got["expires_at"], "2100-01-01T00:00:00Z");
    assert_eq!(got["author"], "researcher");
    assert_eq!(
        (got["revision"].as_u64(), got["version"].as_u64(), got["created_revision"].as_u64()),
        (Some(2), Some(1), Some(2))
    );
    assert_eq!(got["vclock"], json!({"researcher": 1}));
    assert!(got["updated_at"].is_string());

    // Replacing answers 200 and resets metadata that is not sent.
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/findings/apple-revenue")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, replaced) = status_json(r).await;
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["tags"], json!([]));
    assert_eq!(replaced["vclock"], json!({"researcher": 1, "anonymous": 1}));
}

#[tokio::test]
async fn stale_if_match_changes_nothing_and_returns_current() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let first = s.put("c", "doc", json!({"v": 1})).await;
    let second = s.put("c", "doc", json!({"v": 2})).await;
    let rev = s.revision("c").await;
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/doc")
        .header("if-match", format!("\"{}\"", first["revision"]))
        .json(&json!({"value": {"v": 3}}))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 412, "precondition_failed").await;
    assert_eq!(body["error"]["details"]["current"], second);
    assert_eq!(s.revision("c").await, rev, "no revision was used");
    assert_eq!(s.get_json("/v1/contexts/c/entries/doc").await.1["value"], json!({"v": 2}));

    // The current ETag succeeds.
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/doc")
        .header("if-match", format!("\"{}\"", second["revision"]))
        .json(&json!({"value": {"v": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // If-Match on a missing entry fails with no current entry.
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/none")
        .header("if-match", "*")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 412, "precondition_failed").await;
    assert!(body["error"]["details"]["current"].is_null());
    // With a revision, the message says the entry is missing and what to
    // do, without claiming it changed; deleted since it was read, it says
    // that.
    let put_at = |key: &'static str, revision: u64| {
        s.req(Method::PUT, &format!("/v1/contexts/c/entries/{key}"))
            .header("if-match", format!("\"{revision}\""))
            .json(&json!({"value": 1}))
    };
    let body = expect_error(put_at("none", 3).send().await.unwrap(), 412, "precondition_failed").await;
    assert_eq!(
        body["error"]["message"],
        "precondition failed for \"none\": the entry does not exist; read it again, or create it with If-None-Match: *"
    );
    let gone = s.put("c", "gone", json!(1)).await["revision"].as_u64().unwrap();
    assert_eq!(s.req(Method::DELETE, "/v1/contexts/c/entries/gone").send().await.unwrap().status(), 200);
    let body = expect_error(put_at("gone", gone).send().await.unwrap(), 412, "precondition_failed").await;
    assert_eq!(
        body["error"]["message"],
        "precondition failed for \"gone\": the entry does not exist; it was deleted since it was read (policy: reject)"
    );
}

#[tokio::test]
async fn if_none_match_creates_only_once() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let put =
        || s.req(Method::PUT, "/v1/contexts/c/entries/once").header("if-none-match", "*").json(&json!({"value": 1}));
    assert_eq!(put().send().await.unwrap().status(), 201);
    let body = expect_error(put().send().await.unwrap(), 412, "precondition_failed").await;
    assert_eq!(body["error"]["details"]["current"]["value"], 1);
}

#[tokio::test]
async fn patch_with_both_patch_formats() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/order")
        .json(&json!({"value": {"qty": 1, "sku": "x", "notes": ["a"]}, "tags": ["t"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let merge = s
        .req(Method::PATCH, "/v1/contexts/c/entries/order")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"qty": 2, "sku": null}"#)
        .send()
        .await
        .unwrap();
    let (status, e) = status_json(merge).await;
    assert_eq!(status, 200);
    assert_eq!(e["value"], json!({"qty": 2, "notes": ["a"]}));
    assert_eq!(e["tags"], json!(["t"]), "a patch keeps metadata");
    assert_eq!(e["version"], 2);

    let jp = s
        .req(Method::PATCH, "/v1/contexts/c/entries/order")
        .header("content-type", "application/json-patch+json")
        .header("if-match", format!("\"{}\"", e["revision"]))
        .body(r#"[{"op": "add", "path": "/notes/-", "value": "b"}, {"op": "test", "path": "/qty", "value": 2}]"#)
        .send()
        .await
        .unwrap();
    let (status, e) = status_json(jp).await;
    assert_eq!(status, 200);
    assert_eq!(e["value"]["notes"], json!(["a", "b"]));

    let rev = s.revision("c").await;
    let failing = s
        .req(Method::PATCH, "/v1/contexts/c/entries/order")
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/qty", "value": 99}]"#)
        .send()
        .await
        .unwrap();
    expect_error(failing, 400, "invalid_patch").await;
    assert_eq!(s.revision("c").await, rev);
    assert!(s.get_json("/v1/contexts/c/entries/order").await.1["value"].get("x").is_none());

    let plain = s.req(Method::PATCH, "/v1/contexts/c/entries/order").json(&json!({"qty": 3})).send().await.unwrap();
    expect_error(plain, 415, "unsupported_media_type").await;
    let missing = s
        .req(Method::PATCH, "/v1/contexts/c/entries/nothing")
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(missing, 404, "not_found").await;
}

#[tokio::test]
async fn delete_entries() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let e = s.put("c", "a", json!(1)).await;
    let stale = s.req(Method::DELETE, "/v1/contexts/c/entries/a").header("if-match", "\"1\"").send().await.unwrap();
    expect_error(stale, 412, "precondition_failed").await;
    let r = s
        .req(Method::DELETE, "/v1/contexts/c/entries/a")
        .header("if-match", format!("\"{}\"", e["revision"]))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!((status, body["revision"].as_u64()), (200, Some(3)));
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries/a").send().await.unwrap(), 404, "not_found").await;
    expect_error(s.req(Method::DELETE, "/v1/contexts/c/entries/a").send().await.unwrap(), 404, "not_found").await;
    assert_eq!(s.revision("c").await, 3, "deleting a missing entry uses no revision");
}

#[tokio::test]
async fn ttl_entries_expire_as_their_own_revision() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/tmp")
        .json(&json!({"value": 1, "ttl_ms": 150}))
        .send()
        .await
        .unwrap();
    let (_, e) = status_json(r).await;
    assert!(e["expires_at"].is_string());
    s.put("c", "keep", json!(2)).await;
    assert_eq!(s.get_json("/v1/contexts/c/entries/tmp").await.0, 200);
    // Wait (bounded) for the sweeper to commit the expiry.
    let mut expired_at = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, h) = s.get_json("/v1/contexts/c/entries/tmp/history").await;
        if h["versions"][0]["change"] == "expired" {
            expired_at = h["versions"][0]["revision"].as_u64();
            break;
        }
    }
    let expired_at = expired_at.expect("the sweeper removes expired entries");
    assert_eq!(expired_at, 4, "the removal is a revision of its own");
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries/tmp").send().await.unwrap(), 404, "not_found").await;
    let (_, list) = s.get_json("/v1/contexts/c/entries").await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);
    let (_, commits) = s.get_json("/v1/contexts/c/history").await;
    assert_eq!(commits["commits"][0]["kind"], "expire");
    assert_eq!(commits["commits"][0]["author"], "system");
    // Before the expiry it is still there.
    assert_eq!(s.get_json("/v1/contexts/c/entries/tmp?at=3").await.1["value"], 1);
}

#[tokio::test]
async fn schema_violation_names_the_pointer_and_changes_nothing() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "schemas": {"orders/*": {
        "type": "object", "required": ["qty"],
        "properties": {"qty": {"type": "integer", "minimum": 1}, "lines": {"type": "array", "items": {"type": "string"}}}
    }}}))
    .await;
    s.put("c", "orders/1", json!({"qty": 1})).await;
    let rev = s.revision("c").await;
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/orders/1")
        .json(&json!({"value": {"qty": 1, "lines": ["a", 2]}}))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 422, "schema_violation").await;
    assert_eq!(body["error"]["details"]["pointer"], "/lines/1");
    assert_eq!(body["error"]["details"]["pattern"], "orders/*");
    let r = s.req(Method::PUT, "/v1/contexts/c/entries/orders/2").json(&json!({"value": {}})).send().await.unwrap();
    expect_error(r, 422, "schema_violation").await;
    assert_eq!(s.revision("c").await, rev);
    assert_eq!(s.get_json("/v1/contexts/c/entries/orders/1").await.1["value"], json!({"qty": 1}));
    // Keys outside the pattern are free.
    s.put("c", "notes", json!("anything")).await;
}

#[tokio::test]
async fn list_by_prefix_pages_through_one_snapshot() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    for i in 0..5 {
        s.put("c", &format!("f/{i}"), json!(i)).await;
    }
    s.put("c", "other", json!(0)).await;
    let (_, page1) = s.get_json("/v1/contexts/c/entries?prefix=f/&limit=2").await;
    assert_eq!(page1["revision"], 7);
    let keys = |p: &Value| {
        p["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&page1), ["f/0", "f/1"]);
    // A write between pages does not show up in the paged snapshot.
    s.put("c", "f/2", json!("changed")).await;
    s.put("c", "f/22", json!("new")).await;
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = s.get_json(&format!("/v1/contexts/c/entries?prefix=f/&limit=2&cursor={cursor}")).await;
    assert_eq!(keys(&page2), ["f/2", "f/3"]);
    assert_eq!(page2["entries"][0]["value"], 2);
    let cursor = page2["next_cursor"].as_str().unwrap();
    let (_, page3) = s.get_json(&format!("/v1/contexts/c/entries?prefix=f/&limit=2&cursor={cursor}")).await;
    assert_eq!(keys(&page3), ["f/4"]);
    assert!(page3["next_cursor"].is_null());
}

#[tokio::test]
async fn reads_as_of_revision_and_time() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "a", json!(1)).await; // 2
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.put("c", "a", json!(2)).await; // 3
    s.put("c", "b", json!(3)).await; // 4
    assert_eq!(s.get_json("/v1/contexts/c/entries/a?at=2").await.1["value"], 1);
    assert_eq!(s.get_json("/v1/contexts/c/entries/a").await.1["value"], 2);
    let encoded = between.replace('+', "%2B");
    assert_eq!(s.get_json(&format!("/v1/contexts/c/entries/a?as_of={encoded}")).await.1["value"], 1);
    let (_, list) = s.get_json(&format!("/v1/contexts/c/entries?as_of={encoded}")).await;
    assert_eq!(list["revision"], 2);
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);
    let (_, doc) = s.get_json("/v1/contexts/c/document?at=3").await;
    assert_eq!(doc, json!({"revision": 3, "document": {"a": 2}}));
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries/b?at=3").send().await.unwrap(), 404, "not_found").await;
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries/a?at=99").send().await.unwrap(), 404, "not_found").await;
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries/a?at=0").send().await.unwrap(), 400, "invalid_argument")
        .await;
    expect_error(
        s.req(Method::GET, "/v1/contexts/c/entries/a?as_of=yesterday").send().await.unwrap(),
        400,
        "invalid_argument",
    )
    .await;
}

#[tokio::test]
async fn entry_history_and_keys_ending_in_history() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "conversation", json!("v1")).await;
    s.put("c", "conversation", json!("v2")).await;
    // An entry whose last segment is `history`, addressed with %2F.
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/conversation%2Fhistory")
        .json(&json!({"value": ["hi"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, e) = s.get_json("/v1/contexts/c/entries/conversation%2Fhistory").await;
    assert_eq!((e["key"].as_str(), &e["value"]), (Some("conversation/history"), &json!(["hi"])));
    let (status, h) = s.get_json("/v1/contexts/c/entries/conversation/history").await;
    assert_eq!(status, 200);
    assert_eq!(h["key"], "conversation");
    let values: Vec<&Value> = h["versions"].as_array().unwrap().iter().map(|v| &v["entry"]["value"]).collect();
    assert_eq!(values, [&json!("v2"), &json!("v1")]);
    let (_, page) = s.get_json("/v1/contexts/c/entries/conversation/history?limit=1").await;
    assert_eq!(page["versions"].as_array().unwrap().len(), 1);
    let before = page["next_before"].as_u64().unwrap();
    let (_, older) = s.get_json(&format!("/v1/contexts/c/entries/conversation/history?limit=1&before={before}")).await;
    assert_eq!(older["versions"][0]["entry"]["value"], "v1");
}
