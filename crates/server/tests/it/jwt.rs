//! Identities from an OpenID Connect provider: bearer JWTs of a test
//! issuer (served here on 127.0.0.1, with keys generated here) as agent
//! identities, beside ctxmesh's own tokens; refusals in the audit log;
//! key rotation without a restart; a local key file; trust from a claim.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use ctxmesh_server::jwt::{JwksSource, JwtAuth, JwtConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, Frame, TestServer, sse_frames, status_json};

const ADMIN: &str = "admin-secret-for-jwt-tests";
const AUDIENCE: &str = "ctxmesh";

/// An ECDSA P-256 signing key and its public JWK.
struct TestKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn new(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate().unwrap();
        let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
        let point = pair.public_key_raw();
        assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..])});
        TestKey { kid: kid.into(), encoding, jwk }
    }

    /// A token signed by this key, naming it, with `claims`.
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// A token signed by this key, naming the key `kid`.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// rustls over ring for the HTTP clients (reqwest is built without a
/// provider of its own).
fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a token of `issuer` for agent `sub`, valid for an hour.
fn claims(issuer: &str, sub: &str) -> Value {
    json!({"iss": issuer, "aud": AUDIENCE, "sub": sub, "iat": now(), "nbf": now() - 5, "exp": now() + 3600})
}

/// An OpenID Connect issuer on 127.0.0.1: its discovery document and its
/// key set (which the test changes), counting the key set's fetches.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    /// While false, every request is answered 503.
    up: Arc<std::sync::atomic::AtomicBool>,
}

impl Issuer {
    async fn start(keys: &[&TestKey]) -> Self {
        crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Issuer {
            url: url.clone(),
            jwks: Arc::new(Mutex::new(Value::Null)),
            fetches: Arc::default(),
            up: Arc::new(true.into()),
        };
        issuer.publish(keys);
        let (jwks, fetches, up) = (issuer.jwks.clone(), issuer.fetches.clone(), issuer.up.clone());
        let up2 = up.clone();
        let document = json!({"issuer": url, "jwks_uri": format!("{url}/keys"), "id_token_signing_alg_values_supported": ["ES256"]});
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let (document, up) = (document.clone(), up.clone());
                    async move {
                        if !up.load(Ordering::SeqCst) {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        Ok(axum::Json(document))
                    }
                }),
            )
            .route(
                "/keys",
                axum::routing::get(move || {
                    let (jwks, fetches, up) = (jwks.clone(), fetches.clone(), up2.clone());
                    async move {
                        if !up.load(Ordering::SeqCst) {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        fetches.fetch_add(1, Ordering::SeqCst);
                        Ok(axum::Json(jwks.lock().unwrap().clone()))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    /// Publishes exactly `keys`.
    fn publish(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() = jwks(keys);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// The verification settings for the test issuer at `url`, with `source`.
fn config(url: &str, source: JwksSource) -> JwtConfig {
    let mut config = JwtConfig::new(url, vec![AUDIENCE.into(), "other-app".into()], source);
    config.leeway = Duration::ZERO;
    config.refetch_cooldown = Duration::from_secs(3600);
    config
}

/// A server with the admin token and JWTs verified as `config` says.
async fn server(config: JwtConfig) -> TestServer {
    crypto();
    let jwt = JwtAuth::start(config, reqwest::Client::new()).await.unwrap();
    let mut server = TestServer::unstarted(Backend::Sqlite, ctxmesh_core::Limits::default());
    server.auth = ctxmesh_server::auth::Auth::with_admin_token(ADMIN);
    server.jwt = Some(jwt);
    server.launch().await;
    server
}

async fn call(s: &TestServer, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.req(method, path).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    status_json(req.send().await.unwrap()).await
}

/// Asserts that `token` is refused with `401 unauthenticated`, the
/// `invalid_token` challenge and `reason` in the message.
async fn refused(s: &TestServer, path: &str, token: &str, reason: &str) {
    let r = s.req(Method::GET, path).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 401, "{reason}");
    assert_eq!(r.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    let (_, e) = status_json(r).await;
    assert_eq!(e["error"]["code"], "unauthenticated");
    assert!(e["error"]["message"].as_str().unwrap().contains(reason), "{e} should say {reason}");
}

/// The audit records that `query` lists and `wanted` picks, once there
/// are some (records are written in batches).
async fn audited(s: &TestServer, query: &str, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let (status, audit) = call(s, Method::GET, &format!("/v1/audit?{query}"), ADMIN, None).await;
        assert_eq!(status, 200, "{audit}");
        let records: Vec<Value> = audit["records"].as_array().unwrap().iter().filter(|r| wanted(r)).cloned().collect();
        if !records.is_empty() {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no audit record for {query}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_of_the_issuer_is_an_agent_identity() {
    let key = TestKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let s = server(config(&issuer.url, JwksSource::Discovery)).await;
    let alice = key.sign(&claims(&issuer.url, "alice"));

    // Never registered through ctxmesh, alice is who its token says.
    let (status, me) = call(&s, Method::GET, "/v1/whoami", &alice, None).await;
    assert_eq!((status, &me), (200, &json!({"agent": "alice", "admin": false})));

    // It creates a context and writes: it is the author.
    assert_eq!(call(&s, Method::POST, "/v1/contexts", &alice, Some(json!({"id": "mine"}))).await.0, 201);
    let (status, entry) =
        call(&s, Method::PUT, "/v1/contexts/mine/entries/plan", &alice, Some(json!({"value": "ship it"}))).await;
    assert_eq!((status, entry["author"].as_str()), (201, Some("alice")), "{entry}");
    let (_, history) = call(&s, Method::GET, "/v1/contexts/mine/entries/plan/history", &alice, None).await;
    assert_eq!(history["versions"][0]["entry"]["author"], "alice", "{history}");

    // Another's context: refused without a grant, allowed with one.
    assert_eq!(call(&s, Method::POST, "/v1/contexts", ADMIN, Some(json!({"id": "ops"}))).await.0, 201);
    call(&s, Method::PUT, "/v1/contexts/ops/entries/runbook", ADMIN, Some(json!({"value": "restart"}))).await;
    let (status, e) = call(&s, Method::GET, "/v1/contexts/ops/entries/runbook", &alice, None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "{e}");
    // The admin grants by id: alice is known only by its tokens.
    let grant = json!({"agents": ["alice"], "permissions": ["read"]});
    assert_eq!(call(&s, Method::POST, "/v1/contexts/ops/grants", ADMIN, Some(grant)).await.0, 201);
    assert_eq!(call(&s, Method::GET, "/v1/agents/alice", ADMIN, None).await.0, 404, "granted, not registered");
    let (status, entry) = call(&s, Method::GET, "/v1/contexts/ops/entries/runbook", &alice, None).await;
    assert_eq!((status, entry["value"].as_str()), (200, Some("restart")));
    assert_eq!(call(&s, Method::PUT, "/v1/contexts/ops/entries/x", &alice, Some(json!({"value": 1}))).await.0, 403);

    // The audit log names it, with the reasons.
    audited(&s, "agent=alice&context=ops&allowed=false", |r| r["reason"] == "no grant").await;
    audited(&s, "agent=alice&context=ops&allowed=true", |r| r["reason"] == "grant").await;

    // It acts as itself only.
    let spoof = s.req(Method::GET, "/v1/whoami").bearer_auth(&alice).header("x-agent-id", "bob").send().await.unwrap();
    assert_eq!(spoof.status(), 403);

    // The admin token and ctxmesh's own agent tokens keep working.
    let (status, bob) = call(&s, Method::POST, "/v1/agents", ADMIN, Some(json!({"id": "bob"}))).await;
    assert_eq!(status, 201);
    let bob = bob["token"].as_str().unwrap().to_owned();
    assert_eq!(call(&s, Method::GET, "/v1/whoami", &bob, None).await.1["agent"], "bob");
    assert_eq!(call(&s, Method::GET, "/v1/whoami", ADMIN, None).await.1["admin"], true);
    refused_plain(&s, "cmt_0000").await;

    // MCP at /mcp takes the same JWT: a tool call writes as alice.
    mcp_put(&s, &alice, "mine", "from-mcp").await;
    let (_, entry) = call(&s, Method::GET, "/v1/contexts/mine/entries/from-mcp", &alice, None).await;
    assert_eq!(entry["author"], "alice", "{entry}");
    let r = s.req(Method::POST, "/mcp").bearer_auth(key.sign(&json!({"sub": "alice"}))).send().await.unwrap();
    assert_eq!(r.status(), 401, "a JWT without exp, iss and aud is refused on /mcp too");
}

/// A ctxmesh token that is not known: the plain `401` of tokens.
async fn refused_plain(s: &TestServer, token: &str) {
    let r = s.req(Method::GET, "/v1/whoami").bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

/// Puts `{"value": 1}` at `key` of `ctx` with the MCP `put_entry` tool,
/// over streamable HTTP with `token`.
async fn mcp_put(s: &TestServer, token: &str, ctx: &str, key: &str) {
    let post = |body: Value, session: Option<String>| {
        let mut req = s
            .req(Method::POST, "/mcp")
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            req = req.header("mcp-session-id", session);
        }
        req.send()
    };
    let client =
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "it", "version": "0"}});
    let init = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": client}), None).await.unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    let _ = init.bytes().await;
    let note = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), session.clone()).await.unwrap();
    assert!(note.status().is_success(), "{}", note.status());
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "put_entry", "arguments": {"context": ctx, "key": key, "value": 1}}});
    let answer = post(call, session).await.unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    // JSON, or one SSE event carrying it.
    let message: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        let data = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).find(|d| !d.is_empty());
        serde_json::from_str(data.unwrap_or("null")).unwrap()
    });
    assert_eq!(message["id"], 2, "{text}");
    assert_ne!(message["result"]["isError"], true, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_401_and_audited() {
    let key = TestKey::new("k1");
    let stranger = TestKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let s = server(config(&issuer.url, JwksSource::Discovery)).await;
    let good = claims(&issuer.url, "alice");
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let cases = [
        ("expired", key.sign(&with("exp", json!(now() - 120))), "jwt: expired"),
        ("wrongly signed", stranger.sign(&good), "jwt: bad signature"),
        ("wrong audience", key.sign(&with("aud", json!("someone-else"))), "jwt: wrong audience"),
        ("wrong issuer", key.sign(&with("iss", json!("https://evil.example.com"))), "jwt: wrong issuer"),
        ("not yet valid", key.sign(&with("nbf", json!(now() + 600))), "jwt: not valid yet"),
        ("unknown key", key.sign_as("k9", &good), "jwt: unknown key \"k9\""),
        ("no audience", key.sign(&json!({"iss": issuer.url, "sub": "alice", "exp": now() + 60})), "no `aud` claim"),
    ];
    for (_, token, reason) in &cases {
        refused(&s, "/v1/contexts/mine/entries", token, reason).await;
    }
    // HMAC and `none` are never accepted, whatever the key set holds.
    let hmac = jsonwebtoken::encode(
        &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
        &good,
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    refused(&s, "/v1/whoami", &hmac, "asymmetric algorithms only").await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "k1"})), b64(&good));
    let r = s.req(Method::GET, "/v1/whoami").bearer_auth(&none).send().await.unwrap();
    assert_eq!(r.status(), 401, "alg none");
    // A subject that is not an agent id.
    let odd = key.sign(&with("sub", json!("auth0|12345")));
    refused(&s, "/v1/whoami", &odd, "is not a valid agent id").await;

    // Each refusal is in the audit log: the claimed agent (not verified),
    // the action `authenticate`, the request, the context it names, and
    // the reason.
    for (what, _, reason) in &cases {
        let records = audited(&s, "agent=alice&allowed=false&context=mine", |r| {
            r["reason"].as_str().unwrap().starts_with("jwt: ") && r["reason"].as_str().unwrap().contains(reason)
        })
        .await;
        let record = &records[0];
        assert_eq!(record["action"], "authenticate", "{what}: {record}");
        assert_eq!(record["resource"], "GET /v1/contexts/mine/entries", "{what}");
        assert!(record["reason"].as_str().unwrap().ends_with("(claimed agent, not verified)"), "{record}");
    }
    // A request that names no context: `context` is empty.
    let records = audited(&s, "agent=unknown&context=", |r| r["reason"].as_str().unwrap().contains("agent id")).await;
    assert_eq!(records[0]["resource"], "GET /v1/whoami");
    let hmac_records = audited(&s, "agent=alice&context=", |r| r["reason"].as_str().unwrap().contains("HS256")).await;
    assert_eq!(hmac_records[0]["action"], "authenticate");
    assert_eq!(call(&s, Method::GET, "/v1/contexts/mine", ADMIN, None).await.0, 404, "nothing was created");
}

/// Anyone can send a refused token: a flood of them writes at most the
/// configured records to the audit log, and the next record says how many
/// were left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_tokens_is_recorded_within_a_limit() {
    let key = TestKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let mut config = config(&issuer.url, JwksSource::Discovery);
    config.refusal_records = ctxmesh_server::limits::RateLimit { per_second: 1.0, burst: 5.0 };
    let s = server(config).await;
    let mut expired = claims(&issuer.url, "mallory");
    expired["exp"] = json!(now() - 120);
    let token = key.sign(&expired);
    let flood = 40;
    for _ in 0..flood {
        refused(&s, "/v1/contexts/flooded/entries", &token, "jwt: expired").await;
    }
    let query = "agent=mallory&context=flooded&limit=1000";
    audited(&s, query, |_| true).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // every batch is written
    let first = audited(&s, query, |_| true).await.len();
    assert!((5..flood).contains(&first), "{first} of {flood} refusals recorded: the burst, not all");

    // Once the bucket holds a token again, a refusal is recorded with the
    // count of those left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refused(&s, "/v1/contexts/flooded/entries", &token, "jwt: expired").await;
    let records = audited(&s, query, |r| r["reason"].as_str().unwrap().contains("not in the audit log")).await;
    let reason = records[0]["reason"].as_str().unwrap();
    let left_out = flood - first;
    assert!(
        reason.starts_with("jwt: expired (claimed agent, not verified); ")
            && reason.contains(&format!("; {left_out} more refused tokens since ")),
        "{reason}"
    );
    // The metrics are the process's: this is the one test whose refusals
    // go over their limit.
    let metrics = s.req(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l == format!("ctxmesh_jwt_refusals_total{{recorded=\"false\"}} {left_out}")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_without_a_restart() {
    let (k1, k2) = (TestKey::new("k1"), TestKey::new("k2"));
    let issuer = Issuer::start(&[&k1]).await;
    let s = server(config(&issuer.url, JwksSource::Discovery)).await;
    let old = k1.sign(&claims(&issuer.url, "alice"));
    assert_eq!(call(&s, Method::GET, "/v1/whoami", &old, None).await.0, 200);
    let before = issuer.fetches();

    // The issuer rotates: k2 replaces k1. The first tokens of k2 (several
    // at once) make one fetch of the key set, and are accepted.
    issuer.publish(&[&k2]);
    let new = k2.sign(&claims(&issuer.url, "alice"));
    let answers =
        futures::future::join_all((0..8).map(|_| s.req(Method::GET, "/v1/whoami").bearer_auth(&new).send())).await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
    assert_eq!(issuer.fetches(), before + 1, "one fetch for all of them");

    // k1 is gone from the key set: its tokens are refused.
    refused(&s, "/v1/whoami", &old, "jwt: unknown key \"k1\"").await;
    // Unknown keys do not make the server fetch again within the cooldown.
    for kid in ["x1", "x2", "x3"] {
        refused(&s, "/v1/whoami", &k2.sign_as(kid, &claims(&issuer.url, "alice")), "unknown key").await;
    }
    assert_eq!(issuer.fetches(), before + 1, "no fetch within the cooldown");
    assert_eq!(call(&s, Method::GET, "/v1/whoami", &new, None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_file_are_read_again_when_it_changes() {
    let (k1, k2) = (TestKey::new("k1"), TestKey::new("k2"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let issuer = "https://id.example.com/realms/agents";
    crypto();

    // A file that cannot be read, or holds no usable key, fails the start.
    let missing = JwtAuth::start(config(issuer, JwksSource::File(path.clone())), reqwest::Client::new()).await;
    assert!(missing.unwrap_err().contains("cannot read the JWKS file"));
    std::fs::write(&path, r#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#).unwrap();
    let symmetric = JwtAuth::start(config(issuer, JwksSource::File(path.clone())), reqwest::Client::new()).await;
    assert!(symmetric.unwrap_err().contains("symmetric"));

    std::fs::write(&path, jwks(&[&k1]).to_string()).unwrap();
    let s = server(config(issuer, JwksSource::File(path.clone()))).await;
    let old = k1.sign(&claims(issuer, "carol"));
    assert_eq!(call(&s, Method::GET, "/v1/whoami", &old, None).await.1["agent"], "carol");

    std::fs::write(&path, jwks(&[&k2]).to_string()).unwrap();
    let new = k2.sign(&claims(issuer, "carol"));
    assert_eq!(call(&s, Method::GET, "/v1/whoami", &new, None).await.1["agent"], "carol");
    refused(&s, "/v1/whoami", &old, "unknown key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_claim_feeds_trust_level_policies() {
    let key = TestKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let mut config = config(&issuer.url, JwksSource::Discovery);
    config.agent_claim = "preferred_username".into();
    config.trust_claim = Some("ctxmesh_trust".into());
    let s = server(config).await;
    let token = |user: &str, trust: Option<&str>| {
        let mut c = claims(&issuer.url, "a-uuid-that-is-not-used");
        c["preferred_username"] = json!(user);
        if let Some(trust) = trust {
            c["ctxmesh_trust"] = json!(trust);
        }
        key.sign(&c)
    };
    assert_eq!(call(&s, Method::POST, "/v1/contexts", ADMIN, Some(json!({"id": "prod-eu"}))).await.0, 201);
    let rule = json!({"id": "trusted-prod", "effect": "allow", "contexts": "prod-*", "min_trust": "high",
        "permissions": ["read", "write"]});
    assert_eq!(call(&s, Method::POST, "/v1/policies", ADMIN, Some(rule)).await.0, 201);

    let high = token("dora", Some("high"));
    let (status, entry) =
        call(&s, Method::PUT, "/v1/contexts/prod-eu/entries/k", &high, Some(json!({"value": 1}))).await;
    assert_eq!((status, entry["author"].as_str()), (201, Some("dora")), "{entry}");
    audited(&s, "agent=dora&context=prod-eu&allowed=true", |r| r["reason"] == "allowed by policy trusted-prod").await;
    for low in [token("erin", Some("low")), token("erin", None)] {
        let (status, e) =
            call(&s, Method::PUT, "/v1/contexts/prod-eu/entries/k", &low, Some(json!({"value": 2}))).await;
        assert_eq!(status, 403, "{e}");
    }
    refused(&s, "/v1/whoami", &token("erin", Some("root")), "is not a trust level").await;

    // A deny rule over low trust names a JWT agent by its claim too.
    let deny = json!({"id": "no-low", "effect": "deny", "contexts": "prod-*", "max_trust": "low", "agents": "dora"});
    assert_eq!(call(&s, Method::POST, "/v1/policies", ADMIN, Some(deny)).await.0, 201);
    assert_eq!(call(&s, Method::GET, "/v1/contexts/prod-eu/entries/k", &high, None).await.0, 200);
    let (status, e) = call(&s, Method::GET, "/v1/contexts/prod-eu/entries/k", &token("dora", Some("low")), None).await;
    assert_eq!(status, 403, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("denied by policy no-low"), "{e}");

    // A handoff's package, fetched by its target under a JWT, is read with
    // the claim's trust as well: registered, dora has the default trust,
    // which the policy does not allow.
    for agent in [json!({"id": "carol"}), json!({"id": "dora", "needs": {"keys": ["k"]}})] {
        assert_eq!(call(&s, Method::POST, "/v1/agents", ADMIN, Some(agent)).await.0, 201);
    }
    let request = json!({"target": "dora", "context": "prod-eu", "keys": ["k"]});
    let (status, h) = call(&s, Method::POST, "/v1/handoffs", &token("carol", Some("high")), Some(request)).await;
    assert_eq!(status, 201, "{h}");
    let package = format!("/v1/handoffs/{}/package", h["id"].as_str().unwrap());
    let (status, p) = call(&s, Method::GET, &package, &high, None).await;
    assert_eq!(status, 200, "{p}");
    let keys: Vec<_> = p["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["k"], "{p}");
    let (status, e) = call(&s, Method::GET, &package, &token("dora", Some("low")), None).await;
    assert_eq!(status, 403, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_at_start_is_tried_again() {
    let key = TestKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.up.store(false, Ordering::SeqCst);
    let mut config = config(&issuer.url, JwksSource::Discovery);
    config.refetch_cooldown = Duration::ZERO;
    let s = server(config).await;
    let token = key.sign(&claims(&issuer.url, "alice"));
    refused(&s, "/v1/whoami", &token, "signing keys are not available (GET").await;
    issuer.up.store(true, Ordering::SeqCst);
    assert_eq!(call(&s, Method::GET, "/v1/whoami", &token, None).await.1["agent"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_when_its_jwt_expires() {
    let key = TestKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let s = server(config(&issuer.url, JwksSource::Discovery)).await;
    let long = key.sign(&claims(&issuer.url, "alice"));
    assert_eq!(call(&s, Method::POST, "/v1/contexts", &long, Some(json!({"id": "w"}))).await.0, 201);
    let mut short = claims(&issuer.url, "alice");
    short["exp"] = json!(now() + 2);
    let short = key.sign(&short);
    let r = s.req(Method::GET, "/v1/contexts/w/watch?after=0").bearer_auth(&short).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (frames, _) = sse_frames(r, |f: &[Frame]| f.iter().any(|f| f.kind == "error")).await;
    let last = frames.last().unwrap();
    assert_eq!((last.kind.as_str(), &last.data["error"]["code"]), ("error", &json!("unauthenticated")), "{frames:?}");
    assert!(last.data["error"]["message"].as_str().unwrap().contains("JWT has expired"), "{frames:?}");
}
