//! Identities from an OpenID Connect provider: bearer JWTs verified
//! against the provider's JSON Web Key Set (JWKS).
//!
//! With [`JwtAuth`] configured, a bearer token that is a JWT (three
//! dot-separated base64url parts; ctxmesh's own tokens start with `cmt_`)
//! is verified: its signature with the JWKS key its header names (`kid`),
//! by that key's own algorithm (asymmetric only: RSA, ECDSA P-256/P-384,
//! Ed25519; never `none` or HMAC), then its `iss`, `aud`, `exp` and `nbf`.
//! The agent is the value of one claim (default `sub`), which must be a
//! valid agent id; its trust may come from another claim.
//!
//! The keys come from the issuer's discovery document
//! (`{issuer}/.well-known/openid-configuration` → `jwks_uri`) or from a
//! local file. They are cached by `kid`: a token whose `kid` is unknown
//! makes one fetch of the key set (one at a time; at most one per
//! [`JwtConfig::refetch_cooldown`] from the provider), so a rotation is
//! picked up with the first token signed by the new key. The key set is
//! also fetched again every [`JwtConfig::refresh_interval`], and a key
//! file is read again when it changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ctxmesh_core::access::{Access, AuditRecord};
use ctxmesh_core::agent::Trust;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{AGENT_HEADER, Caller};

/// Where the signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// The issuer's discovery document names the key set (`jwks_uri`).
    Discovery,
    /// A local JWKS file, read again when it changes.
    File(PathBuf),
}

/// How JWTs are verified and mapped to agents.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// The issuer: tokens must carry exactly this `iss`.
    pub issuer: String,
    /// The audiences: a token's `aud` must name at least one.
    pub audiences: Vec<String>,
    /// Where the signing keys come from.
    pub jwks: JwksSource,
    /// The claim whose value is the agent id (default `sub`).
    pub agent_claim: String,
    /// The claim whose value is the agent's trust level (`none`, `low`,
    /// `medium`, `high`, `full`), if any.
    pub trust_claim: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the key set is fetched again (discovery).
    pub refresh_interval: Duration,
    /// The least time between two fetches caused by unknown key ids.
    pub refetch_cooldown: Duration,
    /// How many refused tokens a node writes to the audit log (the others
    /// are counted into the next record and `ctxmesh_jwt_refusals_total`).
    pub refusal_records: crate::limits::RateLimit,
}

impl JwtConfig {
    /// Tokens of `issuer` for `audiences`, with keys from `jwks`, and the
    /// defaults: agent claim `sub`, no trust claim, 60 s leeway, a refresh
    /// every hour, 10 s between refetches for unknown keys, and refusals
    /// recorded in the audit log up to 100 at once and 10 a second.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>, jwks: JwksSource) -> Self {
        JwtConfig {
            issuer: issuer.into(),
            audiences,
            jwks,
            agent_claim: "sub".into(),
            trust_claim: None,
            leeway: Duration::from_secs(60),
            refresh_interval: Duration::from_secs(3600),
            refetch_cooldown: Duration::from_secs(10),
            refusal_records: crate::limits::RateLimit { per_second: 10.0, burst: 100.0 },
        }
    }

    /// Checks the settings.
    pub fn check(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("the JWT issuer is empty".into());
        }
        if self.jwks == JwksSource::Discovery
            && !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://"))
        {
            return Err(format!(
                "the JWT issuer {:?} is not an http(s) URL: its discovery document cannot be fetched \
                 (give --jwks-file to use local keys)",
                self.issuer
            ));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err("give the audience tokens must be issued for (--jwt-audience): without it, tokens the \
                        provider issues for any other application would be accepted"
                .into());
        }
        if self.agent_claim.trim().is_empty() || self.trust_claim.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err("a JWT claim name is empty".into());
        }
        let records = self.refusal_records;
        if !(records.per_second > 0.0 && records.per_second.is_finite() && records.burst >= 1.0) {
            return Err("refused JWTs must be recorded at a positive rate, at least one at once".into());
        }
        Ok(())
    }
}

/// What a verified JWT says of its agent beyond its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtIdentity {
    /// The trust level its trust claim gives, if configured and present.
    pub trust: Option<Trust>,
    /// When it stops being valid (`exp` plus the leeway): open streams
    /// end then.
    pub valid_until: ctxmesh_core::Timestamp,
}

impl JwtIdentity {
    /// Feeds the identity into an access decision for `agent`: an agent
    /// never registered is decided as one registered with the defaults;
    /// the trust claim, when present, is its trust.
    pub(crate) fn apply(&self, access: &mut Access, agent: &str) {
        match &mut access.agent {
            Some(registered) => {
                if let Some(trust) = self.trust {
                    registered.trust = trust;
                }
            }
            None => {
                let spec = serde_json::json!({ "id": agent, "trust": self.trust.unwrap_or_default() });
                access.agent = serde_json::from_value::<ctxmesh_core::agent::AgentSpec>(spec)
                    .ok()
                    .and_then(|s| s.into_agent(chrono::Utc::now()).ok());
            }
        }
    }

    /// Whether it has expired at `now`.
    pub(crate) fn expired(&self, now: ctxmesh_core::Timestamp) -> bool {
        now >= self.valid_until
    }
}

/// A verified token: the agent and what else it says.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The agent id (the agent claim).
    pub agent: String,
    /// Trust and validity.
    pub identity: JwtIdentity,
}

/// Why a token was refused, and whom it claims to be (read without
/// verification, when it could be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `jwt: expired`, `jwt: bad signature`, ...
    pub reason: String,
    /// The agent claim, unverified, when it is a valid agent id.
    pub claimed: Option<String>,
}

/// One usable signing key.
struct Key {
    decoding: DecodingKey,
    /// The algorithms it verifies: its JWK's `alg`, or those of its key
    /// type.
    algorithms: Vec<Algorithm>,
}

/// The signing keys, by `kid` (a key without one under `""`).
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<Key>>,
}

/// Identifies a version of a key file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// JWT verification with cached keys (see the module documentation).
pub struct JwtAuth {
    config: JwtConfig,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Why no keys are available, while none are.
    unavailable: RwLock<Option<String>>,
    /// Held while fetching (one fetch at a time); the time of the last
    /// fetch caused by an unknown key id.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// The key file as last read.
    stamp: std::sync::Mutex<Option<FileStamp>>,
    /// Which refusals go to the audit log.
    refusals: crate::limits::RefusalRecords,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Longest time of one fetch of the discovery document or the key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or key set.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// How often a key file is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);
/// How often a failed first fetch is tried again.
const RETRY: Duration = Duration::from_secs(5);

impl JwtAuth {
    /// Checks `config`, loads the keys and starts refreshing them in the
    /// background (until the returned value is dropped). A key file that
    /// cannot be read or holds no usable key is an error; a discovery
    /// fetch that fails is logged and tried again in the background, and
    /// tokens are refused meanwhile. `http` fetches the discovery
    /// document and the key set.
    pub async fn start(config: JwtConfig, http: reqwest::Client) -> Result<Arc<JwtAuth>, String> {
        config.check()?;
        let auth = Arc::new(JwtAuth {
            refusals: crate::limits::RefusalRecords::new(config.refusal_records),
            config,
            http,
            keys: Default::default(),
            unavailable: Default::default(),
            fetching: Default::default(),
            stamp: Default::default(),
        });
        match &auth.config.jwks {
            JwksSource::File(path) => {
                let (set, stamp) = read_file(path).await?;
                auth.install(set);
                *auth.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
            }
            JwksSource::Discovery => match auth.fetch().await {
                Ok(set) => auth.install(set),
                Err(e) => {
                    tracing::warn!(issuer = %auth.config.issuer, error = %e,
                        "cannot fetch the JWT signing keys; trying again in the background, JWTs are refused meanwhile");
                    auth.set_unavailable(e);
                }
            },
        }
        let weak = Arc::downgrade(&auth);
        tokio::spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(auth) => auth.next_refresh(),
                    None => return,
                };
                tokio::time::sleep(wait).await;
                match weak.upgrade() {
                    Some(auth) => auth.refresh().await,
                    None => return,
                }
            }
        });
        Ok(auth)
    }

    /// The settings.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Verifies `token` and maps it to an agent.
    pub async fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let refuse = |reason: String| Refusal { reason, claimed: self.claimed_agent(token) };
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(format!("jwt: malformed ({e})")))?;
        if !asymmetric(header.alg) {
            return Err(refuse(format!(
                "jwt: algorithm {:?} is not accepted (asymmetric algorithms only)",
                header.alg
            )));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refetch(&kid).await;
                self.key(&kid).ok_or_else(|| refuse(self.missing_key(&kid)))?
            }
        };
        if !key.algorithms.contains(&header.alg) {
            return Err(refuse(format!("jwt: algorithm {:?} does not match the key {kid:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audiences[..]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| refuse(describe(&e)))?;
        let claims = data.claims;
        let name = &self.config.agent_claim;
        let agent = match claims.get(name) {
            Some(Value::String(s)) => ctxmesh_core::agent::parse_agent_id(s).map_err(|_| {
                refuse(format!(
                    "jwt: claim `{name}` ({:?}) is not a valid agent id (1 to 128 characters of A-Z a-z 0-9 . _ : - \
                     starting with a letter or digit)",
                    shorten(s)
                ))
            })?,
            Some(_) => return Err(refuse(format!("jwt: claim `{name}` is not a string"))),
            None => return Err(refuse(format!("jwt: the token has no `{name}` claim"))),
        };
        let trust = match &self.config.trust_claim {
            None => None,
            Some(claim) => match claims.get(claim) {
                None => None,
                Some(value) => Some(serde_json::from_value::<Trust>(value.clone()).map_err(|_| {
                    refuse(format!("jwt: claim `{claim}` is not a trust level (none, low, medium, high, full)"))
                })?),
            },
        };
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let until = exp.saturating_add(i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX));
        let valid_until =
            chrono::DateTime::from_timestamp(until, 0).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        Ok(Verified { agent, identity: JwtIdentity { trust, valid_until } })
    }

    /// The agent claim of `token`, read without verification, when it is
    /// a valid agent id.
    fn claimed_agent(&self, token: &str) -> Option<String> {
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
        ctxmesh_core::agent::parse_agent_id(claims.get(&self.config.agent_claim)?.as_str()?).ok()
    }

    fn key(&self, kid: &str) -> Option<Arc<Key>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(key) = keys.keys.get(kid) {
            return Some(key.clone());
        }
        // A token without `kid` is verified with the only key there is.
        if kid.is_empty() && keys.keys.len() == 1 {
            return keys.keys.values().next().cloned();
        }
        None
    }

    /// Why there is no key for `kid`.
    fn missing_key(&self, kid: &str) -> String {
        if let Some(why) = self.unavailable.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return format!("jwt: the provider's signing keys are not available ({why})");
        }
        if kid.is_empty() {
            "jwt: the token names no key (kid) and the key set has several".into()
        } else {
            format!("jwt: unknown key {kid:?}")
        }
    }

    /// Loads the key set again for a token whose `kid` is unknown: one
    /// load at a time (a caller that waited finds the keys the other
    /// loaded), and from the provider at most once per cooldown.
    async fn refetch(&self, kid: &str) {
        let mut last = self.fetching.lock().await;
        if self.key(kid).is_some() {
            return;
        }
        let loaded = match &self.config.jwks {
            JwksSource::File(path) => read_file(path).await.map(|(set, stamp)| {
                *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
                set
            }),
            JwksSource::Discovery => {
                if last.is_some_and(|at| at.elapsed() < self.config.refetch_cooldown) {
                    return;
                }
                *last = Some(Instant::now());
                self.fetch().await
            }
        };
        match loaded {
            Ok(set) => self.install(set),
            Err(e) => self.load_failed(e),
        }
    }

    /// How long until the next background refresh.
    fn next_refresh(&self) -> Duration {
        match &self.config.jwks {
            JwksSource::File(_) => FILE_POLL,
            JwksSource::Discovery if self.unavailable.read().unwrap_or_else(|e| e.into_inner()).is_some() => {
                RETRY.min(self.config.refresh_interval)
            }
            JwksSource::Discovery => self.config.refresh_interval,
        }
    }

    /// The background refresh: the provider's key set again, or the key
    /// file if it changed.
    async fn refresh(&self) {
        let _one_at_a_time = self.fetching.lock().await;
        let loaded = match &self.config.jwks {
            JwksSource::Discovery => self.fetch().await,
            JwksSource::File(path) => {
                let now = tokio::fs::metadata(path).await.ok().map(|m| stamp_of(&m));
                if now.is_some() && now == *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) {
                    return;
                }
                read_file(path).await.map(|(set, stamp)| {
                    *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
                    set
                })
            }
        };
        match loaded {
            Ok(set) => self.install(set),
            Err(e) => self.load_failed(e),
        }
    }

    fn install(&self, set: KeySet) {
        tracing::debug!(keys = set.keys.len(), "JWT signing keys loaded");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        *self.unavailable.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A load failed: the keys loaded before stay in use.
    fn load_failed(&self, error: String) {
        tracing::warn!(issuer = %self.config.issuer, %error, "cannot load the JWT signing keys");
        if self.keys.read().unwrap_or_else(|e| e.into_inner()).keys.is_empty() {
            self.set_unavailable(error);
        }
    }

    fn set_unavailable(&self, error: String) {
        *self.unavailable.write().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// The key set named by the issuer's discovery document.
    async fn fetch(&self) -> Result<KeySet, String> {
        let issuer = &self.config.issuer;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let document = get_json(&self.http, &url).await?;
        match document.get("issuer").and_then(Value::as_str) {
            Some(named) if named == issuer => {}
            named => {
                return Err(format!(
                    "the discovery document {url} names the issuer {named:?}, not {issuer:?} (give --jwt-issuer \
                     exactly as the provider writes it, trailing slash included)"
                ));
            }
        }
        let Some(jwks_uri) = document.get("jwks_uri").and_then(Value::as_str) else {
            return Err(format!("the discovery document {url} has no jwks_uri"));
        };
        parse_jwks(&get_json(&self.http, jwks_uri).await?).map_err(|e| format!("{jwks_uri}: {e}"))
    }
}

/// Whether `token` has the shape of a JWT: three dot-separated base64url
/// parts (ctxmesh's own tokens start with `cmt_`).
pub fn looks_like_jwt(token: &str) -> bool {
    if token.starts_with("cmt_") {
        return false;
    }
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The reason of a refusal by `jsonwebtoken`.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "jwt: expired".into(),
        ErrorKind::ImmatureSignature => "jwt: not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "jwt: bad signature".into(),
        ErrorKind::InvalidAudience => "jwt: wrong audience".into(),
        ErrorKind::InvalidIssuer => "jwt: wrong issuer".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("jwt: the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "jwt: algorithm does not match the key".into(),
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "jwt: the key cannot verify this token".into()
        }
        _ => format!("jwt: malformed ({e})"),
    }
}

/// GETs `url` as JSON.
async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http
        .get(url)
        .header(header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
        return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    let body = response.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

fn stamp_of(metadata: &std::fs::Metadata) -> FileStamp {
    FileStamp { modified: metadata.modified().ok(), len: metadata.len() }
}

/// Reads a key file.
async fn read_file(path: &std::path::Path) -> Result<(KeySet, FileStamp), String> {
    let shown = path.display();
    let metadata = tokio::fs::metadata(path).await.map_err(|e| format!("cannot read the JWKS file {shown}: {e}"))?;
    let bytes = tokio::fs::read(path).await.map_err(|e| format!("cannot read the JWKS file {shown}: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("the JWKS file {shown} is not JSON: {e}"))?;
    let set = parse_jwks(&value).map_err(|e| format!("the JWKS file {shown}: {e}"))?;
    Ok((set, stamp_of(&metadata)))
}

/// The usable signing keys of a JWKS document; keys that are not (for
/// encryption, symmetric, of an unsupported type or malformed) are left
/// out. None at all is an error.
fn parse_jwks(document: &Value) -> Result<KeySet, String> {
    let Some(keys) = document.get("keys").and_then(Value::as_array) else {
        return Err("a JWKS is an object with a `keys` array".into());
    };
    let mut set = KeySet::default();
    let mut skipped = Vec::new();
    for raw in keys {
        let kid = raw.get("kid").and_then(Value::as_str).unwrap_or_default().to_owned();
        match usable_key(raw) {
            Ok(key) => {
                set.keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
            Err(why) => skipped.push(format!("key {kid:?}: {why}")),
        }
    }
    if !skipped.is_empty() {
        tracing::debug!(skipped = ?skipped, "JWKS keys left out");
    }
    if set.keys.is_empty() {
        let why = if skipped.is_empty() { "it is empty".to_owned() } else { skipped.join("; ") };
        return Err(format!(
            "no usable signing key (RSA, EC P-256 or P-384, Ed25519; not symmetric, not for encryption): {why}"
        ));
    }
    Ok(set)
}

fn usable_key(raw: &Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("not a JWK ({e})"))?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("for encryption".into());
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKeyPair(_) => return Err("unsupported curve".into()),
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not accepted".into()),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(alg) => {
            let alg = match alg {
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                other => return Err(format!("algorithm {other:?} is not an asymmetric signature")),
            };
            if !by_type.contains(&alg) {
                return Err(format!("algorithm {alg:?} does not fit the key type"));
            }
            vec![alg]
        }
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable ({e})"))?;
    Ok(Key { decoding, algorithms })
}

/// Authenticates a bearer JWT for the middleware: the [`Caller`], or the
/// answer (`401` with the reason, recorded in the audit log within
/// [`JwtConfig::refusal_records`]; `403` when `X-Agent-Id` names another
/// agent).
pub(crate) async fn authenticate(
    state: &AppState,
    jwt: &JwtAuth,
    method: &Method,
    path: &str,
    token: &str,
    named: Option<&str>,
) -> Result<Caller, Response> {
    match jwt.verify(token).await {
        Ok(verified) => {
            if named.is_some_and(|n| n != verified.agent) {
                let message = format!("{AGENT_HEADER} names another agent than the token's");
                return Err(ApiError::new(ErrorCode::Forbidden, message).into_response());
            }
            Ok(Caller { agent: verified.agent, admin: false, token: None, jwt: Some(verified.identity) })
        }
        Err(refusal) => {
            let at = chrono::Utc::now();
            let admitted = jwt.refusals.admit(Instant::now(), at);
            let recorded = if admitted.is_some() { "true" } else { "false" };
            metrics::counter!("ctxmesh_jwt_refusals_total", "recorded" => recorded).increment(1);
            if let Some(left_out) = admitted {
                // The context the request names, if any: records of refused
                // tokens are found by context like the decisions on it.
                let context = path
                    .strip_prefix("/v1/contexts/")
                    .map(|rest| rest.split('/').next().unwrap_or(""))
                    .and_then(|s| ctxmesh_core::ContextId::parse(s).ok())
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default();
                let mut reason = match &refusal.claimed {
                    Some(_) => format!("{} (claimed agent, not verified)", refusal.reason),
                    None => refusal.reason.clone(),
                };
                if let Some(left_out) = left_out {
                    let limit = jwt.config.refusal_records.per_second;
                    reason.push_str(&format!(
                        "; {} more refused tokens since {} are not in the audit log (over {limit} a second)",
                        left_out.count,
                        left_out.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    ));
                }
                state.audit(AuditRecord {
                    seq: 0,
                    at,
                    agent: refusal.claimed.clone().unwrap_or_else(|| "unknown".into()),
                    action: "authenticate".into(),
                    resource: format!("{method} {path}"),
                    context,
                    allowed: false,
                    reason,
                });
            }
            let message = format!("the bearer token was refused: {}", refusal.reason);
            let mut response = ApiError::new(ErrorCode::Unauthenticated, message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            Err(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shapes() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!looks_like_jwt("cmt_0123.abc.def"), "ctxmesh tokens are never JWTs");
        assert!(!looks_like_jwt("admin-secret"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+b.c.d"));
    }

    #[test]
    fn symmetric_and_encryption_keys_are_left_out() {
        let hmac = serde_json::json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        let enc = serde_json::json!({"kty": "EC", "kid": "e", "use": "enc", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let sig = serde_json::json!({"kty": "EC", "kid": "s", "crv": "P-256", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let hs_alg = serde_json::json!({"kty": "EC", "kid": "x", "crv": "P-256", "alg": "HS256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let set = parse_jwks(&serde_json::json!({"keys": [hmac.clone(), enc, sig, hs_alg]})).unwrap();
        assert_eq!(set.keys.keys().collect::<Vec<_>>(), vec!["s"]);
        assert_eq!(set.keys["s"].algorithms, vec![Algorithm::ES256]);
        let error = parse_jwks(&serde_json::json!({"keys": [hmac]})).err().unwrap();
        assert!(error.contains("symmetric"), "{error}");
        assert!(parse_jwks(&serde_json::json!({"nokeys": []})).is_err());
    }

    #[test]
    fn config_needs_an_audience() {
        let mut config = JwtConfig::new("https://id.example.com", vec![], JwksSource::Discovery);
        assert!(config.check().unwrap_err().contains("--jwt-audience"));
        config.audiences = vec!["ctxmesh".into()];
        config.check().unwrap();
        config.issuer = "id.example.com".into();
        assert!(config.check().is_err(), "discovery needs a URL");
        config.jwks = JwksSource::File("keys.json".into());
        config.check().unwrap();
        config.refusal_records.per_second = 0.0;
        assert!(config.check().is_err(), "a bucket that never refills");
    }
}
