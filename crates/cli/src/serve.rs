//! `ctxmesh serve`: resolve the configuration, open the store, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use ctxmesh_core::Limits;
use ctxmesh_server::auth::Auth;
use ctxmesh_server::{AppState, ServerConfig};
use ctxmesh_store::{Durability, OpenOptions};

/// Options of `ctxmesh serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Directory for the embedded store and server files.
    #[arg(long, env = "CTXMESH_DATA_DIR", default_value = "./ctxmesh-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CTXMESH_LISTEN", default_value = "127.0.0.1:7600")]
    listen: SocketAddr,
    /// Store URL: postgres://USER@HOST/DB for several nodes over one
    /// database, or sqlite://PATH (default: ctxmesh.db in the data directory).
    #[arg(long, env = "CTXMESH_STORE")]
    store: Option<String>,
    /// `on`: every /v1 request carries `Authorization: Bearer <token>`.
    /// `off`: callers name themselves with X-Agent-Id; only on a loopback
    /// address.
    #[arg(long, env = "CTXMESH_AUTH", default_value = "on", value_parser = ["on", "off"])]
    auth: String,
    /// Do not save a newly generated admin token in the per-user
    /// credentials file (~/.config/ctxmesh/credentials.json), where the
    /// client commands find it from any directory.
    #[arg(long, env = "CTXMESH_NO_SAVE_CREDENTIALS", value_parser = clap::builder::BoolishValueParser::new())]
    no_save_credentials: bool,
    /// Requests per second each agent token may make, on average (0: no
    /// limit). The admin token is not limited.
    #[arg(long, env = "CTXMESH_RATE_LIMIT", default_value_t = 100.0)]
    rate_limit: f64,
    /// Requests an agent may make at once, above its rate.
    #[arg(long, env = "CTXMESH_RATE_BURST", default_value_t = 200.0)]
    rate_burst: f64,
    /// Most streams (SSE watches, WebSocket connections) each agent token
    /// may have open on this node.
    #[arg(long, env = "CTXMESH_MAX_STREAMS_PER_AGENT", default_value_t = 64)]
    max_streams_per_agent: usize,
    /// How often each open stream of an agent decides its access again, in
    /// milliseconds: token revocations, policy changes and expiries end or
    /// narrow open streams within this (grant changes on the watched
    /// context take effect at once).
    #[arg(long, env = "CTXMESH_ACCESS_RECHECK_MS", default_value_t = 5000)]
    access_recheck_ms: u64,
    /// A sentence-transformers model directory (config.json,
    /// model.safetensors, tokenizer.json; BERT family, such as
    /// all-MiniLM-L6-v2) for semantic search and relevance, run locally.
    #[arg(long, env = "CTXMESH_EMBEDDING_MODEL_DIR", conflicts_with = "embedding_url")]
    embedding_model_dir: Option<PathBuf>,
    /// An OpenAI-compatible endpoint for embeddings instead
    /// (e.g. http://127.0.0.1:11434/v1), with --embedding-model.
    #[arg(long, env = "CTXMESH_EMBEDDING_URL", requires = "embedding_model")]
    embedding_url: Option<String>,
    /// The model the embeddings endpoint serves.
    #[arg(long, env = "CTXMESH_EMBEDDING_MODEL")]
    embedding_model: Option<String>,
    /// An OpenAI-compatible chat endpoint that summarizes what does not fit
    /// a package, with --summarizer-model (default: the offline extractive
    /// summary, which also stands when the endpoint fails).
    #[arg(long, env = "CTXMESH_SUMMARIZER_URL", requires = "summarizer_model")]
    summarizer_url: Option<String>,
    /// The model the summarizer endpoint serves.
    #[arg(long, env = "CTXMESH_SUMMARIZER_MODEL")]
    summarizer_model: Option<String>,
    /// Days the audit log of access decisions is kept.
    #[arg(long, env = "CTXMESH_AUDIT_RETENTION_DAYS", default_value_t = 30)]
    audit_retention_days: u64,
    /// Database connections of this node (PostgreSQL store).
    #[arg(long, env = "CTXMESH_POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// `full`: acknowledge writes after fsync. `relaxed`: after the OS has
    /// them (survives a server crash, not a power loss).
    #[arg(long, env = "CTXMESH_DURABILITY", default_value = "full")]
    durability: Durability,
    /// Make the embedded store's commit log its durability point: a batch
    /// of writes is acknowledged once its record is appended to the log
    /// and synced, and SQLite commits without syncing (docs/storage.md).
    /// Off by default: on the machines measured it is not faster yet.
    #[arg(long, env = "CTXMESH_COMMIT_LOG")]
    commit_log: bool,
    /// Size of each segment of the embedded store's commit log, in bytes:
    /// the log is trimmed a whole segment at a time, once the database
    /// file holds its writes (default 64 MiB).
    #[arg(long, env = "CTXMESH_LOG_SEGMENT_BYTES", value_parser = clap::value_parser!(u64).range(4096..))]
    log_segment_bytes: Option<u64>,
    /// Largest request body, in bytes.
    #[arg(long, env = "CTXMESH_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: u64,
    /// Largest entry value (serialized JSON), in bytes.
    #[arg(long, env = "CTXMESH_MAX_VALUE_BYTES", default_value_t = Limits::default().max_value_bytes)]
    max_value_bytes: u64,
    /// Longest key, in bytes (at most 512).
    #[arg(long, env = "CTXMESH_MAX_KEY_BYTES", default_value_t = Limits::default().max_key_bytes)]
    max_key_bytes: u64,
    /// Most live entries per context.
    #[arg(long, env = "CTXMESH_MAX_ENTRIES_PER_CONTEXT", default_value_t = Limits::default().max_entries_per_context)]
    max_entries_per_context: u64,
    /// Most comparisons plus operations per transaction.
    #[arg(long, env = "CTXMESH_MAX_TXN_OPS", default_value_t = Limits::default().max_txn_ops)]
    max_txn_ops: u64,
    /// How often expired entries are swept, in milliseconds.
    #[arg(long, env = "CTXMESH_EXPIRY_INTERVAL_MS", default_value_t = 1000)]
    expiry_interval_ms: u64,
    /// How often retention policies are applied, in seconds.
    #[arg(long, env = "CTXMESH_COMPACTION_INTERVAL_SECS", default_value_t = 60)]
    compaction_interval_secs: u64,
    #[command(flatten)]
    telemetry: crate::telemetry::TelemetryArgs,
    #[command(flatten)]
    jwt: crate::jwt_args::JwtArgs,
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let telemetry = crate::telemetry::init(&args.telemetry)?;
    if args.max_key_bytes == 0 || args.max_key_bytes > 512 {
        anyhow::bail!("--max-key-bytes must be between 1 and 512");
    }
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_value_bytes: args.max_value_bytes,
        max_key_bytes: args.max_key_bytes,
        max_entries_per_context: args.max_entries_per_context,
        max_txn_ops: args.max_txn_ops,
    };
    let options = OpenOptions {
        data_dir: args.data_dir.clone(),
        durability: args.durability,
        limits: limits.clone(),
        pool_size: args.pool_size,
        clock: ctxmesh_store::clock::system(),
        log_segment_bytes: args.log_segment_bytes,
        commit_log: args.commit_log,
    };
    // Configuration mistakes are reported before the store is opened.
    let tls = args.tls.server()?;
    let outbound = args.tls.outbound_client()?;
    // The provider's keys come over the same outbound HTTPS (--ca-file).
    let jwt = args.jwt.start(args.auth == "off", || outbound.clone()).await?;
    let (auth, generated) = resolve_auth(&args)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let opened = async {
        ctxmesh_store::faults::setup_from_env().map_err(anyhow::Error::msg)?;
        let (store, description) = ctxmesh_store::open(args.store.as_deref(), &options).await.with_context(|| {
            match args.store.as_deref() {
                Some(url) if url.contains("://") && !url.starts_with("sqlite:") => "cannot open the store".to_owned(),
                _ => format!("cannot open the store in {}", args.data_dir.display()),
            }
        })?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}: is another server running there?", args.listen))?;
        let local = listener.local_addr()?;
        anyhow::Ok((store, description, listener, local))
    }
    .await;
    let (store, description, listener, local) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            if let Some(generated) = &generated {
                generated.announce(None, scheme);
            }
            return Err(e);
        }
    };
    if let Some(generated) = &generated {
        let saved_for = (!args.no_save_credentials).then_some(local);
        generated.announce(saved_for, scheme);
    }
    match args.durability {
        Durability::Full => {
            tracing::info!(store = %description, "durability: full (writes are acknowledged after fsync)")
        }
        Durability::Relaxed => tracing::warn!(
            store = %description,
            "durability: RELAXED: acknowledged writes survive a crash of ctxmesh but may be lost if the machine crashes"
        ),
    }
    tracing::info!(address = %local, "ctxmesh listening on {scheme}://{local}");
    let embedder: Option<std::sync::Arc<dyn ctxmesh_server::mesh::Embedder>> =
        match (&args.embedding_model_dir, &args.embedding_url, &args.embedding_model) {
            (Some(dir), _, _) => {
                let model = ctxmesh_server::mesh::LocalEmbedder::load(dir)
                    .map_err(|e| anyhow::anyhow!("the embedding model in {}: {e}", dir.display()))?;
                tracing::info!(model = %dir.display(), "semantic search: local model");
                Some(std::sync::Arc::new(model))
            }
            (None, Some(url), Some(model)) => {
                tracing::info!(%url, %model, "semantic search: embeddings endpoint");
                let key = std::env::var("CTXMESH_LLM_API_KEY").ok();
                Some(std::sync::Arc::new(ctxmesh_server::mesh::RemoteEmbedder::with_client(
                    url,
                    model,
                    key,
                    outbound.clone(),
                )))
            }
            _ => None,
        };
    let summarizer = match (&args.summarizer_url, &args.summarizer_model) {
        (Some(url), Some(model)) => {
            let key = std::env::var("CTXMESH_LLM_API_KEY").ok();
            Some(std::sync::Arc::new(ctxmesh_server::mesh::LlmSummarizer::with_client(
                url,
                model,
                key,
                outbound.clone(),
            )))
        }
        _ => None,
    };
    let config = ServerConfig {
        embedder,
        summarizer,
        limits,
        expiry_interval: Duration::from_millis(args.expiry_interval_ms.max(10)),
        compaction_interval: Duration::from_secs(args.compaction_interval_secs.max(1)),
        auth,
        jwt,
        max_streams_per_agent: args.max_streams_per_agent.max(1),
        access_recheck_interval: Duration::from_millis(args.access_recheck_ms.max(10)),
        audit_retention: Duration::from_secs(args.audit_retention_days.max(1).saturating_mul(86_400)),
        rate_limit: (args.rate_limit > 0.0).then_some(ctxmesh_server::limits::RateLimit {
            per_second: args.rate_limit,
            burst: args.rate_burst.max(1.0),
        }),
        ..ServerConfig::default()
    };
    // `tls` lives until the server stops: it keeps reloading the certificate.
    let tls_config = tls.as_ref().map(|tls| tls.config.clone());
    ctxmesh_server::run_tls(listener, AppState::new(store, config), tls_config, shutdown_signal()).await?;
    drop(tls);
    telemetry.shutdown().await;
    tracing::info!("ctxmesh stopped");
    Ok(())
}

/// The file in the data directory that holds a generated admin token.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin.token";

/// An admin token generated by this start, stored in the data directory.
struct GeneratedToken {
    token: String,
    path: PathBuf,
}

impl GeneratedToken {
    /// Prints the token, this once, after saving it in the per-user
    /// credentials file for the server listening on `saved_for`, if given.
    fn announce(&self, saved_for: Option<SocketAddr>, scheme: &str) {
        let (token, path) = (&self.token, self.path.display());
        let saved = saved_for.and_then(|local| {
            let url = format!("{scheme}://{}", client_address(local));
            match crate::credentials::save(&url, token) {
                Ok(file) => Some((url, file)),
                Err(e) => {
                    tracing::warn!("cannot save the admin token in the per-user credentials file: {e:#}");
                    None
                }
            }
        });
        match saved {
            Some((url, file)) => eprintln!(
                "admin token (also in {path}, mode 0600, and saved for {url} in {}, where the ctxmesh commands \
                 find it from any directory): {token}",
                file.display()
            ),
            None => eprintln!("admin token (also in {path}, mode 0600): {token}"),
        }
    }
}

/// The address a client on this machine uses for a server listening on
/// `local`: the loopback address for an unspecified one (`0.0.0.0`).
fn client_address(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], local.port())),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, local.port()))
        }
        _ => local,
    }
}

/// Authentication from the flags: the admin token comes from
/// `CTXMESH_ADMIN_TOKEN`, else from the data directory, where it is
/// generated (mode 0600) on first start, to be announced once listening.
fn resolve_auth(args: &ServeArgs) -> anyhow::Result<(Auth, Option<GeneratedToken>)> {
    if args.auth == "off" {
        if !args.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {} without authentication: use --auth on (the default), \
                 or listen on 127.0.0.1 / [::1]",
                args.listen
            );
        }
        tracing::warn!("authentication is OFF: any local process can act as any agent (X-Agent-Id)");
        return Ok((Auth::Off, None));
    }
    if let Ok(token) = std::env::var("CTXMESH_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok((Auth::with_admin_token(token.trim()), None));
    }
    let path = args.data_dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok((Auth::with_admin_token(token.trim()), None)),
        Ok(_) => anyhow::bail!("{} is empty: delete it to generate a new admin token", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let token = ctxmesh_server::auth::new_token();
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((Auth::with_admin_token(&token), Some(GeneratedToken { token, path })))
}

/// Writes `content` to a new file readable by its owner only.
fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
