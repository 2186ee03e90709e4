//! The consistency check finds nothing wrong with a store that every
//! conformance case has written (on its own database, and on a snapshot of
//! it), so that what it reports is damage, not the store's normal shapes.

use std::sync::Arc;

use ctxmesh_store::sqlite::backup::check;
use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};
use ctxmesh_store::{ManualClock, Store};

/// Runs a conformance case on a fresh store, then checks the database and
/// a snapshot of it.
macro_rules! checked_after {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("ctxmesh.db");
                let clock = ManualClock::new();
                let config = SqliteConfig { clock: clock.shared(), commit_log: true, ..SqliteConfig::new(&path) };
                let store: Arc<dyn Store> = Arc::new(SqliteStore::open(config).unwrap());
                ctxmesh_store::conformance::$case(store.clone(), clock).await;
                let live = check(&path, false).unwrap();
                assert!(live.ok(), "the store after {} fails the check: {:#?}", stringify!($case), live.problems);
                let snapshot = store.snapshot().await.unwrap().expect("the embedded store makes snapshots");
                let copy = check(snapshot.path(), true).unwrap();
                assert!(copy.ok(), "the snapshot after {} fails the check: {:#?}", stringify!($case), copy.problems);
                assert_eq!(copy.contexts, live.contexts, "the snapshot has the store's contexts");
                let file = snapshot.path().to_owned();
                drop(snapshot);
                assert!(!file.exists(), "a snapshot's file goes with it");
            }
        )*
    };
}

checked_after!(
    context_lifecycle,
    entry_versioning,
    txn_compare_and_branches,
    concurrent_increments,
    time_travel_matches_model,
    read_as_of_time,
    list_pagination,
    history_and_diff,
    rollback_restores,
    fork_from_revision,
    ttl_expiry,
    retention_compaction,
    event_log_is_gap_free,
    schema_enforced,
    notifications_and_appended_events,
    agent_registry,
    locks_and_fencing,
    lease_expiry,
    handoff_lifecycle,
    tasks_and_inbox,
    grants_and_access,
    token_owners,
    audit_log,
    merge_reads_the_base_from_history,
    manual_conflicts_wait_for_a_resolution,
    causal_writes_by_vclock,
    stale_writes_on_a_hot_context,
    keyword_search,
);
