//! Where events go besides entries: a context's log (an event that
//! changes no entry takes a revision of its own), streams with their own
//! sequence numbers (agents' inboxes, the agents feed), and delivery to
//! inboxes.

use ctxmesh_core::agent::Agent;
use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::txn::PlanBuilder;
use ctxmesh_core::{Event, Priority, Timestamp};
use serde_json::{Value, json};

use super::env::{Env, apply_plan};
use crate::coord::inbox_stream;
use crate::error::Result;
use crate::notify::{Committed, SharedEvent};
use crate::objects::AGENT;
use crate::tx::Tx;

/// Appends one event to a context's log as a revision of its own.
pub(crate) async fn log_event(
    tx: &mut impl Tx,
    env: Env<'_>,
    ctx: &mut ContextInfo,
    kind: &str,
    author: &str,
    priority: Option<Priority>,
    data: Value,
) -> Result<Event> {
    let at = env.now().max(ctx.updated_at);
    let mut plan = PlanBuilder::new(ctx, author, at, kind);
    let event = plan.event(kind, None, priority, Some(data));
    apply_plan(tx, ctx, plan.finish()).await?;
    Ok(event)
}

/// Appends `event` to a stream and queues its publication.
pub(crate) async fn append(tx: &mut impl Tx, stream: &str, event: Event) -> Result<()> {
    for numbered in tx.append_stream(stream, vec![event]).await? {
        tx.published().push(Committed {
            context: stream.to_owned(),
            revision: numbered.seq.unwrap_or_default(),
            events: vec![SharedEvent::new(numbered)],
            deleted: false,
        });
    }
    Ok(())
}

/// Delivers `event` to the inboxes of the registered agents among
/// `agents` (in name order, as the lock order asks).
pub(crate) async fn deliver(tx: &mut impl Tx, agents: &[&str], event: &Event) -> Result<()> {
    let mut agents: Vec<&str> = agents.to_vec();
    agents.sort_unstable();
    agents.dedup();
    for agent in agents {
        if tx.object(AGENT, agent, false).await?.is_some() {
            append(tx, &inbox_stream(agent), event.clone()).await?;
        }
    }
    Ok(())
}

/// An event of the agents feed.
pub(crate) fn feed_event(kind: &str, agent: &Agent, at: Timestamp) -> Event {
    Event {
        kind: kind.to_owned(),
        context: String::new(),
        revision: 0,
        key: None,
        at,
        agent: Some(agent.id.clone()),
        priority: None,
        data: Some(json!({ "agent": agent.id, "status": agent.status })),
        seq: None,
    }
}
