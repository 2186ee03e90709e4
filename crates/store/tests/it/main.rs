//! Store tests: the conformance suite on SQLite, and SQLite specifics.

use std::sync::Arc;

use ctxmesh_store::Store;
use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};

mod sqlite_specific;

/// A fresh store in a temporary directory that lives as long as the test.
async fn fresh_sqlite() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("ctxmesh.db"))).unwrap();
    // Keep the directory for the life of the test process.
    std::mem::forget(dir);
    Arc::new(store)
}

mod conformance {
    use super::fresh_sqlite;
    ctxmesh_store::conformance_tests!(fresh_sqlite());
}
