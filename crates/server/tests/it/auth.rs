//! Authentication with bearer tokens, on both stores: the admin token,
//! agent tokens issued at registration, rotation and revocation, and the
//! agent-scoped rules that need no grants.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestServer, status_json};

const ADMIN: &str = "admin-secret-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_sqlite() {
    tokens(TestServer::with_tokens(Backend::Sqlite, ADMIN).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_postgres() {
    tokens(TestServer::with_tokens(Backend::postgres().await, ADMIN).await).await;
}

async fn call(s: &TestServer, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = s.req(method, path);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    status_json(req.send().await.unwrap()).await
}

async fn tokens(s: TestServer) {
    // No token, or a wrong one: 401 with a clear code, and nothing changes.
    for token in [None, Some("wrong")] {
        let r = s.req(Method::GET, "/v1/contexts");
        let r = match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let (_, e) = status_json(r).await;
        assert_eq!(e["error"]["code"], "unauthenticated");
    }
    let (status, _) = call(&s, Method::POST, "/v1/contexts", None, Some(json!({"id": "nope"}))).await;
    assert_eq!(status, 401);
    assert_eq!(call(&s, Method::GET, "/v1/contexts/nope", Some(ADMIN), None).await.0, 404, "nothing was created");
    assert_eq!(call(&s, Method::GET, "/v1/contexts/x/watch", None, None).await.0, 401, "streams too");
    // Operations need no token.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(s.req(Method::GET, path).send().await.unwrap().status(), 200, "{path}");
    }

    // The admin registers agents; each gets its token once.
    let (status, a) = call(&s, Method::POST, "/v1/agents", Some(ADMIN), Some(json!({"id": "alice"}))).await;
    assert_eq!(status, 201, "{a}");
    let alice = a["token"].as_str().unwrap().to_owned();
    let (_, b) = call(&s, Method::POST, "/v1/agents", Some(ADMIN), Some(json!({"id": "bob"}))).await;
    let bob = b["token"].as_str().unwrap().to_owned();
    let (_, shown) = call(&s, Method::GET, "/v1/agents/alice", Some(&alice), None).await;
    assert!(shown.get("token").is_none(), "a token is shown only at registration");
    let (status, e) = call(&s, Method::POST, "/v1/agents", Some(&alice), Some(json!({"id": "mallory"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "agents do not register agents");

    // An agent's token identifies it: it is the author of its writes.
    call(&s, Method::POST, "/v1/contexts", Some(&alice), Some(json!({"id": "work"}))).await;
    let (status, entry) =
        call(&s, Method::PUT, "/v1/contexts/work/entries/note", Some(&alice), Some(json!({"value": 1}))).await;
    assert_eq!((status, entry["author"].as_str()), (201, Some("alice")));
    let spoof = s
        .req(Method::PUT, "/v1/contexts/work/entries/note")
        .bearer_auth(&alice)
        .header("x-agent-id", "bob")
        .json(&json!({"value": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoof.status(), 403, "an agent cannot act as another");
    let acting = s
        .req(Method::PUT, "/v1/contexts/work/entries/note")
        .bearer_auth(ADMIN)
        .header("x-agent-id", "bob")
        .json(&json!({"value": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(acting).await.1["author"], "bob", "the admin may act for an agent");

    // An agent's own things are its own.
    assert_eq!(call(&s, Method::POST, "/v1/agents/alice/heartbeat", Some(&alice), None).await.0, 200);
    assert_eq!(call(&s, Method::POST, "/v1/agents/bob/heartbeat", Some(&alice), None).await.0, 403);
    assert_eq!(call(&s, Method::GET, "/v1/agents/bob/inbox", Some(&alice), None).await.0, 403);
    assert_eq!(call(&s, Method::GET, "/v1/agents/bob/inbox/watch", Some(&alice), None).await.0, 403);
    assert_eq!(call(&s, Method::GET, "/v1/agents/bob/inbox", Some(&bob), None).await.0, 200);
    let raise = json!({"trust": "full"});
    assert_eq!(call(&s, Method::PATCH, "/v1/agents/alice", Some(&alice), Some(raise.clone())).await.0, 403);
    assert_eq!(call(&s, Method::PATCH, "/v1/agents/alice", Some(ADMIN), Some(raise)).await.0, 200);

    // Rotation: the old token stops working at once, the new one works.
    let (status, rotated) = call(&s, Method::POST, "/v1/agents/alice/token", Some(&alice), None).await;
    assert_eq!(status, 200);
    let new_alice = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new_alice, alice);
    assert_eq!(call(&s, Method::GET, "/v1/contexts", Some(&alice), None).await.0, 401);
    assert_eq!(call(&s, Method::GET, "/v1/contexts", Some(&new_alice), None).await.0, 200);
    // Revocation, and unregistration, end a token too.
    assert_eq!(call(&s, Method::DELETE, "/v1/agents/alice/token", Some(ADMIN), None).await.0, 204);
    assert_eq!(call(&s, Method::GET, "/v1/contexts", Some(&new_alice), None).await.0, 401);
    assert_eq!(call(&s, Method::DELETE, "/v1/agents/bob", Some(ADMIN), None).await.0, 204);
    assert_eq!(call(&s, Method::GET, "/v1/contexts", Some(&bob), None).await.0, 401);
}
