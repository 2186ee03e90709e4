//! Concurrent read-modify-write through the HTTP API.

use serde_json::json;

use crate::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_clients_incrementing_with_if_match_lose_no_update() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    s.put("c", "counter", json!(0)).await;
    let base = s.base.clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!("{base}/v1/contexts/c/entries/counter");
            let (mut ok, mut conflicts) = (0u64, 0u64);
            for _ in 0..15 {
                let r = http.get(&url).send().await.unwrap();
                let etag = r.headers()["etag"].to_str().unwrap().to_owned();
                let current: serde_json::Value = r.json().await.unwrap();
                let next = current["value"].as_u64().unwrap() + 1;
                let w = http.put(&url).header("if-match", etag).json(&json!({"value": next})).send().await.unwrap();
                match w.status().as_u16() {
                    200 => ok += 1,
                    412 => conflicts += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, conflicts)
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        let (o, c) = t.await.unwrap();
        ok += o;
        conflicts += c;
    }
    assert_eq!(ok + conflicts, 16 * 15);
    let (_, e) = s.get_json("/v1/contexts/c/entries/counter").await;
    assert_eq!(e["value"].as_u64().unwrap(), ok, "the counter equals the number of successful writes");
    assert_eq!(e["version"].as_u64().unwrap(), ok + 1);
    // Each successful write is exactly one revision.
    assert_eq!(s.revision("c").await, 2 + ok);
}
