//! The listening side: a server certificate that is reloaded when its
//! files change or on SIGHUP, without dropping open connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// A good interval for [`ReloadingCert::watch`] to look at the files
/// (`ctxmesh serve --tls-reload-secs` defaults to it).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What a file looked like when last loaded: modification time, size and
/// inode (a file replaced by a rename has a new one).
type Stamp = (Option<SystemTime>, u64, u64);

/// The certificate a server presents, from a certificate chain file and a
/// key file (PEM). A handshake takes the certificate current at its start;
/// a reload replaces it for the handshakes after, and a file that cannot be
/// loaded leaves the previous certificate in use.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files as last read (whether or not that load succeeded).
    seen: Mutex<[Stamp; 2]>,
}

impl ReloadingCert {
    /// Loads the chain in `cert_path` and the key in `key_path`.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let seen = [stamp(cert_path), stamp(key_path)];
        let key = crate::load_certified_key(cert_path, key_path)?;
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(key),
            seen: Mutex::new(seen),
        }))
    }

    /// The certificate and key in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the files again; on an error the previous certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let seen = [stamp(&self.cert_path), stamp(&self.key_path)];
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        let key = crate::load_certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// Reloads if either file changed since it was last read: `None` when
    /// neither did.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = [stamp(&self.cert_path), stamp(&self.key_path)];
        if *self.seen.lock().unwrap_or_else(|e| e.into_inner()) == now {
            return None;
        }
        Some(self.reload())
    }

    /// A server configuration presenting this certificate (HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads the certificate every `poll` when its files changed (never
    /// with `None`), and on SIGHUP, logging each reload and each failure,
    /// until the task is aborted. Call it from within a Tokio runtime:
    /// SIGHUP is caught from this call on.
    pub fn watch(self: &Arc<Self>, poll: Option<Duration>) -> tokio::task::JoinHandle<()> {
        #[cfg(unix)]
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch SIGHUP: the TLS certificate is reloaded on file changes only");
                None
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut ticks = poll.map(|poll| {
                let mut ticks = tokio::time::interval(poll);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            loop {
                let tick = async {
                    match ticks.as_mut() {
                        Some(ticks) => {
                            ticks.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(unix)]
                let hangup_received = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup_received = std::future::pending::<Option<()>>();
                let (why, outcome) = tokio::select! {
                    () = tick => match this.reload_if_changed() {
                        Some(outcome) => ("its files changed", outcome),
                        None => continue,
                    },
                    _ = hangup_received => ("SIGHUP", this.reload()),
                };
                match outcome {
                    Ok(()) => tracing::info!(
                        cert = %this.cert_path.display(),
                        "TLS certificate reloaded ({why}): new connections get it"
                    ),
                    Err(e) => tracing::error!(
                        "cannot reload the TLS certificate ({why}): {e}; the previous certificate stays in use"
                    ),
                }
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(path: &Path) -> Stamp {
    match std::fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let inode = 0;
            (meta.modified().ok(), meta.len(), inode)
        }
        Err(_) => (None, 0, 0),
    }
}
