//! Events: what a committed change appends to the context's event log.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::entry::Priority;

/// Event type names (docs/api.md, "History and time travel").
pub mod types {
    /// A context was created (revision 1).
    pub const CONTEXT_CREATED: &str = "context.created";
    /// One entry changed: created, updated, deleted or expired.
    pub const CONTEXT_UPDATED: &str = "context.updated";
    /// The context was deleted.
    pub const CONTEXT_DELETED: &str = "context.deleted";
    /// The context was rolled back to an earlier revision.
    pub const CONTEXT_ROLLED_BACK: &str = "context.rolled_back";
    /// A priority message to the context's subscribers.
    pub const MESSAGE: &str = "message";
    /// A context was shared with agents (a grant).
    pub const CONTEXT_SHARED: &str = "context.shared";
    /// An agent's grant on a context was revoked.
    pub const CONTEXT_REVOKED: &str = "context.revoked";
    /// A lock was taken.
    pub const LOCK_ACQUIRED: &str = "lock.acquired";
    /// A lock was released by its holder.
    pub const LOCK_RELEASED: &str = "lock.released";
    /// A lock's TTL (or its holder's lease) ran out.
    pub const LOCK_EXPIRED: &str = "lock.expired";
    /// A handoff was requested.
    pub const HANDOFF_REQUESTED: &str = "handoff.requested";
    /// The target accepted a handoff.
    pub const HANDOFF_ACCEPTED: &str = "handoff.accepted";
    /// The target rejected a handoff.
    pub const HANDOFF_REJECTED: &str = "handoff.rejected";
    /// The target completed a handoff.
    pub const HANDOFF_COMPLETED: &str = "handoff.completed";
    /// A handoff's deadline passed unanswered.
    pub const HANDOFF_EXPIRED: &str = "handoff.expired";
    /// A task was assigned.
    pub const TASK_ASSIGNED: &str = "task.assigned";
    /// A task was completed.
    pub const TASK_COMPLETED: &str = "task.completed";
    /// An agent registered.
    pub const AGENT_REGISTERED: &str = "agent.registered";
    /// An agent's lease lapsed.
    pub const AGENT_DISCONNECTED: &str = "agent.disconnected";
    /// An agent unregistered.
    pub const AGENT_UNREGISTERED: &str = "agent.unregistered";
    /// A high-impact entry routed to an agent for which it is relevant.
    pub const CONTEXT_BROADCAST: &str = "context.broadcast";
    /// A stale write met its conflict policy.
    pub const CONFLICT_DETECTED: &str = "conflict.detected";
    /// A pending conflict was resolved.
    pub const CONFLICT_RESOLVED: &str = "conflict.resolved";
}

/// Values larger than this (serialized) are left out of event payloads;
/// readers fetch the entry at the event's revision instead.
pub const MAX_EVENT_VALUE_BYTES: usize = 64 * 1024;

/// One event of a context's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// The event type, e.g. `context.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The context id.
    pub context: String,
    /// The revision that appended the event.
    pub revision: u64,
    /// The entry key, for entry events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Commit time.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The agent whose action appended the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The priority of the entry or message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Type-specific payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// For an item of an agent's inbox or of the agents feed: its position
    /// in that stream (the context's `revision` says where it came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}
