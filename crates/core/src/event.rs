//! Events: what a committed change appends to the context's event log.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::entry::Priority;

/// Event type names (DESIGN.md section 2).
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
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}
