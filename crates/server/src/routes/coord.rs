//! Locks of a context (with fencing tokens and server-side waiting),
//! handoffs and tasks.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::access::Permission;
use ctxmesh_core::coord::{Handoff, HandoffAction, HandoffRequest, Lock, Task, TaskRequest};
use ctxmesh_core::event::types;
use ctxmesh_store::coord as req;
use ctxmesh_store::coord::CoordQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{P, context_id, page_size};
use crate::AppState;
use crate::authz::authorize;
use crate::cursor;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{Caller, JsonBody, MaybeJson, Q};

/// Longest server-side wait for a lock.
const MAX_WAIT_MS: u64 = 60_000;

// ---- locks ----

/// `POST /v1/contexts/{ctx}/locks/{name}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcquireRequest {
    /// How long the lock is held unless refreshed (1 ms to one day).
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
    /// How long the server waits for a held lock before answering
    /// `acquired: false` (default 0: answer at once; at most 60000).
    #[serde(default)]
    #[schema(maximum = 60_000)]
    wait_ms: u64,
}

/// A lock as answered to an acquisition.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LockAnswer {
    /// Whether this request holds the lock now.
    acquired: bool,
    /// The lock: holder, lock id, fencing token, expiry.
    #[serde(flatten)]
    lock: Lock,
}

impl From<req::Acquisition> for LockAnswer {
    fn from(req::Acquisition { acquired, lock }: req::Acquisition) -> Self {
        LockAnswer { acquired, lock }
    }
}

/// Acquire a lock. The caller (`X-Agent-Id`) must be a registered agent.
/// When another agent holds it, the server retries as the lock is released
/// or expires, for up to `wait_ms`; the answer says whether the caller got
/// it (`acquired`) and, either way, who holds it. Each acquisition takes a
/// new fencing token; send it with writes as `X-Fencing-Token: name=token`.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/locks/{name}", operation_id = "acquireLock", tag = "locks", request_body = AcquireRequest,
    responses((status = 200, body = LockAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn acquire(
    State(state): State<AppState>,
    caller: Caller,
    P((ctx, name)): P<(String, String)>,
    JsonBody(req): JsonBody<AcquireRequest>,
) -> ApiResult<Json<LockAnswer>> {
    let ctx = context_id(&ctx)?;
    if req.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid_argument("wait_ms", format!("wait_ms must be at most {MAX_WAIT_MS}")));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms);
    // Subscribed before the first try, so no release between a failed try
    // and the wait goes unseen.
    let mut events = state.store().subscribe(&ctx);
    loop {
        let op = req::Acquire { ctx: ctx.clone(), name: name.clone(), agent: caller.agent.clone(), ttl_ms: req.ttl_ms };
        let answer = LockAnswer::from(state.store().coord(op).await?);
        let now = tokio::time::Instant::now();
        if answer.acquired || now >= deadline {
            return Ok(Json(answer));
        }
        // Wake at the release or expiry event of this lock, at its expiry
        // time (the sweeper may be later), or at the deadline.
        let expiry = answer.lock.expires_at.map(|t| {
            let left = (t - chrono::Utc::now()).to_std().unwrap_or_default();
            now + left + Duration::from_millis(1)
        });
        let wake = expiry.map_or(deadline, |e| e.min(deadline));
        let released = async {
            loop {
                match events.recv().await {
                    Ok(c) => {
                        let freed = c.events.iter().any(|e| {
                            matches!(e.event.kind.as_str(), types::LOCK_RELEASED | types::LOCK_EXPIRED)
                                && e.event.data.as_ref().is_some_and(|d| d["name"] == name.as_str())
                        });
                        if freed || c.deleted {
                            return;
                        }
                    }
                    // Missed notifications: just try again.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        tokio::select! {
            () = released => {}
            () = tokio::time::sleep_until(wake) => {}
            () = state.closing() => return Ok(Json(answer)),
        }
    }
}

/// Read a lock (a lock never taken is free with token 0).
#[utoipa::path(get, path = "/v1/contexts/{ctx}/locks/{name}", operation_id = "getLock", tag = "locks",
    responses((status = 200, body = Lock), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(State(state): State<AppState>, P((ctx, name)): P<(String, String)>) -> ApiResult<Json<Lock>> {
    let ctx = context_id(&ctx)?;
    Ok(Json(state.store().coord(req::GetLock { ctx, name }).await?))
}

/// The locks of a context.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LockList {
    /// Every lock ever taken in the context, by name; free ones have no holder.
    locks: Vec<Lock>,
}

/// List a context's locks.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/locks", operation_id = "listLocks", tag = "locks",
    responses((status = 200, body = LockList), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>, P(ctx): P<String>) -> ApiResult<Json<LockList>> {
    let ctx = context_id(&ctx)?;
    let locks = state.store().coord(req::ListLocks { ctx }).await?;
    Ok(Json(LockList { locks }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReleaseParams {
    /// The acquisition to release (`lock_id`); default: the caller's.
    lock_id: Option<String>,
}

/// Release a lock (holder only: else `409 not_holder`).
#[utoipa::path(delete, path = "/v1/contexts/{ctx}/locks/{name}", operation_id = "releaseLock", tag = "locks", params(ReleaseParams),
    responses((status = 200, body = Lock), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    P((ctx, name)): P<(String, String)>,
    Q(p): Q<ReleaseParams>,
) -> ApiResult<Json<Lock>> {
    let ctx = context_id(&ctx)?;
    let op = req::Release { ctx, name, agent: caller.agent, lock_id: p.lock_id };
    Ok(Json(state.store().coord(op).await?))
}

/// `POST /v1/contexts/{ctx}/locks/{name}/refresh`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The new TTL, from now (1 ms to one day).
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
    /// The acquisition to extend; default: the caller's.
    lock_id: Option<String>,
}

/// Extend a lock (holder only). The fencing token stays the same.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/locks/{name}/refresh", operation_id = "refreshLock", tag = "locks", request_body = RefreshRequest,
    responses((status = 200, body = Lock), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    P((ctx, name)): P<(String, String)>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> ApiResult<Json<Lock>> {
    let ctx = context_id(&ctx)?;
    let op = req::Refresh { ctx, name, agent: caller.agent, lock_id: req.lock_id, ttl_ms: req.ttl_ms };
    Ok(Json(state.store().coord(op).await?))
}

// ---- handoffs ----

/// Hand work to another agent. The caller is the source; the target must
/// be registered. The handoff goes to the context's log and the target's
/// inbox.
#[utoipa::path(post, path = "/v1/handoffs", operation_id = "requestHandoff", tag = "handoffs", request_body = HandoffRequest,
    responses((status = 201, body = Handoff), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn request_handoff(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<HandoffRequest>,
) -> ApiResult<Response> {
    let ctx = context_id(&request.context)?;
    authorize(&state, &caller, &ctx, Permission::Read, "POST /v1/handoffs").await?;
    let op = req::RequestHandoff { source: caller.agent, request };
    let h = state.store().coord(op).await?;
    let location = format!("/v1/handoffs/{}", h.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(h)).into_response())
}

/// Read a handoff.
#[utoipa::path(get, path = "/v1/handoffs/{id}", operation_id = "getHandoff", tag = "handoffs",
    responses((status = 200, body = Handoff), (status = 404, body = ErrorBody)))]
pub(crate) async fn read_handoff(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Handoff>> {
    let h = state.store().coord(req::GetHandoff { id }).await?;
    if caller.agent != h.source && caller.agent != h.target {
        authorize(&state, &caller, &context_id(&h.context)?, Permission::Read, "GET /v1/handoffs/{id}").await?;
    }
    Ok(Json(h))
}

/// A non-admin lists only what is directed at it, or what is in a
/// context it may read.
async fn check_listing(state: &AppState, caller: &Caller, q: &CoordQuery) -> ApiResult<()> {
    if caller.admin || q.agent.as_deref() == Some(caller.agent.as_str()) {
        return Ok(());
    }
    match &q.context {
        Some(ctx) => {
            authorize(state, caller, &context_id(ctx)?, Permission::Read, "list handoffs or tasks").await.map(drop)
        }
        None => Err(ApiError::new(ErrorCode::Forbidden, "list by agent=<yourself> or by a context you may read")),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CoordListParams {
    /// Only those of this context.
    context: Option<String>,
    /// Only those directed at this agent (handoff target, task assignee).
    agent: Option<String>,
    /// Only those with this status (`state` is read as well, its former
    /// name).
    #[serde(alias = "state")]
    status: Option<String>,
    /// Page size (default 100).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl CoordListParams {
    fn query(self, state: &AppState) -> ApiResult<CoordQuery> {
        Ok(CoordQuery {
            context: self.context,
            agent: self.agent,
            state: self.status,
            after: self.cursor.as_deref().map(cursor::decode).transpose()?,
            limit: page_size(state, self.limit, 100)?,
        })
    }
}

/// A page of handoffs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HandoffList {
    handoffs: Vec<Handoff>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

/// List handoffs by id.
#[utoipa::path(get, path = "/v1/handoffs", operation_id = "listHandoffs", tag = "handoffs", params(CoordListParams),
    responses((status = 200, body = HandoffList), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_handoffs(
    State(state): State<AppState>,
    caller: Caller,
    Q(p): Q<CoordListParams>,
) -> ApiResult<Json<HandoffList>> {
    let query = p.query(&state)?;
    check_listing(&state, &caller, &query).await?;
    let (handoffs, more) = state.store().coord(req::ListHandoffs(query)).await?;
    let next_cursor = more.then(|| handoffs.last().map(|h| cursor::encode(&h.id))).flatten();
    Ok(Json(HandoffList { handoffs, next_cursor }))
}

/// The body of accept, reject and complete (all optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HandoffStep {
    /// Why (reject), or what came of it (complete): any JSON.
    #[serde(default)]
    outcome: Option<Value>,
}

/// What to do with a handoff.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepAction {
    /// Take it (the target).
    Accept,
    /// Refuse it (the target).
    Reject,
    /// Finish it (the agent that accepted it).
    Complete,
}

/// Accept or reject a requested handoff (its target only), or complete an
/// accepted one (the agent that accepted it). Anyone else is `403
/// forbidden`; a step the handoff's state does not allow is `409
/// invalid_transition` and changes nothing.
#[utoipa::path(post, path = "/v1/handoffs/{id}/{action}", operation_id = "stepHandoff", tag = "handoffs", request_body = HandoffStep,
    params(("id" = String, Path, description = "The handoff"),
        ("action" = StepAction, Path, description = "accept, reject or complete")),
    responses((status = 200, body = Handoff), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn step(
    State(state): State<AppState>,
    caller: Caller,
    P((id, action)): P<(String, String)>,
    MaybeJson(body): MaybeJson<HandoffStep>,
) -> ApiResult<Json<Handoff>> {
    let action = match action.as_str() {
        "accept" => HandoffAction::Accept,
        "reject" => HandoffAction::Reject,
        "complete" => HandoffAction::Complete,
        other => {
            return Err(ApiError::not_found(format!("no handoff action {other:?}: use accept, reject or complete")));
        }
    };
    let op = req::ActOnHandoff { id, action, agent: caller.agent, outcome: body.outcome };
    Ok(Json(state.store().coord(op).await?))
}

// ---- tasks ----

/// Assign a task in a context to a registered agent; `task.assigned` goes
/// to the context's log and the assignee's inbox.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/tasks", operation_id = "assignTask", tag = "tasks", request_body = TaskRequest,
    responses((status = 201, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    P(ctx): P<String>,
    JsonBody(request): JsonBody<TaskRequest>,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    let task = state.store().coord(req::AssignTask { ctx, request, by: caller.agent }).await?;
    let location = format!("/v1/tasks/{}", task.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(task)).into_response())
}

/// A page of tasks.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TaskList {
    tasks: Vec<Task>,
    /// Pass as `cursor` to get the next page; null on the last page.
    next_cursor: Option<String>,
}

async fn tasks(state: &AppState, query: CoordQuery) -> ApiResult<Json<TaskList>> {
    let (tasks, more) = state.store().coord(req::ListTasks(query)).await?;
    let next_cursor = more.then(|| tasks.last().map(|t| cursor::encode(&t.id))).flatten();
    Ok(Json(TaskList { tasks, next_cursor }))
}

/// List the tasks of a context.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/tasks", operation_id = "listContextTasks", tag = "tasks", params(CoordListParams),
    responses((status = 200, body = TaskList), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_context_tasks(
    State(state): State<AppState>,
    P(ctx): P<String>,
    Q(p): Q<CoordListParams>,
) -> ApiResult<Json<TaskList>> {
    let ctx = context_id(&ctx)?;
    state.store().get_context(&ctx).await?;
    let mut query = p.query(&state)?;
    query.context = Some(ctx.as_str().to_owned());
    tasks(&state, query).await
}

/// List tasks (by `agent`, `context`, `state`).
#[utoipa::path(get, path = "/v1/tasks", operation_id = "listTasks", tag = "tasks", params(CoordListParams),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Q(p): Q<CoordListParams>,
) -> ApiResult<Json<TaskList>> {
    let query = p.query(&state)?;
    check_listing(&state, &caller, &query).await?;
    tasks(&state, query).await
}

/// Read a task.
#[utoipa::path(get, path = "/v1/tasks/{id}", operation_id = "getTask", tag = "tasks",
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
pub(crate) async fn read_task(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Task>> {
    let task = state.store().coord(req::GetTask { id }).await?;
    if caller.agent != task.assignee && caller.agent != task.assigned_by {
        authorize(&state, &caller, &context_id(&task.context)?, Permission::Read, "GET /v1/tasks/{id}").await?;
    }
    Ok(Json(task))
}

/// `POST /v1/tasks/{id}/complete`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteTask {
    /// What the task produced: any JSON.
    #[serde(default)]
    output: Option<Value>,
}

/// Complete a task (its assignee only, once); `task.completed` goes to the
/// context's log and the assigner's inbox.
#[utoipa::path(post, path = "/v1/tasks/{id}/complete", operation_id = "completeTask", tag = "tasks", request_body = CompleteTask,
    responses((status = 200, body = Task), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn complete_task(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
    MaybeJson(body): MaybeJson<CompleteTask>,
) -> ApiResult<Json<Task>> {
    let output = body.output;
    Ok(Json(state.store().coord(req::CompleteTask { id, agent: caller.agent, output }).await?))
}
