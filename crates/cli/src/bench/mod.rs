//! `ctxmesh bench`: load generators that measure a server, one scenario
//! per subcommand. Results print as a table, or JSON with `--json`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

mod cas;
mod floor;
mod package;
mod watch;

/// `ctxmesh bench ...`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Measure this server instead of starting one (memory figures need a
    /// server started by the bench).
    #[arg(long, global = true)]
    server: Option<String>,
    /// The store of the server the bench starts (`--store` of `ctxmesh
    /// serve`, e.g. postgres://USER@HOST/DB); default: the embedded store.
    #[arg(long, global = true, conflicts_with = "server")]
    store: Option<String>,
    /// Print the results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// CA certificates (PEM) to trust for an https:// --server, besides
    /// the system's roots.
    #[arg(long, env = "CTXMESH_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Watch fan-out: commit-to-receipt latency with N SSE subscribers of
    /// one context, and server memory per idle subscriber.
    Watch(watch::WatchBench),
    /// Package computation: p50/p99 of building an agent's package over a
    /// context of many entries (10,000 by default), within a token budget.
    Package(package::PackageBench),
    /// Contended compare-and-swap: every client reads and conditionally
    /// writes one entry; side by side with Redis and a Lua CAS script, and
    /// PostgreSQL alone with a conditional UPDATE (`--systems`).
    CasOne(cas::CasBench),
    /// Compare-and-swap over many entries (1,000 by default).
    CasMany(cas::CasBench),
    /// 90% reads, 10% read-then-CAS, over many entries.
    ReadHeavy(cas::CasBench),
    /// The SQLite floor: CPU per write of SQLite alone storing the rows of
    /// a durable write (no server), the least ctxmesh's writer can cost.
    SqliteFloor(floor::FloorBench),
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // The CAS scenarios start the systems they compare themselves.
    let server = args.server.as_deref();
    let cas = matches!(args.scenario, Scenario::CasOne(_) | Scenario::CasMany(_) | Scenario::ReadHeavy(_));
    if cas && args.store.is_some() {
        bail!(
            "the CAS scenarios start their systems themselves: for PostgreSQL use --systems ctxmesh-postgres --postgres URL"
        );
    }
    match &args.scenario {
        Scenario::SqliteFloor(bench) => {
            if server.is_some() || args.store.is_some() {
                bail!("sqlite-floor runs SQLite in this process: it takes no --server or --store");
            }
            return tokio::task::block_in_place(|| floor::run(bench, args.json));
        }
        Scenario::CasOne(bench) => return cas::run(cas::Workload::One, server, bench, args.json).await,
        Scenario::CasMany(bench) => return cas::run(cas::Workload::Many, server, bench, args.json).await,
        Scenario::ReadHeavy(bench) => return cas::run(cas::Workload::ReadHeavy, server, bench, args.json).await,
        Scenario::Watch(_) | Scenario::Package(_) => {}
    }
    let target = match &args.server {
        Some(url) => Target::remote(url, args.ca_file.as_deref())?,
        None => {
            // A bench server on loopback, without tokens.
            let mut flags = vec!["--durability", "full", "--auth", "off"];
            if let Some(store) = &args.store {
                flags.extend(["--store", store]);
            }
            Target::spawn(&flags)?
        }
    };
    match args.scenario {
        Scenario::Watch(bench) => watch::run(&target, &bench, args.json).await,
        Scenario::Package(bench) => package::run(&target, &bench, args.json).await,
        Scenario::CasOne(_) | Scenario::CasMany(_) | Scenario::ReadHeavy(_) | Scenario::SqliteFloor(_) => {
            unreachable!("run above")
        }
    }
}

/// The server under test.
pub(crate) struct Target {
    pub(crate) base: String,
    /// The HTTP client for it (trusting --ca-file for https://).
    pub(crate) http: reqwest::Client,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// A server that runs already.
    pub(crate) fn remote(url: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let http = ctxmesh_tls::http_client(ca_file).context("--ca-file")?;
        Ok(Target { base: url.trim_end_matches('/').to_owned(), http, child: None, _dir: None })
    }

    /// A client of the server, acting as `agent`.
    pub(crate) fn client(&self, agent: &str) -> ctxmesh_client::Client {
        ctxmesh_client::Client::with_http(&self.base, self.http.clone()).with_agent(agent)
    }

    /// Starts `ctxmesh serve` from this binary on a fresh data directory.
    pub(crate) fn spawn(extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
        let exe: PathBuf = std::env::current_exe().context("cannot find the ctxmesh binary")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("CTXMESH_LOG", "warn,ctxmesh::serve=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the server")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let url = line[i + "listening on ".len()..].split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                bail!("the server did not start within 30 s");
            }
        };
        let http = ctxmesh_tls::http_client(None).context("the HTTP client")?;
        Ok(Target { base, http, child: Some(child), _dir: Some(dir) })
    }

    /// The server's process, when the bench started it.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory in KiB, when the bench started it.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// CPU time (user and system, all threads) that process `pid` has used so
/// far, in seconds, from `/proc` (Linux; `None` elsewhere).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th of them, in
    // clock ticks of 1/100 s (USER_HZ on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Latency percentiles of a sample, in milliseconds.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Percentiles {
    pub(crate) samples: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Percentiles {
    pub(crate) fn of(mut samples_ms: Vec<f64>) -> Self {
        samples_ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if samples_ms.is_empty() {
                return 0.0;
            }
            let i = ((samples_ms.len() as f64 * q).ceil() as usize).clamp(1, samples_ms.len()) - 1;
            samples_ms[i]
        };
        Percentiles {
            samples: samples_ms.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: samples_ms.last().copied().unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.samples), (50.0, 90.0, 99.0, 100.0, 100));
        assert_eq!(Percentiles::of(vec![]).samples, 0);
    }
}
