//! Selective broadcast (docs/mesh.md): a `high` or `critical` entry
//! is routed, in the revision that writes it, to each registered agent that
//! may read it and for which it is relevant, and to no other.

use ctxmesh_core::access::{Access, Grant, Permission};
use ctxmesh_core::agent::Agent;
use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::event::types;
use ctxmesh_core::mesh::{Prepared, Scorer};
use ctxmesh_core::txn::Plan;
use ctxmesh_core::{Entry, Event, Priority, Timestamp};
use serde_json::json;

use super::streams::append;
use crate::coord::inbox_stream;
use crate::error::Result;
use crate::objects::{AGENT, GRANT, decode, policies};
use crate::tx::{ObjectFilter, Tx};

/// The broadcasts of `plan`: `context.broadcast` events added to the plan
/// (the context's log: key and score, never the value) and returned for
/// each agent's inbox (with the value, unless confidential or large).
pub(crate) async fn broadcasts(
    tx: &mut impl Tx,
    ctx: &ContextInfo,
    plan: &mut Plan,
    author: &str,
    now: Timestamp,
) -> Result<Vec<(String, Event)>> {
    let loud: Vec<&Entry> =
        plan.changes.iter().filter_map(|c| c.after.as_ref()).filter(|e| e.meta.priority >= Priority::High).collect();
    if loud.is_empty() {
        return Ok(Vec::new());
    }
    let prepared: Vec<Prepared> = loud.iter().map(|e| Prepared::new((*e).clone())).collect();
    let agents: Vec<Agent> = tx
        .objects(AGENT, &ObjectFilter::default(), "", usize::MAX >> 1)
        .await?
        .iter()
        .map(decode)
        .collect::<Result<_>>()?;
    let rules = policies(tx).await?;
    let mut logged = Vec::new();
    let mut inboxes = Vec::new();
    for agent in agents.into_iter().filter(|a| a.id != author) {
        let grant: Option<Grant> = match tx.object(GRANT, &format!("{}/{}", ctx.id, agent.id), false).await? {
            Some(o) => Some(decode(&o)?),
            None => None,
        };
        let access = Access {
            context: ctx.id.clone(),
            creator: ctx.created_by == agent.id,
            grant,
            agent: Some(agent.clone()),
            policies: rules.clone(),
        };
        let scope = access.scope(Permission::Read, now);
        let refs: Vec<&Prepared> = prepared.iter().collect();
        let scorer = Scorer::new(&agent, &ctx.settings.mesh, &refs, now);
        for p in &prepared {
            let e = &p.entry;
            if !scope.permits_entry(e) {
                continue;
            }
            let Some((score, _)) = scorer.score(p, None).filter(|(s, _)| *s >= scorer.threshold()) else { continue };
            let mut data = json!({
                "to": agent.id, "key": e.key, "revision": e.revision, "score": score, "kind": e.meta.kind,
                "tags": e.meta.tags,
            });
            if e.meta.confidential {
                data["confidential"] = json!(true);
            }
            let event = Event {
                kind: types::CONTEXT_BROADCAST.to_owned(),
                context: ctx.id.clone(),
                revision: plan.revision,
                key: Some(e.key.clone()),
                at: plan.commit.at,
                agent: Some(author.to_owned()),
                priority: Some(e.meta.priority),
                data: Some(data.clone()),
                seq: None,
            };
            logged.push(event.clone());
            let mut direct = event;
            if !e.meta.confidential
                && let Some(value) = ctxmesh_core::history::event_value(&e.value)
            {
                data["value"] = value;
            }
            direct.data = Some(data);
            inboxes.push((agent.id.clone(), direct));
        }
    }
    plan.events.extend(logged);
    Ok(inboxes)
}

/// Appends the broadcasts to the agents' inboxes.
pub(crate) async fn deliver(tx: &mut impl Tx, inboxes: Vec<(String, Event)>) -> Result<()> {
    for (agent, event) in inboxes {
        append(tx, &inbox_stream(&agent), event).await?;
    }
    Ok(())
}
