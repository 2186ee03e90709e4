//! Behaviour specific to the PostgreSQL store: several nodes over one
//! database, notifications across nodes, migrations.

use std::sync::Arc;
use std::time::Duration;

use ctxmesh_core::ids::{ContextId, EntryKey};
use ctxmesh_core::txn::TxnRequest;
use ctxmesh_store::conformance::fresh_postgres_url;
use ctxmesh_store::notify::Committed;
use ctxmesh_store::postgres::{PostgresConfig, PostgresStore};
use ctxmesh_store::{ReadAt, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;

fn cid(s: &str) -> ContextId {
    ContextId::parse(s).unwrap()
}

fn txn(v: Value) -> TxnRequest {
    serde_json::from_value(v).unwrap()
}

async fn node(url: &str) -> Arc<PostgresStore> {
    node_with(PostgresConfig::new(url)).await
}

async fn node_with(config: PostgresConfig) -> Arc<PostgresStore> {
    Arc::new(PostgresStore::connect(config).await.expect("open a node"))
}

async fn put(store: &PostgresStore, ctx: &str, key: &str, value: Value) -> u64 {
    let t = txn(json!({"success": [{"op": "put", "key": key, "value": value}]}));
    store.txn(&cid(ctx), t, "tester").await.unwrap().revision
}

/// The first notification after subscribing: the revision that was current
/// then (1 here) may be repeated first, as `Store::subscribe` allows.
async fn first(rx: &mut Receiver<Arc<Committed>>) -> Arc<Committed> {
    let committed = next(rx).await;
    if committed.revision == 1 { next(rx).await } else { committed }
}

/// The next notification, or a failure after a generous wait.
async fn next(rx: &mut Receiver<Arc<Committed>>) -> Arc<Committed> {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a notification within 20 s")
        .expect("an open channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_hears_the_commits_of_another_with_their_events() {
    let url = fresh_postgres_url().await;
    let (a, b) = (node(&url).await, node(&url).await);
    a.create_context(serde_json::from_value(json!({"id": "shared"})).unwrap(), "x").await.unwrap();
    let mut rx = b.subscribe(&cid("shared"));
    for (i, key) in ["one", "two", "three"].iter().enumerate() {
        assert_eq!(put(&a, "shared", key, json!(i)).await, i as u64 + 2);
    }
    for (i, key) in ["one", "two", "three"].iter().enumerate() {
        let committed = if i == 0 { first(&mut rx).await } else { next(&mut rx).await };
        assert_eq!(committed.revision, i as u64 + 2, "in order, without gaps");
        assert_eq!(committed.events.len(), 1);
        assert_eq!(committed.events[0].event.key.as_deref(), Some(*key));
        assert_eq!(committed.events[0].event.data.as_ref().unwrap()["value"], json!(i));
    }
    // B reads what A wrote.
    let (entry, revision) =
        b.get_entry(&cid("shared"), &EntryKey::parse("two").unwrap(), ReadAt::Latest).await.unwrap();
    assert_eq!((entry.unwrap().value, revision), (json!(1), 4));

    a.delete_context(&cid("shared")).await.unwrap();
    let gone = next(&mut rx).await;
    assert!(gone.deleted, "a deletion on one node ends the watches of every node");
    assert_eq!(gone.events[0].event.kind, "context.deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_across_nodes_loses_no_update() {
    let url = fresh_postgres_url().await;
    let nodes = [node(&url).await, node(&url).await, node(&url).await];
    nodes[0].create_context(serde_json::from_value(json!({"id": "count"})).unwrap(), "x").await.unwrap();
    put(&nodes[0], "count", "n", json!(0)).await;
    let (workers, increments) = (12, 10);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = nodes[w % nodes.len()].clone();
        tasks.push(tokio::spawn(async move {
            let key = EntryKey::parse("n").unwrap();
            let mut retries = 0;
            for _ in 0..increments {
                loop {
                    let (entry, _) = store.get_entry(&cid("count"), &key, ReadAt::Latest).await.unwrap();
                    let entry = entry.unwrap();
                    let t = txn(json!({
                        "compare": [{"key": "n", "revision": entry.revision}],
                        "success": [{"op": "put", "key": "n", "value": entry.value.as_i64().unwrap() + 1}]
                    }));
                    if store.txn(&cid("count"), t, &format!("w{w}")).await.unwrap().succeeded {
                        break;
                    }
                    retries += 1;
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let (entry, revision) =
        nodes[2].get_entry(&cid("count"), &EntryKey::parse("n").unwrap(), ReadAt::Latest).await.unwrap();
    assert_eq!(entry.unwrap().value, json!(workers * increments), "every increment counted");
    assert_eq!(revision, 2 + (workers * increments) as u64, "one revision per successful increment");
    assert!(retries > 0, "the workers did contend");
    // The history is gap-free: every revision has its commit.
    let log = nodes[1].events(&cid("count"), 0, 10_000).await.unwrap();
    let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (1..=revision).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_delays_but_never_loses_an_event() {
    let url = fresh_postgres_url().await;
    let proxy = Proxy::start(&url).await;
    let writer = node(&url).await;
    let watcher =
        node_with(PostgresConfig { poll_interval: Duration::from_millis(200), ..PostgresConfig::new(&proxy.url) })
            .await;
    writer.create_context(serde_json::from_value(json!({"id": "w"})).unwrap(), "x").await.unwrap();
    let mut rx = watcher.subscribe(&cid("w"));
    put(&writer, "w", "before", json!(1)).await;
    assert_eq!(first(&mut rx).await.revision, 2);

    // The watching node is cut off from the database: the notifications of
    // these commits never reach it.
    proxy.cut();
    put(&writer, "w", "during-1", json!(2)).await;
    put(&writer, "w", "during-2", json!(3)).await;
    proxy.restore();

    for (revision, key) in [(3, "during-1"), (4, "during-2")] {
        let committed = next(&mut rx).await;
        assert_eq!(committed.revision, revision);
        assert_eq!(committed.events[0].event.key.as_deref(), Some(key), "events come from the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let url = fresh_postgres_url().await;
    let (a, b, c) = tokio::join!(node(&url), node(&url), node(&url));
    a.create_context(serde_json::from_value(json!({"id": "m"})).unwrap(), "x").await.unwrap();
    assert_eq!(c.get_context(&cid("m")).await.unwrap().revision, 1);
    drop((a, b, c));
    let client = ctxmesh_store::postgres::connect(&url).await.unwrap();
    let rows = client.query("SELECT version FROM ctxmesh_migrations ORDER BY version", &[]).await.unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [1, 2, 3, 4], "each migration applied once");

    client.execute("INSERT INTO ctxmesh_migrations (version) VALUES (999)", &[]).await.unwrap();
    let err = PostgresStore::connect(PostgresConfig::new(&url)).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)) && err.to_string().contains("upgrade ctxmesh"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_with_a_clear_error() {
    let config = PostgresConfig::new("postgres://postgres@127.0.0.1:1/none?connect_timeout=2");
    let err = PostgresStore::connect(config).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

/// A TCP proxy in front of PostgreSQL that can cut every connection through
/// it and refuse new ones: a network partition between one node and the
/// database.
struct Proxy {
    url: String,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    async fn start(url: &str) -> Proxy {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let upstream = format!("127.0.0.1:{}", config.get_ports().first().copied().unwrap_or(5432));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, _) = tokio::sync::watch::channel(true);
        let open = Arc::new(open);
        let state = open.clone();
        let target = upstream.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let mut gate = state.subscribe();
                if !*gate.borrow() {
                    continue; // refused: dropped at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = gate.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        let url = url.replace(&upstream, &format!("127.0.0.1:{port}"));
        assert!(url.contains(&port.to_string()), "the test server URL names 127.0.0.1 and its port: {url}");
        Proxy { url, open }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}
