//! `/v1/agents`: the registry, heartbeats, each agent's inbox and the
//! agents feed (lifecycle events), as pages and as SSE watches.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::Event;
use ctxmesh_core::agent::{Agent, AgentPatch, AgentSpec, AgentStatus, parse_agent_id};
use ctxmesh_store::coord as req;
use ctxmesh_store::coord::AgentQuery;
use serde::{Deserialize, Serialize};

use super::watch::{FilterParams, resume_point, sse_response};
use super::{P, check_revision, page_size};
use crate::AppState;
use crate::auth::{hash_token, new_token};
use crate::cursor;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};
use crate::watch::{Order, Source, WatchFilter, WatchSpec};

fn agent_id(raw: &str) -> ApiResult<String> {
    Ok(parse_agent_id(raw)?)
}

/// An agent with its token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AgentWithToken {
    #[serde(flatten)]
    agent: Agent,
    /// The agent's bearer token. Only its hash is kept: store it now.
    token: String,
}

/// Issues a new token for `agent`, replacing any other.
pub(crate) async fn issue_token(state: &AppState, agent: &str) -> ApiResult<String> {
    let token = new_token();
    let op = req::SetToken { agent: agent.to_owned(), hash: hash_token(&token) };
    state.store().coord(op).await?;
    Ok(token)
}

/// Register an agent (admin only). The answer is `201` with the agent,
/// its `Location` and, this once, its `token`; a taken id is `409
/// already_exists`.
#[utoipa::path(post, path = "/v1/agents", operation_id = "registerAgent", tag = "agents", request_body = AgentSpec,
    responses((status = 201, body = AgentWithToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<AgentSpec>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let agent = state.store().coord(req::Register(spec)).await?;
    let token = issue_token(&state, &agent.id).await?;
    let location = format!("/v1/agents/{}", agent.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(AgentWithToken { agent, token })).into_response())
}

/// Who the caller is, as the server authenticated it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Identity {
    /// The agent the caller acts as: an agent token's own agent; for the
    /// admin token (or with auth off), the agent named by `X-Agent-Id`,
    /// else `admin` (`anonymous` with auth off).
    agent: String,
    /// Whether the caller holds the admin token (always, with auth off).
    admin: bool,
}

/// Who am I: the agent and rights of the caller's credentials (so that a
/// client holding only an agent token learns its agent id).
#[utoipa::path(get, path = "/v1/whoami", operation_id = "whoami", tag = "agents",
    responses((status = 200, body = Identity), (status = 401, body = ErrorBody)))]
pub(crate) async fn whoami(caller: Caller) -> Json<Identity> {
    Json(Identity { agent: caller.agent, admin: caller.admin })
}

/// The answer to a token rotation.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NewToken {
    agent: String,
    /// The new bearer token; the old one no longer works.
    token: String,
}

/// Rotate an agent's token (the agent itself or an admin): the old token
/// stops working at once.
#[utoipa::path(post, path = "/v1/agents/{id}/token", operation_id = "rotateToken", tag = "agents",
    responses((status = 200, body = NewToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn rotate_token(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<NewToken>> {
    let id = agent_id(&id)?;
    caller.require_self_or_admin(&id)?;
    let token = issue_token(&state, &id).await?;
    Ok(Json(NewToken { agent: id, token }))
}

/// Revoke an agent's token (the agent itself or an admin); a new one is
/// issued by rotation.
#[utoipa::path(delete, path = "/v1/agents/{id}/token", operation_id = "revokeToken", tag = "agents",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<StatusCode> {
    let id = agent_id(&id)?;
    caller.require_self_or_admin(&id)?;
    state.store().coord(req::RevokeTokens { agent: id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AgentListParams {
    /// Only agents in this status: active, inactive, disconnected.
    status: Option<AgentStatus>,
    /// Only agents with this capability: a free capability string, or
    /// can_read, can_write, can_share.
    capability: Option<String>,
    /// Page size (default 100).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of agents.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AgentList {
    agents: Vec<Agent>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

/// List agents by id.
#[utoipa::path(get, path = "/v1/agents", operation_id = "listAgents", tag = "agents", params(AgentListParams),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>, Q(p): Q<AgentListParams>) -> ApiResult<Json<AgentList>> {
    let limit = page_size(&state, p.limit, 100)?;
    let after = p.cursor.as_deref().map(cursor::decode).transpose()?;
    let query = AgentQuery { status: p.status, capability: p.capability, after, limit };
    let (agents, more) = state.store().coord(req::ListAgents(query)).await?;
    let next_cursor = more.then(|| agents.last().map(|a| cursor::encode(&a.id))).flatten();
    Ok(Json(AgentList { agents, next_cursor }))
}

/// Read an agent.
#[utoipa::path(get, path = "/v1/agents/{id}", operation_id = "getAgent", tag = "agents",
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(State(state): State<AppState>, P(id): P<String>) -> ApiResult<Json<Agent>> {
    let id = agent_id(&id)?;
    Ok(Json(state.store().coord(req::GetAgent { id }).await?))
}

/// Update an agent: the fields given replace the stored ones; `status`
/// may be set to `active` or `inactive`.
#[utoipa::path(patch, path = "/v1/agents/{id}", operation_id = "updateAgent", tag = "agents", request_body = AgentPatch,
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
    JsonBody(patch): JsonBody<AgentPatch>,
) -> ApiResult<Json<Agent>> {
    let id = agent_id(&id)?;
    caller.require_self_or_admin(&id)?;
    if patch.trust.is_some() {
        // An agent does not raise its own trust.
        caller.require_admin()?;
    }
    Ok(Json(state.store().coord(req::UpdateAgent { id, patch }).await?))
}

/// Unregister an agent; the locks it held are released.
#[utoipa::path(delete, path = "/v1/agents/{id}", operation_id = "deleteAgent", tag = "agents",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(State(state): State<AppState>, caller: Caller, P(id): P<String>) -> ApiResult<StatusCode> {
    let id = agent_id(&id)?;
    caller.require_self_or_admin(&id)?;
    state.store().coord(req::Unregister { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Renew the agent's lease; a disconnected agent becomes active again.
#[utoipa::path(post, path = "/v1/agents/{id}/heartbeat", operation_id = "heartbeat", tag = "agents",
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Agent>> {
    let id = agent_id(&id)?;
    caller.require_self_or_admin(&id)?;
    Ok(Json(state.store().coord(req::Heartbeat { id }).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamParams {
    /// Items after this sequence number (default 0: from the start).
    after: Option<u64>,
    /// Most items (default 100).
    limit: Option<usize>,
}

/// A page of a stream (an inbox, the agents feed).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StreamPage {
    /// The items, each with its `seq`; an inbox item also names the
    /// context and revision it came from.
    events: Vec<Event>,
    /// Pass as `after` to read on; equals `after` when nothing is new.
    next_after: u64,
}

fn stream_page(after: u64, events: Vec<Event>) -> StreamPage {
    let next_after = events.last().and_then(|e| e.seq).unwrap_or(after);
    StreamPage { events, next_after }
}

/// Read an agent's inbox: everything directed at it (handoffs, tasks,
/// messages, broadcasts), numbered by its own sequence.
#[utoipa::path(get, path = "/v1/agents/{id}/inbox", operation_id = "getInbox", tag = "agents", params(StreamParams),
    responses((status = 200, body = StreamPage), (status = 404, body = ErrorBody)))]
pub(crate) async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
    Q(p): Q<StreamParams>,
) -> ApiResult<Json<StreamPage>> {
    let agent = agent_id(&id)?;
    caller.require_self_or_admin(&agent)?;
    let (after, limit) = (check_revision("after", p.after.unwrap_or(0))?, page_size(&state, p.limit, 100)?);
    let events = state.store().coord(req::ReadInbox { agent, after, limit }).await?;
    Ok(Json(stream_page(after, events)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamWatchParams {
    /// Deliver items after this sequence number (default: from now on).
    after: Option<u64>,
}

/// The watch of an agent's inbox, for SSE and the WebSocket: with no
/// position, from the inbox's current end. Only the agent or an admin.
pub(crate) async fn inbox_spec(
    state: &AppState,
    caller: &Caller,
    agent: &str,
    after: Option<u64>,
    filter: WatchFilter,
) -> ApiResult<WatchSpec> {
    let agent = agent_id(agent)?;
    caller.require_self_or_admin(&agent)?;
    // Also checks that the agent exists.
    let head = state.store().coord(req::InboxHead { agent: agent.clone() }).await?;
    let after = after.unwrap_or(head);
    Ok(WatchSpec {
        source: Source::Inbox(agent),
        after,
        filter,
        order: Order::Revision,
        progress_interval: state.config().progress_interval,
        access: crate::authz::stream_access(state, caller, None),
        recheck_interval: state.config().access_recheck_interval,
    })
}

/// Server-Sent Events of an agent's inbox: each item's SSE `id` is its
/// sequence number; `Last-Event-ID` (or `after`) resumes without gap or
/// repeat.
#[utoipa::path(get, path = "/v1/agents/{id}/inbox/watch", operation_id = "watchInbox", tag = "agents", params(StreamWatchParams, FilterParams),
    responses((status = 200, content_type = "text/event-stream"), (status = 404, body = ErrorBody)))]
pub(crate) async fn inbox_watch(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
    Q(p): Q<StreamWatchParams>,
    Q(filter): Q<FilterParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = resume_point(&headers, p.after)?;
    let spec = inbox_spec(&state, &caller, &id, after, filter.filter()?).await?;
    let guard = state.open_stream(&caller)?;
    Ok(sse_response(&state, spec, guard))
}

/// Read the agents feed: `agent.registered`, `agent.disconnected`,
/// `agent.unregistered`, numbered by its own sequence.
#[utoipa::path(get, path = "/v1/agents/events", operation_id = "listAgentEvents", tag = "agents", params(StreamParams),
    responses((status = 200, body = StreamPage)))]
pub(crate) async fn feed(State(state): State<AppState>, Q(p): Q<StreamParams>) -> ApiResult<Json<StreamPage>> {
    let (after, limit) = (check_revision("after", p.after.unwrap_or(0))?, page_size(&state, p.limit, 100)?);
    let events = state.store().coord(req::ReadAgentsFeed { after, limit }).await?;
    Ok(Json(stream_page(after, events)))
}

/// Server-Sent Events of the agents feed (from `after`, default 0).
#[utoipa::path(get, path = "/v1/agents/watch", operation_id = "watchAgents", tag = "agents", params(StreamWatchParams),
    responses((status = 200, content_type = "text/event-stream")))]
pub(crate) async fn feed_watch(
    State(state): State<AppState>,
    caller: Caller,
    Q(p): Q<StreamWatchParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let after = resume_point(&headers, p.after)?.unwrap_or(0);
    let spec = WatchSpec {
        source: Source::Agents,
        after,
        filter: WatchFilter::default(),
        order: Order::Revision,
        progress_interval: state.config().progress_interval,
        access: crate::authz::stream_access(&state, &caller, None),
        recheck_interval: state.config().access_recheck_interval,
    };
    let guard = state.open_stream(&caller)?;
    Ok(sse_response(&state, spec, guard))
}
