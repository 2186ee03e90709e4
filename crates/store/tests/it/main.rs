//! Store tests: the conformance suite on SQLite and on PostgreSQL, and what
//! is specific to each backend.

use std::sync::Arc;

use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};
use ctxmesh_store::{SharedClock, Store};

mod postgres_specific;
mod sqlite_specific;

/// A fresh store on `clock` in a temporary directory that lives as long as
/// the test.
async fn fresh_sqlite(clock: SharedClock) -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig { clock, ..SqliteConfig::new(dir.path().join("ctxmesh.db")) }).unwrap();
    // Keep the directory for the life of the test process.
    std::mem::forget(dir);
    Arc::new(store)
}

mod conformance {
    use super::fresh_sqlite;
    ctxmesh_store::conformance_tests!(fresh_sqlite);
}

mod conformance_postgres {
    ctxmesh_store::conformance_tests!(ctxmesh_store::conformance::fresh_postgres);
}
