//! PostgreSQL over TLS, set in the store URL as libpq users write it:
//! `sslmode` (`disable`, `allow` and `prefer` (the default), `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or `system` for
//! the system's roots), and `sslcert` with `sslkey` for a client
//! certificate.
//!
//! As with libpq, `prefer` and `require` encrypt without checking the
//! server's certificate unless `sslrootcert` is given, in which case the
//! chain is checked as with `verify-ca`; `verify-ca` checks the chain and
//! not the host name; `verify-full` checks both. `prefer` (and `allow`)
//! fall back to an unencrypted connection when the server does not offer
//! TLS; the others refuse to connect then.

use std::path::{Path, PathBuf};

use ctxmesh_tls::Verification;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Result, StoreError};

/// A parsed store URL: the driver's configuration and the TLS connector
/// its `ssl*` parameters call for.
#[derive(Clone)]
pub(crate) struct ConnectConfig {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
}

/// What the `ssl*` parameters of a URL ask for.
#[derive(Debug, Default, PartialEq)]
struct SslParams {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// Parses a `postgres://` URL with libpq's TLS parameters.
pub(crate) fn parse(url: &str) -> Result<ConnectConfig> {
    let (rest, ssl) = split_ssl_params(url)?;
    let invalid = |message: String| StoreError::Unavailable(format!("invalid PostgreSQL URL: {message}"));
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| invalid(format!("{e}")))?;
    let mode = ssl.mode.as_deref().unwrap_or("prefer");
    let root_cert = ssl.root_cert.as_deref();
    let roots = |default: bool| -> Result<Option<rustls::RootCertStore>> {
        let file = match root_cert {
            Some("system") => return Ok(Some((*ctxmesh_tls::system_roots()).clone())),
            Some(file) => PathBuf::from(file),
            // libpq's default file, for the modes that need roots.
            None if default => match default_root_cert() {
                Some(file) if file.exists() => file,
                _ => {
                    return Err(invalid(format!(
                        "sslmode={mode} checks the server's certificate, so it needs the certificate of the CA \
                         that issued it: add sslrootcert=/path/to/ca.pem (or sslrootcert=system for the \
                         system's trusted roots), or use sslmode=require to encrypt without checking"
                    )));
                }
            },
            None => return Ok(None),
        };
        ctxmesh_tls::roots_with_file(Some(&file), false).map(Some).map_err(|e| invalid(format!("sslrootcert: {e}")))
    };
    let (ssl_mode, verification) = match mode {
        "disable" => (SslMode::Disable, Verification::None),
        "allow" | "prefer" | "require" => {
            let ssl_mode = if mode == "require" { SslMode::Require } else { SslMode::Prefer };
            match roots(false)? {
                Some(roots) => (ssl_mode, Verification::ChainOnly(roots)),
                None => (ssl_mode, Verification::None),
            }
        }
        "verify-ca" => {
            (SslMode::Require, Verification::ChainOnly(roots(true)?.unwrap_or_else(rustls::RootCertStore::empty)))
        }
        "verify-full" => {
            (SslMode::Require, Verification::Full(roots(true)?.unwrap_or_else(rustls::RootCertStore::empty)))
        }
        other => {
            return Err(invalid(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    config.ssl_mode(ssl_mode);
    let identity = match (&ssl.cert, &ssl.key) {
        (Some(cert), Some(key)) => Some(load_identity(cert, key).map_err(|e| invalid(e.to_string()))?),
        (None, None) => None,
        _ => return Err(invalid("sslcert and sslkey go together: give both, or neither".into())),
    };
    let tls = ctxmesh_tls::client_config_with(verification, identity).map_err(|e| invalid(e.to_string()))?;
    Ok(ConnectConfig { config, tls: MakeRustlsConnect::new(tls) })
}

/// Connects to the database `url` names (TLS as its `ssl*` parameters
/// say), with the connection driven by a task of its own.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let parsed = parse(url)?;
    let (client, connection) = parsed.config.connect(parsed.tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

fn load_identity(
    cert: &Path,
    key: &Path,
) -> std::result::Result<
    (Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>),
    ctxmesh_tls::TlsError,
> {
    Ok((ctxmesh_tls::load_certs(cert)?, ctxmesh_tls::load_private_key(key)?))
}

/// `~/.postgresql/root.crt`, libpq's default root certificate file.
fn default_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".postgresql").join("root.crt"))
}

/// Takes the `ssl*` parameters out of a URL's query string (the driver
/// knows `sslmode` up to `require` only, and none of the others).
fn split_ssl_params(url: &str) -> Result<(String, SslParams)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), SslParams::default()));
    };
    let mut ssl = SslParams::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || percent_decode(value);
        match name {
            "sslmode" => ssl.mode = Some(decoded()),
            "sslrootcert" => ssl.root_cert = Some(decoded()),
            "sslcert" => ssl.cert = Some(PathBuf::from(decoded())),
            "sslkey" => ssl.key = Some(PathBuf::from(decoded())),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, ssl))
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_of_the_url() {
        let (rest, ssl) = split_ssl_params(
            "postgres://u@h/db?sslmode=verify-full&options=-csearch_path%3Ds&sslrootcert=%2Ftmp%2Fca.pem&sslcert=/c&sslkey=/k",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h/db?options=-csearch_path%3Ds");
        assert_eq!(ssl.mode.as_deref(), Some("verify-full"));
        assert_eq!(ssl.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(ssl.cert, Some(PathBuf::from("/c")));
        assert_eq!(ssl.key, Some(PathBuf::from("/k")));
        let (rest, ssl) = split_ssl_params("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), ssl.mode.as_deref()), ("postgres://u@h/db", Some("require")));
        assert_eq!(split_ssl_params("postgres://u@h/db").unwrap().0, "postgres://u@h/db");
    }

    #[test]
    fn bad_ssl_settings_are_refused_with_what_to_do() {
        let err = |url: &str| parse(url).err().expect("refused").to_string();
        assert!(err("postgres://u@h/db?sslmode=strict").contains("is not one of disable"));
        let e = err("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        assert!(err("postgres://u@h/db?sslmode=require&sslcert=/c").contains("sslcert and sslkey go together"));
        for mode in ["disable", "allow", "prefer", "require"] {
            assert!(parse(&format!("postgres://u@h/db?sslmode={mode}")).is_ok(), "{mode}");
        }
        assert!(parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=system").is_ok());
    }
}
