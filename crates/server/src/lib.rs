//! The ctxmesh HTTP server.
//!
//! [`app`] builds the axum `Router` over an [`AppState`] (a store and the
//! server settings); [`run`] serves it on a listener until a shutdown signal,
//! with the background tasks (TTL expiry, retention) alongside.
//!
//! Layout: `routes/` holds one module per resource, each parsing requests
//! into store calls; `extract` turns malformed input into `ApiError`s;
//! `error` is the one error type; `metrics` records per-route latency;
//! `openapi` assembles the spec served at `/openapi.json`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use ctxmesh_core::Limits;
use ctxmesh_store::Store;
use tokio::net::TcpListener;

pub mod auth;
mod authz;
pub mod background;
mod cursor;
pub mod error;
pub mod extract;
pub mod jwt;
pub mod limits;
pub mod mcp;
pub mod mesh;
pub mod metrics;
pub mod openapi;
mod routes;
mod shape;
mod telemetry;
mod ui;
mod unread;
pub mod watch;

pub use error::ApiError;

/// The largest page a list request may ask for, unless configured
/// otherwise (the OpenAPI document states this one).
pub const DEFAULT_MAX_PAGE_SIZE: usize = 1000;

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Size limits (request body, values, keys, entries, transactions).
    pub limits: Limits,
    /// How often expired entries are swept.
    pub expiry_interval: Duration,
    /// How often retention policies are applied.
    pub compaction_interval: Duration,
    /// Largest page a list request may ask for.
    pub max_page_size: usize,
    /// How often watch streams send a progress (bookmark) event.
    pub progress_interval: Duration,
    /// How requests are authenticated.
    pub auth: auth::Auth,
    /// Bearer JWTs of an OpenID Connect provider, accepted beside the
    /// tokens of `auth` (with tokens on only).
    pub jwt: Option<Arc<jwt::JwtAuth>>,
    /// Requests per agent token (`None`: unlimited).
    pub rate_limit: Option<limits::RateLimit>,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// Most streams (SSE watches, WebSocket connections) an agent token
    /// may have open on a node.
    pub max_streams_per_agent: usize,
    /// How often an agent's open streams decide its access again (token
    /// revocations, policy changes and expiries take effect within this;
    /// grant changes on a watched context, at once).
    pub access_recheck_interval: Duration,
    /// Embeddings for semantic search and relevance (none: keyword only).
    pub embedder: Option<Arc<dyn mesh::Embedder>>,
    /// An LLM that summarizes what does not fit a package (none: the
    /// extractive summary only).
    pub summarizer: Option<Arc<mesh::LlmSummarizer>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            expiry_interval: Duration::from_secs(1),
            compaction_interval: Duration::from_secs(60),
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            progress_interval: Duration::from_secs(5),
            auth: auth::Auth::Off,
            jwt: None,
            rate_limit: None,
            audit_retention: Duration::from_secs(30 * 86_400),
            max_streams_per_agent: 64,
            access_recheck_interval: Duration::from_secs(5),
            embedder: None,
            summarizer: None,
        }
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: ServerConfig,
    /// Set when the server shuts down: long-lived streams end on it.
    closing: tokio::sync::watch::Sender<bool>,
    /// Cancelled when the server shuts down: MCP streams end on it.
    mcp_closing: ctxmesh_mcp::CancellationToken,
    /// Per-agent request buckets.
    limiter: limits::RateLimiter,
    /// Per-agent open streams.
    streams: limits::StreamCounts,
    /// Access decisions not yet written to the audit log.
    audit: std::sync::Mutex<Vec<ctxmesh_core::access::AuditRecord>>,
    /// Package and snapshot caches.
    mesh: mesh::Mesh,
}

impl AppState {
    /// State over `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        // reqwest (summarizer, embeddings) needs the process's provider.
        ctxmesh_tls::install_crypto_provider();
        let (closing, _) = tokio::sync::watch::channel(false);
        AppState {
            inner: Arc::new(Inner {
                store,
                config,
                closing,
                mcp_closing: Default::default(),
                limiter: Default::default(),
                streams: Default::default(),
                audit: Default::default(),
                mesh: Default::default(),
            }),
        }
    }

    /// Queues an access decision for the audit log.
    pub(crate) fn audit(&self, record: ctxmesh_core::access::AuditRecord) {
        self.inner.audit.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }

    /// Writes the queued access decisions to the audit log.
    pub async fn flush_audit(&self) {
        let records = std::mem::take(&mut *self.inner.audit.lock().unwrap_or_else(|e| e.into_inner()));
        if records.is_empty() {
            return;
        }
        let count = records.len();
        if let Err(e) = self.store().coord(ctxmesh_store::coord::AppendAudit(records)).await {
            tracing::warn!(error = %e, count, "could not write access decisions to the audit log");
        }
    }

    /// A place for one more open stream of `caller` (`429` when it has its
    /// maximum open); the admin and `--auth off` are not limited.
    pub(crate) fn open_stream(&self, caller: &extract::Caller) -> Result<Option<limits::StreamGuard>, ApiError> {
        if caller.admin {
            return Ok(None);
        }
        let max = self.inner.config.max_streams_per_agent;
        match self.inner.streams.open(&caller.agent, max) {
            Some(guard) => Ok(Some(guard)),
            None => Err(ApiError::new(
                error::ErrorCode::RateLimited,
                format!(
                    "agent {:?} has {max} streams open: close one (the WebSocket multiplexes many subscriptions)",
                    caller.agent
                ),
            )),
        }
    }

    /// The node's mesh caches.
    pub(crate) fn mesh(&self) -> &mesh::Mesh {
        &self.inner.mesh
    }

    /// The node's per-agent request buckets.
    pub(crate) fn limiter(&self) -> &limits::RateLimiter {
        &self.inner.limiter
    }

    /// Resolves once the server has begun to shut down.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Starts the shutdown of long-lived streams (watches, WebSockets).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
        self.inner.mcp_closing.cancel();
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// A shared handle to the store.
    pub fn store_arc(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// The server settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }
}

/// The application: every route, with limits and metrics, and MCP at
/// `/mcp`.
pub fn app(state: AppState) -> Router {
    let api = api(state.clone());
    // MCP requests are authenticated (and rate-limited) like the API's;
    // their tool calls then go through the API router as that caller.
    let mcp = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(telemetry::trace))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn(telemetry::record_caller))
        .service(mcp::service(&state, api.clone()));
    api.route_service("/mcp", mcp).layer(axum::middleware::from_fn(unread::close_if_unread))
}

/// The HTTP API: every `/v1` route and the operational ones.
fn api(state: AppState) -> Router {
    let body_limit = usize::try_from(state.config().limits.max_body_bytes).unwrap_or(usize::MAX);
    // Layers run outside in: the request's span, authenticate, then
    // authorize context routes.
    routes::router()
        .layer(axum::middleware::from_fn_with_state(state.clone(), authz::guard))
        .layer(axum::middleware::from_fn(telemetry::record_caller))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(telemetry::trace))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, running
/// the background tasks meanwhile. In-flight requests finish before it
/// returns (watch streams are ended first); every acknowledged write is
/// already durable.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_tls(listener, state, None, shutdown).await
}

/// [`run`], over TLS with `tls` when given (HTTPS, and WebSockets over
/// it): each connection's handshake runs in its own task, bounded by
/// [`TLS_HANDSHAKE_TIMEOUT`].
pub async fn run_tls(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    metrics::install();
    let mut tasks = background::spawn(state.clone());
    let closer = state.clone();
    let shutdown = async move {
        shutdown.await;
        // Watch streams would keep their connections open forever: end them
        // (clients resume from their last revision elsewhere or later).
        closer.close();
    };
    serve(listener, app(state.clone()), tls.map(tokio_rustls::TlsAcceptor::from), shutdown).await;
    tasks.abort_all();
    // The decisions of the last requests.
    state.flush_audit().await;
    Ok(())
}

/// How long a client has to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The accept loop: HTTP/1.1 with upgrades (WebSocket), over TLS when an
/// acceptor is given, `TCP_NODELAY` so that events leave at once, and a
/// graceful shutdown that waits for the connections in flight. Each idle
/// connection costs the read and write buffers of hyper (and of rustls)
/// and little else.
async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (closing, _) = tokio::sync::watch::channel(false);
    // Every connection task holds a clone; when all are gone, recv() ends.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A client that never finishes its request headers is dropped.
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, builder, tls) = (app.clone(), builder.clone(), tls.clone());
        let (mut closing, alive) = (closing.subscribe(), alive.clone());
        tokio::spawn(async move {
            let _alive = alive;
            match tls {
                None => serve_connection(&builder, stream, app, closing).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        _ = closing.wait_for(|c| *c) => return,
                    };
                    serve_connection(&builder, stream, app, closing).await
                }
            }
        });
    }
    drop(listener);
    closing.send_replace(true);
    drop(alive);
    let _ = all_closed.recv().await;
}

/// Serves one connection until it ends, or gracefully once `closing` is
/// set.
async fn serve_connection<I>(
    builder: &hyper::server::conn::http1::Builder,
    io: I,
    app: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let service = TowerToHyperService::new(app);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.wait_for(|c| *c) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}
