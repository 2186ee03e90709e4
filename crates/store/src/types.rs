//! The values the [`crate::Store`] trait speaks in: read positions, page
//! requests and pages, history items, compaction reports, appended events,
//! durability modes. Plain data, no behaviour beyond parsing.

use ctxmesh_core::txn::ChangeKind;
use ctxmesh_core::{Entry, Timestamp};
use serde::{Deserialize, Serialize};

/// Which state a read sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAt {
    /// The current state (expired entries hidden).
    Latest,
    /// The state right after this revision.
    Revision(u64),
    /// The state after the last revision committed at or before this time.
    Time(Timestamp),
}

/// A page request over keys.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only keys starting with this string.
    pub prefix: String,
    /// Only keys after this one (exclusive).
    pub after_key: Option<String>,
    /// Most entries to return.
    pub limit: usize,
}

/// A page of entries, read at one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryPage {
    /// The entries, ordered by key.
    pub entries: Vec<Entry>,
    /// The revision the page was read at.
    pub revision: u64,
    /// Whether more entries follow the last one.
    pub more: bool,
}

/// One version of an entry in its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryVersion {
    /// The revision of this change.
    pub revision: u64,
    /// What happened: created, updated, deleted or expired.
    #[schema(value_type = String)]
    pub change: ChangeKind,
    /// The entry after the change; absent for deletions.
    pub entry: Option<Entry>,
}

/// A page request over revisions, newest first.
#[derive(Clone, Copy, Debug)]
pub struct HistoryQuery {
    /// Only revisions below this one (exclusive); `None` starts at the newest.
    pub before: Option<u64>,
    /// Most items to return.
    pub limit: usize,
}

/// What a compaction pass did to one context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Compaction {
    /// The context.
    pub context: String,
    /// History before this revision is gone.
    pub compacted_revision: u64,
    /// Versions removed.
    pub versions_removed: u64,
}

/// An event to append with [`crate::Store::append_event`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The event type, e.g. `message`.
    pub kind: String,
    /// The entry key it concerns, if any.
    pub key: Option<String>,
    /// Its priority.
    pub priority: Option<ctxmesh_core::Priority>,
    /// Its payload.
    pub data: Option<serde_json::Value>,
}

/// How durable an acknowledged write is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged after fsync.
    #[default]
    Full,
    /// Acknowledged after the write reaches the OS; survives a crash of the
    /// server process but not of the machine.
    Relaxed,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "full" => Ok(Durability::Full),
            "relaxed" => Ok(Durability::Relaxed),
            _ => Err(format!("unknown durability {s:?}: use full or relaxed")),
        }
    }
}

/// A file holding a consistent copy of the whole database, made by
/// [`crate::Store::snapshot`]; the file is removed when this is dropped.
#[derive(Debug)]
pub struct Snapshot {
    path: std::path::PathBuf,
    size: u64,
}

impl Snapshot {
    /// A snapshot in the file at `path`, of `size` bytes, removed on drop.
    pub fn new(path: std::path::PathBuf, size: u64) -> Self {
        Snapshot { path, size }
    }

    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a database snapshot");
        }
    }
}
