//! The conformance suite: behaviour every [`Store`] backend must show.
//!
//! A backend's test crate instantiates it with
//! `ctxmesh_store::conformance_tests!(async { /* make a fresh store */ });`
//! which expands to one `#[tokio::test]` per case, so that a failure names
//! the case. Each case gets a fresh, empty store.

use std::collections::BTreeMap;
use std::sync::Arc;

use ctxmesh_core::Entry;
use ctxmesh_core::context::{ContextPatch, NewContext};
use ctxmesh_core::history::DiffKind;
use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::TxnRequest;
use serde_json::{Value, json};

use ctxmesh_core::conflict::{Choice, Conflict, ConflictStatus, Outcome, Severity};

use crate::clock::{Clock, ManualClock, SharedClock};
use crate::{HistoryQuery, ListQuery, ReadAt, Store, StoreError};

/// A store under test.
pub type TestStore = Arc<dyn Store>;

fn cid(s: &str) -> ContextId {
    ContextId::parse(s).unwrap()
}

fn key(s: &str) -> EntryKey {
    EntryKey::parse(s).unwrap()
}

fn txn(v: Value) -> TxnRequest {
    serde_json::from_value(v).unwrap()
}

fn code(e: StoreError) -> &'static str {
    match e {
        StoreError::Core(c) => c.code().as_str(),
        other => panic!("expected a domain error, got {other:?}"),
    }
}

async fn new_context(store: &TestStore, id: &str) {
    let new: NewContext = serde_json::from_value(json!({ "id": id })).unwrap();
    store.create_context(new, "tester").await.unwrap();
}

async fn put(store: &TestStore, ctx: &str, k: &str, value: Value) -> u64 {
    let r = store.txn(&cid(ctx), txn(json!({"success": [{"op": "put", "key": k, "value": value}]})), "tester").await;
    r.unwrap().revision
}

async fn latest(store: &TestStore, ctx: &str, k: &str) -> Option<Entry> {
    store.get_entry(&cid(ctx), &key(k), ReadAt::Latest).await.unwrap().0
}

async fn all_at(store: &TestStore, ctx: &str, at: ReadAt) -> BTreeMap<String, Value> {
    let q = ListQuery { prefix: String::new(), after_key: None, limit: 10_000 };
    let page = store.list_entries(&cid(ctx), at, &q).await.unwrap();
    page.entries.into_iter().map(|e| (e.key, e.value)).collect()
}

/// Create, read, list, update and delete contexts.
pub async fn context_lifecycle(store: TestStore, _clock: ManualClock) {
    let new: NewContext = serde_json::from_value(json!({
        "id": "c1", "labels": {"team": "research"}, "retention": {"max_revisions": 10},
        "policy": {"strategy": "merge"}, "schemas": {"order": {"type": "object"}}
    }))
    .unwrap();
    let info = store.create_context(new.clone(), "alice").await.unwrap();
    assert_eq!(info.revision, 1, "create is revision 1");
    assert_eq!(info.created_by, "alice");
    assert_eq!(code(store.create_context(new, "bob").await.unwrap_err()), "already_exists");

    let got = store.get_context(&cid("c1")).await.unwrap();
    assert_eq!(got.settings.labels["team"], "research");
    assert_eq!(got.settings.retention.max_revisions, Some(10));
    assert_eq!(code(store.get_context(&cid("nope")).await.unwrap_err()), "not_found");

    for id in ["c2", "c3", "c4"] {
        new_context(&store, id).await;
    }
    let (page, more) = store.list_contexts(None, 2).await.unwrap();
    assert_eq!(page.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
    assert!(more);
    let (page, more) = store.list_contexts(Some("c2"), 2).await.unwrap();
    assert_eq!(page.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c3", "c4"]);
    assert!(!more);

    let patch: ContextPatch = serde_json::from_value(json!({"labels": {"team": "writing"}})).unwrap();
    let updated = store.update_context(&cid("c1"), patch).await.unwrap();
    assert_eq!(updated.settings.labels["team"], "writing");
    assert_eq!(updated.settings.retention.max_revisions, Some(10), "unpatched settings stay");
    let bad: ContextPatch = serde_json::from_value(json!({"schemas": {"a": {"type": 5}}})).unwrap();
    assert_eq!(code(store.update_context(&cid("c1"), bad).await.unwrap_err()), "invalid_schema");

    put(&store, "c1", "a", json!(1)).await;
    store.delete_context(&cid("c1")).await.unwrap();
    assert_eq!(code(store.get_context(&cid("c1")).await.unwrap_err()), "not_found");
    assert_eq!(code(store.delete_context(&cid("c1")).await.unwrap_err()), "not_found");
    // The id can be used again, starting afresh.
    new_context(&store, "c1").await;
    assert_eq!(store.get_context(&cid("c1")).await.unwrap().revision, 1);
    assert!(latest(&store, "c1", "a").await.is_none());
}

/// Versioning of entries: revision, version, created_revision, vclock.
pub async fn entry_versioning(store: TestStore, _clock: ManualClock) {
    new_context(&store, "v").await;
    assert_eq!(put(&store, "v", "a", json!(1)).await, 2);
    assert_eq!(put(&store, "v", "a", json!(2)).await, 3);
    let e = latest(&store, "v", "a").await.unwrap();
    assert_eq!((e.revision, e.version, e.created_revision), (3, 2, 2));
    assert_eq!(e.vclock["tester"], 2);
    assert_eq!(e.author, "tester");

    store.txn(&cid("v"), txn(json!({"success": [{"op": "delete", "key": "a"}]})), "x").await.unwrap();
    assert!(latest(&store, "v", "a").await.is_none());
    put(&store, "v", "a", json!(3)).await;
    let e = latest(&store, "v", "a").await.unwrap();
    assert_eq!((e.revision, e.version, e.created_revision), (5, 1, 5), "version restarts after re-create");
    assert_eq!(store.get_context(&cid("v")).await.unwrap().entry_count, 1);
}

/// A failed comparison changes nothing but the failure branch.
pub async fn txn_compare_and_branches(store: TestStore, _clock: ManualClock) {
    new_context(&store, "t").await;
    put(&store, "t", "a", json!(1)).await;
    let r = store
        .txn(
            &cid("t"),
            txn(json!({
                "compare": [{"key": "a", "revision": 1}],
                "success": [{"op": "put", "key": "a", "value": 100}],
                "failure": [{"op": "put", "key": "failed", "value": true}, {"op": "get", "key": "a"}]
            })),
            "x",
        )
        .await
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(latest(&store, "t", "a").await.unwrap().value, json!(1));
    assert_eq!(latest(&store, "t", "failed").await.unwrap().value, json!(true));

    // An operation that cannot apply aborts the whole transaction.
    let before = store.get_context(&cid("t")).await.unwrap().revision;
    let err = store
        .txn(
            &cid("t"),
            txn(json!({"success": [{"op": "put", "key": "b", "value": 1}, {"op": "patch", "key": "missing", "merge_patch": {}}]})),
            "x",
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), "not_found");
    assert!(latest(&store, "t", "b").await.is_none());
    assert_eq!(store.get_context(&cid("t")).await.unwrap().revision, before);

    // Prefix operations.
    for k in ["p/1", "p/2", "q/1"] {
        put(&store, "t", k, json!(k)).await;
    }
    let r =
        store.txn(&cid("t"), txn(json!({"success": [{"op": "delete_prefix", "prefix": "p/"}]})), "x").await.unwrap();
    assert!(r.succeeded);
    assert!(latest(&store, "t", "p/1").await.is_none());
    assert!(latest(&store, "t", "q/1").await.is_some());
    assert_eq!(code(store.txn(&cid("none"), TxnRequest::default(), "x").await.unwrap_err()), "not_found");
}

/// Concurrent compare-and-swap increments lose no update.
pub async fn concurrent_increments(store: TestStore, _clock: ManualClock) {
    new_context(&store, "n").await;
    put(&store, "n", "counter", json!(0)).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            for _ in 0..10 {
                loop {
                    let e = latest(&store, "n", "counter").await.unwrap();
                    let next = e.value.as_u64().unwrap() + 1;
                    let t = txn(json!({
                        "compare": [{"key": "counter", "revision": e.revision}],
                        "success": [{"op": "put", "key": "counter", "value": next}]
                    }));
                    if store.txn(&cid("n"), t, "w").await.unwrap().succeeded {
                        ok += 1;
                        break;
                    }
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 80);
    assert_eq!(latest(&store, "n", "counter").await.unwrap().value, json!(80));
}

/// For a random sequence of writes, reading at R gives the state after R.
pub async fn time_travel_matches_model(store: TestStore, _clock: ManualClock) {
    new_context(&store, "tt").await;
    let mut model: BTreeMap<String, Value> = BTreeMap::new();
    let mut states = vec![(1u64, model.clone())];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..120 {
        let k = format!("k/{}", next() % 12);
        let op = next() % 10;
        let t = if op < 6 {
            model.insert(k.clone(), json!(i));
            json!({"success": [{"op": "put", "key": k, "value": i}]})
        } else if op < 8 {
            let existed = model.remove(&k).is_some();
            if !existed {
                continue;
            }
            json!({"success": [{"op": "delete", "key": k}]})
        } else {
            let cur = model.get(&k).cloned();
            let Some(Value::Number(_)) = cur else { continue };
            let patched = json!({"n": i});
            model.insert(k.clone(), patched);
            json!({"success": [{"op": "patch", "key": k, "json_patch": [{"op": "replace", "path": "", "value": {"n": i}}]}]})
        };
        let r = store.txn(&cid("tt"), txn(t), "w").await.unwrap();
        states.push((r.revision, model.clone()));
    }
    for (rev, expected) in &states {
        assert_eq!(&all_at(&store, "tt", ReadAt::Revision(*rev)).await, expected, "state at {rev}");
        for k in (0..12).map(|i| format!("k/{i}")) {
            let (e, _) = store.get_entry(&cid("tt"), &key(&k), ReadAt::Revision(*rev)).await.unwrap();
            assert_eq!(e.map(|e| e.value), expected.get(&k).cloned(), "{k} at {rev}");
        }
    }
    let last = states.last().unwrap();
    assert_eq!(all_at(&store, "tt", ReadAt::Latest).await, last.1);
    let future = store.get_context(&cid("tt")).await.unwrap().revision + 1;
    let err = store.get_entry(&cid("tt"), &key("k/1"), ReadAt::Revision(future)).await.unwrap_err();
    assert_eq!(code(err), "not_found");
}

/// Reading as of a time resolves to the last revision committed by then.
pub async fn read_as_of_time(store: TestStore, clock: ManualClock) {
    new_context(&store, "at").await;
    put(&store, "at", "a", json!(1)).await;
    clock.advance(chrono::Duration::milliseconds(5));
    let between = clock.now();
    clock.advance(chrono::Duration::milliseconds(5));
    put(&store, "at", "a", json!(2)).await;
    let (e, rev) = store.get_entry(&cid("at"), &key("a"), ReadAt::Time(between)).await.unwrap();
    assert_eq!((e.unwrap().value, rev), (json!(1), 2));
    let long_ago = between - chrono::Duration::days(1);
    assert_eq!(code(store.get_entry(&cid("at"), &key("a"), ReadAt::Time(long_ago)).await.unwrap_err()), "not_found");
}

/// Pagination over keys with a prefix.
pub async fn list_pagination(store: TestStore, _clock: ManualClock) {
    new_context(&store, "l").await;
    for i in 0..7 {
        put(&store, "l", &format!("f/{i}"), json!(i)).await;
    }
    put(&store, "l", "g/0", json!(0)).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery { prefix: "f/".into(), after_key: after.clone(), limit: 3 };
        let page = store.list_entries(&cid("l"), ReadAt::Latest, &q).await.unwrap();
        assert_eq!(page.revision, 9);
        seen.extend(page.entries.iter().map(|e| e.key.clone()));
        if !page.more {
            break;
        }
        after = page.entries.last().map(|e| e.key.clone());
    }
    assert_eq!(seen, (0..7).map(|i| format!("f/{i}")).collect::<Vec<_>>());
}

/// Entry history, context history and diffs.
pub async fn history_and_diff(store: TestStore, _clock: ManualClock) {
    new_context(&store, "h").await;
    put(&store, "h", "a", json!(1)).await; // 2
    put(&store, "h", "b", json!(1)).await; // 3
    put(&store, "h", "a", json!(2)).await; // 4
    store.txn(&cid("h"), txn(json!({"success": [{"op": "delete", "key": "b"}]})), "x").await.unwrap(); // 5
    put(&store, "h", "c", json!(1)).await; // 6

    let versions = store.entry_history(&cid("h"), &key("a"), HistoryQuery { before: None, limit: 10 }).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.revision).collect::<Vec<_>>(), [4, 2]);
    let b = store.entry_history(&cid("h"), &key("b"), HistoryQuery { before: None, limit: 10 }).await.unwrap();
    assert!(b[0].entry.is_none(), "the deletion is in the history");
    let missing = store.entry_history(&cid("h"), &key("zz"), HistoryQuery { before: None, limit: 10 }).await;
    assert_eq!(code(missing.unwrap_err()), "not_found");

    let commits = store.context_history(&cid("h"), HistoryQuery { before: None, limit: 100 }).await.unwrap();
    assert_eq!(commits.iter().map(|c| c.revision).collect::<Vec<_>>(), [6, 5, 4, 3, 2, 1]);
    assert_eq!(commits[1].keys, ["b"]);
    assert_eq!(commits[5].kind, "create");
    let page = store.context_history(&cid("h"), HistoryQuery { before: Some(4), limit: 2 }).await.unwrap();
    assert_eq!(page.iter().map(|c| c.revision).collect::<Vec<_>>(), [3, 2]);

    let diff = store.diff(&cid("h"), 3, 6).await.unwrap();
    let summary: Vec<(String, DiffKind)> = diff.iter().map(|d| (d.key.clone(), d.change)).collect();
    assert_eq!(
        summary,
        [("a".into(), DiffKind::Modified), ("b".into(), DiffKind::Removed), ("c".into(), DiffKind::Added)]
    );
    assert_eq!(diff[0].before.as_ref().unwrap().value, json!(1));
    assert_eq!(diff[0].after.as_ref().unwrap().value, json!(2));
    assert_eq!(code(store.diff(&cid("h"), 5, 3).await.unwrap_err()), "invalid_argument");
}

/// Rollback restores a revision's state as a new revision.
pub async fn rollback_restores(store: TestStore, _clock: ManualClock) {
    new_context(&store, "r").await;
    put(&store, "r", "a", json!(1)).await; // 2
    put(&store, "r", "b", json!(1)).await; // 3
    put(&store, "r", "a", json!(2)).await; // 4
    put(&store, "r", "c", json!(1)).await; // 5
    let rev = store.rollback(&cid("r"), 3, "fixer").await.unwrap();
    assert_eq!(rev, 6);
    assert_eq!(all_at(&store, "r", ReadAt::Latest).await, all_at(&store, "r", ReadAt::Revision(3)).await);
    // History is kept: revision 5 still reads as it was.
    assert_eq!(all_at(&store, "r", ReadAt::Revision(5)).await.len(), 3);
    let diff = store.diff(&cid("r"), 5, 6).await.unwrap();
    let summary: Vec<(String, DiffKind)> = diff.iter().map(|d| (d.key.clone(), d.change)).collect();
    assert_eq!(summary, [("a".into(), DiffKind::Modified), ("c".into(), DiffKind::Removed)]);
    let a = latest(&store, "r", "a").await.unwrap();
    assert_eq!((a.value, a.version, a.author.as_str()), (json!(1), 3, "fixer"));
    let events = store.events(&cid("r"), 5, 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "context.rolled_back"));
    assert_eq!(code(store.rollback(&cid("r"), 99, "x").await.unwrap_err()), "not_found");
}

/// Fork creates a new context from a revision.
pub async fn fork_from_revision(store: TestStore, _clock: ManualClock) {
    new_context(&store, "src").await;
    put(&store, "src", "a", json!(1)).await; // 2
    put(&store, "src", "b", json!(2)).await; // 3
    put(&store, "src", "a", json!(3)).await; // 4
    let forked = store.fork(&cid("src"), 3, &cid("dst"), "forker").await.unwrap();
    assert_eq!(forked.revision, 1);
    assert_eq!(forked.entry_count, 2);
    assert_eq!(forked.forked_from.as_ref().unwrap().revision, 3);
    assert_eq!(
        all_at(&store, "dst", ReadAt::Latest).await,
        BTreeMap::from([("a".into(), json!(1)), ("b".into(), json!(2))])
    );
    put(&store, "dst", "a", json!(9)).await;
    assert_eq!(latest(&store, "src", "a").await.unwrap().value, json!(3), "the source is untouched");
    assert_eq!(code(store.fork(&cid("src"), 3, &cid("dst"), "x").await.unwrap_err()), "already_exists");
}

/// Expired entries vanish from reads; their removal is a revision of its own.
pub async fn ttl_expiry(store: TestStore, clock: ManualClock) {
    new_context(&store, "ttl").await;
    let t = txn(json!({"success": [
        {"op": "put", "key": "short", "value": 1, "ttl_ms": 50},
        {"op": "put", "key": "long", "value": 2, "ttl_ms": 3_600_000}
    ]}));
    let r = store.txn(&cid("ttl"), t, "x").await.unwrap();
    assert_eq!(r.revision, 2);
    assert!(latest(&store, "ttl", "short").await.is_some());
    clock.advance(chrono::Duration::milliseconds(49));
    assert!(latest(&store, "ttl", "short").await.is_some(), "an entry lives for its TTL");
    assert_eq!(store.expire(clock.now()).await.unwrap(), 0);
    clock.advance(chrono::Duration::milliseconds(1));
    assert!(latest(&store, "ttl", "short").await.is_none(), "expired entries are hidden at once");
    assert_eq!(store.expire(clock.now()).await.unwrap(), 1);
    let ctx = store.get_context(&cid("ttl")).await.unwrap();
    assert_eq!(ctx.revision, 3);
    assert_eq!(ctx.entry_count, 1);
    let versions =
        store.entry_history(&cid("ttl"), &key("short"), HistoryQuery { before: None, limit: 5 }).await.unwrap();
    assert_eq!(versions[0].revision, 3);
    assert_eq!(versions[0].change, ctxmesh_core::txn::ChangeKind::Expired);
    assert_eq!(store.expire(clock.now()).await.unwrap(), 0);
    // The state before the expiry is still readable.
    assert_eq!(all_at(&store, "ttl", ReadAt::Revision(2)).await.len(), 2);
}

/// Compaction removes history before the retention point; reads there get `compacted`.
pub async fn retention_compaction(store: TestStore, clock: ManualClock) {
    let new: NewContext = serde_json::from_value(json!({"id": "cmp", "retention": {"max_revisions": 3}})).unwrap();
    store.create_context(new, "x").await.unwrap();
    for i in 0..6 {
        put(&store, "cmp", "a", json!(i)).await; // revisions 2..=7
    }
    put(&store, "cmp", "b", json!("b")).await; // 8
    let expected_at_6 = all_at(&store, "cmp", ReadAt::Revision(6)).await;
    let done = store.compact(None, clock.now()).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].compacted_revision, 6);
    let err = store.get_entry(&cid("cmp"), &key("a"), ReadAt::Revision(5)).await.unwrap_err();
    assert_eq!(code(err), "compacted");
    assert_eq!(all_at(&store, "cmp", ReadAt::Revision(6)).await, expected_at_6);
    assert_eq!(latest(&store, "cmp", "a").await.unwrap().value, json!(5), "the current value survives");
    assert_eq!(code(store.events(&cid("cmp"), 2, 10).await.unwrap_err()), "compacted");
    assert_eq!(store.events(&cid("cmp"), 5, 10).await.unwrap()[0].revision, 6);
    assert_eq!(code(store.diff(&cid("cmp"), 4, 8).await.unwrap_err()), "compacted");
    assert!(store.compact(None, clock.now()).await.unwrap().is_empty(), "compaction is idempotent");
    let unbounded: NewContext = serde_json::from_value(json!({"id": "keep"})).unwrap();
    store.create_context(unbounded, "x").await.unwrap();
    put(&store, "keep", "a", json!(1)).await;
    let r = store.compact(Some(&cid("keep")), clock.now()).await.unwrap();
    assert!(r.is_empty(), "no retention policy keeps everything");
}

/// The event log has every revision, in order, and one event per change.
pub async fn event_log_is_gap_free(store: TestStore, _clock: ManualClock) {
    new_context(&store, "ev").await;
    for i in 0..5 {
        put(&store, "ev", &format!("k{i}"), json!(i)).await;
    }
    store
        .txn(
            &cid("ev"),
            txn(json!({"success": [{"op": "delete", "key": "k0"}, {"op": "put", "key": "k1", "value": 9}]})),
            "x",
        )
        .await
        .unwrap();
    let events = store.events(&cid("ev"), 0, 100).await.unwrap();
    assert_eq!(events[0].kind, "context.created");
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5, 6, 7, 7]);
    assert_eq!(events[6].key.as_deref(), Some("k0"));
    assert_eq!(events[6].data.as_ref().unwrap()["change"], "deleted");
    assert_eq!(events[7].data.as_ref().unwrap()["value"], 9);
    let after = store.events(&cid("ev"), 5, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].revision, 6);
    let atomic = store.events(&cid("ev"), 6, 1).await.unwrap();
    assert_eq!(atomic.len(), 2, "a limit never splits a revision");
}

/// A schema violation is rejected and changes nothing.
pub async fn schema_enforced(store: TestStore, _clock: ManualClock) {
    let new: NewContext = serde_json::from_value(json!({
        "id": "s", "schemas": {"orders/*": {"type": "object", "required": ["qty"], "properties": {"qty": {"type": "integer"}}}}
    }))
    .unwrap();
    store.create_context(new, "x").await.unwrap();
    let ok = txn(json!({"success": [{"op": "put", "key": "orders/1", "value": {"qty": 1}}]}));
    store.txn(&cid("s"), ok, "x").await.unwrap();
    let bad = txn(json!({"success": [{"op": "patch", "key": "orders/1", "merge_patch": {"qty": "many"}}]}));
    match store.txn(&cid("s"), bad, "x").await.unwrap_err() {
        StoreError::Core(ctxmesh_core::Error::SchemaViolation { pointer, .. }) => assert_eq!(pointer, "/qty"),
        other => panic!("expected a schema violation, got {other:?}"),
    }
    assert_eq!(latest(&store, "s", "orders/1").await.unwrap().value, json!({"qty": 1}));
    assert_eq!(store.get_context(&cid("s")).await.unwrap().revision, 2);
}

/// Committed revisions are published to the context's subscribers, in
/// order, with their events; appended events take a revision of their own.
pub async fn notifications_and_appended_events(store: TestStore, _clock: ManualClock) {
    new_context(&store, "nt").await;
    let mut rx = store.subscribe(&cid("nt"));
    let mut other = store.subscribe(&cid("other"));
    put(&store, "nt", "a", json!(1)).await;
    let event = crate::NewEvent {
        kind: "message".into(),
        key: None,
        priority: Some(ctxmesh_core::Priority::Critical),
        data: Some(json!({"body": "hi"})),
    };
    let logged = store.append_event(&cid("nt"), event, "router").await.unwrap();
    assert_eq!((logged.revision, logged.agent.as_deref()), (3, Some("router")));
    // A backend may repeat the revision that was current when the
    // subscription began (revision 1 here); nothing older, nothing lost.
    let mut first = rx.recv().await.unwrap();
    if first.revision == 1 {
        first = rx.recv().await.unwrap();
    }
    assert_eq!((first.revision, first.events.len()), (2, 1));
    assert_eq!(first.events[0].event.key.as_deref(), Some("a"));
    let second = rx.recv().await.unwrap();
    assert_eq!(second.revision, 3);
    assert_eq!(second.events[0].event, logged);
    assert!(other.try_recv().is_err(), "other contexts hear nothing");
    let log = store.events(&cid("nt"), 2, 10).await.unwrap();
    assert_eq!(log, vec![logged]);
    let commits = store.context_history(&cid("nt"), HistoryQuery { before: None, limit: 1 }).await.unwrap();
    assert_eq!((commits[0].kind.as_str(), commits[0].keys.len()), ("message", 0));
    let missing = crate::NewEvent { kind: "message".into(), key: None, priority: None, data: None };
    assert_eq!(code(store.append_event(&cid("nope"), missing, "x").await.unwrap_err()), "not_found");

    store.delete_context(&cid("nt")).await.unwrap();
    let last = rx.recv().await.unwrap();
    assert!(last.deleted);
    assert_eq!(last.events[0].event.kind, "context.deleted");
}

// ---- coordination ----

use crate::coord::*;
use ctxmesh_core::agent::{Agent, AgentStatus};
use ctxmesh_core::coord::{HandoffAction, Lock, Task};

async fn register(store: &TestStore, spec: Value) -> Agent {
    store.coord(Register(serde_json::from_value(spec).unwrap())).await.unwrap()
}

async fn acquire(store: &TestStore, ctx: &str, name: &str, agent: &str, ttl_ms: u64) -> (bool, Lock) {
    let op = Acquire { ctx: cid(ctx), name: name.into(), agent: agent.into(), ttl_ms };
    let Acquisition { acquired, lock } = store.coord(op).await.unwrap();
    (acquired, lock)
}

async fn stream_of<R: Request<Output = Vec<ctxmesh_core::Event>>>(
    store: &TestStore,
    read: R,
) -> Vec<ctxmesh_core::Event> {
    store.coord(read).await.unwrap()
}

async fn inbox(store: &TestStore, agent: &str, after: u64) -> Vec<ctxmesh_core::Event> {
    stream_of(store, ReadInbox { agent: agent.into(), after, limit: 100 }).await
}

async fn log_types(store: &TestStore, ctx: &str, after: u64) -> Vec<String> {
    store.events(&cid(ctx), after, 1000).await.unwrap().into_iter().map(|e| e.kind).collect()
}

/// Register, read, list with filters, update, unregister; the agents feed.
pub async fn agent_registry(store: TestStore, _clock: ManualClock) {
    let a =
        register(&store, json!({"id": "researcher", "capabilities": {"custom": ["search"]}, "trust": "high"})).await;
    assert_eq!((a.status, a.capabilities.can_write), (AgentStatus::Active, true));
    register(&store, json!({"id": "writer"})).await;
    let dup = store.coord(Register(serde_json::from_value(json!({"id": "writer"})).unwrap())).await;
    assert_eq!(code(dup.unwrap_err()), "already_exists");
    let bad: ctxmesh_core::agent::AgentSpec =
        serde_json::from_value(json!({"id": "bad", "capabilities": {"max_concurrent_contexts": 0}})).unwrap();
    assert_eq!(code(store.coord(Register(bad)).await.unwrap_err()), "invalid_argument");

    let list = |capability: Option<&str>| {
        let q = AgentQuery { capability: capability.map(str::to_owned), limit: 10, ..Default::default() };
        let store = store.clone();
        async move { store.coord(ListAgents(q)).await.unwrap().0.into_iter().map(|a| a.id).collect::<Vec<_>>() }
    };
    assert_eq!(list(None).await, ["researcher", "writer"]);
    assert_eq!(list(Some("search")).await, ["researcher"]);

    let patch = serde_json::from_value(json!({"objective": "find sources", "status": "inactive"})).unwrap();
    let a = store.coord(UpdateAgent { id: "researcher".into(), patch }).await.unwrap();
    assert_eq!((a.objective.as_str(), a.status), ("find sources", AgentStatus::Inactive));
    let q = AgentQuery { status: Some(AgentStatus::Inactive), limit: 10, ..Default::default() };
    let (list, more) = store.coord(ListAgents(q)).await.unwrap();
    assert_eq!((list.len(), list[0].id.as_str(), more), (1, "researcher", false));
    store.coord(Unregister { id: "writer".into() }).await.unwrap();
    let gone = store.coord(GetAgent { id: "writer".into() }).await.unwrap_err();
    assert_eq!(code(gone), "not_found");
    let feed = stream_of(&store, ReadAgentsFeed { after: 0, limit: 10 }).await;
    let kinds: Vec<(&str, Option<u64>)> = feed.iter().map(|e| (e.kind.as_str(), e.seq)).collect();
    assert_eq!(kinds, [("agent.registered", Some(1)), ("agent.registered", Some(2)), ("agent.unregistered", Some(3))]);
}

/// Exactly one holder at a time; tokens grow; a stale holder is fenced.
pub async fn locks_and_fencing(store: TestStore, clock: ManualClock) {
    new_context(&store, "lk").await;
    register(&store, json!({"id": "a"})).await;
    register(&store, json!({"id": "b"})).await;
    let (got, lock) = acquire(&store, "lk", "deploy", "a", 60_000).await;
    assert!(got);
    assert_eq!((lock.fencing_token, lock.holder.as_deref(), lock.lock_id.as_deref()), (1, Some("a"), Some("deploy:1")));
    let (got, held) = acquire(&store, "lk", "deploy", "b", 60_000).await;
    assert!(!got, "held by a");
    assert_eq!(held.holder.as_deref(), Some("a"));
    let not_holder = Release { ctx: cid("lk"), name: "deploy".into(), agent: "b".into(), lock_id: None };
    assert_eq!(code(store.coord(not_holder).await.unwrap_err()), "not_holder");

    // a pauses past its TTL; b takes the lock; a's late write is fenced.
    let (_, short) = acquire(&store, "lk", "job", "a", 1).await;
    clock.advance(chrono::Duration::milliseconds(5));
    let (got, taken) = acquire(&store, "lk", "job", "b", 60_000).await;
    assert!(got && taken.fencing_token == short.fencing_token + 1);
    let fenced = |token: u64| {
        txn(json!({"success": [{"op": "put", "key": "out", "value": token}], "fence": {"lock": "job", "token": token}}))
    };
    let late = store.txn(&cid("lk"), fenced(short.fencing_token), "a").await.unwrap_err();
    assert_eq!(code(late), "fenced");
    assert!(latest(&store, "lk", "out").await.is_none(), "the fenced write changed nothing");
    store.txn(&cid("lk"), fenced(taken.fencing_token), "b").await.unwrap();
    assert_eq!(latest(&store, "lk", "out").await.unwrap().value, json!(taken.fencing_token));

    let release = Release { ctx: cid("lk"), name: "deploy".into(), agent: "a".into(), lock_id: None };
    store.coord(release).await.unwrap();
    let (got, again) = acquire(&store, "lk", "deploy", "b", 60_000).await;
    assert!(got && again.fencing_token == 2, "the token survives release and grows");
    let types = log_types(&store, "lk", 1).await;
    assert_eq!(
        types,
        [
            "lock.acquired",
            "lock.acquired",
            "lock.expired",
            "lock.acquired",
            "context.updated",
            "lock.released",
            "lock.acquired"
        ]
    );
    let locks = store.coord(ListLocks { ctx: cid("lk") }).await.unwrap();
    assert_eq!(locks.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["deploy", "job"]);
    let unknown = Acquire { ctx: cid("lk"), name: "x".into(), agent: "ghost".into(), ttl_ms: 10 };
    assert_eq!(code(store.coord(unknown).await.unwrap_err()), "not_found");
}

/// A lapsed lease disconnects the agent and frees its locks; a heartbeat
/// revives it.
pub async fn lease_expiry(store: TestStore, clock: ManualClock) {
    new_context(&store, "ls").await;
    register(&store, json!({"id": "sleepy", "lease_ms": 1000})).await;
    acquire(&store, "ls", "db", "sleepy", 600_000).await;
    let before = store.get_context(&cid("ls")).await.unwrap().revision;
    clock.advance(chrono::Duration::milliseconds(999));
    let report = store.sweep(clock.now()).await.unwrap();
    assert_eq!(report.agents_disconnected, 0, "the lease is current");
    clock.advance(chrono::Duration::milliseconds(1));
    let report = store.sweep(clock.now()).await.unwrap();
    assert_eq!(report.agents_disconnected, 1);
    let a = store.coord(GetAgent { id: "sleepy".into() }).await.unwrap();
    assert_eq!(a.status, AgentStatus::Disconnected);
    let events = store.events(&cid("ls"), before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind.as_str(), &events[0].data.as_ref().unwrap()["holder"]),
        ("lock.expired", &json!("sleepy"))
    );
    let feed = stream_of(&store, ReadAgentsFeed { after: 1, limit: 10 }).await;
    assert_eq!(feed.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["agent.disconnected"]);
    register(&store, json!({"id": "other"})).await;
    assert!(acquire(&store, "ls", "db", "other", 1000).await.0, "the lock is free");
    let a = store.coord(Heartbeat { id: "sleepy".into() }).await.unwrap();
    assert_eq!(a.status, AgentStatus::Active);
}

/// requested -> accepted -> completed, with events on the context and in
/// the inboxes; every illegal step refused; expiry by deadline.
pub async fn handoff_lifecycle(store: TestStore, clock: ManualClock) {
    new_context(&store, "hf").await;
    put(&store, "hf", "findings/a", json!("x")).await;
    register(&store, json!({"id": "researcher"})).await;
    register(&store, json!({"id": "writer"})).await;
    let request = |deadline_ms: u64| RequestHandoff {
        source: "researcher".into(),
        request: serde_json::from_value(json!({
            "target": "writer", "context": "hf", "keys": ["findings/*"], "session": "s-1",
            "user_intent": "write it up", "conversation_history": [{"role": "user", "content": "go"}],
            "extracted_entities": {"company": "Apple"}, "deadline_ms": deadline_ms
        }))
        .unwrap(),
    };
    let h = store.coord(request(60_000)).await.unwrap();
    assert_eq!((h.revision, h.handoff.extracted_entities["company"].as_str()), (2, Some("Apple")));
    let step = |action: HandoffAction, agent: &str| ActOnHandoff {
        id: h.id.clone(),
        action,
        agent: agent.into(),
        outcome: Some(json!({"note": agent})),
    };
    assert_eq!(code(store.coord(step(HandoffAction::Complete, "writer")).await.unwrap_err()), "invalid_transition");
    assert_eq!(code(store.coord(step(HandoffAction::Accept, "researcher")).await.unwrap_err()), "forbidden");
    store.coord(step(HandoffAction::Accept, "writer")).await.unwrap();
    assert_eq!(code(store.coord(step(HandoffAction::Reject, "writer")).await.unwrap_err()), "invalid_transition");
    let done = store.coord(step(HandoffAction::Complete, "writer")).await.unwrap();
    assert_eq!(done.status, ctxmesh_core::coord::HandoffState::Completed);
    assert_eq!(log_types(&store, "hf", 2).await, ["handoff.requested", "handoff.accepted", "handoff.completed"]);
    let writer_inbox = inbox(&store, "writer", 0).await;
    let kinds: Vec<&str> = writer_inbox.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["handoff.requested", "handoff.accepted", "handoff.completed"]);
    assert_eq!(writer_inbox[0].data.as_ref().unwrap()["handoff"]["user_intent"], "write it up");
    let source_inbox = inbox(&store, "researcher", 0).await;
    assert_eq!(
        source_inbox.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["handoff.accepted", "handoff.completed"]
    );

    let late = store.coord(request(1000)).await.unwrap();
    clock.advance(chrono::Duration::milliseconds(999));
    assert_eq!(store.sweep(clock.now()).await.unwrap().handoffs_expired, 0, "before its deadline");
    clock.advance(chrono::Duration::milliseconds(1));
    let report = store.sweep(clock.now()).await.unwrap();
    assert_eq!(report.handoffs_expired, 1);
    let expired = store.coord(GetHandoff { id: late.id.clone() }).await.unwrap();
    assert_eq!(expired.status, ctxmesh_core::coord::HandoffState::Expired);
    let accept_late =
        ActOnHandoff { id: late.id, action: HandoffAction::Accept, agent: "writer".into(), outcome: None };
    assert_eq!(code(store.coord(accept_late).await.unwrap_err()), "invalid_transition");
    let to_ghost = RequestHandoff {
        source: "researcher".into(),
        request: serde_json::from_value(json!({"target": "ghost", "context": "hf"})).unwrap(),
    };
    assert_eq!(code(store.coord(to_ghost).await.unwrap_err()), "not_found");
}

/// Tasks go to the assignee's inbox and back; the inbox resumes by seq.
pub async fn tasks_and_inbox(store: TestStore, _clock: ManualClock) {
    new_context(&store, "tk").await;
    register(&store, json!({"id": "boss"})).await;
    register(&store, json!({"id": "worker"})).await;
    let mut rx = store.subscribe_stream(&inbox_stream("worker"));
    let mut ids = Vec::new();
    for i in 0..3 {
        let request = serde_json::from_value(json!({"assignee": "worker", "title": format!("job {i}")})).unwrap();
        ids.push(store.coord(AssignTask { ctx: cid("tk"), request, by: "boss".into() }).await.unwrap().id);
    }
    let first = rx.recv().await.unwrap();
    assert_eq!((first.revision, first.events[0].event.kind.as_str()), (1, "task.assigned"));
    let all = inbox(&store, "worker", 0).await;
    assert_eq!(all.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    // Resuming after seq 1 yields exactly the rest: no gap, no repeat.
    assert_eq!(inbox(&store, "worker", 1).await, all[1..].to_vec());

    let complete = |agent: &str| CompleteTask { id: ids[1].clone(), agent: agent.into(), output: Some(json!(42)) };
    assert_eq!(code(store.coord(complete("boss")).await.unwrap_err()), "forbidden");
    store.coord(complete("worker")).await.unwrap();
    assert_eq!(code(store.coord(complete("worker")).await.unwrap_err()), "invalid_transition");
    let boss = inbox(&store, "boss", 0).await;
    assert_eq!(boss.len(), 1);
    assert_eq!(boss[0].data.as_ref().unwrap()["task"]["output"], 42);

    let tasks = |q: CoordQuery| {
        let store = store.clone();
        async move { store.coord(ListTasks(q)).await.unwrap().0 }
    };
    let by_ctx: Vec<Task> = tasks(CoordQuery { context: Some("tk".into()), limit: 10, ..Default::default() }).await;
    assert_eq!(by_ctx.len(), 3);
    let done = tasks(CoordQuery {
        agent: Some("worker".into()),
        state: Some("completed".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(done.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [ids[1].as_str()]);
    assert_eq!(
        code(store.coord(ReadInbox { agent: "ghost".into(), after: 0, limit: 1 }).await.unwrap_err()),
        "not_found"
    );
}

/// Grants: creator access, permissions, expiry, revocation, capabilities.
pub async fn grants_and_access(store: TestStore, clock: ManualClock) {
    use ctxmesh_core::access::Permission;
    new_context(&store, "g").await; // created by "tester"
    register(&store, json!({"id": "tester"})).await;
    register(&store, json!({"id": "reader"})).await;
    register(&store, json!({"id": "mute", "capabilities": {"can_read": false}})).await;
    let access = |agent: &str| {
        let (store, agent) = (store.clone(), agent.to_owned());
        async move { store.coord(GetAccess { ctx: cid("g"), agent }).await.unwrap() }
    };
    let now = clock.now();
    assert!(access("tester").await.allows(Permission::Admin, now), "the creator administers");
    assert!(!access("reader").await.allows(Permission::Read, now));
    let grant = GrantAccess {
        ctx: cid("g"),
        agents: vec!["reader".into(), "mute".into()],
        permissions: vec![Permission::Read],
        expires_at: Some(now + chrono::Duration::hours(1)),
        by: "tester".into(),
        unregistered: false,
    };
    store.coord(grant.clone()).await.unwrap();
    // An id no agent registered is refused, unless identities come from
    // elsewhere (an OIDC provider): then its grant is kept by id.
    let stranger = GrantAccess { agents: vec!["oidc-only".into()], ..grant.clone() };
    assert_eq!(code(store.coord(stranger.clone()).await.unwrap_err()), "not_found");
    store.coord(GrantAccess { unregistered: true, ..stranger }).await.unwrap();
    assert!(access("oidc-only").await.allows(Permission::Read, now));
    let reader = access("reader").await;
    assert!(reader.allows(Permission::Read, now) && !reader.allows(Permission::Write, now));
    assert!(!reader.allows(Permission::Read, now + chrono::Duration::hours(2)), "expired");
    assert!(!access("mute").await.allows(Permission::Read, now), "capabilities bound grants");
    let g = store.coord(SharedWith { agent: "reader".into() }).await.unwrap();
    assert_eq!(g.iter().map(|g| g.context.as_str()).collect::<Vec<_>>(), ["g"]);
    assert_eq!(log_types(&store, "g", 1).await, ["context.shared", "context.shared"]);
    store.coord(RevokeAccess { ctx: cid("g"), agent: "reader".into(), by: "tester".into() }).await.unwrap();
    assert!(!access("reader").await.allows(Permission::Read, now));
    let again = RevokeAccess { ctx: cid("g"), agent: "reader".into(), by: "tester".into() };
    assert_eq!(code(store.coord(again).await.unwrap_err()), "not_found");
    assert_eq!(
        inbox(&store, "reader", 0).await.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["context.shared", "context.revoked"]
    );

    // A context deleted and made again by another agent: its old creator
    // loses it at once, though it was asked just before.
    assert!(access("tester").await.allows(Permission::Admin, now));
    store.delete_context(&cid("g")).await.unwrap();
    let gone = store.coord(GetAccess { ctx: cid("g"), agent: "tester".into() }).await;
    assert_eq!(code(gone.unwrap_err()), "not_found");
    let again: NewContext = serde_json::from_value(json!({ "id": "g" })).unwrap();
    store.create_context(again, "reader").await.unwrap();
    assert!(!access("tester").await.allows(Permission::Read, now));
    assert!(access("reader").await.allows(Permission::Admin, now));
}

/// Tokens: the owner of a token's hash, asked again and again, follows
/// every rotation, revocation and unregistration at once.
pub async fn token_owners(store: TestStore, _clock: ManualClock) {
    register(&store, json!({"id": "holder"})).await;
    let owner = |hash: &str| {
        let (store, hash) = (store.clone(), hash.to_owned());
        async move {
            match store.coord(TokenOwner { hash }).await {
                Ok(a) => Some(a.id),
                Err(e) => {
                    assert_eq!(code(e), "not_found");
                    None
                }
            }
        }
    };
    let set = |hash: &str| SetToken { agent: "holder".into(), hash: hash.into() };
    store.coord(set("h1")).await.unwrap();
    for _ in 0..3 {
        assert_eq!(owner("h1").await.as_deref(), Some("holder"));
    }
    assert_eq!(owner("nobody").await, None);
    // Rotation: the old hash ends, the new one works.
    store.coord(set("h2")).await.unwrap();
    assert_eq!(owner("h1").await, None);
    assert_eq!(owner("h2").await.as_deref(), Some("holder"));
    store.coord(RevokeTokens { agent: "holder".into() }).await.unwrap();
    assert_eq!(owner("h2").await, None);
    store.coord(set("h3")).await.unwrap();
    assert_eq!(owner("h3").await.as_deref(), Some("holder"));
    store.coord(Unregister { id: "holder".into() }).await.unwrap();
    assert_eq!(owner("h3").await, None);
}

/// The audit log: appended in order, filtered, trimmed by age.
pub async fn audit_log(store: TestStore, clock: ManualClock) {
    use ctxmesh_core::access::AuditRecord;
    let at = clock.now();
    let record = |agent: &str, ctx: &str, allowed: bool, age_s: i64| AuditRecord {
        seq: 0,
        at: at - chrono::Duration::seconds(age_s),
        agent: agent.into(),
        action: "read".into(),
        resource: format!("GET /v1/contexts/{ctx}"),
        context: ctx.into(),
        allowed,
        reason: if allowed { "grant".into() } else { "no grant".into() },
    };
    let batch = vec![record("a", "x", true, 100), record("b", "x", false, 50), record("a", "y", false, 0)];
    store.coord(AppendAudit(batch)).await.unwrap();
    let read = |q: crate::coord::AuditQuery| {
        let store = store.clone();
        async move { store.coord(ReadAudit(q)).await.unwrap() }
    };
    let all = read(crate::coord::AuditQuery { limit: 10, ..Default::default() }).await;
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "numbered in order");
    assert_eq!(all[1].reason, "no grant");
    let denied_a = read(crate::coord::AuditQuery {
        agent: Some("a".into()),
        allowed: Some(false),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(denied_a.iter().map(|r| r.context.as_str()).collect::<Vec<_>>(), ["y"]);
    let after = read(crate::coord::AuditQuery { after: all[0].seq, limit: 10, ..Default::default() }).await;
    assert_eq!(after.len(), 2);
    let n = store.coord(TrimAudit { before: at - chrono::Duration::seconds(60) }).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(read(crate::coord::AuditQuery { limit: 10, ..Default::default() }).await.len(), 2);
}

async fn policy_context(store: &TestStore, id: &str, policy: Value) {
    let new: NewContext = serde_json::from_value(json!({ "id": id, "policy": policy })).unwrap();
    store.create_context(new, "tester").await.unwrap();
}

async fn conflicts(store: &TestStore, ctx: &str, status: Option<ConflictStatus>) -> Vec<Conflict> {
    let read = ListConflicts { ctx: cid(ctx), status, after: String::new(), limit: 100 };
    store.coord(read).await.unwrap()
}

/// Two writers from one base under `merge`: the base comes from history,
/// disjoint fields merge, and a resolved conflict record of low severity
/// is kept and logged.
pub async fn merge_reads_the_base_from_history(store: TestStore, _clock: ManualClock) {
    policy_context(&store, "m", json!({"strategy": "merge"})).await;
    let base = put(&store, "m", "doc", json!({"a": 1, "b": 1, "tags": ["x"]})).await;
    let write = |value: Value, author: &'static str| {
        let t = txn(
            json!({"compare": [{"key": "doc", "revision": base}], "success": [{"op": "put", "key": "doc", "value": value}]}),
        );
        let store = store.clone();
        async move { store.txn(&cid("m"), t, author).await.unwrap() }
    };
    let first = write(json!({"a": 2, "b": 1, "tags": ["x"]}), "one").await;
    assert!(first.succeeded && first.conflicts.is_empty());
    let second = write(json!({"a": 1, "b": 3, "tags": ["x"]}), "two").await;
    assert!(second.succeeded, "{second:?}");
    assert_eq!(second.conflicts.len(), 1);
    assert_eq!(second.conflicts[0].outcome, Outcome::Merged);
    assert_eq!(latest(&store, "m", "doc").await.unwrap().value, json!({"a": 2, "b": 3, "tags": ["x"]}));
    let records = conflicts(&store, "m", Some(ConflictStatus::Resolved)).await;
    assert_eq!(records.len(), 1);
    let c = &records[0];
    assert_eq!((c.severity, c.base_revision, c.current_revision), (Severity::Low, Some(base), first.revision));
    assert_eq!((c.author.as_str(), c.current_author.as_deref()), ("two", Some("one")));
    assert!(conflicts(&store, "m", Some(ConflictStatus::Pending)).await.is_empty());
    let log = store.events(&cid("m"), first.revision, 100).await.unwrap();
    let kinds: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["context.updated", "conflict.detected"], "one revision holds the write and its record");
    assert!(log.iter().all(|e| e.revision == second.revision));
    // The same field changed both ways: refused, nothing written.
    let now = latest(&store, "m", "doc").await.unwrap().revision;
    let t = |v: Value| {
        txn(json!({"compare": [{"key": "doc", "revision": now}], "success": [{"op": "put", "key": "doc", "value": v}]}))
    };
    store.txn(&cid("m"), t(json!({"a": 5, "b": 3, "tags": ["x"]})), "one").await.unwrap();
    let clash = store.txn(&cid("m"), t(json!({"a": 6, "b": 3, "tags": ["x"]})), "two").await.unwrap();
    assert!(!clash.succeeded);
    assert_eq!(
        (clash.conflicts[0].outcome, clash.conflicts[0].fields.clone()),
        (Outcome::Rejected, vec!["/a".to_owned()])
    );
    assert_eq!(latest(&store, "m", "doc").await.unwrap().value["a"], 5);
}

/// `manual`: a stale write is kept aside as a pending conflict (a revision
/// of its own, the entry unchanged) until it is resolved, once.
pub async fn manual_conflicts_wait_for_a_resolution(store: TestStore, _clock: ManualClock) {
    policy_context(&store, "h", json!({"strategy": "manual"})).await;
    let base = put(&store, "h", "k", json!("base")).await;
    let stale = |v: &str| {
        txn(json!({"compare": [{"key": "k", "revision": base}], "success": [{"op": "put", "key": "k", "value": v}]}))
    };
    store.txn(&cid("h"), stale("theirs"), "one").await.unwrap();
    let kept = store.txn(&cid("h"), stale("ours"), "two").await.unwrap();
    assert!(!kept.succeeded);
    let report = &kept.conflicts[0];
    assert_eq!(report.outcome, Outcome::Pending);
    assert_eq!(report.current.as_ref().unwrap().value, "theirs");
    assert_eq!(latest(&store, "h", "k").await.unwrap().value, "theirs", "nothing was written");
    let pending = conflicts(&store, "h", Some(ConflictStatus::Pending)).await;
    assert_eq!(pending.len(), 1);
    let c = &pending[0];
    assert_eq!(
        (c.severity, c.detected_revision, c.id.clone()),
        (Severity::High, kept.revision, report.conflict.clone().unwrap())
    );
    assert_eq!(c.proposed.as_ref().unwrap().value, "ours");
    let resolve = |choice: Choice, if_match: Option<u64>| ResolveConflict {
        ctx: cid("h"),
        id: c.id.clone(),
        resolution: choice,
        if_match,
        author: "judge".into(),
        scope: None,
    };
    // A resolution based on an older entry is refused.
    let stale_resolution = store.coord(resolve(Choice::Proposed, Some(base))).await.unwrap_err();
    assert_eq!(code(stale_resolution), "precondition_failed");
    let done = store.coord(resolve(Choice::Proposed, None)).await.unwrap();
    assert_eq!((done.status, done.resolution.as_ref().unwrap().chose.as_str()), (ConflictStatus::Resolved, "proposed"));
    let entry = latest(&store, "h", "k").await.unwrap();
    assert_eq!((entry.value.clone(), entry.author.as_str()), (json!("ours"), "judge"));
    let log = store.events(&cid("h"), entry.revision - 1, 100).await.unwrap();
    assert!(log.iter().any(|e| e.kind == "conflict.resolved" && e.revision == entry.revision));
    assert_eq!(code(store.coord(resolve(Choice::Current, None)).await.unwrap_err()), "invalid_transition");
    assert!(conflicts(&store, "h", Some(ConflictStatus::Pending)).await.is_empty());
}

/// On a context where guarded writes are mostly refused (one hot entry,
/// many writers), a stale write is answered without the writer: the answer
/// is the writer's (the current entry, the reason), the policy of each key
/// still decides (a `last-write-wins` key is written), and a write whose
/// precondition holds succeeds.
pub async fn stale_writes_on_a_hot_context(store: TestStore, _clock: ManualClock) {
    let policy = json!({"strategy": "reject", "overrides": [{"pattern": "lww/**", "strategy": "last-write-wins"}]});
    policy_context(&store, "hot", policy).await;
    let base = put(&store, "hot", "k", json!(0)).await;
    put(&store, "hot", "lww/k", json!(0)).await;
    let guarded = |k: &str, revision: u64, v: Value| {
        txn(json!({"compare": [{"key": k, "revision": revision}], "success": [{"op": "put", "key": k, "value": v}]}))
    };
    let current = store.txn(&cid("hot"), guarded("k", base, json!(1)), "one").await.unwrap();
    assert!(current.succeeded);
    // Read first, as a client of a hot entry does (a store may keep what
    // it read).
    assert_eq!(latest(&store, "hot", "k").await.unwrap().revision, current.revision);
    latest(&store, "hot", "lww/k").await.unwrap();
    for i in 0..10 {
        let refused = store.txn(&cid("hot"), guarded("k", base, json!(100 + i)), "two").await.unwrap();
        assert!(!refused.succeeded);
        let report = &refused.conflicts[0];
        assert_eq!(report.outcome, Outcome::Rejected);
        assert_eq!(report.reason.as_deref(), Some("the entry changed since it was read (policy: reject)"));
        let now = report.current.as_ref().unwrap();
        assert_eq!((now.value.clone(), now.revision), (json!(1), current.revision));
        assert_eq!(refused.revision, current.revision, "the context's revision when refused");
    }
    assert_eq!(latest(&store, "hot", "k").await.unwrap().value, json!(1), "nothing refused was written");
    // Other keys keep their policy on the hot context.
    let lww = store.txn(&cid("hot"), guarded("lww/k", base, json!("last")), "two").await.unwrap();
    assert!(lww.succeeded, "{lww:?}");
    assert_eq!(lww.conflicts[0].outcome, Outcome::Overwritten);
    assert_eq!(latest(&store, "hot", "lww/k").await.unwrap().value, json!("last"));
    // A write whose precondition holds goes through.
    let fresh = latest(&store, "hot", "k").await.unwrap().revision;
    assert!(store.txn(&cid("hot"), guarded("k", fresh, json!(2)), "two").await.unwrap().succeeded);
    assert_eq!(latest(&store, "hot", "k").await.unwrap().value, json!(2));
    // A failure branch is run as the writer runs it.
    let t =
        txn(json!({"compare": [{"key": "k", "revision": base}], "success": [{"op": "put", "key": "k", "value": 9}],
        "failure": [{"op": "get", "key": "k"}]}));
    let failed = store.txn(&cid("hot"), t, "two").await.unwrap();
    assert!(!failed.succeeded && failed.conflicts.is_empty());
    assert_eq!(serde_json::to_value(&failed.results).unwrap()[0]["entries"][0]["value"], json!(2));
}

/// Causal writes: a write that carries the vector it read applies when it
/// descends from the entry, and meets the policy when it is concurrent.
pub async fn causal_writes_by_vclock(store: TestStore, _clock: ManualClock) {
    new_context(&store, "v").await;
    put(&store, "v", "k", json!(1)).await;
    let read = latest(&store, "v", "k").await.unwrap();
    assert_eq!(read.vclock, BTreeMap::from([("tester".to_owned(), 1)]));
    let write = |v: i64, vclock: &BTreeMap<String, u64>, who: &'static str| {
        let t = txn(json!({"success": [{"op": "put", "key": "k", "value": v, "vclock": vclock}]}));
        let store = store.clone();
        async move { store.txn(&cid("v"), t, who).await.unwrap() }
    };
    let first = write(2, &read.vclock, "a").await;
    assert!(first.succeeded, "descends from what it read");
    let after = latest(&store, "v", "k").await.unwrap();
    assert_eq!(after.vclock, BTreeMap::from([("tester".to_owned(), 1), ("a".to_owned(), 1)]));
    let concurrent = write(3, &read.vclock, "b").await;
    assert!(!concurrent.succeeded, "concurrent with a's write: the default policy rejects");
    assert_eq!(concurrent.conflicts[0].current.as_ref().unwrap().value, 2);
    assert!(write(3, &after.vclock, "b").await.succeeded);
    let absent = write(9, &BTreeMap::new(), "c").await;
    assert!(!absent.succeeded, "an empty vector means the writer saw no entry");
}

/// Keyword search finds live entries by the words of their key, kind,
/// tags and value, best first, and follows updates and deletions.
pub async fn keyword_search(store: TestStore, _clock: ManualClock) {
    new_context(&store, "s").await;
    new_context(&store, "other").await;
    let words = |q: &str| q.split(' ').map(str::to_owned).collect::<Vec<_>>();
    put(&store, "s", "findings/revenue", json!({"note": "Revenue grew 15% and revenue margins held."})).await;
    put(&store, "s", "findings/churn", json!("Churn fell; revenue steady.")).await;
    put(&store, "s", "brand/voice", json!("warm and plain")).await;
    put(&store, "other", "x", json!("revenue elsewhere")).await;
    let hits = store.search(&cid("s"), &words("revenue"), 10).await.unwrap();
    let keys: Vec<&str> = hits.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["findings/revenue", "findings/churn"], "the one that says it twice first; not other contexts");
    assert!(hits[0].1 > hits[1].1 && hits[1].1 > 0.0);
    assert_eq!(store.search(&cid("s"), &words("brand"), 10).await.unwrap()[0].0, "brand/voice", "keys are text too");
    assert!(store.search(&cid("s"), &words("nothing"), 10).await.unwrap().is_empty());
    put(&store, "s", "findings/churn", json!("Churn fell.")).await;
    let keys: Vec<String> =
        store.search(&cid("s"), &words("revenue"), 10).await.unwrap().into_iter().map(|h| h.0).collect();
    assert_eq!(keys, ["findings/revenue"], "an update replaces the text");
    store.txn(&cid("s"), txn(json!({"success": [{"op": "delete", "key": "findings/revenue"}]})), "t").await.unwrap();
    assert!(store.search(&cid("s"), &words("revenue"), 10).await.unwrap().is_empty(), "a deletion removes it");
    assert_eq!(store.search(&cid("s"), &words("warm churn"), 10).await.unwrap().len(), 2, "any of the words");
    store.delete_context(&cid("other")).await.unwrap();
    assert_eq!(code(store.search(&cid("other"), &words("revenue"), 10).await.unwrap_err()), "not_found");
}

/// Expands to one `#[tokio::test]` per conformance case. `$make` is a
/// function from the store's clock (a [`SharedClock`]) to
/// `impl Future<Output = Arc<dyn Store>>`, called once per case. Each case
/// runs on a [`ManualClock`] that moves only when the case moves it, so
/// that TTLs, leases, locks and deadlines are tested without sleeping.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            context_lifecycle, entry_versioning, txn_compare_and_branches, concurrent_increments,
            time_travel_matches_model, read_as_of_time, list_pagination, history_and_diff,
            rollback_restores, fork_from_revision, ttl_expiry, retention_compaction,
            event_log_is_gap_free, schema_enforced, notifications_and_appended_events,
            agent_registry, locks_and_fencing, lease_expiry, handoff_lifecycle, tasks_and_inbox, grants_and_access, token_owners, audit_log,
            merge_reads_the_base_from_history, manual_conflicts_wait_for_a_resolution, causal_writes_by_vclock,
            stale_writes_on_a_hot_context, keyword_search);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let clock = $crate::clock::ManualClock::new();
                let store: $crate::conformance::TestStore = ($make)(clock.shared()).await;
                $crate::conformance::$case(store, clock).await;
            }
        )*
    };
}

/// The PostgreSQL server that tests use: `CTXMESH_TEST_POSTGRES`, else the
/// local one (`postgres://postgres@127.0.0.1:5432/test`).
pub fn postgres_test_server() -> String {
    std::env::var("CTXMESH_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Creates a fresh, empty schema on the test server and returns a store
/// URL whose connections use it, so that tests never see each other's
/// data or notifications. Schemas left by test runs more than an hour old
/// are dropped on the way.
///
/// Panics when the server cannot be reached: a test that needs PostgreSQL
/// fails rather than skips (`./scripts/test` starts the local server).
pub async fn fresh_postgres_url() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let server = postgres_test_server();
    let client = crate::postgres::connect(&server).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test PostgreSQL at {server}: {e}; start it (./scripts/test does) \
             or point CTXMESH_TEST_POSTGRES at one"
        )
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let stale = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ctxmesh\\_t\\_%'", &[])
        .await
        .expect("list test schemas");
    for row in stale {
        let name: String = row.get(0);
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok()).unwrap_or(now);
        if created + 3600 < now {
            // Another run may be dropping it too; either way it goes.
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
        }
    }
    let schema = format!("ctxmesh_t_{now}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create a test schema");
    drop(client);
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}options=-csearch_path%3D{schema}")
}

/// A PostgreSQL store over a fresh schema (see [`fresh_postgres_url`]),
/// on `clock`.
pub async fn fresh_postgres(clock: SharedClock) -> TestStore {
    let url = fresh_postgres_url().await;
    let config = crate::postgres::PostgresConfig { clock, ..crate::postgres::PostgresConfig::new(url) };
    let store = crate::postgres::PostgresStore::connect(config).await.expect("open the PostgreSQL store");
    Arc::new(store)
}
