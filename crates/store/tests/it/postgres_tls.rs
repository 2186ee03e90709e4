//! The PostgreSQL store over TLS, with libpq's `sslmode` and `sslrootcert`
//! in the store URL, against the local test server, which serves TLS with
//! a certificate for localhost and 127.0.0.1 from the CA in
//! `CTXMESH_TEST_POSTGRES_CA` (`./scripts/test` sets both up).

use ctxmesh_store::conformance::fresh_postgres_url;
use ctxmesh_store::postgres::{PostgresConfig, PostgresStore};
use ctxmesh_tls::testing::TestCa;

/// The CA of the test server's certificate; `None` (the test is skipped,
/// saying so) outside CI when it is not set up. Under CI it must be.
fn server_ca() -> Option<String> {
    match std::env::var("CTXMESH_TEST_POSTGRES_CA") {
        Ok(ca) if !ca.is_empty() => Some(ca),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CTXMESH_TEST_POSTGRES_CA is not set: ./scripts/test configures PostgreSQL with TLS and sets it")
        }
        _ => {
            eprintln!(
                "skipped: CTXMESH_TEST_POSTGRES_CA is not set (./scripts/test configures PostgreSQL with TLS and \
                 sets it)"
            );
            None
        }
    }
}

/// Whether the store at `url` connects, and over TLS or not (as
/// PostgreSQL itself says), or the error.
async fn connect(url: &str) -> Result<bool, String> {
    let store = PostgresStore::connect(PostgresConfig { pool_size: 2, ..PostgresConfig::new(url) })
        .await
        .map_err(|e| e.to_string())?;
    drop(store);
    let client = ctxmesh_store::postgres::connect(url).await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// `url` with the host replaced by a name the server's certificate does
/// not name, still reaching the same address (libpq's `hostaddr`).
async fn under_another_name(url: &str) -> String {
    let config: tokio_postgres::Config = url.split('?').next().unwrap().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test server is reached over TCP, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let address = tokio::net::lookup_host((host.as_str(), port)).await.unwrap().next().unwrap().ip();
    let renamed = url.replacen(&format!("@{host}"), "@ctxmesh-db.invalid", 1);
    assert_ne!(renamed, url, "the URL names its host after @");
    format!("{renamed}&hostaddr={address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_connect_as_libpq_does_and_refuse_a_wrong_ca_or_host_name() {
    let Some(ca) = server_ca() else { return };
    let url = fresh_postgres_url().await;
    assert!(url.contains('?'), "the fresh URL has a query string: {url}");
    let with = |params: &str| format!("{url}&{params}");

    // verify-full with the server's CA: checked, and encrypted.
    assert_eq!(connect(&with(&format!("sslmode=verify-full&sslrootcert={ca}"))).await, Ok(true));
    // require encrypts without checking; disable does not encrypt; the
    // default (prefer) encrypts when the server offers it.
    assert_eq!(connect(&with("sslmode=require")).await, Ok(true));
    assert_eq!(connect(&with("sslmode=disable")).await, Ok(false));
    assert_eq!(connect(&url).await, Ok(true));

    // Another CA: refused, saying why and what to do.
    let dir = tempfile::tempdir().unwrap();
    let wrong = TestCa::new(dir.path(), "wrong").ca_file();
    let wrong = wrong.to_str().unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = connect(&with(&format!("sslmode={mode}&sslrootcert={wrong}"))).await.unwrap_err();
        assert!(err.contains("certificate is not trusted") && err.contains("sslrootcert"), "{mode}: {err}");
    }

    // A host name the certificate does not name: verify-full refuses,
    // verify-ca (the chain only) connects.
    let renamed = under_another_name(&url).await;
    let err = connect(&format!("{renamed}&sslmode=verify-full&sslrootcert={ca}")).await.unwrap_err();
    assert!(err.contains("does not match the host name"), "{err}");
    assert_eq!(connect(&format!("{renamed}&sslmode=verify-ca&sslrootcert={ca}")).await, Ok(true));

    // Settings that cannot work are refused before connecting.
    let err = connect(&with("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")).await.unwrap_err();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    let err = connect(&with("sslmode=sometimes")).await.unwrap_err();
    assert!(err.contains("sslmode=sometimes"), "{err}");
}
