//! Domain types and pure logic of ctxmesh.
//!
//! This crate knows what a context, an entry, a transaction and a revision
//! are, and how a transaction turns a snapshot of a context into a [`Plan`]
//! of changes. It does no I/O: no HTTP, no SQL, no clock of its own (callers
//! pass `now`). Storage backends load a snapshot, call [`txn::plan_txn`] and
//! persist the plan; this keeps the semantics identical on every backend.

pub mod access;
pub mod agent;
pub mod conflict;
pub mod context;
pub mod coord;
pub mod entry;
pub mod error;
pub mod event;
pub mod history;
pub mod ids;
pub mod limits;
pub mod merge;
pub mod mesh;
pub mod schema;
pub mod txn;

pub use context::{ContextInfo, ContextPatch, ContextSettings, NewContext, Policy, Retention, Strategy};
pub use entry::{Entry, EntryMeta, EntryWrite, Priority, VClock};
pub use error::{Error, ErrorCode};
pub use event::Event;
pub use history::{Commit, DiffChange, DiffKind};
pub use ids::{ContextId, EntryKey, KeyPattern};
pub use limits::Limits;
pub use txn::{Plan, TxnRequest, TxnResponse};

/// Timestamps on the wire and in memory: UTC, RFC 3339 when serialized.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A duration in milliseconds, clamped to what a timestamp can add.
pub fn ms_duration(ms: u64) -> chrono::Duration {
    chrono::Duration::milliseconds(ms.min(i64::MAX as u64 / 1000) as i64)
}
