//! Three ctxmesh nodes over one PostgreSQL database act as one server:
//! no lost update, every watcher sees every node's writes in order, and a
//! watch survives the SIGKILL of its node by resuming on another.

use ctxmesh_client::{Client, ResumeTracker, WatchFrame};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::ServerProcess;

/// Three nodes on ephemeral ports over a fresh schema of the test database.
async fn cluster() -> (Vec<ServerProcess>, Vec<tempfile::TempDir>) {
    let url = ctxmesh_store::conformance::fresh_postgres_url().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = dirs.iter().map(|d| ServerProcess::start(d.path(), &["--store", &url, "--pool-size", "4"])).collect();
    (nodes, dirs)
}

/// Reads `stream` into `events` (passing each frame through `tracker`)
/// until it ends or the last event has revision `until`, or, with
/// `stop_after`, once that many events are held. Returns whether `until`
/// was reached.
async fn collect(
    stream: impl futures::Stream<Item = Result<WatchFrame, ctxmesh_client::ClientError>>,
    tracker: &mut ResumeTracker,
    events: &mut Vec<Value>,
    until: u64,
    stop_after: Option<usize>,
) -> bool {
    futures::pin_mut!(stream);
    while let Some(Ok(frame)) = stream.next().await {
        if !tracker.accept(&frame) {
            continue;
        }
        match frame {
            WatchFrame::Event(e) => {
                let revision = e["revision"].as_u64().unwrap();
                events.push(e);
                if revision >= until {
                    return true;
                }
                if stop_after.is_some_and(|n| events.len() >= n) {
                    return false;
                }
            }
            WatchFrame::Error(e) => panic!("the watch failed: {e}"),
            _ => {}
        }
    }
    false
}

fn revisions(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["revision"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_spread_over_three_nodes_lose_no_update_and_a_third_node_sees_them_all() {
    let (nodes, _dirs) = cluster().await;
    let http = reqwest::Client::new();
    let first = Client::new(&nodes[0].base);
    first.create_context(&json!({"id": "counter"})).await.unwrap();
    let put = http.put(format!("{}/v1/contexts/counter/entries/n", nodes[0].base)).json(&json!({"value": 0}));
    assert_eq!(put.send().await.unwrap().status(), 201);

    // Watch on node 3 while nodes 1 and 2 take the writes.
    let (workers, increments) = (12u64, 8u64);
    let last = 2 + workers * increments;
    let watcher = {
        let base = nodes[2].base.clone();
        tokio::spawn(async move {
            let client = Client::new(&base);
            let mut tracker = ResumeTracker::new(2);
            let mut events = Vec::new();
            let stream = client.watch("counter", Some(tracker.resume_after()), &[]).await.unwrap();
            assert!(collect(stream, &mut tracker, &mut events, last, None).await, "the watch ended early");
            events
        })
    };

    let mut tasks = Vec::new();
    for w in 0..workers {
        let base = nodes[(w % 2) as usize].base.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!("{base}/v1/contexts/counter/entries/n");
            let mut conflicts = 0;
            for _ in 0..increments {
                loop {
                    let current = http.get(&url).send().await.unwrap();
                    let etag = current.headers()["etag"].to_str().unwrap().to_owned();
                    let value = current.json::<Value>().await.unwrap()["value"].as_u64().unwrap();
                    let r = http
                        .put(&url)
                        .header("if-match", etag)
                        .header("x-agent-id", format!("worker-{w}"))
                        .json(&json!({"value": value + 1}))
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        200 => break,
                        412 => conflicts += 1,
                        other => panic!("unexpected status {other}: {}", r.text().await.unwrap()),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    assert!(conflicts > 0, "the workers did race");

    for node in &nodes {
        let e: Value = http
            .get(format!("{}/v1/contexts/counter/entries/n", node.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!((e["value"].as_u64(), e["revision"].as_u64()), (Some(workers * increments), Some(last)));
    }

    let events = watcher.await.unwrap();
    assert_eq!(revisions(&events), (3..=last).collect::<Vec<_>>(), "every event, in order, once");
    let values: Vec<u64> = events.iter().map(|e| e["data"]["value"].as_u64().unwrap()).collect();
    assert_eq!(values, (1..=workers * increments).collect::<Vec<_>>(), "each increment seen as it happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_on_another_node_after_its_node_is_killed() {
    let (mut nodes, _dirs) = cluster().await;
    let writer = Client::new(&nodes[1].base).with_agent("writer");
    writer.create_context(&json!({"id": "stream"})).await.unwrap();
    let write = |from: usize, to: usize| {
        let writer = writer.clone();
        async move {
            for i in from..to {
                let body = json!({"value": {"i": i}});
                writer
                    .put_entry("stream", &format!("k{i:03}"), &body, ctxmesh_client::Precondition::None)
                    .await
                    .unwrap();
            }
        }
    };
    let (half, total) = (30usize, 60usize);
    let last = 1 + total as u64;
    write(0, half).await;

    // Watch on node 3 from the start; after 20 events its node dies.
    let mut tracker = ResumeTracker::new(1);
    let mut events = Vec::new();
    let stream = Client::new(&nodes[2].base).watch("stream", Some(tracker.resume_after()), &[]).await.unwrap();
    assert!(!collect(stream, &mut tracker, &mut events, last, Some(20)).await);
    nodes[2].kill9();

    // Writes go on through node 2 while the client moves to node 1.
    let more = tokio::spawn(write(half, total));
    let resumed = Client::new(&nodes[0].base);
    let stream = resumed.watch("stream", Some(tracker.resume_after()), &[]).await.unwrap();
    assert!(collect(stream, &mut tracker, &mut events, last, None).await, "the resumed watch ended early");
    more.await.unwrap();

    assert_eq!(revisions(&events), (2..=last).collect::<Vec<_>>(), "no gap and no duplicate across the failover");
    let keys: Vec<&str> = events.iter().map(|e| e["key"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..total).map(|i| format!("k{i:03}")).collect();
    assert_eq!(keys, expected);
}
