//! Certificate chains and private keys from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// The certificates of a PEM file, in order (a server's chain starts with
/// its own certificate).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::read(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::certificate(path, format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::certificate(
            path,
            "no certificate in it (expected a PEM file with -----BEGIN CERTIFICATE----- blocks)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::read(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::key(
            path,
            "no private key in it (expected a PEM file with a -----BEGIN PRIVATE KEY----- block, \
             or an RSA or EC one)",
        ),
        other => TlsError::key(path, format!("not a valid PEM private key file: {other}")),
    })
}

/// A certificate chain and its private key, checked to belong together.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert_path)?;
    let key = load_private_key(key_path)?;
    let certified = CertifiedKey::from_der(chain, key, &crate::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::key(key_path, format!("this key does not belong to the certificate in {}", cert_path.display()))
        }
        rustls::Error::General(reason) => TlsError::key(key_path, format!("unusable private key: {reason}")),
        other => TlsError::key(key_path, format!("unusable with {}: {other}", cert_path.display())),
    })?;
    Ok(Arc::new(certified))
}
