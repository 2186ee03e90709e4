//! History over HTTP: commits, diff, rollback, fork, retention, events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestServer, expect_error, status_json};

fn changes(diff: &Value) -> Vec<(String, String)> {
    diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap().to_owned(), c["change"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn rollback_then_diff_shows_exactly_the_restoring_changes() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "plan", json!("v1")).await; // 2
    s.put("c", "notes/a", json!("a")).await; // 3
    s.put("c", "plan", json!("v2")).await; // 4
    s.put("c", "notes/b", json!("b")).await; // 5
    let r = s.req(Method::DELETE, "/v1/contexts/c/entries/notes/a").send().await.unwrap(); // 6
    assert_eq!(r.status(), 200);

    let r = s
        .req(Method::POST, "/v1/contexts/c/rollback")
        .header("x-agent-id", "fixer")
        .json(&json!({"to": 3}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!((status, body["revision"].as_u64()), (200, Some(7)));

    let (_, diff) = s.get_json("/v1/contexts/c/diff?from=6&to=7").await;
    assert_eq!(
        changes(&diff),
        [("notes/a".into(), "added".into()), ("notes/b".into(), "removed".into()), ("plan".into(), "modified".into())]
    );
    let plan = diff["changes"].as_array().unwrap().iter().find(|c| c["key"] == "plan").unwrap();
    assert_eq!((&plan["before"]["value"], &plan["after"]["value"]), (&json!("v2"), &json!("v1")));
    // The state now equals revision 3, and nothing between 3 and 7 differs.
    let (_, d) = s.get_json("/v1/contexts/c/diff?from=3&to=7").await;
    assert!(changes(&d).is_empty(), "{d}");
    // History was not rewritten.
    assert_eq!(s.get_json("/v1/contexts/c/entries/plan?at=4").await.1["value"], "v2");
    let (_, commits) = s.get_json("/v1/contexts/c/history?limit=1").await;
    assert_eq!(
        (&commits["commits"][0]["kind"], &commits["commits"][0]["author"]),
        (&json!("rollback"), &json!("fixer"))
    );
    let (_, events) = s.get_json("/v1/contexts/c/events?after=6&types=context.rolled_back").await;
    assert_eq!(events["events"][0]["data"]["to"], 3);
    // The default `to` is the current revision; `from=0` is the empty state.
    let (_, all) = s.get_json("/v1/contexts/c/diff?from=0").await;
    assert_eq!(all["to"], 7);
    assert_eq!(changes(&all).len(), 2);
}

#[tokio::test]
async fn fork_creates_a_context_from_a_revision() {
    let s = TestServer::start().await;
    s.create(json!({"id": "main", "labels": {"x": "y"}})).await;
    s.put("main", "a", json!(1)).await; // 2
    s.put("main", "a", json!(2)).await; // 3
    let r =
        s.req(Method::POST, "/v1/contexts/main/fork").json(&json!({"id": "experiment", "at": 2})).send().await.unwrap();
    let (status, info) = status_json(r).await;
    assert_eq!(status, 201);
    assert_eq!(info["forked_from"], json!({"context": "main", "revision": 2}));
    assert_eq!(info["labels"], json!({"x": "y"}));
    assert_eq!(s.get_json("/v1/contexts/experiment/entries/a").await.1["value"], 1);
    s.put("experiment", "a", json!(100)).await;
    assert_eq!(s.get_json("/v1/contexts/main/entries/a").await.1["value"], 2);
    let taken = s.req(Method::POST, "/v1/contexts/main/fork").json(&json!({"id": "experiment"})).send().await.unwrap();
    expect_error(taken, 409, "already_exists").await;
    let future =
        s.req(Method::POST, "/v1/contexts/main/fork").json(&json!({"id": "x", "at": 50})).send().await.unwrap();
    expect_error(future, 404, "not_found").await;
}

#[tokio::test]
async fn retention_compacts_and_old_reads_are_gone() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "retention": {"max_revisions": 2}})).await;
    for i in 0..5 {
        s.put("c", "k", json!(i)).await; // 2..=6
    }
    let r = s.req(Method::POST, "/v1/contexts/c/compact").send().await.unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["compacted_revision"], 5);
    let body =
        expect_error(s.req(Method::GET, "/v1/contexts/c/entries/k?at=3").send().await.unwrap(), 410, "compacted").await;
    assert_eq!(body["error"]["details"]["compacted_revision"], 5);
    expect_error(s.req(Method::GET, "/v1/contexts/c/diff?from=2&to=6").send().await.unwrap(), 410, "compacted").await;
    expect_error(s.req(Method::GET, "/v1/contexts/c/events?after=1").send().await.unwrap(), 410, "compacted").await;
    let rb = s.req(Method::POST, "/v1/contexts/c/rollback").json(&json!({"to": 2})).send().await.unwrap();
    expect_error(rb, 410, "compacted").await;
    assert_eq!(s.get_json("/v1/contexts/c/entries/k?at=5").await.1["value"], 3);
    assert_eq!(s.get_json("/v1/contexts/c/entries/k").await.1["value"], 4);
    assert_eq!(s.get_json("/v1/contexts/c").await.1["compacted_revision"], 5);
}

#[tokio::test]
async fn event_log_pages_are_gap_free() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    for i in 0..9 {
        s.put("c", &format!("k{i}"), json!(i)).await;
    }
    let mut after = 0;
    let mut revisions = Vec::new();
    loop {
        let (status, page) = s.get_json(&format!("/v1/contexts/c/events?after={after}&limit=4")).await;
        assert_eq!(status, 200);
        revisions.extend(page["events"].as_array().unwrap().iter().map(|e| e["revision"].as_u64().unwrap()));
        after = page["last_revision"].as_u64().unwrap();
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(revisions, (1..=10).collect::<Vec<u64>>());
}

#[tokio::test]
async fn event_history_filters_by_type_prefix_and_priority() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "a/1", json!(1)).await; // 2
    let r = s
        .req(Method::PUT, "/v1/contexts/c/entries/a/2")
        .json(&json!({"value": 2, "priority": "critical"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201); // 3
    s.put("c", "b/1", json!(3)).await; // 4
    let msg = json!({"context": "c", "priority": "high", "body": "look"});
    assert_eq!(s.req(Method::POST, "/v1/messages").json(&msg).send().await.unwrap().status(), 201); // 5
    let revisions =
        |v: &Value| v["events"].as_array().unwrap().iter().map(|e| e["revision"].as_u64().unwrap()).collect::<Vec<_>>();
    let (_, page) = s.get_json("/v1/contexts/c/events?prefix=a/").await;
    assert_eq!(revisions(&page), [1, 2, 3, 5], "events without a key pass a prefix filter");
    let (_, page) = s.get_json("/v1/contexts/c/events?min_priority=high").await;
    assert_eq!(revisions(&page), [3, 5]);
    let (_, page) = s.get_json("/v1/contexts/c/events?types=message,context.created").await;
    assert_eq!(revisions(&page), [1, 5]);
    assert_eq!(page["last_revision"], 5, "filtering does not change where to continue");
    expect_error(s.req(Method::GET, "/v1/contexts/c/events?prefix=a%20b").send().await.unwrap(), 400, "invalid_key")
        .await;
}

/// A commit's kind says what made it: a single put, patch or delete by
/// name, a transaction of several writes as `txn`.
#[tokio::test]
async fn a_commit_is_named_by_the_write_that_made_it() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "a", json!({"n": 1})).await;
    let r = s
        .req(Method::PATCH, "/v1/contexts/c/entries/a")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"n": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let txn = json!({"success": [{"op": "put", "key": "b", "value": 1}, {"op": "put", "key": "c", "value": 2}]});
    assert_eq!(s.req(Method::POST, "/v1/contexts/c/txn").json(&txn).send().await.unwrap().status(), 200);
    let one = json!({"success": [{"op": "get", "key": "a"}, {"op": "delete", "key": "b"}]});
    assert_eq!(s.req(Method::POST, "/v1/contexts/c/txn").json(&one).send().await.unwrap().status(), 200);
    assert_eq!(s.req(Method::DELETE, "/v1/contexts/c/entries/c").send().await.unwrap().status(), 200);
    let (_, history) = s.get_json("/v1/contexts/c/history").await;
    let mut kinds: Vec<(u64, String)> = history["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["revision"].as_u64().unwrap(), c["kind"].as_str().unwrap().to_owned()))
        .collect();
    kinds.sort_unstable();
    let kinds: Vec<&str> = kinds.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(kinds, ["create", "put", "patch", "txn", "delete", "delete"], "{history}");
}
