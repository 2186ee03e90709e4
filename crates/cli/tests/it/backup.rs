//! Backups taken while writers write restore to a consistent store that
//! holds, context by context, exactly the state at some revision no older
//! than the writes acknowledged before the backup began; restore refuses
//! damaged backups and existing stores; `ctxmesh check` finds damage.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::ServerProcess;

const CONTEXTS: [&str; 3] = ["alpha", "beta", "gamma"];

/// One acknowledged write: context, key, the revision the server
/// acknowledged, the value (`None`: a deletion).
type Acked = (String, String, u64, Option<Value>);

/// The test's own HTTP clients speak rustls with ring.
fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs `ctxmesh ARGS` to its end.
fn ctxmesh(args: &[&str]) -> Output {
    crate::ctxmesh_command().args(args).output().expect("the ctxmesh binary runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writers putting (and now and then deleting) keys in every context until
/// `stop`; each acknowledged write goes to `acked`.
fn start_writers(base: &str, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<Acked>>>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|w| {
            let (base, stop, acked) = (base.to_owned(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..1_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let ctx = CONTEXTS[(w + i as usize) % CONTEXTS.len()];
                    // Keys are written again and again: entries have histories.
                    let key = format!("w{w}/k{}", i % 12);
                    let url = format!("{base}/v1/contexts/{ctx}/entries/{key}");
                    let (answer, value) = if i % 7 == 6 {
                        (http.delete(&url).send().await.unwrap(), None)
                    } else {
                        let value = json!({"writer": w, "i": i, "text": format!("note {i} of writer {w}")});
                        (http.put(&url).json(&json!({"value": value})).send().await.unwrap(), Some(value))
                    };
                    let status = answer.status().as_u16();
                    if value.is_none() && status == 404 {
                        continue;
                    }
                    assert!(matches!(status, 200 | 201), "write answered {status}");
                    let body: Value = answer.json().await.unwrap();
                    let revision = body["revision"].as_u64().expect("the answer has the revision");
                    acked.lock().unwrap().push((ctx.to_owned(), key, revision, value));
                }
            })
        })
        .collect()
}

/// The highest acknowledged revision of each context.
fn acknowledged(acked: &Mutex<Vec<Acked>>) -> BTreeMap<String, u64> {
    let mut top = BTreeMap::new();
    for (ctx, _, revision, _) in acked.lock().unwrap().iter() {
        let r = top.entry(ctx.clone()).or_insert(0);
        *r = (*r).max(*revision);
    }
    top
}

async fn context_revision(http: &reqwest::Client, base: &str, ctx: &str) -> u64 {
    let info: Value = http.get(format!("{base}/v1/contexts/{ctx}")).send().await.unwrap().json().await.unwrap();
    info["revision"].as_u64().unwrap()
}

/// Waits (bounded) until every context has more than `revisions` revisions.
async fn wait_for_revisions(http: &reqwest::Client, base: &str, revisions: u64) {
    for _ in 0..2_000 {
        let mut lowest = u64::MAX;
        for ctx in CONTEXTS {
            lowest = lowest.min(context_revision(http, base, ctx).await);
        }
        if lowest > revisions {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the writers did not reach revision {revisions}");
}

/// Every entry of `ctx` (at revision `at`, or the latest), by key.
async fn entries(http: &reqwest::Client, base: &str, ctx: &str, at: Option<u64>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/contexts/{ctx}/entries?limit=1000");
        if let Some(at) = at {
            url.push_str(&format!("&at={at}"));
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let answer = http.get(url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let page: Value = answer.json().await.unwrap();
        for e in page["entries"].as_array().unwrap() {
            out.insert(e["key"].as_str().unwrap().to_owned(), e.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Takes a backup through the CLI in the middle of a write load, restores
/// it into a new data directory and checks it against the original.
async fn backup_under_load(serve_flags: &[&str], from_data_dir: bool) {
    tls();
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let server = ServerProcess::start(&original, serve_flags);
    let http = reqwest::Client::new();
    for ctx in CONTEXTS {
        let r = http.post(format!("{}/v1/contexts", server.base)).json(&json!({"id": ctx})).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers = start_writers(&server.base, stop.clone(), acked.clone());
    wait_for_revisions(&http, &server.base, 60).await;

    // The backup, while the writers go on.
    let before = acknowledged(&acked);
    let backup_dir = dir.path().join("backup");
    let mut args = vec!["backup".to_owned(), "--to".to_owned(), path(&backup_dir).to_owned()];
    if from_data_dir {
        args.extend(["--data-dir".to_owned(), path(&original).to_owned()]);
    } else {
        args.extend(["--server".to_owned(), server.base.clone()]);
    }
    let out = tokio::task::spawn_blocking(move || {
        crate::ctxmesh_command().args(&args).output().expect("the ctxmesh binary runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "backup failed: {}", text(&out));
    let during = acknowledged(&acked);
    // The writers go on past the backup, then stop.
    let past: u64 = during.values().copied().max().unwrap() + 30;
    wait_for_revisions(&http, &server.base, past).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let manifest: Value = serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["database"]["file"], "ctxmesh.db");
    assert_eq!(
        manifest["database"]["size"].as_u64().unwrap(),
        std::fs::metadata(backup_dir.join("ctxmesh.db")).unwrap().len()
    );
    assert_eq!(manifest["source"]["kind"], if from_data_dir { "data-dir" } else { "server" });
    if from_data_dir {
        assert_eq!(manifest["source"]["server_running"], true);
    }

    // Restored into a new data directory.
    let restored = dir.path().join("restored");
    let out = ctxmesh(&["restore", "--from", path(&backup_dir), "--data-dir", path(&restored)]);
    assert!(out.status.success(), "restore failed: {}", text(&out));
    assert!(text(&out).contains("consistent"), "{}", text(&out));
    let out = ctxmesh(&["check", "--data-dir", path(&restored)]);
    assert!(out.status.success(), "the restored store fails the check: {}", text(&out));

    let copy = ServerProcess::start(&restored, serve_flags);
    let mut later_writes = 0;
    for ctx in CONTEXTS {
        let r = context_revision(&http, &copy.base, ctx).await;
        let in_manifest = manifest["contexts"].as_array().unwrap().iter().find(|c| c["id"] == ctx).unwrap();
        assert_eq!(in_manifest["revision"].as_u64().unwrap(), r, "{ctx}: the manifest's revision");
        // Every write acknowledged before the backup began is in it.
        assert!(r >= before[ctx], "{ctx}: restored revision {r}, but {} was acknowledged before", before[ctx]);
        // The state at R, entry by entry, as the original's history has it.
        let expected = entries(&http, &server.base, ctx, Some(r)).await;
        let actual = entries(&http, &copy.base, ctx, None).await;
        assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{ctx}: keys at {r}");
        for (key, entry) in &expected {
            assert_eq!(&actual[key], entry, "{ctx}/{key} at revision {r}");
        }
        // Every acknowledged write up to R is in the restored history.
        for (c, key, revision, value) in acked.iter().filter(|a| a.0 == ctx) {
            if *revision > r {
                later_writes += 1;
                continue;
            }
            let answer =
                http.get(format!("{}/v1/contexts/{c}/entries/{key}?at={revision}", copy.base)).send().await.unwrap();
            match value {
                Some(value) => {
                    assert_eq!(answer.status(), 200, "{c}/{key} at {revision}");
                    let entry: Value = answer.json().await.unwrap();
                    assert_eq!((&entry["value"], entry["revision"].as_u64()), (value, Some(*revision)), "{c}/{key}");
                }
                None => assert_eq!(answer.status(), 404, "{c}/{key} was deleted at {revision}"),
            }
        }
        // Nothing after R: the restored store's history ends there.
        let answer = http.get(format!("{}/v1/contexts/{ctx}/entries?at={}", copy.base, r + 1)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{ctx}: no revision after {r}");
    }
    assert!(later_writes > 0, "writes went on after the backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_writes_restores_consistently() {
    backup_under_load(&[], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_with_the_commit_log_restores_consistently() {
    backup_under_load(&["--commit-log"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_of_a_data_dir_beside_its_server_restores_consistently() {
    backup_under_load(&["--commit-log"], true).await;
}

/// A small store in `data_dir`, written by a server that has stopped.
async fn small_store(data_dir: &Path) {
    tls();
    let mut server = ServerProcess::start(data_dir, &["--commit-log"]);
    let http = reqwest::Client::new();
    http.post(format!("{}/v1/contexts", server.base)).json(&json!({"id": "notes"})).send().await.unwrap();
    for i in 0..20 {
        let r = http
            .put(format!("{}/v1/contexts/notes/entries/k{}", server.base, i % 5))
            .json(&json!({"value": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_data_dir_is_backed_up_and_restores_refuse_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    small_store(&original).await;
    let backup = dir.path().join("backup");
    let out = ctxmesh(&["backup", "--to", path(&backup), "--data-dir", path(&original)]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest: Value = serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"]["server_running"], false);
    assert_eq!(manifest["contexts"], json!([{"id": "notes", "revision": 21, "entries": 5}]));
    // A second backup into the same directory is refused.
    let out = ctxmesh(&["backup", "--to", path(&backup), "--data-dir", path(&original)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("holds a backup already"), "{}", text(&out));
    let out = ctxmesh(&["check", "--backup", path(&backup)]);
    assert!(out.status.success(), "{}", text(&out));

    // Restoring over an existing store is refused without --force, and
    // changes nothing.
    let before = std::fs::read(original.join("ctxmesh.db")).unwrap();
    let out = ctxmesh(&["restore", "--from", path(&backup), "--data-dir", path(&original)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(std::fs::read(original.join("ctxmesh.db")).unwrap(), before);
    // With --force it is replaced (its commit log and WAL go with it).
    let out = ctxmesh(&["restore", "--from", path(&backup), "--data-dir", path(&original), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!original.join("ctxmesh.db-log").exists());

    // A backup with one byte changed is refused by its checksum.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::copy(backup.join("manifest.json"), damaged.join("manifest.json")).unwrap();
    let mut bytes = std::fs::read(backup.join("ctxmesh.db")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(damaged.join("ctxmesh.db"), bytes).unwrap();
    let target = dir.path().join("target");
    let out = ctxmesh(&["restore", "--from", path(&damaged), "--data-dir", path(&target)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not match its manifest"), "{}", text(&out));
    assert!(!target.join("ctxmesh.db").exists(), "nothing was restored");
    let out = ctxmesh(&["check", "--backup", path(&damaged)]);
    assert!(!out.status.success());

    // A restore into a data directory a server runs on is refused.
    let server = ServerProcess::start(&original, &[]);
    let out = ctxmesh(&["restore", "--from", path(&backup), "--data-dir", path(&original), "--force"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("in use by another ctxmesh process"), "{}", text(&out));
    drop(server);
}

/// A copy of the (stopped) store in `from`: its database and its WAL.
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for file in ["ctxmesh.db", "ctxmesh.db-wal"] {
        if from.join(file).exists() {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_finds_a_damaged_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_store(&data).await;
    let out = ctxmesh(&["check", "--data-dir", path(&data)]);
    assert!(out.status.success(), "{}", text(&out));

    // A commit in the middle of the history is gone.
    let damaged = dir.path().join("no-commit");
    copy_store(&data, &damaged);
    let conn = rusqlite::Connection::open(damaged.join("ctxmesh.db")).unwrap();
    assert_eq!(conn.execute("DELETE FROM commits WHERE ctx = 'notes' AND revision = 7", []).unwrap(), 1);
    drop(conn);
    let out = ctxmesh(&["check", "--data-dir", path(&damaged)]);
    assert!(!out.status.success(), "a missing commit goes unnoticed");
    assert!(text(&out).contains("commits between revisions 1 and 21"), "{}", text(&out));

    // The version a live entry points to is gone.
    let damaged = dir.path().join("no-version");
    copy_store(&data, &damaged);
    let conn = rusqlite::Connection::open(damaged.join("ctxmesh.db")).unwrap();
    let deleted = conn
        .execute(
            "DELETE FROM versions WHERE ctx = 'notes' AND key = 'k2' \
             AND revision = (SELECT revision FROM entries WHERE ctx = 'notes' AND key = 'k2')",
            [],
        )
        .unwrap();
    assert_eq!(deleted, 1);
    drop(conn);
    let out = ctxmesh(&["check", "--data-dir", path(&damaged)]);
    assert!(!out.status.success(), "a missing version goes unnoticed");
    assert!(text(&out).contains("a live entry that is not the newest version of its key"), "{}", text(&out));
}

/// A server on PostgreSQL refuses the backup and says what to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_postgres_server_is_refused() {
    tls();
    let url = ctxmesh_store::conformance::fresh_postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--store", &url, "--pool-size", "2"]);
    let backup = dir.path().join("backup");
    let out = ctxmesh(&["backup", "--to", path(&backup), "--server", &server.base]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(4), "a conflict: {}", text(&out));
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
    assert!(!backup.join("manifest.json").exists() && !backup.join("ctxmesh.db").exists());
}
