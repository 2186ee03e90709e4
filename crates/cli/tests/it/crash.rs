//! Acknowledged writes survive SIGKILL and SIGTERM; history has no gap.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::ServerProcess;

/// Writers hammer the server until it is killed; returns each
/// acknowledged key with the revision the server acknowledged.
async fn write_until_stopped(base: &str, stop: Arc<AtomicBool>) -> BTreeMap<String, (u64, Value)> {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let base = base.to_owned();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = BTreeMap::new();
            for i in 0..100_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("w{w}/{i}");
                let value = json!({"writer": w, "i": i});
                let sent = http
                    .put(format!("{base}/v1/contexts/crash/entries/{key}"))
                    .json(&json!({"value": value}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let e: Value = r.json().await.unwrap();
                        acked.insert(key, (e["revision"].as_u64().unwrap(), value));
                    }
                    // Connection refused or reset: the server is gone.
                    _ => break,
                }
            }
            acked
        }));
    }
    let mut all = BTreeMap::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn check_survivors(base: &str, acked: &BTreeMap<String, (u64, Value)>) {
    let http = reqwest::Client::new();
    for (key, (revision, value)) in acked {
        let r = http.get(format!("{base}/v1/contexts/crash/entries/{key}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged write {key} was lost");
        let e: Value = r.json().await.unwrap();
        assert_eq!((&e["value"], e["revision"].as_u64().unwrap()), (value, *revision), "{key}");
    }
    // The history has every revision from 1 to the current one.
    let ctx: Value = http.get(format!("{base}/v1/contexts/crash")).send().await.unwrap().json().await.unwrap();
    let current = ctx["revision"].as_u64().unwrap();
    let mut revisions = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut url = format!("{base}/v1/contexts/crash/history?limit=1000");
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        revisions.extend(page["commits"].as_array().unwrap().iter().map(|c| c["revision"].as_u64().unwrap()));
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    revisions.reverse();
    assert_eq!(revisions, (1..=current).collect::<Vec<_>>(), "history has no gap");
    assert_eq!(ctx["entry_count"].as_u64().unwrap() as usize, current as usize - 1, "one entry per write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let r = http.post(format!("{}/v1/contexts", server.base)).json(&json!({"id": "crash"})).send().await.unwrap();
    assert_eq!(r.status(), 201);

    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn({
        let base = server.base.clone();
        let stop = stop.clone();
        async move { write_until_stopped(&base, stop).await }
    });
    // Kill once a good number of writes are acknowledged (bounded wait).
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let ctx: Value =
            http.get(format!("{}/v1/contexts/crash", server.base)).send().await.unwrap().json().await.unwrap();
        if ctx["revision"].as_u64().unwrap() > 300 {
            break;
        }
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked = writers.await.unwrap();
    assert!(acked.len() > 100, "writers were running when the server was killed");

    let restarted = ServerProcess::start(dir.path(), &[]);
    check_survivors(&restarted.base, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &["--durability", "relaxed"]);
    let http = reqwest::Client::new();
    http.post(format!("{}/v1/contexts", server.base)).json(&json!({"id": "crash"})).send().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn({
        let base = server.base.clone();
        let stop = stop.clone();
        async move { write_until_stopped(&base, stop).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = server.terminate();
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    let acked = writers.await.unwrap();
    assert!(!acked.is_empty());
    let restarted = ServerProcess::start(dir.path(), &[]);
    check_survivors(&restarted.base, &acked).await;
}
