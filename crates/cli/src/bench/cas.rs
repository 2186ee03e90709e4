//! The compare-and-swap scenarios, side by side with the baselines that
//! hand-built shared context uses: Redis with an atomic Lua
//! compare-and-swap script (version check and write in one script), and
//! PostgreSQL alone with a conditional `UPDATE` (the floor under ctxmesh
//! on PostgreSQL).
//!
//! Every system runs the same protocol: a client reads an entry's version,
//! then writes a new value on the condition that the version is still the
//! one it read (ctxmesh: `GET`, then `PUT` with `If-Match`; Redis: `HMGET`,
//! then `EVALSHA` of the script; PostgreSQL: `SELECT version`, then
//! `UPDATE ... WHERE key = $1 AND version = $2`). A refused write is a
//! conflict; the client reads again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::{Percentiles, Target};

/// The script of the Redis baseline (one version field and one value
/// field per key; 1 when written, 0 on a conflict).
const CAS_SCRIPT: &str = r"
local cur_ver = tonumber(redis.call('HGET', KEYS[1], 'version'))
if cur_ver ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'raw', ARGV[2])
return 1
";

/// Options of the CAS scenarios.
#[derive(Args, Debug)]
pub(crate) struct CasBench {
    /// Concurrent clients, one run per count (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
    clients: Vec<usize>,
    /// Seconds each run measures (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Size of each written value, in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Entries the clients work on (default: 1 for cas-one, 1,000 for the
    /// others).
    #[arg(long)]
    keys: Option<usize>,
    /// Systems to run, side by side (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "ctxmesh,redis,redis-fsync")]
    systems: Vec<System>,
    /// The PostgreSQL database of `ctxmesh-postgres` and `postgres` (the
    /// baseline works in a schema of its own per run, dropped after).
    #[arg(long, env = "CTXMESH_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// The `redis-server` binary the Redis baselines start (each on a
    /// port and directory of its own).
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
}

/// A system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum System {
    /// ctxmesh on its embedded store, writes acknowledged after fsync.
    Ctxmesh,
    /// ctxmesh on its embedded store, `--durability relaxed`.
    CtxmeshRelaxed,
    /// ctxmesh on its embedded store with `--commit-log`: writes
    /// acknowledged once their commit log record is synced.
    CtxmeshLog,
    /// ctxmesh on PostgreSQL (`--postgres`).
    CtxmeshPostgres,
    /// Redis with the Lua CAS script, persistence off.
    Redis,
    /// Redis with the Lua CAS script, `appendonly yes`, `appendfsync always`.
    RedisFsync,
    /// PostgreSQL alone (`--postgres`): a table (key, version, raw), read
    /// by `SELECT version`, written by `UPDATE ... WHERE version = $2` in
    /// autocommit (durable commits), one connection per client.
    Postgres,
}

impl System {
    fn describe(self) -> &'static str {
        match self {
            System::Ctxmesh => "ctxmesh embedded (durable)",
            System::CtxmeshRelaxed => "ctxmesh embedded (relaxed)",
            System::CtxmeshLog => "ctxmesh embedded (commit log)",
            System::CtxmeshPostgres => "ctxmesh on PostgreSQL",
            System::Redis => "Redis+Lua, no persistence",
            System::RedisFsync => "Redis+Lua, appendfsync always",
            System::Postgres => "PostgreSQL alone (UPDATE)",
        }
    }
}

/// Which CAS scenario.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Workload {
    /// Every client on one entry.
    One,
    /// Writes spread over many entries.
    Many,
    /// 90% reads, 10% read-then-CAS, over many entries.
    ReadHeavy,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::One => "cas-one",
            Workload::Many => "cas-many",
            Workload::ReadHeavy => "read-heavy",
        }
    }

    /// Percent of iterations that only read.
    fn read_percent(self) -> u64 {
        match self {
            Workload::ReadHeavy => 90,
            _ => 0,
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct RunResult {
    system: System,
    clients: usize,
    seconds: f64,
    /// Conditional writes that succeeded, per second.
    cas_per_second: f64,
    /// Conditional writes refused because another client wrote first, as a
    /// share of all conditional writes.
    conflict_ratio: f64,
    /// Every request (reads and conditional writes), per second.
    requests_per_second: f64,
    /// Latency of the conditional writes.
    cas: Percentiles,
    /// Latency of the reads.
    read: Percentiles,
    /// CPU time the server process used per request (reads and writes),
    /// in microseconds, over the measured seconds: all its threads, user
    /// and system (`None`: the bench did not start the process, or not
    /// on Linux).
    server_cpu_us_per_request: Option<f64>,
    /// Requests that failed otherwise (should be 0).
    errors: u64,
    /// Whether the entries' versions, read after the run, account for
    /// exactly the writes acknowledged (warm-up included): none lost, none
    /// applied twice.
    writes_verified: bool,
}

pub(crate) async fn run(
    workload: Workload,
    server: Option<&str>,
    bench: &CasBench,
    json_out: bool,
) -> anyhow::Result<()> {
    let keys = bench.keys.unwrap_or(match workload {
        Workload::One => 1,
        _ => 1000,
    });
    if keys == 0 || bench.clients.contains(&0) {
        bail!("--keys and --clients must be at least 1");
    }
    let value = "v".repeat(bench.value_size);
    let mut results = Vec::new();
    for &system in &bench.systems {
        // One server per system, shared by its runs (a fresh context or key
        // space per run).
        let mut host = Host::start(system, server, bench).await?;
        for &clients in &bench.clients {
            let space = format!("cas-{}-{clients}", std::process::id());
            let driver = host.driver(&space, keys, &value).await?;
            let run = Run { system, clients, keys, workload, seconds: bench.duration, pid: host.pid() };
            results.push(measure(&run, &driver, &value).await?);
            driver.close().await;
        }
        host.stop();
    }
    if json_out {
        let out = json!({"scenario": workload.name(), "keys": keys, "value_size": bench.value_size,
            "duration_s": bench.duration, "results": results});
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(workload, keys, bench, &results);
    }
    if let Some(bad) = results.iter().find(|r| !r.writes_verified || r.errors > 0) {
        bail!(
            "{} with {} clients: {} errors, writes verified: {}",
            bad.system.describe(),
            bad.clients,
            bad.errors,
            bad.writes_verified
        );
    }
    Ok(())
}

fn print_table(workload: Workload, keys: usize, bench: &CasBench, results: &[RunResult]) {
    outln!(
        "{}: {keys} entr{}, {}% reads, {} B values, {} s per run",
        workload.name(),
        if keys == 1 { "y" } else { "ies" },
        workload.read_percent(),
        bench.value_size,
        bench.duration
    );
    outln!(
        "{:<30} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>11} {:>8}",
        "system",
        "clients",
        "cas ok/s",
        "conflicts",
        "req/s",
        "cas p50",
        "cas p90",
        "cas p99",
        "cas max",
        "read p99",
        "cpu us/req",
        "verified"
    );
    for r in results {
        let cpu = r.server_cpu_us_per_request.map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"));
        outln!(
            "{:<30} {:>7} {:>9.0} {:>8.1}% {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>11} {:>8}",
            r.system.describe(),
            r.clients,
            r.cas_per_second,
            r.conflict_ratio * 100.0,
            r.requests_per_second,
            r.cas.p50_ms,
            r.cas.p90_ms,
            r.cas.p99_ms,
            r.cas.max_ms,
            r.read.p99_ms,
            cpu,
            if r.writes_verified && r.errors == 0 { "yes" } else { "NO" }
        );
    }
    outln!(
        "(latencies in ms; cpu us/req: CPU time of the server process (all threads, user and system) per request, \
         when the bench started it; verified: the entries' versions account for every acknowledged write, and no \
         request failed)"
    );
}

/// A running system.
enum Host {
    Ctxmesh(Target),
    Redis {
        process: Child,
        url: String,
        _dir: tempfile::TempDir,
    },
    /// A database someone else runs.
    Postgres {
        url: String,
    },
}

impl Host {
    async fn start(system: System, server: Option<&str>, bench: &CasBench) -> anyhow::Result<Self> {
        let flags: Vec<&str> = match system {
            System::Ctxmesh => vec!["--durability", "full"],
            System::CtxmeshRelaxed => vec!["--durability", "relaxed"],
            System::CtxmeshLog => vec!["--durability", "full", "--commit-log"],
            System::CtxmeshPostgres => vec!["--durability", "full", "--store", &bench.postgres],
            System::Redis => return Self::redis(&bench.redis_server, false).await,
            System::RedisFsync => return Self::redis(&bench.redis_server, true).await,
            System::Postgres => return Ok(Host::Postgres { url: bench.postgres.clone() }),
        };
        if let (System::Ctxmesh, Some(url)) = (system, server) {
            // Its clients speak HTTP/1.1 over plain TCP, as cheaply as can be.
            if !url.starts_with("http://") {
                bail!("the CAS scenarios measure a server over plain HTTP: give --server an http:// address");
            }
            return Ok(Host::Ctxmesh(Target::remote(url, None)?));
        }
        // A bench server on loopback, without tokens or rate limits.
        let mut all = vec!["--auth", "off", "--rate-limit", "0"];
        all.extend(flags);
        Ok(Host::Ctxmesh(Target::spawn(&all)?))
    }

    async fn redis(binary: &str, fsync: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a directory for Redis")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if fsync {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let process = cmd.spawn().with_context(|| {
            format!("cannot start {binary}: install Redis (apt-get install redis-server) or leave the Redis systems out of --systems")
        })?;
        let url = format!("redis://127.0.0.1:{port}/");
        let client = redis::Client::open(url.as_str())?;
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                return Ok(Host::Redis { process, url, _dir: dir });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{binary} did not answer on port {port}")
    }

    /// A driver over a fresh key space `space` of `keys` entries.
    async fn driver(&mut self, space: &str, keys: usize, value: &str) -> anyhow::Result<Driver> {
        match self {
            Host::Ctxmesh(target) => {
                let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
                let base = format!("{}/v1/contexts/{space}", target.base);
                let create = http.post(format!("{}/v1/contexts", target.base)).json(&json!({"id": space}));
                expect_ok(create.send().await?).await?;
                for chunk in (0..keys).collect::<Vec<_>>().chunks(200) {
                    let ops: Vec<Value> =
                        chunk.iter().map(|k| json!({"op": "put", "key": format!("k{k}"), "value": value})).collect();
                    expect_ok(http.post(format!("{base}/txn")).json(&json!({"success": ops})).send().await?).await?;
                }
                Ok(Driver::Http { http, base })
            }
            Host::Redis { url, .. } => {
                let client = redis::Client::open(url.as_str())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                let mut pipe = redis::pipe();
                for k in 0..keys {
                    pipe.hset_multiple(format!("{space}:k{k}"), &[("version", "1"), ("raw", value)]).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
                Ok(Driver::Redis { client, space: space.to_owned(), script: redis::Script::new(CAS_SCRIPT) })
            }
            Host::Postgres { url } => {
                // A schema of the run's own: nothing of ctxmesh's tables,
                // nothing left behind.
                let schema = format!("ctxmesh_bench_{}", space.replace('-', "_"));
                let client = pg_connect(url).await?;
                client
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
                         CREATE TABLE {schema}.t (key TEXT PRIMARY KEY, version BIGINT NOT NULL, raw TEXT NOT NULL)"
                    ))
                    .await
                    .context("cannot create the PostgreSQL baseline's table")?;
                let keys: Vec<String> = (0..keys).map(|k| format!("k{k}")).collect();
                client
                    .execute(
                        &format!("INSERT INTO {schema}.t SELECT k, 1, $2 FROM unnest($1::text[]) AS k"),
                        &[&keys, &value],
                    )
                    .await?;
                Ok(Driver::Postgres { url: url.clone(), schema })
            }
        }
    }

    /// The process of the system, when the bench started it.
    fn pid(&self) -> Option<u32> {
        match self {
            Host::Ctxmesh(target) => target.pid(),
            Host::Redis { process, .. } => Some(process.id()),
            Host::Postgres { .. } => None,
        }
    }

    fn stop(&mut self) {
        if let Host::Redis { process, .. } = self {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn expect_ok(response: reqwest::Response) -> anyhow::Result<()> {
    if !response.status().is_success() {
        bail!("the server refused the set-up: {} {}", response.status(), response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// A connection to PostgreSQL, driven by a task of its own.
async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    ctxmesh_store::postgres::connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}: start it or pass --postgres"))
}

/// How clients talk to a system.
#[derive(Clone)]
enum Driver {
    Http {
        http: reqwest::Client,
        base: String,
    },
    Redis {
        client: redis::Client,
        space: String,
        script: redis::Script,
    },
    /// The run's table is `<schema>.t`.
    Postgres {
        url: String,
        schema: String,
    },
}

/// One client's connection.
enum Conn {
    Http(HttpConn),
    Redis(redis::aio::MultiplexedConnection, String, redis::Script),
    Postgres(PgConn),
}

/// A client's own PostgreSQL connection and its two prepared statements.
struct PgConn {
    client: tokio_postgres::Client,
    read: tokio_postgres::Statement,
    cas: tokio_postgres::Statement,
}

/// What a conditional write came to.
enum Outcome {
    Written,
    Conflict,
}

impl Driver {
    /// A connection of its own for one client (Redis: one socket per
    /// client, as ctxmesh's clients each use one HTTP connection).
    async fn connect(&self) -> anyhow::Result<Conn> {
        Ok(match self {
            Driver::Http { base, .. } => Conn::Http(HttpConn::open(base).await?),
            Driver::Redis { client, space, script } => {
                Conn::Redis(client.get_multiplexed_async_connection().await?, space.clone(), script.clone())
            }
            Driver::Postgres { url, schema } => {
                let client = pg_connect(url).await?;
                let read = client.prepare(&format!("SELECT version FROM {schema}.t WHERE key = $1")).await?;
                let cas = client
                    .prepare(&format!(
                        "UPDATE {schema}.t SET version = version + 1, raw = $3 WHERE key = $1 AND version = $2"
                    ))
                    .await?;
                Conn::Postgres(PgConn { client, read, cas })
            }
        })
    }

    /// The writes the entries have taken since they were set up: the sum
    /// of their versions, less one each.
    async fn versions(&self, keys: usize) -> anyhow::Result<u64> {
        let mut total = 0;
        match self {
            Driver::Http { http, base } => {
                let mut cursor: Option<String> = None;
                loop {
                    let mut req = http.get(format!("{base}/entries")).query(&[("limit", "1000")]);
                    if let Some(c) = &cursor {
                        req = req.query(&[("cursor", c)]);
                    }
                    let page: Value = req.send().await?.error_for_status()?.json().await?;
                    for entry in page["entries"].as_array().into_iter().flatten() {
                        total += entry["version"].as_u64().context("an entry without a version")? - 1;
                    }
                    match page["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => break,
                    }
                }
            }
            Driver::Redis { client, space, .. } => {
                let mut conn = client.get_multiplexed_async_connection().await?;
                let mut pipe = redis::pipe();
                for k in 0..keys {
                    pipe.hget(format!("{space}:k{k}"), "version");
                }
                let versions: Vec<u64> = pipe.query_async(&mut conn).await?;
                total = versions.iter().map(|v| v - 1).sum();
            }
            Driver::Postgres { url, schema } => {
                let client = pg_connect(url).await?;
                let row = client
                    .query_one(&format!("SELECT count(*), COALESCE(sum(version - 1), 0)::bigint FROM {schema}.t"), &[])
                    .await?;
                let (count, writes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                if count as usize != keys {
                    bail!("the PostgreSQL baseline's table holds {count} keys, not {keys}");
                }
                total = writes as u64;
            }
        }
        Ok(total)
    }

    async fn close(self) {
        match self {
            // The run's context is not needed any more.
            Driver::Http { http, base } => {
                let _ = http.delete(base).send().await;
            }
            Driver::Postgres { url, schema } => {
                if let Ok(client) = pg_connect(&url).await {
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
                }
            }
            Driver::Redis { .. } => {}
        }
    }
}

impl Conn {
    /// The entry's version.
    async fn read(&mut self, key: usize) -> anyhow::Result<u64> {
        match self {
            Conn::Http(http) => {
                let (status, etag) = http.send(Method::GET, &format!("entries/k{key}"), None, None).await?;
                if !status.is_success() {
                    bail!("read: {status}");
                }
                etag.as_deref().unwrap_or("").trim_matches('"').parse().context("read: no revision in the ETag")
            }
            Conn::Redis(conn, space, _) => {
                let (version, _raw): (u64, Vec<u8>) = redis::cmd("HMGET")
                    .arg(format!("{space}:k{key}"))
                    .arg("version")
                    .arg("raw")
                    .query_async(conn)
                    .await?;
                Ok(version)
            }
            Conn::Postgres(pg) => {
                let row = pg.client.query_one(&pg.read, &[&format!("k{key}")]).await?;
                Ok(row.try_get::<_, i64>(0)? as u64)
            }
        }
    }

    /// Writes `value` if the entry is still at `version`.
    async fn cas(&mut self, key: usize, version: u64, value: &str) -> anyhow::Result<Outcome> {
        match self {
            Conn::Http(http) => {
                let body = Bytes::from(serde_json::to_vec(&json!({"value": value}))?);
                let if_match = format!("\"{version}\"");
                let (status, _) =
                    http.send(Method::PUT, &format!("entries/k{key}"), Some(&if_match), Some(body)).await?;
                match status.as_u16() {
                    200 | 201 => Ok(Outcome::Written),
                    412 => Ok(Outcome::Conflict),
                    other => bail!("write: {other}"),
                }
            }
            Conn::Redis(conn, space, script) => {
                let written: i64 =
                    script.key(format!("{space}:k{key}")).arg(version).arg(value).invoke_async(conn).await?;
                Ok(if written == 1 { Outcome::Written } else { Outcome::Conflict })
            }
            Conn::Postgres(pg) => {
                // Autocommit: the statement is its own transaction, answered
                // once its commit is flushed.
                let written = pg.client.execute(&pg.cas, &[&format!("k{key}"), &(version as i64), &value]).await?;
                Ok(if written == 1 { Outcome::Written } else { Outcome::Conflict })
            }
        }
    }
}

/// A client's own HTTP/1.1 connection to ctxmesh: hyper's client
/// connection, without a pool or redirects, so that the load generator
/// costs little next to the server it measures (as `redis`'s connection
/// does next to Redis).
struct HttpConn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    /// The context's path, ending in `/`.
    path: String,
}

impl HttpConn {
    /// Connects to the server of `base` (`http://host:port/v1/contexts/<id>`).
    async fn open(base: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = base.parse().context("the server's URL")?;
        let host = uri.authority().context("the server's URL has no host")?.to_string();
        let stream =
            tokio::net::TcpStream::connect(&host).await.with_context(|| format!("cannot connect to {host}"))?;
        stream.set_nodelay(true)?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(HttpConn { send, host, path: format!("{}/", uri.path()) })
    }

    /// Sends one request on the connection; the status and the ETag of
    /// the answer, whose body is read (like a client would) and dropped.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        if_match: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(http::StatusCode, Option<String>)> {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.path));
        request = request.header(http::header::HOST, &self.host);
        if let Some(tag) = if_match {
            request = request.header(http::header::IF_MATCH, tag);
        }
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.send.ready().await?;
        let response = self.send.send_request(request).await?;
        let status = response.status();
        let etag = response.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        response.into_body().collect().await?;
        Ok((status, etag))
    }
}

#[derive(Default)]
struct Tally {
    cas_ms: Vec<f64>,
    read_ms: Vec<f64>,
    written: u64,
    /// Writes acknowledged during the warm-up.
    warm_up_written: u64,
    conflicts: u64,
    errors: u64,
}

/// One run of a scenario.
struct Run {
    system: System,
    clients: usize,
    keys: usize,
    workload: Workload,
    /// Seconds measured, after one of warm-up.
    seconds: u64,
    /// The system's process, when the bench started it.
    pid: Option<u32>,
}

/// Runs the clients of `run` for a second of warm-up, then its seconds.
async fn measure(run: &Run, driver: &Driver, value: &str) -> anyhow::Result<RunResult> {
    let &Run { system, clients, keys, workload, seconds, pid } = run;
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + Duration::from_secs(seconds);
    // The server's CPU time over the measured seconds only.
    let cpu = pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let before = super::cpu_seconds(pid)?;
            tokio::time::sleep_until(end.into()).await;
            Some(super::cpu_seconds(pid)? - before)
        })
    });
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut conn = driver.connect().await?;
        let value = value.to_owned();
        // Clients run on the runtime's threads, as separate processes would.
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            // A small xorshift per client: which key, and read or write.
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let counted = now >= start;
                let key = (next() % keys as u64) as usize;
                let only_read = next() % 100 < workload.read_percent();
                let t = Instant::now();
                let version = match conn.read(key).await {
                    Ok(v) => v,
                    Err(_) => {
                        tally.errors += u64::from(counted);
                        continue;
                    }
                };
                if counted {
                    tally.read_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                if only_read {
                    continue;
                }
                let t = Instant::now();
                let outcome = conn.cas(key, version, &value).await;
                if !counted {
                    tally.warm_up_written += u64::from(matches!(outcome, Ok(Outcome::Written)));
                    continue;
                }
                tally.cas_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                match outcome {
                    Ok(Outcome::Written) => tally.written += 1,
                    Ok(Outcome::Conflict) => tally.conflicts += 1,
                    Err(_) => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.context("a client failed")?;
        all.cas_ms.extend(t.cas_ms);
        all.read_ms.extend(t.read_ms);
        all.written += t.written;
        all.warm_up_written += t.warm_up_written;
        all.conflicts += t.conflicts;
        all.errors += t.errors;
    }
    let cpu_seconds = match cpu {
        Some(task) => task.await.context("the CPU sampler failed")?,
        None => None,
    };
    let versions = driver.versions(keys).await?;
    let writes_verified = versions == all.written + all.warm_up_written;
    let secs = seconds as f64;
    let attempts = all.written + all.conflicts;
    let requests = all.cas_ms.len() + all.read_ms.len();
    Ok(RunResult {
        system,
        clients,
        seconds: secs,
        cas_per_second: all.written as f64 / secs,
        conflict_ratio: if attempts == 0 { 0.0 } else { all.conflicts as f64 / attempts as f64 },
        requests_per_second: requests as f64 / secs,
        cas: Percentiles::of(all.cas_ms),
        read: Percentiles::of(all.read_ms),
        server_cpu_us_per_request: cpu_seconds.filter(|_| requests > 0).map(|s| s * 1e6 / requests as f64),
        errors: all.errors,
        writes_verified,
    })
}
