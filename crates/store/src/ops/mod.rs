//! The operations, written once over [`Tx`] for every backend, one module
//! per kind of thing stored:
//!
//! - [`entries`]: contexts and their entries, history, expiry, compaction;
//! - [`agents`], [`access`], [`locks`], [`work`] (handoffs, tasks,
//!   messages), [`conflicts`]: the coordination layer;
//! - [`broadcast`]: routing high-priority writes to the agents they concern;
//! - [`precheck`]: refusing stale writes before they reach the writer;
//! - [`streams`] and [`env`]: what the others share.
//!
//! Here, every operation is also a value ([`WriteOp`], [`ReadOp`]) that a
//! backend can queue, batch and send to wherever it runs them, and
//! [`write`] and [`read`] run one inside a transaction. A backend opens the
//! transaction, runs one of these, and commits (publishing what
//! [`Tx::published`] collected) or rolls back.
//!
//! Lock order, so that two transactions never wait on each other in a
//! cycle: a context's row first, then objects, then stream heads (in name
//! order). Events of a context take a revision of its log; events directed
//! at an agent are also appended to its inbox (`@inbox:<agent>`), and agent
//! lifecycle events go to the agents feed (`@agents`). Both are streams
//! with their own sequence numbers, published to watchers like revisions.

use ctxmesh_core::context::{ContextInfo, ContextPatch, NewContext};
use ctxmesh_core::history::{Commit, DiffChange};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::{TxnRequest, TxnResponse};
use ctxmesh_core::{Entry, Event, Timestamp};

use crate::clock::Clock;
use crate::coord::{CoordOutput, CoordRead, CoordWrite};
use crate::error::Result;
use crate::tx::Tx;
use crate::types::{Compaction, EntryPage, EntryVersion, HistoryQuery, ListQuery, NewEvent, ReadAt};

pub(crate) mod access;
pub(crate) mod agents;
pub(crate) mod broadcast;
pub(crate) mod conflicts;
pub(crate) mod due;
pub(crate) mod entries;
pub(crate) mod env;
pub(crate) mod locks;
pub(crate) mod precheck;
pub(crate) mod streams;
pub(crate) mod work;

pub(crate) use env::{Env, SYSTEM_AGENT};

/// A write, as a value that a backend can queue and batch.
pub(crate) enum WriteOp {
    CreateContext {
        new: NewContext,
        author: String,
    },
    UpdateContext {
        id: ContextId,
        patch: ContextPatch,
    },
    DeleteContext {
        id: ContextId,
    },
    Txn {
        id: ContextId,
        txn: TxnRequest,
        author: String,
    },
    Rollback {
        id: ContextId,
        to: u64,
        author: String,
    },
    Fork {
        id: ContextId,
        at: u64,
        new_id: ContextId,
        author: String,
    },
    AppendEvent {
        id: ContextId,
        event: NewEvent,
        author: String,
    },
    /// Removes the expired entries of one context.
    Expire {
        id: String,
        now: Timestamp,
    },
    /// Applies the retention policy of one context.
    Compact {
        id: String,
        now: Timestamp,
    },
    /// Agents, locks, handoffs, tasks.
    Coord(CoordWrite),
}

impl WriteOp {
    /// What the write is queued under on a node: the context whose row it
    /// locks (for a fork: the new one), or the object it changes.
    pub(crate) fn queue(&self) -> String {
        match self {
            WriteOp::CreateContext { new, .. } => new.id.as_str().to_owned(),
            WriteOp::UpdateContext { id, .. }
            | WriteOp::DeleteContext { id }
            | WriteOp::Txn { id, .. }
            | WriteOp::Rollback { id, .. }
            | WriteOp::AppendEvent { id, .. } => id.as_str().to_owned(),
            WriteOp::Fork { new_id, .. } => new_id.as_str().to_owned(),
            WriteOp::Expire { id, .. } | WriteOp::Compact { id, .. } => id.clone(),
            WriteOp::Coord(op) => op.queue(),
        }
    }
}

/// What a write returns.
#[allow(clippy::large_enum_variant)] // one value per job, moved once
pub(crate) enum WriteOutput {
    Context(ContextInfo),
    Txn(TxnResponse),
    Revision(u64),
    Count(u64),
    Compaction(Option<Compaction>),
    Event(Event),
    Coord(CoordOutput),
    Unit,
}

/// Runs one write inside `tx`. The write is borrowed, so that a backend
/// can run it again (see the SQLite writer's batches).
pub(crate) async fn write(tx: &mut impl Tx, env: Env<'_>, op: &WriteOp) -> Result<WriteOutput> {
    Ok(match op {
        WriteOp::CreateContext { new, author } => {
            WriteOutput::Context(entries::create_context(tx, env, new.clone(), author).await?)
        }
        WriteOp::UpdateContext { id, patch } => {
            WriteOutput::Context(entries::update_context(tx, env, id, patch.clone()).await?)
        }
        WriteOp::DeleteContext { id } => {
            entries::delete_context(tx, env, id).await?;
            WriteOutput::Unit
        }
        WriteOp::Txn { id, txn: request, author } => {
            WriteOutput::Txn(entries::txn(tx, env, id, request, author).await?)
        }
        WriteOp::Rollback { id, to, author } => {
            WriteOutput::Revision(entries::rollback(tx, env, id, *to, author).await?)
        }
        WriteOp::Fork { id, at, new_id, author } => {
            WriteOutput::Context(entries::fork(tx, env, id, *at, new_id, author).await?)
        }
        WriteOp::AppendEvent { id, event, author } => {
            WriteOutput::Event(entries::append_event(tx, env, id, event.clone(), author).await?)
        }
        WriteOp::Expire { id, now } => WriteOutput::Count(entries::expire_context(tx, id, *now).await?),
        WriteOp::Compact { id, now } => WriteOutput::Compaction(entries::compact_context(tx, id, *now).await?),
        WriteOp::Coord(op) => WriteOutput::Coord(coord_write(tx, env, op.clone()).await?),
    })
}

/// A read, as a value that a backend can send to wherever it reads.
pub(crate) enum ReadOp {
    GetContext {
        id: ContextId,
    },
    ListContexts {
        after: Option<String>,
        limit: usize,
    },
    GetEntry {
        id: ContextId,
        key: EntryKey,
        at: ReadAt,
    },
    ListEntries {
        id: ContextId,
        at: ReadAt,
        query: ListQuery,
    },
    EntryHistory {
        id: ContextId,
        key: EntryKey,
        query: HistoryQuery,
    },
    ContextHistory {
        id: ContextId,
        query: HistoryQuery,
    },
    Diff {
        id: ContextId,
        from: u64,
        to: u64,
    },
    Events {
        id: ContextId,
        after: u64,
        limit: usize,
    },
    /// Keyword search of a context's live entries.
    Search {
        id: ContextId,
        terms: Vec<String>,
        limit: usize,
    },
    /// Contexts holding entries expired at `now`.
    ExpiredContexts {
        now: Timestamp,
    },
    /// Contexts with a bounded retention policy.
    RetainedContexts,
    /// Agents, locks, handoffs, tasks, inboxes.
    Coord(CoordRead),
    /// A guarded write checked against the committed state.
    Precheck {
        id: ContextId,
        txn: Box<TxnRequest>,
        author: String,
        checks: std::sync::Arc<precheck::Prechecks>,
    },
}

/// What a read returns.
#[allow(clippy::large_enum_variant)] // one value per read, moved once
pub(crate) enum ReadOutput {
    Context(ContextInfo),
    Contexts((Vec<ContextInfo>, bool)),
    Entry((Option<Entry>, u64)),
    Page(EntryPage),
    Versions(Vec<EntryVersion>),
    Commits(Vec<Commit>),
    Diff(Vec<DiffChange>),
    Events(Vec<Event>),
    Ids(Vec<String>),
    Hits(Vec<(String, f64)>),
    Coord(CoordOutput),
    /// The answer to a write refused on the committed state, and the
    /// context as read.
    Refused((Option<TxnResponse>, Box<ContextInfo>)),
}

/// Runs one read inside `tx`.
pub(crate) async fn read(tx: &mut impl Tx, clock: &dyn Clock, op: ReadOp) -> Result<ReadOutput> {
    Ok(match op {
        ReadOp::GetContext { id } => ReadOutput::Context(tx.context(id.as_str()).await?),
        ReadOp::ListContexts { after, limit } => {
            ReadOutput::Contexts(entries::list_contexts(tx, after.as_deref(), limit).await?)
        }
        ReadOp::GetEntry { id, key, at } => ReadOutput::Entry(entries::get_entry(tx, clock, &id, &key, at).await?),
        ReadOp::ListEntries { id, at, query } => {
            ReadOutput::Page(entries::list_entries(tx, clock, &id, at, &query).await?)
        }
        ReadOp::EntryHistory { id, key, query } => {
            ReadOutput::Versions(entries::entry_history(tx, &id, &key, query).await?)
        }
        ReadOp::ContextHistory { id, query } => ReadOutput::Commits(entries::context_history(tx, &id, query).await?),
        ReadOp::Diff { id, from, to } => ReadOutput::Diff(entries::diff(tx, &id, from, to).await?),
        ReadOp::Events { id, after, limit } => ReadOutput::Events(entries::events(tx, &id, after, limit).await?),
        ReadOp::Search { id, terms, limit } => {
            tx.context(id.as_str()).await?;
            let hits = if terms.is_empty() { Vec::new() } else { tx.search(id.as_str(), &terms, limit).await? };
            ReadOutput::Hits(hits)
        }
        ReadOp::ExpiredContexts { now } => ReadOutput::Ids(tx.contexts_with_expired(now).await?),
        ReadOp::RetainedContexts => ReadOutput::Ids(entries::contexts_with_retention(tx).await?),
        ReadOp::Coord(op) => ReadOutput::Coord(coord_read(tx, clock, op).await?),
        ReadOp::Precheck { id, txn, author, checks } => {
            let (refused, ctx) = entries::precheck(tx, checks.env(), &id, &txn, &author).await?;
            ReadOutput::Refused((refused, Box::new(ctx)))
        }
    })
}

/// Runs one coordination write inside `tx`.
async fn coord_write(tx: &mut impl Tx, env: Env<'_>, op: CoordWrite) -> Result<CoordOutput> {
    match op {
        CoordWrite::Escalate(r) => conflicts::escalate(tx, env, r).await,
        CoordWrite::ResolveConflict(r) => conflicts::resolve_conflict(tx, env, r).await,
        CoordWrite::Register(r) => agents::register(tx, env, r).await,
        CoordWrite::UpdateAgent(r) => agents::update_agent(tx, env, r).await,
        CoordWrite::Heartbeat(r) => agents::heartbeat(tx, env, r).await,
        CoordWrite::SetToken(r) => agents::set_token(tx, env, r).await,
        CoordWrite::GrantAccess(r) => access::grant_access(tx, env, r).await,
        CoordWrite::RevokeAccess(r) => access::revoke_access(tx, env, r).await,
        CoordWrite::PutPolicy(r) => access::put_policy(tx, env, r).await,
        CoordWrite::DeletePolicy(r) => access::delete_policy(tx, env, r).await,
        CoordWrite::AppendAudit(r) => access::append_audit(tx, env, r).await,
        CoordWrite::TrimAudit(r) => access::trim_audit(tx, env, r).await,
        CoordWrite::RevokeTokens(r) => agents::revoke_tokens(tx, env, r).await,
        CoordWrite::Unregister(r) => agents::unregister(tx, env, r).await,
        CoordWrite::ExpireAgent(r) => agents::expire_agent(tx, env, r).await,
        CoordWrite::Acquire(r) => locks::acquire(tx, env, r).await,
        CoordWrite::Release(r) => locks::release(tx, env, r).await,
        CoordWrite::Refresh(r) => locks::refresh(tx, env, r).await,
        CoordWrite::ExpireLock(r) => locks::expire_lock(tx, env, r).await,
        CoordWrite::RequestHandoff(r) => work::request_handoff(tx, env, r).await,
        CoordWrite::ActOnHandoff(r) => work::act_on_handoff(tx, env, r).await,
        CoordWrite::ExpireHandoff(r) => work::expire_handoff(tx, env, r).await,
        CoordWrite::AssignTask(r) => work::assign_task(tx, env, r).await,
        CoordWrite::SendMessage(r) => work::send_message(tx, env, r).await,
        CoordWrite::CompleteTask(r) => work::complete_task(tx, env, r).await,
    }
}

/// Runs one coordination read inside `tx`.
async fn coord_read(tx: &mut impl Tx, clock: &dyn Clock, op: CoordRead) -> Result<CoordOutput> {
    match op {
        CoordRead::GetAgent(r) => agents::get_agent(tx, clock, r).await,
        CoordRead::ListAgents(r) => agents::list_agents(tx, clock, r).await,
        CoordRead::GetLock(r) => locks::get_lock(tx, clock, r).await,
        CoordRead::ListLocks(r) => locks::list_locks(tx, clock, r).await,
        CoordRead::GetHandoff(r) => work::get_handoff(tx, clock, r).await,
        CoordRead::ListHandoffs(r) => work::list_handoffs(tx, clock, r).await,
        CoordRead::GetTask(r) => work::get_task(tx, clock, r).await,
        CoordRead::ListTasks(r) => work::list_tasks(tx, clock, r).await,
        CoordRead::ReadInbox(r) => agents::read_inbox(tx, clock, r).await,
        CoordRead::InboxHead(r) => agents::inbox_head(tx, clock, r).await,
        CoordRead::ReadAudit(r) => access::read_audit(tx, clock, r).await,
        CoordRead::ListPolicies(r) => access::list_policies(tx, clock, r).await,
        CoordRead::ListGrants(r) => access::list_grants(tx, clock, r).await,
        CoordRead::SharedWith(r) => access::shared_with(tx, clock, r).await,
        CoordRead::GetAccess(r) => access::get_access(tx, clock, r).await,
        CoordRead::TokenOwner(r) => agents::token_owner(tx, clock, r).await,
        CoordRead::HeldLocks(r) => locks::held_locks(tx, clock, r).await,
        CoordRead::ListConflicts(r) => conflicts::list_conflicts(tx, clock, r).await,
        CoordRead::GetConflict(r) => conflicts::get_conflict(tx, clock, r).await,
        CoordRead::ReadAgentsFeed(r) => agents::read_agents_feed(tx, clock, r).await,
        CoordRead::DueAt(r) => due::due_at(tx, clock, r).await,
    }
}
