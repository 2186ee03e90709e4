//! `ctxmesh serve` with identities from an OpenID Connect provider: the
//! options refused when inconsistent, and a JWT of a key file working as
//! an agent's token.

use std::process::Output;

use serde_json::{Value, json};

use crate::ServerProcess;

const ISSUER: &str = "https://id.example.com";

/// The public key (ES256, kid `e2e`) that signed [`TOKEN`]; its private
/// half was thrown away.
const JWKS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "e2e",
    "x": "yLkbmCH66GP2LR8QW2GCQlR-RSCTXUA7EJmMCpNpUM8", "y": "Qi06wHvD1NDzHHreNPcCmr02e39wZfy5PbLw5pAvhRs"}]}"#;

/// `{"iss": "https://id.example.com", "aud": "ctxmesh", "sub": "e2e-agent",
/// "exp": 4102444800}` (2100-01-01), signed with the key of [`JWKS`].
const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImUyZSJ9.\
    eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUuY29tIiwiYXVkIjoiY3R4bWVzaCIsInN1YiI6ImUyZS1hZ2VudCIsImlhdCI6MTc5NjI1NjAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.\
    g2dtZpSkI3kGdpTBoLo7P3OQyrj-owQaZSYeYpSFV7Z4vMyMBhge36wPcJ9ZYRX3sN_ICrJyClXA-igwa1legA";

fn serve(data_dir: &std::path::Path, args: &[&str]) -> Output {
    crate::ctxmesh_command()
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("CTXMESH_NO_SAVE_CREDENTIALS", "1")
        .output()
        .expect("the ctxmesh binary runs")
}

fn refused(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(message), "{message:?} in {stderr}");
}

#[test]
fn serve_takes_jwts_of_an_issuer_as_agent_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let jwks_arg = jwks.to_str().unwrap();
    let data = dir.path().join("data");

    // Inconsistent options are refused before anything starts.
    refused(&serve(&data, &["--jwt-audience", "ctxmesh"]), "--jwt-audience needs --jwt-issuer");
    refused(&serve(&data, &["--jwt-issuer", ISSUER]), "--jwt-audience");
    let both = ["--jwt-issuer", ISSUER, "--jwt-audience", "ctxmesh", "--jwks-file", jwks_arg];
    refused(&serve(&data, &[&["--auth", "off"][..], &both].concat()), "--jwt-issuer needs --auth on");
    refused(&serve(&data, &both), "cannot read the JWKS file");
    assert!(!data.join("admin.token").exists(), "nothing was set up");

    std::fs::write(&jwks, JWKS).unwrap();
    let server = ServerProcess::start_with(
        &data,
        &[&["--auth", "on"][..], &both].concat(),
        &[("CTXMESH_NO_SAVE_CREDENTIALS", "1"), ("CTXMESH_ADMIN_TOKEN", "admin-for-e2e")],
    );
    let s = server.base.clone();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let call = |method: reqwest::Method, path: &str, token: &str, body: Value| {
            http.request(method, format!("{s}{path}")).bearer_auth(token).json(&body).send()
        };
        let created = call(reqwest::Method::POST, "/v1/contexts", TOKEN, json!({"id": "jwt-made"})).await.unwrap();
        assert_eq!(created.status(), 201);
        let put = call(reqwest::Method::PUT, "/v1/contexts/jwt-made/entries/note", TOKEN, json!({"value": "hi"}));
        let entry: Value = put.await.unwrap().json().await.unwrap();
        assert_eq!(entry["author"], "e2e-agent", "{entry}");
        // The admin token works beside it; a token of no key is refused.
        let listed = http.get(format!("{s}/v1/contexts")).bearer_auth("admin-for-e2e").send().await.unwrap();
        assert!(listed.text().await.unwrap().contains("jwt-made"));
        let forged = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
        let refused = http.get(format!("{s}/v1/whoami")).bearer_auth(forged).send().await.unwrap();
        assert_eq!(refused.status(), 401);
    });
}
