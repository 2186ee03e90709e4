//! The stored objects of the coordination layer and their encoding: each
//! agent, token, grant, policy rule, lock, handoff, task and conflict is an
//! [`Object`] row (a JSON body plus the columns it is looked up by), built
//! and read back here and nowhere else.

use ctxmesh_core::access::{Grant, PolicyRule};
use ctxmesh_core::agent::{Agent, AgentStatus};
use ctxmesh_core::conflict::Conflict;
use ctxmesh_core::coord::{Handoff, HandoffState, Lock, Task};
use ctxmesh_core::error::Error;
use serde::de::DeserializeOwned;

use crate::coord::CoordQuery;
use crate::error::{Result, StoreError};
use crate::tx::{Object, ObjectFilter, Tx};

/// No limit on a listing.
pub(crate) const ALL: usize = usize::MAX >> 1;

pub(crate) const AGENT: &str = "agent";
pub(crate) const LOCK: &str = "lock";
pub(crate) const HANDOFF: &str = "handoff";
pub(crate) const TASK: &str = "task";
pub(crate) const TOKEN: &str = "token";
pub(crate) const GRANT: &str = "grant";
pub(crate) const POLICY: &str = "policy";

/// Whether objects of `kind` are read to authenticate or authorize a
/// request (`TokenOwner`, `GetAccess`): a backend that
/// keeps those reads in memory forgets them when such an object changes.
pub(crate) fn affects_access(kind: &str) -> bool {
    matches!(kind, AGENT | TOKEN | GRANT | POLICY)
}

pub(crate) async fn policies(tx: &mut impl Tx) -> Result<Vec<PolicyRule>> {
    tx.objects(POLICY, &ObjectFilter::default(), "", ALL).await?.iter().map(decode).collect()
}

pub(crate) fn grant_object(g: &Grant) -> Result<Object> {
    Ok(Object {
        kind: GRANT.into(),
        id: format!("{}/{}", g.context, g.agent),
        ctx: Some(g.context.clone()),
        owner: Some(g.agent.clone()),
        state: None,
        due_at: None,
        body: serde_json::to_string(g)?,
    })
}

/// The object kind of conflict records.
pub(crate) const CONFLICT: &str = "conflict";

/// The stored id: the revision part zero-padded, so that a context's
/// conflicts list in the order they were detected.
pub(crate) fn conflict_id(ctx: &str, id: &str) -> String {
    match id.split_once('.').and_then(|(r, n)| Some((r.parse::<u64>().ok()?, n))) {
        Some((revision, n)) => format!("{ctx}/{revision:020}.{n}"),
        None => format!("{ctx}/{id}"),
    }
}

/// The stored form of a conflict record.
pub(crate) fn conflict_object(c: &Conflict) -> Result<Object> {
    Ok(Object {
        kind: CONFLICT.into(),
        id: conflict_id(&c.context, &c.id),
        ctx: Some(c.context.clone()),
        owner: Some(c.author.clone()),
        state: Some(c.status.as_str().into()),
        due_at: None,
        body: serde_json::to_string(c)?,
    })
}

pub(crate) fn decode<T: DeserializeOwned>(object: &Object) -> Result<T> {
    Ok(serde_json::from_str(&object.body)?)
}

pub(crate) fn agent_object(agent: &Agent) -> Result<Object> {
    Ok(Object {
        kind: AGENT.into(),
        id: agent.id.clone(),
        ctx: None,
        owner: None,
        state: Some(agent.status.as_str().into()),
        due_at: (agent.status != AgentStatus::Disconnected).then_some(agent.lease_expires_at),
        body: serde_json::to_string(agent)?,
    })
}

pub(crate) fn lock_id(ctx: &str, name: &str) -> String {
    format!("{ctx}/{name}")
}

pub(crate) fn lock_object(lock: &Lock) -> Result<Object> {
    Ok(Object {
        kind: LOCK.into(),
        id: lock_id(&lock.context, &lock.name),
        ctx: Some(lock.context.clone()),
        owner: lock.holder.clone(),
        state: Some(if lock.holder.is_some() { "held" } else { "free" }.into()),
        due_at: lock.expires_at,
        body: serde_json::to_string(lock)?,
    })
}

pub(crate) fn handoff_object(h: &Handoff) -> Result<Object> {
    Ok(Object {
        kind: HANDOFF.into(),
        id: h.id.clone(),
        ctx: Some(h.context.clone()),
        owner: Some(h.target.clone()),
        state: Some(h.status.as_str().into()),
        due_at: (h.status == HandoffState::Requested).then_some(h.deadline),
        body: serde_json::to_string(h)?,
    })
}

pub(crate) fn task_object(t: &Task) -> Result<Object> {
    Ok(Object {
        kind: TASK.into(),
        id: t.id.clone(),
        ctx: Some(t.context.clone()),
        owner: Some(t.assignee.clone()),
        state: Some(t.status.as_str().into()),
        due_at: None,
        body: serde_json::to_string(t)?,
    })
}

pub(crate) async fn load<T: DeserializeOwned>(tx: &mut impl Tx, kind: &str, id: &str, lock: bool) -> Result<T> {
    match tx.object(kind, id, lock).await? {
        Some(o) => decode(&o),
        None => Err(Error::not_found(format!("{kind} {id:?}")).into()),
    }
}

/// The agent `id` of the registry (`404 not_found` when there is none).
pub(crate) async fn agent(tx: &mut impl Tx, id: &str, lock: bool) -> Result<Agent> {
    load(tx, AGENT, id, lock).await
}

/// The agent `id`, which must be registered to be `role` (e.g. "a lock's
/// holder"): what needs its lease, inbox or needs. Reading and writing
/// entries needs no registration.
pub(crate) async fn registered(tx: &mut impl Tx, id: &str, role: &str) -> Result<Agent> {
    load(tx, AGENT, id, false).await.map_err(|e| match e {
        StoreError::Core(Error::NotFound { .. }) => {
            Error::NotRegistered { agent: id.to_owned(), role: role.to_owned() }.into()
        }
        other => other,
    })
}

pub(crate) fn page<T: DeserializeOwned>(objects: Vec<Object>, limit: usize) -> Result<(Vec<T>, bool)> {
    let more = objects.len() > limit;
    let items = objects.iter().take(limit).map(decode).collect::<Result<Vec<T>>>()?;
    Ok((items, more))
}

pub(crate) fn filter_of(q: &CoordQuery) -> ObjectFilter {
    ObjectFilter { ctx: q.context.clone(), owner: q.agent.clone(), state: q.state.clone() }
}
