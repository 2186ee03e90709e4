//! The requests of the coordination layer (agents, access control, locks,
//! handoffs, tasks, messages, conflicts) as the [`crate::Store`] takes
//! them: one type per operation, each with the type it answers
//! ([`Request::Output`]). `store.coord(Acquire { .. })` answers an
//! [`Acquisition`], `store.coord(GetAgent { .. })` an [`Agent`].
//!
//! What each request does is written in the store's `ops`; the backends carry
//! requests as values ([`CoordWrite`], [`CoordRead`]) to wherever they run
//! them.

use ctxmesh_core::access::{Access, AuditRecord, Grant, Permission, PolicyRule};
use ctxmesh_core::agent::{Agent, AgentPatch, AgentSpec, AgentStatus};
use ctxmesh_core::conflict::Conflict;
use ctxmesh_core::coord::{Handoff, HandoffAction, HandoffRequest, Lock, Task, TaskRequest};
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::{Event, Priority, Timestamp};
use serde::Serialize;
use serde_json::Value;

/// The stream of agent lifecycle events.
pub const AGENTS_FEED: &str = "@agents";

/// The stream name of an agent's inbox. Stream names start with `@`,
/// which no context id does, so they share the notification hub.
pub fn inbox_stream(agent: &str) -> String {
    format!("@inbox:{agent}")
}

/// A coordination request, with the type it answers.
pub trait Request: Into<CoordOp> + Send + 'static {
    /// What the request answers.
    type Output: Send + 'static;
    /// Takes the answer out of what the store ran (`None`: an answer of
    /// another kind, which would be a bug of the store).
    #[doc(hidden)]
    fn output(out: CoordOutput) -> Option<Self::Output>;
}

/// A coordination request as a value: a write or a read.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one value per call, moved once
pub enum CoordOp {
    /// A write.
    Write(CoordWrite),
    /// A read.
    Read(CoordRead),
}

/// A lock after [`Acquire`]: whether this request took it, and the lock
/// now (with its holder when another agent holds it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquisition {
    /// Whether this request took the lock.
    pub acquired: bool,
    /// The lock now.
    pub lock: Lock,
}

// ---- writes ----

/// Registers an agent (`already_exists` if the id is taken).
#[derive(Clone, Debug)]
pub struct Register(pub AgentSpec);

/// Updates an agent.
#[derive(Clone, Debug)]
pub struct UpdateAgent {
    /// The agent.
    pub id: String,
    /// What changes.
    pub patch: AgentPatch,
}

/// Unregisters an agent, releasing its locks.
#[derive(Clone, Debug)]
pub struct Unregister {
    /// The agent.
    pub id: String,
}

/// Makes `hash` (a SHA-256 of a token, hex) the agent's only token.
#[derive(Clone, Debug)]
pub struct SetToken {
    /// The agent.
    pub agent: String,
    /// The token's hash.
    pub hash: String,
}

/// Grants agents permissions on a context (replacing their grants).
#[derive(Clone, Debug)]
pub struct GrantAccess {
    /// The context.
    pub ctx: ContextId,
    /// The agents (each must be registered, unless `unregistered`).
    pub agents: Vec<String>,
    /// What they may do.
    pub permissions: Vec<Permission>,
    /// When the grants lapse, if ever.
    pub expires_at: Option<Timestamp>,
    /// Who grants.
    pub by: String,
    /// Whether agents not registered in ctxmesh may be granted access
    /// (identities that come from an OIDC provider); their grants are
    /// kept, and their inboxes get nothing until they register.
    pub unregistered: bool,
}

/// Revokes an agent's grant on a context.
#[derive(Clone, Debug)]
pub struct RevokeAccess {
    /// The context.
    pub ctx: ContextId,
    /// The agent.
    pub agent: String,
    /// Who revokes.
    pub by: String,
}

/// Creates a policy rule (`already_exists` if its id is taken).
#[derive(Clone, Debug)]
pub struct PutPolicy(pub PolicyRule);

/// Deletes a policy rule.
#[derive(Clone, Debug)]
pub struct DeletePolicy {
    /// The rule's id.
    pub id: String,
}

/// Appends access decisions to the audit log.
#[derive(Clone, Debug)]
pub struct AppendAudit(pub Vec<AuditRecord>);

/// Removes audit records older than `before`.
#[derive(Clone, Debug)]
pub struct TrimAudit {
    /// The cut-off.
    pub before: Timestamp,
}

/// Revokes every token of an agent.
#[derive(Clone, Debug)]
pub struct RevokeTokens {
    /// The agent.
    pub agent: String,
}

/// Renews an agent's lease (and revives a disconnected agent).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    /// The agent.
    pub id: String,
}

/// Takes a lock (or reports who holds it).
#[derive(Clone, Debug)]
pub struct Acquire {
    /// The context.
    pub ctx: ContextId,
    /// The lock's name.
    pub name: String,
    /// The agent taking it.
    pub agent: String,
    /// How long it holds it unless refreshed.
    pub ttl_ms: u64,
}

/// Releases a lock (holder only).
#[derive(Clone, Debug)]
pub struct Release {
    /// The context.
    pub ctx: ContextId,
    /// The lock's name.
    pub name: String,
    /// The holder.
    pub agent: String,
    /// The acquisition, if the caller names it.
    pub lock_id: Option<String>,
}

/// Extends a lock (holder only).
#[derive(Clone, Debug)]
pub struct Refresh {
    /// The context.
    pub ctx: ContextId,
    /// The lock's name.
    pub name: String,
    /// The holder.
    pub agent: String,
    /// The acquisition, if the caller names it.
    pub lock_id: Option<String>,
    /// The new TTL from now.
    pub ttl_ms: u64,
}

/// Requests a handoff.
#[derive(Clone, Debug)]
pub struct RequestHandoff {
    /// The agent handing over.
    pub source: String,
    /// What it hands over.
    pub request: HandoffRequest,
}

/// Accepts, rejects or completes a handoff.
#[derive(Clone, Debug)]
pub struct ActOnHandoff {
    /// The handoff.
    pub id: String,
    /// What to do.
    pub action: HandoffAction,
    /// Who does it.
    pub agent: String,
    /// A rejection reason or a completion result.
    pub outcome: Option<Value>,
}

/// Assigns a task.
#[derive(Clone, Debug)]
pub struct AssignTask {
    /// The context.
    pub ctx: ContextId,
    /// The task.
    pub request: TaskRequest,
    /// Who assigns it.
    pub by: String,
}

/// Completes a task (assignee only).
#[derive(Clone, Debug)]
pub struct CompleteTask {
    /// The task.
    pub id: String,
    /// Who completes it.
    pub agent: String,
    /// What it produced.
    pub output: Option<Value>,
}

/// A priority message to agents' inboxes (and, with a context, to its
/// log as well).
#[derive(Clone, Debug)]
pub struct SendMessage {
    /// The context it concerns, if any.
    pub ctx: Option<ContextId>,
    /// The recipients (each must be registered).
    pub agents: Vec<String>,
    /// The sender.
    pub from: String,
    /// Its priority.
    pub priority: Priority,
    /// Its payload (`{"topic", "body"}`).
    pub data: Value,
}

/// Disconnects an agent whose lease lapsed at `now` (sweeper).
#[derive(Clone, Debug)]
pub struct ExpireAgent {
    /// The agent.
    pub id: String,
    /// The sweep time.
    pub now: Timestamp,
}

/// Frees a lock whose TTL ran out at `now` (sweeper).
#[derive(Clone, Debug)]
pub struct ExpireLock {
    /// The context.
    pub ctx: String,
    /// The lock's name.
    pub name: String,
    /// The sweep time.
    pub now: Timestamp,
}

/// Expires a handoff whose deadline passed at `now` (sweeper).
#[derive(Clone, Debug)]
pub struct ExpireHandoff {
    /// The handoff.
    pub id: String,
    /// The sweep time.
    pub now: Timestamp,
}

/// Records a consensus that fell short as a pending conflict on `key`.
#[derive(Clone, Debug)]
pub struct Escalate {
    /// The context.
    pub ctx: ContextId,
    /// The entry the consensus was about.
    pub key: String,
    /// Who asked for the consensus.
    pub author: String,
    /// The candidate values, heaviest first.
    pub candidates: Vec<ctxmesh_core::conflict::Candidate>,
}

/// Resolves a pending conflict (see docs/conflicts.md).
#[derive(Clone, Debug)]
pub struct ResolveConflict {
    /// The context.
    pub ctx: ContextId,
    /// The conflict's id.
    pub id: String,
    /// What to keep.
    pub resolution: ctxmesh_core::conflict::Choice,
    /// The entry revision the resolution is based on (default: the
    /// conflict's `current_revision`).
    pub if_match: Option<u64>,
    /// Who resolves it.
    pub author: String,
    /// The entries the resolver may read and write, when not all.
    pub scope: Option<ctxmesh_core::txn::TxnScope>,
}

// ---- reads ----

/// One agent.
#[derive(Clone, Debug)]
pub struct GetAgent {
    /// The agent.
    pub id: String,
}

/// Agents by id.
#[derive(Clone, Debug)]
pub struct ListAgents(pub AgentQuery);

/// One lock (free and never taken locks too).
#[derive(Clone, Debug)]
pub struct GetLock {
    /// The context.
    pub ctx: ContextId,
    /// The lock's name.
    pub name: String,
}

/// The locks of a context ever taken, by name.
#[derive(Clone, Debug)]
pub struct ListLocks {
    /// The context.
    pub ctx: ContextId,
}

/// One handoff.
#[derive(Clone, Debug)]
pub struct GetHandoff {
    /// The handoff.
    pub id: String,
}

/// Handoffs by id.
#[derive(Clone, Debug)]
pub struct ListHandoffs(pub CoordQuery);

/// One task.
#[derive(Clone, Debug)]
pub struct GetTask {
    /// The task.
    pub id: String,
}

/// Tasks by id.
#[derive(Clone, Debug)]
pub struct ListTasks(pub CoordQuery);

/// An agent's inbox after a sequence number.
#[derive(Clone, Debug)]
pub struct ReadInbox {
    /// The agent.
    pub agent: String,
    /// Items after this sequence number.
    pub after: u64,
    /// Most items.
    pub limit: usize,
}

/// The last sequence number of an agent's inbox (0 when empty).
#[derive(Clone, Debug)]
pub struct InboxHead {
    /// The agent.
    pub agent: String,
}

/// Audit records.
#[derive(Clone, Debug)]
pub struct ReadAudit(pub AuditQuery);

/// Every policy rule, by id.
#[derive(Clone, Debug)]
pub struct ListPolicies;

/// The grants of a context.
#[derive(Clone, Debug)]
pub struct ListGrants {
    /// The context.
    pub ctx: ContextId,
}

/// The current grants of an agent, by context.
#[derive(Clone, Debug)]
pub struct SharedWith {
    /// The agent.
    pub agent: String,
}

/// What an agent may do on a context (`not_found` if the context is
/// missing).
#[derive(Clone, Debug)]
pub struct GetAccess {
    /// The context.
    pub ctx: ContextId,
    /// The agent.
    pub agent: String,
}

/// The agent a token hash belongs to (`not_found` if none).
#[derive(Clone, Debug)]
pub struct TokenOwner {
    /// The token's hash.
    pub hash: String,
}

/// The agents feed after a sequence number.
#[derive(Clone, Debug)]
pub struct ReadAgentsFeed {
    /// Items after this sequence number.
    pub after: u64,
    /// Most items.
    pub limit: usize,
}

/// The locks an agent holds.
#[derive(Clone, Debug)]
pub struct HeldLocks {
    /// The agent.
    pub agent: String,
}

/// What is due for the sweeper at `now`.
#[derive(Clone, Debug)]
pub struct DueAt {
    /// The sweep time.
    pub now: Timestamp,
}

/// Conflicts of a context, by id.
#[derive(Clone, Debug)]
pub struct ListConflicts {
    /// The context.
    pub ctx: ContextId,
    /// Only those in this status (all when `None`).
    pub status: Option<ctxmesh_core::conflict::ConflictStatus>,
    /// Ids after this one.
    pub after: String,
    /// Most items.
    pub limit: usize,
}

/// One conflict.
#[derive(Clone, Debug)]
pub struct GetConflict {
    /// The context.
    pub ctx: ContextId,
    /// The conflict's id.
    pub id: String,
}

/// A write of the coordination layer, as a value.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CoordWrite {
    /// Registers an agent (`already_exists` if the id is taken).
    Register(Register),
    /// Updates an agent.
    UpdateAgent(UpdateAgent),
    /// Unregisters an agent, releasing its locks.
    Unregister(Unregister),
    /// Makes `hash` (a SHA-256 of a token, hex) the agent's only token.
    SetToken(SetToken),
    /// Grants agents permissions on a context (replacing their grants).
    GrantAccess(GrantAccess),
    /// Revokes an agent's grant on a context.
    RevokeAccess(RevokeAccess),
    /// Creates a policy rule (`already_exists` if its id is taken).
    PutPolicy(PutPolicy),
    /// Deletes a policy rule.
    DeletePolicy(DeletePolicy),
    /// Appends access decisions to the audit log.
    AppendAudit(AppendAudit),
    /// Removes audit records older than `before`.
    TrimAudit(TrimAudit),
    /// Revokes every token of an agent.
    RevokeTokens(RevokeTokens),
    /// Renews an agent's lease (and revives a disconnected agent).
    Heartbeat(Heartbeat),
    /// Takes a lock (or reports who holds it).
    Acquire(Acquire),
    /// Releases a lock (holder only).
    Release(Release),
    /// Extends a lock (holder only).
    Refresh(Refresh),
    /// Requests a handoff.
    RequestHandoff(RequestHandoff),
    /// Accepts, rejects or completes a handoff.
    ActOnHandoff(ActOnHandoff),
    /// Assigns a task.
    AssignTask(AssignTask),
    /// Completes a task (assignee only).
    CompleteTask(CompleteTask),
    /// A priority message to agents' inboxes (and, with a context, to its
    /// log as well).
    SendMessage(SendMessage),
    /// Disconnects an agent whose lease lapsed at `now` (sweeper).
    ExpireAgent(ExpireAgent),
    /// Frees a lock whose TTL ran out at `now` (sweeper).
    ExpireLock(ExpireLock),
    /// Expires a handoff whose deadline passed at `now` (sweeper).
    ExpireHandoff(ExpireHandoff),
    /// Records a consensus that fell short as a pending conflict on `key`.
    Escalate(Escalate),
    /// Resolves a pending conflict (see docs/conflicts.md).
    ResolveConflict(ResolveConflict),
}

impl CoordWrite {
    /// The name writes are queued under on a node: the context for
    /// context-bound writes, else the object.
    pub(crate) fn queue(&self) -> String {
        match self {
            CoordWrite::Acquire(Acquire { ctx, .. })
            | CoordWrite::GrantAccess(GrantAccess { ctx, .. })
            | CoordWrite::RevokeAccess(RevokeAccess { ctx, .. })
            | CoordWrite::Release(Release { ctx, .. })
            | CoordWrite::Refresh(Refresh { ctx, .. })
            | CoordWrite::AssignTask(AssignTask { ctx, .. })
            | CoordWrite::ResolveConflict(ResolveConflict { ctx, .. })
            | CoordWrite::Escalate(Escalate { ctx, .. }) => ctx.as_str().to_owned(),
            CoordWrite::ExpireLock(ExpireLock { ctx, .. }) => ctx.clone(),
            CoordWrite::RequestHandoff(RequestHandoff { request, .. }) => request.context.clone(),
            CoordWrite::Register(Register(spec)) => format!("@agent:{}", spec.id),
            CoordWrite::SetToken(SetToken { agent: id, .. }) | CoordWrite::RevokeTokens(RevokeTokens { agent: id }) => {
                format!("@agent:{id}")
            }
            CoordWrite::UpdateAgent(UpdateAgent { id, .. })
            | CoordWrite::Unregister(Unregister { id })
            | CoordWrite::Heartbeat(Heartbeat { id })
            | CoordWrite::ExpireAgent(ExpireAgent { id, .. }) => format!("@agent:{id}"),
            CoordWrite::ActOnHandoff(ActOnHandoff { id, .. }) | CoordWrite::ExpireHandoff(ExpireHandoff { id, .. }) => {
                format!("@handoff:{id}")
            }
            CoordWrite::CompleteTask(CompleteTask { id, .. }) => format!("@task:{id}"),
            CoordWrite::AppendAudit(AppendAudit(_)) | CoordWrite::TrimAudit(TrimAudit { .. }) => "@audit".to_owned(),
            CoordWrite::PutPolicy(PutPolicy(_)) | CoordWrite::DeletePolicy(DeletePolicy { .. }) => {
                "@policies".to_owned()
            }
            CoordWrite::SendMessage(SendMessage { ctx: Some(ctx), .. }) => ctx.as_str().to_owned(),
            CoordWrite::SendMessage(SendMessage { agents, .. }) => format!("@message:{}", agents.join(",")),
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

/// Which audit records to read.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only this agent's.
    pub agent: Option<String>,
    /// Only about this context.
    pub context: Option<String>,
    /// Only allowed (true) or denied (false) decisions.
    pub allowed: Option<bool>,
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// Records after this position.
    pub after: u64,
    /// Most records.
    pub limit: usize,
}

/// A read of the coordination layer, as a value.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CoordRead {
    /// One agent.
    GetAgent(GetAgent),
    /// Agents by id.
    ListAgents(ListAgents),
    /// One lock (free and never taken locks too).
    GetLock(GetLock),
    /// The locks of a context ever taken, by name.
    ListLocks(ListLocks),
    /// One handoff.
    GetHandoff(GetHandoff),
    /// Handoffs by id.
    ListHandoffs(ListHandoffs),
    /// One task.
    GetTask(GetTask),
    /// Tasks by id.
    ListTasks(ListTasks),
    /// An agent's inbox after a sequence number.
    ReadInbox(ReadInbox),
    /// The last sequence number of an agent's inbox (0 when empty).
    InboxHead(InboxHead),
    /// Audit records.
    ReadAudit(ReadAudit),
    /// Every policy rule, by id.
    ListPolicies(ListPolicies),
    /// The grants of a context.
    ListGrants(ListGrants),
    /// The current grants of an agent, by context.
    SharedWith(SharedWith),
    /// What an agent may do on a context (`not_found` if the context is
    /// missing).
    GetAccess(GetAccess),
    /// The agent a token hash belongs to (`not_found` if none).
    TokenOwner(TokenOwner),
    /// The agents feed after a sequence number.
    ReadAgentsFeed(ReadAgentsFeed),
    /// The locks an agent holds.
    HeldLocks(HeldLocks),
    /// What is due for the sweeper at `now`.
    DueAt(DueAt),
    /// Conflicts of a context, by id.
    ListConflicts(ListConflicts),
    /// One conflict.
    GetConflict(GetConflict),
}

/// What the store ran answers, before [`Request::output`] types it.
#[doc(hidden)]
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
    /// One policy rule.
    Policy(Box<PolicyRule>),
    /// One event.
    Event(Box<Event>),
    /// A count (of records removed).
    Count(u64),
    /// An agent's access to a context.
    Access(Box<Access>),
    /// What the sweeper must do.
    Due(Due),
    /// Conflicts.
    Conflicts(Vec<ctxmesh_core::conflict::Conflict>),
    /// One conflict.
    Conflict(Box<ctxmesh_core::conflict::Conflict>),
    /// Nothing to return.
    Unit,
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

// ---- what each request answers ----

impl From<CoordWrite> for CoordOp {
    fn from(op: CoordWrite) -> Self {
        CoordOp::Write(op)
    }
}

impl From<CoordRead> for CoordOp {
    fn from(op: CoordRead) -> Self {
        CoordOp::Read(op)
    }
}

/// Implements [`Request`] for each request type: the enum that carries it
/// and the answers it takes out of a [`CoordOutput`].
macro_rules! requests {
    ($($op:ident :: $req:ident => $out:ty { $($pat:pat => $val:expr),+ $(,)? })*) => {$(
        impl From<$req> for CoordOp {
            fn from(request: $req) -> Self {
                CoordOp::from($op::$req(request))
            }
        }

        impl Request for $req {
            type Output = $out;
            fn output(out: CoordOutput) -> Option<$out> {
                match out {
                    $($pat => Some($val),)+
                    _ => None,
                }
            }
        }
    )*};
}

requests! {
    CoordWrite::Register => Agent { CoordOutput::Agent(a) => a }
    CoordWrite::UpdateAgent => Agent { CoordOutput::Agent(a) => a }
    CoordWrite::Unregister => () { CoordOutput::Unit => () }
    CoordWrite::SetToken => () { CoordOutput::Unit => () }
    CoordWrite::GrantAccess => Vec<Grant> { CoordOutput::Grants(g) => g }
    CoordWrite::RevokeAccess => () { CoordOutput::Unit => () }
    CoordWrite::PutPolicy => PolicyRule { CoordOutput::Policy(p) => *p }
    CoordWrite::DeletePolicy => () { CoordOutput::Unit => () }
    CoordWrite::AppendAudit => () { CoordOutput::Unit => () }
    CoordWrite::TrimAudit => u64 { CoordOutput::Count(n) => n }
    CoordWrite::RevokeTokens => () { CoordOutput::Unit => () }
    CoordWrite::Heartbeat => Agent { CoordOutput::Agent(a) => a }
    CoordWrite::Acquire => Acquisition { CoordOutput::Lock { acquired, lock } => Acquisition { acquired, lock } }
    CoordWrite::Release => Lock { CoordOutput::Lock { lock, .. } => lock }
    CoordWrite::Refresh => Lock { CoordOutput::Lock { lock, .. } => lock }
    CoordWrite::RequestHandoff => Handoff { CoordOutput::Handoff(h) => *h }
    CoordWrite::ActOnHandoff => Handoff { CoordOutput::Handoff(h) => *h }
    CoordWrite::AssignTask => Task { CoordOutput::Task(t) => *t }
    CoordWrite::CompleteTask => Task { CoordOutput::Task(t) => *t }
    CoordWrite::SendMessage => Event { CoordOutput::Event(e) => *e }
    CoordWrite::ExpireAgent => Option<Agent> { CoordOutput::Agent(a) => Some(a), CoordOutput::Unit => None }
    CoordWrite::ExpireLock => Option<Lock> { CoordOutput::Lock { lock, .. } => Some(lock), CoordOutput::Unit => None }
    CoordWrite::ExpireHandoff => Option<Handoff> { CoordOutput::Handoff(h) => Some(*h), CoordOutput::Unit => None }
    CoordWrite::Escalate => Conflict { CoordOutput::Conflict(c) => *c }
    CoordWrite::ResolveConflict => Conflict { CoordOutput::Conflict(c) => *c }
    CoordRead::GetAgent => Agent { CoordOutput::Agent(a) => a }
    CoordRead::ListAgents => (Vec<Agent>, bool) { CoordOutput::Agents(a, more) => (a, more) }
    CoordRead::GetLock => Lock { CoordOutput::Lock { lock, .. } => lock }
    CoordRead::ListLocks => Vec<Lock> { CoordOutput::Locks(l) => l }
    CoordRead::GetHandoff => Handoff { CoordOutput::Handoff(h) => *h }
    CoordRead::ListHandoffs => (Vec<Handoff>, bool) { CoordOutput::Handoffs(h, more) => (h, more) }
    CoordRead::GetTask => Task { CoordOutput::Task(t) => *t }
    CoordRead::ListTasks => (Vec<Task>, bool) { CoordOutput::Tasks(t, more) => (t, more) }
    CoordRead::ReadInbox => Vec<Event> { CoordOutput::Events(e) => e }
    CoordRead::InboxHead => u64 { CoordOutput::Head(n) => n }
    CoordRead::ReadAudit => Vec<AuditRecord> { CoordOutput::Audit(a) => a }
    CoordRead::ListPolicies => Vec<PolicyRule> { CoordOutput::Policies(p) => p }
    CoordRead::ListGrants => Vec<Grant> { CoordOutput::Grants(g) => g }
    CoordRead::SharedWith => Vec<Grant> { CoordOutput::Grants(g) => g }
    CoordRead::GetAccess => Access { CoordOutput::Access(a) => *a }
    CoordRead::TokenOwner => Agent { CoordOutput::Agent(a) => a }
    CoordRead::ReadAgentsFeed => Vec<Event> { CoordOutput::Events(e) => e }
    CoordRead::HeldLocks => Vec<Lock> { CoordOutput::Locks(l) => l }
    CoordRead::DueAt => Due { CoordOutput::Due(d) => d }
    CoordRead::ListConflicts => Vec<Conflict> { CoordOutput::Conflicts(c) => c }
    CoordRead::GetConflict => Conflict { CoordOutput::Conflict(c) => *c }
}
