//! The coordination layer in storage, written once over [`Tx`] for every
//! backend: agents and their leases, locks with fencing tokens, handoffs,
//! tasks, agent inboxes and the agents feed.
//!
//! Lock order, so that two transactions never wait on each other in a
//! cycle: a context's row first, then objects, then stream heads (in name
//! order). Events of a context take a revision of its log; events directed
//! at an agent are also appended to its inbox (`@inbox:<agent>`), and agent
//! lifecycle events go to the agents feed (`@agents`). Both are streams
//! with their own sequence numbers, published to watchers like revisions.

use ctxmesh_core::agent::{Agent, AgentPatch, AgentSpec, AgentStatus, parse_agent_id};
use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::coord::{
    AuditRecord, Effect, EntryScope, Grant, Handoff, HandoffAction, HandoffRequest, HandoffState, Lock, Permission,
    PolicyRule, Task, TaskRequest, check_ttl, parse_lock_name,
};
use ctxmesh_core::error::Error;
use ctxmesh_core::event::types;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::txn::PlanBuilder;
use ctxmesh_core::{Event, Priority, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use crate::backend::AuditQuery;
use crate::backend::{Object, ObjectFilter, Tx};
use crate::notify::{Committed, SharedEvent};
use crate::ops::{SYSTEM_AGENT, apply_plan, now};
use crate::{Result, StoreError};

/// The stream of agent lifecycle events.
pub const AGENTS_FEED: &str = "@agents";

/// The stream name of an agent's inbox. Stream names start with `@`,
/// which no context id does, so they share the notification hub.
pub fn inbox_stream(agent: &str) -> String {
    format!("@inbox:{agent}")
}

pub(crate) const AGENT: &str = "agent";
const LOCK: &str = "lock";
const HANDOFF: &str = "handoff";
const TASK: &str = "task";
const TOKEN: &str = "token";
pub(crate) const GRANT: &str = "grant";
const POLICY: &str = "policy";

/// Whether objects of `kind` are read to authenticate or authorize a
/// request (`CoordRead::TokenOwner`, `CoordRead::Access`): a backend that
/// keeps those reads in memory forgets them when such an object changes.
pub(crate) fn affects_access(kind: &str) -> bool {
    matches!(kind, AGENT | TOKEN | GRANT | POLICY)
}

pub(crate) async fn policies(tx: &mut impl Tx) -> Result<Vec<PolicyRule>> {
    tx.objects(POLICY, &ObjectFilter::default(), "", usize::MAX >> 1).await?.iter().map(decode).collect()
}

fn grant_object(g: &Grant) -> Result<Object> {
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

/// A write of the coordination layer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CoordWrite {
    /// Registers an agent (`already_exists` if the id is taken).
    Register(AgentSpec),
    /// Updates an agent.
    UpdateAgent {
        /// The agent.
        id: String,
        /// What changes.
        patch: AgentPatch,
    },
    /// Unregisters an agent, releasing its locks.
    Unregister {
        /// The agent.
        id: String,
    },
    /// Makes `hash` (a SHA-256 of a token, hex) the agent's only token.
    SetToken {
        /// The agent.
        agent: String,
        /// The token's hash.
        hash: String,
    },
    /// Grants agents permissions on a context (replacing their grants).
    Grant {
        /// The context.
        ctx: ContextId,
        /// The agents (each must be registered).
        agents: Vec<String>,
        /// What they may do.
        permissions: Vec<Permission>,
        /// When the grants lapse, if ever.
        expires_at: Option<Timestamp>,
        /// Who grants.
        by: String,
    },
    /// Revokes an agent's grant on a context.
    Revoke {
        /// The context.
        ctx: ContextId,
        /// The agent.
        agent: String,
        /// Who revokes.
        by: String,
    },
    /// Creates a policy rule (`already_exists` if its id is taken).
    PutPolicy(PolicyRule),
    /// Deletes a policy rule.
    DeletePolicy {
        /// The rule's id.
        id: String,
    },
    /// Appends access decisions to the audit log.
    Audit(Vec<AuditRecord>),
    /// Removes audit records older than `before`.
    TrimAudit {
        /// The cut-off.
        before: Timestamp,
    },
    /// Revokes every token of an agent.
    RevokeTokens {
        /// The agent.
        agent: String,
    },
    /// Renews an agent's lease (and revives a disconnected agent).
    Heartbeat {
        /// The agent.
        id: String,
    },
    /// Takes a lock (or reports who holds it).
    Acquire {
        /// The context.
        ctx: ContextId,
        /// The lock's name.
        name: String,
        /// The agent taking it.
        agent: String,
        /// How long it holds it unless refreshed.
        ttl_ms: u64,
    },
    /// Releases a lock (holder only).
    Release {
        /// The context.
        ctx: ContextId,
        /// The lock's name.
        name: String,
        /// The holder.
        agent: String,
        /// The acquisition, if the caller names it.
        lock_id: Option<String>,
    },
    /// Extends a lock (holder only).
    Refresh {
        /// The context.
        ctx: ContextId,
        /// The lock's name.
        name: String,
        /// The holder.
        agent: String,
        /// The acquisition, if the caller names it.
        lock_id: Option<String>,
        /// The new TTL from now.
        ttl_ms: u64,
    },
    /// Requests a handoff.
    RequestHandoff {
        /// The agent handing over.
        source: String,
        /// What it hands over.
        request: HandoffRequest,
    },
    /// Accepts, rejects or completes a handoff.
    Handoff {
        /// The handoff.
        id: String,
        /// What to do.
        action: HandoffAction,
        /// Who does it.
        agent: String,
        /// A rejection reason or a completion result.
        outcome: Option<Value>,
    },
    /// Assigns a task.
    AssignTask {
        /// The context.
        ctx: ContextId,
        /// The task.
        request: TaskRequest,
        /// Who assigns it.
        by: String,
    },
    /// Completes a task (assignee only).
    CompleteTask {
        /// The task.
        id: String,
        /// Who completes it.
        agent: String,
        /// What it produced.
        output: Option<Value>,
    },
    /// A priority message to agents' inboxes (and, with a context, to its
    /// log as well).
    Message {
        /// The context it concerns, if any.
        ctx: Option<ContextId>,
        /// The recipients (each must be registered).
        agents: Vec<String>,
        /// The sender.
        from: String,
        /// Its priority.
        priority: Priority,
        /// Its payload (`{"topic", "body"}`).
        data: Value,
    },
    /// Disconnects an agent whose lease lapsed at `now` (sweeper).
    ExpireAgent {
        /// The agent.
        id: String,
        /// The sweep time.
        now: Timestamp,
    },
    /// Frees a lock whose TTL ran out at `now` (sweeper).
    ExpireLock {
        /// The context.
        ctx: String,
        /// The lock's name.
        name: String,
        /// The sweep time.
        now: Timestamp,
    },
    /// Expires a handoff whose deadline passed at `now` (sweeper).
    ExpireHandoff {
        /// The handoff.
        id: String,
        /// The sweep time.
        now: Timestamp,
    },
    /// Records a consensus that fell short as a pending conflict on `key`.
    Escalate {
        /// The context.
        ctx: ContextId,
        /// The entry the consensus was about.
        key: String,
        /// Who asked for the consensus.
        author: String,
        /// The candidate values, heaviest first.
        candidates: Vec<ctxmesh_core::conflict::Candidate>,
    },
    /// Resolves a pending conflict (see docs/conflicts.md).
    ResolveConflict {
        /// The context.
        ctx: ContextId,
        /// The conflict's id.
        id: String,
        /// What to keep.
        resolution: ctxmesh_core::conflict::Choice,
        /// The entry revision the resolution is based on (default: the
        /// conflict's `current_revision`).
        if_match: Option<u64>,
        /// Who resolves it.
        author: String,
        /// The entries the resolver may read and write, when not all.
        scope: Option<ctxmesh_core::txn::TxnScope>,
    },
}

impl CoordWrite {
    /// The name writes are queued under on a node: the context for
    /// context-bound writes, else the object.
    pub(crate) fn queue(&self) -> String {
        match self {
            CoordWrite::Acquire { ctx, .. }
            | CoordWrite::Grant { ctx, .. }
            | CoordWrite::Revoke { ctx, .. }
            | CoordWrite::Release { ctx, .. }
            | CoordWrite::Refresh { ctx, .. }
            | CoordWrite::AssignTask { ctx, .. }
            | CoordWrite::ResolveConflict { ctx, .. }
            | CoordWrite::Escalate { ctx, .. } => ctx.as_str().to_owned(),
            CoordWrite::ExpireLock { ctx, .. } => ctx.clone(),
            CoordWrite::RequestHandoff { request, .. } => request.context.clone(),
            CoordWrite::Register(spec) => format!("@agent:{}", spec.id),
            CoordWrite::SetToken { agent: id, .. } | CoordWrite::RevokeTokens { agent: id } => format!("@agent:{id}"),
            CoordWrite::UpdateAgent { id, .. }
            | CoordWrite::Unregister { id }
            | CoordWrite::Heartbeat { id }
            | CoordWrite::ExpireAgent { id, .. } => format!("@agent:{id}"),
            CoordWrite::Handoff { id, .. } | CoordWrite::ExpireHandoff { id, .. } => format!("@handoff:{id}"),
            CoordWrite::CompleteTask { id, .. } => format!("@task:{id}"),
            CoordWrite::Audit(_) | CoordWrite::TrimAudit { .. } => "@audit".to_owned(),
            CoordWrite::PutPolicy(_) | CoordWrite::DeletePolicy { .. } => "@policies".to_owned(),
            CoordWrite::Message { ctx: Some(ctx), .. } => ctx.as_str().to_owned(),
            CoordWrite::Message { agents, .. } => format!("@message:{}", agents.join(",")),
        }
    }
}

/// Which agents to list.
#[derive(Clone, Debug, Default)]
pub struct AgentQuery {
    /// Only agents in this status.
    pub status: Option<AgentStatus>,
    /// Only agents with this capability (a free string or `can_*`).
    pub capability: Option<String>,
    /// Only ids after this one.
    pub after: Option<String>,
    /// Most agents to return.
    pub limit: usize,
}

/// Which handoffs or tasks to list; `None` matches any.
#[derive(Clone, Debug, Default)]
pub struct CoordQuery {
    /// Of this context.
    pub context: Option<String>,
    /// Directed at this agent (handoff target, task assignee).
    pub agent: Option<String>,
    /// In this state.
    pub state: Option<String>,
    /// Only ids after this one.
    pub after: Option<String>,
    /// Most items to return.
    pub limit: usize,
}

/// A read of the coordination layer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CoordRead {
    /// One agent.
    Agent {
        /// The agent.
        id: String,
    },
    /// Agents by id.
    Agents(AgentQuery),
    /// One lock (free and never taken locks too).
    Lock {
        /// The context.
        ctx: ContextId,
        /// The lock's name.
        name: String,
    },
    /// The locks of a context ever taken, by name.
    Locks {
        /// The context.
        ctx: ContextId,
    },
    /// One handoff.
    Handoff {
        /// The handoff.
        id: String,
    },
    /// Handoffs by id.
    Handoffs(CoordQuery),
    /// One task.
    Task {
        /// The task.
        id: String,
    },
    /// Tasks by id.
    Tasks(CoordQuery),
    /// An agent's inbox after a sequence number.
    Inbox {
        /// The agent.
        agent: String,
        /// Items after this sequence number.
        after: u64,
        /// Most items.
        limit: usize,
    },
    /// The last sequence number of an agent's inbox (0 when empty).
    InboxHead {
        /// The agent.
        agent: String,
    },
    /// Audit records.
    Audit(AuditQuery),
    /// Every policy rule, by id.
    Policies,
    /// The grants of a context.
    Grants {
        /// The context.
        ctx: ContextId,
    },
    /// The current grants of an agent, by context.
    Shared {
        /// The agent.
        agent: String,
    },
    /// What an agent may do on a context (`not_found` if the context is
    /// missing).
    Access {
        /// The context.
        ctx: ContextId,
        /// The agent.
        agent: String,
    },
    /// The agent a token hash belongs to (`not_found` if none).
    TokenOwner {
        /// The token's hash.
        hash: String,
    },
    /// The agents feed after a sequence number.
    AgentEvents {
        /// Items after this sequence number.
        after: u64,
        /// Most items.
        limit: usize,
    },
    /// The locks an agent holds.
    HeldLocks {
        /// The agent.
        agent: String,
    },
    /// What is due for the sweeper at `now`.
    Due {
        /// The sweep time.
        now: Timestamp,
    },
    /// Conflicts of a context, by id.
    Conflicts {
        /// The context.
        ctx: ContextId,
        /// Only those in this status (all when `None`).
        status: Option<ctxmesh_core::conflict::ConflictStatus>,
        /// Ids after this one.
        after: String,
        /// Most items.
        limit: usize,
    },
    /// One conflict.
    Conflict {
        /// The context.
        ctx: ContextId,
        /// The conflict's id.
        id: String,
    },
}

/// What a coordination read or write returns.
#[derive(Clone, Debug)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one value per call, moved once
pub enum CoordOutput {
    /// One agent.
    Agent(Agent),
    /// A page of agents, and whether more follow.
    Agents(Vec<Agent>, bool),
    /// A lock, and whether the request acquired it.
    Lock {
        /// Whether this request took the lock.
        acquired: bool,
        /// The lock now.
        lock: Lock,
    },
    /// Locks.
    Locks(Vec<Lock>),
    /// One handoff.
    Handoff(Box<Handoff>),
    /// A page of handoffs.
    Handoffs(Vec<Handoff>, bool),
    /// One task.
    Task(Box<Task>),
    /// A page of tasks.
    Tasks(Vec<Task>, bool),
    /// Stream items, oldest first.
    Events(Vec<Event>),
    /// The last sequence number of a stream.
    Head(u64),
    /// Grants.
    Grants(Vec<Grant>),
    /// Audit records, oldest first.
    Audit(Vec<AuditRecord>),
    /// Policy rules.
    Policies(Vec<PolicyRule>),
    /// A count (of records removed).
    Count(u64),
    /// An agent's access to a context.
    Access(Access),
    /// What the sweeper must do.
    Due(Due),
    /// Conflicts.
    Conflicts(Vec<ctxmesh_core::conflict::Conflict>),
    /// One conflict.
    Conflict(Box<ctxmesh_core::conflict::Conflict>),
    /// Nothing to return.
    Unit,
}

/// What decides an agent's access to a context: its grant, whether it
/// created the context, its registration (capabilities, trust) and the
/// policy rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The context.
    pub context: String,
    /// The agent created the context (and administers it).
    pub creator: bool,
    /// Its current grant, if any.
    pub grant: Option<Grant>,
    /// Its registration, if it is registered.
    pub agent: Option<Agent>,
    /// Every policy rule.
    pub policies: Vec<PolicyRule>,
}

impl Access {
    /// Decides whether the agent may do `needed` at `now`, and why:
    /// 1. its capabilities must allow the kind of access (`can_read`,
    ///    `can_write`, `can_share`; sharing is also open to the creator);
    /// 2. a deny rule that matches refuses, whatever else allows (deny wins);
    /// 3. the creator, a current grant, or an allow rule that matches
    ///    allows;
    /// 4. anything else is refused.
    pub fn decide(&self, needed: Permission, now: Timestamp) -> (bool, String) {
        let (id, trust) = match &self.agent {
            Some(a) => (a.id.as_str(), a.trust),
            None => ("", ctxmesh_core::agent::Trust::None),
        };
        if let Some(a) = &self.agent {
            let capable = match needed {
                Permission::Read => a.capabilities.can_read,
                Permission::Write => a.capabilities.can_write,
                Permission::Share => a.capabilities.can_share || self.creator,
                Permission::Admin => true,
            };
            if !capable {
                return (false, format!("capabilities forbid {}", needed.as_str()));
            }
        }
        // Rules that name entries are decided entry by entry (see
        // `scope`); they open a context for reading and writing its
        // entries, and never close it.
        let entry_level = matches!(needed, Permission::Read | Permission::Write);
        let applies = |effect: Effect| {
            self.policies.iter().find(|r| {
                r.effect == effect
                    && r.applies(&self.context, id, trust, needed)
                    && (!r.is_entry_rule() || (effect == Effect::Allow && entry_level))
            })
        };
        if let Some(rule) = applies(Effect::Deny) {
            return (false, format!("denied by policy {}", rule.id));
        }
        if self.creator {
            return (true, "creator".into());
        }
        match &self.grant {
            Some(g) if g.allows(needed, now) => return (true, "grant".into()),
            Some(g) if g.expires_at.is_some_and(|t| t <= now) && applies(Effect::Allow).is_none() => {
                return (false, "grant expired".into());
            }
            _ => {}
        }
        match applies(Effect::Allow) {
            Some(rule) if rule.is_entry_rule() => {
                (true, format!("allowed by policy {} (the entries it names)", rule.id))
            }
            Some(rule) => (true, format!("allowed by policy {}", rule.id)),
            None if self.grant.is_some() => (false, format!("the grant lacks {}", needed.as_str())),
            None => (false, "no grant".into()),
        }
    }

    /// Whether the agent may do `needed` at `now` (see [`Access::decide`]).
    pub fn allows(&self, needed: Permission, now: Timestamp) -> bool {
        self.decide(needed, now).0
    }

    /// Which entries the agent may read (`needed` = read) or write at
    /// `now`: none unless [`Access::decide`] allows the context; every
    /// entry with the creator, a grant or a context-wide allow rule; else
    /// those that allow rules naming entries name. Deny rules naming entries
    /// apply in every case. Confidential entries are readable with the
    /// creator or a grant that includes `read` only.
    pub fn scope(&self, needed: Permission, now: Timestamp) -> EntryScope {
        if !self.allows(needed, now) {
            return EntryScope::none();
        }
        let trust = self.agent.as_ref().map_or(ctxmesh_core::agent::Trust::None, |a| a.trust);
        let id = self.agent.as_ref().map_or("", |a| a.id.as_str());
        let matching = |effect: Effect| -> Vec<PolicyRule> {
            self.policies
                .iter()
                .filter(|r| r.effect == effect && r.applies(&self.context, id, trust, needed))
                .cloned()
                .collect()
        };
        let (allow, deny) = (matching(Effect::Allow), matching(Effect::Deny));
        let granted = self.grant.as_ref().is_some_and(|g| g.allows(needed, now));
        let explicit_read = self.creator || self.grant.as_ref().is_some_and(|g| g.allows(Permission::Read, now));
        EntryScope {
            whole: self.creator || granted || allow.iter().any(|r| !r.is_entry_rule()),
            allow: allow.into_iter().filter(PolicyRule::is_entry_rule).collect(),
            deny: deny.into_iter().filter(PolicyRule::is_entry_rule).collect(),
            confidential: needed != Permission::Read || explicit_read,
            agent: id.to_owned(),
        }
    }
}

/// The objects whose time ran out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Agents whose lease lapsed.
    pub agents: Vec<String>,
    /// Locks whose TTL ran out: (context, name).
    pub locks: Vec<(String, String)>,
    /// Handoffs whose deadline passed.
    pub handoffs: Vec<String>,
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Agents disconnected.
    pub agents_disconnected: u64,
    /// Locks freed.
    pub locks_expired: u64,
    /// Handoffs expired.
    pub handoffs_expired: u64,
}

// ---- objects ----

pub(crate) fn decode<T: DeserializeOwned>(object: &Object) -> Result<T> {
    Ok(serde_json::from_str(&object.body)?)
}

fn agent_object(agent: &Agent) -> Result<Object> {
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

fn lock_id(ctx: &str, name: &str) -> String {
    format!("{ctx}/{name}")
}

fn lock_object(lock: &Lock) -> Result<Object> {
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

fn handoff_object(h: &Handoff) -> Result<Object> {
    Ok(Object {
        kind: HANDOFF.into(),
        id: h.id.clone(),
        ctx: Some(h.context.clone()),
        owner: Some(h.target.clone()),
        state: Some(h.state.as_str().into()),
        due_at: (h.state == HandoffState::Requested).then_some(h.deadline),
        body: serde_json::to_string(h)?,
    })
}

fn task_object(t: &Task) -> Result<Object> {
    Ok(Object {
        kind: TASK.into(),
        id: t.id.clone(),
        ctx: Some(t.context.clone()),
        owner: Some(t.assignee.clone()),
        state: Some(t.state.as_str().into()),
        due_at: None,
        body: serde_json::to_string(t)?,
    })
}

async fn load<T: DeserializeOwned>(tx: &mut impl Tx, kind: &str, id: &str, lock: bool) -> Result<T> {
    match tx.object(kind, id, lock).await? {
        Some(o) => decode(&o),
        None => Err(Error::not_found(format!("{kind} {id:?}")).into()),
    }
}

async fn agent(tx: &mut impl Tx, id: &str, lock: bool) -> Result<Agent> {
    load(tx, AGENT, id, lock).await.map_err(|e| match e {
        StoreError::Core(Error::NotFound { .. }) => Error::not_found(format!("agent {id:?}: register it first")).into(),
        other => other,
    })
}

/// A fresh id: time-ordered, unique across nodes.
fn new_id(prefix: &str) -> String {
    let micros = now().timestamp_micros();
    let salt: u64 = rand::random();
    format!("{prefix}-{micros:x}-{salt:016x}")
}

// ---- events ----

/// Appends one event to a context's log as a revision of its own.
async fn log_event(
    tx: &mut impl Tx,
    ctx: &mut ContextInfo,
    kind: &str,
    author: &str,
    priority: Option<Priority>,
    data: Value,
) -> Result<Event> {
    let at = now().max(ctx.updated_at);
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
async fn deliver(tx: &mut impl Tx, agents: &[&str], event: &Event) -> Result<()> {
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

fn feed_event(kind: &str, agent: &Agent) -> Event {
    Event {
        kind: kind.to_owned(),
        context: String::new(),
        revision: 0,
        key: None,
        at: now(),
        agent: Some(agent.id.clone()),
        priority: None,
        data: Some(json!({ "agent": agent.id, "status": agent.status })),
        seq: None,
    }
}

// ---- writes ----

/// Runs one coordination write inside `tx`.
pub(crate) async fn write(tx: &mut impl Tx, env: crate::ops::Env<'_>, op: CoordWrite) -> Result<CoordOutput> {
    match op {
        CoordWrite::Escalate { ctx, key, author, candidates } => {
            let conflict = crate::conflicts::escalate(tx, &ctx, &key, &author, candidates).await?;
            Ok(CoordOutput::Conflict(Box::new(conflict)))
        }
        CoordWrite::ResolveConflict { ctx, id, resolution, if_match, author, scope } => {
            let resolve = crate::conflicts::Resolve { ctx, id, choice: resolution, if_match, author, scope };
            let conflict = crate::conflicts::resolve(tx, env.limits, env.schemas, resolve).await?;
            Ok(CoordOutput::Conflict(Box::new(conflict)))
        }
        CoordWrite::Register(spec) => {
            let agent = spec.into_agent(now())?;
            if tx.object(AGENT, &agent.id, true).await?.is_some() {
                return Err(Error::AlreadyExists { what: format!("agent {:?}", agent.id) }.into());
            }
            tx.put_object(&agent_object(&agent)?).await?;
            append(tx, AGENTS_FEED, feed_event(types::AGENT_REGISTERED, &agent)).await?;
            Ok(CoordOutput::Agent(agent))
        }
        CoordWrite::UpdateAgent { id, patch } => {
            let mut a = agent(tx, &id, true).await?;
            a.apply(patch)?;
            tx.put_object(&agent_object(&a)?).await?;
            Ok(CoordOutput::Agent(a))
        }
        CoordWrite::Heartbeat { id } => {
            let mut a = agent(tx, &id, true).await?;
            a.heartbeat(now());
            tx.put_object(&agent_object(&a)?).await?;
            Ok(CoordOutput::Agent(a))
        }
        CoordWrite::SetToken { agent: id, hash } => {
            agent(tx, &id, true).await?;
            revoke_tokens(tx, &id).await?;
            let body = json!({ "agent": id, "created_at": now() }).to_string();
            let token =
                Object { kind: TOKEN.into(), id: hash, ctx: None, owner: Some(id), state: None, due_at: None, body };
            tx.put_object(&token).await?;
            Ok(CoordOutput::Unit)
        }
        CoordWrite::Grant { ctx, agents, permissions, expires_at, by } => {
            if agents.is_empty() || permissions.is_empty() {
                return Err(Error::invalid("agents", "name at least one agent and one permission").into());
            }
            let at = now();
            if expires_at.is_some_and(|t| t <= at) {
                return Err(Error::invalid("expires_at", "must be in the future").into());
            }
            let mut info = tx.lock_context(ctx.as_str()).await?;
            let mut targets: Vec<&str> = agents.iter().map(String::as_str).collect();
            targets.sort_unstable();
            targets.dedup();
            let mut grants = Vec::new();
            for who in &targets {
                agent(tx, who, false).await?;
                let grant = Grant {
                    context: ctx.as_str().to_owned(),
                    agent: (*who).to_owned(),
                    permissions: permissions.clone(),
                    expires_at,
                    granted_by: by.clone(),
                    granted_at: at,
                };
                tx.put_object(&grant_object(&grant)?).await?;
                grants.push(grant);
            }
            let data = json!({ "agents": targets, "permissions": permissions, "expires_at": expires_at });
            let event = log_event(tx, &mut info, types::CONTEXT_SHARED, &by, None, data).await?;
            deliver(tx, &targets, &event).await?;
            Ok(CoordOutput::Grants(grants))
        }
        CoordWrite::Revoke { ctx, agent: who, by } => {
            let mut info = tx.lock_context(ctx.as_str()).await?;
            let id = format!("{}/{who}", ctx.as_str());
            if tx.object(GRANT, &id, true).await?.is_none() {
                return Err(Error::not_found(format!("a grant of {who:?} on context {:?}", ctx.as_str())).into());
            }
            tx.delete_object(GRANT, &id).await?;
            let event = log_event(tx, &mut info, types::CONTEXT_REVOKED, &by, None, json!({ "agent": who })).await?;
            deliver(tx, &[&who], &event).await?;
            Ok(CoordOutput::Unit)
        }
        CoordWrite::PutPolicy(rule) => {
            rule.validate()?;
            if tx.object(POLICY, &rule.id, true).await?.is_some() {
                return Err(Error::AlreadyExists { what: format!("policy {:?}", rule.id) }.into());
            }
            let body = serde_json::to_string(&rule)?;
            let object = Object {
                kind: POLICY.into(),
                id: rule.id.clone(),
                ctx: None,
                owner: None,
                state: None,
                due_at: None,
                body,
            };
            tx.put_object(&object).await?;
            Ok(CoordOutput::Policies(vec![rule]))
        }
        CoordWrite::DeletePolicy { id } => {
            if tx.object(POLICY, &id, true).await?.is_none() {
                return Err(Error::not_found(format!("policy {id:?}")).into());
            }
            tx.delete_object(POLICY, &id).await?;
            Ok(CoordOutput::Unit)
        }
        CoordWrite::Audit(records) => {
            tx.append_audit(&records).await?;
            Ok(CoordOutput::Unit)
        }
        CoordWrite::TrimAudit { before } => Ok(CoordOutput::Count(tx.trim_audit(before).await?)),
        CoordWrite::RevokeTokens { agent: id } => {
            agent(tx, &id, true).await?;
            revoke_tokens(tx, &id).await?;
            Ok(CoordOutput::Unit)
        }
        CoordWrite::Unregister { id } => {
            let a = agent(tx, &id, true).await?;
            revoke_tokens(tx, &id).await?;
            // A later agent of the same id starts with no access.
            delete_owned(tx, GRANT, &id).await?;
            tx.delete_object(AGENT, &id).await?;
            append(tx, AGENTS_FEED, feed_event(types::AGENT_UNREGISTERED, &a)).await?;
            Ok(CoordOutput::Unit)
        }
        CoordWrite::ExpireAgent { id, now } => {
            let Some(object) = tx.object(AGENT, &id, true).await? else { return Ok(CoordOutput::Unit) };
            let mut a: Agent = decode(&object)?;
            if a.status == AgentStatus::Disconnected || a.lease_expires_at > now {
                return Ok(CoordOutput::Unit); // renewed or handled meanwhile
            }
            a.status = AgentStatus::Disconnected;
            tx.put_object(&agent_object(&a)?).await?;
            append(tx, AGENTS_FEED, feed_event(types::AGENT_DISCONNECTED, &a)).await?;
            Ok(CoordOutput::Agent(a))
        }
        CoordWrite::Acquire { ctx, name, agent: who, ttl_ms } => {
            parse_lock_name(&name)?;
            check_ttl(ttl_ms)?;
            let mut info = tx.lock_context(ctx.as_str()).await?;
            let holder = agent(tx, &who, false).await?;
            if holder.status == AgentStatus::Disconnected {
                return Err(Error::Conflict {
                    code: "disconnected",
                    message: format!("agent {who:?} is disconnected: send a heartbeat first"),
                }
                .into());
            }
            let mut lock = match tx.object(LOCK, &lock_id(ctx.as_str(), &name), true).await? {
                Some(o) => decode(&o)?,
                None => Lock::new(ctx.as_str(), &name),
            };
            let at = now();
            let expired_holder = lock.holder.clone().filter(|_| lock.held_by(at).is_none());
            if !lock.acquire(&who, at, ttl_ms) {
                return Ok(CoordOutput::Lock { acquired: false, lock });
            }
            if let Some(previous) = expired_holder.filter(|p| p != &who) {
                // The TTL ran out before the sweeper saw it: say so first.
                let data = json!({ "name": name, "holder": previous, "fencing_token": lock.fencing_token - 1 });
                log_event(tx, &mut info, types::LOCK_EXPIRED, SYSTEM_AGENT, None, data).await?;
            }
            tx.put_object(&lock_object(&lock)?).await?;
            let data = json!({
                "name": name, "holder": who, "lock_id": lock.lock_id,
                "fencing_token": lock.fencing_token, "expires_at": lock.expires_at,
            });
            log_event(tx, &mut info, types::LOCK_ACQUIRED, &who, None, data).await?;
            Ok(CoordOutput::Lock { acquired: true, lock })
        }
        CoordWrite::Release { ctx, name, agent: who, lock_id: id } => {
            let mut info = tx.lock_context(ctx.as_str()).await?;
            let mut lock: Lock = load(tx, LOCK, &lock_id(ctx.as_str(), &name), true).await?;
            lock.check_holder(&who, id.as_deref(), now())?;
            let token = lock.fencing_token;
            lock.release();
            tx.put_object(&lock_object(&lock)?).await?;
            let data = json!({ "name": name, "holder": who, "fencing_token": token });
            log_event(tx, &mut info, types::LOCK_RELEASED, &who, None, data).await?;
            Ok(CoordOutput::Lock { acquired: false, lock })
        }
        CoordWrite::Refresh { ctx, name, agent: who, lock_id: id, ttl_ms } => {
            check_ttl(ttl_ms)?;
            tx.lock_context(ctx.as_str()).await?;
            let mut lock: Lock = load(tx, LOCK, &lock_id(ctx.as_str(), &name), true).await?;
            let at = now();
            lock.check_holder(&who, id.as_deref(), at)?;
            lock.refresh(at, ttl_ms);
            tx.put_object(&lock_object(&lock)?).await?;
            Ok(CoordOutput::Lock { acquired: true, lock })
        }
        CoordWrite::ExpireLock { ctx, name, now } => {
            let mut info = tx.lock_context(&ctx).await?;
            let Some(object) = tx.object(LOCK, &lock_id(&ctx, &name), true).await? else {
                return Ok(CoordOutput::Unit);
            };
            let mut lock: Lock = decode(&object)?;
            let Some(holder) = lock.holder.clone() else { return Ok(CoordOutput::Unit) };
            // Its TTL ran out, or its holder's lease did (or it left).
            let holder_gone = match tx.object(AGENT, &holder, false).await? {
                Some(o) => decode::<Agent>(&o)?.status == AgentStatus::Disconnected,
                None => true,
            };
            if lock.held_by(now).is_some() && !holder_gone {
                return Ok(CoordOutput::Unit); // refreshed meanwhile
            }
            lock.release();
            tx.put_object(&lock_object(&lock)?).await?;
            let data = json!({
                "name": name, "holder": holder, "fencing_token": lock.fencing_token,
                "reason": if holder_gone { "holder disconnected" } else { "ttl" },
            });
            log_event(tx, &mut info, types::LOCK_EXPIRED, SYSTEM_AGENT, None, data).await?;
            Ok(CoordOutput::Lock { acquired: false, lock })
        }
        CoordWrite::RequestHandoff { source, request } => {
            let ctx = ContextId::parse(&request.context)?;
            let mut info = tx.lock_context(ctx.as_str()).await?;
            let revision = request.revision.unwrap_or(info.revision);
            if revision > info.revision {
                return Err(Error::invalid("revision", format!("the context is at revision {}", info.revision)).into());
            }
            info.check_readable(revision.max(1))?;
            let handoff = request.into_handoff(new_id("h"), &source, revision, now())?;
            agent(tx, &handoff.target, false).await?;
            tx.put_object(&handoff_object(&handoff)?).await?;
            let event = handoff_event(tx, &mut info, &handoff, types::HANDOFF_REQUESTED, &source).await?;
            deliver(tx, &[&handoff.target], &event).await?;
            Ok(CoordOutput::Handoff(Box::new(handoff)))
        }
        CoordWrite::Handoff { id, action, agent: who, outcome } => {
            transition(tx, &id, action, &who, outcome, now()).await
        }
        CoordWrite::ExpireHandoff { id, now } => {
            let h: Handoff = load(tx, HANDOFF, &id, false).await?;
            if h.state != HandoffState::Requested || h.deadline > now {
                return Ok(CoordOutput::Unit);
            }
            transition(tx, &id, HandoffAction::Expire, SYSTEM_AGENT, None, now).await
        }
        CoordWrite::AssignTask { ctx, request, by } => {
            let mut info = tx.lock_context(ctx.as_str()).await?;
            let task = request.into_task(new_id("t"), ctx.as_str(), &by, now())?;
            agent(tx, &task.assignee, false).await?;
            tx.put_object(&task_object(&task)?).await?;
            let data = json!({ "task": task });
            let event = log_event(tx, &mut info, types::TASK_ASSIGNED, &by, Some(task.priority), data).await?;
            deliver(tx, &[&task.assignee], &event).await?;
            Ok(CoordOutput::Task(Box::new(task)))
        }
        CoordWrite::Message { ctx, agents, from, priority, data } => {
            if agents.is_empty() {
                return Err(Error::invalid("agents", "name at least one recipient").into());
            }
            let event = match &ctx {
                Some(ctx) => {
                    let mut info = tx.lock_context(ctx.as_str()).await?;
                    log_event(tx, &mut info, types::MESSAGE, &from, Some(priority), data).await?
                }
                None => Event {
                    kind: types::MESSAGE.to_owned(),
                    context: String::new(),
                    revision: 0,
                    key: None,
                    at: now(),
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
                agent(tx, recipient, false).await?;
            }
            deliver(tx, &recipients, &event).await?;
            Ok(CoordOutput::Events(vec![event]))
        }
        CoordWrite::CompleteTask { id, agent: who, output } => {
            let task: Task = load(tx, TASK, &id, false).await?;
            let mut info = tx.lock_context(&task.context).await?;
            let mut task: Task = load(tx, TASK, &id, true).await?;
            task.complete(&who, output, now())?;
            tx.put_object(&task_object(&task)?).await?;
            let data = json!({ "task": task });
            let event = log_event(tx, &mut info, types::TASK_COMPLETED, &who, Some(task.priority), data).await?;
            deliver(tx, &[&task.assigned_by], &event).await?;
            Ok(CoordOutput::Task(Box::new(task)))
        }
    }
}

async fn revoke_tokens(tx: &mut impl Tx, agent: &str) -> Result<()> {
    delete_owned(tx, TOKEN, agent).await
}

/// Deletes the objects of `kind` owned by `agent`.
async fn delete_owned(tx: &mut impl Tx, kind: &str, agent: &str) -> Result<()> {
    let filter = ObjectFilter { owner: Some(agent.to_owned()), ..Default::default() };
    for object in tx.objects(kind, &filter, "", usize::MAX >> 1).await? {
        tx.delete_object(kind, &object.id).await?;
    }
    Ok(())
}

/// Moves a handoff along; the event goes to the context's log and to the
/// inboxes of the agents on both ends.
async fn transition(
    tx: &mut impl Tx,
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
    let event = handoff_event(tx, &mut info, &h, kind, who).await?;
    deliver(tx, &[&h.source, &h.target], &event).await?;
    Ok(CoordOutput::Handoff(Box::new(h)))
}

async fn handoff_event(
    tx: &mut impl Tx,
    info: &mut ContextInfo,
    h: &Handoff,
    kind: &str,
    author: &str,
) -> Result<Event> {
    let data = json!({ "handoff": h });
    log_event(tx, info, kind, author, None, data).await
}

/// Refuses a write fenced with a token older than the lock's latest.
pub(crate) async fn check_fence(tx: &mut impl Tx, ctx: &str, fence: &ctxmesh_core::coord::Fence) -> Result<()> {
    let lock = match tx.object(LOCK, &lock_id(ctx, &fence.lock), false).await? {
        Some(o) => decode(&o)?,
        None => Lock::new(ctx, &fence.lock),
    };
    Ok(lock.check_fence(fence.token)?)
}

/// Removes what belonged to a deleted context (its locks, handoffs, tasks).
pub(crate) async fn forget_context(tx: &mut impl Tx, ctx: &str) -> Result<()> {
    tx.delete_context_objects(ctx).await
}

// ---- reads ----

fn page<T: DeserializeOwned>(objects: Vec<Object>, limit: usize) -> Result<(Vec<T>, bool)> {
    let more = objects.len() > limit;
    let items = objects.iter().take(limit).map(decode).collect::<Result<Vec<T>>>()?;
    Ok((items, more))
}

fn filter_of(q: &CoordQuery) -> ObjectFilter {
    ObjectFilter { ctx: q.context.clone(), owner: q.agent.clone(), state: q.state.clone() }
}

/// Runs one coordination read inside `tx`.
pub(crate) async fn read(tx: &mut impl Tx, op: CoordRead) -> Result<CoordOutput> {
    Ok(match op {
        CoordRead::Agent { id } => CoordOutput::Agent(agent(tx, &id, false).await?),
        CoordRead::Agents(q) => {
            let filter = ObjectFilter { state: q.status.map(|s| s.as_str().to_owned()), ..Default::default() };
            let mut out = Vec::new();
            let mut after = q.after.unwrap_or_default();
            // Capabilities are inside the body: filter page by page.
            loop {
                let batch = tx.objects(AGENT, &filter, &after, 500).await?;
                let Some(last) = batch.last() else { break };
                after = last.id.clone();
                for object in &batch {
                    let a: Agent = decode(object)?;
                    if q.capability.as_deref().is_none_or(|c| a.capabilities.has(c)) {
                        out.push(a);
                    }
                }
                if out.len() > q.limit || batch.len() < 500 {
                    break;
                }
            }
            let more = out.len() > q.limit;
            out.truncate(q.limit);
            CoordOutput::Agents(out, more)
        }
        CoordRead::Lock { ctx, name } => {
            parse_lock_name(&name)?;
            tx.context(ctx.as_str()).await?;
            let lock = match tx.object(LOCK, &lock_id(ctx.as_str(), &name), false).await? {
                Some(o) => decode(&o)?,
                None => Lock::new(ctx.as_str(), &name),
            };
            CoordOutput::Lock { acquired: false, lock }
        }
        CoordRead::Locks { ctx } => {
            tx.context(ctx.as_str()).await?;
            let filter = ObjectFilter { ctx: Some(ctx.as_str().to_owned()), ..Default::default() };
            let objects = tx.objects(LOCK, &filter, "", usize::MAX >> 1).await?;
            CoordOutput::Locks(objects.iter().map(decode).collect::<Result<_>>()?)
        }
        CoordRead::Handoff { id } => CoordOutput::Handoff(Box::new(load(tx, HANDOFF, &id, false).await?)),
        CoordRead::Handoffs(q) => {
            let objects = tx.objects(HANDOFF, &filter_of(&q), q.after.as_deref().unwrap_or(""), q.limit + 1).await?;
            let (items, more) = page(objects, q.limit)?;
            CoordOutput::Handoffs(items, more)
        }
        CoordRead::Task { id } => CoordOutput::Task(Box::new(load(tx, TASK, &id, false).await?)),
        CoordRead::Tasks(q) => {
            let objects = tx.objects(TASK, &filter_of(&q), q.after.as_deref().unwrap_or(""), q.limit + 1).await?;
            let (items, more) = page(objects, q.limit)?;
            CoordOutput::Tasks(items, more)
        }
        CoordRead::Inbox { agent: id, after, limit } => {
            parse_agent_id(&id)?;
            agent(tx, &id, false).await?;
            CoordOutput::Events(tx.stream(&inbox_stream(&id), after, limit).await?)
        }
        CoordRead::InboxHead { agent: id } => {
            agent(tx, &id, false).await?;
            CoordOutput::Head(tx.stream_head(&inbox_stream(&id)).await?)
        }
        CoordRead::Audit(q) => CoordOutput::Audit(tx.audit(&q).await?),
        CoordRead::Policies => CoordOutput::Policies(policies(tx).await?),
        CoordRead::Grants { ctx } => {
            tx.context(ctx.as_str()).await?;
            let filter = ObjectFilter { ctx: Some(ctx.as_str().to_owned()), ..Default::default() };
            let objects = tx.objects(GRANT, &filter, "", usize::MAX >> 1).await?;
            CoordOutput::Grants(objects.iter().map(decode).collect::<Result<_>>()?)
        }
        CoordRead::Shared { agent: who } => {
            agent(tx, &who, false).await?;
            let filter = ObjectFilter { owner: Some(who), ..Default::default() };
            let at = now();
            let grants: Vec<Grant> =
                tx.objects(GRANT, &filter, "", usize::MAX >> 1).await?.iter().map(decode).collect::<Result<_>>()?;
            CoordOutput::Grants(grants.into_iter().filter(|g| g.expires_at.is_none_or(|t| t > at)).collect())
        }
        CoordRead::Access { ctx, agent: who } => {
            let info = tx.context(ctx.as_str()).await?;
            let grant = match tx.object(GRANT, &format!("{}/{who}", ctx.as_str()), false).await? {
                Some(o) => Some(decode(&o)?),
                None => None,
            };
            let registered = match tx.object(AGENT, &who, false).await? {
                Some(o) => Some(decode(&o)?),
                None => None,
            };
            CoordOutput::Access(Access {
                context: info.id.clone(),
                creator: info.created_by == who,
                grant,
                agent: registered,
                policies: policies(tx).await?,
            })
        }
        CoordRead::TokenOwner { hash } => {
            let Some(token) = tx.object(TOKEN, &hash, false).await? else {
                return Err(Error::not_found("token").into());
            };
            let owner = token.owner.unwrap_or_default();
            CoordOutput::Agent(agent(tx, &owner, false).await?)
        }
        CoordRead::HeldLocks { agent } => CoordOutput::Locks(locks_held_by(tx, &agent).await?),
        CoordRead::Conflicts { ctx, status, after, limit } => {
            CoordOutput::Conflicts(crate::conflicts::list(tx, &ctx, status, &after, limit).await?)
        }
        CoordRead::Conflict { ctx, id } => {
            CoordOutput::Conflict(Box::new(crate::conflicts::get(tx, &ctx, &id, false).await?))
        }
        CoordRead::AgentEvents { after, limit } => CoordOutput::Events(tx.stream(AGENTS_FEED, after, limit).await?),
        CoordRead::Due { now } => {
            let agents = tx.due_objects(AGENT, now).await?;
            let locks = tx
                .due_objects(LOCK, now)
                .await?
                .into_iter()
                .filter_map(|id| id.split_once('/').map(|(c, n)| (c.to_owned(), n.to_owned())))
                .collect();
            let handoffs = tx.due_objects(HANDOFF, now).await?;
            CoordOutput::Due(Due { agents, locks, handoffs })
        }
    })
}

/// The locks an agent holds, for releasing them when it disconnects.
async fn locks_held_by(tx: &mut impl Tx, agent: &str) -> Result<Vec<Lock>> {
    let filter = ObjectFilter { owner: Some(agent.to_owned()), ..Default::default() };
    tx.objects(LOCK, &filter, "", usize::MAX >> 1).await?.iter().map(decode).collect()
}

// ---- multi-step flows, each step its own transaction ----

use crate::backend::{Backend, output};
use crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};

/// Runs a coordination write; when it removes or disconnects an agent,
/// then frees the locks it held (each in the transaction of its context,
/// which the lock order puts before the agent's).
pub(crate) async fn run_write(backend: &impl Backend, op: CoordWrite) -> Result<CoordOutput> {
    let leaving = match &op {
        CoordWrite::Unregister { id } | CoordWrite::ExpireAgent { id, .. } => Some(id.clone()),
        _ => None,
    };
    let out = output!(backend.write(WriteOp::Coord(op)).await, WriteOutput::Coord)?;
    if let Some(agent) = leaving
        && !matches!(out, CoordOutput::Unit)
    {
        release_locks_of(backend, &agent).await?;
    }
    Ok(out)
}

async fn release_locks_of(backend: &impl Backend, agent: &str) -> Result<u64> {
    let held = output!(
        backend.read(ReadOp::Coord(CoordRead::HeldLocks { agent: agent.to_owned() })).await,
        ReadOutput::Coord
    )?;
    let CoordOutput::Locks(locks) = held else { return Err(crate::backend::unexpected_output()) };
    let mut released = 0;
    for lock in locks {
        let op = CoordWrite::ExpireLock { ctx: lock.context, name: lock.name, now: now() };
        if let CoordOutput::Lock { .. } = output!(backend.write(WriteOp::Coord(op)).await, WriteOutput::Coord)? {
            released += 1;
        }
    }
    Ok(released)
}

/// One pass of the sweeper: lapsed leases, expired locks, handoffs past
/// their deadline. Each item is its own transaction; an item deleted
/// meanwhile is skipped.
pub(crate) async fn sweep(backend: &impl Backend, now: Timestamp) -> Result<SweepReport> {
    let due = output!(backend.read(ReadOp::Coord(CoordRead::Due { now })).await, ReadOutput::Coord)?;
    let CoordOutput::Due(due) = due else { return Err(crate::backend::unexpected_output()) };
    let mut report = SweepReport::default();
    let skip_missing = |r: Result<CoordOutput>| match r {
        Err(StoreError::Core(Error::NotFound { .. })) => Ok(CoordOutput::Unit),
        other => other,
    };
    for id in due.agents {
        let leaving = id.clone();
        if let CoordOutput::Agent(_) = skip_missing(run_write(backend, CoordWrite::ExpireAgent { id, now }).await)? {
            report.agents_disconnected += 1;
            tracing::info!(agent = %leaving, "agent lease lapsed: disconnected, locks released");
        }
    }
    for (ctx, name) in due.locks {
        let op = CoordWrite::ExpireLock { ctx, name, now };
        if let CoordOutput::Lock { .. } = skip_missing(run_write(backend, op).await)? {
            report.locks_expired += 1;
        }
    }
    for id in due.handoffs {
        if let CoordOutput::Handoff(_) = skip_missing(run_write(backend, CoordWrite::ExpireHandoff { id, now }).await)?
        {
            report.handoffs_expired += 1;
        }
    }
    Ok(report)
}
