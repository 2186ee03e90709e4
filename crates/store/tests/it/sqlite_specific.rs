//! Behaviour specific to the embedded store: persistence across reopen.

use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::TxnRequest;
use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};
use ctxmesh_store::{ReadAt, Store};
use serde_json::json;

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let ctx = ContextId::parse("persist").unwrap();
    {
        let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        store.create_context(serde_json::from_value(json!({"id": "persist"})).unwrap(), "a").await.unwrap();
        let t: TxnRequest = serde_json::from_value(json!({"success": [{"op": "put", "key": "k", "value": 42}]})).unwrap();
        store.txn(&ctx, t, "a").await.unwrap();
    }
    let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    let (e, rev) = store.get_entry(&ctx, &EntryKey::parse("k").unwrap(), ReadAt::Latest).await.unwrap();
    assert_eq!(e.unwrap().value, json!(42));
    assert_eq!(rev, 2);
}

#[tokio::test]
async fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    drop(SqliteStore::open(SqliteConfig::new(&path)).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 999").unwrap();
    drop(conn);
    let err = SqliteStore::open(SqliteConfig::new(&path)).unwrap_err();
    assert!(err.to_string().contains("upgrade ctxmesh"), "{err}");
}
