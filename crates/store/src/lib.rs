//! Storage for ctxmesh: the [`Store`] trait every backend implements, the
//! embedded SQLite backend, the PostgreSQL backend, and (behind the `conformance` feature) the
//! conformance suite that every backend must pass.
//!
//! Backends own atomicity, durability and ordering. The semantics of a write
//! (comparisons, versioning, events) come from `ctxmesh_core::txn`: a backend
//! locks the context, loads a snapshot, asks core for a plan and persists it.

use async_trait::async_trait;
use ctxmesh_core::context::{ContextInfo, ContextPatch, NewContext};
use ctxmesh_core::history::{Commit, DiffChange};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::{ChangeKind, TxnRequest, TxnResponse};
use ctxmesh_core::{Entry, Event, Timestamp};
use serde::{Deserialize, Serialize};

mod backend;
mod codec;
mod conflicts;
pub mod coord;
mod error;
pub mod faults;
mod mesh;
pub mod notify;
mod ops;
pub mod postgres;
mod precheck;
pub mod sqlite;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{DriverFailure, Result, StoreError};

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

/// A storage backend. Every method is atomic; writes are durable when they
/// return (unless the backend runs in a relaxed durability mode).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a context at revision 1 (`already_exists` if the id is taken).
    async fn create_context(&self, new: NewContext, author: &str) -> Result<ContextInfo>;
    /// Reads a context's settings and counters.
    async fn get_context(&self, id: &ContextId) -> Result<ContextInfo>;
    /// Lists contexts ordered by id, after `after` (exclusive).
    async fn list_contexts(&self, after: Option<&str>, limit: usize) -> Result<(Vec<ContextInfo>, bool)>;
    /// Replaces the given settings of a context.
    async fn update_context(&self, id: &ContextId, patch: ContextPatch) -> Result<ContextInfo>;
    /// Deletes a context with all its entries and history.
    async fn delete_context(&self, id: &ContextId) -> Result<()>;

    /// Runs a transaction on one context.
    async fn txn(&self, id: &ContextId, txn: TxnRequest, author: &str) -> Result<TxnResponse>;
    /// Reads one entry; also returns the revision the read saw.
    async fn get_entry(&self, id: &ContextId, key: &EntryKey, at: ReadAt) -> Result<(Option<Entry>, u64)>;
    /// Lists entries by key prefix.
    async fn list_entries(&self, id: &ContextId, at: ReadAt, query: &ListQuery) -> Result<EntryPage>;

    /// The versions of one entry, newest first.
    async fn entry_history(&self, id: &ContextId, key: &EntryKey, query: HistoryQuery) -> Result<Vec<EntryVersion>>;
    /// The commits of a context, newest first.
    async fn context_history(&self, id: &ContextId, query: HistoryQuery) -> Result<Vec<Commit>>;
    /// What changed between two revisions (`from` < `to`), ordered by key.
    async fn diff(&self, id: &ContextId, from: u64, to: u64) -> Result<Vec<DiffChange>>;
    /// Restores the state as of `to` as a new revision; returns that revision.
    async fn rollback(&self, id: &ContextId, to: u64, author: &str) -> Result<u64>;
    /// Creates `new_id` holding the entries of `id` as of `at`.
    async fn fork(&self, id: &ContextId, at: u64, new_id: &ContextId, author: &str) -> Result<ContextInfo>;
    /// Keyword search: keys of live entries whose text holds any of
    /// `terms` (lowercase words), best first, with their scores (BM25 on
    /// SQLite, `ts_rank_cd` on PostgreSQL).
    async fn search(&self, id: &ContextId, terms: &[String], limit: usize) -> Result<Vec<(String, f64)>>;
    /// The events of a context after revision `after`, oldest first: at
    /// least `limit` events when there are that many, and never part of a
    /// revision (its last revision is complete).
    async fn events(&self, id: &ContextId, after: u64, limit: usize) -> Result<Vec<Event>>;

    /// Removes every entry whose expiry is at or before `now`, one revision
    /// per context; returns how many entries were removed.
    async fn expire(&self, now: Timestamp) -> Result<u64>;
    /// Applies retention policies (one context, or all) as of `now`.
    async fn compact(&self, id: Option<&ContextId>, now: Timestamp) -> Result<Vec<Compaction>>;
    /// Appends one event that changes no entry (a message, and later lock,
    /// handoff and task events) as a revision of its own; returns it as
    /// logged. `kind` is the event type; the commit's kind is the same.
    async fn append_event(&self, id: &ContextId, event: NewEvent, author: &str) -> Result<Event>;
    /// Notifications of the revisions committed on `id` from now on, in
    /// revision order. The revision that was current when the subscription
    /// began may come first (a node that learns of commits by polling
    /// cannot tell whether it is new); subscribers skip what they have.
    fn subscribe(&self, id: &ContextId) -> tokio::sync::broadcast::Receiver<std::sync::Arc<notify::Committed>>;
    /// Notifications of a stream (an agent's inbox, `coord::inbox_stream`,
    /// or the agents feed): each carries one item, its `revision` the
    /// item's sequence number.
    fn subscribe_stream(&self, stream: &str) -> tokio::sync::broadcast::Receiver<std::sync::Arc<notify::Committed>>;
    /// Checks that the store answers.
    async fn ping(&self) -> Result<()>;

    /// A write of the coordination layer (agents, locks, handoffs, tasks).
    async fn coord_write(&self, op: coord::CoordWrite) -> Result<coord::CoordOutput>;
    /// A read of the coordination layer (and of inboxes and the agents feed).
    async fn coord_read(&self, op: coord::CoordRead) -> Result<coord::CoordOutput>;
    /// Disconnects agents whose lease lapsed (freeing their locks), frees
    /// locks whose TTL ran out, expires handoffs past their deadline.
    async fn sweep(&self, now: Timestamp) -> Result<coord::SweepReport>;
}

/// An event to append with [`Store::append_event`].
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

/// What [`open`] needs besides the URL.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The data directory (the default SQLite file lives there).
    pub data_dir: std::path::PathBuf,
    /// fsync on commit, or not.
    pub durability: Durability,
    /// Limits enforced on writes.
    pub limits: ctxmesh_core::Limits,
    /// Database connections per node (PostgreSQL).
    pub pool_size: usize,
}

/// Opens the store a URL names: `postgres://...` (or `postgresql://`),
/// `sqlite://PATH` (or a bare path), or, with no URL, `ctxmesh.db` in the
/// data directory. Returns the store and a description for the start-up
/// log (without credentials).
pub async fn open(url: Option<&str>, options: &OpenOptions) -> Result<(std::sync::Arc<dyn Store>, String)> {
    let path = match url {
        None | Some("") => options.data_dir.join("ctxmesh.db"),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let config = postgres::PostgresConfig {
                durability: options.durability,
                limits: options.limits.clone(),
                pool_size: options.pool_size,
                ..postgres::PostgresConfig::new(url)
            };
            let store = postgres::PostgresStore::connect(config).await?;
            return Ok((std::sync::Arc::new(store), format!("postgres {}", redact(url))));
        }
        Some(url) => match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Some(path) => std::path::PathBuf::from(path),
            None if !url.contains("://") => std::path::PathBuf::from(url),
            None => {
                return Err(StoreError::Unavailable(format!(
                    "unknown store URL {url:?}: use postgres://USER@HOST/DB, sqlite://PATH, \
                     or omit --store for the data directory"
                )));
            }
        },
    };
    let config = sqlite::SqliteConfig {
        path: path.clone(),
        durability: options.durability,
        limits: options.limits.clone(),
        readers: 8,
    };
    let store = sqlite::SqliteStore::open(config)?;
    Ok((std::sync::Arc::new(store), format!("sqlite {}", path.display())))
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
    }
}
