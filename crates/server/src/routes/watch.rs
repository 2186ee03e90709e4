//! Live delivery: the SSE watch of a context, and priority messages.

use std::fmt::Write as _;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::Priority;
use ctxmesh_core::access::EntryScope;
use ctxmesh_core::event::types;
use ctxmesh_core::ids::{ContextId, parse_decimal, validate_prefix};
use ctxmesh_store::NewEvent;
use ctxmesh_store::coord as req;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{P, check_revision, context_id};
use crate::AppState;
use crate::authz::Scopes;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};
use crate::watch::{Order, Source, WatchFilter, WatchItem, WatchSpec, watch};

/// Filters shared by the event history and the watch streams.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilterParams {
    /// Comma-separated event types to keep, e.g. `context.updated,message`.
    #[param(pattern = "^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$")]
    pub(crate) types: Option<String>,
    /// Only events whose key starts with this (events without a key pass).
    pub(crate) prefix: Option<String>,
    /// Only events of at least this priority: low, normal, high, critical.
    pub(crate) min_priority: Option<Priority>,
}

impl FilterParams {
    pub(crate) fn filter(&self) -> Result<WatchFilter, ApiError> {
        let types = match &self.types {
            None => None,
            Some(t) => {
                let list: Vec<String> = t.split(',').map(str::to_owned).collect();
                let bad =
                    |s: &String| s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if list.iter().any(bad) {
                    return Err(ApiError::invalid_argument("types", "types is a comma-separated list of event types"));
                }
                Some(list)
            }
        };
        if let Some(p) = &self.prefix {
            validate_prefix(p)?;
        }
        Ok(WatchFilter { types, prefix: self.prefix.clone(), min_priority: self.min_priority, scope: None })
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WatchParams {
    /// Deliver events of revisions after this one (default: from now on).
    after: Option<u64>,
    /// `revision` (default) or `priority`: see docs/api.md.
    #[serde(default)]
    order: Order,
}

/// Server-Sent Events of a context: each event's SSE `id` is its revision,
/// `event` its type, `data` its JSON. `Last-Event-ID` (or `after`)
/// resumes; `progress` events are bookmarks; `compacted` ends a watch whose
/// position is gone.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/watch", operation_id = "watchContext", tag = "events", params(WatchParams, FilterParams),
    responses((status = 200, content_type = "text/event-stream"), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody)))]
pub(crate) async fn sse(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(params): Q<WatchParams>,
    Q(filter): Q<FilterParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    let filter = filter.filter()?;
    let after = resume_point(&headers, params.after)?;
    let spec = start_spec(&state, &caller, ctx, scopes.read, after, filter, params.order).await?;
    let guard = state.open_stream(&caller)?;
    Ok(sse_response(&state, spec, guard))
}

/// `Last-Event-ID`, when the client sent one.
/// Where a stream resumes: `Last-Event-ID` when sent, else `after`; both
/// are checked either way.
pub(crate) fn resume_point(headers: &HeaderMap, after: Option<u64>) -> ApiResult<Option<u64>> {
    let after = after.map(|a| check_revision("after", a)).transpose()?;
    let last = last_event_id(headers)?.map(|a| check_revision("last-event-id", a)).transpose()?;
    Ok(last.or(after))
}

fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => Ok(Some(v.to_str().ok().and_then(parse_decimal).ok_or_else(|| {
            ApiError::invalid_argument("last-event-id", "Last-Event-ID must be a revision or sequence number")
        })?)),
    }
}

/// The SSE response of a watch; `guard` (the stream's place in its
/// agent's limit) lives as long as the stream.
pub(crate) fn sse_response(state: &AppState, spec: WatchSpec, guard: Option<crate::limits::StreamGuard>) -> Response {
    let order = spec.order;
    let source = spec.source.clone();
    let stream = watch(state.store_arc(), spec, state.closing()).map(move |item| {
        let _place = &guard;
        Ok::<Bytes, std::convert::Infallible>(sse_frame(&item, &source, order))
    });
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("static"));
    h.insert(header::CACHE_CONTROL, "no-cache".parse().expect("static"));
    h.insert("x-accel-buffering", "no".parse().expect("static"));
    response
}

/// Checks the context and the position, and builds the watch spec of
/// `caller`, who may read the entries of `read`. With no position given,
/// the watch starts at the current revision.
pub(crate) async fn start_spec(
    state: &AppState,
    caller: &Caller,
    context: ContextId,
    read: EntryScope,
    after: Option<u64>,
    mut filter: WatchFilter,
    order: Order,
) -> ApiResult<WatchSpec> {
    if let Some(after) = after {
        check_revision("after", after)?;
    }
    let info = state.store().get_context(&context).await?;
    let after = after.unwrap_or(info.revision);
    if after + 1 < info.compacted_revision {
        return Err(ctxmesh_core::Error::Compacted { requested: after, compacted: info.compacted_revision }.into());
    }
    filter.scope = (!read.is_all()).then_some(read);
    let access = crate::authz::stream_access(state, caller, Some(context.clone()));
    Ok(WatchSpec {
        source: Source::Context(context),
        after,
        filter,
        order,
        progress_interval: state.config().progress_interval,
        access,
        recheck_interval: state.config().access_recheck_interval,
    })
}

/// One watch item as SSE bytes. All events of an item go out in one write.
/// The SSE `id` is the position: a revision, or a stream's sequence number.
fn sse_frame(item: &WatchItem, source: &Source, order: Order) -> Bytes {
    let mut out = String::new();
    let name = source.name();
    let position = |p: u64| match source {
        Source::Context(_) => json!({"type": "progress", "context": name, "revision": p}),
        _ => json!({"type": "progress", "stream": name, "seq": p}),
    };
    match item {
        WatchItem::Events { events, .. } => {
            for d in events {
                let e = d.event();
                if order == Order::Revision {
                    let _ = writeln!(out, "id: {}", source.position(e));
                }
                let _ = write!(out, "event: {}\ndata: {}\n\n", e.kind, d.json());
            }
        }
        WatchItem::Progress(p) => {
            let _ = write!(out, "id: {p}\nevent: progress\ndata: {}\n\n", position(*p));
        }
        WatchItem::KeepAlive => out.push_str(": keep-alive\n\n"),
        WatchItem::Compacted { requested, compacted } => {
            let data =
                json!({"type": "compacted", "context": name, "requested": requested, "compacted_revision": compacted});
            let _ = write!(out, "event: compacted\ndata: {data}\n\n");
        }
        WatchItem::Deleted(d) => {
            let _ = write!(out, "id: {}\nevent: {}\ndata: {}\n\n", d.event().revision, d.event().kind, d.json());
        }
        WatchItem::Failed(e) => {
            let data = json!({"type": "error", "error": {"code": e.code, "message": e.message}});
            let _ = write!(out, "event: error\ndata: {data}\n\n");
        }
    }
    Bytes::from(out)
}

/// `POST /v1/messages`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageRequest {
    /// The context whose subscribers receive the message (its log).
    context: Option<ContextId>,
    /// Agents whose inboxes receive the message (each must be registered).
    #[serde(default)]
    agents: Vec<String>,
    /// low, normal (default), high or critical.
    #[serde(default)]
    priority: Priority,
    /// A free topic, e.g. `review-requested`.
    topic: Option<String>,
    /// The message itself: any JSON.
    body: Value,
}

/// Send a priority message to a context's subscribers, to agents, or both.
/// With a context it is appended to the context's event log as a `message`
/// event with a revision of its own; with `agents` it also goes to each
/// one's inbox. At least one of the two is required.
#[utoipa::path(post, path = "/v1/messages", operation_id = "sendMessage", tag = "events", request_body = MessageRequest,
    responses((status = 201, body = ctxmesh_core::Event), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn message(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MessageRequest>,
) -> ApiResult<impl IntoResponse> {
    if req.topic.as_ref().is_some_and(|t| !ctxmesh_core::ids::chars_within(t, 1, 128)) {
        return Err(ApiError::invalid_argument("topic", "a topic has 1 to 128 characters"));
    }
    let size = serde_json::to_vec(&req.body).map(|b| b.len() as u64).unwrap_or(u64::MAX);
    let limit = state.config().limits.max_value_bytes;
    if size > limit {
        return Err(ctxmesh_core::Error::TooLarge { what: "message body".into(), limit, actual: size }.into());
    }
    if let Some(context) = &req.context {
        crate::authz::authorize(&state, &caller, context, ctxmesh_core::access::Permission::Write, "POST /v1/messages")
            .await?;
    }
    let data = json!({ "topic": req.topic, "body": req.body });
    if !req.agents.is_empty() {
        let op =
            req::SendMessage { ctx: req.context, agents: req.agents, from: caller.agent, priority: req.priority, data };
        return Ok((StatusCode::CREATED, Json(state.store().coord(op).await?)));
    }
    let Some(context) = req.context else {
        return Err(ApiError::invalid_argument("context", "name a context, agents, or both"));
    };
    let event = NewEvent { kind: types::MESSAGE.to_owned(), key: None, priority: Some(req.priority), data: Some(data) };
    let logged = state.store().append_event(&context, event, &caller.agent).await?;
    Ok((StatusCode::CREATED, Json(logged)))
}
