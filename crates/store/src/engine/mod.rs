//! The engine, on top of the operations: the one [`Store`] implementation
//! every [`Backend`] gets, where each method becomes one operation value,
//! or a flow of several ([`flows`]).

use std::sync::Arc;

use async_trait::async_trait;
use ctxmesh_core::context::{ContextInfo, ContextPatch, NewContext};
use ctxmesh_core::history::{Commit, DiffChange};
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::{TxnRequest, TxnResponse};
use ctxmesh_core::{Entry, Event, Timestamp};
use tokio::sync::broadcast::Receiver;

use crate::api::Store;
use crate::coord::{CoordOutput, CoordRead, CoordWrite, SweepReport};
use crate::error::Result;
use crate::notify::Committed;
use crate::ops::precheck::guarded;
use crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};
use crate::types::{Compaction, EntryPage, EntryVersion, HistoryQuery, ListQuery, NewEvent, ReadAt, Snapshot};

mod backend;
mod flows;

pub(crate) use backend::Backend;
use backend::output;

#[async_trait]
impl<B: Backend> Store for B {
    async fn create_context(&self, new: NewContext, author: &str) -> Result<ContextInfo> {
        let op = WriteOp::CreateContext { new, author: author.to_owned() };
        output!(self.write(op).await, WriteOutput::Context)
    }

    async fn get_context(&self, id: &ContextId) -> Result<ContextInfo> {
        output!(self.read(ReadOp::GetContext { id: id.clone() }).await, ReadOutput::Context)
    }

    async fn list_contexts(&self, after: Option<&str>, limit: usize) -> Result<(Vec<ContextInfo>, bool)> {
        let op = ReadOp::ListContexts { after: after.map(str::to_owned), limit };
        output!(self.read(op).await, ReadOutput::Contexts)
    }

    async fn update_context(&self, id: &ContextId, patch: ContextPatch) -> Result<ContextInfo> {
        let op = WriteOp::UpdateContext { id: id.clone(), patch };
        output!(self.write(op).await, WriteOutput::Context)
    }

    async fn delete_context(&self, id: &ContextId) -> Result<()> {
        self.write(WriteOp::DeleteContext { id: id.clone() }).await.map(|_| ())
    }

    async fn txn(&self, id: &ContextId, txn: TxnRequest, author: &str) -> Result<TxnResponse> {
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
            if let Ok((Some(refused), _)) = output!(self.read(op).await, ReadOutput::Refused) {
                metrics::counter!("ctxmesh_stale_writes_refused_early_total", "from" => "read").increment(1);
                checks.record(id.as_str(), true);
                return Ok(refused);
            }
        }
        let guarded = guarded(&txn);
        let op = WriteOp::Txn { id: id.clone(), txn, author: author.to_owned() };
        let response = output!(self.write(op).await, WriteOutput::Txn)?;
        if guarded {
            checks.record(id.as_str(), !response.succeeded);
        }
        Ok(response)
    }

    async fn get_entry(&self, id: &ContextId, key: &EntryKey, at: ReadAt) -> Result<(Option<Entry>, u64)> {
        let op = ReadOp::GetEntry { id: id.clone(), key: key.clone(), at };
        output!(self.read(op).await, ReadOutput::Entry)
    }

    async fn list_entries(&self, id: &ContextId, at: ReadAt, query: &ListQuery) -> Result<EntryPage> {
        let op = ReadOp::ListEntries { id: id.clone(), at, query: query.clone() };
        output!(self.read(op).await, ReadOutput::Page)
    }

    async fn entry_history(&self, id: &ContextId, key: &EntryKey, query: HistoryQuery) -> Result<Vec<EntryVersion>> {
        let op = ReadOp::EntryHistory { id: id.clone(), key: key.clone(), query };
        output!(self.read(op).await, ReadOutput::Versions)
    }

    async fn context_history(&self, id: &ContextId, query: HistoryQuery) -> Result<Vec<Commit>> {
        let op = ReadOp::ContextHistory { id: id.clone(), query };
        output!(self.read(op).await, ReadOutput::Commits)
    }

    async fn diff(&self, id: &ContextId, from: u64, to: u64) -> Result<Vec<DiffChange>> {
        output!(self.read(ReadOp::Diff { id: id.clone(), from, to }).await, ReadOutput::Diff)
    }

    async fn rollback(&self, id: &ContextId, to: u64, author: &str) -> Result<u64> {
        let op = WriteOp::Rollback { id: id.clone(), to, author: author.to_owned() };
        output!(self.write(op).await, WriteOutput::Revision)
    }

    async fn fork(&self, id: &ContextId, at: u64, new_id: &ContextId, author: &str) -> Result<ContextInfo> {
        let op = WriteOp::Fork { id: id.clone(), at, new_id: new_id.clone(), author: author.to_owned() };
        output!(self.write(op).await, WriteOutput::Context)
    }

    async fn search(&self, id: &ContextId, terms: &[String], limit: usize) -> Result<Vec<(String, f64)>> {
        let op = ReadOp::Search { id: id.clone(), terms: terms.to_vec(), limit };
        output!(self.read(op).await, ReadOutput::Hits)
    }

    async fn events(&self, id: &ContextId, after: u64, limit: usize) -> Result<Vec<Event>> {
        let op = ReadOp::Events { id: id.clone(), after, limit };
        output!(self.read(op).await, ReadOutput::Events)
    }

    async fn expire(&self, now: Timestamp) -> Result<u64> {
        flows::expire(self, now).await
    }

    async fn compact(&self, id: Option<&ContextId>, now: Timestamp) -> Result<Vec<Compaction>> {
        flows::compact(self, id, now).await
    }

    async fn append_event(&self, id: &ContextId, event: NewEvent, author: &str) -> Result<Event> {
        let op = WriteOp::AppendEvent { id: id.clone(), event, author: author.to_owned() };
        output!(self.write(op).await, WriteOutput::Event)
    }

    fn subscribe(&self, id: &ContextId) -> Receiver<Arc<Committed>> {
        self.hub().subscribe(id.as_str())
    }

    fn subscribe_stream(&self, stream: &str) -> Receiver<Arc<Committed>> {
        self.hub().subscribe(stream)
    }

    async fn ping(&self) -> Result<()> {
        Backend::ping(self).await
    }

    async fn snapshot(&self) -> Result<Option<Snapshot>> {
        Backend::snapshot(self).await
    }

    async fn coord_write(&self, op: CoordWrite) -> Result<CoordOutput> {
        flows::coord_write(self, op).await
    }

    async fn coord_read(&self, op: CoordRead) -> Result<CoordOutput> {
        output!(self.read(ReadOp::Coord(op)).await, ReadOutput::Coord)
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport> {
        flows::sweep(self, now).await
    }
}
