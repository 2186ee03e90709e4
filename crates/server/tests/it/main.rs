//! Integration tests through the real HTTP server on an ephemeral port.

/// Runs each test `name(server)` against a server that requires tokens
/// (the admin token is the test module's `ADMIN`) on SQLite, and one on
/// PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::TestServer::with_tokens(crate::Backend::Sqlite, super::ADMIN).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = crate::Backend::postgres().await;
                    super::$name(crate::TestServer::with_tokens(backend, super::ADMIN).await).await;
                }
            )*
        }
    };
}

mod access;
mod agents;
mod auth;
mod backup;
mod bad_input;
mod concurrency;
mod conflicts;
mod contexts;
mod entries;
mod history;
mod jwt;
mod mesh;
mod ops;
mod time_travel;
mod txn;
mod watch;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use ctxmesh_core::Limits;
use ctxmesh_server::{AppState, ServerConfig};
use ctxmesh_store::sqlite::{SqliteConfig, SqliteStore};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// Which store a test server runs on.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh schema of the test PostgreSQL (this URL).
    Postgres(String),
}

impl Backend {
    /// A fresh PostgreSQL schema.
    pub(crate) async fn postgres() -> Self {
        Backend::Postgres(ctxmesh_store::conformance::fresh_postgres_url().await)
    }
}

/// A server on 127.0.0.1:<random port> over a fresh store (SQLite unless
/// started with [`TestServer::on`]).
pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    dir: tempfile::TempDir,
    backend: Backend,
    auth: ctxmesh_server::auth::Auth,
    jwt: Option<Arc<ctxmesh_server::jwt::JwtAuth>>,
    rate_limit: Option<ctxmesh_server::limits::RateLimit>,
    limits: Limits,
    embedder: Option<Arc<dyn ctxmesh_server::mesh::Embedder>>,
    summarizer: Option<Arc<ctxmesh_server::mesh::LlmSummarizer>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::with_limits(Limits::default()).await
    }

    pub(crate) async fn with_limits(limits: Limits) -> Self {
        Self::build(Backend::Sqlite, limits).await
    }

    /// A server over `backend`.
    pub(crate) async fn on(backend: Backend) -> Self {
        Self::build(backend, Limits::default()).await
    }

    /// A server over `backend` that requires tokens, with `admin_token`.
    pub(crate) async fn with_tokens(backend: Backend, admin_token: &str) -> Self {
        let mut server = Self::unstarted(backend, Limits::default());
        server.auth = ctxmesh_server::auth::Auth::with_admin_token(admin_token);
        server.launch().await;
        server
    }

    /// A server over `backend` with tokens, an embedding model and an LLM
    /// summarizer (either may be absent).
    pub(crate) async fn with_mesh(
        backend: Backend,
        admin_token: &str,
        embedder: Option<Arc<dyn ctxmesh_server::mesh::Embedder>>,
        summarizer: Option<Arc<ctxmesh_server::mesh::LlmSummarizer>>,
    ) -> Self {
        let mut server = Self::unstarted(backend, Limits::default());
        server.auth = ctxmesh_server::auth::Auth::with_admin_token(admin_token);
        server.embedder = embedder;
        server.summarizer = summarizer;
        server.launch().await;
        server
    }

    /// A server with tokens and a per-agent rate limit.
    pub(crate) async fn with_rate_limit(admin_token: &str, limit: ctxmesh_server::limits::RateLimit) -> Self {
        let mut server = Self::unstarted(Backend::Sqlite, Limits::default());
        server.auth = ctxmesh_server::auth::Auth::with_admin_token(admin_token);
        server.rate_limit = Some(limit);
        server.launch().await;
        server
    }

    async fn build(backend: Backend, limits: Limits) -> Self {
        let mut server = Self::unstarted(backend, limits);
        server.launch().await;
        server
    }

    fn unstarted(backend: Backend, limits: Limits) -> Self {
        // reqwest needs the process's TLS provider, for plain HTTP too.
        ctxmesh_tls::install_crypto_provider();
        TestServer {
            base: String::new(),
            http: reqwest::Client::new(),
            dir: tempfile::tempdir().unwrap(),
            backend,
            auth: ctxmesh_server::auth::Auth::Off,
            jwt: None,
            rate_limit: None,
            limits,
            embedder: None,
            summarizer: None,
            shutdown: None,
            task: None,
        }
    }

    async fn launch(&mut self) {
        let store: Arc<dyn ctxmesh_store::Store> = match &self.backend {
            Backend::Sqlite => {
                let mut store_config = SqliteConfig::new(self.dir.path().join("ctxmesh.db"));
                store_config.limits = self.limits.clone();
                Arc::new(SqliteStore::open(store_config).unwrap())
            }
            Backend::Postgres(url) => {
                let config = ctxmesh_store::postgres::PostgresConfig {
                    limits: self.limits.clone(),
                    ..ctxmesh_store::postgres::PostgresConfig::new(url)
                };
                Arc::new(ctxmesh_store::postgres::PostgresStore::connect(config).await.unwrap())
            }
        };
        let config = ServerConfig {
            limits: self.limits.clone(),
            expiry_interval: Duration::from_millis(50),
            compaction_interval: Duration::from_secs(3600),
            max_page_size: 1000,
            progress_interval: Duration::from_millis(100),
            auth: self.auth.clone(),
            jwt: self.jwt.clone(),
            rate_limit: self.rate_limit,
            audit_retention: Duration::from_secs(86_400),
            max_streams_per_agent: 2,
            access_recheck_interval: Duration::from_millis(200),
            embedder: self.embedder.clone(),
            summarizer: self.summarizer.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.task = Some(tokio::spawn(ctxmesh_server::run(listener, AppState::new(store, config), async {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
    }

    /// Shuts the server down gracefully and starts it again on the same
    /// data, on a new port (`base` changes).
    pub(crate) async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the server shuts down although watchers are connected")
                .unwrap()
                .unwrap();
        }
        self.launch().await;
    }

    pub(crate) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    pub(crate) fn client(&self) -> ctxmesh_client::Client {
        ctxmesh_client::Client::new(&self.base)
    }

    /// Creates a context with the given body (must include `id`).
    pub(crate) async fn create(&self, body: Value) -> Value {
        let r = self.req(Method::POST, "/v1/contexts").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "create {body}");
        r.json().await.unwrap()
    }

    /// PUTs `{"value": value}` at `key`, asserting success; returns the entry.
    pub(crate) async fn put(&self, ctx: &str, key: &str, value: Value) -> Value {
        let r = self
            .req(Method::PUT, &format!("/v1/contexts/{ctx}/entries/{key}"))
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "put {key}: {}", r.status());
        r.json().await.unwrap()
    }

    pub(crate) async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.req(Method::GET, path).send().await.unwrap();
        status_json(r).await
    }

    pub(crate) async fn revision(&self, ctx: &str) -> u64 {
        self.get_json(&format!("/v1/contexts/{ctx}")).await.1["revision"].as_u64().unwrap()
    }

    /// The whole event log of `ctx`.
    pub(crate) async fn log(&self, ctx: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self.get_json(&format!("/v1/contexts/{ctx}/events?after={after}&limit=1000")).await;
            assert_eq!(status, 200);
            all.extend(page["events"].as_array().unwrap().iter().cloned());
            after = page["last_revision"].as_u64().unwrap();
            if !page["more"].as_bool().unwrap() {
                return all;
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One SSE frame: its id, event type and data.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub(crate) id: Option<u64>,
    pub(crate) kind: String,
    pub(crate) data: Value,
}

/// Reads SSE frames (comments and keep-alives aside) until `enough` says
/// so or the stream ends; returns them and whether the stream ended.
pub(crate) async fn sse_frames(response: Response, enough: impl Fn(&[Frame]) -> bool) -> (Vec<Frame>, bool) {
    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut out: Vec<Frame> = Vec::new();
    let read = async {
        loop {
            if enough(&out) {
                return false;
            }
            if let Some(end) = buffer.find("\n\n") {
                let text: String = buffer.drain(..end + 2).collect();
                let mut frame = Frame { id: None, kind: String::new(), data: Value::Null };
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        frame.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        frame.kind = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        frame.data = serde_json::from_str(v).unwrap_or(Value::Null);
                    }
                }
                if !frame.kind.is_empty() {
                    out.push(frame);
                }
                continue;
            }
            match body.next().await {
                Some(chunk) => buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return true,
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(20), read).await.expect("the frames arrive in time");
    (out, ended)
}

pub(crate) async fn status_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    (status, body)
}

/// Asserts an error response: status, code, and the standard shape.
pub(crate) async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    let (s, body) = status_json(r).await;
    assert_eq!(s, status, "status for {code}: body {body}");
    assert_eq!(body["error"]["code"], code, "body {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    assert!(body["error"]["details"].is_object(), "details in {body}");
    body
}
