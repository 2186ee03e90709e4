//! Entries: read, list, write with preconditions, patch, delete,
//! transactions, and the assembled document.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::error::Error;
use ctxmesh_core::ids::{EntryKey, parse_decimal, validate_prefix};
use ctxmesh_core::txn::{Compare, Op, OpResult, PatchBody, TxnRequest, TxnResponse};
use ctxmesh_core::{Entry, EntryWrite};
use ctxmesh_store::{HistoryQuery, ListQuery, ReadAt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{P, ReadAtParams, context_id, entry_key, page_size};
use crate::AppState;
use crate::authz::Scopes;
use crate::cursor::{self, EntryCursor};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{Caller, JsonBody, Q, parse_json, read_body, require_content_type};

/// A page of entries read at one revision.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EntryList {
    entries: Vec<Entry>,
    /// The context revision the page was read at.
    revision: u64,
    /// Pass as `cursor` for the next page (it reads the same revision).
    next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only keys starting with this string.
    #[serde(default)]
    prefix: String,
    /// Page size (default 100).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Read as of this revision.
    at: Option<u64>,
    /// Read as of this time (RFC 3339).
    as_of: Option<String>,
}

/// List entries by key prefix, optionally as of a revision or time.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/entries", operation_id = "listEntries", tag = "entries", params(ListParams),
    responses((status = 200, body = EntryList), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(params): Q<ListParams>,
) -> ApiResult<Json<EntryList>> {
    let ctx = context_id(&ctx)?;
    validate_prefix(&params.prefix)?;
    let limit = page_size(&state, params.limit, 100)?;
    let (at, after_key, latest) = match &params.cursor {
        Some(c) => {
            if params.at.is_some() || params.as_of.is_some() {
                return Err(ApiError::invalid_argument("cursor", "a cursor already pins the revision: drop at/as_of"));
            }
            let c: EntryCursor = cursor::decode(c)?;
            (ReadAt::Revision(c.r), Some(c.k), c.l)
        }
        None => {
            let at = ReadAtParams { at: params.at, as_of: params.as_of.clone() }.resolve()?;
            (at, None, at == ReadAt::Latest)
        }
    };
    let query = ListQuery { prefix: params.prefix.clone(), after_key, limit };
    let mut page = state.store().list_entries(&ctx, at, &query).await?;
    if latest && matches!(at, ReadAt::Revision(_)) {
        // Later pages of a latest listing hide entries expired by now too.
        let now = chrono::Utc::now();
        page.entries.retain(|e| !e.is_expired(now));
    }
    let next_cursor = match (page.more, page.entries.last()) {
        (true, Some(last)) => Some(cursor::encode(&EntryCursor { r: page.revision, k: last.key.clone(), l: latest })),
        _ => None,
    };
    // After the cursor: it continues from the last entry read, seen or not.
    page.entries.retain(|e| scopes.read.permits_entry(e));
    Ok(Json(EntryList { entries: page.entries, revision: page.revision, next_cursor }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadParams {
    /// Read as of this revision.
    at: Option<u64>,
    /// Read as of this time (RFC 3339).
    as_of: Option<String>,
    /// History only: versions before this revision.
    before: Option<u64>,
    /// History only: page size (default 100).
    limit: Option<usize>,
}

/// One version of an entry, for the history endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EntryHistory {
    key: String,
    versions: Vec<ctxmesh_store::EntryVersion>,
    /// Pass as `before` for older versions; null when there are none.
    next_before: Option<u64>,
}

/// Read one entry (ETag = its revision), or its history when the path ends
/// in `/history`. A key whose last segment is `history` is read by encoding
/// the last `/` as `%2F`.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/entries/{key}", operation_id = "getEntry", tag = "entries", params(ReadParams),
    responses((status = 200, body = Entry), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    scopes: Scopes,
    P((ctx, key)): P<(String, String)>,
    Q(params): Q<ReadParams>,
    uri: Uri,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    if let Some(base) = history_target(&uri, &key) {
        let key = entry_key(base)?;
        let limit = page_size(&state, params.limit, 100)?;
        let versions = state.store().entry_history(&ctx, &key, HistoryQuery { before: params.before, limit }).await?;
        let next_before = (versions.len() == limit).then(|| versions.last().map(|v| v.revision)).flatten();
        let versions = visible_versions(&scopes, key.as_str(), versions);
        if versions.is_empty() && next_before.is_none() && params.before.is_none() {
            // Nothing the caller may read: for it, no such entry.
            return Err(Error::not_found(format!("entry {:?}", key.as_str())).into());
        }
        return Ok(Json(EntryHistory { key: key.into_string(), versions, next_before }).into_response());
    }
    let key = entry_key(&key)?;
    let at = ReadAtParams { at: params.at, as_of: params.as_of }.resolve()?;
    let (entry, _) = state.store().get_entry(&ctx, &key, at).await?;
    // An entry the caller may not read is, for it, absent.
    match entry.filter(|e| scopes.read.permits_entry(e)) {
        Some(entry) => Ok(with_etag(StatusCode::OK, entry)),
        None => Err(ApiError::not_found(format!("entry {:?} not found in context {:?}", key.as_str(), ctx.as_str()))),
    }
}

/// The versions of one key the caller may read, newest first. A deletion
/// is decided as the version it removed (the next older one on the page);
/// without one, by the key alone.
fn visible_versions(
    scopes: &Scopes,
    key: &str,
    versions: Vec<ctxmesh_store::EntryVersion>,
) -> Vec<ctxmesh_store::EntryVersion> {
    if scopes.read.is_all() {
        return versions;
    }
    let visible: Vec<bool> = (0..versions.len())
        .map(|i| match versions[i..].iter().find_map(|v| v.entry.as_ref()) {
            Some(e) => scopes.read.permits_entry(e),
            None => scopes.read.permits(key, &[], false, None),
        })
        .collect();
    versions.into_iter().zip(visible).filter_map(|(v, ok)| ok.then_some(v)).collect()
}

/// The key whose history is asked for, when the raw path ends in `/history`.
fn history_target<'k>(uri: &Uri, key: &'k str) -> Option<&'k str> {
    if !uri.path().ends_with("/history") {
        return None;
    }
    key.strip_suffix("/history").filter(|base| !base.is_empty())
}

fn with_etag(status: StatusCode, entry: Entry) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", entry.revision)).expect("digits are a valid header");
    (status, [(header::ETAG, etag)], Json(entry)).into_response()
}

/// `X-Fencing-Token: <lock>=<token>`: the write is refused (`409 fenced`)
/// when a newer token of that lock of the context has been issued.
pub(crate) fn fence_header(headers: &HeaderMap) -> ApiResult<Option<ctxmesh_core::coord::Fence>> {
    match headers.get("x-fencing-token") {
        None => Ok(None),
        Some(v) => {
            let raw = v.to_str().map_err(|_| ApiError::invalid_argument("X-Fencing-Token", "not valid text"))?;
            Ok(Some(ctxmesh_core::coord::Fence::parse(raw)?))
        }
    }
}

/// A precondition from `If-Match` / `If-None-Match`.
enum Precondition {
    None,
    Revision(u64),
    Exists,
    Absent,
}

fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let get = |name: header::HeaderName| {
        headers.get(&name).map(|v| v.to_str().map_err(|_| ApiError::invalid_argument(name.as_str(), "not ASCII")))
    };
    match (get(header::IF_MATCH).transpose()?, get(header::IF_NONE_MATCH).transpose()?) {
        (Some(_), Some(_)) => Err(ApiError::invalid_argument("if-match", "send either If-Match or If-None-Match")),
        (Some("*"), None) => Ok(Precondition::Exists),
        (Some(tag), None) => {
            let quoted = tag.strip_prefix("W/").unwrap_or(tag).strip_prefix('"').and_then(|t| t.strip_suffix('"'));
            quoted.and_then(parse_decimal).map(Precondition::Revision).ok_or_else(|| {
                ApiError::invalid_argument("if-match", "If-Match must be an entry revision in quotes (\"12\") or *")
            })
        }
        (None, Some("*")) => Ok(Precondition::Absent),
        (None, Some(_)) => {
            Err(ApiError::invalid_argument("if-none-match", "only If-None-Match: * is supported on writes"))
        }
        (None, None) => Ok(Precondition::None),
    }
}

/// How a single-entry write ended.
enum Written {
    /// Applied (perhaps after the conflict policy settled a stale
    /// precondition: see `conflicts`).
    Applied(TxnResponse),
    /// Kept aside as a pending conflict (`manual`).
    Pending(ctxmesh_core::conflict::ConflictReport),
}

impl Written {
    /// The answer for an applied write made of `ok`, with `X-Conflict`
    /// saying how a stale precondition was settled; `202 Accepted` with
    /// the conflict for a write kept aside.
    fn respond(self, ok: impl FnOnce(TxnResponse) -> ApiResult<Response>) -> ApiResult<Response> {
        match self {
            Written::Pending(report) => Ok((StatusCode::ACCEPTED, Json(report)).into_response()),
            Written::Applied(response) => {
                let settled = response.conflicts.first().map(|c| {
                    let outcome = serde_json::to_value(c.outcome).ok().and_then(|v| v.as_str().map(str::to_owned));
                    format!("{}; id={}", outcome.unwrap_or_default(), c.conflict.clone().unwrap_or_default())
                });
                let mut answer = ok(response)?;
                if let Some(value) = settled.and_then(|s| HeaderValue::from_str(&s).ok()) {
                    answer.headers_mut().insert("x-conflict", value);
                }
                Ok(answer)
            }
        }
    }
}

/// Runs `op` on `key` guarded by the request's precondition (and the
/// body's `vclock`). A stale precondition meets the key's conflict policy:
/// applied (`X-Conflict` says how), kept aside (`202`), or refused (`412`
/// with the current entry).
async fn guarded_write(
    state: &AppState,
    caller: &Caller,
    scopes: &Scopes,
    ctx: &str,
    key: &EntryKey,
    headers: &HeaderMap,
    op: Op,
) -> ApiResult<Written> {
    use ctxmesh_core::conflict::Outcome;
    let ctx = context_id(ctx)?;
    // An existence precondition is not a version the writer read: when it
    // fails, no policy applies, and the failure branch reads the entry.
    let (compare, failure) = match precondition(headers)? {
        Precondition::None => (vec![], vec![]),
        Precondition::Revision(r) => (vec![Compare { revision: Some(r), ..Compare::on(key.clone()) }], vec![]),
        p => {
            let exists = matches!(p, Precondition::Exists);
            let read = Op::Get { key: Some(key.clone()), prefix: None };
            (vec![Compare { exists: Some(exists), ..Compare::on(key.clone()) }], vec![read])
        }
    };
    let txn = TxnRequest { compare, success: vec![op], failure, fence: fence_header(headers)?, scope: scopes.txn() };
    let mut response = state.store().txn(&ctx, txn, &caller.agent).await?;
    if response.succeeded {
        crate::mesh::after_write(state, &ctx, &caller.agent, response.revision).await;
        return Ok(Written::Applied(response));
    }
    if let Some(i) = response.conflicts.iter().position(|c| c.outcome == Outcome::Pending) {
        return Ok(Written::Pending(response.conflicts.swap_remove(i)));
    }
    let (current, reason, fields) = match response.conflicts.pop() {
        Some(report) => (report.current.map(|c| *c), report.reason, report.fields),
        None => match response.results.first() {
            Some(OpResult::Get { entries }) => (entries.first().cloned(), None, vec![]),
            _ => (None, None, vec![]),
        },
    };
    Err(Error::PreconditionFailed {
        key: key.as_str().to_owned(),
        current_revision: current.as_ref().map(|e| e.revision),
        current: current.map(Box::new),
        reason,
        fields,
    }
    .into())
}

fn written_entry(response: TxnResponse) -> ApiResult<Response> {
    match response.results.into_iter().next() {
        Some(OpResult::Put { entry }) | Some(OpResult::Patch { entry }) => {
            let status = if entry.version == 1 && entry.created_revision == entry.revision {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_etag(status, entry))
        }
        _ => Err(ApiError::internal("a write returned no entry")),
    }
}

/// Create or replace an entry. `If-Match: "<revision>"` makes it
/// conditional; `If-None-Match: *` creates only if absent.
#[utoipa::path(put, path = "/v1/contexts/{ctx}/entries/{key}", operation_id = "putEntry", tag = "entries", request_body = EntryWrite,
    responses((status = 202, body = ctxmesh_core::conflict::ConflictReport, description = "Kept aside as a pending conflict (policy `manual`)"), (status = 428, body = ErrorBody), (status = 200, body = Entry), (status = 201, body = Entry), (status = 412, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P((ctx, key)): P<(String, String)>,
    headers: HeaderMap,
    JsonBody(write): JsonBody<EntryWrite>,
) -> ApiResult<Response> {
    let key = entry_key(&key)?;
    let op = Op::Put { key: key.clone(), write };
    guarded_write(&state, &caller, &scopes, &ctx, &key, &headers, op).await?.respond(written_entry)
}

/// Patch an entry's value with `application/merge-patch+json` (RFC 7386)
/// or `application/json-patch+json` (RFC 6902); metadata is kept.
#[utoipa::path(patch, path = "/v1/contexts/{ctx}/entries/{key}", operation_id = "patchEntry", tag = "entries",
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 202, body = ctxmesh_core::conflict::ConflictReport, description = "Kept aside as a pending conflict (policy `manual`)"), (status = 428, body = ErrorBody), (status = 200, body = Entry), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P((ctx, key)): P<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let key = entry_key(&key)?;
    let headers = request.headers().clone();
    let media = require_content_type(&headers, &["application/merge-patch+json", "application/json-patch+json"])?;
    let body: Value = parse_json(&read_body(request).await?)?;
    let patch = if media == "application/merge-patch+json" {
        PatchBody::MergePatch(body)
    } else {
        if !body.is_array() {
            return Err(ApiError::new(ErrorCode::InvalidPatch, "a JSON Patch body must be an array of operations"));
        }
        PatchBody::JsonPatch(body)
    };
    let op = Op::Patch { key: key.clone(), patch };
    guarded_write(&state, &caller, &scopes, &ctx, &key, &headers, op).await?.respond(written_entry)
}

/// The answer to a deletion.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Deleted {
    key: String,
    /// The revision that deleted the entry.
    revision: u64,
}

/// Delete an entry (optionally conditional on `If-Match`).
#[utoipa::path(delete, path = "/v1/contexts/{ctx}/entries/{key}", operation_id = "deleteEntry", tag = "entries",
    responses((status = 202, body = ctxmesh_core::conflict::ConflictReport, description = "Kept aside as a pending conflict (policy `manual`)"), (status = 428, body = ErrorBody), (status = 200, body = Deleted), (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P((ctx, key)): P<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = entry_key(&key)?;
    let written =
        guarded_write(&state, &caller, &scopes, &ctx, &key, &headers, Op::Delete { key: key.clone() }).await?;
    written.respond(|response| match response.results.first() {
        Some(OpResult::Delete { deleted: true, .. }) => {
            Ok(Json(Deleted { key: key.as_str().to_owned(), revision: response.revision }).into_response())
        }
        _ => Err(ApiError::not_found(format!("entry {:?} not found", key.as_str()))),
    })
}

/// Run a transaction: comparisons, then `success` or `failure` operations,
/// atomically. A failed comparison is not an error (`succeeded: false`).
#[utoipa::path(post, path = "/v1/contexts/{ctx}/txn", operation_id = "runTransaction", tag = "entries", request_body = TxnRequest,
    responses((status = 428, body = ErrorBody), (status = 200, body = TxnResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn txn(
    State(state): State<AppState>,
    caller: Caller,
    access: crate::authz::TxnAccess,
    P(ctx): P<String>,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(mut txn): JsonBody<TxnRequest>,
) -> ApiResult<Json<TxnResponse>> {
    let ctx = context_id(&ctx)?;
    if let Some(fence) = fence_header(&headers)? {
        txn.fence = Some(fence);
    }
    // `write` when an operation writes, else `read` (the guard checked,
    // before the body was read, that the caller may do one of them).
    let resource = format!("POST {}", uri.path());
    let (scopes, needed) = crate::authz::authorize_txn(&state, &caller, &ctx, &access, &txn, &resource)?;
    txn.scope = scopes.txn();
    let writes = txn.writes();
    let response = state
        .store()
        .txn(&ctx, txn, &caller.agent)
        .await
        .map_err(|e| crate::authz::record_refusal(&state, &caller, &ctx, needed, &resource, e.into()))?;
    if response.succeeded && writes {
        crate::mesh::after_write(&state, &ctx, &caller.agent, response.revision).await;
    }
    Ok(Json(response))
}

/// The entries assembled into one JSON document.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Document {
    /// The revision the document was read at.
    revision: u64,
    /// Keys split on `/` into nested objects.
    #[schema(value_type = Object)]
    document: Value,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DocumentParams {
    /// Only keys starting with this string.
    #[serde(default)]
    prefix: String,
    /// Read as of this revision.
    at: Option<u64>,
    /// Read as of this time (RFC 3339).
    as_of: Option<String>,
}

/// The context's entries as one nested JSON document: `a/b` becomes
/// `{"a": {"b": value}}`. When a key is also the parent of other keys, its
/// own value sits under `"_value"` unless it is an object (then the
/// children are merged into it).
#[utoipa::path(get, path = "/v1/contexts/{ctx}/document", operation_id = "getDocument", tag = "entries", params(DocumentParams),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn document(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(params): Q<DocumentParams>,
) -> ApiResult<Json<Document>> {
    let ctx = context_id(&ctx)?;
    validate_prefix(&params.prefix)?;
    let at = ReadAtParams { at: params.at, as_of: params.as_of }.resolve()?;
    let limit = usize::try_from(state.config().limits.max_entries_per_context).unwrap_or(usize::MAX);
    let page =
        state.store().list_entries(&ctx, at, &ListQuery { prefix: params.prefix, after_key: None, limit }).await?;
    let mut doc = Map::new();
    for entry in page.entries.into_iter().filter(|e| scopes.read.permits_entry(e)) {
        insert_nested(&mut doc, &entry.key, entry.value);
    }
    Ok(Json(Document { revision: page.revision, document: Value::Object(doc) }))
}

fn insert_nested(doc: &mut Map<String, Value>, key: &str, value: Value) {
    let mut node = doc;
    let mut segments = key.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            match node.get_mut(segment) {
                // Children came first (a key sorts before its children, so
                // this only happens for values set by a child): keep both.
                Some(Value::Object(children)) if !value.is_object() => {
                    children.insert("_value".into(), value);
                }
                Some(Value::Object(children)) => {
                    if let Value::Object(own) = value {
                        for (k, v) in own {
                            children.entry(k).or_insert(v);
                        }
                    }
                }
                _ => {
                    node.insert(segment.to_owned(), value);
                }
            }
            return;
        }
        let child = node.entry(segment.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            let own = std::mem::replace(child, Value::Object(Map::new()));
            if let Value::Object(m) = child {
                m.insert("_value".into(), own);
            }
        }
        let Value::Object(next) = child else { unreachable!("made an object above") };
        node = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_document() {
        let mut doc = Map::new();
        insert_nested(&mut doc, "a", json!(1));
        insert_nested(&mut doc, "a/b", json!(2));
        insert_nested(&mut doc, "c/d/e", json!("x"));
        insert_nested(&mut doc, "o", json!({"k": 1}));
        insert_nested(&mut doc, "o/p", json!(3));
        assert_eq!(
            Value::Object(doc),
            json!({"a": {"_value": 1, "b": 2}, "c": {"d": {"e": "x"}}, "o": {"k": 1, "p": 3}})
        );
    }
}
