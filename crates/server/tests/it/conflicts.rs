//! Conflict policies over HTTP, on both stores: two agents write from the
//! same base under each policy; manual conflicts and their resolution;
//! merged results checked against schemas; sets; causal writes; and eight
//! agents changing disjoint fields of one entry at once.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestServer, status_json};

const ADMIN: &str = "admin-secret-for-conflict-tests";

on_both_stores!(
    two_writers_from_one_base_under_each_policy,
    manual_conflicts_are_resolved_through_the_api,
    merged_results_are_checked_and_sets_merge_as_sets,
    causal_writes_carry_the_vclock_they_read,
    eight_agents_change_disjoint_fields_without_losing_one,
);

/// A request as `token`; the status, the `X-Conflict` header and the body.
async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    send_if(s, method, path, token, None, body).await
}

async fn send_if(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    if_match: Option<u64>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut req = s.req(method, path).bearer_auth(token);
    if let Some(r) = if_match {
        req = req.header("if-match", format!("\"{r}\""));
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let header = r.headers().get("x-conflict").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_json(r).await;
    (status, header, body)
}

async fn agent(s: &TestServer, id: &str, trust: &str) -> String {
    let (status, _, a) = send(s, Method::POST, "/v1/agents", ADMIN, Some(json!({"id": id, "trust": trust}))).await;
    assert_eq!(status, 201, "{a}");
    a["token"].as_str().unwrap().to_owned()
}

/// Creates context `id` with `policy`, shared with every agent for writing.
async fn context(s: &TestServer, id: &str, policy: Value, extra: Value) {
    let mut body = json!({"id": id, "policy": policy});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    assert_eq!(send(s, Method::POST, "/v1/contexts", ADMIN, Some(body)).await.0, 201);
    let open = json!({"id": format!("all-{id}"), "effect": "allow", "contexts": id, "permissions": ["read", "write"]});
    assert_eq!(send(s, Method::POST, "/v1/policies", ADMIN, Some(open)).await.0, 201);
}

fn entry(ctx: &str, key: &str) -> String {
    format!("/v1/contexts/{ctx}/entries/{key}")
}

/// Writes the base value as the admin; returns its revision.
async fn base(s: &TestServer, ctx: &str, key: &str, value: Value) -> u64 {
    let (status, _, e) = send(s, Method::PUT, &entry(ctx, key), ADMIN, Some(json!({"value": value}))).await;
    assert!(status == 200 || status == 201, "{e}");
    e["revision"].as_u64().unwrap()
}

async fn value(s: &TestServer, ctx: &str, key: &str) -> Value {
    send(s, Method::GET, &entry(ctx, key), ADMIN, None).await.2["value"].clone()
}

async fn two_writers_from_one_base_under_each_policy(s: TestServer) {
    let high = agent(&s, "lead", "high").await;
    let low = agent(&s, "helper", "low").await;
    let peer = agent(&s, "peer", "low").await;
    let put = |ctx: &'static str, token: String, r: u64, v: Value| {
        let s = &s;
        async move { send_if(s, Method::PUT, &entry(ctx, "doc"), &token, Some(r), Some(json!({"value": v}))).await }
    };

    // reject: the second writer gets 412 with the current entry.
    context(&s, "rej", json!({"strategy": "reject"}), json!({})).await;
    let r = base(&s, "rej", "doc", json!({"a": 0})).await;
    assert_eq!(put("rej", high.clone(), r, json!({"a": 1})).await.0, 200);
    let (status, _, e) = put("rej", low.clone(), r, json!({"a": 2})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (412, Some("precondition_failed")));
    assert_eq!(e["error"]["details"]["current"]["value"], json!({"a": 1}));
    assert_eq!(value(&s, "rej", "doc").await, json!({"a": 1}));

    // last-write-wins: applied, and the overwrite is recorded (low severity).
    context(&s, "lww", json!({"strategy": "last-write-wins"}), json!({})).await;
    let r = base(&s, "lww", "doc", json!({"a": 0})).await;
    assert_eq!(put("lww", high.clone(), r, json!({"a": 1})).await.0, 200);
    let (status, header, _) = put("lww", low.clone(), r, json!({"a": 2})).await;
    assert_eq!(status, 200);
    assert!(header.as_deref().is_some_and(|h| h.starts_with("overwritten; id=")), "{header:?}");
    assert_eq!(value(&s, "lww", "doc").await, json!({"a": 2}));
    let (_, _, list) = send(&s, Method::GET, "/v1/contexts/lww/conflicts?status=resolved", ADMIN, None).await;
    let c = &list["conflicts"][0];
    assert_eq!((c["severity"].as_str(), c["outcome"].as_str()), (Some("low"), Some("overwritten")));
    assert_eq!((c["author"].as_str(), c["current_author"].as_str()), (Some("helper"), Some("lead")));
    let (_, _, log) = send(&s, Method::GET, "/v1/contexts/lww/events?types=conflict.detected", ADMIN, None).await;
    assert_eq!(log["events"][0]["data"]["severity"], "low");

    // merge: disjoint fields merge; the same field follows on_field_conflict.
    for (id, on_field, expected_a) in [
        ("merge-reject", "reject", None),
        ("merge-lww", "last-write-wins", Some(2)),
        ("merge-authority", "authority", Some(1)),
    ] {
        let policy = json!({"strategy": "merge", "on_field_conflict": on_field});
        context(&s, id, policy, json!({})).await;
        let r = base(&s, id, "doc", json!({"a": 0, "b": 0, "c": 0})).await;
        assert_eq!(put(id, high.clone(), r, json!({"a": 1, "b": 1, "c": 0})).await.0, 200);
        let (status, header, body) = put(id, low.clone(), r, json!({"a": 2, "b": 1, "c": 2})).await;
        match expected_a {
            None => {
                assert_eq!(status, 412, "{id}: {body}");
                assert_eq!(body["error"]["details"]["fields"], json!(["/a"]));
                assert_eq!(value(&s, id, "doc").await, json!({"a": 1, "b": 1, "c": 0}), "{id}: nothing written");
            }
            Some(a) => {
                assert_eq!(status, 200, "{id}: {body}");
                assert!(header.is_some_and(|h| h.starts_with("merged")));
                assert_eq!(body["value"], json!({"a": a, "b": 1, "c": 2}), "{id}");
            }
        }
        // Disjoint changes always merge.
        let r = body_revision(&s, id).await;
        assert_eq!(
            put(id, high.clone(), r, json!({"a": 7, "b": 1, "c": value(&s, id, "doc").await["c"]})).await.0,
            200
        );
        let current = value(&s, id, "doc").await;
        let mut theirs = current.clone();
        theirs["b"] = json!(9);
        theirs["a"] = value_at(&s, id, r).await["a"].clone();
        let (status, _, merged) = put(id, low.clone(), r, theirs).await;
        assert_eq!(status, 200, "{id}: {merged}");
        assert_eq!((merged["value"]["a"].as_i64(), merged["value"]["b"].as_i64()), (Some(7), Some(9)), "{id}");
    }

    // authority: the more trusted writer wins; the less trusted, or a tie, is refused.
    context(&s, "auth", json!({"strategy": "authority"}), json!({})).await;
    let r = base(&s, "auth", "doc", json!(0)).await;
    assert_eq!(put("auth", low.clone(), r, json!(1)).await.0, 200);
    let (status, header, _) = put("auth", high.clone(), r, json!(2)).await;
    assert_eq!((status, header.map(|h| h.starts_with("won"))), (200, Some(true)));
    let now = body_revision(&s, "auth").await;
    let (status, _, e) = put("auth", low.clone(), r, json!(3)).await;
    assert_eq!(status, 412);
    assert!(e["error"]["details"]["reason"].as_str().unwrap().contains("authority"), "{e}");
    assert_eq!(put("auth", low.clone(), now, json!(4)).await.0, 200, "a fresh precondition needs no policy");
    let r = body_revision(&s, "auth").await;
    assert_eq!(put("auth", low.clone(), r, json!(5)).await.0, 200);
    assert_eq!(put("auth", peer.clone(), r, json!(6)).await.0, 412, "a tie is refused");
    assert_eq!(value(&s, "auth", "doc").await, json!(5));

    // Overrides: a key pattern has its own strategy.
    let policy = json!({"strategy": "reject", "overrides": [{"pattern": "notes/*", "strategy": "last-write-wins"}]});
    context(&s, "mixed", policy, json!({})).await;
    for (key, expected) in [("doc", 412), ("notes/n", 200)] {
        let r = base(&s, "mixed", key, json!(0)).await;
        let path = entry("mixed", key);
        send_if(&s, Method::PUT, &path, &high, Some(r), Some(json!({"value": 1}))).await;
        let (status, _, _) = send_if(&s, Method::PUT, &path, &low, Some(r), Some(json!({"value": 2}))).await;
        assert_eq!(status, expected, "{key}");
    }
}

/// The revision of `doc` in `ctx` now.
async fn body_revision(s: &TestServer, ctx: &str) -> u64 {
    send(s, Method::GET, &entry(ctx, "doc"), ADMIN, None).await.2["revision"].as_u64().unwrap()
}

async fn value_at(s: &TestServer, ctx: &str, r: u64) -> Value {
    send(s, Method::GET, &format!("{}?at={r}", entry(ctx, "doc")), ADMIN, None).await.2["value"].clone()
}

async fn manual_conflicts_are_resolved_through_the_api(s: TestServer) {
    let one = agent(&s, "one", "low").await;
    let two = agent(&s, "two", "low").await;
    context(&s, "man", json!({"strategy": "manual"}), json!({})).await;
    let r = base(&s, "man", "plan", json!({"step": 0})).await;
    let path = entry("man", "plan");
    assert_eq!(send_if(&s, Method::PUT, &path, &one, Some(r), Some(json!({"value": {"step": 1}}))).await.0, 200);
    let (status, _, pending) =
        send_if(&s, Method::PUT, &path, &two, Some(r), Some(json!({"value": {"step": 2}}))).await;
    assert_eq!((status, pending["outcome"].as_str()), (202, Some("pending")), "{pending}");
    assert_eq!(pending["current"]["value"], json!({"step": 1}));
    let id = pending["conflict"].as_str().unwrap().to_owned();
    assert_eq!(value(&s, "man", "plan").await, json!({"step": 1}), "the value is unchanged");

    let (_, _, list) = send(&s, Method::GET, "/v1/contexts/man/conflicts", &one, None).await;
    assert_eq!(list["conflicts"].as_array().unwrap().len(), 1);
    let (status, _, view) = send(&s, Method::GET, &format!("/v1/contexts/man/conflicts/{id}"), &one, None).await;
    assert_eq!(status, 200);
    assert_eq!((view["severity"].as_str(), view["status"].as_str()), (Some("high"), Some("pending")));
    assert_eq!(view["proposed"]["value"], json!({"step": 2}), "one sibling: the write kept aside");
    assert_eq!(view["current"]["value"], json!({"step": 1}), "the other: the entry it met");
    let (_, _, log) = send(&s, Method::GET, "/v1/contexts/man/events?types=conflict.detected", ADMIN, None).await;
    assert_eq!(log["events"][0]["data"]["severity"], "high");
    assert!(log["events"][0]["data"].get("proposed").is_none(), "events carry no values");

    // Bad resolutions change nothing.
    let resolve = format!("/v1/contexts/man/conflicts/{id}/resolve");
    assert_eq!(send(&s, Method::POST, &resolve, &one, Some(json!({"choose": "mine"}))).await.0, 400);
    assert_eq!(send(&s, Method::POST, &resolve, &one, Some(json!({"value": 1, "if_match": r}))).await.0, 412);
    assert_eq!(
        send(&s, Method::POST, "/v1/contexts/man/conflicts/9.9/resolve", &one, Some(json!({"choose": "current"})))
            .await
            .0,
        404
    );
    // A merged value, based on the current entry.
    let merged = json!({"value": {"step": 3, "note": "both"}});
    let (status, _, done) = send(&s, Method::POST, &resolve, &one, Some(merged)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["status"].as_str(), done["resolution"]["chose"].as_str()), (Some("resolved"), Some("value")));
    assert_eq!(value(&s, "man", "plan").await, json!({"step": 3, "note": "both"}));
    let (_, _, log) = send(&s, Method::GET, "/v1/contexts/man/events?types=conflict.resolved", ADMIN, None).await;
    assert_eq!(log["events"][0]["data"]["resolution"]["by"], "one");
    let (status, _, e) = send(&s, Method::POST, &resolve, &two, Some(json!({"choose": "proposed"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invalid_transition")));

    // Keeping the current sibling writes nothing.
    let r = body_rev(&s, "man", "plan").await;
    send_if(&s, Method::PUT, &path, &one, Some(r), Some(json!({"value": "x"}))).await;
    let (_, _, pending) = send_if(&s, Method::PUT, &path, &two, Some(r), Some(json!({"value": "y"}))).await;
    let resolve = format!("/v1/contexts/man/conflicts/{}/resolve", pending["conflict"].as_str().unwrap());
    assert_eq!(send(&s, Method::POST, &resolve, &two, Some(json!({"choose": "current"}))).await.0, 200);
    assert_eq!(value(&s, "man", "plan").await, "x");
    let (_, _, list) = send(&s, Method::GET, "/v1/contexts/man/conflicts", &one, None).await;
    assert!(list["conflicts"].as_array().unwrap().is_empty(), "nothing pending");
    let (_, _, list) = send(&s, Method::GET, "/v1/contexts/man/conflicts?status=all", &one, None).await;
    assert_eq!(list["conflicts"].as_array().unwrap().len(), 2);
}

async fn body_rev(s: &TestServer, ctx: &str, key: &str) -> u64 {
    send(s, Method::GET, &entry(ctx, key), ADMIN, None).await.2["revision"].as_u64().unwrap()
}

async fn merged_results_are_checked_and_sets_merge_as_sets(s: TestServer) {
    let one = agent(&s, "one", "low").await;
    let two = agent(&s, "two", "low").await;
    let schemas = json!({"schemas": {"doc": {"type": "object", "maxProperties": 2}}});
    let policy =
        json!({"strategy": "merge", "overrides": [{"pattern": "lists/*", "strategy": "merge", "arrays": "set"}]});
    context(&s, "sch", policy, schemas).await;

    // Each write alone is valid; their merge is not: 422, nothing written.
    let r = base(&s, "sch", "doc", json!({"a": 0})).await;
    let path = entry("sch", "doc");
    assert_eq!(send_if(&s, Method::PUT, &path, &one, Some(r), Some(json!({"value": {"a": 0, "b": 1}}))).await.0, 200);
    let (status, _, e) = send_if(&s, Method::PUT, &path, &two, Some(r), Some(json!({"value": {"a": 0, "c": 1}}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("schema_violation")), "{e}");
    assert_eq!(value(&s, "sch", "doc").await, json!({"a": 0, "b": 1}));

    // Arrays are atomic by default, sets where the pattern says so.
    for (key, expected) in [("plain", None), ("lists/l", Some(json!({"items": [2, 4, 3]})))] {
        let r = base(&s, "sch", key, json!({"items": [1, 2]})).await;
        let path = entry("sch", key);
        send_if(&s, Method::PUT, &path, &one, Some(r), Some(json!({"value": {"items": [1, 2, 3]}}))).await;
        let (status, _, body) =
            send_if(&s, Method::PUT, &path, &two, Some(r), Some(json!({"value": {"items": [2, 4]}}))).await;
        match expected {
            None => assert_eq!((status, body["error"]["details"]["fields"].clone()), (412, json!(["/items"]))),
            Some(v) => assert_eq!((status, body["value"].clone()), (200, v)),
        }
    }

    // A deletion against a modification is a conflict too.
    let r = base(&s, "sch", "gone", json!({"a": 1})).await;
    let path = entry("sch", "gone");
    send_if(&s, Method::PUT, &path, &one, Some(r), Some(json!({"value": {"a": 2}}))).await;
    let (status, _, e) = send_if(&s, Method::DELETE, &path, &two, Some(r), None).await;
    assert_eq!((status, e["error"]["details"]["fields"].clone()), (412, json!([""])), "{e}");
}

async fn causal_writes_carry_the_vclock_they_read(s: TestServer) {
    let one = agent(&s, "one", "low").await;
    let two = agent(&s, "two", "low").await;
    context(&s, "vc", json!({"strategy": "reject", "overrides": [{"pattern": "m/*", "strategy": "merge"}]}), json!({}))
        .await;
    for key in ["k", "m/k"] {
        base(&s, "vc", key, json!({"a": 0, "b": 0})).await;
    }
    let read = send(&s, Method::GET, &entry("vc", "k"), &one, None).await.2;
    let vclock = read["vclock"].clone();
    assert_eq!(vclock, json!({"admin": 1}), "reads return the vclock");
    let write = |token: &String, key: &str, v: Value, vc: &Value| {
        let (s, path, token, body) = (&s, entry("vc", key), token.clone(), json!({"value": v, "vclock": vc}));
        async move { send(s, Method::PUT, &path, &token, Some(body)).await }
    };
    let (status, _, written) = write(&one, "k", json!({"a": 1, "b": 0}), &vclock).await;
    assert_eq!(status, 200, "descends from what it read: {written}");
    assert_eq!(written["vclock"], json!({"admin": 1, "one": 1}));
    let (status, _, e) = write(&two, "k", json!({"a": 0, "b": 2}), &vclock).await;
    assert_eq!(status, 412, "concurrent, and the policy rejects: {e}");
    assert_eq!(e["error"]["details"]["current"]["vclock"], json!({"admin": 1, "one": 1}));
    // Under merge, the version it read is found by its vclock.
    let vclock = send(&s, Method::GET, &entry("vc", "m/k"), &one, None).await.2["vclock"].clone();
    assert_eq!(write(&one, "m/k", json!({"a": 1, "b": 0}), &vclock).await.0, 200);
    let (status, header, merged) = write(&two, "m/k", json!({"a": 0, "b": 2}), &vclock).await;
    assert_eq!((status, merged["value"].clone()), (200, json!({"a": 1, "b": 2})), "{merged}");
    assert!(header.is_some_and(|h| h.starts_with("merged")));
    assert_eq!(merged["vclock"], json!({"admin": 1, "one": 1, "two": 1}), "the merge descends from both");
}

async fn eight_agents_change_disjoint_fields_without_losing_one(s: TestServer) {
    const AGENTS: usize = 8;
    const ROUNDS: i64 = 6;
    context(&s, "many", json!({"strategy": "merge"}), json!({})).await;
    let fields: serde_json::Map<String, Value> = (0..AGENTS).map(|i| (format!("f{i}"), json!(-1))).collect();
    base(&s, "many", "doc", Value::Object(fields)).await;
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        tokens.push(agent(&s, &format!("w{i}"), "low").await);
    }
    let path = entry("many", "doc");
    let workers = tokens.iter().enumerate().map(|(i, token)| {
        let (s, path) = (&s, &path);
        async move {
            for round in 0..ROUNDS {
                // Read, change one's own field, write back with If-Match.
                let (_, _, read) = send(s, Method::GET, path, token, None).await;
                let mut v = read["value"].clone();
                v[format!("f{i}")] = json!(round);
                let r = read["revision"].as_u64().unwrap();
                let (status, _, body) = send_if(s, Method::PUT, path, token, Some(r), Some(json!({"value": v}))).await;
                assert_eq!(status, 200, "agent {i} round {round}: {body}");
            }
        }
    });
    futures::future::join_all(workers).await;
    let last = value(&s, "many", "doc").await;
    for i in 0..AGENTS {
        assert_eq!(last[format!("f{i}")], json!(ROUNDS - 1), "agent {i}'s last update is there: {last}");
    }
    let (_, _, list) = send(&s, Method::GET, "/v1/contexts/many/conflicts?status=all&limit=1000", ADMIN, None).await;
    let records = list["conflicts"].as_array().unwrap();
    assert!(
        records.iter().all(|c| c["outcome"] == "merged" && c["fields"].is_null()),
        "no field was changed both ways"
    );
    let detected: Vec<u64> = records.iter().map(|c| c["detected_revision"].as_u64().unwrap()).collect();
    assert!(detected.windows(2).all(|w| w[0] < w[1]), "records list in the order they were detected: {detected:?}");
}
