//! Work passed between agents: handoffs (requested, accepted, rejected,
//! completed, expired), tasks, and priority messages.

use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::coord::{Handoff, HandoffAction, HandoffState, Task};
use ctxmesh_core::error::Error;
use ctxmesh_core::event::types;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::{Event, Timestamp};
use serde_json::{Value, json};

use super::env::{Env, SYSTEM_AGENT, new_id};
use super::streams::{deliver, log_event};
use crate::clock::Clock;
use crate::coord::*;
use crate::error::Result;
use crate::objects::*;
use crate::tx::Tx;

pub(crate) async fn request_handoff(
    tx: &mut impl Tx,
    env: Env<'_>,
    RequestHandoff { source, request }: RequestHandoff,
) -> Result<CoordOutput> {
    let ctx = ContextId::parse(&request.context)?;
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let revision = request.revision.unwrap_or(info.revision);
    if revision > info.revision {
        return Err(Error::invalid("revision", format!("the context is at revision {}", info.revision)).into());
    }
    info.check_readable(revision.max(1))?;
    let handoff = request.into_handoff(new_id("h", env.now()), &source, revision, env.now())?;
    registered(tx, &handoff.target, "a handoff's target must be: the handoff goes to its inbox").await?;
    tx.put_object(&handoff_object(&handoff)?).await?;
    let event = handoff_event(tx, env, &mut info, &handoff, types::HANDOFF_REQUESTED, &source).await?;
    deliver(tx, &[&handoff.target], &event).await?;
    Ok(CoordOutput::Handoff(Box::new(handoff)))
}

pub(crate) async fn act_on_handoff(
    tx: &mut impl Tx,
    env: Env<'_>,
    ActOnHandoff { id, action, agent: who, outcome }: ActOnHandoff,
) -> Result<CoordOutput> {
    transition(tx, env, &id, action, &who, outcome, env.now()).await
}

pub(crate) async fn expire_handoff(
    tx: &mut impl Tx,
    env: Env<'_>,
    ExpireHandoff { id, now }: ExpireHandoff,
) -> Result<CoordOutput> {
    let h: Handoff = load(tx, HANDOFF, &id, false).await?;
    if h.status != HandoffState::Requested || h.deadline > now {
        return Ok(CoordOutput::Unit);
    }
    transition(tx, env, &id, HandoffAction::Expire, SYSTEM_AGENT, None, now).await
}

pub(crate) async fn assign_task(
    tx: &mut impl Tx,
    env: Env<'_>,
    AssignTask { ctx, request, by }: AssignTask,
) -> Result<CoordOutput> {
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let task = request.into_task(new_id("t", env.now()), ctx.as_str(), &by, env.now())?;
    registered(tx, &task.assignee, "a task's assignee must be: the task goes to its inbox").await?;
    tx.put_object(&task_object(&task)?).await?;
    let data = json!({ "task": task });
    let event = log_event(tx, env, &mut info, types::TASK_ASSIGNED, &by, Some(task.priority), data).await?;
    deliver(tx, &[&task.assignee], &event).await?;
    Ok(CoordOutput::Task(Box::new(task)))
}

pub(crate) async fn send_message(
    tx: &mut impl Tx,
    env: Env<'_>,
    SendMessage { ctx, agents, from, priority, data }: SendMessage,
) -> Result<CoordOutput> {
    if agents.is_empty() {
        return Err(Error::invalid("agents", "name at least one recipient").into());
    }
    let event = match &ctx {
        Some(ctx) => {
            let mut info = tx.lock_context(ctx.as_str()).await?;
            log_event(tx, env, &mut info, types::MESSAGE, &from, Some(priority), data).await?
        }
        None => Event {
            kind: types::MESSAGE.to_owned(),
            context: String::new(),
            revision: 0,
            key: None,
            at: env.now(),
            agent: Some(from.clone()),
            priority: Some(priority),
            data: Some(data),
            seq: None,
        },
    };
    let mut recipients: Vec<&str> = agents.iter().map(String::as_str).collect();
    recipients.sort_unstable();
    recipients.dedup();
    for recipient in &recipients {
        registered(tx, recipient, "a message's recipient must be: the message goes to its inbox").await?;
    }
    deliver(tx, &recipients, &event).await?;
    Ok(CoordOutput::Event(Box::new(event)))
}

pub(crate) async fn complete_task(
    tx: &mut impl Tx,
    env: Env<'_>,
    CompleteTask { id, agent: who, output }: CompleteTask,
) -> Result<CoordOutput> {
    let task: Task = load(tx, TASK, &id, false).await?;
    let mut info = tx.lock_context(&task.context).await?;
    let mut task: Task = load(tx, TASK, &id, true).await?;
    task.complete(&who, output, env.now())?;
    tx.put_object(&task_object(&task)?).await?;
    let data = json!({ "task": task });
    let event = log_event(tx, env, &mut info, types::TASK_COMPLETED, &who, Some(task.priority), data).await?;
    deliver(tx, &[&task.assigned_by], &event).await?;
    Ok(CoordOutput::Task(Box::new(task)))
}

pub(crate) async fn get_handoff(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    GetHandoff { id }: GetHandoff,
) -> Result<CoordOutput> {
    Ok(CoordOutput::Handoff(Box::new(load(tx, HANDOFF, &id, false).await?)))
}

pub(crate) async fn list_handoffs(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ListHandoffs(q): ListHandoffs,
) -> Result<CoordOutput> {
    let objects = tx.objects(HANDOFF, &filter_of(&q), q.after.as_deref().unwrap_or(""), q.limit + 1).await?;
    let (items, more) = page(objects, q.limit)?;
    Ok(CoordOutput::Handoffs(items, more))
}

pub(crate) async fn get_task(tx: &mut impl Tx, _clock: &dyn Clock, GetTask { id }: GetTask) -> Result<CoordOutput> {
    Ok(CoordOutput::Task(Box::new(load(tx, TASK, &id, false).await?)))
}

pub(crate) async fn list_tasks(tx: &mut impl Tx, _clock: &dyn Clock, ListTasks(q): ListTasks) -> Result<CoordOutput> {
    let objects = tx.objects(TASK, &filter_of(&q), q.after.as_deref().unwrap_or(""), q.limit + 1).await?;
    let (items, more) = page(objects, q.limit)?;
    Ok(CoordOutput::Tasks(items, more))
}

/// Moves a handoff along; the event goes to the context's log and to the
/// inboxes of the agents on both ends.
async fn transition(
    tx: &mut impl Tx,
    env: Env<'_>,
    id: &str,
    action: HandoffAction,
    who: &str,
    outcome: Option<Value>,
    at: Timestamp,
) -> Result<CoordOutput> {
    // Its context first (the lock order), then the handoff itself.
    let h: Handoff = load(tx, HANDOFF, id, false).await?;
    let mut info = tx.lock_context(&h.context).await?;
    let mut h: Handoff = load(tx, HANDOFF, id, true).await?;
    h.transition(action, who, outcome, at)?;
    tx.put_object(&handoff_object(&h)?).await?;
    let kind = match action {
        HandoffAction::Accept => types::HANDOFF_ACCEPTED,
        HandoffAction::Reject => types::HANDOFF_REJECTED,
        HandoffAction::Complete => types::HANDOFF_COMPLETED,
        HandoffAction::Expire => types::HANDOFF_EXPIRED,
    };
    let event = handoff_event(tx, env, &mut info, &h, kind, who).await?;
    deliver(tx, &[&h.source, &h.target], &event).await?;
    Ok(CoordOutput::Handoff(Box::new(h)))
}

async fn handoff_event(
    tx: &mut impl Tx,
    env: Env<'_>,
    info: &mut ContextInfo,
    h: &Handoff,
    kind: &str,
    author: &str,
) -> Result<Event> {
    let data = json!({ "handoff": h });
    log_event(tx, env, info, kind, author, None, data).await
}
