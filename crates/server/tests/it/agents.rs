//! Agents over HTTP, on both stores: the registry, leases, locks with
//! fencing, handoffs, tasks and inboxes.

use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::{TestServer, status_json};

/// Runs each test against a server on SQLite and one on PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::TestServer::on(crate::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::TestServer::on(crate::Backend::postgres().await).await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    registry,
    racing_agents_never_both_hold_a_lock,
    a_paused_holder_is_fenced,
    a_waiting_agent_gets_the_lock_when_it_is_released,
    a_lapsed_lease_releases_locks_and_says_so,
    handoff_state_machine,
    a_handoff_carries_the_package_of_its_keys_as_of_its_revision,
    what_uses_the_registry_needs_a_registered_agent,
    tasks_and_inbox_resume,
    messages_reach_inboxes_over_the_websocket,
);

async fn send(s: &TestServer, method: Method, path: &str, agent: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.req(method, path).header("x-agent-id", agent);
    if let Some(body) = body {
        req = req.json(&body);
    }
    status_json(req.send().await.unwrap()).await
}

async fn register(s: &TestServer, body: Value) -> Value {
    let (status, agent) = send(s, Method::POST, "/v1/agents", "admin", Some(body)).await;
    assert_eq!(status, 201, "{agent}");
    agent
}

async fn acquire(s: &TestServer, ctx: &str, name: &str, agent: &str, body: Value) -> Value {
    let (status, answer) = send(s, Method::POST, &format!("/v1/contexts/{ctx}/locks/{name}"), agent, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Reads SSE frames until `n` events (not progress or keep-alive) arrived:
/// (id, event type, data).
async fn sse_events(response: Response, n: usize) -> Vec<(u64, String, Value)> {
    let is_event = |f: &crate::Frame| f.kind != "progress" && f.id.is_some();
    let (frames, _) = crate::sse_frames(response, |f| f.iter().filter(|f| is_event(f)).count() >= n).await;
    frames.into_iter().filter(is_event).map(|f| (f.id.unwrap_or_default(), f.kind, f.data)).collect()
}

async fn registry(s: TestServer) {
    let r = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"id": "researcher", "capabilities": {"custom": ["search"]}, "needs": {"kinds": ["finding"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/v1/agents/researcher");
    let (status, dup) = send(&s, Method::POST, "/v1/agents", "x", Some(json!({"id": "researcher"}))).await;
    assert_eq!((status, dup["error"]["code"].as_str()), (409, Some("already_exists")));
    for (bad, field) in [
        (json!({"id": "w", "capabilities": {"max_concurrent_contexts": 0}}), "capabilities.max_concurrent_contexts"),
        (json!({"id": "w", "capabilities": {"supported_kinds": []}}), "capabilities.supported_kinds"),
        (json!({"id": "w", "token_budget": 0}), "token_budget"),
    ] {
        let (status, e) = send(&s, Method::POST, "/v1/agents", "x", Some(bad)).await;
        assert_eq!((status, e["error"]["details"]["field"].as_str()), (400, Some(field)), "{e}");
    }
    let (status, e) = send(&s, Method::POST, "/v1/agents", "x", Some(json!({"id": "w", "colour": "red"}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_argument")));
    register(&s, json!({"id": "writer"})).await;

    let (_, found) = s.get_json("/v1/agents?capability=search").await;
    assert_eq!(found["agents"].as_array().unwrap().len(), 1);
    assert_eq!(found["agents"][0]["id"], "researcher");
    let (status, updated) =
        send(&s, Method::PATCH, "/v1/agents/writer", "x", Some(json!({"objective": "draft", "trust": "high"}))).await;
    assert_eq!((status, updated["trust"].as_str(), updated["objective"].as_str()), (200, Some("high"), Some("draft")));
    let (status, beat) = send(&s, Method::POST, "/v1/agents/writer/heartbeat", "writer", None).await;
    assert_eq!((status, beat["status"].as_str()), (200, Some("active")));
    let r = s.req(Method::DELETE, "/v1/agents/writer").send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.get_json("/v1/agents/writer").await.0, 404);
    assert_eq!(send(&s, Method::POST, "/v1/agents/writer/heartbeat", "writer", None).await.0, 404);
    let (_, feed) = s.get_json("/v1/agents/events?after=0").await;
    let kinds: Vec<&str> = feed["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["agent.registered", "agent.registered", "agent.unregistered"]);
    assert_eq!(feed["next_after"], 3);
}

async fn racing_agents_never_both_hold_a_lock(s: TestServer) {
    s.create(json!({"id": "race"})).await;
    register(&s, json!({"id": "a"})).await;
    register(&s, json!({"id": "b"})).await;
    let mut last_token = 0;
    for round in 0..8 {
        let attempts = ["a", "b"].map(|agent| {
            let req = s
                .req(Method::POST, "/v1/contexts/race/locks/leader")
                .header("x-agent-id", agent)
                .json(&json!({"ttl_ms": 60_000}));
            async move { (agent, status_json(req.send().await.unwrap()).await.1) }
        });
        let results = futures::future::join_all(attempts).await;
        let winners: Vec<&(&str, Value)> = results.iter().filter(|(_, a)| a["acquired"] == true).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one agent holds the lock: {results:?}");
        let (winner, answer) = winners[0];
        for (_, a) in &results {
            assert_eq!(a["holder"].as_str(), Some(*winner), "both see the same holder");
        }
        let token = answer["fencing_token"].as_u64().unwrap();
        assert!(token > last_token, "tokens only grow");
        last_token = token;
        let (status, freed) = send(&s, Method::DELETE, "/v1/contexts/race/locks/leader", winner, None).await;
        assert_eq!((status, freed["holder"].clone()), (200, Value::Null));
    }
}

async fn a_waiting_agent_gets_the_lock_when_it_is_released(s: TestServer) {
    s.create(json!({"id": "queue"})).await;
    register(&s, json!({"id": "first"})).await;
    register(&s, json!({"id": "second"})).await;
    acquire(&s, "queue", "printer", "first", json!({"ttl_ms": 600_000})).await;
    let waiter = {
        let req = s
            .req(Method::POST, "/v1/contexts/queue/locks/printer")
            .header("x-agent-id", "second")
            .json(&json!({"ttl_ms": 60_000, "wait_ms": 60_000}));
        tokio::spawn(async move { status_json(req.send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "the lock is held: the second agent waits");
    send(&s, Method::DELETE, "/v1/contexts/queue/locks/printer", "first", None).await;
    // Woken by the release, long before its wait or the first TTL would end.
    let (status, answer) = tokio::time::timeout(Duration::from_secs(20), waiter).await.unwrap().unwrap();
    assert_eq!((status, answer["acquired"].as_bool(), answer["holder"].as_str()), (200, Some(true), Some("second")));
    assert_eq!(answer["fencing_token"], 2);
}

async fn a_paused_holder_is_fenced(s: TestServer) {
    s.create(json!({"id": "fence"})).await;
    register(&s, json!({"id": "slow"})).await;
    register(&s, json!({"id": "fast"})).await;
    let first = acquire(&s, "fence", "report", "slow", json!({"ttl_ms": 300})).await;
    assert_eq!((first["acquired"].as_bool(), first["fencing_token"].as_u64()), (Some(true), Some(1)));
    // "fast" waits on the server; it gets the lock once slow's TTL runs out.
    let second = acquire(&s, "fence", "report", "fast", json!({"ttl_ms": 60_000, "wait_ms": 10_000})).await;
    assert_eq!((second["acquired"].as_bool(), second["holder"].as_str()), (Some(true), Some("fast")));
    assert_eq!(second["fencing_token"], 2);

    // "slow" wakes from its pause and writes with its old token: refused.
    let write = |agent: &str, token: u64, value: &str| {
        s.req(Method::PUT, "/v1/contexts/fence/entries/report")
            .header("x-agent-id", agent)
            .header("x-fencing-token", format!("report={token}"))
            .json(&json!({"value": value}))
            .send()
    };
    let (status, e) = status_json(write("slow", 1, "stale").await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("fenced")), "{e}");
    assert_eq!(e["error"]["details"]["current_token"], 2);
    assert_eq!(s.get_json("/v1/contexts/fence/entries/report").await.0, 404, "the fenced write changed nothing");
    assert_eq!(write("fast", 2, "fresh").await.unwrap().status(), 201);
    let (status, e) = status_json(
        s.req(Method::POST, "/v1/contexts/fence/txn")
            .header("x-fencing-token", "report=1")
            .json(&json!({"success": [{"op": "delete", "key": "report"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("fenced")), "transactions are fenced too");
    let (status, e) = status_json(write("fast", 99, "x").await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_argument")), "token 99 was never issued");
    let bad = s.req(Method::PUT, "/v1/contexts/fence/entries/x").header("x-fencing-token", "nonsense");
    let (status, _) = status_json(bad.json(&json!({"value": 1})).send().await.unwrap()).await;
    assert_eq!(status, 400);
}

async fn a_lapsed_lease_releases_locks_and_says_so(s: TestServer) {
    s.create(json!({"id": "lease"})).await;
    register(&s, json!({"id": "sleepy", "lease_ms": 1000})).await;
    let start = s.revision("lease").await;
    acquire(&s, "lease", "db", "sleepy", json!({"ttl_ms": 600_000})).await;
    // The watch sees the release the sweeper makes once the lease lapses.
    let watch = s.req(Method::GET, &format!("/v1/contexts/lease/watch?after={start}&types=lock.expired")).send().await;
    let events = sse_events(watch.unwrap(), 1).await;
    assert_eq!(events[0].1, "lock.expired");
    assert_eq!(events[0].2["data"]["holder"], "sleepy");
    assert_eq!(events[0].2["data"]["reason"], "holder disconnected");
    let (_, agent) = s.get_json("/v1/agents/sleepy").await;
    assert_eq!(agent["status"], "disconnected");
    let (_, lock) = s.get_json("/v1/contexts/lease/locks/db").await;
    assert_eq!((lock["holder"].clone(), lock["fencing_token"].as_u64()), (Value::Null, Some(1)));
    let (_, feed) = s.get_json("/v1/agents/events?after=1").await;
    assert_eq!(feed["events"][0]["type"], "agent.disconnected");
    // A disconnected agent cannot take locks until it beats again.
    let (status, e) =
        send(&s, Method::POST, "/v1/contexts/lease/locks/db", "sleepy", Some(json!({"ttl_ms": 1000}))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("disconnected")));
    let (_, back) = send(&s, Method::POST, "/v1/agents/sleepy/heartbeat", "sleepy", None).await;
    assert_eq!(back["status"], "active");
}

async fn handoff_state_machine(s: TestServer) {
    s.create(json!({"id": "post"})).await;
    s.put("post", "findings/market", json!({"tam": 4})).await;
    register(&s, json!({"id": "researcher"})).await;
    register(&s, json!({"id": "writer"})).await;
    let request = json!({
        "target": "writer", "context": "post", "keys": ["findings/*"], "session": "s-9",
        "user_intent": "a launch post", "conversation_history": [{"role": "user", "content": "write it"}],
        "extracted_entities": {"product": "ctxmesh"}
    });
    let (status, h) = send(&s, Method::POST, "/v1/handoffs", "researcher", Some(request)).await;
    assert_eq!((status, h["status"].as_str(), h["revision"].as_u64()), (201, Some("requested"), Some(2)), "{h}");
    let id = h["id"].as_str().unwrap().to_owned();
    let step = |action: &str, agent: &str| {
        let path = format!("/v1/handoffs/{id}/{action}");
        let agent = agent.to_owned();
        let s = &s;
        async move { send(s, Method::POST, &path, &agent, None).await }
    };
    let code = |(status, body): (u16, Value)| (status, body["error"]["code"].as_str().map(str::to_owned));
    assert_eq!(code(step("complete", "writer").await), (409, Some("invalid_transition".into())));
    assert_eq!(code(step("accept", "researcher").await), (403, Some("forbidden".into())));
    let (status, accepted) = step("accept", "writer").await;
    assert_eq!((status, accepted["status"].as_str()), (200, Some("accepted")));
    assert_eq!(code(step("accept", "writer").await), (409, Some("invalid_transition".into())));
    assert_eq!(code(step("reject", "writer").await), (409, Some("invalid_transition".into())));
    assert_eq!(code(step("complete", "researcher").await), (403, Some("forbidden".into())));
    let (status, done) = send(
        &s,
        Method::POST,
        &format!("/v1/handoffs/{id}/complete"),
        "writer",
        Some(json!({"outcome": {"draft": "drafts/1"}})),
    )
    .await;
    assert_eq!(
        (status, done["status"].as_str(), &done["outcome"]),
        (200, Some("completed"), &json!({"draft": "drafts/1"}))
    );
    assert_eq!(code(step("complete", "writer").await), (409, Some("invalid_transition".into())));
    assert_eq!(code(step("accept", "writer").await), (409, Some("invalid_transition".into())));
    assert_eq!(s.get_json("/v1/handoffs/nope").await.0, 404);
    assert_eq!(code(step("explode", "writer").await), (404, Some("not_found".into())));

    let (_, inbox) = s.get_json("/v1/agents/writer/inbox?after=0").await;
    let items = inbox["events"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["handoff.requested", "handoff.accepted", "handoff.completed"]);
    let carried = &items[0]["data"]["handoff"];
    assert_eq!(
        (carried["session"].as_str(), carried["extracted_entities"]["product"].as_str()),
        (Some("s-9"), Some("ctxmesh"))
    );
    assert_eq!(items[0]["context"], "post");
    let log: Vec<String> = s.log("post").await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(&log[2..], ["handoff.requested", "handoff.accepted", "handoff.completed"]);
    let (_, listed) = s.get_json("/v1/handoffs?agent=writer&state=completed").await;
    assert_eq!(listed["handoffs"].as_array().unwrap().len(), 1);

    // A rejected handoff cannot be accepted; a handoff to nobody is refused.
    let (_, h2) =
        send(&s, Method::POST, "/v1/handoffs", "researcher", Some(json!({"target": "writer", "context": "post"})))
            .await;
    let id2 = h2["id"].as_str().unwrap();
    let (status, rejected) =
        send(&s, Method::POST, &format!("/v1/handoffs/{id2}/reject"), "writer", Some(json!({"outcome": "busy"}))).await;
    assert_eq!((status, rejected["status"].as_str()), (200, Some("rejected")));
    let (status, e) = send(&s, Method::POST, &format!("/v1/handoffs/{id2}/accept"), "writer", None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invalid_transition")));
    let ghost = json!({"target": "ghost", "context": "post"});
    assert_eq!(send(&s, Method::POST, "/v1/handoffs", "researcher", Some(ghost)).await.0, 404);
}

async fn tasks_and_inbox_resume(s: TestServer) {
    s.create(json!({"id": "work"})).await;
    register(&s, json!({"id": "boss"})).await;
    register(&s, json!({"id": "worker"})).await;
    let assign = |i: usize| {
        let body = json!({"assignee": "worker", "title": format!("job {i}"), "input": {"n": i}});
        let s = &s;
        async move {
            let (status, task) = send(s, Method::POST, "/v1/contexts/work/tasks", "boss", Some(body)).await;
            assert_eq!(status, 201, "{task}");
            task
        }
    };
    let watch = s.req(Method::GET, "/v1/agents/worker/inbox/watch?after=0").send().await.unwrap();
    assert_eq!(watch.status(), 200);
    for i in 0..3 {
        assign(i).await;
    }
    let first = sse_events(watch, 3).await;
    assert_eq!(first.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(first.iter().all(|(_, kind, _)| kind == "task.assigned"));
    // Disconnected; more work arrives meanwhile; resume from the last id.
    let mut tasks = Vec::new();
    for i in 3..5 {
        tasks.push(assign(i).await);
    }
    let resumed =
        s.req(Method::GET, "/v1/agents/worker/inbox/watch").header("last-event-id", "3").send().await.unwrap();
    let rest = sse_events(resumed, 2).await;
    assert_eq!(rest.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(), [4, 5], "no gap, no repeat");
    assert_eq!(rest[1].2["data"]["task"]["input"]["n"], 4);

    let id = tasks[0]["id"].as_str().unwrap();
    let complete = |agent: &str| {
        let path = format!("/v1/tasks/{id}/complete");
        let agent = agent.to_owned();
        let s = &s;
        async move { send(s, Method::POST, &path, &agent, Some(json!({"output": {"ok": true}}))).await }
    };
    assert_eq!(complete("boss").await.0, 403);
    let (status, done) = complete("worker").await;
    assert_eq!((status, done["status"].as_str()), (200, Some("completed")));
    assert_eq!(complete("worker").await.1["error"]["code"], "invalid_transition");
    let (_, boss) = s.get_json("/v1/agents/boss/inbox").await;
    assert_eq!(boss["events"][0]["type"], "task.completed");
    assert_eq!(boss["events"][0]["data"]["task"]["output"]["ok"], true);
    let (_, by_ctx) = s.get_json("/v1/contexts/work/tasks").await;
    assert_eq!(by_ctx["tasks"].as_array().unwrap().len(), 5);
    let (_, done_list) = s.get_json("/v1/tasks?agent=worker&status=completed").await;
    assert_eq!(done_list["tasks"].as_array().unwrap().len(), 1);
    let (status, _) = s.get_json("/v1/agents/ghost/inbox").await;
    assert_eq!(status, 404);
    let bad = json!({"assignee": "ghost", "title": "x"});
    assert_eq!(send(&s, Method::POST, "/v1/contexts/work/tasks", "boss", Some(bad)).await.0, 404);
}

async fn messages_reach_inboxes_over_the_websocket(s: TestServer) {
    s.create(json!({"id": "ops"})).await;
    register(&s, json!({"id": "worker"})).await;
    register(&s, json!({"id": "other"})).await;
    let mut ws = crate::ws::connect(&s.base).await;
    crate::ws::send(&mut ws, json!({"op": "subscribe", "sub": "in", "inbox": "worker", "after": 0})).await;
    let subscribed = crate::ws::next_answer(&mut ws).await;
    assert_eq!((subscribed["type"].as_str(), subscribed["inbox"].as_str()), (Some("subscribed"), Some("worker")));

    let direct = json!({"agents": ["worker"], "priority": "critical", "topic": "stop", "body": "halt the deploy"});
    let (status, sent) = send(&s, Method::POST, "/v1/messages", "boss", Some(direct)).await;
    // The message as sent; each inbox numbers it in its own sequence.
    assert_eq!((status, sent["type"].as_str(), sent["context"].as_str()), (201, Some("message"), Some("")), "{sent}");
    let both = json!({"context": "ops", "agents": ["worker", "other"], "body": "shared"});
    let (status, logged) = send(&s, Method::POST, "/v1/messages", "boss", Some(both)).await;
    assert_eq!(status, 201);
    assert_eq!(logged["revision"], s.revision("ops").await, "a message with a context is in its log");

    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let m = crate::ws::next_answer(&mut ws).await;
        assert_eq!((m["type"].as_str(), m["sub"].as_str()), (Some("events"), Some("in")), "{m}");
        for e in m["events"].as_array().unwrap() {
            assert_eq!(e["type"], "message");
            seqs.push(e["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, [1, 2], "the inbox in order, by its own sequence");
    let (_, other) = s.get_json("/v1/agents/other/inbox").await;
    assert_eq!(other["events"][0]["data"]["body"], "shared");

    let ghost = json!({"agents": ["ghost"], "body": "x"});
    assert_eq!(send(&s, Method::POST, "/v1/messages", "boss", Some(ghost)).await.0, 404);
    let nowhere = json!({"body": "x"});
    assert_eq!(send(&s, Method::POST, "/v1/messages", "boss", Some(nowhere)).await.0, 400);
    crate::ws::send(&mut ws, json!({"op": "subscribe", "sub": "x", "inbox": "ghost"})).await;
    assert_eq!(crate::ws::next_answer(&mut ws).await["error"]["code"], "not_found");
}

async fn a_handoff_carries_the_package_of_its_keys_as_of_its_revision(s: TestServer) {
    s.create(json!({"id": "launch"})).await;
    s.put("launch", "findings/market", json!({"tam": "four billion"})).await;
    s.put("launch", "findings/churn", json!({"churn": "two percent"})).await;
    s.put("launch", "notes/lunch", json!({"order": "pizza"})).await;
    register(&s, json!({"id": "researcher"})).await;
    register(&s, json!({"id": "writer", "needs": {"keys": ["findings/**", "notes/**"]}, "token_budget": 2000})).await;
    let request = json!({"target": "writer", "context": "launch", "keys": ["findings/*"]});
    let (status, h) = send(&s, Method::POST, "/v1/handoffs", "researcher", Some(request)).await;
    assert_eq!(status, 201, "{h}");
    let (id, revision) = (h["id"].as_str().unwrap().to_owned(), h["revision"].as_u64().unwrap());
    // Changes after the handoff are not what was handed over.
    s.put("launch", "findings/market", json!({"tam": "nine billion"})).await;
    s.put("launch", "findings/pricing", json!({"price": 20})).await;

    let path = format!("/v1/handoffs/{id}/package");
    let (status, package) = send(&s, Method::GET, &path, "writer", None).await;
    assert_eq!(status, 200, "{package}");
    assert_eq!((package["agent"].as_str(), package["revision"].as_u64()), (Some("writer"), Some(revision)));
    let mut keys: Vec<&str> = package["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["findings/churn", "findings/market"], "{package}");
    let text = package["text"].as_str().unwrap();
    assert!(text.contains("four billion") && !text.contains("nine billion"), "{text}");
    assert!(!text.contains("pizza"), "a key the handoff does not name stays out: {text}");
    assert_eq!(package["budget"].as_u64(), Some(2000), "the target's budget");

    // The source may read it too, within a budget of its choosing.
    let (status, small) = send(&s, Method::GET, &format!("{path}?budget=40"), "researcher", None).await;
    assert_eq!((status, small["budget"].as_u64()), (200, Some(40)), "{small}");
    assert!(small["tokens"].as_u64().unwrap() <= 40, "{small}");
    let r = s.req(Method::GET, &format!("{path}?format=markdown")).header("x-agent-id", "writer").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    assert!(r.text().await.unwrap().contains("four billion"));

    let (status, e) = send(&s, Method::GET, "/v1/handoffs/nope/package", "writer", None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")), "{e}");
    let (status, e) = send(&s, Method::GET, &format!("{path}?budget=0"), "writer", None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_argument")), "{e}");
}

/// One rule: reading and writing entries needs no registration (the
/// author is a name); what needs an agent's lease, inbox or needs does,
/// and the refusal says so and how to register.
async fn what_uses_the_registry_needs_a_registered_agent(s: TestServer) {
    s.create(json!({"id": "c"})).await;
    register(&s, json!({"id": "researcher"})).await;
    let (status, entry) = send(&s, Method::PUT, "/v1/contexts/c/entries/k", "ghost", Some(json!({"value": 1}))).await;
    assert_eq!((status, entry["author"].as_str()), (201, Some("ghost")), "{entry}");

    let refused = |(status, body): (u16, Value), role: &str| {
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("agent \"ghost\" is not registered ("), "{message}");
        assert!(message.contains(role) && message.contains("ctxmesh agents register ghost"), "{message}");
        assert!(!message.ends_with("not found"), "{message}");
        assert_eq!(body["error"]["details"]["agent"], "ghost", "{body}");
    };
    let lock = send(&s, Method::POST, "/v1/contexts/c/locks/l", "ghost", Some(json!({"ttl_ms": 5000}))).await;
    refused(lock, "a lock's holder");
    let handoff = json!({"target": "ghost", "context": "c"});
    refused(send(&s, Method::POST, "/v1/handoffs", "researcher", Some(handoff)).await, "a handoff's target");
    let task = json!({"assignee": "ghost", "title": "draft"});
    refused(send(&s, Method::POST, "/v1/contexts/c/tasks", "researcher", Some(task)).await, "a task's assignee");
    refused(send(&s, Method::GET, "/v1/contexts/c/package?agent=ghost", "researcher", None).await, "a package is for");
    refused(send(&s, Method::GET, "/v1/contexts/c/package", "ghost", None).await, "a package is for");

    // The admin acting as no agent is asked to name one.
    let (status, e) = status_json(s.req(Method::GET, "/v1/contexts/c/package").send().await.unwrap()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_argument")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("?agent="), "{e}");
    assert_eq!(e["error"]["details"]["field"], "agent");
    // Reading an agent that is not there is a plain 404.
    let (status, e) = s.get_json("/v1/agents/ghost").await;
    assert_eq!((status, e["error"]["message"].as_str()), (404, Some("agent \"ghost\" not found")), "{e}");
}
