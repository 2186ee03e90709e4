//! `ctxmesh ctx ...`: client commands against a running server.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ctxmesh_client::{Client, PatchKind, Precondition};
use ctxmesh_core::Entry;
use serde_json::{Value, json};

use crate::table;

/// Options shared by the client commands.
#[derive(Args, Clone, Debug)]
pub(crate) struct ClientOpts {
    /// The server's URL.
    #[arg(long, env = "CTXMESH_SERVER", default_value = "http://127.0.0.1:7600", global = true)]
    pub(crate) server: String,
    /// Act as this agent (recorded as the author of writes).
    #[arg(long, env = "CTXMESH_AGENT", global = true)]
    pub(crate) agent: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Bearer token (an agent's, or the admin token). Without it:
    /// $CTXMESH_TOKEN, then the admin token in --data-dir, then the
    /// server's entry in ~/.config/ctxmesh/credentials.json (`ctxmesh
    /// login`).
    #[arg(long, global = true)]
    pub(crate) token: Option<String>,
    /// The local server's data directory, where the admin token is found.
    #[arg(long, env = "CTXMESH_DATA_DIR", default_value = "./ctxmesh-data", global = true)]
    pub(crate) data_dir: std::path::PathBuf,
    /// CA certificates (PEM) to trust for an https:// server, besides the
    /// system's roots.
    #[arg(long, env = "CTXMESH_CA_FILE", global = true)]
    pub(crate) ca_file: Option<std::path::PathBuf>,
}

impl ClientOpts {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let mut client = crate::tls::client(&self.server, self.ca_file.as_deref())?;
        if let Some(token) = self.token_lookup().token() {
            client = client.with_token(token);
        }
        Ok(match &self.agent {
            Some(agent) => client.with_agent(agent),
            None => client,
        })
    }

    /// Where the token is found (see `credentials`).
    pub(crate) fn token_lookup(&self) -> crate::credentials::Lookup {
        crate::credentials::find_token(&self.server, self.token.as_deref(), &self.data_dir)
    }
}

/// `ctxmesh ctx ...`.
#[derive(Args, Debug)]
pub(crate) struct CtxArgs {
    #[command(flatten)]
    pub(crate) opts: ClientOpts,
    #[command(subcommand)]
    command: CtxCommand,
}

#[derive(Subcommand, Debug)]
enum CtxCommand {
    /// Create a context.
    Create {
        /// The context id.
        id: String,
        /// Conflict policy as JSON, e.g. '{"strategy":"reject"}'.
        #[arg(long)]
        policy: Option<String>,
        /// JSON Schemas by key pattern, as JSON.
        #[arg(long)]
        schemas: Option<String>,
        /// Retention as JSON, e.g. '{"max_revisions":1000}'.
        #[arg(long)]
        retention: Option<String>,
        /// A label, NAME=VALUE (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List contexts, or the entries of CTX.
    Ls {
        /// List the entries of this context.
        ctx: Option<String>,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Read as of this revision.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Show a context, or one entry of it.
    Get {
        /// The context id.
        ctx: String,
        /// The entry key.
        key: Option<String>,
        /// Read as of this revision.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Write an entry.
    Put {
        /// The context id.
        ctx: String,
        /// The entry key.
        key: String,
        /// The value as JSON; `@FILE` reads a file, `-` reads standard input.
        value: String,
        /// Only if the entry's revision is this.
        #[arg(long, conflicts_with = "if_absent")]
        if_match: Option<u64>,
        /// Only if the entry does not exist.
        #[arg(long)]
        if_absent: bool,
        /// The entry's kind (finding, decision, ...).
        #[arg(long)]
        kind: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// low, normal, high or critical.
        #[arg(long)]
        priority: Option<String>,
        /// Time to live in milliseconds.
        #[arg(long)]
        ttl_ms: Option<u64>,
    },
    /// Patch an entry's value (JSON Merge Patch, or JSON Patch with --json-patch).
    Patch {
        /// The context id.
        ctx: String,
        /// The entry key.
        key: String,
        /// The patch as JSON; `@FILE` or `-` as for put.
        patch: String,
        /// The patch is an RFC 6902 JSON Patch array.
        #[arg(long)]
        json_patch: bool,
        /// Only if the entry's revision is this.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Delete an entry, or (with --context) the whole context.
    Rm {
        /// The context id.
        ctx: String,
        /// The entry key.
        key: Option<String>,
        /// Only if the entry's revision is this.
        #[arg(long)]
        if_match: Option<u64>,
        /// Delete the whole context with its history (no key given).
        #[arg(long)]
        context: bool,
    },
    /// Show the commits of a context, or the versions of one entry.
    History {
        /// The context id.
        ctx: String,
        /// The entry key.
        key: Option<String>,
        /// How many items.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show what changed between two revisions.
    Diff {
        /// The context id.
        ctx: String,
        /// The earlier revision.
        #[arg(long)]
        from: u64,
        /// The later revision (default: current).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Restore the state of an earlier revision, as a new revision.
    Rollback {
        /// The context id.
        ctx: String,
        /// The revision to restore.
        #[arg(long)]
        to: u64,
    },
    /// Give an agent permissions on a context (replacing its earlier
    /// grant). Needs share on the context: its creator or an admin.
    Grant {
        /// The context id.
        ctx: String,
        /// The agent.
        agent: String,
        /// read, write, share or admin (admin implies the others).
        #[arg(required = true, value_parser = ["read", "write", "share", "admin"])]
        permissions: Vec<String>,
        /// When the grant lapses (RFC 3339), if ever.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List the grants of a context.
    Grants {
        /// The context id.
        ctx: String,
    },
    /// End an agent's grant on a context.
    Revoke {
        /// The context id.
        ctx: String,
        /// The agent.
        agent: String,
    },
    /// Create a new context from a revision of this one.
    Fork {
        /// The source context.
        ctx: String,
        /// The new context's id.
        new_id: String,
        /// The revision to fork from (default: current).
        #[arg(long)]
        at: Option<u64>,
    },
}

pub(crate) async fn run(args: CtxArgs) -> anyhow::Result<()> {
    let client = args.opts.client()?;
    let json_out = args.opts.json;
    match args.command {
        CtxCommand::Create { id, policy, schemas, retention, labels } => {
            let mut body = json!({ "id": id });
            for (field, raw) in [("policy", policy), ("schemas", schemas), ("retention", retention)] {
                if let Some(raw) = raw {
                    body[field] = serde_json::from_str(&raw).with_context(|| format!("--{field} is not valid JSON"))?;
                }
            }
            let mut label_map = serde_json::Map::new();
            for label in labels {
                let (k, v) = label.split_once('=').context("--label takes NAME=VALUE")?;
                label_map.insert(k.to_owned(), v.into());
            }
            body["labels"] = Value::Object(label_map);
            let info = client.create_context(&body).await?;
            output(json_out, &info, || outln!("created context {} at revision {}", info.id, info.revision));
        }
        CtxCommand::Grant { ctx, agent, permissions, expires_at } => {
            let granted = client.grant(&ctx, std::slice::from_ref(&agent), &permissions, expires_at.as_deref()).await?;
            output(json_out, &granted, || {
                outln!("granted {} on {ctx} to {agent}", permissions.join(", "));
            });
        }
        CtxCommand::Grants { ctx } => {
            let grants = client.list_grants(&ctx).await?;
            output(json_out, &grants, || {
                let rows: Vec<Vec<String>> = grants["grants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|g| {
                        let permissions: Vec<&str> =
                            g["permissions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        vec![
                            g["agent"].as_str().unwrap_or("").to_owned(),
                            permissions.join(","),
                            g["expires_at"].as_str().unwrap_or("-").to_owned(),
                            g["granted_by"].as_str().unwrap_or("").to_owned(),
                        ]
                    })
                    .collect();
                table::print(&["AGENT", "PERMISSIONS", "EXPIRES", "GRANTED BY"], &rows);
            });
        }
        CtxCommand::Revoke { ctx, agent } => {
            client.revoke(&ctx, &agent).await?;
            output(json_out, &json!({ "revoked": agent, "context": ctx }), || {
                outln!("revoked the grant of {agent} on {ctx}");
            });
        }
        CtxCommand::Ls { ctx: None, .. } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = client.list_contexts(Some(1000), cursor.as_deref()).await?;
                all.extend(page["contexts"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            output(json_out, &all, || {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            c["id"].as_str().unwrap_or("").to_owned(),
                            c["revision"].to_string(),
                            c["entry_count"].to_string(),
                            c["updated_at"].as_str().unwrap_or("").to_owned(),
                        ]
                    })
                    .collect();
                table::print(&["ID", "REVISION", "ENTRIES", "UPDATED"], &rows);
            });
        }
        CtxCommand::Ls { ctx: Some(ctx), prefix, at } => {
            let mut entries: Vec<Entry> = Vec::new();
            let mut cursor: Option<String> = None;
            let mut revision;
            loop {
                let mut q = vec![("prefix", prefix.clone()), ("limit", "1000".to_owned())];
                match &cursor {
                    Some(c) => q.push(("cursor", c.clone())),
                    None => q.extend(at.map(|a| ("at", a.to_string()))),
                }
                let page = client.list_entries(&ctx, &q).await?;
                revision = page["revision"].as_u64().unwrap_or(0);
                entries.extend(serde_json::from_value::<Vec<Entry>>(page["entries"].clone())?);
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            output(json_out, &json!({ "entries": entries, "revision": revision }), || {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.key.clone(),
                            e.revision.to_string(),
                            e.version.to_string(),
                            e.author.clone(),
                            e.meta.kind.clone().unwrap_or_default(),
                            table::clip(&e.value.to_string(), 60),
                        ]
                    })
                    .collect();
                table::print(&["KEY", "REVISION", "VERSION", "AUTHOR", "KIND", "VALUE"], &rows);
                outln!("({} entries at revision {revision})", entries.len());
            });
        }
        CtxCommand::Get { ctx, key: None, .. } => {
            let info = client.get_context(&ctx).await?;
            output(json_out, &info, || outln!("{}", serde_json::to_string_pretty(&info).unwrap_or_default()));
        }
        CtxCommand::Get { ctx, key: Some(key), at } => {
            let entry = client.get_entry(&ctx, &key, at).await?;
            output(json_out, &entry, || print_entry(&entry));
        }
        CtxCommand::Put { ctx, key, value, if_match, if_absent, kind, tags, priority, ttl_ms } => {
            let value: Value = serde_json::from_str(&read_arg(&value)?).context("the value is not valid JSON")?;
            let mut body = json!({ "value": value, "tags": tags });
            if let Some(k) = kind {
                body["kind"] = k.into();
            }
            if let Some(p) = priority {
                body["priority"] = p.into();
            }
            if let Some(t) = ttl_ms {
                body["ttl_ms"] = t.into();
            }
            let pre = match (if_match, if_absent) {
                (Some(r), _) => Precondition::Revision(r),
                (None, true) => Precondition::Absent,
                (None, false) => Precondition::None,
            };
            let entry = client.put_entry(&ctx, &key, &body, pre).await?;
            output(json_out, &entry, || {
                outln!("{} = revision {} (version {})", entry.key, entry.revision, entry.version)
            });
        }
        CtxCommand::Patch { ctx, key, patch, json_patch, if_match } => {
            let patch: Value = serde_json::from_str(&read_arg(&patch)?).context("the patch is not valid JSON")?;
            let kind = if json_patch { PatchKind::Json } else { PatchKind::Merge };
            let pre = if_match.map_or(Precondition::None, Precondition::Revision);
            let entry = client.patch_entry(&ctx, &key, &patch, kind, pre).await?;
            output(json_out, &entry, || {
                outln!("{} = revision {} (version {})", entry.key, entry.revision, entry.version)
            });
        }
        CtxCommand::Rm { ctx, key: Some(key), if_match, .. } => {
            let pre = if_match.map_or(Precondition::None, Precondition::Revision);
            let answer = client.delete_entry(&ctx, &key, pre).await?;
            output(json_out, &answer, || outln!("deleted {key} at revision {}", answer["revision"]));
        }
        CtxCommand::Rm { ctx, key: None, context, .. } => {
            if !context {
                bail!("give a key to delete an entry, or --context to delete the whole context {ctx:?}");
            }
            client.delete_context(&ctx).await?;
            output(json_out, &json!({ "deleted": ctx }), || outln!("deleted context {ctx}"));
        }
        CtxCommand::History { ctx, key, limit } => {
            let history = client.history(&ctx, key.as_deref(), Some(limit)).await?;
            output(json_out, &history, || {
                if key.is_some() {
                    let rows: Vec<Vec<String>> = history["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| {
                            vec![
                                v["revision"].to_string(),
                                v["change"].as_str().unwrap_or("").to_owned(),
                                v["entry"]["author"].as_str().unwrap_or("").to_owned(),
                                table::clip(&v["entry"]["value"].to_string(), 60),
                            ]
                        })
                        .collect();
                    table::print(&["REVISION", "CHANGE", "AUTHOR", "VALUE"], &rows);
                } else {
                    let rows: Vec<Vec<String>> = history["commits"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            vec![
                                c["revision"].to_string(),
                                c["kind"].as_str().unwrap_or("").to_owned(),
                                c["author"].as_str().unwrap_or("").to_owned(),
                                c["at"].as_str().unwrap_or("").to_owned(),
                                table::clip(
                                    &c["keys"]
                                        .as_array()
                                        .into_iter()
                                        .flatten()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    60,
                                ),
                            ]
                        })
                        .collect();
                    table::print(&["REVISION", "KIND", "AUTHOR", "AT", "KEYS"], &rows);
                }
            });
        }
        CtxCommand::Diff { ctx, from, to } => {
            let diff = client.diff(&ctx, from, to).await?;
            output(json_out, &diff, || {
                let rows: Vec<Vec<String>> = diff["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        vec![
                            c["key"].as_str().unwrap_or("").to_owned(),
                            c["change"].as_str().unwrap_or("").to_owned(),
                            table::clip(&c["before"]["value"].to_string(), 40),
                            table::clip(&c["after"]["value"].to_string(), 40),
                        ]
                    })
                    .collect();
                outln!("changes from revision {} to {}:", diff["from"], diff["to"]);
                table::print(&["KEY", "CHANGE", "BEFORE", "AFTER"], &rows);
            });
        }
        CtxCommand::Rollback { ctx, to } => {
            let answer = client.rollback(&ctx, to).await?;
            output(json_out, &answer, || outln!("restored revision {to} as revision {}", answer["revision"]));
        }
        CtxCommand::Fork { ctx, new_id, at } => {
            let info = client.fork(&ctx, &new_id, at).await?;
            output(json_out, &info, || {
                let from = info.forked_from.as_ref().map_or(0, |f| f.revision);
                outln!("forked {ctx}@{from} into {}", info.id);
            });
        }
    }
    Ok(())
}

pub(crate) fn output<T: serde::Serialize>(json_out: bool, value: &T, human: impl FnOnce()) {
    if json_out {
        outln!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        human();
    }
}

fn print_entry(e: &Entry) {
    outln!("key:       {}", e.key);
    outln!("revision:  {} (version {}, created at revision {})", e.revision, e.version, e.created_revision);
    outln!("author:    {}  updated {}", e.author, e.updated_at.to_rfc3339());
    if let Some(kind) = &e.meta.kind {
        outln!("kind:      {kind}");
    }
    if !e.meta.tags.is_empty() {
        outln!("tags:      {}", e.meta.tags.join(", "));
    }
    if let Some(at) = e.meta.expires_at {
        outln!("expires:   {}", at.to_rfc3339());
    }
    outln!("{}", serde_json::to_string_pretty(&e.value).unwrap_or_default());
}

/// A value argument: literal JSON, `@FILE`, or `-` for standard input.
fn read_arg(raw: &str) -> anyhow::Result<String> {
    if raw == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("cannot read standard input")?;
        Ok(s)
    } else if let Some(path) = raw.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
    } else {
        Ok(raw.to_owned())
    }
}
