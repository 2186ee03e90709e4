//! Watch streams (SSE): the guarantees of docs/api.md ("Live events"), checked
//! the way etcd's robustness tests check theirs: what each watcher received,
//! joined up across disconnects and a server restart, equals the event log.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{TestServer, expect_error, status_json};

/// Why a watch connection stopped.
#[derive(Debug, PartialEq)]
pub(crate) enum Stop {
    /// The caller's condition was met.
    Done,
    /// The caller chose to disconnect after `max_events`.
    Disconnected,
    /// The server ended the stream (shutdown, error) or the connection broke.
    Ended,
    /// The server said the position was compacted.
    Compacted,
}

/// A resuming SSE client that keeps everything it received.
#[derive(Default)]
pub(crate) struct Watcher {
    pub(crate) events: Vec<Value>,
    /// (number of events held when the bookmark arrived, its revision).
    pub(crate) bookmarks: Vec<(usize, u64)>,
    last_progress: u64,
    start_after: u64,
    query: String,
}

fn rev(e: &Value) -> u64 {
    e["revision"].as_u64().unwrap()
}

impl Watcher {
    pub(crate) fn new(after: u64, query: &str) -> Self {
        Watcher { start_after: after, last_progress: after, query: query.to_owned(), ..Default::default() }
    }

    /// Where to resume so that nothing is missed or repeated: after the
    /// last bookmark, or just before the last revision seen (whose events
    /// may have been cut off), skipping the events of it already held.
    fn resume_point(&self) -> (u64, usize) {
        match self.events.last() {
            Some(last) if rev(last) > self.last_progress => {
                let r = rev(last);
                (r - 1, self.events.iter().rev().take_while(|e| rev(e) == r).count())
            }
            _ => (self.last_progress.max(self.start_after), 0),
        }
    }

    /// Connects (resuming) and reads until `until` revision is bookmarked,
    /// `max_events` new events were read, or the stream ends.
    pub(crate) async fn run(&mut self, base: &str, ctx: &str, until: u64, max_events: Option<usize>) -> Stop {
        let (after, mut skip) = self.resume_point();
        let url = format!("{base}/v1/contexts/{ctx}/watch?after={after}{}", self.query);
        let response = match reqwest::get(&url).await {
            Ok(r) if r.status() == 200 => r,
            _ => return Stop::Ended,
        };
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        let mut read = 0;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { return Stop::Ended };
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let (mut kind, mut data) = (None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        kind = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(v).unwrap());
                    }
                }
                let (Some(kind), Some(data)) = (kind, data) else { continue };
                match kind.as_str() {
                    "progress" => {
                        let r = data["revision"].as_u64().unwrap();
                        assert!(r >= self.last_progress, "bookmarks never go back");
                        self.last_progress = r;
                        self.bookmarks.push((self.events.len(), r));
                        if r >= until {
                            return Stop::Done;
                        }
                    }
                    "compacted" => return Stop::Compacted,
                    "error" => return Stop::Ended,
                    _ => {
                        assert_eq!(data["type"], kind.as_str(), "the SSE event name is the type");
                        if skip > 0 && rev(&data) == after + 1 {
                            skip -= 1;
                            continue;
                        }
                        self.events.push(data);
                        read += 1;
                        if max_events.is_some_and(|m| read >= m) {
                            return Stop::Disconnected;
                        }
                    }
                }
            }
        }
        Stop::Ended
    }

    /// Checks everything received against the log (filtered by `keep`).
    pub(crate) fn check_against(&self, log: &[Value], keep: impl Fn(&Value) -> bool, name: &str) {
        let expected: Vec<&Value> = log.iter().filter(|e| rev(e) > self.start_after && keep(e)).collect();
        let got: Vec<&Value> = self.events.iter().collect();
        assert_eq!(got.len(), expected.len(), "{name}: received {} events, the log has {}", got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "{name}: event {i} differs from the log");
        }
        for &(held, r) in &self.bookmarks {
            let due = expected.iter().filter(|e| rev(e) <= r).count();
            assert_eq!(held, due, "{name}: a bookmark at {r} came after exactly the events up to {r}");
        }
    }
}

/// Writers that put single entries and multi-entry transactions (several
/// events in one revision), until each has made `count` writes.
async fn write_burst(base: &str, ctx: &str, writers: usize, count: usize, tag: &str) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (base, ctx, tag) = (base.to_owned(), ctx.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..count {
                let r = if i % 3 == 0 {
                    let txn = json!({"success": [
                        {"op": "put", "key": format!("{tag}/w{w}/a{i}"), "value": i},
                        {"op": "put", "key": format!("{tag}/w{w}/b{i}"), "value": i, "priority": "high"},
                        {"op": "put", "key": format!("{tag}/w{w}/c{i}"), "value": i}
                    ]});
                    http.post(format!("{base}/v1/contexts/{ctx}/txn")).json(&txn).send().await.unwrap()
                } else {
                    http.put(format!("{base}/v1/contexts/{ctx}/entries/{tag}/w{w}/k{i}"))
                        .json(&json!({"value": {"w": w, "i": i}}))
                        .send()
                        .await
                        .unwrap()
                };
                assert!(r.status().is_success(), "write failed: {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_receive_the_log_exactly_across_disconnects_and_a_restart() {
    let mut server = TestServer::start().await;
    server.create(json!({"id": "w"})).await;
    let base = server.base.clone();

    // Watchers A (stays), B (drops and resumes at once), C (drops, resumes
    // only after the restart), F (filtered: prefix and priority).
    let a = Arc::new(Mutex::new(Watcher::new(0, "")));
    let b = Arc::new(Mutex::new(Watcher::new(0, "")));
    let c = Arc::new(Mutex::new(Watcher::new(0, "")));
    let f = Arc::new(Mutex::new(Watcher::new(0, "&prefix=p1/&min_priority=high")));
    let phase1 = {
        let (a, b, c, f, base) = (a.clone(), b.clone(), c.clone(), f.clone(), base.clone());
        tokio::spawn(async move {
            let run_a = async { a.lock().await.run(&base, "w", u64::MAX, None).await };
            let run_f = async { f.lock().await.run(&base, "w", u64::MAX, None).await };
            let run_b = async {
                let mut b = b.lock().await;
                let mut stops = Vec::new();
                for _ in 0..3 {
                    stops.push(b.run(&base, "w", u64::MAX, Some(37)).await);
                }
                stops.push(b.run(&base, "w", u64::MAX, None).await);
                stops
            };
            let run_c = async { c.lock().await.run(&base, "w", u64::MAX, Some(50)).await };
            tokio::join!(run_a, run_b, run_c, run_f)
        })
    };
    write_burst(&base, "w", 8, 30, "p1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The restart ends every open stream; watchers then resume on the new server.
    server.restart().await;
    let (stop_a, stops_b, stop_c, stop_f) = phase1.await.unwrap();
    assert_eq!(stop_a, Stop::Ended, "the shutdown ends the stream");
    assert_eq!(stops_b[..3], [Stop::Disconnected, Stop::Disconnected, Stop::Disconnected]);
    assert_eq!(stop_c, Stop::Disconnected);
    assert_eq!(stop_f, Stop::Ended);

    let base = server.base.clone();
    write_burst(&base, "w", 8, 30, "p2").await;
    let last = server.revision("w").await;
    for (name, w) in [("A", &a), ("B", &b), ("C", &c), ("F", &f)] {
        let stop = w.lock().await.run(&base, "w", last, None).await;
        assert_eq!(stop, Stop::Done, "watcher {name} catches up to {last}");
    }

    let log = server.log("w").await;
    assert_eq!(rev(log.last().unwrap()), last);
    let revisions: Vec<u64> = log.iter().map(rev).collect();
    assert!(revisions.windows(2).all(|p| p[1] == p[0] || p[1] == p[0] + 1), "the log itself has no gap");
    for (name, w) in [("A", &a), ("B", &b), ("C", &c)] {
        w.lock().await.check_against(&log, |_| true, name);
    }
    let high_p1 = |e: &Value| {
        let key_ok = e["key"].as_str().is_none_or(|k| k.starts_with("p1/"));
        let priority = e["priority"].as_str().unwrap_or("normal");
        key_ok && matches!(priority, "high" | "critical")
    };
    f.lock().await.check_against(&log, high_p1, "F");
    assert!(!f.lock().await.events.is_empty());
}

#[tokio::test]
async fn watch_starts_now_by_default_and_checks_its_position() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c", "retention": {"max_revisions": 2}})).await;
    expect_error(s.req(Method::GET, "/v1/contexts/nope/watch").send().await.unwrap(), 404, "not_found").await;
    expect_error(
        s.req(Method::GET, "/v1/contexts/c/watch").header("last-event-id", "x").send().await.unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        s.req(Method::GET, "/v1/contexts/c/watch?min_priority=urgent").send().await.unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    for i in 0..5 {
        s.put("c", "k", json!(i)).await;
    }
    s.req(Method::POST, "/v1/contexts/c/compact").send().await.unwrap();
    expect_error(s.req(Method::GET, "/v1/contexts/c/watch?after=1").send().await.unwrap(), 410, "compacted").await;

    // Without a position, only new events arrive.
    let mut w = Watcher::new(6, "");
    let reader = tokio::spawn({
        let base = s.base.clone();
        async move {
            let stop = w.run(&base, "c", 7, None).await;
            (stop, w)
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.put("c", "k", json!("new")).await;
    let (stop, w) = reader.await.unwrap();
    assert_eq!(stop, Stop::Done);
    assert_eq!(w.events.len(), 1);
    assert_eq!(w.events[0]["data"]["value"], "new");
}

#[tokio::test]
async fn last_event_id_resumes() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    for i in 0..3 {
        s.put("c", &format!("k{i}"), json!(i)).await; // 2, 3, 4
    }
    let r = s.req(Method::GET, "/v1/contexts/c/watch?after=0").header("last-event-id", "3").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: progress") {
        text.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
    }
    assert!(text.starts_with("id: 4\nevent: context.updated\ndata: {"), "{text}");
    assert!(!text.contains("id: 3\n"), "Last-Event-ID wins over after");
}

#[tokio::test]
async fn messages_are_logged_events_and_backlogs_go_by_priority() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let send = |priority: &str, n: i64| {
        s.req(Method::POST, "/v1/messages")
            .header("x-agent-id", "router")
            .json(&json!({"context": "c", "priority": priority, "topic": "t", "body": {"n": n}}))
            .send()
    };
    let (status, first) = status_json(send("low", 1).await.unwrap()).await;
    assert_eq!(status, 201);
    assert_eq!((first["type"].as_str(), first["revision"].as_u64()), (Some("message"), Some(2)));
    assert_eq!((first["agent"].as_str(), first["priority"].as_str()), (Some("router"), Some("low")));
    for (p, n) in [("normal", 2), ("critical", 3), ("high", 4), ("low", 5), ("critical", 6)] {
        assert_eq!(send(p, n).await.unwrap().status(), 201);
    }
    let log = s.log("c").await;
    assert_eq!(log.len(), 7, "each message is a revision of its own");

    // A subscriber with this backlog, in priority order: highest first,
    // revision order within a priority, then a bookmark.
    let mut w = Watcher::new(1, "&order=priority&types=message");
    assert_eq!(w.run(&s.base, "c", 7, None).await, Stop::Done);
    let order: Vec<i64> = w.events.iter().map(|e| e["data"]["body"]["n"].as_i64().unwrap()).collect();
    assert_eq!(order, [3, 6, 4, 2, 1, 5]);
    assert!(w.bookmarks.iter().any(|&(held, r)| held == 6 && r == 7));
    // In revision order the same backlog comes strictly by revision.
    let mut w = Watcher::new(1, "");
    assert_eq!(w.run(&s.base, "c", 7, None).await, Stop::Done);
    let order: Vec<i64> = w.events.iter().map(|e| e["data"]["body"]["n"].as_i64().unwrap()).collect();
    assert_eq!(order, [1, 2, 3, 4, 5, 6]);

    let bad = s
        .req(Method::POST, "/v1/messages")
        .json(&json!({"context": "c", "priority": "urgent", "body": 1}))
        .send()
        .await
        .unwrap();
    expect_error(bad, 400, "invalid_argument").await;
    let missing =
        s.req(Method::POST, "/v1/messages").json(&json!({"context": "nope", "body": 1})).send().await.unwrap();
    expect_error(missing, 404, "not_found").await;
    let no_body = s.req(Method::POST, "/v1/messages").json(&json!({"context": "c"})).send().await.unwrap();
    expect_error(no_body, 400, "invalid_argument").await;
    assert_eq!(s.revision("c").await, 7);
}

#[tokio::test]
async fn deleting_the_context_ends_its_watches() {
    let s = TestServer::start().await;
    s.create(json!({"id": "c"})).await;
    let r = s.req(Method::GET, "/v1/contexts/c/watch").send().await.unwrap();
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: progress") {
        text.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
    }
    assert_eq!(s.req(Method::DELETE, "/v1/contexts/c").send().await.unwrap().status(), 204);
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(text.contains("event: context.deleted"), "{text}");
}

/// A watcher that falls so far behind that its position is compacted away
/// is told so explicitly, and its stream ends.
#[tokio::test]
async fn a_watcher_whose_position_is_compacted_gets_compacted_and_ends() {
    use ctxmesh_core::ids::ContextId;
    use ctxmesh_server::watch::{Order, WatchFilter, WatchItem, WatchSpec, watch};
    use ctxmesh_store::Store;
    use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("db"))).unwrap());
    let ctx = ContextId::parse("c").unwrap();
    store
        .create_context(serde_json::from_value(json!({"id": "c", "retention": {"max_revisions": 3}})).unwrap(), "a")
        .await
        .unwrap();
    let spec = WatchSpec {
        source: ctxmesh_server::watch::Source::Context(ctx.clone()),
        after: 1,
        filter: WatchFilter::default(),
        order: Order::Revision,
        progress_interval: Duration::from_secs(60),
        access: None,
        recheck_interval: Duration::from_secs(60),
    };
    // The subscriber connects at revision 1 and then does not read.
    let stream = watch(store.clone(), spec, std::future::pending());
    futures::pin_mut!(stream);
    for i in 0..10 {
        let t = serde_json::from_value(json!({"success": [{"op": "put", "key": "k", "value": i}]})).unwrap();
        store.txn(&ctx, t, "w").await.unwrap();
    }
    let done = store.compact(Some(&ctx), chrono::Utc::now()).await.unwrap();
    assert_eq!(done[0].compacted_revision, 9);
    match stream.next().await {
        Some(WatchItem::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (1, 9)),
        other => panic!("expected compacted, got {other:?}"),
    }
    assert!(stream.next().await.is_none(), "the watch ends after compacted");
}
