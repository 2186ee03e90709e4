//! TLS end to end: `ctxmesh serve --tls-cert/--tls-key` with the CLI and
//! the Rust client over https:// (a wrong CA or host name refused with
//! what to do), the certificate reloaded on a file change and on SIGHUP
//! while open connections go on, and the summarizer reached over HTTPS
//! with `--ca-file`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctxmesh_tls::testing::TestCa;
use futures::StreamExt;
use serde_json::{Value, json};

/// A `ctxmesh serve` whose log lines the test reads.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        ctxmesh_tls::install_crypto_provider();
        let mut child = crate::ctxmesh_command()
            .args(["serve", "--listen", "127.0.0.1:0", "--auth", "off"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("CTXMESH_LOG", "info")
            .env("CTXMESH_NO_SAVE_CREDENTIALS", "1")
            .env_remove("CTXMESH_CA_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the ctxmesh binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut server = Server { child, base: String::new(), log };
        let line = server.wait_for_log("listening on ");
        let i = line.find("listening on ").unwrap();
        server.base = line[i + "listening on ".len()..].split_whitespace().next().unwrap().to_owned();
        server
    }

    /// The first log line containing `text` (waiting for it, bounded).
    fn wait_for_log(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the server exited ({status}): {:#?}", self.log.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "no log line with {text:?}: {:#?}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn hangup(&self) {
        let status = std::process::Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status();
        assert!(status.unwrap().success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctx(server: &str, extra: &[&str], args: &[&str]) -> Output {
    crate::ctxmesh_command()
        .env_remove("CTXMESH_CA_FILE")
        .arg("ctx")
        .args(["--server", server])
        .args(extra)
        .args(args)
        .output()
        .expect("the ctxmesh binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An HTTP client that trusts the certificates of `ca` only, with
/// connections kept open between requests.
fn trusting_only(ca: &Path) -> reqwest::Client {
    let roots = ctxmesh_tls::roots_with_file(Some(ca), false).unwrap();
    let config = ctxmesh_tls::client_config_with(ctxmesh_tls::Verification::Full(roots), None).unwrap();
    reqwest::Client::builder().tls_backend_preconfigured(config).build().unwrap()
}

async fn healthy(http: &reqwest::Client, base: &str) -> Result<(), String> {
    match http.get(format!("{base}/healthz")).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("answered {}", r.status())),
        Err(e) => Err(ctxmesh_tls::explain(&e, "a CA").unwrap_or_else(|| e.to_string())),
    }
}

/// Waits (bounded) until a new connection trusting only `ca` succeeds:
/// the server presents a certificate of that CA.
async fn wait_for_certificate_of(ca: &Path, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A new client: a new connection.
        match healthy(&trusting_only(ca), base).await {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "the new certificate was not served: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_client_work_over_https_and_a_wrong_ca_or_host_name_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(dir.path(), "right"), TestCa::new(dir.path(), "other"));
    // For localhost only: https://127.0.0.1 is a host name it does not name.
    let issued = ca.issue(&["localhost"], "server");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &["--tls-cert", issued.cert.to_str().unwrap(), "--tls-key", issued.key.to_str().unwrap()],
    );
    assert!(server.base.starts_with("https://"), "the start-up log says https: {}", server.base);
    let url = format!("https://localhost:{}", server.port());
    let ca_file = ca.ca_file();
    let with_ca = ["--ca-file", ca_file.to_str().unwrap()];

    let created = ctx(&url, &with_ca, &["--json", "create", "demo"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let put = ctx(&url, &with_ca, &["--json", "--agent", "a", "put", "demo", "k", r#"{"x":1}"#]);
    assert!(put.status.success(), "{}", stderr(&put));
    let got = ctx(&url, &with_ca, &["--json", "get", "demo", "k"]);
    assert!(got.status.success(), "{}", stderr(&got));
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["value"], json!({"x": 1}));
    // CTXMESH_CA_FILE does as well.
    let by_env = crate::ctxmesh_command()
        .env("CTXMESH_CA_FILE", &ca_file)
        .args(["ctx", "--server", &url, "get", "demo", "k"])
        .output()
        .unwrap();
    assert!(by_env.status.success(), "{}", stderr(&by_env));

    // Another CA, or none but the system's: not trusted, exit code 5.
    let other_ca = other.ca_file();
    for extra in [&["--ca-file", other_ca.to_str().unwrap()][..], &[][..]] {
        let refused = ctx(&url, extra, &["get", "demo", "k"]);
        assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
        let message = stderr(&refused);
        assert!(message.contains("certificate is not trusted") && message.contains("--ca-file"), "{message}");
    }
    // A host name the certificate does not name.
    let by_ip = ctx(&server.base, &with_ca, &["get", "demo", "k"]);
    assert_eq!(by_ip.status.code(), Some(5), "{}", stderr(&by_ip));
    assert!(stderr(&by_ip).contains("does not match the host name"), "{}", stderr(&by_ip));
    // A watch ends on a refused certificate (exit code 5) instead of
    // retrying into the same refusal.
    let mut watch = crate::ctxmesh_command()
        .env_remove("CTXMESH_CA_FILE")
        .args(["watch", "--server", &url, "--ca-file", other_ca.to_str().unwrap(), "--after", "0", "demo"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            watch.kill().unwrap();
            panic!("ctxmesh watch kept retrying a refused certificate");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut message = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut message).unwrap();
    assert_eq!(status.code(), Some(5), "{message}");
    assert!(message.contains("certificate is not trusted") && !message.contains("retrying"), "{message}");
    // A CA file that cannot be read is said so.
    let missing = ctx(&url, &["--ca-file", "/nonexistent/ca.pem"], &["get", "demo", "k"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent/ca.pem"), "{}", stderr(&missing));

    // The Rust client, and a watch (SSE) over TLS.
    let client = ctxmesh_client::Client::with_ca_file(&url, Some(&ca_file)).unwrap().with_agent("a");
    let events = client.watch("demo", Some(0), &[]).await.unwrap();
    futures::pin_mut!(events);
    let mut seen = false;
    while let Some(frame) = events.next().await {
        if let ctxmesh_client::WatchFrame::Event(e) = frame.unwrap()
            && e["key"] == "k"
        {
            seen = true;
            break;
        }
    }
    assert!(seen, "the watch over TLS delivered the write");

    // Plain HTTP to the TLS port is not served.
    let plain = ctx(&format!("http://127.0.0.1:{}", server.port()), &[], &["get", "demo", "k"]);
    assert!(!plain.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_reloaded_on_a_file_change_and_open_connections_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (TestCa::new(dir.path(), "first"), TestCa::new(dir.path(), "second"));
    let issued = first.issue(&["localhost", "127.0.0.1"], "server");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &["--tls-cert", issued.cert.to_str().unwrap(), "--tls-key", issued.key.to_str().unwrap()],
    );
    // A connection opened before the change, kept open by the client.
    let open = trusting_only(&first.ca_file());
    healthy(&open, &server.base).await.unwrap();

    second.issue(&["localhost", "127.0.0.1"], "server");
    wait_for_certificate_of(&second.ca_file(), &server.base).await;
    let refused = healthy(&trusting_only(&first.ca_file()), &server.base).await.unwrap_err();
    assert!(refused.contains("not trusted"), "a new connection gets the new certificate: {refused}");
    // The open connection goes on (a new one of this client would be refused).
    healthy(&open, &server.base).await.unwrap();
    // A write over it too.
    let r = open.post(format!("{}/v1/contexts", server.base)).header("x-agent-id", "a").json(&json!({"id": "c"}));
    assert!(r.send().await.unwrap().status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_reloaded_on_sighup_and_a_bad_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (TestCa::new(dir.path(), "first"), TestCa::new(dir.path(), "second"));
    let issued = first.issue(&["localhost", "127.0.0.1"], "server");
    let data = tempfile::tempdir().unwrap();
    // No polling: only SIGHUP reloads.
    let mut server = Server::start(
        data.path(),
        &[
            "--tls-cert",
            issued.cert.to_str().unwrap(),
            "--tls-key",
            issued.key.to_str().unwrap(),
            "--tls-reload-secs",
            "0",
        ],
    );
    let open = trusting_only(&first.ca_file());
    healthy(&open, &server.base).await.unwrap();

    second.issue(&["localhost", "127.0.0.1"], "server");
    // Without SIGHUP nothing reloads: new connections still get the first.
    healthy(&trusting_only(&first.ca_file()), &server.base).await.unwrap();
    server.hangup();
    wait_for_certificate_of(&second.ca_file(), &server.base).await;
    server.wait_for_log("TLS certificate reloaded (SIGHUP)");
    assert!(healthy(&trusting_only(&first.ca_file()), &server.base).await.is_err());
    healthy(&open, &server.base).await.unwrap();

    // A broken certificate file: logged, and the second certificate stays.
    std::fs::write(&issued.cert, "not a certificate").unwrap();
    server.hangup();
    let line = server.wait_for_log("cannot reload the TLS certificate");
    assert!(line.contains("no certificate in it") && line.contains("previous certificate stays"), "{line}");
    healthy(&trusting_only(&second.ca_file()), &server.base).await.unwrap();
}

#[test]
fn serve_refuses_to_start_with_an_unusable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let (one, two) = (ca.issue(&["localhost"], "one"), ca.issue(&["localhost"], "two"));
    let data = tempfile::tempdir().unwrap();
    let run = |cert: &Path, key: &Path| {
        crate::ctxmesh_command()
            .args(["serve", "--listen", "127.0.0.1:0", "--auth", "off"])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap()
    };
    let mismatched = run(&one.cert, &two.key);
    assert!(!mismatched.status.success());
    assert!(stderr(&mismatched).contains("does not belong to the certificate"), "{}", stderr(&mismatched));
    let missing = run(Path::new("/nonexistent/cert.pem"), &one.key);
    assert!(stderr(&missing).contains("/nonexistent/cert.pem"), "{}", stderr(&missing));
    // One without the other is a usage error.
    let alone = crate::ctxmesh_command().args(["serve", "--tls-cert"]).arg(&one.cert).output().unwrap();
    assert_eq!(alone.status.code(), Some(2), "{}", stderr(&alone));
}

/// An OpenAI-compatible chat endpoint over HTTPS with a certificate of
/// `ca`: every request is counted, and answered `summary`.
async fn https_llm(ca: &TestCa, summary: &'static str) -> (String, Arc<AtomicUsize>) {
    use hyper_util::rt::TokioIo;
    let issued = ca.issue(&["localhost", "127.0.0.1"], "llm");
    let tls = ctxmesh_tls::ReloadingCert::load(&issued.cert, &issued.key).unwrap().server_config().unwrap();
    let acceptor = ctxmesh_tls::tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/v1", listener.local_addr().unwrap().port());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        assert_eq!(req.uri().path(), "/v1/chat/completions");
                        let body = json!({"choices": [{"message": {"content": summary}}]}).to_string();
                        let response = hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (url, requests)
}

/// A package whose budget compresses a long entry: the summarizer is asked.
async fn package_with_a_summary(base: &str) -> Value {
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{base}{path}")).header("x-agent-id", "admin").json(&body).send()
    };
    let agent = json!({"id": "writer", "objective": "write launch copy", "needs": {"keys": ["findings/**"]}});
    assert!(send(reqwest::Method::POST, "/v1/agents", agent).await.unwrap().status().is_success());
    assert!(send(reqwest::Method::POST, "/v1/contexts", json!({"id": "launch"})).await.unwrap().status().is_success());
    let long: String = (0..40)
        .map(|i| format!("Point {i} about competitors: the analysis shows figure {} for segment {i}.", i * 7 + 3))
        .collect::<Vec<_>>()
        .join(" ");
    for (key, value) in [("findings/revenue", "Revenue grew 15% YoY.".to_owned()), ("findings/competitors", long)] {
        let r = send(reqwest::Method::PUT, &format!("/v1/contexts/launch/entries/{key}"), json!({"value": value}));
        assert!(r.await.unwrap().status().is_success());
    }
    let r = http
        .get(format!("{base}/v1/contexts/launch/package?agent=writer&budget=120"))
        .header("x-agent-id", "writer")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

fn summarized_by_llm(package: &Value, summary: &str) -> bool {
    let items = package["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["status"] == "compressed"), "{package}");
    items.iter().any(|i| i["text"].as_str().unwrap().contains(summary))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summarizer_is_reached_over_https_with_the_ca_file_and_refused_with_a_wrong_one() {
    const SUMMARY: &str = "Rivals cut prices; we lead on sound.";
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(dir.path(), "llm"), TestCa::new(dir.path(), "other"));
    let (url, requests) = https_llm(&ca, SUMMARY).await;
    let summarizer = ["--summarizer-url", &url, "--summarizer-model", "tiny"];

    let data = tempfile::tempdir().unwrap();
    let ca_file = ca.ca_file();
    let trusted = Server::start(data.path(), &[&summarizer[..], &["--ca-file", ca_file.to_str().unwrap()]].concat());
    let package = package_with_a_summary(&trusted.base).await;
    assert!(summarized_by_llm(&package, SUMMARY), "{package}");
    let asked = requests.load(Ordering::SeqCst);
    assert!(asked > 0);
    drop(trusted);

    // Another CA: the endpoint never gets the request, the log says why,
    // and the extractive summary stands.
    let data = tempfile::tempdir().unwrap();
    let other_file = other.ca_file();
    let mut refused =
        Server::start(data.path(), &[&summarizer[..], &["--ca-file", other_file.to_str().unwrap()]].concat());
    let package = package_with_a_summary(&refused.base).await;
    assert!(!summarized_by_llm(&package, SUMMARY), "{package}");
    assert_eq!(requests.load(Ordering::SeqCst), asked, "no request reached the endpoint");
    let line = refused.wait_for_log("the summarizer failed");
    assert!(line.contains("certificate is not trusted") && line.contains("--ca-file"), "{line}");
}
