//! End-to-end tests of the `ctxmesh` binary: crash safety, graceful
//! shutdown, the CLI client commands and where they find their token,
//! leases kept alive by a watch, and several nodes over PostgreSQL.

mod backup;
mod bench;
mod cli;
mod cluster;
mod crash;
mod jwt;
mod lease;
mod otel;
mod slow;
mod tls;
mod tokens;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ctxmesh` binary, with no token from the environment and a
/// per-user config directory of the tests' own: the user's credentials
/// file is neither read nor written.
pub(crate) fn ctxmesh_command() -> Command {
    static CONFIG_HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let config_home = CONFIG_HOME.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_ctxmesh"));
    command.env("XDG_CONFIG_HOME", config_home.path()).env_remove("CTXMESH_TOKEN");
    command
}

/// A `ctxmesh serve` child process on an ephemeral port.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl ServerProcess {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(data_dir, extra, &[("CTXMESH_NO_SAVE_CREDENTIALS", "1")])
    }

    /// Starts a server with these environment variables (e.g. its own
    /// `XDG_CONFIG_HOME`) instead of `CTXMESH_NO_SAVE_CREDENTIALS`.
    pub(crate) fn start_with(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        // The tests' own HTTP clients (reqwest) need the TLS provider.
        ctxmesh_tls::install_crypto_provider();
        let mut child = crate::ctxmesh_command()
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            // Tests speak plain HTTP with X-Agent-Id unless they test auth.
            .args(if extra.contains(&"--auth") { &[][..] } else { &["--auth", "off"][..] })
            .args(extra)
            .env("CTXMESH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the ctxmesh binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(i) = line.find("listening on http") {
                    let url = line[i + "listening on ".len()..].split_whitespace().next().unwrap().to_owned();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(30)).expect("the server announces its address");
        ServerProcess { child, base }
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
