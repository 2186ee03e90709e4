//! Loading, trust, handshakes and reloads, over in-memory connections.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::testing::TestCa;
use crate::{ReloadingCert, TlsError, Verification};

/// A handshake of `client` with `server` for the host `name`.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
    name: &str,
) -> Result<Vec<u8>, std::io::Error> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(server);
    tokio::spawn(async move {
        let _ = acceptor.accept(b).await;
    });
    let connector = TlsConnector::from(Arc::new(client));
    let stream = connector.connect(ServerName::try_from(name.to_owned()).unwrap(), a).await?;
    // The certificate the server presented.
    Ok(stream.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

fn ca_only(ca: &TestCa) -> rustls::ClientConfig {
    crate::client_config_with(Verification::Full(crate::roots_with_file(Some(&ca.ca_file()), false).unwrap()), None)
        .unwrap()
}

#[test]
fn loading_errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = crate::load_certs(&missing).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = crate::load_certs(&empty).unwrap_err();
    assert!(err.to_string().contains("no certificate in it"), "{err}");
    let err = crate::load_private_key(&empty).unwrap_err();
    assert!(err.to_string().contains("no private key in it"), "{err}");

    let ca = TestCa::new(dir.path(), "a");
    let one = ca.issue(&["localhost"], "one");
    let two = ca.issue(&["localhost"], "two");
    let err = crate::load_certified_key(&one.cert, &two.key).unwrap_err();
    assert!(err.to_string().contains("does not belong to the certificate"), "{err}");
    assert!(crate::load_certified_key(&one.cert, &one.key).is_ok());
    // A certificate file given as the key.
    let err = crate::load_certified_key(&one.cert, &one.cert).unwrap_err();
    assert!(err.to_string().contains("no private key"), "{err}");
}

#[tokio::test]
async fn the_right_ca_is_trusted_and_a_wrong_ca_or_name_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(dir.path(), "a"), TestCa::new(dir.path(), "b"));
    let issued = ca.issue(&["localhost", "127.0.0.1"], "server");
    let server = ReloadingCert::load(&issued.cert, &issued.key).unwrap().server_config().unwrap();

    // The system's roots plus the CA file.
    let trusting = crate::client_config(Some(&ca.ca_file())).unwrap();
    handshake(server.clone(), trusting.clone(), "localhost").await.unwrap();
    handshake(server.clone(), trusting.clone(), "127.0.0.1").await.unwrap();

    let err = handshake(server.clone(), crate::client_config(Some(&other.ca_file())).unwrap(), "localhost")
        .await
        .unwrap_err();
    let why = crate::explain(&err, "--ca-file").expect("a TLS error");
    assert!(why.contains("is not trusted") && why.contains("--ca-file"), "{why}");

    let err = handshake(server.clone(), trusting, "ctxmesh.example").await.unwrap_err();
    let why = crate::explain(&err, "--ca-file").expect("a TLS error");
    assert!(why.contains("does not match the host name"), "{why}");

    // No TLS error, nothing to explain.
    assert!(crate::explain(&std::io::Error::other("refused"), "--ca-file").is_none());
}

#[tokio::test]
async fn verify_ca_ignores_the_name_and_none_accepts_any_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(dir.path(), "a"), TestCa::new(dir.path(), "b"));
    let issued = ca.issue(&["localhost"], "server");
    let server = ReloadingCert::load(&issued.cert, &issued.key).unwrap().server_config().unwrap();
    let roots = |ca: &TestCa| crate::roots_with_file(Some(&ca.ca_file()), false).unwrap();

    let chain_only = crate::client_config_with(Verification::ChainOnly(roots(&ca)), None).unwrap();
    handshake(server.clone(), chain_only, "ctxmesh.example").await.unwrap();
    let chain_only_other = crate::client_config_with(Verification::ChainOnly(roots(&other)), None).unwrap();
    let err = handshake(server.clone(), chain_only_other, "localhost").await.unwrap_err();
    assert!(crate::explain(&err, "sslrootcert").unwrap().contains("not trusted"));

    let none = crate::client_config_with(Verification::None, None).unwrap();
    handshake(server.clone(), none, "ctxmesh.example").await.unwrap();

    // No root at all: every certificate is untrusted.
    let empty = crate::client_config_with(Verification::Full(rustls::RootCertStore::empty()), None).unwrap();
    let err = handshake(server, empty, "localhost").await.unwrap_err();
    assert!(crate::explain(&err, "--ca-file").unwrap().contains("not trusted"));
}

#[tokio::test]
async fn a_changed_certificate_is_used_by_new_handshakes_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(dir.path(), "a"), TestCa::new(dir.path(), "b"));
    let issued = ca.issue(&["localhost"], "server");
    let reloading = ReloadingCert::load(&issued.cert, &issued.key).unwrap();
    let server = reloading.server_config().unwrap();
    assert!(reloading.reload_if_changed().is_none(), "nothing changed");
    let first = handshake(server.clone(), ca_only(&ca), "localhost").await.unwrap();

    // Replaced by a certificate from another CA.
    other.issue(&["localhost"], "server");
    reloading.reload_if_changed().expect("a change").unwrap();
    assert!(reloading.reload_if_changed().is_none());
    let second = handshake(server.clone(), ca_only(&other), "localhost").await.unwrap();
    assert_ne!(first, second);
    assert!(handshake(server.clone(), ca_only(&ca), "localhost").await.is_err());

    // A broken file: the error is reported, the certificate stays.
    std::fs::write(&issued.cert, "garbage").unwrap();
    let err = reloading.reload_if_changed().expect("a change").unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
    assert_eq!(handshake(server.clone(), ca_only(&other), "localhost").await.unwrap(), second);
    // And so does a reload asked for (SIGHUP).
    assert!(reloading.reload().is_err());
    assert_eq!(handshake(server, ca_only(&other), "localhost").await.unwrap(), second);
}

#[test]
fn http_clients_build_without_a_provider_installed_by_the_caller() {
    crate::http_client(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = crate::http_client(Some(&dir.path().join("nope.pem"))).unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");
    // And reqwest's own builder, once the provider is installed.
    reqwest::Client::new();
}

/// reqwest wraps the handshake's error in two I/O errors: still explained.
#[tokio::test]
async fn a_refused_certificate_is_explained_through_reqwest() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (TestCa::new(dir.path(), "a"), TestCa::new(dir.path(), "b"));
    let issued = ca.issue(&["localhost"], "server");
    let server = ReloadingCert::load(&issued.cert, &issued.key).unwrap().server_config().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let acceptor = TlsAcceptor::from(server);
        while let Ok((stream, _)) = listener.accept().await {
            let _ = acceptor.accept(stream).await;
        }
    });
    let refused = |ca_file: std::path::PathBuf, host: &'static str| async move {
        let http = crate::http_client(Some(&ca_file)).unwrap();
        let err = http.get(format!("https://{host}:{port}/")).send().await.unwrap_err();
        crate::explain(&err, "--ca-file").expect("a TLS error")
    };
    assert!(refused(other.ca_file(), "localhost").await.contains("is not trusted"));
    assert!(refused(ca.ca_file(), "127.0.0.1").await.contains("does not match the host name"));
}
