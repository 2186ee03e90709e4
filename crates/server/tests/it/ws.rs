//! The multiplexed WebSocket: several subscriptions on one connection, the
//! same semantics and resume as SSE.

use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::TestServer;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(base: &str) -> Socket {
    let url = format!("{}/v1/ws", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

pub(crate) async fn send(ws: &mut Socket, command: Value) {
    ws.send(Message::Text(command.to_string().into())).await.unwrap();
}

async fn next_json(ws: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// The next message that is not a progress bookmark.
pub(crate) async fn next_answer(ws: &mut Socket) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["type"] != "progress" {
            return m;
        }
    }
}

/// Reads until every subscription in `until` has a bookmark at or past its
/// revision; returns the events per subscription.
async fn collect(ws: &mut Socket, until: &BTreeMap<&str, u64>) -> BTreeMap<String, Vec<Value>> {
    let mut got: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    while done.values().filter(|d| **d).count() < until.len() {
        let m = next_json(ws).await;
        let sub = m["sub"].as_str().unwrap_or_default().to_owned();
        match m["type"].as_str().unwrap() {
            "events" => {
                let events = m["events"].as_array().unwrap();
                assert!(events.iter().all(|e| e["revision"] == m["revision"]), "one message is one revision");
                got.entry(sub).or_default().extend(events.iter().cloned());
            }
            "progress" => {
                if m["revision"].as_u64().unwrap() >= until[sub.as_str()] {
                    done.insert(sub, true);
                }
            }
            "subscribed" | "unsubscribed" => {}
            other => panic!("unexpected message {other}: {m}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_multiplexes_contexts_and_resumes() {
    let s = TestServer::start().await;
    s.create(json!({"id": "a"})).await;
    s.create(json!({"id": "b"})).await;
    let mut ws = connect(&s.base).await;
    send(&mut ws, json!({"op": "subscribe", "sub": "s1", "context": "a", "after": 0})).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "subscribed", "sub": "s1", "context": "a", "after": 0}));
    send(&mut ws, json!({"op": "subscribe", "sub": "s2", "context": "b", "after": 0, "types": ["context.updated"]}))
        .await;
    for i in 0..20 {
        s.put("a", &format!("k{i}"), json!(i)).await;
        s.put("b", &format!("k{i}"), json!(i)).await;
    }
    let until = BTreeMap::from([("s1", 21), ("s2", 21)]);
    let got = collect(&mut ws, &until).await;
    assert_eq!(got["s1"], s.log("a").await);
    let updates_b: Vec<Value> = s.log("b").await.into_iter().filter(|e| e["type"] == "context.updated").collect();
    assert_eq!(got["s2"], updates_b);

    // Drop the connection, write more, resume on a new one from the last revision.
    drop(ws);
    for i in 20..30 {
        s.put("a", &format!("k{i}"), json!(i)).await;
    }
    let mut ws = connect(&s.base).await;
    send(&mut ws, json!({"op": "subscribe", "sub": "again", "context": "a", "after": 21})).await;
    let got = collect(&mut ws, &BTreeMap::from([("again", 31)])).await;
    let log = s.log("a").await;
    assert_eq!(got["again"], log[21..].to_vec());

    // Unsubscribing stops delivery on that subscription only.
    send(&mut ws, json!({"op": "unsubscribe", "sub": "again"})).await;
    loop {
        let m = next_json(&mut ws).await;
        if m["type"] == "unsubscribed" {
            break;
        }
    }
    send(&mut ws, json!({"op": "subscribe", "sub": "b2", "context": "b"})).await;
    s.put("a", "after-unsubscribe", json!(1)).await;
    s.put("b", "k-new", json!(1)).await;
    let got = collect(&mut ws, &BTreeMap::from([("b2", 22)])).await;
    assert!(!got.contains_key("again"));
    assert_eq!(got["b2"].len(), 1);
}

#[tokio::test]
async fn bad_commands_get_errors_and_the_socket_stays_open() {
    let s = TestServer::start().await;
    s.create(json!({"id": "a"})).await;
    let mut ws = connect(&s.base).await;
    for (command, code) in [
        (json!({"op": "dance"}), "invalid_argument"),
        (json!({"op": "subscribe", "sub": "x", "context": "nope"}), "not_found"),
        (json!({"op": "subscribe", "sub": "x", "context": "bad id"}), "invalid_id"),
        (json!({"op": "unsubscribe", "sub": "ghost"}), "not_found"),
    ] {
        send(&mut ws, command.clone()).await;
        let m = next_json(&mut ws).await;
        assert_eq!((m["type"].as_str(), m["error"]["code"].as_str()), (Some("error"), Some(code)), "{command}");
    }
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["error"]["code"], "invalid_argument");
    send(&mut ws, json!({"op": "subscribe", "sub": "x", "context": "a"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    send(&mut ws, json!({"op": "subscribe", "sub": "x", "context": "a"})).await;
    assert_eq!(next_answer(&mut ws).await["error"]["code"], "already_exists");
    send(&mut ws, json!({"op": "ping"})).await;
    assert_eq!(next_answer(&mut ws).await["type"], "pong");

    // An oversized command closes the connection instead of being buffered.
    let huge = json!({"op": "subscribe", "sub": "x".repeat(100 * 1024), "context": "a"});
    let _ = ws.send(Message::Text(huge.to_string().into())).await;
    let mut closed = false;
    for _ in 0..100 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                closed = true;
                break;
            }
            Some(Ok(_)) => continue,
        }
    }
    assert!(closed, "the server closes a connection that sends an oversized command");
}

/// Many subscriptions on one socket, subscribed in one burst without
/// reading, neither stall that socket nor the rest of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_subscriptions_stalls_nothing() {
    let s = TestServer::start().await;
    s.create(json!({"id": "a"})).await;
    let mut ws = connect(&s.base).await;
    for i in 0..250 {
        send(&mut ws, json!({"op": "subscribe", "sub": format!("s{i}"), "context": "a", "after": 0})).await;
    }
    let mut subscribed = 0;
    while subscribed < 250 {
        if next_json(&mut ws).await["type"] == "subscribed" {
            subscribed += 1;
        }
    }
    // Other clients are served meanwhile.
    assert_eq!(s.get_json("/v1/contexts/a").await.0, 200);
    s.put("a", "k", json!(1)).await;
    let mut updates = 0;
    while updates < 250 {
        let m = next_json(&mut ws).await;
        if m["type"] == "events" && m["revision"] == 2 {
            updates += 1;
        }
    }
}
