//! Authentication with bearer tokens, on both stores: the admin token,
//! agent tokens issued at registration, rotation and revocation, and the
//! agent-scoped rules that need no grants.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestServer, status_json};

const ADMIN: &str = "admin-secret-for-tests";

on_both_stores!(tokens, grants, policies, permission_matrix);

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

    // Who am I: a token tells its agent; the admin acts as the agent it
    // names, else as `admin`; without a token there is no one.
    let whoami = |token: Option<&'static str>, owned: Option<String>, named: Option<&'static str>| {
        let mut r = s.req(Method::GET, "/v1/whoami");
        if let Some(t) = owned.as_deref().or(token) {
            r = r.bearer_auth(t);
        }
        if let Some(n) = named {
            r = r.header("x-agent-id", n);
        }
        async move { status_json(r.send().await.unwrap()).await }
    };
    assert_eq!(whoami(None, Some(alice.clone()), None).await, (200, json!({"agent": "alice", "admin": false})));
    assert_eq!(whoami(Some(ADMIN), None, None).await, (200, json!({"agent": "admin", "admin": true})));
    assert_eq!(whoami(Some(ADMIN), None, Some("bob")).await, (200, json!({"agent": "bob", "admin": true})));
    assert_eq!(whoami(None, Some(alice.clone()), Some("bob")).await.0, 403, "an agent cannot act as another");
    let (status, e) = whoami(None, None, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("unauthenticated")));

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

async fn register(s: &TestServer, spec: Value) -> String {
    let (status, a) = call(s, Method::POST, "/v1/agents", Some(ADMIN), Some(spec)).await;
    assert_eq!(status, 201, "{a}");
    a["token"].as_str().unwrap().to_owned()
}

/// Every context read a stranger might try, and its status.
async fn reads(s: &TestServer, token: &str, ctx: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for path in [
        format!("/v1/contexts/{ctx}"),
        format!("/v1/contexts/{ctx}/entries"),
        format!("/v1/contexts/{ctx}/entries/secret"),
        format!("/v1/contexts/{ctx}/entries/secret/history"),
        format!("/v1/contexts/{ctx}/history"),
        format!("/v1/contexts/{ctx}/diff?from=1&to=2"),
        format!("/v1/contexts/{ctx}/document"),
        format!("/v1/contexts/{ctx}/events?after=0"),
        format!("/v1/contexts/{ctx}/watch?after=0"),
        format!("/v1/contexts/{ctx}/locks"),
        format!("/v1/contexts/{ctx}/tasks"),
    ] {
        let r = s.req(Method::GET, &path).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        if status == 403 {
            let body = r.text().await.unwrap();
            assert!(!body.contains("classified"), "a refusal leaks nothing: {body}");
        }
        out.push(status);
    }
    out
}

async fn grants(s: TestServer) {
    let alice = register(&s, json!({"id": "alice", "capabilities": {"can_share": true}})).await;
    let bob = register(&s, json!({"id": "bob"})).await;
    let carol = register(&s, json!({"id": "carol", "capabilities": {"can_write": false}})).await;
    for ctx in ["a", "b"] {
        call(&s, Method::POST, "/v1/contexts", Some(&alice), Some(json!({"id": ctx}))).await;
        let (status, _) = call(
            &s,
            Method::PUT,
            &format!("/v1/contexts/{ctx}/entries/secret"),
            Some(&alice),
            Some(json!({"value": "classified"})),
        )
        .await;
        assert_eq!(status, 201);
    }
    // The creator reads everything; a stranger nothing.
    assert!(reads(&s, &alice, "a").await.iter().all(|s| *s == 200));
    assert!(reads(&s, &bob, "a").await.iter().all(|s| *s == 403), "no grant, no read");
    let (_, listed) = call(&s, Method::GET, "/v1/contexts", Some(&bob), None).await;
    assert_eq!(listed["contexts"].as_array().unwrap().len(), 0, "the list hides what bob cannot read");
    let write = |token: &str, ctx: &str| {
        let req = s
            .req(Method::PUT, &format!("/v1/contexts/{ctx}/entries/note"))
            .bearer_auth(token)
            .json(&json!({"value": 1}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(write(&bob, "a").await, 403);
    // The refusal says which grant is missing, the call that adds it and
    // who may make it.
    let refusal = |token: String| {
        let s = &s;
        async move {
            let (status, body) =
                call(s, Method::PUT, "/v1/contexts/a/entries/note", Some(&token), Some(json!({"value": 1}))).await;
            assert_eq!(status, 403, "{body}");
            body["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    let message = refusal(bob.clone()).await;
    assert!(message.starts_with(r#"agent "bob" may not write context "a": no grant. "#), "{message}");
    assert!(
        message.contains(r#"POST /v1/contexts/a/grants {"agents": ["bob"], "permissions": ["write"]}"#),
        "{message}"
    );
    assert!(message.contains("`ctxmesh ctx grant a bob write`") && message.contains("its creator"), "{message}");
    let encoded = s.req(Method::GET, "/v1/contexts/%61/entries/secret").bearer_auth(&bob).send().await.unwrap();
    assert_eq!(encoded.status(), 403, "an encoded id is the same context");

    // A read grant: reads, not writes, and only on that context.
    let (status, granted) = call(
        &s,
        Method::POST,
        "/v1/contexts/a/grants",
        Some(&alice),
        Some(json!({"agents": ["bob", "carol"], "permissions": ["read"]})),
    )
    .await;
    assert_eq!(status, 201, "{granted}");
    assert!(reads(&s, &bob, "a").await.iter().all(|s| *s == 200));
    assert_eq!(write(&bob, "a").await, 403, "read is not write");
    let message = refusal(bob.clone()).await;
    assert!(message.contains("the grant lacks write"), "{message}");
    assert!(message.contains("`ctxmesh ctx grant a bob read write`"), "the hint keeps what the grant has: {message}");
    assert!(reads(&s, &bob, "b").await.iter().all(|s| *s == 403), "a grant on a is nothing on b");
    let (_, shared) = call(&s, Method::GET, "/v1/agents/bob/shared", Some(&bob), None).await;
    assert_eq!(shared["grants"][0]["context"], "a");
    let (_, inbox) = call(&s, Method::GET, "/v1/agents/bob/inbox", Some(&bob), None).await;
    assert_eq!(inbox["events"][0]["type"], "context.shared");
    let (status, _) = call(
        &s,
        Method::POST,
        "/v1/contexts/a/grants",
        Some(&bob),
        Some(json!({"agents": ["bob"], "permissions": ["admin"]})),
    )
    .await;
    assert_eq!(status, 403, "bob cannot share what he was only allowed to read");

    // Write, within capabilities.
    call(
        &s,
        Method::POST,
        "/v1/contexts/a/grants",
        Some(&alice),
        Some(json!({"agents": ["bob", "carol"], "permissions": ["read", "write"]})),
    )
    .await;
    assert_eq!(write(&bob, "a").await, 201);
    assert_eq!(write(&carol, "a").await, 403, "carol cannot write at all (can_write false)");
    let message = refusal(carol.clone()).await;
    assert!(!message.contains("grants"), "no grant helps an agent that cannot write: {message}");

    // Elsewhere than under /v1/contexts/{ctx}: messages, handoffs, lists, the WebSocket.
    let to_b = json!({"context": "b", "body": "hi"});
    assert_eq!(call(&s, Method::POST, "/v1/messages", Some(&bob), Some(to_b)).await.0, 403);
    let handoff = json!({"target": "alice", "context": "b"});
    assert_eq!(call(&s, Method::POST, "/v1/handoffs", Some(&bob), Some(handoff)).await.0, 403);
    assert_eq!(call(&s, Method::GET, "/v1/tasks", Some(&bob), None).await.0, 403);
    assert_eq!(call(&s, Method::GET, "/v1/tasks?agent=bob", Some(&bob), None).await.0, 200);
    assert_eq!(call(&s, Method::GET, "/v1/tasks?context=b", Some(&bob), None).await.0, 403);

    // An expired grant, and a revoked one, allow nothing.
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(400)).to_rfc3339();
    call(
        &s,
        Method::POST,
        "/v1/contexts/b/grants",
        Some(&alice),
        Some(json!({"agents": ["bob"], "permissions": ["read"], "expires_at": soon})),
    )
    .await;
    assert_eq!(reads(&s, &bob, "b").await[1], 200);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(reads(&s, &bob, "b").await.iter().all(|s| *s == 403), "the grant lapsed");
    let r = s.req(Method::DELETE, "/v1/contexts/a/grants?agent=bob").bearer_auth(&alice).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(reads(&s, &bob, "a").await.iter().all(|s| *s == 403), "revoked");
    let (_, inbox) = call(&s, Method::GET, "/v1/agents/bob/inbox?after=1", Some(&bob), None).await;
    let kinds: Vec<&str> = inbox["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"context.revoked"), "{kinds:?}");

    // Every decision is in the audit log, for admins only.
    assert_eq!(call(&s, Method::GET, "/v1/audit", Some(&bob), None).await.0, 403);
    let denied = async {
        loop {
            let (status, page) =
                call(&s, Method::GET, "/v1/audit?agent=bob&allowed=false&context=a", Some(ADMIN), None).await;
            assert_eq!(status, 200, "{page}");
            if page["records"].as_array().unwrap().len() >= 11 {
                return page;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let page = tokio::time::timeout(std::time::Duration::from_secs(10), denied).await.expect("decisions are logged");
    let first = &page["records"][0];
    assert_eq!(
        (first["agent"].as_str(), first["allowed"].as_bool(), first["reason"].as_str()),
        (Some("bob"), Some(false), Some("no grant"))
    );
    assert!(first["resource"].as_str().unwrap().starts_with("GET /v1/contexts/a"));
    let (_, allowed) = call(&s, Method::GET, "/v1/audit?agent=bob&allowed=true", Some(ADMIN), None).await;
    assert!(allowed["records"].as_array().unwrap().iter().all(|r| r["reason"] == "grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_over_their_rate_get_429_with_retry_after() {
    let limit = ctxmesh_server::limits::RateLimit { per_second: 1.0, burst: 3.0 };
    let s = TestServer::with_rate_limit(ADMIN, limit).await;
    let token = register(&s, json!({"id": "chatty"})).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = s.req(Method::GET, "/v1/agents/chatty").bearer_auth(&token).send().await.unwrap();
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(status_json(r).await.1["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "the burst passes");
    assert!(statuses[3..].contains(&429), "then the rate holds: {statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    for _ in 0..10 {
        assert_eq!(
            call(&s, Method::GET, "/v1/agents/chatty", Some(ADMIN), None).await.0,
            200,
            "the admin is not limited"
        );
    }
}

async fn policies(s: TestServer) {
    let alice = register(&s, json!({"id": "alice", "trust": "high", "capabilities": {"can_share": true}})).await;
    let bob = register(&s, json!({"id": "bob", "trust": "low"})).await;
    let carol = register(&s, json!({"id": "carol", "trust": "high"})).await;
    for ctx in ["prod-eu", "dev"] {
        call(&s, Method::POST, "/v1/contexts", Some(&alice), Some(json!({"id": ctx}))).await;
    }
    let get = |token: &str, ctx: &str| {
        let req = s.req(Method::GET, &format!("/v1/contexts/{ctx}/entries")).bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let put = |token: &str, ctx: &str| {
        let req =
            s.req(Method::PUT, &format!("/v1/contexts/{ctx}/entries/k")).bearer_auth(token).json(&json!({"value": 1}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(&bob, "dev").await, 403);

    // Only the admin manages policies.
    let open_dev = json!({"id": "open-dev", "effect": "allow", "contexts": "dev", "permissions": ["read"]});
    assert_eq!(call(&s, Method::POST, "/v1/policies", Some(&alice), Some(open_dev.clone())).await.0, 403);
    assert_eq!(call(&s, Method::POST, "/v1/policies", Some(ADMIN), Some(open_dev.clone())).await.0, 201);
    assert_eq!(call(&s, Method::POST, "/v1/policies", Some(ADMIN), Some(open_dev)).await.0, 409);
    let bad = json!({"id": "bad", "effect": "allow", "agents": "no spaces"});
    assert_eq!(call(&s, Method::POST, "/v1/policies", Some(ADMIN), Some(bad)).await.0, 400);

    // An allow rule opens dev for reading to everyone, and only that.
    assert_eq!(get(&bob, "dev").await, 200);
    assert_eq!(put(&bob, "dev").await, 403);
    assert_eq!(get(&bob, "prod-eu").await, 403);

    // A deny rule wins over grants: low-trust agents never write prod-*.
    let rw = json!({"agents": ["bob", "carol"], "permissions": ["read", "write"]});
    call(&s, Method::POST, "/v1/contexts/prod-eu/grants", Some(&alice), Some(rw)).await;
    let guard = json!({"id": "no-low-writes", "effect": "deny", "contexts": "prod-*", "max_trust": "low", "permissions": ["write"]});
    call(&s, Method::POST, "/v1/policies", Some(ADMIN), Some(guard)).await;
    assert_eq!(put(&bob, "prod-eu").await, 403, "deny wins over the grant");
    assert_eq!(get(&bob, "prod-eu").await, 200, "the rule denies writes only");
    assert_eq!(put(&carol, "prod-eu").await, 201, "trusted agents are not matched");
    let (_, e) = call(&s, Method::PUT, "/v1/contexts/prod-eu/entries/k", Some(&bob), Some(json!({"value": 2}))).await;
    assert!(e["error"]["message"].as_str().unwrap().contains("no-low-writes"), "{e}");

    let (_, listed) = call(&s, Method::GET, "/v1/policies", Some(ADMIN), None).await;
    assert_eq!(listed["policies"].as_array().unwrap().len(), 2);
    assert_eq!(call(&s, Method::DELETE, "/v1/policies/open-dev", Some(ADMIN), None).await.0, 204);
    assert_eq!(get(&bob, "dev").await, 403, "without the rule, no access");
    assert_eq!(call(&s, Method::DELETE, "/v1/policies/open-dev", Some(ADMIN), None).await.0, 404);
}

/// Every context endpoint against every kind of caller: the status class
/// is right, and no refusal carries any of the context's data.
async fn permission_matrix(s: TestServer) {
    use ctxmesh_core::access::Permission::{self, Admin, Read, Share, Write};
    for id in ["owner", "bystander"] {
        register(&s, json!({"id": id})).await;
    }
    let mut tokens: Vec<(&str, Option<String>, Vec<Permission>)> =
        vec![("no token", None, vec![]), ("bad token", Some("cmt_not_a_token".into()), vec![])];
    // Each principal and the grant it is given on the context.
    let principals = [
        ("no-grant", vec![]),
        ("reader", vec![Read]),
        ("writer", vec![Write]),
        ("sharer", vec![Share]),
        ("administrator", vec![Admin]),
        ("expired", vec![Admin]),
        ("revoked", vec![Admin]),
    ];
    for (name, perms) in principals.clone() {
        let token = register(&s, json!({"id": name, "capabilities": {"can_share": true}})).await;
        // Expired and revoked principals hold admin grants that no longer count.
        let effective = if name == "expired" || name == "revoked" { vec![] } else { perms };
        tokens.push((name, Some(token), effective));
    }
    // The context, owned by "owner", with a secret.
    let create = s.req(Method::POST, "/v1/contexts").bearer_auth(ADMIN).header("x-agent-id", "owner");
    assert_eq!(create.json(&json!({"id": "m"})).send().await.unwrap().status(), 201);
    call(&s, Method::PUT, "/v1/contexts/m/entries/secret", Some(ADMIN), Some(json!({"value": "classified"}))).await;
    call(&s, Method::PUT, "/v1/contexts/m/entries/secret", Some(ADMIN), Some(json!({"value": "classified too"}))).await;
    for (name, perms) in principals.into_iter().filter(|(_, perms)| !perms.is_empty()) {
        let mut grant = json!({"agents": [name], "permissions": perms});
        if name == "expired" {
            grant["expires_at"] = json!((chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339());
        }
        assert_eq!(call(&s, Method::POST, "/v1/contexts/m/grants", Some(ADMIN), Some(grant)).await.0, 201);
    }
    assert_eq!(call(&s, Method::DELETE, "/v1/agents/revoked/token", Some(ADMIN), None).await.0, 204);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await; // the expired grant lapses

    let endpoints: Vec<(Method, &str, Option<Value>, Permission)> = vec![
        (Method::GET, "/v1/contexts/m", None, Read),
        (Method::PATCH, "/v1/contexts/m", Some(json!({"labels": {"a": "b"}})), Admin),
        (Method::GET, "/v1/contexts/m/entries", None, Read),
        (Method::GET, "/v1/contexts/m/entries/secret", None, Read),
        (Method::GET, "/v1/contexts/m/entries/secret?at=2", None, Read),
        (Method::PUT, "/v1/contexts/m/entries/new", Some(json!({"value": 1})), Write),
        (Method::DELETE, "/v1/contexts/m/entries/missing", None, Write),
        (Method::POST, "/v1/contexts/m/txn", Some(json!({"success": [{"op": "get", "key": "secret"}]})), Read),
        (Method::POST, "/v1/contexts/m/txn", Some(json!({"success": [{"op": "put", "key": "t", "value": 1}]})), Write),
        (Method::GET, "/v1/contexts/m/document", None, Read),
        (Method::GET, "/v1/contexts/m/history", None, Read),
        (Method::GET, "/v1/contexts/m/entries/secret/history", None, Read),
        (Method::GET, "/v1/contexts/m/diff?from=1&to=3", None, Read),
        (Method::POST, "/v1/contexts/m/rollback", Some(json!({"to": 3})), Write),
        (Method::GET, "/v1/contexts/m/events?after=0", None, Read),
        (Method::GET, "/v1/contexts/m/locks", None, Read),
        (Method::POST, "/v1/contexts/m/locks/l", Some(json!({"ttl_ms": 10})), Write),
        (Method::GET, "/v1/contexts/m/tasks", None, Read),
        (Method::POST, "/v1/contexts/m/tasks", Some(json!({"assignee": "bystander", "title": "t"})), Write),
        (Method::GET, "/v1/contexts/m/grants", None, Share),
        (Method::POST, "/v1/contexts/m/grants", Some(json!({"agents": ["bystander"], "permissions": ["read"]})), Share),
        (Method::DELETE, "/v1/contexts/m/grants?agent=nobody", None, Share),
        (Method::POST, "/v1/contexts/m/compact", None, Admin),
        (Method::POST, "/v1/messages", Some(json!({"context": "m", "body": "x"})), Write),
        (Method::POST, "/v1/handoffs", Some(json!({"target": "bystander", "context": "m"})), Read),
    ];
    let mut fork = 0;
    for (who, token, perms) in &tokens {
        for (method, path, body, needed) in &endpoints {
            let allowed = perms.iter().any(|p| p == needed || *p == Admin);
            let mut req = s.req(method.clone(), path);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            let expected_refusal = if token.is_none() || *who == "bad token" || *who == "revoked" { 401 } else { 403 };
            if allowed {
                assert!(status != 401 && status != 403, "{who} {method} {path}: {status} {text}");
            } else {
                assert_eq!(status, expected_refusal, "{who} {method} {path}: {text}");
                assert!(!text.contains("classified"), "{who} {method} {path} leaked: {text}");
            }
        }
        // Forks and the watch stream, which do not fit the loop.
        fork += 1;
        let body = json!({"id": format!("fork-{fork}"), "at": 2});
        let mut req = s.req(Method::POST, "/v1/contexts/m/fork").json(&body);
        let mut watch = s.req(Method::GET, "/v1/contexts/m/watch?after=0");
        if let Some(token) = token {
            req = req.bearer_auth(token);
            watch = watch.bearer_auth(token);
        }
        let can_read = perms.iter().any(|p| *p == Read || *p == Admin);
        let forked = req.send().await.unwrap().status().as_u16();
        let watched = watch.send().await.unwrap().status().as_u16();
        if can_read {
            assert_eq!((forked, watched), (201, 200), "{who}");
        } else {
            assert!(forked == 401 || forked == 403, "{who} fork: {forked}");
            assert!(watched == 401 || watched == 403, "{who} watch: {watched}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_has_a_bounded_number_of_open_streams() {
    // Test servers allow 2 streams per agent.
    let s = TestServer::with_tokens(Backend::Sqlite, ADMIN).await;
    let token = register(&s, json!({"id": "watcher"})).await;
    call(&s, Method::POST, "/v1/contexts", Some(&token), Some(json!({"id": "w"}))).await;
    let open = || s.req(Method::GET, "/v1/contexts/w/watch").bearer_auth(&token).send();
    let first = open().await.unwrap();
    let second = s.req(Method::GET, "/v1/agents/watcher/inbox/watch").bearer_auth(&token).send().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open().await.unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(status_json(third).await.1["error"]["code"], "rate_limited");
    let url = format!("{}/v1/ws", s.base.replace("http://", "ws://"));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request.clone()).await.is_err(), "the WebSocket counts too");
    let admin = s.req(Method::GET, "/v1/contexts/w/watch").bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(admin.status(), 200, "the admin is not limited");

    // A closed stream frees its place (once the server notices: at its next
    // write, a progress bookmark every 100 ms here).
    drop(first);
    let reopened = async {
        loop {
            if let Ok((_socket, _)) = tokio_tungstenite::connect_async(request.clone()).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), reopened).await.expect("the place is freed");
    drop(second);
}

/// Writes one HTTP/1.1 request on `conn` and reads its answer: the status
/// line and headers (lowercased), and the body.
async fn exchange(conn: &mut tokio::net::TcpStream, request: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await.unwrap().unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length || n == 0 {
                return (head.to_ascii_lowercase(), body.to_owned());
            }
        }
        assert!(n > 0, "the server closed the connection without an answer");
    }
}

/// A write refused before its body is read (no token) says
/// `Connection: close`, so that a client does not send its next request
/// into a connection the server is closing; an answer after the body was
/// read keeps the connection for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_before_its_body_was_read_closes_the_connection() {
    let s = TestServer::with_tokens(Backend::Sqlite, ADMIN).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let body = r#"{"value": "unread"}"#;
    let put = |token: &str| {
        format!(
            "PUT /v1/contexts/c/entries/k HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             {token}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (head, _) = exchange(&mut conn, &put("")).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "the refusal says the connection ends: {head}");

    let (status, _) = call(&s, Method::POST, "/v1/contexts", Some(ADMIN), Some(json!({"id": "c"}))).await;
    assert_eq!(status, 201);
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let admin = format!("authorization: Bearer {ADMIN}\r\n");
    let (head, _) = exchange(&mut conn, &put(&admin)).await;
    assert!(head.starts_with("http/1.1 201") || head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let get = format!("GET /v1/contexts/c/entries/k HTTP/1.1\r\nhost: {addr}\r\n{admin}\r\n");
    let (head, entry) = exchange(&mut conn, &get).await;
    assert!(head.starts_with("http/1.1 200"), "the same connection serves the next request: {head}");
    assert!(entry.contains("unread"), "{entry}");
}
