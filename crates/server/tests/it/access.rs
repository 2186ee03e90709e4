//! Entry-level access, on both stores: confidential entries, policies over
//! key patterns and tags, event streams filtered per subscriber, open
//! streams that end when access is revoked, and contexts that reveal
//! nothing of each other.

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{Frame, TestServer, sse_frames, status_json};

const ADMIN: &str = "admin-secret-for-access-tests";

on_both_stores!(
    confidential_entries,
    rules_over_keys_and_tags,
    streams_are_filtered_per_subscriber,
    revoked_access_ends_open_streams,
    a_grant_on_one_context_reveals_nothing_of_another,
    a_reader_batches_reads_in_a_transaction_and_writes_none,
);

async fn call(s: &TestServer, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.req(method, path).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    status_json(req.send().await.unwrap()).await
}

/// The raw body of a request, for leak checks.
async fn text(s: &TestServer, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, String) {
    let mut req = s.req(method, path).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn register(s: &TestServer, id: &str) -> String {
    let (status, a) = call(s, Method::POST, "/v1/agents", ADMIN, Some(json!({"id": id}))).await;
    assert_eq!(status, 201, "{a}");
    a["token"].as_str().unwrap().to_owned()
}

async fn ok(s: &TestServer, method: Method, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = call(s, method.clone(), path, token, Some(body)).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
    answer
}

async fn policy(s: &TestServer, rule: Value) {
    ok(s, Method::POST, "/v1/policies", ADMIN, rule).await;
}

fn keys(list: &Value, field: &str) -> Vec<String> {
    list[field].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap().to_owned()).collect()
}

/// Every read of context `ctx` an agent may try, as GET paths.
fn read_paths(ctx: &str, key: &str) -> Vec<String> {
    vec![
        format!("/v1/contexts/{ctx}"),
        format!("/v1/contexts/{ctx}/entries"),
        format!("/v1/contexts/{ctx}/entries?at=3"),
        format!("/v1/contexts/{ctx}/entries/{key}"),
        format!("/v1/contexts/{ctx}/entries/{key}?at=3"),
        format!("/v1/contexts/{ctx}/entries/{key}/history"),
        format!("/v1/contexts/{ctx}/document"),
        format!("/v1/contexts/{ctx}/history"),
        format!("/v1/contexts/{ctx}/diff?from=0"),
        format!("/v1/contexts/{ctx}/events?after=0"),
        format!("/v1/contexts/{ctx}/locks"),
        format!("/v1/contexts/{ctx}/tasks"),
    ]
}

/// alice creates `ctx`; bob reads it by a grant, carol by an allow policy.
async fn three_agents(s: &TestServer, ctx: &str) -> (String, String, String) {
    let (alice, bob, carol) = (register(s, "alice").await, register(s, "bob").await, register(s, "carol").await);
    ok(s, Method::POST, "/v1/contexts", &alice, json!({"id": ctx})).await;
    let grant = json!({"agents": ["bob"], "permissions": ["read"]});
    ok(s, Method::POST, &format!("/v1/contexts/{ctx}/grants"), &alice, grant).await;
    policy(
        s,
        json!({"id": "carol-in", "effect": "allow", "contexts": ctx, "agents": "carol",
        "permissions": ["read", "write"]}),
    )
    .await;
    (alice, bob, carol)
}

async fn confidential_entries(s: TestServer) {
    let (alice, bob, carol) = three_agents(&s, "c").await;
    let path = |k: &str| format!("/v1/contexts/c/entries/{k}");
    ok(&s, Method::PUT, &path("public"), &alice, json!({"value": "open"})).await; // 2
    let secret = json!({"value": {"plan": "TOPSECRET-1"}, "confidential": true});
    ok(&s, Method::PUT, &path("secret"), &alice, secret).await; // 3
    let secret = json!({"value": {"plan": "TOPSECRET-2"}, "confidential": true});
    let written = ok(&s, Method::PUT, &path("secret"), &alice, secret).await; // 4
    assert_eq!(written["confidential"], true);

    // A grant with read is explicit: bob reads it.
    let (status, entry) = call(&s, Method::GET, &path("secret"), &bob, None).await;
    assert_eq!((status, entry["value"]["plan"].as_str()), (200, Some("TOPSECRET-2")));
    let (_, listed) = call(&s, Method::GET, "/v1/contexts/c/entries", &bob, None).await;
    assert_eq!(keys(&listed, "entries"), ["public", "secret"]);

    // A policy is not: for carol the entry does not exist, wherever she looks.
    let (status, e) = call(&s, Method::GET, &path("secret"), &carol, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (_, listed) = call(&s, Method::GET, "/v1/contexts/c/entries", &carol, None).await;
    assert_eq!(keys(&listed, "entries"), ["public"]);
    let (_, doc) = call(&s, Method::GET, "/v1/contexts/c/document", &carol, None).await;
    assert_eq!(doc["document"], json!({"public": "open"}));
    let (_, history) = call(&s, Method::GET, "/v1/contexts/c/history", &carol, None).await;
    let changed: Vec<&str> = history["commits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["keys"].as_array().unwrap())
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(changed, ["public"], "commits name no confidential key: {history}");
    let (_, history) = call(&s, Method::GET, "/v1/contexts/c/history", &bob, None).await;
    assert_eq!(history["commits"][0]["keys"], json!(["secret"]), "bob's history does");
    let (_, diff) = call(&s, Method::GET, "/v1/contexts/c/diff?from=0", &carol, None).await;
    assert_eq!(keys(&diff, "changes"), ["public"]);
    let (_, events) = call(&s, Method::GET, "/v1/contexts/c/events?after=0", &carol, None).await;
    assert!(events["events"].as_array().unwrap().iter().all(|e| e["key"] != "secret"), "{events}");
    let get_all = json!({"success": [{"op": "get", "prefix": ""}]});
    let (_, got) = call(&s, Method::POST, "/v1/contexts/c/txn", &carol, Some(get_all)).await;
    assert_eq!(keys(&got["results"][0], "entries"), ["public"]);
    for p in read_paths("c", "secret") {
        let (status, body) = text(&s, Method::GET, &p, &carol, None).await;
        assert!(status == 200 || status == 404, "{p}: {status} {body}");
        assert!(!body.contains("TOPSECRET") && !body.contains("\"secret\""), "{p} leaked: {body}");
    }
    // Comparing its value would read it; a stale write reports no entry.
    let probe = json!({"compare": [{"key": "secret", "value": {"plan": "TOPSECRET-2"}}], "success": []});
    let (status, e) = call(&s, Method::POST, "/v1/contexts/c/txn", &carol, Some(probe)).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")));
    let stale = s.req(Method::PUT, &path("secret")).bearer_auth(&carol).header("if-match", "\"1\"");
    let (status, body) = text_of(stale.json(&json!({"value": 0}))).await;
    assert_eq!(status, 412);
    assert!(!body.contains("TOPSECRET"), "{body}");
    // Nor a fork: it would copy the entry.
    let (status, _) = call(&s, Method::POST, "/v1/contexts/c/fork", &carol, Some(json!({"id": "c-copy"}))).await;
    assert_eq!(status, 403);
    let (status, _) = call(&s, Method::POST, "/v1/contexts/c/fork", &bob, Some(json!({"id": "c-copy"}))).await;
    assert_eq!(status, 201, "a grant holder forks");

    // No event carries a confidential value, not even to those who may read it.
    let (_, events) = call(&s, Method::GET, "/v1/contexts/c/events?after=0", &bob, None).await;
    let secret_events: Vec<&Value> =
        events["events"].as_array().unwrap().iter().filter(|e| e["key"] == "secret").collect();
    assert_eq!(secret_events.len(), 2);
    for e in secret_events {
        assert_eq!(
            (e["data"]["confidential"].as_bool(), e["data"]["value_omitted"].as_bool()),
            (Some(true), Some(true))
        );
        assert!(e["data"].get("value").is_none(), "{e}");
    }
    let (_, events) = call(&s, Method::GET, "/v1/contexts/c/events?after=0", ADMIN, None).await;
    assert!(!events.to_string().contains("TOPSECRET"), "the log itself never holds it");

    // The admin and the creator read it; its last writer does too.
    for token in [ADMIN, alice.as_str()] {
        assert_eq!(call(&s, Method::GET, &path("secret"), token, None).await.0, 200);
    }
    ok(&s, Method::PUT, &path("carols"), &carol, json!({"value": "mine", "confidential": true})).await;
    assert_eq!(call(&s, Method::GET, &path("carols"), &carol, None).await.0, 200, "its writer reads it");
    // Once it is no longer confidential, the policy reaches it.
    ok(&s, Method::PUT, &path("secret"), &alice, json!({"value": "declassified"})).await;
    assert_eq!(call(&s, Method::GET, &path("secret"), &carol, None).await.1["value"], "declassified");
}

async fn text_of(req: reqwest::RequestBuilder) -> (u16, String) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn rules_over_keys_and_tags(s: TestServer) {
    let alice = register(&s, "alice").await;
    let (dave, erin) = (register(&s, "dave").await, register(&s, "erin").await);
    ok(&s, Method::POST, "/v1/contexts", &alice, json!({"id": "r"})).await;
    let path = |k: &str| format!("/v1/contexts/r/entries/{k}");
    ok(&s, Method::PUT, &path("drafts/a"), &alice, json!({"value": "draft"})).await;
    ok(&s, Method::PUT, &path("final/b"), &alice, json!({"value": "FINAL-TEXT"})).await;
    ok(&s, Method::PUT, &path("hr/pay/2026"), &alice, json!({"value": "SALARIES"})).await;
    ok(&s, Method::PUT, &path("notes/n"), &alice, json!({"value": "frozen note", "tags": ["frozen"]})).await;

    // A pattern that is not one is refused.
    let bad = json!({"id": "bad", "effect": "deny", "keys": "a//b"});
    assert_eq!(call(&s, Method::POST, "/v1/policies", ADMIN, Some(bad)).await.0, 400);

    // erin holds no grant: an allow rule opens the drafts to her, and only them.
    policy(
        &s,
        json!({"id": "erin-drafts", "effect": "allow", "agents": "erin", "keys": "drafts/*",
        "permissions": ["read", "write"]}),
    )
    .await;
    assert_eq!(call(&s, Method::GET, &path("drafts/a"), &erin, None).await.0, 200);
    assert_eq!(call(&s, Method::GET, &path("final/b"), &erin, None).await.0, 404);
    let (_, listed) = call(&s, Method::GET, "/v1/contexts/r/entries", &erin, None).await;
    assert_eq!(keys(&listed, "entries"), ["drafts/a"]);
    assert_eq!(call(&s, Method::PUT, &path("drafts/new"), &erin, Some(json!({"value": 1}))).await.0, 201);
    let (status, e) = call(&s, Method::PUT, &path("final/new"), &erin, Some(json!({"value": 1}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(call(&s, Method::GET, &path("final/new"), ADMIN, None).await.0, 404, "nothing was written");
    // Rules over entries never give powers over the whole context.
    assert_eq!(call(&s, Method::DELETE, "/v1/contexts/r", &erin, None).await.0, 403);
    assert_eq!(call(&s, Method::POST, "/v1/contexts/r/rollback", &erin, Some(json!({"to": 2}))).await.0, 403);
    assert_eq!(call(&s, Method::GET, "/v1/contexts/r/grants", &erin, None).await.0, 403);

    // dave holds a grant; deny rules over keys and tags carve entries out of it.
    let grant = json!({"agents": ["dave"], "permissions": ["read", "write"]});
    ok(&s, Method::POST, "/v1/contexts/r/grants", &alice, grant).await;
    policy(&s, json!({"id": "no-hr", "effect": "deny", "agents": "dave", "keys": "hr/**", "permissions": ["read"]}))
        .await;
    policy(&s, json!({"id": "frozen", "effect": "deny", "tags": ["frozen"], "permissions": ["write"]})).await;
    assert_eq!(call(&s, Method::GET, &path("hr/pay/2026"), &dave, None).await.0, 404);
    let (_, listed) = call(&s, Method::GET, "/v1/contexts/r/entries", &dave, None).await;
    assert_eq!(keys(&listed, "entries"), ["drafts/a", "drafts/new", "final/b", "notes/n"]);
    for p in read_paths("r", "hr/pay/2026") {
        let (_, body) = text(&s, Method::GET, &p, &dave, None).await;
        // (The entry's own paths echo the key asked for, nothing more.)
        let echoed = p.contains("hr/pay");
        assert!(!body.contains("SALARIES") && (echoed || !body.contains("hr/pay")), "{p} leaked: {body}");
    }
    assert_eq!(call(&s, Method::GET, &path("notes/n"), &dave, None).await.0, 200, "frozen entries are readable");
    // Writes to a frozen entry, or that would freeze one, are refused whole.
    let refused = [
        (Method::PUT, path("notes/n"), Some(json!({"value": "changed"}))),
        (Method::DELETE, path("notes/n"), None),
        (Method::PUT, path("notes/m"), Some(json!({"value": 1, "tags": ["frozen"]}))),
        (
            Method::POST,
            "/v1/contexts/r/txn".to_owned(),
            Some(
                json!({"success": [{"op": "put", "key": "drafts/z", "value": 1}, {"op": "delete_prefix", "prefix": "notes/"}]}),
            ),
        ),
    ];
    for (method, p, body) in refused {
        let (status, e) = call(&s, method.clone(), &p, &dave, body).await;
        assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "{method} {p}");
    }
    let (_, note) = call(&s, Method::GET, &path("notes/n"), ADMIN, None).await;
    assert_eq!(note["value"], "frozen note");
    assert_eq!(
        call(&s, Method::GET, &path("drafts/z"), ADMIN, None).await.0,
        404,
        "a refused transaction changes nothing"
    );
    assert_eq!(call(&s, Method::PUT, &path("notes/o"), &dave, Some(json!({"value": 1}))).await.0, 201);
    // The admin token is not bound by policies.
    assert_eq!(call(&s, Method::PUT, &path("notes/n"), ADMIN, Some(json!({"value": "thawed"}))).await.0, 200);
    // Refusals entry by entry are in the audit log, with what was refused.
    let records = audited(&s, "agent=dave&allowed=false", |r| r["reason"].as_str().unwrap().contains("notes/n")).await;
    assert_eq!(records[0]["context"], "r");
}

/// Waits for the audit log (written in batches) to hold a record that
/// `wanted` accepts among those `query` selects; returns them.
async fn audited(s: &TestServer, query: &str, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let (_, audit) = call(s, Method::GET, &format!("/v1/audit?{query}"), ADMIN, None).await;
        let records: Vec<Value> = audit["records"].as_array().unwrap().iter().filter(|r| wanted(r)).cloned().collect();
        if !records.is_empty() {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no audit record for {query}");
}

/// Opens the SSE watch of `ctx` for `token` from revision `after`.
async fn watch(s: &TestServer, ctx: &str, token: &str, after: u64) -> reqwest::Response {
    let r =
        s.req(Method::GET, &format!("/v1/contexts/{ctx}/watch?after={after}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r
}

fn updates(frames: &[Frame]) -> Vec<Value> {
    frames.iter().filter(|f| f.kind == "context.updated").map(|f| f.data.clone()).collect()
}

fn progressed_to(frames: &[Frame], revision: u64) -> bool {
    frames.iter().any(|f| f.kind == "progress" && f.data["revision"].as_u64() >= Some(revision))
}

async fn streams_are_filtered_per_subscriber(s: TestServer) {
    let (alice, bob, carol) = three_agents(&s, "w").await;
    let start = call(&s, Method::GET, "/v1/contexts/w", &alice, None).await.1["revision"].as_u64().unwrap();
    let (bob_watch, carol_watch) = (watch(&s, "w", &bob, start).await, watch(&s, "w", &carol, start).await);
    // carol's WebSocket subscription too.
    let url = format!("{}/v1/ws", s.base.replace("http://", "ws://"));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {carol}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let subscribe = json!({"op": "subscribe", "sub": "s", "context": "w", "after": start});
    socket.send(Message::Text(subscribe.to_string().into())).await.unwrap();

    let path = |k: &str| format!("/v1/contexts/w/entries/{k}");
    ok(&s, Method::PUT, &path("p1"), &alice, json!({"value": "one"})).await;
    ok(&s, Method::PUT, &path("s1"), &alice, json!({"value": "HIDDEN", "confidential": true})).await;
    let last = ok(&s, Method::PUT, &path("p2"), &alice, json!({"value": "two"})).await["revision"].as_u64().unwrap();

    let (frames, _) = sse_frames(bob_watch, |f| updates(f).len() >= 3).await;
    let got = updates(&frames);
    assert_eq!(got.iter().map(|e| e["key"].as_str().unwrap()).collect::<Vec<_>>(), ["p1", "s1", "p2"]);
    assert!(got[1]["data"].get("value").is_none() && got[1]["data"]["confidential"] == true);

    let (frames, _) = sse_frames(carol_watch, |f| progressed_to(f, last)).await;
    let got = updates(&frames);
    assert_eq!(got.iter().map(|e| e["key"].as_str().unwrap()).collect::<Vec<_>>(), ["p1", "p2"]);
    assert!(!frames.iter().any(|f| f.data.to_string().contains("HIDDEN") || f.data["key"] == "s1"));

    let mut seen = Vec::new();
    let read = async {
        while let Some(Ok(Message::Text(t))) = socket.next().await {
            let m: Value = serde_json::from_str(&t).unwrap();
            let done = m["type"] == "progress" && m["revision"].as_u64() >= Some(last);
            seen.push(m);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read).await.expect("the WebSocket progresses");
    let keys: Vec<&str> = seen
        .iter()
        .filter(|m| m["type"] == "events")
        .flat_map(|m| m["events"].as_array().unwrap())
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(keys, ["p1", "p2"], "{seen:?}");
}

fn ended_with(frames: &[Frame], code: &str) -> bool {
    frames.last().is_some_and(|f| f.kind == "error" && f.data["error"]["code"] == code)
}

async fn revoked_access_ends_open_streams(s: TestServer) {
    let (alice, bob, carol) = three_agents(&s, "v").await;
    let path = |k: &str| format!("/v1/contexts/v/entries/{k}");
    let start = call(&s, Method::GET, "/v1/contexts/v", &alice, None).await.1["revision"].as_u64().unwrap();

    // A revoked grant: the stream delivers up to the revocation, then ends.
    let bob_watch = watch(&s, "v", &bob, start).await;
    ok(&s, Method::PUT, &path("before"), &alice, json!({"value": "seen"})).await;
    let (status, _) = call(&s, Method::DELETE, "/v1/contexts/v/grants?agent=bob", &alice, None).await;
    assert_eq!(status, 204);
    ok(&s, Method::PUT, &path("after"), &alice, json!({"value": "NOT-FOR-BOB"})).await;
    let (frames, _) = sse_frames(bob_watch, |f| f.iter().any(|f| f.kind == "error")).await;
    assert!(ended_with(&frames, "forbidden"), "{frames:?}");
    assert_eq!(updates(&frames).len(), 1, "{frames:?}");
    assert!(frames.iter().any(|f| f.kind == "context.revoked"));
    assert!(!frames.iter().any(|f| f.data.to_string().contains("NOT-FOR-BOB")));

    // A removed policy: within the recheck interval (200 ms in tests).
    let carol_watch = watch(&s, "v", &carol, start).await;
    assert_eq!(call(&s, Method::DELETE, "/v1/policies/carol-in", ADMIN, None).await.0, 204);
    let (frames, _) = sse_frames(carol_watch, |f| f.iter().any(|f| f.kind == "error")).await;
    assert!(ended_with(&frames, "forbidden"), "{frames:?}");

    // A revoked token ends the inbox stream and the context watch alike.
    let grant = json!({"agents": ["bob"], "permissions": ["read"]});
    ok(&s, Method::POST, "/v1/contexts/v/grants", &alice, grant).await;
    let bob_watch = watch(&s, "v", &bob, start).await;
    let inbox = s.req(Method::GET, "/v1/agents/bob/inbox/watch").bearer_auth(&bob).send().await.unwrap();
    assert_eq!(inbox.status(), 200);
    assert_eq!(call(&s, Method::DELETE, "/v1/agents/bob/token", ADMIN, None).await.0, 204);
    for stream in [bob_watch, inbox] {
        let (frames, _) = sse_frames(stream, |f| f.iter().any(|f| f.kind == "error")).await;
        assert!(ended_with(&frames, "unauthenticated"), "{frames:?}");
    }
    // The refusals are in the audit log.
    for agent in ["bob", "carol"] {
        audited(&s, &format!("context=v&allowed=false&agent={agent}"), |r| {
            r["resource"].as_str().unwrap().contains("watch")
        })
        .await;
    }
}

async fn a_grant_on_one_context_reveals_nothing_of_another(s: TestServer) {
    let (alice, bob) = (register(&s, "alice").await, register(&s, "bob").await);
    for ctx in ["a", "b"] {
        ok(&s, Method::POST, "/v1/contexts", &alice, json!({"id": ctx})).await;
    }
    let grant = json!({"agents": ["bob"], "permissions": ["read", "write"]});
    ok(&s, Method::POST, "/v1/contexts/a/grants", &alice, grant).await;
    ok(&s, Method::PUT, "/v1/contexts/b/entries/k", &alice, json!({"value": "B-ONLY"})).await;
    ok(&s, Method::PUT, "/v1/contexts/b/entries/k", &alice, json!({"value": "B-ONLY-2"})).await;
    let start = call(&s, Method::GET, "/v1/contexts/a", &bob, None).await.1["revision"].as_u64().unwrap();
    let a_watch = watch(&s, "a", &bob, start).await;

    let (_, listed) = call(&s, Method::GET, "/v1/contexts", &bob, None).await;
    let ids: Vec<&str> = listed["contexts"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a"]);
    let (_, shared) = call(&s, Method::GET, "/v1/agents/bob/shared", &bob, None).await;
    assert_eq!(shared["grants"].as_array().unwrap().len(), 1, "{shared}");
    let mut tries: Vec<(Method, String, Option<Value>)> =
        read_paths("b", "k").into_iter().map(|p| (Method::GET, p, None)).collect();
    tries.extend([
        (Method::GET, "/v1/contexts/b/watch?after=0".to_owned(), None),
        (Method::GET, "/v1/contexts/b/package".to_owned(), None),
        (Method::GET, "/v1/contexts/b/search?q=only".to_owned(), None),
        (Method::GET, "/v1/contexts/b/conflicts?status=all".to_owned(), None),
        (Method::PUT, "/v1/contexts/b/entries/k".to_owned(), Some(json!({"value": 0}))),
        (Method::POST, "/v1/contexts/b/txn".to_owned(), Some(json!({"success": [{"op": "get", "key": "k"}]}))),
        (Method::POST, "/v1/contexts/b/fork".to_owned(), Some(json!({"id": "b2"}))),
        (Method::POST, "/v1/messages".to_owned(), Some(json!({"context": "b", "body": 1}))),
        (Method::POST, "/v1/handoffs".to_owned(), Some(json!({"target": "alice", "context": "b"}))),
    ]);
    for (method, p, body) in tries {
        let (status, text) = text(&s, method.clone(), &p, &bob, body).await;
        assert_eq!(status, 403, "{method} {p}: {text}");
        assert!(!text.contains("B-ONLY"), "{method} {p} leaked: {text}");
    }
    // The WebSocket refuses the subscription.
    let url = format!("{}/v1/ws", s.base.replace("http://", "ws://"));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {bob}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let subscribe = json!({"op": "subscribe", "sub": "s", "context": "b", "after": 0});
    socket.send(Message::Text(subscribe.to_string().into())).await.unwrap();
    let Some(Ok(Message::Text(answer))) = socket.next().await else { panic!("an answer") };
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!((answer["type"].as_str(), answer["error"]["code"].as_str()), (Some("error"), Some("forbidden")));

    // Writes to B never show in A's stream.
    ok(&s, Method::PUT, "/v1/contexts/b/entries/k2", &alice, json!({"value": "B-ONLY-3"})).await;
    let last = ok(&s, Method::PUT, "/v1/contexts/a/entries/x", &alice, json!({"value": "for-a"})).await;
    let last = last["revision"].as_u64().unwrap();
    let (frames, _) = sse_frames(a_watch, |f| progressed_to(f, last)).await;
    assert_eq!(updates(&frames).len(), 1);
    assert!(frames.iter().all(|f| !f.data.to_string().contains("B-ONLY")), "{frames:?}");
    // bob's package of A holds A's entry and nothing of B.
    ok(&s, Method::PATCH, "/v1/agents/bob", ADMIN, json!({"needs": {"keys": ["**"]}})).await;
    let (status, package) = text(&s, Method::GET, "/v1/contexts/a/package", &bob, None).await;
    assert_eq!(status, 200, "{package}");
    assert!(package.contains("for-a") && !package.contains("B-ONLY"), "{package}");
    // Nor does a search of A find anything of B.
    let (status, found) = text(&s, Method::GET, "/v1/contexts/a/search?q=b-only", &bob, None).await;
    assert_eq!(status, 200, "{found}");
    assert!(!found.contains("B-ONLY") && found.contains("\"hits\":[]"), "{found}");
    // Nor does bob get a package of B built for alice.
    let (status, _) = text(&s, Method::GET, "/v1/contexts/b/package?agent=alice", &bob, None).await;
    assert_eq!(status, 403);
}

/// A transaction needs `write` only when one of its operations writes (in
/// either branch): an agent that may only read batches its reads in one.
async fn a_reader_batches_reads_in_a_transaction_and_writes_none(s: TestServer) {
    let (alice, bob, _) = three_agents(&s, "t").await; // bob: read only
    ok(&s, Method::PUT, "/v1/contexts/t/entries/a", &alice, json!({"value": 1})).await;
    let last = ok(&s, Method::PUT, "/v1/contexts/t/entries/b/1", &alice, json!({"value": 2})).await;
    let reads = json!({
        "compare": [{"key": "a", "value": 1}],
        "success": [{"op": "get", "key": "a"}, {"op": "get", "prefix": "b/"}],
        "failure": [{"op": "get", "key": "b/1"}],
    });
    let (status, got) = call(&s, Method::POST, "/v1/contexts/t/txn", &bob, Some(reads)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["succeeded"], true);
    assert_eq!(got["revision"], last["revision"], "read at one revision");
    assert_eq!(keys(&got["results"][0], "entries"), ["a"]);
    assert_eq!(keys(&got["results"][1], "entries"), ["b/1"]);

    // One write makes it a write, refused whole; so does a write in the
    // failure branch, whether or not it would run.
    let writes = [
        json!({"success": [{"op": "get", "key": "a"}, {"op": "put", "key": "c", "value": 3}]}),
        json!({"compare": [{"key": "a", "value": 99}], "success": [], "failure": [{"op": "delete", "key": "a"}]}),
    ];
    for body in writes {
        let (status, e) = call(&s, Method::POST, "/v1/contexts/t/txn", &bob, Some(body.clone())).await;
        assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
        assert!(e["error"]["message"].as_str().unwrap().contains("may not write"), "{e}");
    }
    assert_eq!(call(&s, Method::GET, "/v1/contexts/t/entries/c", ADMIN, None).await.0, 404);
    assert_eq!(call(&s, Method::GET, "/v1/contexts/t/entries/a", ADMIN, None).await.0, 200);
    // alice, who may write, still does.
    let put = json!({"success": [{"op": "put", "key": "c", "value": 3}]});
    assert_eq!(call(&s, Method::POST, "/v1/contexts/t/txn", &alice, Some(put)).await.0, 200);

    // Each transaction is one decision in the audit log, with the
    // permission it needed.
    let txn = |r: &Value| r["resource"] == "POST /v1/contexts/t/txn";
    let mut decisions = Vec::new();
    for _ in 0..100 {
        decisions = audited(&s, "agent=bob&context=t", txn).await;
        if decisions.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<(&str, bool)> =
        decisions.iter().map(|r| (r["action"].as_str().unwrap(), r["allowed"].as_bool().unwrap())).collect();
    assert_eq!(seen, [("read", true), ("write", false), ("write", false)], "{decisions:?}");
}
