//! `ctxmesh serve`: resolve the configuration, open the store, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use ctxmesh_core::Limits;
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
    /// Database connections of this node (PostgreSQL store).
    #[arg(long, env = "CTXMESH_POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// `full`: acknowledge writes after fsync. `relaxed`: after the OS has
    /// them (survives a server crash, not a power loss).
    #[arg(long, env = "CTXMESH_DURABILITY", default_value = "full")]
    durability: Durability,
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
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CTXMESH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
    };
    let (store, description) =
        ctxmesh_store::open(args.store.as_deref(), &options).await.with_context(|| match args.store.as_deref() {
            Some(url) if url.contains("://") && !url.starts_with("sqlite:") => "cannot open the store".to_owned(),
            _ => format!("cannot open the store in {}", args.data_dir.display()),
        })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}: is another server running there?", args.listen))?;
    let local = listener.local_addr()?;
    match args.durability {
        Durability::Full => {
            tracing::info!(store = %description, "durability: full (writes are acknowledged after fsync)")
        }
        Durability::Relaxed => tracing::warn!(
            store = %description,
            "durability: RELAXED: acknowledged writes survive a crash of ctxmesh but may be lost if the machine crashes"
        ),
    }
    tracing::info!(address = %local, "ctxmesh listening on http://{local}");
    let config = ServerConfig {
        limits,
        expiry_interval: Duration::from_millis(args.expiry_interval_ms.max(10)),
        compaction_interval: Duration::from_secs(args.compaction_interval_secs.max(1)),
        ..ServerConfig::default()
    };
    ctxmesh_server::run(listener, AppState::new(store, config), shutdown_signal()).await?;
    tracing::info!("ctxmesh stopped");
    Ok(())
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
