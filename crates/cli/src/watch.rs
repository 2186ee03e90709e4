//! `ctxmesh watch CTX`: print a context's events as they arrive, resuming
//! by itself after a disconnect. Watching as an agent keeps its lease
//! alive meanwhile, so that its locks outlive the watch's quiet spells but
//! not the process.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ctxmesh_client::{Client, ClientError, KeepAliveEnd, ResumeTracker, WatchFrame};
use futures::StreamExt;
use serde_json::Value;

use crate::ctx::ClientOpts;

/// Options of `ctxmesh watch`.
#[derive(Args, Debug)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    pub(crate) opts: ClientOpts,
    /// The context to watch.
    ctx: String,
    /// Start after this revision (default: from now on).
    #[arg(long)]
    after: Option<u64>,
    /// Only these event types (comma-separated).
    #[arg(long)]
    types: Option<String>,
    /// Only events whose key starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Only events of at least this priority.
    #[arg(long)]
    min_priority: Option<String>,
    /// Deliver a backlog highest priority first.
    #[arg(long)]
    by_priority: bool,
}

pub(crate) async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    let watching = follow(&client, &args);
    let Some(agent) = acting_agent(&client, &args).await? else { return watching.await };
    let mut keep_alive = client.keep_alive(&agent);
    tokio::pin!(watching);
    tokio::select! {
        result = &mut watching => return result,
        end = keep_alive.ended() => {
            // A 404 (the agent was unregistered meanwhile) ends it quietly.
            if let KeepAliveEnd::Refused(e) = end {
                eprintln!("warning: the lease of {agent} is no longer kept alive: {e}");
            }
        }
    }
    watching.await
}

/// The agent the watch acts as, whose lease it keeps alive: the one named
/// by --agent, else the one whose token it holds (none for the admin).
async fn acting_agent(client: &Client, args: &WatchArgs) -> anyhow::Result<Option<String>> {
    if let Some(agent) = &args.opts.agent {
        return Ok(Some(agent.clone()));
    }
    match client.whoami().await {
        Ok(identity) if identity["admin"] != true => Ok(identity["agent"].as_str().map(str::to_owned)),
        Ok(_) => Ok(None),
        Err(e @ ClientError::Api { status: 401, .. }) => Err(e.into()),
        // The watch itself says what is wrong with the server.
        Err(_) => Ok(None),
    }
}

/// Prints the context's events until the watch fails.
async fn follow(client: &Client, args: &WatchArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [("types", &args.types), ("prefix", &args.prefix), ("min_priority", &args.min_priority)] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    if args.by_priority {
        query.push(("order", "priority".into()));
    }
    let start = match args.after {
        Some(after) => after,
        None => client.get_context(&args.ctx).await?.revision,
    };
    let mut tracker = ResumeTracker::new(start);
    loop {
        let after = tracker.resume_after();
        let stream = match client.watch(&args.ctx, Some(after), &query).await {
            Ok(s) => s,
            // (A refused certificate is not retried: it ends the watch.)
            Err(ClientError::Transport(e)) => {
                eprintln!("connection lost ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        futures::pin_mut!(stream);
        while let Some(frame) = stream.next().await {
            let Ok(frame) = frame else { break };
            if !tracker.accept(&frame) {
                continue;
            }
            match frame {
                WatchFrame::Event(e) => print_event(&e, args.opts.json),
                WatchFrame::Progress(_) => {}
                WatchFrame::Compacted(c) => bail!(
                    "the history after revision {} was compacted (first revision kept: {}); restart without --after",
                    c["requested"],
                    c["compacted_revision"]
                ),
                WatchFrame::Error(e) => eprintln!("server: {}; resuming", e["error"]["message"]),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_event(e: &Value, json: bool) {
    if json {
        outln!("{e}");
        return;
    }
    let data = &e["data"];
    let detail = match e["type"].as_str() {
        Some("context.updated") => match data["change"].as_str() {
            Some("deleted" | "expired") => data["change"].as_str().unwrap_or("").to_owned(),
            _ => format!(
                "{} {}",
                data["change"].as_str().unwrap_or(""),
                crate::table::clip(&data["value"].to_string(), 80)
            ),
        },
        Some("message") => crate::table::clip(&data["body"].to_string(), 80),
        _ => String::new(),
    };
    outln!(
        "{:>6}  {:<20} {:<8} {:<24} {:<12} {}",
        e["revision"],
        e["type"].as_str().unwrap_or(""),
        e["priority"].as_str().unwrap_or("-"),
        e["key"].as_str().unwrap_or("-"),
        e["agent"].as_str().unwrap_or("-"),
        detail
    );
}
