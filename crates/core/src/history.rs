//! History records: commits and diffs between revisions.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::entry::Entry;

/// What kind of operation made a commit.
pub mod commit_kinds {
    /// Context creation (revision 1).
    pub const CREATE: &str = "create";
    /// A transaction of several operations.
    pub const TXN: &str = "txn";
    /// A write of one entry (`PUT`, or a transaction whose one write is a put).
    pub const PUT: &str = "put";
    /// A patch of one entry.
    pub const PATCH: &str = "patch";
    /// A deletion of one entry.
    pub const DELETE: &str = "delete";
    /// A deletion of every entry under a prefix.
    pub const DELETE_PREFIX: &str = "delete_prefix";
    /// Removal of expired entries.
    pub const EXPIRE: &str = "expire";
    /// A rollback to an earlier revision.
    pub const ROLLBACK: &str = "rollback";
    /// Creation of a context by forking another.
    pub const FORK: &str = "fork";
}

/// One committed revision of a context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Commit {
    /// The revision.
    pub revision: u64,
    /// Who committed it.
    pub author: String,
    /// Commit time.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `create`; `put`, `patch`, `delete` or `delete_prefix` (a commit of
    /// that one write); `txn` (a transaction of several writes);
    /// `expire`, `rollback` or `fork`.
    pub kind: String,
    /// Keys changed by the commit.
    pub keys: Vec<String>,
}

/// How a key differs between two revisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// Absent at `from`, present at `to`.
    Added,
    /// Present at `from`, absent at `to`.
    Removed,
    /// Present at both, value or metadata changed.
    Modified,
}

/// One key's change between two revisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiffChange {
    /// The key.
    pub key: String,
    /// The kind of change.
    pub change: DiffKind,
    /// The entry at `from`, if present.
    pub before: Option<Entry>,
    /// The entry at `to`, if present.
    pub after: Option<Entry>,
}

impl DiffChange {
    /// Compares two states of one key; `None` when both are absent or hold
    /// the same value and metadata (a rollback that restores a value is no
    /// change between the two revisions).
    pub fn between(key: &str, before: Option<Entry>, after: Option<Entry>) -> Option<DiffChange> {
        let change = match (&before, &after) {
            (None, None) => return None,
            (None, Some(_)) => DiffKind::Added,
            (Some(_), None) => DiffKind::Removed,
            (Some(b), Some(a)) if a.same_content(b) => return None,
            (Some(_), Some(_)) => DiffKind::Modified,
        };
        Some(DiffChange { key: key.to_owned(), change, before, after })
    }
}

/// The value of an entry in an event payload, unless it is too large.
pub fn event_value(value: &Value) -> Option<Value> {
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
    (size <= crate::event::MAX_EVENT_VALUE_BYTES).then(|| value.clone())
}
