//! A subscriber that never reads slows nobody and costs bounded memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ctxmesh_client::{Client, ResumeTracker, WatchFrame};
use futures::StreamExt;
use serde_json::json;

use crate::ServerProcess;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Reads the watch until a bookmark at `until`; returns the events seen.
async fn read_all(base: String, until: u64) -> usize {
    let client = Client::new(&base);
    let mut tracker = ResumeTracker::new(1);
    let mut seen = 0;
    loop {
        let stream = client.watch("slow", Some(tracker.resume_after()), &[]).await.unwrap();
        futures::pin_mut!(stream);
        while let Some(Ok(frame)) = stream.next().await {
            if !tracker.accept(&frame) {
                continue;
            }
            match frame {
                WatchFrame::Event(_) => seen += 1,
                WatchFrame::Progress(r) if r >= until => return seen,
                _ => {}
            }
        }
    }
}

async fn write_many(base: &str, from: usize, to: usize, value: &str) -> usize {
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (base, value) = (base.to_owned(), value.to_owned());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ok = 0;
            for i in (from + w..to).step_by(writers) {
                let r = http
                    .put(format!("{base}/v1/contexts/slow/entries/k{i}"))
                    .json(&json!({"value": value}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 201 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_that_never_reads_slows_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let pid = server.child.id();
    let base = server.base.clone();
    let http = reqwest::Client::new();
    http.post(format!("{base}/v1/contexts")).json(&json!({"id": "slow"})).send().await.unwrap();

    // The stuck subscriber: asks for the stream, then never reads a byte.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut stuck = TcpStream::connect(&addr).unwrap();
    write!(stuck, "GET /v1/contexts/slow/watch?after=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();

    let value = "x".repeat(16 * 1024);
    // Warm up caches and allocator, then measure.
    assert_eq!(write_many(&base, 0, 500, &value).await, 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let total = 6000;
    let readers: Vec<_> = (0..2).map(|_| tokio::spawn(read_all(base.clone(), total as u64 + 1))).collect();
    let written = write_many(&base, 500, total, &value).await;
    assert_eq!(written, total - 500, "every write succeeds while a subscriber is stuck");
    for r in readers {
        let seen = tokio::time::timeout(Duration::from_secs(120), r).await.expect("readers finish").unwrap();
        assert_eq!(seen, total, "the other subscribers receive every event");
    }
    let after = rss_kib(pid);
    let payload_kib = (total - 500) as u64 * 16;
    let growth = after.saturating_sub(before);
    eprintln!("server RSS {before} KiB -> {after} KiB with {payload_kib} KiB of events written");
    assert!(
        growth < payload_kib / 2,
        "server memory grew by {growth} KiB while {payload_kib} KiB of events went past a stuck subscriber"
    );

    // The stuck subscriber was a real, open stream all along.
    stuck.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 15];
    stuck.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK");
}
