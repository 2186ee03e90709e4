//! [`Backend`]: what a backend does with operations as values (where and
//! in which transactions it runs them, how it batches them), and taking a
//! typed value out of what it answers.

use std::sync::Arc;

use async_trait::async_trait;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::txn::{TxnRequest, TxnResponse};

use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::notify::Hub;
use crate::ops::precheck::Prechecks;
use crate::ops::{ReadOp, ReadOutput, WriteOp, WriteOutput};

/// What a backend does with operations as values: where it runs them, in
/// which transactions, and how it batches them. Every backend is a
/// [`Store`] through the one implementation below.
#[async_trait]
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
    /// A consistent copy of the whole database in a new file (`None`: the
    /// backend makes none).
    async fn snapshot(&self) -> Result<Option<crate::types::Snapshot>> {
        Ok(None)
    }
    /// The stale-write checks of this node (see [`crate::ops::precheck`]).
    fn prechecks(&self) -> &Arc<Prechecks>;
    /// The clock the store stamps and expires by.
    fn clock(&self) -> &dyn Clock;
    /// The writer's refusal of `txn`, from a copy of the committed state
    /// this node holds in memory, when it holds what that takes.
    fn refuse_in_memory(&self, _id: &ContextId, _txn: &TxnRequest, _author: &str) -> Option<TxnResponse> {
        None
    }
}

/// The error for an output of the wrong kind (a bug of this crate).
pub(crate) fn unexpected_output() -> StoreError {
    StoreError::Backend("the backend returned an unexpected output".into())
}

/// Takes the value out of one variant of an output enum.
macro_rules! output {
    ($result:expr, $variant:path) => {
        match $result? {
            $variant(value) => Ok(value),
            _ => Err($crate::engine::backend::unexpected_output()),
        }
    };
}
pub(crate) use output;
