//! The [`Store`] trait: everything the server asks of storage. Every
//! backend gets it from the engine (`engine/`); nothing else implements it.

use async_trait::async_trait;
use ctxmesh_core::context::{ContextInfo, ContextPatch, NewContext};
use ctxmesh_core::history::{Commit, DiffChange};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::{TxnRequest, TxnResponse};
use ctxmesh_core::{Entry, Event, Timestamp};

use crate::coord;
use crate::error::Result;
use crate::notify;
use crate::types::{Compaction, EntryPage, EntryVersion, HistoryQuery, ListQuery, NewEvent, ReadAt, Snapshot};

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
    /// A consistent copy of the whole database in a new file beside it,
    /// made in one read transaction while writes go on (the embedded
    /// store); `None` when the backend makes none (PostgreSQL: its own
    /// tools do, see docs/backup.md).
    async fn snapshot(&self) -> Result<Option<Snapshot>>;

    /// A write of the coordination layer (agents, locks, handoffs, tasks).
    async fn coord_write(&self, op: coord::CoordWrite) -> Result<coord::CoordOutput>;
    /// A read of the coordination layer (and of inboxes and the agents feed).
    async fn coord_read(&self, op: coord::CoordRead) -> Result<coord::CoordOutput>;
    /// Disconnects agents whose lease lapsed (freeing their locks), frees
    /// locks whose TTL ran out, expires handoffs past their deadline.
    async fn sweep(&self, now: Timestamp) -> Result<coord::SweepReport>;
}

impl dyn Store {
    /// Runs a coordination request and answers its own type:
    /// `store.coord(Heartbeat { id })` answers the [`Agent`](ctxmesh_core::agent::Agent).
    pub async fn coord<R: coord::Request>(&self, request: R) -> Result<R::Output> {
        let out = match request.into() {
            coord::CoordOp::Write(op) => self.coord_write(op).await?,
            coord::CoordOp::Read(op) => self.coord_read(op).await?,
        };
        R::output(out)
            .ok_or_else(|| crate::error::StoreError::Backend("the store answered another kind of output".into()))
    }
}
