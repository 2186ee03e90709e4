//! `ctxmesh bench` CAS scenarios: they run ctxmesh and the Redis and
//! PostgreSQL baselines side by side and check that every acknowledged
//! write is accounted for; and the SQLite floor.

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = crate::ctxmesh_command().arg("bench").arg("--json").args(args).output().expect("the ctxmesh binary runs");
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

#[test]
fn cas_scenarios_run_ctxmesh_and_redis_side_by_side() {
    // Redis is started by the bench itself, from redis-server (the test
    // command installs it): missing, this test fails.
    let systems = "ctxmesh,ctxmesh-relaxed,redis,redis-fsync";
    let one = bench(&["cas-one", "--clients", "1,4", "--duration", "1", "--systems", systems]);
    assert_eq!(one["scenario"], "cas-one");
    let results = one["results"].as_array().unwrap();
    assert_eq!(results.len(), 8, "{one:#}");
    for r in results {
        assert_eq!(r["errors"], 0, "{r:#}");
        assert_eq!(r["writes_verified"], true, "{r:#}");
        assert!(r["cas_per_second"].as_f64().unwrap() > 0.0, "{r:#}");
        assert!(r["cas"]["p99_ms"].as_f64().unwrap() >= r["cas"]["p50_ms"].as_f64().unwrap());
        // The bench started every one of these servers: their CPU time
        // per request is measured.
        assert!(r["server_cpu_us_per_request"].as_f64().is_some_and(|us| us > 0.0), "{r:#}");
        // One client never conflicts with itself.
        if r["clients"] == 1 {
            assert_eq!(r["conflict_ratio"], 0.0, "{r:#}");
        }
    }
    let names: Vec<&str> = results.iter().map(|r| r["system"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["ctxmesh", "ctxmesh", "ctxmesh-relaxed", "ctxmesh-relaxed", "redis", "redis", "redis-fsync", "redis-fsync"]
    );

    let heavy =
        bench(&["read-heavy", "--clients", "2", "--duration", "1", "--keys", "50", "--systems", "ctxmesh,redis"]);
    for r in heavy["results"].as_array().unwrap() {
        assert_eq!(r["writes_verified"], true, "{r:#}");
        // About nine reads for each write.
        let reads = r["read"]["samples"].as_f64().unwrap();
        let writes = r["cas"]["samples"].as_f64().unwrap();
        assert!(reads > writes * 5.0, "{r:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_scenarios_run_ctxmesh_on_postgresql_and_postgresql_alone_side_by_side() {
    // A fresh schema of the test database for ctxmesh; the baseline makes
    // one of its own per run and drops it. No PostgreSQL: this test fails.
    let url = ctxmesh_store::conformance::fresh_postgres_url().await;
    let mut cmd = crate::ctxmesh_command();
    cmd.args(["bench", "--json", "cas-one", "--clients", "1,4", "--duration", "1"])
        .args(["--systems", "ctxmesh-postgres,postgres", "--postgres", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("the ctxmesh binary runs");
    let pid = child.id();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let out: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let results = out["results"].as_array().unwrap();
    let names: Vec<&str> = results.iter().map(|r| r["system"].as_str().unwrap()).collect();
    assert_eq!(names, ["ctxmesh-postgres", "ctxmesh-postgres", "postgres", "postgres"], "{out:#}");
    for r in results {
        assert_eq!(r["errors"], 0, "{r:#}");
        assert_eq!(r["writes_verified"], true, "{r:#}");
        assert!(r["cas_per_second"].as_f64().unwrap() > 0.0, "{r:#}");
        if r["clients"] == 1 {
            assert_eq!(r["conflict_ratio"], 0.0, "{r:#}");
        }
        // A database the bench did not start has no CPU figure.
        let cpu = r["server_cpu_us_per_request"].as_f64();
        assert_eq!(cpu.is_some(), r["system"] == "ctxmesh-postgres", "{r:#}");
    }
    // The baseline dropped the schemas of its runs.
    let server = ctxmesh_store::conformance::postgres_test_server();
    let client = ctxmesh_store::postgres::connect(&server).await.unwrap();
    let names: Vec<String> = [1, 4].iter().map(|c| format!("ctxmesh_bench_cas_{pid}_{c}")).collect();
    let left = client.query("SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)", &[&names]).await.unwrap();
    assert!(
        left.is_empty(),
        "schemas left behind: {:?}",
        left.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    );
}

#[test]
fn sqlite_floor_reports_each_row_set() {
    let out = bench(&["sqlite-floor", "--writes", "300", "--batch", "10", "--keys", "20"]);
    let reports = out.as_array().expect("one report per row set");
    let rows: Vec<&str> = reports.iter().map(|r| r["rows"].as_str().unwrap()).collect();
    assert_eq!(rows, ["entry", "history", "full"]);
    for r in reports {
        assert_eq!((r["writes"].as_u64(), r["batch"].as_u64()), (Some(300), Some(10)), "{r:#}");
        assert!(r["writes_per_sec"].as_f64().unwrap() > 0.0, "{r:#}");
        assert!(r["cpu_us_per_write"].as_f64().unwrap() > 0.0, "{r:#}");
    }
    // Bad options are refused before anything runs.
    let refused = crate::ctxmesh_command()
        .args(["bench", "sqlite-floor", "--batch", "0"])
        .output()
        .expect("the ctxmesh binary runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be positive"));
}

#[test]
fn output_to_a_reader_that_has_gone_ends_quietly() {
    // `ctxmesh ... | head -1`: the reader closes the pipe before the
    // command prints (the floor writes first); the command ends with
    // success, without a panic.
    let mut child = crate::ctxmesh_command()
        .args(["bench", "sqlite-floor", "--writes", "60", "--batch", "5", "--keys", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the ctxmesh binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}, stderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
