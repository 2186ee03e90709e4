//! The package scenario: how long building an agent's package takes for a
//! context of many entries.

use std::time::Instant;

use clap::Args;
use ctxmesh_client::{Client, Method};
use serde_json::{Value, json};

use super::{Percentiles, Target};

/// Options of `ctxmesh bench package`.
#[derive(Args, Debug)]
pub(crate) struct PackageBench {
    /// Entries in the context.
    #[arg(long, default_value_t = 10_000)]
    entries: usize,
    /// The token budget of each package.
    #[arg(long, default_value_t = 4000)]
    budget: usize,
    /// Package requests to time in each phase.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Size of each entry's value text, in bytes (about).
    #[arg(long, default_value_t = 300)]
    value_size: usize,
}

#[derive(Debug, serde::Serialize)]
struct PackageResult {
    entries: usize,
    budget: usize,
    /// A package for an agent not asked for yet, at a revision whose
    /// entries the node has read before: scoring, ranking, packing.
    compute: Percentiles,
    /// The first package after a write: reading the new revision's
    /// entries too.
    after_write: Percentiles,
    /// The same package again (the cache).
    cached: Percentiles,
    /// Items in a package, and its tokens.
    items: usize,
    tokens: usize,
}

const WORDS: [&str; 16] = [
    "revenue", "churn", "pricing", "brand", "launch", "audience", "risk", "legal", "design", "latency", "budget",
    "roadmap", "hiring", "support", "security", "partner",
];

fn text(i: usize, size: usize) -> String {
    let mut out = String::new();
    let mut n = i;
    while out.len() < size {
        let w = WORDS[n % WORDS.len()];
        out.push_str(&format!("The {w} review {n} found item {} within range. ", n % 97));
        n = n.wrapping_mul(31).wrapping_add(7);
    }
    out
}

async fn timed(client: &Client, path: &str) -> anyhow::Result<(f64, Value)> {
    let start = Instant::now();
    let package = client.call(Method::GET, path, None).await?;
    Ok((start.elapsed().as_secs_f64() * 1000.0, package))
}

pub(crate) async fn run(target: &Target, bench: &PackageBench, json_out: bool) -> anyhow::Result<()> {
    let client = target.client("bench");
    let ctx = format!("pkg-{}", std::process::id());
    client.create_context(&json!({"id": ctx})).await?;
    // Entries in transactions of 200: kinds, tags and keys vary so that
    // about a third match the agents' needs.
    for chunk in (0..bench.entries).collect::<Vec<_>>().chunks(200) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let area = ["findings", "notes", "drafts"][i % 3];
                let kind = ["finding", "note", "output"][i % 3];
                let priority = ["low", "normal", "high"][i % 3];
                let tag = WORDS[i % WORDS.len()];
                json!({"op": "put", "key": format!("{area}/e{i}"), "value": text(*i, bench.value_size),
                    "kind": kind, "tags": [tag], "confidence": (i % 10) as f64 / 10.0, "priority": priority})
            })
            .collect();
        client.call(Method::POST, &format!("/v1/contexts/{ctx}/txn"), Some(&json!({"success": ops}))).await?;
    }
    let agents = bench.requests * 2 + 1;
    for a in 0..agents {
        let spec = json!({"id": format!("bench-agent-{a}"), "objective": "revenue and pricing risk for the launch",
            "needs": {"keys": ["findings/**"], "tags": ["pricing"]}});
        // An agent registered by an earlier run is fine.
        let _ = client.call(Method::POST, "/v1/agents", Some(&spec)).await;
    }
    let path = |a: usize| format!("/v1/contexts/{ctx}/package?agent=bench-agent-{a}&budget={}", bench.budget);
    // Warm: the revision's entries are read once.
    let (_, first) = timed(&client, &path(agents - 1)).await?;
    let mut compute = Vec::new();
    for a in 0..bench.requests {
        compute.push(timed(&client, &path(a)).await?.0);
    }
    let mut cached = Vec::new();
    for a in 0..bench.requests {
        cached.push(timed(&client, &path(a)).await?.0);
    }
    let mut after_write = Vec::new();
    for a in bench.requests..bench.requests * 2 {
        let body = json!({"value": text(a, bench.value_size), "kind": "note"});
        client.call(Method::PUT, &format!("/v1/contexts/{ctx}/entries/notes/w{a}"), Some(&body)).await?;
        after_write.push(timed(&client, &path(a)).await?.0);
    }
    let result = PackageResult {
        entries: bench.entries,
        budget: bench.budget,
        compute: Percentiles::of(compute),
        after_write: Percentiles::of(after_write),
        cached: Percentiles::of(cached),
        items: first["items"].as_array().map_or(0, Vec::len),
        tokens: first["tokens"].as_u64().unwrap_or(0) as usize,
    };
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&json!({"scenario": "package", "result": result}))?);
        return Ok(());
    }
    outln!(
        "package: {} entries, budget {} tokens, {} items / {} tokens per package, server {}",
        result.entries,
        result.budget,
        result.items,
        result.tokens,
        target.base
    );
    outln!("{:<12} {:>8} {:>8} {:>8} {:>8} {:>8}", "phase", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms");
    for (name, p) in [("compute", &result.compute), ("after write", &result.after_write), ("cached", &result.cached)] {
        outln!("{:<12} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", name, p.samples, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms);
    }
    Ok(())
}
