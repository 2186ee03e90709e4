//! Behaviour specific to the embedded store: persistence across reopen.

use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::TxnRequest;
use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};
use ctxmesh_store::{ReadAt, Store};
use serde_json::json;

/// Opens the database at `path`, creates context `id` with `key` set to
/// `value`, and closes the database.
async fn write_one(path: &std::path::Path, id: &str, key: &str, value: serde_json::Value) {
    let store = SqliteStore::open(SqliteConfig::new(path)).unwrap();
    store.create_context(serde_json::from_value(json!({"id": id})).unwrap(), "a").await.unwrap();
    let t: TxnRequest =
        serde_json::from_value(json!({"success": [{"op": "put", "key": key, "value": value}]})).unwrap();
    store.txn(&ContextId::parse(id).unwrap(), t, "a").await.unwrap();
}

/// The first entries of a context's latest listing, read from the
/// database (listings are never answered from memory).
async fn listing(store: &SqliteStore, ctx: &ContextId) -> ctxmesh_store::EntryPage {
    let query = ctxmesh_store::ListQuery { prefix: String::new(), after_key: None, limit: 10 };
    store.list_entries(ctx, ReadAt::Latest, &query).await.unwrap()
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let ctx = ContextId::parse("persist").unwrap();
    write_one(&path, "persist", "k", json!(42)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("db.sqlite"))).unwrap());
    store.create_context(serde_json::from_value(json!({"id": "g"})).unwrap(), "a").await.unwrap();
    let before = store.commit_stats();
    let ctx = ContextId::parse("g").unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, ctx) = (store.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            let t: TxnRequest =
                serde_json::from_value(json!({"success": [{"op": "put", "key": format!("k{i}"), "value": i}]}))
                    .unwrap();
            store.txn(&ctx, t, "w").await.unwrap().revision
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort();
    assert_eq!(revisions, (2..=201).collect::<Vec<u64>>(), "each write got its own revision");
    let after = store.commit_stats();
    let (commits, jobs) = (after.commits - before.commits, after.jobs - before.jobs);
    assert_eq!(jobs, 200);
    assert!(commits < jobs, "200 concurrent writes took {commits} commits: group commit shares fsyncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_of_a_batch_holds_the_writes_that_succeeded() {
    // Writes of one batch are indexed together before it commits: the
    // ones refused (a failed comparison) leave nothing in the index.
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("db.sqlite"))).unwrap());
    store.create_context(serde_json::from_value(json!({"id": "ix"})).unwrap(), "a").await.unwrap();
    let ctx = ContextId::parse("ix").unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (store, ctx) = (store.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            // Every odd write demands a missing entry exist: refused.
            let compare = if i % 2 == 1 { json!([{"key": "absent", "exists": true}]) } else { json!([]) };
            let word = if i % 2 == 1 { "refused" } else { "kept" };
            let t: TxnRequest = serde_json::from_value(json!({"compare": compare,
                "success": [{"op": "put", "key": format!("k{i}"), "value": format!("{word} note {i}")}]}))
            .unwrap();
            store.txn(&ctx, t, "w").await.unwrap().succeeded
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i % 2 == 0);
    }
    let kept = store.search(&ctx, &["kept".to_owned()], 1000).await.unwrap();
    assert_eq!(kept.len(), 50);
    assert!(store.search(&ctx, &["refused".to_owned()], 1000).await.unwrap().is_empty());
    // A deletion and a re-write in later batches replace what was indexed.
    let t: TxnRequest = serde_json::from_value(json!({"success": [{"op": "delete", "key": "k0"},
        {"op": "put", "key": "k2", "value": "rewritten"}]}))
    .unwrap();
    store.txn(&ctx, t, "w").await.unwrap();
    assert_eq!(store.search(&ctx, &["kept".to_owned()], 1000).await.unwrap().len(), 48);
    let rewritten = store.search(&ctx, &["rewritten".to_owned()], 10).await.unwrap();
    assert_eq!(rewritten.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["k2"]);
}

#[tokio::test]
async fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let _store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    // Another process (here: another store) is refused, after a wait.
    let wait = std::time::Duration::from_millis(100);
    let err = SqliteStore::open(SqliteConfig { lock_wait: wait, ..SqliteConfig::new(&path) }).unwrap_err();
    assert!(err.to_string().contains("in use by another ctxmesh process"), "{err}");
}

/// Once most guarded writes to a context are refused, stale ones are
/// answered from a read of the committed state: they stop reaching the
/// writer (and its queue), and are refused all the same.
#[tokio::test]
async fn stale_writes_on_a_hot_entry_skip_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("db.sqlite"))).unwrap();
    store.create_context(serde_json::from_value(json!({"id": "hot"})).unwrap(), "a").await.unwrap();
    let ctx = ContextId::parse("hot").unwrap();
    let put = |revision: u64, value: u64| -> TxnRequest {
        serde_json::from_value(json!({"compare": [{"key": "k", "revision": revision}],
            "success": [{"op": "put", "key": "k", "value": value}]}))
        .unwrap()
    };
    let first = store.txn(&ctx, put(0, 1), "a").await.unwrap();
    assert!(first.succeeded);
    let before = store.commit_stats().jobs;
    for i in 0..20 {
        assert!(!store.txn(&ctx, put(0, 100 + i), "a").await.unwrap().succeeded);
    }
    let reached = store.commit_stats().jobs - before;
    assert!(reached <= 3, "{reached} of 20 stale writes reached the writer");
    let (e, _) = store.get_entry(&ctx, &EntryKey::parse("k").unwrap(), ReadAt::Latest).await.unwrap();
    assert_eq!(e.unwrap().value, json!(1));
}

/// A database from before the keyword index kept no text of its own is
/// upgraded: its live entries are indexed again.
#[tokio::test]
async fn the_keyword_index_is_rebuilt_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let ctx = ContextId::parse("up").unwrap();
    write_one(&path, "up", "plan", json!("migrate the billing service")).await;
    // Back to schema 4: the index of that version, empty.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE search_fts; DELETE FROM search_docs; \
         CREATE VIRTUAL TABLE search_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2'); \
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    let hits = store.search(&ctx, &["billing".to_owned()], 10).await.unwrap();
    assert_eq!(hits.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["plan"]);
}

/// A database whose versions were keyed without a rowid (schema 6) keeps
/// every version when it moves them to the rowid table: the history, reads
/// at a revision, listings and new writes all see them.
#[tokio::test]
async fn versions_keep_their_history_when_moved_to_the_rowid_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let (ctx, key) = (ContextId::parse("old").unwrap(), EntryKey::parse("plan").unwrap());
    write_one(&path, "old", "plan", json!("v1")).await;
    {
        let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        for (k, v) in [("plan", "v2"), ("other", "o1"), ("plan", "v3")] {
            let t: TxnRequest =
                serde_json::from_value(json!({"success": [{"op": "put", "key": k, "value": v}]})).unwrap();
            store.txn(&ctx, t, "a").await.unwrap();
        }
    }
    // Back to schema 6: the versions table as it was then.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE versions_old (ctx TEXT NOT NULL, key TEXT NOT NULL, revision INTEGER NOT NULL, \
         change TEXT NOT NULL, value TEXT, meta TEXT, version INTEGER NOT NULL, created_revision INTEGER NOT NULL, \
         updated_at INTEGER NOT NULL, author TEXT NOT NULL, vclock TEXT NOT NULL, \
         PRIMARY KEY (ctx, key, revision)) WITHOUT ROWID; \
         INSERT INTO versions_old SELECT * FROM versions; DROP TABLE versions; \
         ALTER TABLE versions_old RENAME TO versions; \
         CREATE INDEX versions_by_revision ON versions (ctx, revision); PRAGMA user_version = 6;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    let history =
        store.entry_history(&ctx, &key, ctxmesh_store::HistoryQuery { before: None, limit: 10 }).await.unwrap();
    let values: Vec<_> = history.iter().map(|v| v.entry.as_ref().map(|e| e.value.clone())).collect();
    assert_eq!(values, [Some(json!("v3")), Some(json!("v2")), Some(json!("v1"))]);
    let (at_3, _) = store.get_entry(&ctx, &key, ReadAt::Revision(3)).await.unwrap();
    assert_eq!(at_3.map(|e| e.value), Some(json!("v2")));
    assert_eq!(listing(&store, &ctx).await.entries.len(), 2);
    // A write after the move takes the next version, and a duplicate
    // version of a key is still refused by the table's unique index.
    let t: TxnRequest =
        serde_json::from_value(json!({"success": [{"op": "put", "key": "plan", "value": "v4"}]})).unwrap();
    let written = store.txn(&ctx, t, "a").await.unwrap();
    assert_eq!(written.revision, 6);
    let (latest, _) = store.get_entry(&ctx, &key, ReadAt::Latest).await.unwrap();
    assert_eq!(latest.map(|e| (e.value, e.version)), Some((json!("v4"), 4)));
    // Every entry event, stored before the upgrade (with its value) or
    // after (its value left to the version row), reads with its value.
    let events = store.events(&ctx, 0, 100).await.unwrap();
    let values: Vec<_> = events
        .iter()
        .filter(|e| e.key.is_some())
        .map(|e| e.data.as_ref().and_then(|d| d.get("value")).cloned())
        .collect();
    let expected = ["v1", "v2", "o1", "v3", "v4"].map(|v| Some(json!(v)));
    assert_eq!(values, expected);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let stored: Option<String> =
        conn.query_row("SELECT value_key FROM events WHERE ctx = 'old' AND revision = 6", [], |r| r.get(0)).unwrap();
    assert_eq!(stored.as_deref(), Some("plan"), "the new event leaves its value to the version row");
    conn.query_row("SELECT rowid FROM versions LIMIT 1", [], |r| r.get::<_, i64>(0)).expect("a rowid table");
    let duplicate = conn
        .execute("INSERT INTO versions SELECT * FROM versions WHERE ctx = 'old' AND key = 'plan' AND revision = 6", []);
    assert!(duplicate.is_err(), "(ctx, key, revision) stays unique");
}

/// Reads of one entry, answered from memory or not, never go back in time
/// and always see the reader's own acknowledged writes, with writers,
/// readers and listings (which read the database) running at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_never_go_back_under_concurrent_writes() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("db.sqlite"))).unwrap());
    store.create_context(serde_json::from_value(json!({"id": "mono"})).unwrap(), "a").await.unwrap();
    let ctx = ContextId::parse("mono").unwrap();
    let keys: Vec<EntryKey> = (0..4).map(|i| EntryKey::parse(&format!("k{i}")).unwrap()).collect();
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let (store, ctx, keys) = (store.clone(), ctx.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..60u64 {
                let key = &keys[((w + i) % 4) as usize];
                let (current, _) = store.get_entry(&ctx, key, ReadAt::Latest).await.unwrap();
                let revision = current.map_or(0, |e| e.revision);
                let t: TxnRequest = serde_json::from_value(json!({
                    "compare": [{"key": key.as_str(), "revision": revision}],
                    "success": [{"op": "put", "key": key.as_str(), "value": {"writer": w, "i": i}}]
                }))
                .unwrap();
                let done = store.txn(&ctx, t, "w").await.unwrap();
                if done.succeeded {
                    // Read your writes.
                    let (e, at) = store.get_entry(&ctx, key, ReadAt::Latest).await.unwrap();
                    let e = e.unwrap();
                    assert!(e.revision >= done.revision, "wrote {} then read {}", done.revision, e.revision);
                    assert!(at >= done.revision, "context revision {at} after a write at {}", done.revision);
                }
            }
        }));
    }
    for _ in 0..4 {
        let (store, ctx, keys) = (store.clone(), ctx.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = [0u64; 4];
            let mut context_seen = 0;
            for i in 0..600usize {
                let k = i % 4;
                if i % 50 == 0 {
                    // A listing reads the database, whatever is cached.
                    let page = listing(&store, &ctx).await;
                    assert!(page.revision >= context_seen, "listing at {} after {context_seen}", page.revision);
                    context_seen = page.revision;
                }
                let (e, at) = store.get_entry(&ctx, &keys[k], ReadAt::Latest).await.unwrap();
                let revision = e.map_or(0, |e| e.revision);
                assert!(revision >= seen[k], "k{k}: revision {revision} after {}", seen[k]);
                assert!(at >= context_seen, "context revision {at} after {context_seen}");
                seen[k] = revision;
                context_seen = at;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // What memory answers is what the database holds.
    let page = listing(&store, &ctx).await;
    for key in &keys {
        let (cached, _) = store.get_entry(&ctx, key, ReadAt::Latest).await.unwrap();
        let stored = page.entries.iter().find(|e| e.key == key.as_str()).cloned();
        assert_eq!(cached, stored);
    }
}

/// Waits until no store holds the database at `path` (a dropped store's
/// threads let go of it within moments).
fn wait_closed(path: &std::path::Path) {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let file = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    for _ in 0..500 {
        if file.try_lock().is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the store did not let go of {}", path.display());
}

/// Copies the database files at `from` (the file, and its WAL if any) to
/// `to`, replacing what was there.
fn copy_database(from: &std::path::Path, to: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (mut src, mut dst) = (from.as_os_str().to_owned(), to.as_os_str().to_owned());
        src.push(suffix);
        dst.push(suffix);
        let _ = std::fs::remove_file(&dst);
        if std::path::Path::new(&src).exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every row of the tables that hold what clients read, in a stable order.
fn dump(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    for table in ["contexts", "versions", "entries", "commits", "events", "objects", "streams", "audit", "log_position"]
    {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))
            .unwrap_or_else(|_| conn.prepare(&format!("SELECT * FROM {table}")).unwrap());
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let values: Vec<String> = (0..columns).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect();
                Ok(format!("{table}: {}", values.join(" | ")))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    let mut docs = conn.prepare("SELECT ctx, key FROM search_docs ORDER BY ctx, key").unwrap();
    out.extend(
        docs.query_map([], |r| Ok(format!("search_docs: {}/{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap),
    );
    out
}

/// With the commit log on, SQLite commits without syncing. When a power cut
/// takes the database's last commits (here: its files set back to a copy
/// taken earlier, the log kept), opening replays them from the log: every
/// acknowledged write is back, row for row, on every read path. Opened
/// with the log off, the store replays it the same way, then removes it.
#[tokio::test]
async fn commits_the_database_lost_are_replayed_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let with_log = || SqliteConfig { commit_log: true, ..SqliteConfig::new(&path) };
    let store = SqliteStore::open(with_log()).unwrap();
    store.create_context(serde_json::from_value(json!({"id": "lost"})).unwrap(), "a").await.unwrap();
    drop(store);
    wait_closed(&path);
    let old = dir.path().join("old.sqlite");
    copy_database(&path, &old);

    let ctx = ContextId::parse("lost").unwrap();
    let store = SqliteStore::open(with_log()).unwrap();
    let put = |key: &str, value: serde_json::Value| -> TxnRequest {
        serde_json::from_value(json!({"success": [{"op": "put", "key": key, "value": value}]})).unwrap()
    };
    store.txn(&ctx, put("first", json!("written after the copy")), "a").await.unwrap();
    let second = store.txn(&ctx, put("second", json!("alpha bravo")), "b").await.unwrap();
    store.txn(&ctx, put("third", json!({"n": 3})), "c").await.unwrap();
    let delete: TxnRequest = serde_json::from_value(json!({"success": [{"op": "delete", "key": "first"}]})).unwrap();
    store.txn(&ctx, delete, "b").await.unwrap();
    let stale: TxnRequest = serde_json::from_value(json!({"compare": [{"key": "second", "revision": 1}],
        "success": [{"op": "put", "key": "second", "value": "refused"}]}))
    .unwrap();
    assert!(!store.txn(&ctx, stale, "d").await.unwrap().succeeded);
    let event =
        ctxmesh_store::NewEvent { kind: "note.added".into(), key: None, priority: None, data: Some(json!({"x": 1})) };
    store.append_event(&ctx, event, "b").await.unwrap();
    let patch = serde_json::from_value(json!({"labels": {"team": "blue"}})).unwrap();
    store.update_context(&ctx, patch).await.unwrap();
    store.rollback(&ctx, second.revision, "a").await.unwrap();
    store.fork(&ctx, second.revision, &ContextId::parse("forked").unwrap(), "a").await.unwrap();
    store.create_context(serde_json::from_value(json!({"id": "gone"})).unwrap(), "a").await.unwrap();
    store.delete_context(&ContextId::parse("gone").unwrap()).await.unwrap();
    let last = store.txn(&ctx, put("fourth", json!("charlie")), "b").await.unwrap();
    drop(store);
    wait_closed(&path);
    let full = dump(&path);

    // The database loses every commit after the copy; the log stays.
    copy_database(&old, &path);
    assert_ne!(dump(&path), full);
    let store = SqliteStore::open(with_log()).unwrap();
    let (fourth, revision) = store.get_entry(&ctx, &EntryKey::parse("fourth").unwrap(), ReadAt::Latest).await.unwrap();
    assert_eq!(fourth.unwrap().value, json!("charlie"));
    assert_eq!(revision, last.revision);
    let hits = store.search(&ctx, &["bravo".to_owned()], 10).await.unwrap();
    assert_eq!(hits.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["second"]);
    assert!(store.get_context(&ContextId::parse("forked").unwrap()).await.is_ok());
    drop(store);
    wait_closed(&path);
    assert_eq!(dump(&path), full, "the replayed database holds exactly what was acknowledged");

    // Again, opened with the log off.
    copy_database(&old, &path);
    let log_dir = SqliteConfig::new(&path).log_dir();
    assert!(log_dir.exists());
    let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    let (fourth, _) = store.get_entry(&ctx, &EntryKey::parse("fourth").unwrap(), ReadAt::Latest).await.unwrap();
    assert_eq!(fourth.unwrap().value, json!("charlie"));
    drop(store);
    wait_closed(&path);
    assert_eq!(dump(&path), full);
    assert!(!log_dir.exists(), "the log, replayed, is removed when it is off");
}
