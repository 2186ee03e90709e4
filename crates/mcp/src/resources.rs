//! Contexts and entries as MCP resources, and their update notifications
//! (from the context's watch stream).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use http::{Method, Request, StatusCode};
use rmcp::model::ResourceTemplate;
use serde_json::Value;

use crate::Mcp;
use crate::sse::Frames;
use crate::tools::encode;

const SCHEME: &str = "ctxmesh://contexts/";

/// A resource: a context (its entries as one JSON document) or an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `ctxmesh://contexts/{context}`.
    Context(String),
    /// `ctxmesh://contexts/{context}/entries/{key}`.
    Entry(String, String),
}

impl Resource {
    /// The resource a URI names.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest =
            uri.strip_prefix(SCHEME).ok_or_else(|| format!("{uri:?} is not a ctxmesh resource ({SCHEME}...)"))?;
        let (context, key) = match rest.split_once("/entries/") {
            Some((context, key)) => (context, Some(key)),
            None => (rest.trim_end_matches('/'), None),
        };
        if context.is_empty() || context.contains('/') || key.is_some_and(str::is_empty) {
            return Err(format!("{uri:?} names no context or entry"));
        }
        Ok(match key {
            Some(key) => Resource::Entry(context.into(), key.into()),
            None => Resource::Context(context.into()),
        })
    }

    /// Its URI.
    pub fn uri(&self) -> String {
        match self {
            Resource::Context(c) => format!("{SCHEME}{c}"),
            Resource::Entry(c, k) => format!("{SCHEME}{c}/entries/{k}"),
        }
    }

    fn context(&self) -> &str {
        match self {
            Resource::Context(c) | Resource::Entry(c, _) => c,
        }
    }

    /// The request that reads it.
    pub(crate) fn read_request(&self) -> Result<Request<Bytes>, String> {
        let path = match self {
            Resource::Context(c) => format!("/v1/contexts/{}/document", encode(c)),
            Resource::Entry(c, k) => format!("/v1/contexts/{}/entries/{}", encode(c), encode(k)),
        };
        get(&path)
    }

    /// Whether `event` (of its context) changes it.
    fn changed_by(&self, event: &Value) -> bool {
        match (self, event["type"].as_str()) {
            (_, Some("context.rolled_back" | "context.deleted")) | (Resource::Context(_), Some("context.updated")) => {
                true
            }
            (Resource::Entry(_, key), Some("context.updated")) => event["key"].as_str() == Some(key),
            _ => false,
        }
    }
}

fn get(path: &str) -> Result<Request<Bytes>, String> {
    Request::builder().method(Method::GET).uri(path).body(Bytes::new()).map_err(|e| e.to_string())
}

/// The request listing contexts.
pub(crate) fn list_request(cursor: Option<&str>) -> Result<Request<Bytes>, String> {
    match cursor {
        Some(cursor) => get(&format!("/v1/contexts?limit=100&cursor={}", encode(cursor))),
        None => get("/v1/contexts?limit=100"),
    }
}

/// The resources of a page of contexts.
pub(crate) fn listed(page: &Value) -> Vec<rmcp::model::Resource> {
    page["contexts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .map(|id| {
            rmcp::model::Resource::new(Resource::Context(id.into()).uri(), id)
                .with_description(format!("The entries of context {id} as one JSON document, with its revision"))
                .with_mime_type("application/json")
        })
        .collect()
}

/// The URI templates.
pub(crate) fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{SCHEME}{{context}}"), "context")
            .with_description("A context's entries as one JSON document (keys split on `/`), with its revision")
            .with_mime_type("application/json"),
        ResourceTemplate::new(format!("{SCHEME}{{context}}/entries/{{key}}"), "entry")
            .with_description("One entry: value, metadata, revision")
            .with_mime_type("application/json"),
    ]
}

/// Why a subscription could not start.
#[derive(Debug)]
pub(crate) enum WatchError {
    /// The API refused (no access, unknown context).
    Api { status: StatusCode, body: Value },
    /// The API could not be reached.
    Gateway(String),
}

/// How far back a subscription starts: a change made just before the
/// subscription was acknowledged, while its watch was being opened, is
/// notified rather than missed (a spare notification only costs a read).
const LOOKBACK_SECS: i64 = 2;

/// The URIs of `resources` each time one changes, until the server ends
/// the watch streams.
pub(crate) async fn updates(
    mcp: Mcp,
    caller: Option<http::Extensions>,
    resources: Vec<Resource>,
) -> Result<impl Stream<Item = Result<String, String>> + Send + 'static, WatchError> {
    let mut by_context: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for r in resources {
        by_context.entry(r.context().to_owned()).or_default().push(r);
    }
    let mut streams = Vec::new();
    for (context, resources) in by_context {
        let after = start_revision(&mcp, caller.clone(), &context).await?;
        let path = format!(
            "/v1/contexts/{}/watch?after={after}&types=context.updated,context.rolled_back,context.deleted",
            encode(&context)
        );
        let response = mcp
            .gateway
            .send(caller.clone(), get(&path).map_err(WatchError::Gateway)?)
            .await
            .map_err(WatchError::Gateway)?;
        if !response.status().is_success() {
            let answer = crate::read_all(response).await.map_err(WatchError::Gateway)?;
            return Err(WatchError::Api { status: answer.status, body: answer.body });
        }
        let mut frames = Frames::default();
        let changes = response.into_body().map(move |chunk| {
            let events = frames.push(&chunk?);
            let mut uris: Vec<String> = Vec::new();
            for event in &events {
                for r in &resources {
                    let uri = r.uri();
                    if r.changed_by(event) && !uris.contains(&uri) {
                        uris.push(uri);
                    }
                }
            }
            Ok::<_, String>(uris)
        });
        streams.push(changes.boxed());
    }
    Ok(stream::select_all(streams).flat_map(|uris| match uris {
        Ok(uris) => stream::iter(uris.into_iter().map(Ok).collect::<Vec<_>>()),
        Err(e) => stream::iter(vec![Err(e)]),
    }))
}

/// The context's revision `LOOKBACK_SECS` ago (its current one when the
/// context is younger).
async fn start_revision(mcp: &Mcp, caller: Option<http::Extensions>, context: &str) -> Result<u64, WatchError> {
    let since = chrono::Utc::now() - chrono::Duration::seconds(LOOKBACK_SECS);
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let path = format!("/v1/contexts/{}/entries?limit=1&as_of={}", encode(context), encode(&since));
    let answer =
        mcp.call(caller.clone(), get(&path).map_err(WatchError::Gateway)?).await.map_err(WatchError::Gateway)?;
    if let Some(revision) = answer.body["revision"].as_u64().filter(|_| answer.status.is_success()) {
        return Ok(revision);
    }
    let path = format!("/v1/contexts/{}", encode(context));
    let answer = mcp.call(caller, get(&path).map_err(WatchError::Gateway)?).await.map_err(WatchError::Gateway)?;
    match answer.body["revision"].as_u64() {
        Some(revision) if answer.status.is_success() => Ok(revision),
        _ => Err(WatchError::Api { status: answer.status, body: answer.body }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uris_name_contexts_and_entries() {
        assert_eq!(Resource::parse("ctxmesh://contexts/plan").unwrap(), Resource::Context("plan".into()));
        let entry = Resource::parse("ctxmesh://contexts/plan/entries/findings/a").unwrap();
        assert_eq!(entry, Resource::Entry("plan".into(), "findings/a".into()));
        assert_eq!(entry.uri(), "ctxmesh://contexts/plan/entries/findings/a");
        for bad in ["file:///x", "ctxmesh://contexts/", "ctxmesh://contexts/a/b", "ctxmesh://contexts/a/entries/"] {
            assert!(Resource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_entry_changes_with_its_key_a_context_with_any() {
        let put = json!({"type": "context.updated", "key": "a"});
        let other = json!({"type": "context.updated", "key": "b"});
        let rollback = json!({"type": "context.rolled_back"});
        let entry = Resource::Entry("c".into(), "a".into());
        assert!(entry.changed_by(&put) && !entry.changed_by(&other) && entry.changed_by(&rollback));
        assert!(Resource::Context("c".into()).changed_by(&other));
        assert!(!Resource::Context("c".into()).changed_by(&json!({"type": "message"})));
    }
}
