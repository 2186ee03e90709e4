//! `ctxmesh agents ...`, `ctxmesh locks ...`, `ctxmesh handoff ...`:
//! the coordination layer from the command line.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::ctx::{ClientOpts, output};
use crate::table;

/// `ctxmesh agents ...`.
#[derive(Args, Debug)]
pub(crate) struct AgentsArgs {
    #[command(flatten)]
    pub(crate) opts: ClientOpts,
    #[command(subcommand)]
    command: AgentsCommand,
}

#[derive(Subcommand, Debug)]
enum AgentsCommand {
    /// Register an agent.
    Register {
        /// The agent id.
        id: String,
        /// What it is for, in words.
        #[arg(long)]
        objective: Option<String>,
        /// A free capability string (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Trust level: none, low, medium, high, full.
        #[arg(long)]
        trust: Option<String>,
        /// Lease in milliseconds, renewed by heartbeats.
        #[arg(long)]
        lease_ms: Option<u64>,
        /// Any other registration fields, as a JSON object.
        #[arg(long)]
        spec: Option<String>,
    },
    /// List agents.
    Ls {
        /// Only this status: active, inactive, disconnected.
        #[arg(long)]
        status: Option<String>,
        /// Only agents with this capability.
        #[arg(long)]
        capability: Option<String>,
    },
    /// Show one agent.
    Get {
        /// The agent id.
        id: String,
    },
    /// Renew an agent's lease.
    Heartbeat {
        /// The agent id.
        id: String,
    },
    /// Issue a new token for an agent (shown once); the old one stops
    /// working at once.
    RotateToken {
        /// The agent id.
        id: String,
    },
    /// Revoke an agent's token (`rotate-token` issues a new one).
    RevokeToken {
        /// The agent id.
        id: String,
    },
    /// Unregister an agent (its locks are released).
    Rm {
        /// The agent id.
        id: String,
    },
    /// Show an agent's inbox.
    Inbox {
        /// The agent id.
        id: String,
        /// Items after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// `ctxmesh locks ...`.
#[derive(Args, Debug)]
pub(crate) struct LocksArgs {
    #[command(flatten)]
    pub(crate) opts: ClientOpts,
    #[command(subcommand)]
    command: LocksCommand,
}

#[derive(Subcommand, Debug)]
enum LocksCommand {
    /// Acquire a lock as --agent; prints the fencing token.
    Acquire {
        /// The context.
        ctx: String,
        /// The lock's name.
        name: String,
        /// How long to hold it, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        ttl_ms: u64,
        /// How long the server may wait for it, in milliseconds.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
    },
    /// Release a lock held by --agent.
    Release {
        /// The context.
        ctx: String,
        /// The lock's name.
        name: String,
    },
    /// Extend a lock held by --agent.
    Refresh {
        /// The context.
        ctx: String,
        /// The lock's name.
        name: String,
        /// The new TTL from now, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        ttl_ms: u64,
    },
    /// List a context's locks.
    Ls {
        /// The context.
        ctx: String,
    },
}

/// `ctxmesh handoff ...`.
#[derive(Args, Debug)]
pub(crate) struct HandoffArgs {
    #[command(flatten)]
    pub(crate) opts: ClientOpts,
    #[command(subcommand)]
    command: HandoffCommand,
}

#[derive(Subcommand, Debug)]
enum HandoffCommand {
    /// Hand work in a context to another agent (as --agent).
    Request {
        /// The context.
        ctx: String,
        /// The target agent.
        target: String,
        /// What the user wants.
        #[arg(long)]
        intent: Option<String>,
        /// A key or pattern the target should read (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Free text for the target.
        #[arg(long)]
        note: Option<String>,
        /// Any other handoff fields, as a JSON object.
        #[arg(long)]
        spec: Option<String>,
    },
    /// Show a handoff.
    Show {
        /// The handoff id.
        id: String,
    },
    /// List handoffs directed at an agent (default: --agent).
    Ls {
        /// Only those of this context.
        #[arg(long)]
        context: Option<String>,
        /// Only those with this status (requested, accepted, rejected,
        /// completed, expired).
        #[arg(long, alias = "state")]
        status: Option<String>,
    },
    /// Accept a handoff (as its target).
    Accept {
        /// The handoff id.
        id: String,
    },
    /// Reject a handoff (as its target).
    Reject {
        /// The handoff id.
        id: String,
        /// Why, as JSON (or a plain string).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Complete an accepted handoff.
    Complete {
        /// The handoff id.
        id: String,
        /// The result, as JSON (or a plain string).
        #[arg(long)]
        result: Option<String>,
    },
}

/// JSON if it parses, else the text as a JSON string.
fn json_or_text(raw: Option<String>) -> Option<Value> {
    raw.map(|r| serde_json::from_str(&r).unwrap_or(Value::String(r)))
}

/// `base` with the fields of the JSON object `extra` added.
fn merged(mut base: Value, extra: Option<&str>) -> anyhow::Result<Value> {
    if let Some(extra) = extra {
        let extra: Value = serde_json::from_str(extra).context("--spec must be a JSON object")?;
        let Value::Object(fields) = extra else { anyhow::bail!("--spec must be a JSON object") };
        for (k, v) in fields {
            base[k] = v;
        }
    }
    Ok(base)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_agents(list: &Value) {
    let rows: Vec<Vec<String>> = list["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|a| vec![s(&a["id"]), s(&a["status"]), s(&a["trust"]), table::clip(&s(&a["objective"]), 40)])
                .collect()
        })
        .unwrap_or_default();
    table::print(&["ID", "STATUS", "TRUST", "OBJECTIVE"], &rows);
}

fn print_lock(l: &Value) {
    match l["holder"].as_str() {
        Some(holder) => outln!(
            "{} held by {holder} (lock id {}, fencing token {}, expires {})",
            s(&l["name"]),
            s(&l["lock_id"]),
            s(&l["fencing_token"]),
            s(&l["expires_at"])
        ),
        None => outln!("{} is free (last fencing token {})", s(&l["name"]), s(&l["fencing_token"])),
    }
}

/// A handoff's status.
fn status_of(h: &Value) -> String {
    s(&h["status"])
}

/// A token answered once (at registration, at rotation).
fn print_token(answer: &Value) {
    if let Some(token) = answer["token"].as_str() {
        outln!("token (shown once; store it now): {token}");
    }
}

fn print_handoff(h: &Value) {
    outln!(
        "{}  {}  {} -> {}  context {}@{}",
        s(&h["id"]),
        status_of(h),
        s(&h["source"]),
        s(&h["target"]),
        s(&h["context"]),
        s(&h["revision"])
    );
    if let Some(intent) = h["user_intent"].as_str() {
        outln!("intent: {intent}");
    }
}

/// One handoff, field by field (`ctxmesh handoff show`).
fn print_handoff_details(h: &Value) {
    let keys: Vec<String> = h["keys"].as_array().into_iter().flatten().map(s).collect();
    let mut rows = vec![
        ("id", s(&h["id"])),
        ("status", status_of(h)),
        ("agents", format!("{} → {}", s(&h["source"]), s(&h["target"]))),
        ("context", format!("{}@{}", s(&h["context"]), s(&h["revision"]))),
        ("keys", if keys.is_empty() { "-".into() } else { keys.join(", ") }),
    ];
    for (label, field) in [("intent", "user_intent"), ("session", "session")] {
        if !h[field].is_null() {
            rows.push((label, s(&h[field])));
        }
    }
    rows.extend([
        ("deadline", s(&h["deadline"])),
        ("note", s(&h["note"])),
        ("outcome", s(&h["outcome"])),
        ("created", s(&h["created_at"])),
        ("updated", s(&h["updated_at"])),
    ]);
    for (label, value) in rows {
        // A value written by an agent may span lines: indent the rest.
        outln!("{:<9} {}", format!("{label}:"), value.replace('\n', "\n          "));
    }
}

pub(crate) async fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    let json_out = args.opts.json;
    match args.command {
        AgentsCommand::Register { id, objective, capabilities, trust, lease_ms, spec } => {
            let mut body = json!({ "id": id, "capabilities": { "custom": capabilities } });
            if let Some(o) = objective {
                body["objective"] = o.into();
            }
            if let Some(t) = trust {
                body["trust"] = t.into();
            }
            if let Some(l) = lease_ms {
                body["lease_ms"] = l.into();
            }
            let agent = client.register_agent(&merged(body, spec.as_deref())?).await?;
            output(json_out, &agent, || {
                outln!("registered {} (lease {} ms)", s(&agent["id"]), s(&agent["lease_ms"]));
                print_token(&agent);
            });
        }
        AgentsCommand::RotateToken { id } => {
            let answer = client.rotate_token(&id).await?;
            output(json_out, &answer, || {
                outln!("new token for {id}: the old one no longer works");
                print_token(&answer);
            });
        }
        AgentsCommand::RevokeToken { id } => {
            client.revoke_token(&id).await?;
            output(json_out, &json!({ "revoked_token_of": id }), || {
                outln!("revoked the token of {id} (`ctxmesh agents rotate-token {id}` issues a new one)")
            });
        }
        AgentsCommand::Ls { status, capability } => {
            let mut q = Vec::new();
            if let Some(v) = status {
                q.push(("status", v));
            }
            if let Some(v) = capability {
                q.push(("capability", v));
            }
            let list = client.list_agents(&q).await?;
            output(json_out, &list, || print_agents(&list));
        }
        AgentsCommand::Get { id } => {
            let agent = client.get_agent(&id).await?;
            output(json_out, &agent, || outln!("{}", serde_json::to_string_pretty(&agent).unwrap_or_default()));
        }
        AgentsCommand::Heartbeat { id } => {
            let agent = client.heartbeat(&id).await?;
            output(json_out, &agent, || {
                outln!("{} {} until {}", s(&agent["id"]), s(&agent["status"]), s(&agent["lease_expires_at"]))
            });
        }
        AgentsCommand::Rm { id } => {
            client.unregister_agent(&id).await?;
            output(json_out, &json!({ "unregistered": id }), || outln!("unregistered {id}"));
        }
        AgentsCommand::Inbox { id, after } => {
            let page = client.inbox(&id, after, None).await?;
            output(json_out, &page, || {
                let rows: Vec<Vec<String>> = page["events"]
                    .as_array()
                    .map(|a| {
                        a.iter().map(|e| vec![s(&e["seq"]), s(&e["type"]), s(&e["context"]), s(&e["agent"])]).collect()
                    })
                    .unwrap_or_default();
                table::print(&["SEQ", "TYPE", "CONTEXT", "FROM"], &rows);
            });
        }
    }
    Ok(())
}

pub(crate) async fn locks(args: LocksArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    let json_out = args.opts.json;
    match args.command {
        LocksCommand::Acquire { ctx, name, ttl_ms, wait_ms } => {
            let answer = client.acquire_lock(&ctx, &name, ttl_ms, wait_ms).await?;
            output(json_out, &answer, || print_lock(&answer));
            if answer["acquired"] != true {
                // Held by another agent: a conflict, for scripts.
                std::process::exit(4);
            }
        }
        LocksCommand::Release { ctx, name } => {
            let lock = client.release_lock(&ctx, &name).await?;
            output(json_out, &lock, || print_lock(&lock));
        }
        LocksCommand::Refresh { ctx, name, ttl_ms } => {
            let lock = client.refresh_lock(&ctx, &name, ttl_ms).await?;
            output(json_out, &lock, || print_lock(&lock));
        }
        LocksCommand::Ls { ctx } => {
            let list = client.list_locks(&ctx).await?;
            output(json_out, &list, || {
                let rows: Vec<Vec<String>> = list["locks"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|l| vec![s(&l["name"]), s(&l["holder"]), s(&l["fencing_token"]), s(&l["expires_at"])])
                            .collect()
                    })
                    .unwrap_or_default();
                table::print(&["NAME", "HOLDER", "TOKEN", "EXPIRES"], &rows);
            });
        }
    }
    Ok(())
}

pub(crate) async fn handoff(args: HandoffArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    let json_out = args.opts.json;
    match args.command {
        HandoffCommand::Request { ctx, target, intent, keys, note, spec } => {
            let mut body = json!({ "context": ctx, "target": target, "keys": keys });
            if let Some(i) = intent {
                body["user_intent"] = i.into();
            }
            if let Some(n) = note {
                body["note"] = n.into();
            }
            let h = client.request_handoff(&merged(body, spec.as_deref())?).await?;
            output(json_out, &h, || print_handoff(&h));
        }
        HandoffCommand::Show { id } => {
            let h = client.get_handoff(&id).await?;
            output(json_out, &h, || print_handoff_details(&h));
        }
        HandoffCommand::Ls { context, status } => {
            let mut q = Vec::new();
            if let Some(agent) = &args.opts.agent {
                q.push(("agent", agent.clone()));
            }
            if let Some(c) = context {
                q.push(("context", c));
            }
            if let Some(st) = status {
                q.push(("status", st));
            }
            let list = client.list_handoffs(&q).await?;
            output(json_out, &list, || {
                for h in list["handoffs"].as_array().into_iter().flatten() {
                    print_handoff(h);
                }
            });
        }
        HandoffCommand::Accept { id } => {
            let h = client.handoff_step(&id, "accept", None).await?;
            output(json_out, &h, || print_handoff(&h));
        }
        HandoffCommand::Reject { id, reason } => {
            let h = client.handoff_step(&id, "reject", json_or_text(reason)).await?;
            output(json_out, &h, || print_handoff(&h));
        }
        HandoffCommand::Complete { id, result } => {
            let h = client.handoff_step(&id, "complete", json_or_text(result)).await?;
            output(json_out, &h, || print_handoff(&h));
        }
    }
    Ok(())
}
