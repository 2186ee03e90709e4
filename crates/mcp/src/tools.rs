//! The MCP tools: each one is a request of the HTTP API, so that it is
//! authorized, validated, audited and answered exactly as over HTTP.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

pub(crate) use ctxmesh_core::ids::percent_encode as encode;

/// A lock's time to live when the call does not say.
const DEFAULT_LOCK_TTL_MS: u64 = 30_000;

/// A tool call turned into an HTTP request, or what is wrong with its
/// arguments.
pub(crate) fn request(name: &str, args: &JsonObject) -> Result<Request<Bytes>, String> {
    // A `null` argument is an absent one: some clients (CrewAI's MCP tool
    // adapter) send every optional argument, the unset ones as `null`. An
    // entry's `value` is kept: `null` is a value an entry can hold.
    let args: JsonObject = args
        .iter()
        .filter(|(k, v)| !v.is_null() || k.as_str() == "value")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let args = &args;
    let a = Args(args);
    let ctx = || a.id("context");
    let (method, path, body): (Method, String, Option<Value>) = match name {
        "list_contexts" => (Method::GET, format!("/v1/contexts{}", a.query(&["limit", "cursor"])), None),
        "create_context" => (Method::POST, "/v1/contexts".into(), Some(Value::Object(args.clone()))),
        "get_entry" => {
            let q = a.query(&["at", "as_of"]);
            (Method::GET, format!("/v1/contexts/{}/entries/{}{q}", ctx()?, a.key()?), None)
        }
        "list_entries" => {
            let q = a.query(&["prefix", "at", "limit", "cursor"]);
            (Method::GET, format!("/v1/contexts/{}/entries{q}", ctx()?), None)
        }
        "put_entry" => {
            let mut body = args.clone();
            for control in ["context", "key", "if_match", "if_absent", "fencing_token"] {
                body.remove(control);
            }
            if !body.contains_key("value") {
                return Err("`value` is required: the entry's new JSON value".into());
            }
            let path = format!("/v1/contexts/{}/entries/{}", ctx()?, a.key()?);
            return a.with_preconditions(Method::PUT, &path, Some(Value::Object(body)), "application/json");
        }
        "patch_entry" => {
            let path = format!("/v1/contexts/{}/entries/{}", ctx()?, a.key()?);
            return match (args.get("merge_patch"), args.get("json_patch")) {
                (Some(p), None) => {
                    a.with_preconditions(Method::PATCH, &path, Some(p.clone()), "application/merge-patch+json")
                }
                (None, Some(p)) => {
                    a.with_preconditions(Method::PATCH, &path, Some(p.clone()), "application/json-patch+json")
                }
                _ => Err("give exactly one of `merge_patch` (RFC 7386) and `json_patch` (RFC 6902)".into()),
            };
        }
        "delete_entry" => {
            let path = format!("/v1/contexts/{}/entries/{}", ctx()?, a.key()?);
            return a.with_preconditions(Method::DELETE, &path, None, "application/json");
        }
        "get_history" => {
            let q = a.query(&["limit", "before"]);
            match args.get("key") {
                Some(_) => (Method::GET, format!("/v1/contexts/{}/entries/{}/history{q}", ctx()?, a.key()?), None),
                None => (Method::GET, format!("/v1/contexts/{}/history{q}", ctx()?), None),
            }
        }
        "search" => {
            a.string("q")?;
            let q = a.query(&["q", "mode", "limit", "kind", "tags", "author", "since", "until"]);
            (Method::GET, format!("/v1/contexts/{}/search{q}", ctx()?), None)
        }
        "get_package" => {
            let q = a.query(&["agent", "budget", "format", "encoding", "explain", "compress", "at"]);
            (Method::GET, format!("/v1/contexts/{}/package{q}", ctx()?), None)
        }
        "request_handoff" => (Method::POST, "/v1/handoffs".into(), Some(Value::Object(args.clone()))),
        "get_handoff" => (Method::GET, format!("/v1/handoffs/{}", a.id("id")?), None),
        "get_handoff_package" => {
            let q = a.query(&["budget", "format", "encoding", "explain", "compress"]);
            (Method::GET, format!("/v1/handoffs/{}/package{q}", a.id("id")?), None)
        }
        "accept_handoff" | "reject_handoff" | "complete_handoff" => {
            let step = name.trim_end_matches("_handoff");
            let body = args.get("outcome").map(|o| json!({"outcome": o})).unwrap_or_else(|| json!({}));
            (Method::POST, format!("/v1/handoffs/{}/{step}", a.id("id")?), Some(body))
        }
        "acquire_lock" => {
            let mut body = serde_json::Map::new();
            body.insert("ttl_ms".into(), json!(DEFAULT_LOCK_TTL_MS));
            for field in ["ttl_ms", "wait_ms"] {
                if let Some(v) = args.get(field) {
                    body.insert(field.into(), v.clone());
                }
            }
            (Method::POST, format!("/v1/contexts/{}/locks/{}", ctx()?, a.id("name")?), Some(Value::Object(body)))
        }
        "release_lock" => (Method::DELETE, format!("/v1/contexts/{}/locks/{}", ctx()?, a.id("name")?), None),
        other => return Err(format!("unknown tool {other:?}")),
    };
    build(method, &path, body, "application/json", &[])
}

/// The answer of tool `name`, with what an agent needs to act on it: a
/// write to a context that does not exist says how contexts are made
/// (explicitly, as over HTTP; nothing creates one on a first write).
pub(crate) fn annotate(name: &str, status: http::StatusCode, mut body: Value) -> Value {
    let writes = ["put_entry", "patch_entry", "delete_entry"];
    let missing_context = status == http::StatusCode::NOT_FOUND
        && body["error"]["message"].as_str().is_some_and(|m| m.starts_with("context "));
    if writes.contains(&name) && missing_context {
        let message = format!(
            "{}: create it first with the create_context tool (a write never creates a context)",
            body["error"]["message"].as_str().unwrap_or_default()
        );
        body["error"]["message"] = Value::String(message);
    }
    body
}

/// The tools, with their input schemas, made once.
pub(crate) fn all() -> &'static [Tool] {
    static TOOLS: std::sync::OnceLock<Vec<Tool>> = std::sync::OnceLock::new();
    TOOLS.get_or_init(list)
}

fn list() -> Vec<Tool> {
    let context = json!({"type": "string", "description": "The context id."});
    let key =
        json!({"type": "string", "description": "The entry's key: `/`-separated segments, e.g. `findings/pricing`."});
    let revision = json!({"type": "integer", "minimum": 0});
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 1000});
    let cursor = json!({"type": "string", "description": "`next_cursor` of the previous page."});
    let read_only = || ToolAnnotations::new().read_only(true);
    vec![
        tool(
            "list_contexts",
            "List the contexts the caller may use.",
            json!({"limit": limit, "cursor": cursor}),
            &[],
        )
        .with_annotations(read_only()),
        tool(
            "create_context",
            "Create a context: `id`, and optionally `policy`, `schemas`, `retention`, `labels`, or `parent` with `inherit`/`override`/`isolate` to start from another context.",
            json!({"id": {"type": "string"}, "policy": {"type": "object"}, "schemas": {"type": "object"},
                "retention": {"type": "object"}, "labels": {"type": "object"}, "parent": {"type": "string"},
                "inherit": {"type": "array", "items": {"type": "string"}}, "override": {"type": "object"},
                "isolate": {"type": "array", "items": {"type": "string"}}}),
            &["id"],
        ),
        tool(
            "get_entry",
            "Read one entry: its value, metadata and revision. `at` reads it as of an earlier revision, `as_of` as of a time (RFC 3339).",
            json!({"context": context, "key": key, "at": revision, "as_of": {"type": "string"}}),
            &["context", "key"],
        )
        .with_annotations(read_only()),
        tool(
            "list_entries",
            "List the entries of a context, optionally under a key prefix or as of a revision; pages with `cursor`.",
            json!({"context": context, "prefix": {"type": "string"}, "at": revision, "limit": limit, "cursor": cursor}),
            &["context"],
        )
        .with_annotations(read_only()),
        tool(
            "put_entry",
            "Write an entry. Pass `if_match` with the revision you read so that a concurrent change is not overwritten (a stale write fails with precondition_failed and the current entry), or `if_absent` to create only. Metadata: kind, tags, confidence, priority (low|normal|high|critical), depends_on, relevance, ttl_ms, confidential. `fencing_token` is `<lock-name>=<token>` from acquire_lock.",
            json!({"context": context, "key": key, "value": {"description": "The new JSON value."},
                "if_match": revision, "if_absent": {"type": "boolean"},
                "kind": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "priority": {"type": "string", "enum": ["low", "normal", "high", "critical"]},
                "depends_on": {"type": "array", "items": {"type": "string"}},
                "relevance": {"type": "object", "additionalProperties": {"type": "number"}},
                "ttl_ms": {"type": "integer", "minimum": 1}, "confidential": {"type": "boolean"},
                "fencing_token": {"type": "string"}}),
            &["context", "key", "value"],
        ),
        tool(
            "patch_entry",
            "Change part of an entry's value, keeping its metadata: `merge_patch` (RFC 7386 JSON Merge Patch) or `json_patch` (RFC 6902 operations). `if_match` guards against concurrent changes.",
            json!({"context": context, "key": key, "merge_patch": {"description": "A JSON Merge Patch."},
                "json_patch": {"type": "array", "items": {"type": "object"}}, "if_match": revision,
                "fencing_token": {"type": "string"}}),
            &["context", "key"],
        ),
        tool(
            "delete_entry",
            "Delete an entry (its history stays). `if_match` guards against concurrent changes.",
            json!({"context": context, "key": key, "if_match": revision, "fencing_token": {"type": "string"}}),
            &["context", "key"],
        )
        .with_annotations(ToolAnnotations::new().destructive(true)),
        tool(
            "get_history",
            "The versions of an entry (with `key`), or the commits of the context (without), newest first: revision, author, time. Page with `before` (the answer's `next_before`).",
            json!({"context": context, "key": key, "limit": limit, "before": revision}),
            &["context"],
        )
        .with_annotations(read_only()),
        tool(
            "search",
            "Search a context's entries: `mode` keyword (default), semantic or hybrid; filters on kind, tags (comma-separated), author and time (`since`, `until`, RFC 3339).",
            json!({"context": context, "q": {"type": "string"},
                "mode": {"type": "string", "enum": ["keyword", "semantic", "hybrid"]}, "limit": limit,
                "kind": {"type": "string"}, "tags": {"type": "string"}, "author": {"type": "string"},
                "since": {"type": "string"}, "until": {"type": "string"}}),
            &["context", "q"],
        )
        .with_annotations(read_only()),
        tool(
            "get_package",
            "The context an agent needs, within a token budget: the most relevant entries whole, summarized or referenced (`key@revision`, fetch with get_entry). `agent` defaults to the caller; `format` json (default) or markdown; `at` rebuilds the package of an earlier revision.",
            json!({"context": context, "agent": {"type": "string"}, "budget": {"type": "integer", "minimum": 1},
                "format": {"type": "string", "enum": ["json", "markdown"]},
                "encoding": {"type": "string", "enum": ["cl100k_base", "o200k_base"]},
                "explain": {"type": "boolean"}, "compress": {"type": "boolean"}, "at": revision}),
            &["context"],
        )
        .with_annotations(read_only()),
        tool(
            "request_handoff",
            "Hand work to another agent with structured context: `target`, `context`, and optionally `revision`, `keys`, `package`, `session`, `user_intent`, `conversation_history`, `extracted_entities`, `deadline_ms`, `note`.",
            json!({"target": {"type": "string"}, "context": context, "revision": revision,
                "keys": {"type": "array", "items": {"type": "string"}}, "package": {}, "session": {"type": "string"},
                "user_intent": {"type": "string"}, "conversation_history": {"type": "array"},
                "extracted_entities": {"type": "object"}, "deadline_ms": {"type": "integer"}, "note": {"type": "string"}}),
            &["target", "context"],
        ),
        tool(
            "get_handoff",
            "Read a handoff: its status, the keys and revision it refers to, its session and note.",
            json!({"id": {"type": "string"}}),
            &["id"],
        )
        .with_annotations(read_only()),
        tool(
            "get_handoff_package",
            "The context a handoff carries: its keys as of its revision, packed for its target within a token \
             budget (`format: markdown` for prompt-ready text).",
            json!({
                "id": {"type": "string"},
                "budget": {"type": "integer", "minimum": 1, "description": "Most tokens (default: the target's budget)."},
                "format": {"type": "string", "enum": ["json", "markdown"]},
                "encoding": {"type": "string", "enum": ["cl100k_base", "o200k_base"]},
                "explain": {"type": "boolean"},
                "compress": {"type": "boolean"}
            }),
            &["id"],
        )
        .with_annotations(read_only()),
        tool(
            "accept_handoff",
            "Accept a handoff addressed to the caller.",
            json!({"id": {"type": "string"}, "outcome": {}}),
            &["id"],
        ),
        tool(
            "reject_handoff",
            "Reject a handoff addressed to the caller.",
            json!({"id": {"type": "string"}, "outcome": {}}),
            &["id"],
        ),
        tool(
            "complete_handoff",
            "Complete a handoff the caller accepted, with an optional `outcome`.",
            json!({"id": {"type": "string"}, "outcome": {}}),
            &["id"],
        ),
        tool(
            "acquire_lock",
            "Acquire a named lock in a context: `ttl_ms` (default 30 s), `wait_ms` to wait for it. Returns `acquired` and a `fencing_token`; pass `<name>=<fencing_token>` as `fencing_token` on writes so that a late write after the lock was lost is refused.",
            json!({"context": context, "name": {"type": "string"}, "ttl_ms": {"type": "integer", "minimum": 1},
                "wait_ms": {"type": "integer", "minimum": 0}}),
            &["context", "name"],
        ),
        tool(
            "release_lock",
            "Release a lock the caller holds.",
            json!({"context": context, "name": {"type": "string"}}),
            &["context", "name"],
        ),
    ]
}

fn tool(name: &'static str, description: &'static str, properties: Value, required: &[&str]) -> Tool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties);
    schema.insert("required".into(), json!(required));
    Tool::new(name, description, Arc::new(schema))
}

/// The arguments of one call.
struct Args<'a>(&'a JsonObject);

impl Args<'_> {
    fn string(&self, name: &str) -> Result<&str, String> {
        match self.0.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(format!("`{name}` must be a non-empty string")),
            None => Err(format!("`{name}` is required")),
        }
    }

    /// An id for a path segment (the server validates it; here it is only
    /// kept from adding path segments).
    fn id(&self, name: &str) -> Result<String, String> {
        self.string(name).map(encode)
    }

    /// The key, encoded.
    fn key(&self) -> Result<String, String> {
        self.string("key").map(encode)
    }

    /// `?a=1&b=x` of the arguments named that are present.
    fn query(&self, names: &[&str]) -> String {
        let mut out = String::new();
        for name in names {
            let value = match self.0.get(*name) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                Some(other) => other.to_string(),
            };
            out.push(if out.is_empty() { '?' } else { '&' });
            out.push_str(name);
            out.push('=');
            out.push_str(&encode(&value));
        }
        out
    }

    fn with_preconditions(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        content_type: &str,
    ) -> Result<Request<Bytes>, String> {
        let mut headers: Vec<(&str, String)> = Vec::new();
        match self.0.get("if_match") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some() => headers.push(("if-match", format!("\"{n}\""))),
            Some(_) => return Err("`if_match` must be a revision (a non-negative integer)".into()),
        }
        if self.0.get("if_absent").and_then(Value::as_bool) == Some(true) {
            headers.push(("if-none-match", "*".into()));
        }
        if let Some(token) = self.0.get("fencing_token") {
            let token = token.as_str().ok_or("`fencing_token` must be a string `<lock-name>=<token>`")?;
            headers.push(("x-fencing-token", token.to_owned()));
        }
        build(method, path, body, content_type, &headers)
    }
}

fn build(
    method: Method,
    path: &str,
    body: Option<Value>,
    content_type: &str,
    headers: &[(&str, String)],
) -> Result<Request<Bytes>, String> {
    let mut request = Request::builder().method(method).uri(path);
    let bytes = match body {
        Some(body) => {
            request = request.header(http::header::CONTENT_TYPE, content_type);
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(bytes).map_err(|e| format!("cannot make the request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    /// A write to a context that does not exist tells the agent how
    /// contexts are made; other answers pass through unchanged.
    #[test]
    fn a_write_to_a_missing_context_says_how_to_create_one() {
        let missing =
            || json!({"error": {"code": "not_found", "message": "context \"plan\" not found", "details": {}}});
        let answer = annotate("put_entry", http::StatusCode::NOT_FOUND, missing());
        assert_eq!(
            answer["error"]["message"],
            "context \"plan\" not found: create it first with the create_context tool (a write never creates a context)"
        );
        assert_eq!(answer["error"]["code"], "not_found");
        assert_eq!(annotate("get_entry", http::StatusCode::NOT_FOUND, missing()), missing());
        let entry = json!({"error": {"code": "not_found", "message": "entry \"a\" not found"}});
        assert_eq!(annotate("delete_entry", http::StatusCode::NOT_FOUND, entry.clone()), entry);
    }

    #[test]
    fn a_put_carries_its_preconditions_as_headers_and_the_rest_as_body() {
        let r = request(
            "put_entry",
            &args(json!({"context": "c", "key": "a/b", "value": {"x": 1}, "if_match": 7, "kind": "note",
                "fencing_token": "l=3"})),
        )
        .unwrap();
        assert_eq!(r.method(), Method::PUT);
        assert_eq!(r.uri().path(), "/v1/contexts/c/entries/a%2Fb");
        assert_eq!(r.headers()["if-match"], "\"7\"");
        assert_eq!(r.headers()["x-fencing-token"], "l=3");
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body, json!({"value": {"x": 1}, "kind": "note"}));
    }

    #[test]
    fn null_arguments_are_absent_ones_and_a_null_value_is_a_value() {
        let r = request(
            "put_entry",
            &args(json!({"context": "c", "key": "a", "value": null, "if_match": null, "if_absent": null,
                "fencing_token": null, "kind": null, "tags": null})),
        )
        .unwrap();
        assert!(r.headers().get("if-match").is_none() && r.headers().get("x-fencing-token").is_none());
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body, json!({"value": null}));
        let r = request("create_context", &args(json!({"id": "c", "policy": null, "labels": {"a": "b"}}))).unwrap();
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body, json!({"id": "c", "labels": {"a": "b"}}));
        let r = request("list_entries", &args(json!({"context": "c", "prefix": null, "limit": null}))).unwrap();
        assert_eq!(r.uri().to_string(), "/v1/contexts/c/entries");
    }

    #[test]
    fn bad_arguments_are_refused_before_any_request() {
        assert!(request("put_entry", &args(json!({"context": "c", "key": "k"}))).unwrap_err().contains("value"));
        assert!(request("get_entry", &args(json!({"context": "c"}))).unwrap_err().contains("key"));
        let both = args(json!({"context": "c", "key": "k", "merge_patch": {}, "json_patch": []}));
        assert!(request("patch_entry", &both).unwrap_err().contains("exactly one"));
        assert!(request("put_entry", &args(json!({"context": "c", "key": "k", "value": 1, "if_match": "x"}))).is_err());
        assert!(request("nope", &args(json!({}))).unwrap_err().contains("unknown tool"));
    }

    #[test]
    fn queries_are_encoded_and_ids_cannot_add_path_segments() {
        let r = request("search", &args(json!({"context": "c", "q": "a b&c", "tags": ["x", "y"]}))).unwrap();
        assert_eq!(r.uri().to_string(), "/v1/contexts/c/search?q=a%20b%26c&tags=x%2Cy");
        let r = request("get_handoff", &args(json!({"id": "h?x=1"}))).unwrap();
        assert_eq!(r.uri().path(), "/v1/handoffs/h%3Fx%3D1");
        let r =
            request("get_handoff_package", &args(json!({"id": "h1", "budget": 500, "format": "markdown"}))).unwrap();
        assert_eq!(r.uri().to_string(), "/v1/handoffs/h1/package?budget=500&format=markdown");
    }

    #[test]
    fn every_listed_tool_has_a_request() {
        for tool in all() {
            let e = request(&tool.name, &JsonObject::new());
            assert!(!e.is_err_and(|e| e.contains("unknown tool")), "{}", tool.name);
        }
    }
}
