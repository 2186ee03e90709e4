//! `ctxmesh mcp`: an MCP server over stdio, against a running server or,
//! for one user, the embedded store.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use ctxmesh_mcp::{Body, Gateway, Mcp};
use ctxmesh_store::{Durability, OpenOptions};
use futures::StreamExt;
use futures::future::BoxFuture;

/// Options of `ctxmesh mcp`.
#[derive(Args, Debug)]
pub(crate) struct McpArgs {
    /// The server to use. Without it, the embedded store in --data-dir is
    /// opened in this process, for one user (do not point it at the data
    /// directory of a running server: connect to that server instead).
    #[arg(long, env = "CTXMESH_SERVER")]
    server: Option<String>,
    /// Bearer token for --server (an agent's, or the admin token).
    /// Without it: $CTXMESH_TOKEN, then the admin token in --data-dir,
    /// then the server's entry in ~/.config/ctxmesh/credentials.json
    /// (`ctxmesh login`). With none, `ctxmesh mcp` does not start (unless
    /// the server runs with --auth off).
    #[arg(long)]
    token: Option<String>,
    /// Act as this agent (recorded as the author of writes).
    #[arg(long, env = "CTXMESH_AGENT")]
    agent: Option<String>,
    /// The data directory: the embedded store, or where the local admin
    /// token is found.
    #[arg(long, env = "CTXMESH_DATA_DIR", default_value = "./ctxmesh-data")]
    data_dir: std::path::PathBuf,
    /// Store URL for the embedded mode (default: ctxmesh.db in --data-dir).
    #[arg(long, env = "CTXMESH_STORE", conflicts_with = "server")]
    store: Option<String>,
    /// CA certificates (PEM) to trust for an https:// --server, besides
    /// the system's roots.
    #[arg(long, env = "CTXMESH_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
}

pub(crate) async fn run(args: McpArgs) -> anyhow::Result<()> {
    // stdout carries the protocol: logs go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CTXMESH_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mcp = match &args.server {
        Some(server) => {
            let lookup = crate::credentials::find_token(server, args.token.as_deref(), &args.data_dir);
            let http = ctxmesh_tls::http_client(args.ca_file.as_deref()).context("--ca-file")?;
            check_token(ctxmesh_client::Client::with_http(server, http.clone()), &lookup).await?;
            let gateway = HttpGateway {
                http,
                base: server.trim_end_matches('/').to_owned(),
                token: lookup.token().map(str::to_owned),
                agent: args.agent.clone(),
            };
            Mcp::new(Arc::new(gateway))
        }
        None => {
            let options = OpenOptions {
                data_dir: args.data_dir.clone(),
                durability: Durability::Full,
                limits: Default::default(),
                pool_size: 4,
                clock: ctxmesh_store::clock::system(),
                log_segment_bytes: None,
                commit_log: false,
            };
            let (store, _) = ctxmesh_store::open(args.store.as_deref(), &options)
                .await
                .with_context(|| format!("cannot open the store in {}", args.data_dir.display()))?;
            let state = ctxmesh_server::AppState::new(store, Default::default());
            // Expiry and retention run as they would in a server.
            let _background = ctxmesh_server::background::spawn(state.clone());
            ctxmesh_server::mcp::local(state, args.agent.as_deref())
        }
    };
    mcp.serve_stdio().await.map_err(|e| anyhow::anyhow!("MCP over stdio: {e}"))
}

/// Refuses to serve tools whose every call the server would refuse: with
/// no token found (unless the server answers without one: `--auth off`),
/// or with a token the server refuses. A server that cannot be reached
/// yet is given the benefit of the doubt when a token was found.
async fn check_token(client: ctxmesh_client::Client, lookup: &crate::credentials::Lookup) -> anyhow::Result<()> {
    match lookup.token() {
        Some(token) => match client.with_token(token).whoami().await {
            Err(e @ ctxmesh_client::ClientError::Api { status: 401, .. }) => Err(lookup.explain(e.into())),
            // A certificate that is not trusted will not be later either.
            Err(e @ ctxmesh_client::ClientError::Certificate(_)) => Err(e.into()),
            _ => Ok(()),
        },
        None => match client.whoami().await {
            Ok(_) => Ok(()),
            Err(_) => Err(lookup.missing()),
        },
    }
}

/// Sends MCP tool calls to a server over HTTP.
struct HttpGateway {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    agent: Option<String>,
}

impl Gateway for HttpGateway {
    fn send(
        &self,
        _caller: Option<http::Extensions>,
        request: http::Request<bytes::Bytes>,
    ) -> BoxFuture<'static, Result<http::Response<Body>, String>> {
        let (parts, body) = request.into_parts();
        let mut req =
            self.http.request(parts.method, format!("{}{}", self.base, parts.uri)).headers(parts.headers).body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(agent) = &self.agent {
            req = req.header("x-agent-id", agent);
        }
        Box::pin(async move {
            let response = req.send().await.map_err(|e| {
                let why = ctxmesh_tls::explain(&e, "--ca-file (or CTXMESH_CA_FILE)").unwrap_or_else(|| e.to_string());
                format!("cannot reach the server: {why}")
            })?;
            let mut out = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            let body: Body = response.bytes_stream().map(|chunk| chunk.map_err(|e| e.to_string())).boxed();
            out.body(body).map_err(|e| e.to_string())
        })
    }
}
