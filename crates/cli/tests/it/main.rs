//! End-to-end tests of the `ctxmesh` binary: crash safety, graceful
//! shutdown, the CLI client commands, and several nodes over PostgreSQL.

mod bench;
mod cli;
mod cluster;
mod crash;
mod slow;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `ctxmesh serve` child process on an ephemeral port.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl ServerProcess {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ctxmesh"))
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
                if !sent && let Some(i) = line.find("listening on http://") {
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
