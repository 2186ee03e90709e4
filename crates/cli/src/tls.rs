//! TLS settings of `ctxmesh serve`: the certificate it serves HTTPS with
//! (reloaded when its files change or on SIGHUP), and the CA file its
//! outbound HTTPS trusts besides the system's roots.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

/// TLS options of `ctxmesh serve`.
#[derive(Args, Debug)]
pub(crate) struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM, the server's own
    /// certificate first), with --tls-key. The files are read again when
    /// they change (see --tls-reload-secs) and on SIGHUP; open
    /// connections keep the certificate they started with.
    #[arg(long, env = "CTXMESH_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "CTXMESH_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// How often the certificate files are checked for changes, in
    /// seconds (0: never; the certificate is then reloaded on SIGHUP only).
    #[arg(long, env = "CTXMESH_TLS_RELOAD_SECS", default_value_t = 2)]
    pub(crate) tls_reload_secs: u64,
    /// CA certificates (PEM) to trust for outbound HTTPS (the embeddings
    /// and summarizer endpoints), besides the system's roots.
    #[arg(long, env = "CTXMESH_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// The server's TLS, once its files are loaded.
pub(crate) struct ServerTls {
    /// The configuration connections are accepted with.
    pub(crate) config: Arc<ctxmesh_tls::rustls::ServerConfig>,
    /// Reloads the certificate while the server runs.
    _watcher: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TlsArgs {
    /// Loads the certificate and starts watching its files (and SIGHUP):
    /// `None` without --tls-cert. A certificate that cannot be loaded is a
    /// start-up error.
    pub(crate) fn server(&self) -> anyhow::Result<Option<ServerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        let reloading = ctxmesh_tls::ReloadingCert::load(cert, key).context("cannot load the TLS certificate")?;
        let config = reloading.server_config()?;
        let poll = (self.tls_reload_secs > 0).then(|| std::time::Duration::from_secs(self.tls_reload_secs));
        let watcher = reloading.watch(poll);
        Ok(Some(ServerTls { config, _watcher: AbortOnDrop(watcher) }))
    }

    /// The server's client for outbound HTTP(S).
    pub(crate) fn outbound_client(&self) -> anyhow::Result<reqwest::Client> {
        ctxmesh_server::mesh::outbound_client(self.ca_file.as_deref()).context("--ca-file")
    }
}

/// A client of the server at `base` for the client commands, trusting the
/// system's roots plus `ca_file` for `https://`.
pub(crate) fn client(base: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<ctxmesh_client::Client> {
    ctxmesh_client::Client::with_ca_file(base, ca_file).context("--ca-file")
}
