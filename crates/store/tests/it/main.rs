//! Store tests: the conformance suite on SQLite and on PostgreSQL, and what
//! is specific to each backend.

use std::sync::Arc;

use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};
use ctxmesh_store::{SharedClock, Store};

mod backup;
mod postgres_specific;
mod postgres_tls;
mod sqlite_specific;

/// A fresh store on `clock` in a temporary directory that lives as long as
/// the test, with the commit log as the durability point or not.
fn fresh_sqlite_with(clock: SharedClock, commit_log: bool) -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig { clock, commit_log, ..SqliteConfig::new(dir.path().join("ctxmesh.db")) };
    let store = SqliteStore::open(config).unwrap();
    // Keep the directory for the life of the test process.
    std::mem::forget(dir);
    Arc::new(store)
}

async fn fresh_sqlite(clock: SharedClock) -> Arc<dyn Store> {
    fresh_sqlite_with(clock, false)
}

async fn fresh_sqlite_log(clock: SharedClock) -> Arc<dyn Store> {
    fresh_sqlite_with(clock, true)
}

mod conformance {
    use super::fresh_sqlite;
    ctxmesh_store::conformance_tests!(fresh_sqlite);
}

mod conformance_commit_log {
    use super::fresh_sqlite_log;
    ctxmesh_store::conformance_tests!(fresh_sqlite_log);
}

mod conformance_postgres {
    ctxmesh_store::conformance_tests!(ctxmesh_store::conformance::fresh_postgres);
}
