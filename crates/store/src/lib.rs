//! Storage for ctxmesh: the [`Store`] trait, the embedded SQLite backend,
//! the PostgreSQL backend, and (behind the `conformance` feature) the
//! conformance suite that every backend must pass.
//!
//! The crate is in layers; a file imports only from layers below its own
//! (`scripts/check-layers` checks it):
//!
//! 1. values: `error`, [`clock`], [`types`], [`notify`], [`coord`] (the
//!    coordination requests, each with the type it answers) and [`api`]
//!    (the [`Store`] trait);
//! 2. `tx`: the transaction primitives every backend provides;
//! 3. `objects` and `codec`: the stored objects and rows, and their
//!    encoding;
//! 4. `ops`: the operations (entries, agents, access, locks, work,
//!    conflicts, broadcast, prechecks), written once over `tx::Tx`;
//! 5. `engine`: what a backend does with operations as values, the one
//!    [`Store`] implementation every backend gets from it, and the
//!    multi-step flows;
//! 6. the backends, [`sqlite`] and [`postgres`], and [`open`] on top.
//!
//! Backends own atomicity, durability and ordering. The semantics of a write
//! (comparisons, versioning, events) come from `ctxmesh_core::txn`: a backend
//! locks the context, loads a snapshot, asks core for a plan and persists it.

pub mod api;
pub mod clock;
mod codec;
pub mod coord;
mod engine;
mod error;
pub mod faults;
pub mod notify;
mod objects;
mod open;
mod ops;
pub mod postgres;
pub mod sqlite;
mod tx;
pub mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use api::Store;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{DriverFailure, Result, StoreError};
pub use open::{OpenOptions, open};
pub use types::{Compaction, Durability, EntryPage, EntryVersion, HistoryQuery, ListQuery, NewEvent, ReadAt, Snapshot};
