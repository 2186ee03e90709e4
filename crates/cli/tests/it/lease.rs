//! `ctxmesh watch` as an agent keeps the agent's lease, and so its locks,
//! alive for as long as the process runs, and no longer.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ctxmesh_client::Client;
use serde_json::{Value, json};

use crate::ServerProcess;

/// A lease short enough for a test, long enough for a watch process to
/// start on a busy machine before it runs out.
const LEASE: Duration = Duration::from_millis(2000);

fn watch(server: &str, args: &[&str]) -> Child {
    crate::ctxmesh_command()
        .args(["watch", "job", "--server", server])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctxmesh watch starts")
}

async fn status(admin: &Client, agent: &str) -> String {
    admin.get_agent(agent).await.unwrap()["status"].as_str().unwrap().to_owned()
}

async fn holder(admin: &Client, lock: &str) -> Value {
    let locks = admin.list_locks("job").await.unwrap();
    let lock = locks["locks"].as_array().unwrap().iter().find(|l| l["name"] == lock).cloned().unwrap();
    lock["holder"].clone()
}

/// Two agents watch for three times their lease without a heartbeat of
/// their own: one by its token, one named by `--agent` with the admin
/// token. Both stay active and keep their locks; once a watch is killed,
/// its agent is disconnected and its lock released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_as_an_agent_keeps_its_lease_and_its_locks() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--auth", "on", "--expiry-interval-ms", "100"]);
    let s = server.base.as_str();
    let admin_token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let admin = Client::new(s).with_token(admin_token.trim());
    admin.create_context(&json!({"id": "job"})).await.unwrap();
    let lease_ms = LEASE.as_millis() as u64;
    let mut tokens = Vec::new();
    for agent in ["worker", "helper"] {
        let registered = admin.register_agent(&json!({"id": agent, "lease_ms": lease_ms})).await.unwrap();
        tokens.push(registered["token"].as_str().unwrap().to_owned());
        admin.grant("job", &[agent.to_owned()], &["read".into(), "write".into()], None).await.unwrap();
        let as_agent = Client::new(s).with_token(&tokens[tokens.len() - 1]);
        let lock = as_agent.acquire_lock("job", &format!("{agent}-lock"), 600_000, 0).await.unwrap();
        assert_eq!(lock["acquired"], true);
    }

    let data_dir = dir.path().to_str().unwrap();
    for agent in ["worker", "helper"] {
        admin.heartbeat(agent).await.unwrap();
    }
    let mut by_token = watch(s, &["--token", &tokens[0], "--data-dir", "/nonexistent"]);
    let mut by_name = watch(s, &["--agent", "helper", "--data-dir", data_dir]);
    let started = Instant::now();
    while started.elapsed() < 3 * LEASE {
        for agent in ["worker", "helper"] {
            assert_eq!(status(&admin, agent).await, "active", "{agent} after {:?}", started.elapsed());
            assert_eq!(holder(&admin, &format!("{agent}-lock")).await, agent);
        }
        tokio::time::sleep(LEASE / 10).await;
    }

    by_token.kill().unwrap();
    by_token.wait().unwrap();
    let deadline = Instant::now() + LEASE + Duration::from_secs(10);
    // The agent of a dead watch is disconnected, and its lock released.
    while status(&admin, "worker").await != "disconnected" || holder(&admin, "worker-lock").await != Value::Null {
        assert!(Instant::now() < deadline, "the lease of a dead watch's agent runs out, and its lock with it");
        tokio::time::sleep(LEASE / 10).await;
    }
    assert_eq!(status(&admin, "helper").await, "active", "the other watch still keeps its agent");
    by_name.kill().unwrap();
    by_name.wait().unwrap();
}
