//! TLS for every connection ctxmesh makes or accepts, with rustls over
//! ring.
//!
//! - [`install_crypto_provider`]: the process-wide rustls provider, which
//!   reqwest (built without a provider of its own) needs before any client
//!   is built, for plain HTTP too;
//! - `client`: the trust of outgoing connections (the system's roots plus
//!   an optional CA file), reqwest clients over it ([`http_client_builder`])
//!   and the relaxed verifiers PostgreSQL's `sslmode` values call for;
//! - `pem`: certificate chains and keys from PEM files, with errors that
//!   name the file;
//! - `server`: the listening side, whose certificate is reloaded when its
//!   files change or on SIGHUP ([`ReloadingCert`]);
//! - [`explain`]: what a failed handshake means to a user, and what to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

mod client;
mod pem;
mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use client::{
    Verification, client_config, client_config_with, http_client, http_client_builder, roots_with_file, system_roots,
};
pub use pem::{load_certified_key, load_certs, load_private_key};
pub use rustls;
pub use server::{DEFAULT_POLL_INTERVAL, ReloadingCert};
pub use tokio_rustls;

/// An error of this crate: a file that cannot be read or holds no usable
/// certificate or key, or a configuration rustls refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no certificate, or an unreadable one.
    #[error("{}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file holds no private key, or one that cannot be used.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration rustls refuses.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl TlsError {
    fn certificate(path: &Path, reason: impl Into<String>) -> Self {
        TlsError::Certificate { path: path.to_owned(), reason: reason.into() }
    }

    fn key(path: &Path, reason: impl Into<String>) -> Self {
        TlsError::Key { path: path.to_owned(), reason: reason.into() }
    }

    fn read(path: &Path, source: std::io::Error) -> Self {
        TlsError::Read { path: path.to_owned(), source }
    }
}

/// The crypto provider every configuration of this crate is built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// Installs ring as the process's default rustls provider, once; a no-op
/// when a provider is installed already. reqwest finds its TLS
/// configuration through it, so this runs before any reqwest client is
/// built (the functions of this crate that build one call it).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: another provider is installed, which does as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `error` for a user: what a refused certificate means and what to do
/// ([`explain`]), else the error followed by each of its causes.
pub fn describe(error: &(dyn std::error::Error + 'static), ca_hint: &str) -> String {
    if let Some(why) = explain(error, ca_hint) {
        return why;
    }
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// What a failed TLS handshake anywhere in `error`'s chain of causes means
/// to a user and what to do about it, or `None` when no TLS error is in it.
/// `ca_hint` names the setting that adds a CA (e.g. `--ca-file (or
/// CTXMESH_CA_FILE)`).
pub fn explain(error: &(dyn std::error::Error + 'static), ca_hint: &str) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(explain_rustls(tls, ca_hint));
        }
        // io::Error hides the error it wraps from `source()`, and may wrap
        // another io::Error.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn std::error::Error + 'static) = inner;
            current = Some(inner);
            continue;
        }
        current = e.source();
    }
    None
}

fn explain_rustls(error: &rustls::Error, ca_hint: &str) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature => format!(
                "the server's TLS certificate is not trusted: it is not signed by a certificate authority this \
                 side trusts (the system's, or one given with {ca_hint}); pass the CA certificate that issued \
                 it with {ca_hint} ({error})"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the server's TLS certificate does not match the host name connected to: connect with a name \
                 the certificate was issued for, or give the server a certificate for this name ({error})"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                format!("the server's TLS certificate has expired: renew it ({error})")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("the server's TLS certificate is not valid yet: check the clocks ({error})")
            }
            _ => format!("the server's TLS certificate was refused: {error}"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the peer does not speak TLS (is it serving plain http://? then use http://): {error}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the peer refused the TLS handshake ({alert:?}): check its certificate settings ({error})")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests;
