//! The bottom layer: [`Tx`], the primitive reads and writes of one
//! database transaction that every backend provides, and [`Object`], the
//! row shape of the coordination layer's objects. Everything above (the
//! operations in [`crate::ops`]) is written once over these, for every
//! backend.

use std::future::Future;

use ctxmesh_core::access::AuditRecord;
use ctxmesh_core::context::{ContextInfo, ContextSettings};
use ctxmesh_core::history::Commit;
use ctxmesh_core::txn::Plan;
use ctxmesh_core::{Entry, Event, Timestamp};

use crate::coord::AuditQuery;
use crate::error::Result;
use crate::notify::Committed;
use crate::types::EntryVersion;

/// One open database transaction of a backend.
///
/// Every method runs inside the transaction; the backend commits or rolls it
/// back when the operation built on it ends. Writes happen only after
/// [`Tx::lock_context`] on the context they change, which holds the context
/// until the transaction ends: that lock is what orders the revisions of a
/// context, on one node or many.
pub(crate) trait Tx: Send {
    /// Loads a context for reading, or `not_found`.
    fn context(&mut self, id: &str) -> impl Future<Output = Result<ContextInfo>> + Send;
    /// Loads a context and locks it for writing until the transaction ends.
    fn lock_context(&mut self, id: &str) -> impl Future<Output = Result<ContextInfo>> + Send;
    /// Contexts ordered by id, after `after` (exclusive).
    fn list_contexts(&mut self, after: &str, limit: usize) -> impl Future<Output = Result<Vec<ContextInfo>>> + Send;
    /// Inserts a new context row; `false` when the id is taken.
    fn insert_context(&mut self, info: &ContextInfo) -> impl Future<Output = Result<bool>> + Send;
    /// Replaces a context's settings.
    fn update_settings(
        &mut self,
        id: &str,
        settings: &ContextSettings,
        at: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a context and everything it holds.
    fn delete_context(&mut self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// The live entry at `key`, hidden when expired at `now`.
    fn entry_latest(
        &mut self,
        ctx: &str,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Entry>>> + Send;
    /// The entry at `key` as of revision `rev`.
    fn entry_at(&mut self, ctx: &str, key: &str, rev: u64) -> impl Future<Output = Result<Option<Entry>>> + Send;
    /// Live entries under `prefix` after key `after`, by key; with `now`,
    /// entries expired at `now` are hidden.
    fn list_latest(
        &mut self,
        ctx: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        now: Option<Timestamp>,
    ) -> impl Future<Output = Result<Vec<Entry>>> + Send;
    /// Entries under `prefix` after key `after` as of revision `rev`, by key.
    fn list_at(
        &mut self,
        ctx: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        rev: u64,
    ) -> impl Future<Output = Result<Vec<Entry>>> + Send;
    /// Keys of live entries expired at `now`, by key.
    fn expired_keys(&mut self, ctx: &str, now: Timestamp) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Contexts holding entries expired at `now`.
    fn contexts_with_expired(&mut self, now: Timestamp) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The last revision committed at or before `at`.
    fn last_revision_at(&mut self, ctx: &str, at: Timestamp) -> impl Future<Output = Result<Option<u64>>> + Send;
    /// The first revision committed at or after `at`.
    fn first_revision_since(&mut self, ctx: &str, at: Timestamp) -> impl Future<Output = Result<Option<u64>>> + Send;
    /// Versions of one entry below revision `before`, newest first.
    fn entry_versions(
        &mut self,
        ctx: &str,
        key: &str,
        before: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EntryVersion>>> + Send;
    /// Commits below revision `before`, newest first.
    fn commits(&mut self, ctx: &str, before: u64, limit: usize) -> impl Future<Output = Result<Vec<Commit>>> + Send;
    /// Keys changed in revisions `from + 1 ..= to`, by key.
    fn changed_keys(&mut self, ctx: &str, from: u64, to: u64) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Up to `limit` events after revision `after`, in log order.
    fn events(&mut self, ctx: &str, after: u64, limit: usize) -> impl Future<Output = Result<Vec<Event>>> + Send;
    /// The events of revision `rev` after the first `skip`, in log order.
    fn revision_events(&mut self, ctx: &str, rev: u64, skip: usize) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Writes the rows of `plan` (versions, entries, commit, events) and
    /// moves the context row to the plan's revision with `entry_count`.
    fn write_plan(&mut self, ctx: &str, plan: &Plan, entry_count: u64) -> impl Future<Output = Result<()>> + Send;
    /// Removes history before revision `point` (keeping what reading the
    /// state at `point` needs) and records `point` as the compaction point;
    /// returns the number of versions removed.
    fn remove_history_before(&mut self, ctx: &str, point: u64) -> impl Future<Output = Result<u64>> + Send;

    /// Keys of the live entries of `ctx` whose text holds any of `terms`
    /// (lowercase words), best first, with their keyword scores.
    fn search(
        &mut self,
        ctx: &str,
        terms: &[String],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, f64)>>> + Send;

    /// Revisions committed by this transaction, to publish once it commits.
    fn published(&mut self) -> &mut Vec<Committed>;

    /// One object; with `lock`, locked for writing until the transaction
    /// ends (a row lock on PostgreSQL).
    fn object(&mut self, kind: &str, id: &str, lock: bool) -> impl Future<Output = Result<Option<Object>>> + Send;
    /// Inserts or replaces an object.
    fn put_object(&mut self, object: &Object) -> impl Future<Output = Result<()>> + Send;
    /// Deletes an object (nothing if absent).
    fn delete_object(&mut self, kind: &str, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Objects of `kind` matching `filter` with ids after `after`, by id.
    fn objects(
        &mut self,
        kind: &str,
        filter: &ObjectFilter,
        after: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Object>>> + Send;
    /// Ids of the objects of `kind` due at `now` (`due_at <= now`), by id.
    fn due_objects(&mut self, kind: &str, now: Timestamp) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Deletes every object of a context (it was deleted).
    fn delete_context_objects(&mut self, ctx: &str) -> impl Future<Output = Result<()>> + Send;
    /// Appends events to a stream (an inbox, the agents feed), each taking
    /// the stream's next sequence number; returns them numbered. Appends to
    /// one stream are serialized until the transaction ends.
    fn append_stream(&mut self, stream: &str, events: Vec<Event>) -> impl Future<Output = Result<Vec<Event>>> + Send;
    /// Up to `limit` events of a stream after sequence number `after`.
    fn stream(&mut self, stream: &str, after: u64, limit: usize) -> impl Future<Output = Result<Vec<Event>>> + Send;
    /// The last sequence number of a stream (0 when empty).
    fn stream_head(&mut self, stream: &str) -> impl Future<Output = Result<u64>> + Send;

    /// Appends access decisions to the audit log (numbering them).
    fn append_audit(&mut self, records: &[AuditRecord]) -> impl Future<Output = Result<()>> + Send;
    /// Audit records after `after` matching `query`, oldest first.
    fn audit(&mut self, query: &AuditQuery) -> impl Future<Output = Result<Vec<AuditRecord>>> + Send;
    /// Removes audit records older than `before`; returns how many.
    fn trim_audit(&mut self, before: Timestamp) -> impl Future<Output = Result<u64>> + Send;
}

/// A stored object of the coordination layer (agent, lock, handoff, task):
/// a JSON body plus the columns it is looked up by.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Object {
    pub(crate) kind: String,
    pub(crate) id: String,
    /// The context it belongs to.
    pub(crate) ctx: Option<String>,
    /// The agent it belongs to (holder, target, assignee).
    pub(crate) owner: Option<String>,
    /// Its state, for filtering.
    pub(crate) state: Option<String>,
    /// When the sweeper must look at it (lease, TTL, deadline).
    pub(crate) due_at: Option<Timestamp>,
    /// The object as JSON.
    pub(crate) body: String,
}

/// Which objects to list; `None` matches any.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjectFilter {
    pub(crate) ctx: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) state: Option<String>,
}
