//! Transactions over HTTP.

use reqwest::Method;
use serde_json::json;

use crate::{TestServer, expect_error, status_json};

#[tokio::test]
async fn failed_comparison_applies_only_the_failure_branch() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let a = s.put("c", "a", json!(1)).await;
    let txn = json!({
        "compare": [{"key": "a", "revision": a["revision"].as_u64().unwrap() + 10}, {"key": "b", "exists": false}],
        "success": [{"op": "put", "key": "a", "value": 2}, {"op": "put", "key": "b", "value": 2}],
        "failure": [{"op": "put", "key": "audit/lost-race", "value": true}, {"op": "get", "key": "a"}]
    });
    let r = s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["succeeded"], false);
    assert_eq!(body["results"][0]["op"], "put");
    assert_eq!(body["results"][1]["entries"][0]["value"], 1);
    assert_eq!(s.get_json("/v1/contexts/c/entries/a").await.1["value"], 1);
    assert_eq!(s.get_json("/v1/contexts/c/entries/b").await.0, 404);
    assert_eq!(s.get_json("/v1/contexts/c/entries/audit/lost-race").await.1["value"], true);
}

#[tokio::test]
async fn successful_transaction_is_one_revision() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "old/1", json!(1)).await;
    s.put("c", "old/2", json!(2)).await;
    let txn = json!({
        "compare": [{"key": "old/1", "value": 1}, {"key": "old/2", "version": 1}],
        "success": [
            {"op": "put", "key": "new", "value": {"n": 1}, "kind": "decision"},
            {"op": "patch", "key": "old/1", "merge_patch": {"x": 1}},
            {"op": "delete_prefix", "prefix": "old/2"},
            {"op": "get", "prefix": "old/"}
        ]
    });
    let (status, body) = status_json(s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["succeeded"], true);
    assert_eq!(body["revision"], 4);
    assert_eq!(body["results"][2]["deleted"], 1);
    assert_eq!(body["results"][3]["entries"].as_array().unwrap().len(), 1, "reads see earlier operations");
    let (_, commits) = s.get_json("/v1/contexts/c/history?limit=1").await;
    assert_eq!(commits["commits"][0]["keys"], json!(["new", "old/1", "old/2"]));
    // Every event of the transaction carries its revision.
    let (_, events) = s.get_json("/v1/contexts/c/events?after=3").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 3);
    assert!(events["events"].as_array().unwrap().iter().all(|e| e["revision"] == 4));
}

#[tokio::test]
async fn an_operation_that_fails_aborts_everything() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "schemas": {"n": {"type": "integer"}}})).await;
    let rev = s.revision("c").await;
    let txn = json!({"success": [{"op": "put", "key": "a", "value": 1}, {"op": "put", "key": "n", "value": "x"}]});
    let r = s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap();
    expect_error(r, 422, "schema_violation").await;
    assert_eq!(s.revision("c").await, rev);
    assert_eq!(s.get_json("/v1/contexts/c/entries/a").await.0, 404);

    let dup = json!({"success": [{"op": "put", "key": "a", "value": 1}, {"op": "delete", "key": "a"}]});
    expect_error(s.req(Method::POST, "/v1/contexts/c/txn").json(&dup).send().await.unwrap(), 400, "invalid_txn").await;
    let two_targets = json!({"compare": [{"key": "a", "revision": 1, "version": 1}]});
    expect_error(
        s.req(Method::POST, "/v1/contexts/c/txn").json(&two_targets).send().await.unwrap(),
        400,
        "invalid_txn",
    )
    .await;
    let unknown_op = json!({"success": [{"op": "upsert", "key": "a", "value": 1}]});
    expect_error(
        s.req(Method::POST, "/v1/contexts/c/txn").json(&unknown_op).send().await.unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    assert_eq!(s.revision("c").await, rev);
}

#[tokio::test]
async fn require_precondition_refuses_blind_writes() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "policy": {"require_precondition": true}})).await;
    let blind = s.req(Method::PUT, "/v1/contexts/c/entries/a").json(&json!({"value": 1})).send().await.unwrap();
    expect_error(blind, 428, "precondition_required").await;
    let guarded = s
        .req(Method::PUT, "/v1/contexts/c/entries/a")
        .header("if-none-match", "*")
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(guarded.status(), 201);
}

/// A `delete_prefix` writes the keys it deletes: one of them cannot be
/// written again in the same transaction, but a key under the prefix that
/// did not exist can.
#[tokio::test]
async fn a_new_key_under_a_deleted_prefix_may_be_written_after_it() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "scratch/a", json!(1)).await;
    let txn = json!({"success": [
        {"op": "delete_prefix", "prefix": "scratch/"},
        {"op": "put", "key": "scratch/b", "value": 2},
        {"op": "get", "prefix": "scratch/"}
    ]});
    let (status, body) = status_json(s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["deleted"], 1);
    let keys: Vec<&str> =
        body["results"][2]["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["scratch/b"]);
    let revision = s.revision("c").await;

    // scratch/b exists now: deleting it and writing it again is two writes.
    let (status, body) = status_json(s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_txn")), "{body}");
    assert_eq!(s.revision("c").await, revision, "nothing changed");
}
