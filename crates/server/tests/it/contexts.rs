//! Contexts: create with settings, list with pagination, read, update, delete.

use reqwest::Method;
use serde_json::json;

use crate::{TestServer, expect_error, status_json};

#[tokio::test]
async fn create_with_settings_and_read_back() {
    let s = TestServer::start().await;
    let body = json!({
        "id": "task-1",
        "policy": {"strategy": "merge", "on_field_conflict": "last-write-wins", "require_precondition": false,
                   "overrides": [{"pattern": "plan/*", "strategy": "authority"}]},
        "schemas": {"order": {"type": "object"}},
        "retention": {"max_revisions": 100, "max_age_ms": 86400000},
        "labels": {"team": "research"}
    });
    let r = s.req(Method::POST, "/v1/contexts").header("x-agent-id", "alice").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/v1/contexts/task-1");
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(created["revision"], 1);
    assert_eq!(created["created_by"], "alice");
    let (status, got) = s.get_json("/v1/contexts/task-1").await;
    assert_eq!(status, 200);
    for field in ["policy", "schemas", "retention", "labels"] {
        assert_eq!(got[field], body[field], "{field}");
    }
    for field in ["id", "revision", "created_at", "parent"] {
        assert!(got.get(field).is_some(), "{field} in {got}");
    }
    let again = s.req(Method::POST, "/v1/contexts").json(&json!({"id": "task-1"})).send().await.unwrap();
    expect_error(again, 409, "already_exists").await;
}

#[tokio::test]
async fn list_is_paginated() {
    let s = TestServer::start().await;
    for i in 0..5 {
        s.create(json!({"id": format!("c{i}")})).await;
    }
    let mut ids = Vec::new();
    let mut path = "/v1/contexts?limit=2".to_owned();
    loop {
        let (status, page) = s.get_json(&path).await;
        assert_eq!(status, 200);
        ids.extend(page["contexts"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/contexts?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4"]);
}

#[tokio::test]
async fn update_settings_and_delete() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "labels": {"a": "1"}})).await;
    let r = s
        .req(Method::PATCH, "/v1/contexts/c")
        .json(&json!({"policy": {"strategy": "manual"}, "labels": {"b": "2"}}))
        .send()
        .await
        .unwrap();
    let (status, updated) = status_json(r).await;
    assert_eq!(status, 200);
    assert_eq!(updated["policy"]["strategy"], "manual", "other strategies are stored");
    assert_eq!(updated["labels"], json!({"b": "2"}));

    let bad =
        s.req(Method::PATCH, "/v1/contexts/c").json(&json!({"retention": {"max_revisions": 0}})).send().await.unwrap();
    expect_error(bad, 400, "invalid_argument").await;
    assert_eq!(s.get_json("/v1/contexts/c").await.1["labels"], json!({"b": "2"}), "a bad update changes nothing");

    s.put("c", "k", json!(1)).await;
    let r = s.req(Method::DELETE, "/v1/contexts/c").send().await.unwrap();
    assert_eq!(r.status(), 204);
    expect_error(s.req(Method::GET, "/v1/contexts/c").send().await.unwrap(), 404, "not_found").await;
    expect_error(s.req(Method::GET, "/v1/contexts/c/entries/k").send().await.unwrap(), 404, "not_found").await;
    expect_error(s.req(Method::DELETE, "/v1/contexts/c").send().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn invalid_schema_is_rejected_at_create() {
    let s = TestServer::start().await;
    let r = s
        .req(Method::POST, "/v1/contexts")
        .json(&json!({"id": "c", "schemas": {"order": {"type": "nonsense"}}}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_schema").await;
    expect_error(s.req(Method::GET, "/v1/contexts/c").send().await.unwrap(), 404, "not_found").await;
}
