//! A Rust client for the ctxmesh HTTP API, over the same wire types as the
//! server. Used by the CLI, the benchmark tool and the tests.

use ctxmesh_core::Entry;
pub use ctxmesh_core::ErrorCode;
use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::txn::{TxnRequest, TxnResponse};
pub use reqwest::Method;
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod keepalive;

pub use keepalive::{KeepAlive, KeepAliveEnd};

/// An error from the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Message from the server.
        message: String,
        /// Details from the server.
        details: Value,
    },
    /// The server could not be reached.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server's TLS certificate was refused (not trusted, not for the
    /// host name connected to, expired): the message says why and what to
    /// do. Trying again does not help until the configuration changes.
    #[error("cannot reach the server: {0}")]
    Certificate(String),
    /// The client's TLS settings are unusable (a CA file that cannot be
    /// read, say).
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ClientError {
    /// The stable error code as the server sent it, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The stable error code, for API errors whose code this client
    /// knows; `None` for other errors, and for a code it does not know
    /// (from a newer server): `code()` has it as sent.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code()?.parse().ok()
    }
}

/// A transport error, or a refused TLS certificate said in words.
fn transport(e: &reqwest::Error) -> ClientError {
    const CA_HINT: &str = "--ca-file (or CTXMESH_CA_FILE)";
    match ctxmesh_tls::explain(e, CA_HINT) {
        Some(why) => ClientError::Certificate(why),
        None => ClientError::Transport(ctxmesh_tls::describe(e, CA_HINT)),
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ClientError>;

/// Which kind of patch to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 7386 JSON Merge Patch.
    Merge,
    /// RFC 6902 JSON Patch.
    Json,
}

/// A preconditioned write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Write blindly.
    #[default]
    None,
    /// Only if the entry's revision is this (`If-Match`).
    Revision(u64),
    /// Only if the entry does not exist (`If-None-Match: *`).
    Absent,
}

/// A client of one ctxmesh server.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    agent: Option<String>,
    token: Option<String>,
}

/// Percent-encodes a key for a URL path (every `/` too, so that no key is
/// mistaken for a sub-resource such as `/history`).
pub use ctxmesh_core::ids::percent_encode as encode_key;

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:7600`, or
    /// `https://...` trusted by the system's roots).
    pub fn new(base: &str) -> Self {
        let http = ctxmesh_tls::http_client(None).unwrap_or_else(|_| {
            // Only a CA file can make this fail, and none was given.
            ctxmesh_tls::install_crypto_provider();
            reqwest::Client::new()
        });
        Self::with_http(base, http)
    }

    /// A client of the server at `base` that trusts, for `https://`, the
    /// system's roots plus the CA certificates in `ca_file` (PEM).
    pub fn with_ca_file(base: &str, ca_file: Option<&std::path::Path>) -> Result<Self> {
        let http = ctxmesh_tls::http_client(ca_file).map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Self::with_http(base, http))
    }

    /// A client of the server at `base` over `http`.
    pub fn with_http(base: &str, http: reqwest::Client) -> Self {
        Client { http, base: base.trim_end_matches('/').to_owned(), agent: None, token: None }
    }

    /// The same client acting as agent `agent` (`X-Agent-Id`).
    pub fn with_agent(mut self, agent: &str) -> Self {
        self.agent = Some(agent.to_owned());
        self
    }

    /// The same client authenticating with `token` (`Authorization:
    /// Bearer`): an agent's token or the admin token.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(agent) = &self.agent {
            req = req.header("x-agent-id", agent);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let response = req.send().await.map_err(|e| transport(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transport(&e))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let body = if bytes.is_empty() { b"null".as_slice() } else { &bytes };
        serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /v1/contexts` with `body` (`{"id", "policy"?, ...}`).
    pub async fn create_context(&self, body: &Value) -> Result<ContextInfo> {
        self.send(self.request(Method::POST, "/v1/contexts").json(body)).await
    }

    /// `GET /v1/contexts`.
    pub async fn list_contexts(&self, limit: Option<usize>, cursor: Option<&str>) -> Result<Value> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c.to_owned()));
        }
        self.send(self.request(Method::GET, "/v1/contexts").query(&q)).await
    }

    /// `GET /v1/contexts/{ctx}`.
    pub async fn get_context(&self, ctx: &str) -> Result<ContextInfo> {
        self.send(self.request(Method::GET, &format!("/v1/contexts/{ctx}"))).await
    }

    /// `PATCH /v1/contexts/{ctx}` with settings to replace.
    pub async fn update_context(&self, ctx: &str, patch: &Value) -> Result<ContextInfo> {
        self.send(self.request(Method::PATCH, &format!("/v1/contexts/{ctx}")).json(patch)).await
    }

    /// `DELETE /v1/contexts/{ctx}`.
    pub async fn delete_context(&self, ctx: &str) -> Result<()> {
        self.send::<Value>(self.request(Method::DELETE, &format!("/v1/contexts/{ctx}"))).await.map(|_| ())
    }

    /// `GET /v1/contexts/{ctx}/entries/{key}`, optionally `?at=`.
    pub async fn get_entry(&self, ctx: &str, key: &str, at: Option<u64>) -> Result<Entry> {
        let mut req = self.request(Method::GET, &format!("/v1/contexts/{ctx}/entries/{}", encode_key(key)));
        if let Some(at) = at {
            req = req.query(&[("at", at)]);
        }
        self.send(req).await
    }

    /// `GET /v1/contexts/{ctx}/entries`: `{"entries", "revision", "next_cursor"}`.
    pub async fn list_entries(&self, ctx: &str, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(Method::GET, &format!("/v1/contexts/{ctx}/entries")).query(query)).await
    }

    /// `PUT /v1/contexts/{ctx}/entries/{key}` with `{"value", ...metadata}`.
    pub async fn put_entry(&self, ctx: &str, key: &str, body: &Value, pre: Precondition) -> Result<Entry> {
        let req = self.request(Method::PUT, &format!("/v1/contexts/{ctx}/entries/{}", encode_key(key))).json(body);
        self.send(with_precondition(req, pre)).await
    }

    /// `PATCH /v1/contexts/{ctx}/entries/{key}`.
    pub async fn patch_entry(
        &self,
        ctx: &str,
        key: &str,
        patch: &Value,
        kind: PatchKind,
        pre: Precondition,
    ) -> Result<Entry> {
        let content_type = match kind {
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::Json => "application/json-patch+json",
        };
        let req = self
            .request(Method::PATCH, &format!("/v1/contexts/{ctx}/entries/{}", encode_key(key)))
            .header("content-type", content_type)
            .body(patch.to_string());
        self.send(with_precondition(req, pre)).await
    }

    /// `DELETE /v1/contexts/{ctx}/entries/{key}`: `{"key", "revision"}`.
    pub async fn delete_entry(&self, ctx: &str, key: &str, pre: Precondition) -> Result<Value> {
        let req = self.request(Method::DELETE, &format!("/v1/contexts/{ctx}/entries/{}", encode_key(key)));
        self.send(with_precondition(req, pre)).await
    }

    /// `POST /v1/contexts/{ctx}/txn`.
    pub async fn txn(&self, ctx: &str, txn: &TxnRequest) -> Result<TxnResponse> {
        self.send(self.request(Method::POST, &format!("/v1/contexts/{ctx}/txn")).json(txn)).await
    }

    /// Entry history (`key` given) or context history.
    pub async fn history(&self, ctx: &str, key: Option<&str>, limit: Option<usize>) -> Result<Value> {
        let path = match key {
            Some(key) => format!("/v1/contexts/{ctx}/entries/{}/history", encode_key(key)),
            None => format!("/v1/contexts/{ctx}/history"),
        };
        let mut req = self.request(Method::GET, &path);
        if let Some(l) = limit {
            req = req.query(&[("limit", l)]);
        }
        self.send(req).await
    }

    /// `GET /v1/contexts/{ctx}/diff?from=&to=`.
    pub async fn diff(&self, ctx: &str, from: u64, to: Option<u64>) -> Result<Value> {
        let mut q = vec![("from", from)];
        if let Some(to) = to {
            q.push(("to", to));
        }
        self.send(self.request(Method::GET, &format!("/v1/contexts/{ctx}/diff")).query(&q)).await
    }

    /// `POST /v1/contexts/{ctx}/rollback`.
    pub async fn rollback(&self, ctx: &str, to: u64) -> Result<Value> {
        let body = serde_json::json!({ "to": to });
        self.send(self.request(Method::POST, &format!("/v1/contexts/{ctx}/rollback")).json(&body)).await
    }

    /// `POST /v1/contexts/{ctx}/fork`.
    pub async fn fork(&self, ctx: &str, new_id: &str, at: Option<u64>) -> Result<ContextInfo> {
        let body = serde_json::json!({ "id": new_id, "at": at });
        self.send(self.request(Method::POST, &format!("/v1/contexts/{ctx}/fork")).json(&body)).await
    }

    /// `POST /v1/contexts/{ctx}/grants`: gives each of `agents` the
    /// `permissions` (read, write, share, admin) on the context, replacing
    /// its earlier grant; `expires_at` (RFC 3339) ends them.
    pub async fn grant(
        &self,
        ctx: &str,
        agents: &[String],
        permissions: &[String],
        expires_at: Option<&str>,
    ) -> Result<Value> {
        let body = serde_json::json!({ "agents": agents, "permissions": permissions, "expires_at": expires_at });
        self.send(self.request(Method::POST, &format!("/v1/contexts/{ctx}/grants")).json(&body)).await
    }

    /// `GET /v1/contexts/{ctx}/grants`.
    pub async fn list_grants(&self, ctx: &str) -> Result<Value> {
        self.send(self.request(Method::GET, &format!("/v1/contexts/{ctx}/grants"))).await
    }

    /// `DELETE /v1/contexts/{ctx}/grants?agent=`: ends `agent`'s grant.
    pub async fn revoke(&self, ctx: &str, agent: &str) -> Result<()> {
        let req = self.request(Method::DELETE, &format!("/v1/contexts/{ctx}/grants")).query(&[("agent", agent)]);
        self.send::<Value>(req).await.map(|_| ())
    }

    /// `GET /v1/contexts/{ctx}/events?after=`.
    pub async fn events(&self, ctx: &str, after: u64, limit: Option<usize>) -> Result<Value> {
        let mut q = vec![("after", after as usize)];
        if let Some(l) = limit {
            q.push(("limit", l));
        }
        self.send(self.request(Method::GET, &format!("/v1/contexts/{ctx}/events")).query(&q)).await
    }

    /// `GET /v1/contexts/{ctx}/document`.
    pub async fn document(&self, ctx: &str, at: Option<u64>) -> Result<Value> {
        let mut req = self.request(Method::GET, &format!("/v1/contexts/{ctx}/document"));
        if let Some(at) = at {
            req = req.query(&[("at", at)]);
        }
        self.send(req).await
    }
}

fn with_precondition(req: RequestBuilder, pre: Precondition) -> RequestBuilder {
    match pre {
        Precondition::None => req,
        Precondition::Revision(r) => req.header("if-match", format!("\"{r}\"")),
        Precondition::Absent => req.header("if-none-match", "*"),
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error {
        Some(e) => ClientError::Api {
            status: status.as_u16(),
            code: e["code"].as_str().unwrap_or("unknown").to_owned(),
            message: e["message"].as_str().unwrap_or("").to_owned(),
            details: e.get("details").cloned().unwrap_or(Value::Null),
        },
        None => ClientError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: String::from_utf8_lossy(body).into_owned(),
            details: Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error body's code is parsed; a code from a newer server stays
    /// readable as sent.
    #[test]
    fn error_codes_are_parsed_from_the_body() {
        let e = api_error(StatusCode::NOT_FOUND, br#"{"error": {"code": "not_found", "message": "gone"}}"#);
        assert_eq!((e.code(), e.error_code()), (Some("not_found"), Some(ErrorCode::NotFound)));
        let newer = api_error(StatusCode::BAD_REQUEST, br#"{"error": {"code": "brand_new", "message": "?"}}"#);
        assert_eq!((newer.code(), newer.error_code()), (Some("brand_new"), None));
        assert_eq!(newer.to_string(), "brand_new: ?");
        let garbled = api_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!((garbled.code(), garbled.error_code()), (Some("unknown"), None));
        assert_eq!(ClientError::Transport("refused".into()).error_code(), None);
    }

    #[test]
    fn keys_are_fully_encoded() {
        assert_eq!(encode_key("a/history"), "a%2Fhistory");
        assert_eq!(encode_key("x:y@z~1"), "x%3Ay%40z~1");
    }
}

/// Agents, locks, handoffs and tasks. Bodies and answers are the JSON of
/// docs/api.md.
impl Client {
    /// Any call: `method path` with an optional JSON body; the answer's JSON.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    /// `POST /v1/agents`.
    pub async fn register_agent(&self, body: &Value) -> Result<Value> {
        self.call(Method::POST, "/v1/agents", Some(body)).await
    }

    /// `GET /v1/agents` with filters (`status`, `capability`, `limit`, `cursor`).
    pub async fn list_agents(&self, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(Method::GET, "/v1/agents").query(query)).await
    }

    /// `GET /v1/agents/{id}`.
    pub async fn get_agent(&self, id: &str) -> Result<Value> {
        self.call(Method::GET, &format!("/v1/agents/{id}"), None).await
    }

    /// `PATCH /v1/agents/{id}`.
    pub async fn update_agent(&self, id: &str, patch: &Value) -> Result<Value> {
        self.call(Method::PATCH, &format!("/v1/agents/{id}"), Some(patch)).await
    }

    /// `DELETE /v1/agents/{id}`.
    pub async fn unregister_agent(&self, id: &str) -> Result<()> {
        self.call(Method::DELETE, &format!("/v1/agents/{id}"), None).await.map(|_| ())
    }

    /// `POST /v1/agents/{id}/heartbeat`.
    pub async fn heartbeat(&self, id: &str) -> Result<Value> {
        self.call(Method::POST, &format!("/v1/agents/{id}/heartbeat"), None).await
    }

    /// `GET /v1/whoami`: `{"agent", "admin"}`, who the server takes the
    /// caller's credentials for (a `401 unauthenticated` when it refuses
    /// them).
    pub async fn whoami(&self) -> Result<Value> {
        self.call(Method::GET, "/v1/whoami", None).await
    }

    /// `POST /v1/agents/{id}/token`: `{"agent", "token"}`, a new token for
    /// the agent, answered this once; the old one stops working.
    pub async fn rotate_token(&self, id: &str) -> Result<Value> {
        self.call(Method::POST, &format!("/v1/agents/{id}/token"), None).await
    }

    /// `DELETE /v1/agents/{id}/token`: the agent's token stops working
    /// (`rotate_token` issues a new one).
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        self.call(Method::DELETE, &format!("/v1/agents/{id}/token"), None).await.map(|_| ())
    }

    /// `GET /v1/agents/{id}/inbox?after=&limit=`.
    pub async fn inbox(&self, id: &str, after: u64, limit: Option<usize>) -> Result<Value> {
        let mut q = vec![("after", after.to_string())];
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.send(self.request(Method::GET, &format!("/v1/agents/{id}/inbox")).query(&q)).await
    }

    /// `POST /v1/contexts/{ctx}/locks/{name}`: `{acquired, holder, lock_id, fencing_token, expires_at}`.
    pub async fn acquire_lock(&self, ctx: &str, name: &str, ttl_ms: u64, wait_ms: u64) -> Result<Value> {
        let body = serde_json::json!({ "ttl_ms": ttl_ms, "wait_ms": wait_ms });
        self.call(Method::POST, &format!("/v1/contexts/{ctx}/locks/{name}"), Some(&body)).await
    }

    /// `DELETE /v1/contexts/{ctx}/locks/{name}`.
    pub async fn release_lock(&self, ctx: &str, name: &str) -> Result<Value> {
        self.call(Method::DELETE, &format!("/v1/contexts/{ctx}/locks/{name}"), None).await
    }

    /// `POST /v1/contexts/{ctx}/locks/{name}/refresh`.
    pub async fn refresh_lock(&self, ctx: &str, name: &str, ttl_ms: u64) -> Result<Value> {
        let body = serde_json::json!({ "ttl_ms": ttl_ms });
        self.call(Method::POST, &format!("/v1/contexts/{ctx}/locks/{name}/refresh"), Some(&body)).await
    }

    /// `GET /v1/contexts/{ctx}/locks`.
    pub async fn list_locks(&self, ctx: &str) -> Result<Value> {
        self.call(Method::GET, &format!("/v1/contexts/{ctx}/locks"), None).await
    }

    /// `POST /v1/handoffs` (the client's agent is the source).
    pub async fn request_handoff(&self, body: &Value) -> Result<Value> {
        self.call(Method::POST, "/v1/handoffs", Some(body)).await
    }

    /// `GET /v1/handoffs/{id}`.
    pub async fn get_handoff(&self, id: &str) -> Result<Value> {
        self.call(Method::GET, &format!("/v1/handoffs/{id}"), None).await
    }

    /// `GET /v1/handoffs` with filters (`context`, `agent`, `state`).
    pub async fn list_handoffs(&self, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(Method::GET, "/v1/handoffs").query(query)).await
    }

    /// `POST /v1/handoffs/{id}/{accept|reject|complete}` with an optional outcome.
    pub async fn handoff_step(&self, id: &str, action: &str, outcome: Option<Value>) -> Result<Value> {
        let body = serde_json::json!({ "outcome": outcome });
        self.call(Method::POST, &format!("/v1/handoffs/{id}/{action}"), Some(&body)).await
    }

    /// `POST /v1/contexts/{ctx}/tasks`.
    pub async fn assign_task(&self, ctx: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, &format!("/v1/contexts/{ctx}/tasks"), Some(body)).await
    }

    /// `POST /v1/tasks/{id}/complete`.
    pub async fn complete_task(&self, id: &str, output: Option<Value>) -> Result<Value> {
        let body = serde_json::json!({ "output": output });
        self.call(Method::POST, &format!("/v1/tasks/{id}/complete"), Some(&body)).await
    }
}

/// One frame of a watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchFrame {
    /// An event of the context (`type`, `revision`, ...).
    Event(Value),
    /// A bookmark: every event up to this revision has been sent.
    Progress(u64),
    /// The position was compacted away; the watch is over.
    Compacted(Value),
    /// The server ended the stream with an error (e.g. shutting down).
    Error(Value),
}

/// Where a watch resumes so that nothing is missed or repeated.
///
/// A revision's events are sent together, but a connection can break in
/// the middle of them. So the tracker resumes just before the last revision
/// it saw (unless a bookmark says that revision is complete) and skips the
/// events of that revision it already has.
#[derive(Clone, Debug, Default)]
pub struct ResumeTracker {
    last_revision: u64,
    held_of_last: usize,
    bookmark: u64,
    skip: usize,
    skip_revision: u64,
}

impl ResumeTracker {
    /// A tracker starting after revision `after`.
    pub fn new(after: u64) -> Self {
        ResumeTracker { bookmark: after, last_revision: after, ..Default::default() }
    }

    /// The `after` to connect with; call once per connection.
    pub fn resume_after(&mut self) -> u64 {
        if self.last_revision > self.bookmark && self.held_of_last > 0 {
            self.skip = self.held_of_last;
            self.skip_revision = self.last_revision;
            self.last_revision - 1
        } else {
            self.skip = 0;
            self.bookmark.max(self.last_revision)
        }
    }

    /// Feeds a received frame; returns whether to pass it on (false for a
    /// repeat of an event already delivered).
    pub fn accept(&mut self, frame: &WatchFrame) -> bool {
        match frame {
            WatchFrame::Event(e) => {
                let revision = e["revision"].as_u64().unwrap_or(0);
                if self.skip > 0 && revision == self.skip_revision {
                    self.skip -= 1;
                    return false;
                }
                if revision == self.last_revision {
                    self.held_of_last += 1;
                } else {
                    self.last_revision = revision;
                    self.held_of_last = 1;
                }
                true
            }
            WatchFrame::Progress(r) => {
                self.bookmark = self.bookmark.max(*r);
                true
            }
            _ => true,
        }
    }
}

impl Client {
    /// Opens `GET /v1/contexts/{ctx}/watch?after=...` plus `query`, and
    /// returns its frames. The stream ends when the connection does.
    pub async fn watch(
        &self,
        ctx: &str,
        after: Option<u64>,
        query: &[(&str, String)],
    ) -> Result<impl futures::Stream<Item = Result<WatchFrame>> + Send + use<>> {
        let mut req = self.request(Method::GET, &format!("/v1/contexts/{ctx}/watch")).query(query);
        if let Some(after) = after {
            req = req.query(&[("after", after)]);
        }
        let response = req.send().await.map_err(|e| transport(&e))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        let bytes = futures::StreamExt::boxed(response.bytes_stream());
        Ok(futures::stream::unfold((bytes, String::new()), |(mut bytes, mut buffer)| async move {
            loop {
                if let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    match parse_frame(&frame) {
                        Some(f) => return Some((Ok(f), (bytes, buffer))),
                        None => continue,
                    }
                }
                match futures::StreamExt::next(&mut bytes).await {
                    Some(Ok(chunk)) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    Some(Err(e)) => return Some((Err(ClientError::Transport(e.to_string())), (bytes, buffer))),
                    None => return None,
                }
            }
        }))
    }
}

fn parse_frame(frame: &str) -> Option<WatchFrame> {
    let (mut kind, mut data) = (None, None);
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            kind = Some(v);
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = serde_json::from_str::<Value>(v).ok();
        }
    }
    let data = data?;
    Some(match kind? {
        "progress" => WatchFrame::Progress(data["revision"].as_u64().unwrap_or(0)),
        "compacted" => WatchFrame::Compacted(data),
        "error" => WatchFrame::Error(data),
        _ => WatchFrame::Event(data),
    })
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use serde_json::json;

    fn ev(r: u64) -> WatchFrame {
        WatchFrame::Event(json!({"revision": r}))
    }

    #[test]
    fn resumes_before_an_incomplete_revision_and_skips_repeats() {
        let mut t = ResumeTracker::new(0);
        assert_eq!(t.resume_after(), 0);
        for f in [ev(1), ev(2), ev(3)] {
            assert!(t.accept(&f));
        }
        // Revision 3 may be incomplete: resume after 2, skip the one event of 3 held.
        assert_eq!(t.resume_after(), 2);
        assert!(!t.accept(&ev(3)));
        assert!(t.accept(&ev(3)), "the second event of revision 3 is new");
        assert!(t.accept(&WatchFrame::Progress(5)));
        assert_eq!(t.resume_after(), 5, "a bookmark says everything up to 5 arrived");
    }

    #[test]
    fn parses_frames() {
        assert_eq!(parse_frame("id: 3\nevent: progress\ndata: {\"revision\":3}\n\n"), Some(WatchFrame::Progress(3)));
        assert_eq!(parse_frame(": keep-alive\n\n"), None);
        assert!(matches!(parse_frame("event: message\ndata: {\"revision\":1}\n\n"), Some(WatchFrame::Event(_))));
    }
}

/// Backups.
impl Client {
    /// `GET /v1/backup` (admin only): a consistent copy of the server's
    /// database, passed to `sink` as it arrives; returns its size. A copy
    /// cut short (fewer bytes than the server announced) is an error.
    pub async fn backup(&self, mut sink: impl FnMut(&[u8]) -> std::io::Result<()>) -> Result<u64> {
        let mut response = self.request(Method::GET, "/v1/backup").send().await.map_err(|e| transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|e| transport(&e))?;
            return Err(api_error(status, &bytes));
        }
        let announced = response.content_length();
        let mut size = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            sink(&chunk).map_err(|e| ClientError::Decode(format!("cannot save the backup: {e}")))?;
            size += chunk.len() as u64;
        }
        if announced.is_some_and(|n| n != size) {
            return Err(ClientError::Transport(format!(
                "the backup was cut short: {size} bytes of {}",
                announced.unwrap_or_default()
            )));
        }
        Ok(size)
    }
}
