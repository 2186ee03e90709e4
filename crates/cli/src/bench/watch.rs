//! The watch fan-out scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use ctxmesh_client::{Precondition, WatchFrame};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Barrier;

use super::{Percentiles, Target};

/// Options of `ctxmesh bench watch`.
#[derive(Args, Debug)]
pub(crate) struct WatchBench {
    /// Subscriber counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 100, 1000])]
    subscribers: Vec<usize>,
    /// Writes per run.
    #[arg(long, default_value_t = 200)]
    writes: usize,
    /// Writes per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Size of each written value, in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
}

#[derive(Debug, serde::Serialize)]
struct WatchResult {
    subscribers: usize,
    writes: usize,
    latency: Percentiles,
    /// Server heap in use per idle subscriber, in KiB (`ctxmesh_heap_in_use_bytes`).
    heap_kib_per_idle_subscriber: Option<f64>,
    /// Server resident memory growth per idle subscriber, in KiB (when the
    /// bench started the server); includes the allocator's own growth.
    rss_kib_per_idle_subscriber: Option<f64>,
    /// Events that did not arrive within the time limit.
    missing: usize,
}

pub(crate) async fn run(target: &Target, bench: &WatchBench, json_out: bool) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for &n in &bench.subscribers {
        results.push(run_one(target, bench, n).await?);
    }
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&json!({"scenario": "watch", "results": results}))?);
        return Ok(());
    }
    outln!(
        "watch fan-out: {} writes at {}/s, {} B values, server {}",
        bench.writes,
        bench.rate,
        bench.value_size,
        target.base
    );
    outln!("commit-to-receipt latency (event commit time to arrival at the subscriber):");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.subscribers.to_string(),
                r.latency.samples.to_string(),
                format!("{:.2}", r.latency.p50_ms),
                format!("{:.2}", r.latency.p90_ms),
                format!("{:.2}", r.latency.p99_ms),
                format!("{:.2}", r.latency.max_ms),
                r.heap_kib_per_idle_subscriber.map_or("n/a".into(), |k| format!("{k:.1}")),
                r.rss_kib_per_idle_subscriber.map_or("n/a".into(), |k| format!("{k:.1}")),
                r.missing.to_string(),
            ]
        })
        .collect();
    crate::table::print(
        &["SUBSCRIBERS", "SAMPLES", "P50_MS", "P90_MS", "P99_MS", "MAX_MS", "HEAP_KIB/SUB", "RSS_KIB/SUB", "MISSING"],
        &rows,
    );
    Ok(())
}

async fn run_one(target: &Target, bench: &WatchBench, n: usize) -> anyhow::Result<WatchResult> {
    let client = target.client("bench");
    let ctx = format!("bench-watch-{n}-{}", Utc::now().timestamp_micros());
    let info = client.create_context(&json!({"id": ctx})).await.context("cannot create the bench context")?;
    let start = info.revision;
    let until = start + bench.writes as u64;

    let rss_before = target.rss_kib();
    let heap_before = heap_bytes(&target.base).await;
    let connected = Arc::new(Barrier::new(n + 1));
    let mut subscribers = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, ctx, connected) = (client.clone(), ctx.clone(), connected.clone());
        subscribers.push(tokio::spawn(async move {
            let stream = client.watch(&ctx, Some(start), &[]).await;
            let mut latencies = Vec::new();
            let Ok(stream) = stream else {
                connected.wait().await;
                return latencies;
            };
            futures::pin_mut!(stream);
            let mut announced = false;
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    WatchFrame::Progress(r) => {
                        if !announced {
                            announced = true;
                            connected.wait().await;
                        }
                        if r >= until {
                            break;
                        }
                    }
                    WatchFrame::Event(e) => {
                        let received = Utc::now();
                        if let Some(at) = e["at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()) {
                            latencies.push((received - at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                        }
                        if e["revision"].as_u64().unwrap_or(0) >= until {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            if !announced {
                connected.wait().await;
            }
            latencies
        }));
    }
    connected.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_kib_per_idle_subscriber = match (rss_before, target.rss_kib()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / n as f64),
        _ => None,
    };
    let heap_kib_per_idle_subscriber = match (heap_before, heap_bytes(&target.base).await) {
        (Some(before), Some(after)) => Some((after - before) / 1024.0 / n as f64),
        _ => None,
    };

    let value = "v".repeat(bench.value_size);
    let interval = Duration::from_secs_f64(1.0 / f64::from(bench.rate.max(1)));
    let started = Instant::now();
    for i in 0..bench.writes {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        client.put_entry(&ctx, &format!("k{}", i % 64), &json!({"value": value}), Precondition::None).await?;
    }
    let mut samples = Vec::with_capacity(n * bench.writes);
    let deadline = Instant::now() + Duration::from_secs(60);
    for s in subscribers {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(latencies)) = tokio::time::timeout(left, s).await {
            samples.extend(latencies);
        }
    }
    let expected = n * bench.writes;
    let missing = expected.saturating_sub(samples.len());
    client.delete_context(&ctx).await?;
    Ok(WatchResult {
        subscribers: n,
        writes: bench.writes,
        latency: Percentiles::of(samples),
        heap_kib_per_idle_subscriber,
        rss_kib_per_idle_subscriber,
        missing,
    })
}

/// `ctxmesh_heap_in_use_bytes` from the server's metrics.
async fn heap_bytes(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("ctxmesh_heap_in_use_bytes ")).and_then(|v| v.trim().parse().ok())
}
