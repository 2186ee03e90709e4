//! The trust of outgoing connections: which roots, how much of the
//! server's certificate is checked, and reqwest clients over it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::TlsError;

/// How much of a server's certificate an outgoing connection checks.
#[derive(Debug)]
#[non_exhaustive]
pub enum Verification {
    /// The chain up to one of these roots, and the host name (what HTTPS
    /// does; PostgreSQL's `sslmode=verify-full`).
    Full(RootCertStore),
    /// The chain up to one of these roots, not the host name
    /// (`sslmode=verify-ca`).
    ChainOnly(RootCertStore),
    /// Nothing: the connection is encrypted but the server is not
    /// authenticated (`sslmode=require` or `prefer` without a root
    /// certificate, as libpq does).
    None,
}

/// The system's trusted roots (loaded once per process); certificates the
/// system store holds that cannot be parsed are skipped.
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::debug!(error = %e, "a system root certificate could not be loaded");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
            tracing::debug!(added, ignored, "system root certificates");
            Arc::new(roots)
        })
        .clone()
}

/// The certificates of `ca_file` (PEM) as roots, after the system's roots
/// when `with_system` is set.
pub fn roots_with_file(ca_file: Option<&Path>, with_system: bool) -> Result<RootCertStore, TlsError> {
    let mut roots = if with_system { (*system_roots()).clone() } else { RootCertStore::empty() };
    if let Some(path) = ca_file {
        for cert in crate::load_certs(path)? {
            roots.add(cert).map_err(|e| {
                crate::TlsError::certificate(path, format!("not usable as a certificate authority: {e}"))
            })?;
        }
    }
    Ok(roots)
}

/// The configuration of an outgoing connection that trusts the system's
/// roots plus the certificates of `ca_file`, and checks host names.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let roots = match ca_file {
        None => Verification::Full((*system_roots()).clone()),
        Some(_) => Verification::Full(roots_with_file(ca_file, true)?),
    };
    client_config_with(roots, None)
}

/// The configuration of an outgoing connection that checks the server as
/// `verification` says and, with `identity`, presents that certificate
/// chain and key.
pub fn client_config_with(
    verification: Verification,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let provider = crate::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        // No root at all (a system without a CA bundle, and no CA file):
        // plain HTTP still works, and every certificate is untrusted.
        Verification::Full(roots) | Verification::ChainOnly(roots) if roots.is_empty() => {
            Arc::new(Fixed { provider: provider.clone(), accept: false })
        }
        Verification::Full(roots) => full_verifier(roots, &provider)?,
        Verification::ChainOnly(roots) => Arc::new(ChainOnly(full_verifier(roots, &provider)?)),
        Verification::None => Arc::new(Fixed { provider: provider.clone(), accept: true }),
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    Ok(match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    })
}

/// A reqwest client builder for plain HTTP and for HTTPS that trusts the
/// system's roots plus the certificates of `ca_file`.
pub fn http_client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, TlsError> {
    crate::install_crypto_provider();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(client_config(ca_file)?))
}

/// [`http_client_builder`], built.
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, TlsError> {
    http_client_builder(ca_file)?
        .build()
        .map_err(|e| TlsError::Config(rustls::Error::General(format!("cannot build the HTTP client: {e}"))))
}

fn full_verifier(
    roots: RootCertStore,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))
}

/// Checks the chain, not the host name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        // The chain is checked before the name: a name error means the
        // chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (`accept`: the handshake's signatures are
/// still checked, so the connection is encrypted to whoever holds the
/// certificate's key), or none (no root is trusted).
#[derive(Debug)]
struct Fixed {
    provider: Arc<rustls::crypto::CryptoProvider>,
    accept: bool,
}

impl ServerCertVerifier for Fixed {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.accept {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
