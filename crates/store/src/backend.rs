//! What a backend provides: [`Tx`], the primitive reads and writes of one
//! database transaction. The semantics built on them (planning, expiry,
//! rollback, compaction, reads at a revision) live once, in [`crate::ops`],
//! for every backend.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use ctxmesh_core::context::{ContextInfo, ContextSettings};
use ctxmesh_core::coord::AuditRecord;
use ctxmesh_core::history::Commit;
use ctxmesh_core::schema::CompiledSchemas;
use ctxmesh_core::txn::Plan;
use ctxmesh_core::{Entry, Event, Timestamp};
use serde_json::Value;

use crate::notify::{Committed, Hub};
use crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};
use crate::{EntryVersion, Result};

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

/// A stored object of the coordination layer (agent, lock, handoff, task):
/// a JSON body plus the columns it is looked up by.
#[derive(Clone, Debug, PartialEq)]
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

/// Compiled schemas by context, reused while a context's schemas stay the
/// same (compiling a JSON Schema costs far more than comparing one).
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    compiled: Mutex<HashMap<String, Compiled>>,
}

/// A context's schemas as stored, and compiled.
type Compiled = (BTreeMap<String, Value>, Arc<CompiledSchemas>);

impl SchemaCache {
    /// The compiled schemas of `ctx`.
    pub(crate) fn get(&self, ctx: &ContextInfo) -> Result<Arc<CompiledSchemas>> {
        let schemas = &ctx.settings.schemas;
        if let Some((source, compiled)) = self.lock().get(&ctx.id)
            && source == schemas
        {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(CompiledSchemas::compile(schemas)?);
        self.lock().insert(ctx.id.clone(), (schemas.clone(), compiled.clone()));
        Ok(compiled)
    }

    /// Forgets a context (deleted).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Compiled>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a backend does with operations as values: where it runs them, in
/// which transactions, and how it batches them. [`impl_store!`] builds the
/// [`crate::Store`] implementation on top.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// Runs a write in a transaction that locks its context; returns after
    /// the transaction committed (durably) and its revisions were published.
    async fn write(&self, op: WriteOp) -> Result<WriteOutput>;
    /// Runs a read on one consistent snapshot.
    async fn read(&self, op: ReadOp) -> Result<ReadOutput>;
    /// The notification hub of this node.
    fn hub(&self) -> &Hub;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;
    /// The stale-write checks of this node (see [`crate::precheck`]).
    fn prechecks(&self) -> &Arc<crate::precheck::Prechecks>;
    /// The writer's refusal of `txn`, from a copy of the committed state
    /// this node holds in memory, when it holds what that takes.
    fn refuse_in_memory(
        &self,
        _id: &ctxmesh_core::ids::ContextId,
        _txn: &ctxmesh_core::txn::TxnRequest,
        _author: &str,
    ) -> Option<ctxmesh_core::txn::TxnResponse> {
        None
    }
}

/// The error for an output of the wrong kind (a bug).
pub(crate) fn unexpected_output() -> crate::StoreError {
    crate::StoreError::Backend("the backend returned an unexpected output".into())
}

/// Takes the value out of one variant of an output enum.
macro_rules! output {
    ($result:expr, $variant:path) => {
        match $result? {
            $variant(value) => Ok(value),
            _ => Err($crate::backend::unexpected_output()),
        }
    };
}
pub(crate) use output;

/// Implements [`crate::Store`] for a [`Backend`]: every method becomes one
/// operation value, written or read by the backend.
macro_rules! impl_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::Store for $ty {
            async fn create_context(
                &self,
                new: ctxmesh_core::context::NewContext,
                author: &str,
            ) -> $crate::Result<ctxmesh_core::context::ContextInfo> {
                use $crate::ops::{WriteOp, WriteOutput};
                let op = WriteOp::CreateContext { new, author: author.to_owned() };
                $crate::backend::output!(self.write(op).await, WriteOutput::Context)
            }

            async fn get_context(
                &self,
                id: &ctxmesh_core::ids::ContextId,
            ) -> $crate::Result<ctxmesh_core::context::ContextInfo> {
                use $crate::ops::{ReadOp, ReadOutput};
                $crate::backend::output!(self.read(ReadOp::GetContext { id: id.clone() }).await, ReadOutput::Context)
            }

            async fn list_contexts(
                &self,
                after: Option<&str>,
                limit: usize,
            ) -> $crate::Result<(Vec<ctxmesh_core::context::ContextInfo>, bool)> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::ListContexts { after: after.map(str::to_owned), limit };
                $crate::backend::output!(self.read(op).await, ReadOutput::Contexts)
            }

            async fn update_context(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                patch: ctxmesh_core::context::ContextPatch,
            ) -> $crate::Result<ctxmesh_core::context::ContextInfo> {
                use $crate::ops::{WriteOp, WriteOutput};
                let op = WriteOp::UpdateContext { id: id.clone(), patch };
                $crate::backend::output!(self.write(op).await, WriteOutput::Context)
            }

            async fn delete_context(&self, id: &ctxmesh_core::ids::ContextId) -> $crate::Result<()> {
                self.write($crate::ops::WriteOp::DeleteContext { id: id.clone() }).await.map(|_| ())
            }

            async fn txn(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                txn: ctxmesh_core::txn::TxnRequest,
                author: &str,
            ) -> $crate::Result<ctxmesh_core::txn::TxnResponse> {
                use $crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};
                let checks = self.prechecks();
                if checks.wanted(id.as_str(), &txn) {
                    if let Some(refused) = self.refuse_in_memory(id, &txn, author) {
                        metrics::counter!("ctxmesh_stale_writes_refused_early_total", "from" => "memory").increment(1);
                        checks.record(id.as_str(), true);
                        return Ok(refused);
                    }
                    let op = ReadOp::Precheck {
                        id: id.clone(),
                        txn: Box::new(txn.clone()),
                        author: author.to_owned(),
                        checks: checks.clone(),
                    };
                    // Anything but a refusal (an error too) is the writer's to answer.
                    if let Ok((Some(refused), _)) = $crate::backend::output!(self.read(op).await, ReadOutput::Refused) {
                        metrics::counter!("ctxmesh_stale_writes_refused_early_total", "from" => "read").increment(1);
                        checks.record(id.as_str(), true);
                        return Ok(refused);
                    }
                }
                let guarded = $crate::precheck::guarded(&txn);
                let op = WriteOp::Txn { id: id.clone(), txn, author: author.to_owned() };
                let response = $crate::backend::output!(self.write(op).await, WriteOutput::Txn)?;
                if guarded {
                    checks.record(id.as_str(), !response.succeeded);
                }
                Ok(response)
            }

            async fn get_entry(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                key: &ctxmesh_core::ids::EntryKey,
                at: $crate::ReadAt,
            ) -> $crate::Result<(Option<ctxmesh_core::Entry>, u64)> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::GetEntry { id: id.clone(), key: key.clone(), at };
                $crate::backend::output!(self.read(op).await, ReadOutput::Entry)
            }

            async fn list_entries(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                at: $crate::ReadAt,
                query: &$crate::ListQuery,
            ) -> $crate::Result<$crate::EntryPage> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::ListEntries { id: id.clone(), at, query: query.clone() };
                $crate::backend::output!(self.read(op).await, ReadOutput::Page)
            }

            async fn entry_history(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                key: &ctxmesh_core::ids::EntryKey,
                query: $crate::HistoryQuery,
            ) -> $crate::Result<Vec<$crate::EntryVersion>> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::EntryHistory { id: id.clone(), key: key.clone(), query };
                $crate::backend::output!(self.read(op).await, ReadOutput::Versions)
            }

            async fn context_history(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                query: $crate::HistoryQuery,
            ) -> $crate::Result<Vec<ctxmesh_core::history::Commit>> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::ContextHistory { id: id.clone(), query };
                $crate::backend::output!(self.read(op).await, ReadOutput::Commits)
            }

            async fn diff(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                from: u64,
                to: u64,
            ) -> $crate::Result<Vec<ctxmesh_core::history::DiffChange>> {
                use $crate::ops::{ReadOp, ReadOutput};
                $crate::backend::output!(self.read(ReadOp::Diff { id: id.clone(), from, to }).await, ReadOutput::Diff)
            }

            async fn rollback(&self, id: &ctxmesh_core::ids::ContextId, to: u64, author: &str) -> $crate::Result<u64> {
                use $crate::ops::{WriteOp, WriteOutput};
                let op = WriteOp::Rollback { id: id.clone(), to, author: author.to_owned() };
                $crate::backend::output!(self.write(op).await, WriteOutput::Revision)
            }

            async fn fork(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                at: u64,
                new_id: &ctxmesh_core::ids::ContextId,
                author: &str,
            ) -> $crate::Result<ctxmesh_core::context::ContextInfo> {
                use $crate::ops::{WriteOp, WriteOutput};
                let op = WriteOp::Fork { id: id.clone(), at, new_id: new_id.clone(), author: author.to_owned() };
                $crate::backend::output!(self.write(op).await, WriteOutput::Context)
            }

            async fn search(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                terms: &[String],
                limit: usize,
            ) -> $crate::Result<Vec<(String, f64)>> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::Search { id: id.clone(), terms: terms.to_vec(), limit };
                $crate::backend::output!(self.read(op).await, ReadOutput::Hits)
            }

            async fn events(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                after: u64,
                limit: usize,
            ) -> $crate::Result<Vec<ctxmesh_core::Event>> {
                use $crate::ops::{ReadOp, ReadOutput};
                let op = ReadOp::Events { id: id.clone(), after, limit };
                $crate::backend::output!(self.read(op).await, ReadOutput::Events)
            }

            async fn expire(&self, now: ctxmesh_core::Timestamp) -> $crate::Result<u64> {
                use $crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};
                let ids = $crate::backend::output!(self.read(ReadOp::ExpiredContexts { now }).await, ReadOutput::Ids)?;
                let mut removed = 0;
                for id in ids {
                    // One revision (and one transaction) per context.
                    match self.write(WriteOp::Expire { id, now }).await {
                        Ok(WriteOutput::Count(n)) => removed += n,
                        Ok(_) => return Err($crate::backend::unexpected_output()),
                        // Deleted since it was listed.
                        Err($crate::StoreError::Core(ctxmesh_core::Error::NotFound { .. })) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(removed)
            }

            async fn compact(
                &self,
                id: Option<&ctxmesh_core::ids::ContextId>,
                now: ctxmesh_core::Timestamp,
            ) -> $crate::Result<Vec<$crate::Compaction>> {
                use $crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};
                let ids = match id {
                    Some(id) => vec![id.as_str().to_owned()],
                    None => $crate::backend::output!(self.read(ReadOp::RetainedContexts).await, ReadOutput::Ids)?,
                };
                let mut done = Vec::new();
                for ctx in ids {
                    match self.write(WriteOp::Compact { id: ctx, now }).await {
                        Ok(WriteOutput::Compaction(c)) => done.extend(c),
                        Ok(_) => return Err($crate::backend::unexpected_output()),
                        Err($crate::StoreError::Core(ctxmesh_core::Error::NotFound { .. })) if id.is_none() => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(done)
            }

            async fn append_event(
                &self,
                id: &ctxmesh_core::ids::ContextId,
                event: $crate::NewEvent,
                author: &str,
            ) -> $crate::Result<ctxmesh_core::Event> {
                use $crate::ops::{WriteOp, WriteOutput};
                let op = WriteOp::AppendEvent { id: id.clone(), event, author: author.to_owned() };
                $crate::backend::output!(self.write(op).await, WriteOutput::Event)
            }

            fn subscribe(
                &self,
                id: &ctxmesh_core::ids::ContextId,
            ) -> tokio::sync::broadcast::Receiver<std::sync::Arc<$crate::notify::Committed>> {
                self.hub().subscribe(id.as_str())
            }

            fn subscribe_stream(
                &self,
                stream: &str,
            ) -> tokio::sync::broadcast::Receiver<std::sync::Arc<$crate::notify::Committed>> {
                self.hub().subscribe(stream)
            }

            async fn ping(&self) -> $crate::Result<()> {
                $crate::backend::Backend::ping(self).await
            }

            async fn coord_write(&self, op: $crate::coord::CoordWrite) -> $crate::Result<$crate::coord::CoordOutput> {
                $crate::coord::run_write(self, op).await
            }

            async fn coord_read(&self, op: $crate::coord::CoordRead) -> $crate::Result<$crate::coord::CoordOutput> {
                use $crate::ops::{ReadOp, ReadOutput};
                $crate::backend::output!(self.read(ReadOp::Coord(op)).await, ReadOutput::Coord)
            }

            async fn sweep(&self, now: ctxmesh_core::Timestamp) -> $crate::Result<$crate::coord::SweepReport> {
                $crate::coord::sweep(self, now).await
            }
        }
    };
}
pub(crate) use impl_store;
