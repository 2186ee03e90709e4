//! Sharing: grants of a context to agents, and what an agent can reach.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ctxmesh_core::Timestamp;
use ctxmesh_core::access::{Grant, Permission};
use ctxmesh_core::agent::parse_agent_id;
use ctxmesh_store::coord as req;

use serde::{Deserialize, Serialize};

use super::{P, context_id};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};

/// `POST /v1/contexts/{ctx}/grants`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantRequest {
    /// The agents to share with (each must be registered).
    #[schema(min_items = 1)]
    agents: Vec<String>,
    /// read, write, share, admin (`admin` implies the others).
    #[schema(min_items = 1)]
    permissions: Vec<Permission>,
    /// When the grants lapse (RFC 3339), if ever.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
}

/// Grants.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantList {
    grants: Vec<Grant>,
}

/// Share a context: the agents get the permissions (replacing earlier
/// grants); `context.shared` goes to the log and their inboxes. Needs
/// `share` on the context (its creator has it).
#[utoipa::path(post, path = "/v1/contexts/{ctx}/grants", operation_id = "grantAccess", tag = "security", request_body = GrantRequest,
    responses((status = 201, body = GrantList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    P(ctx): P<String>,
    JsonBody(req): JsonBody<GrantRequest>,
) -> ApiResult<impl IntoResponse> {
    let ctx = context_id(&ctx)?;
    for agent in &req.agents {
        parse_agent_id(agent)?;
    }
    let op = req::GrantAccess {
        ctx,
        agents: req.agents,
        permissions: req.permissions,
        expires_at: req.expires_at,
        by: caller.agent,
        // Agents known only by their OIDC identity are granted by id.
        unregistered: state.config().jwt.is_some(),
    };
    Ok((StatusCode::CREATED, Json(GrantList { grants: state.store().coord(op).await? })))
}

/// The grants of a context (needs `share`).
#[utoipa::path(get, path = "/v1/contexts/{ctx}/grants", operation_id = "listGrants", tag = "security",
    responses((status = 200, body = GrantList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>, P(ctx): P<String>) -> ApiResult<Json<GrantList>> {
    let ctx = context_id(&ctx)?;
    Ok(Json(GrantList { grants: state.store().coord(req::ListGrants { ctx }).await? }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RevokeParams {
    /// The agent whose grant ends.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    agent: String,
}

/// Revoke an agent's grant (needs `share`); `context.revoked` goes to the
/// log and the agent's inbox.
#[utoipa::path(delete, path = "/v1/contexts/{ctx}/grants", operation_id = "revokeAccess", tag = "security", params(RevokeParams),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    P(ctx): P<String>,
    Q(p): Q<RevokeParams>,
) -> ApiResult<StatusCode> {
    let ctx = context_id(&ctx)?;
    let agent = parse_agent_id(&p.agent)?;
    state.store().coord(req::RevokeAccess { ctx, agent, by: caller.agent }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The contexts an agent can reach by grant (the agent itself or an admin).
#[utoipa::path(get, path = "/v1/agents/{id}/shared", operation_id = "listShared", tag = "security",
    responses((status = 200, body = GrantList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn shared(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<GrantList>> {
    let agent = parse_agent_id(&id)?;
    caller.require_self_or_admin(&agent)?;
    Ok(Json(GrantList { grants: state.store().coord(req::SharedWith { agent }).await? }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only this agent's decisions.
    agent: Option<String>,
    /// Only decisions about this context.
    context: Option<String>,
    /// Only allowed (true) or denied (false) decisions.
    allowed: Option<bool>,
    /// Only decisions at or after this time (RFC 3339).
    since: Option<String>,
    /// Records after this position (default 0).
    after: Option<u64>,
    /// Page size (default 100).
    limit: Option<usize>,
}

/// A page of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditPage {
    records: Vec<ctxmesh_core::access::AuditRecord>,
    /// Pass as `after` to read on.
    next_after: u64,
}

/// The audit log of access decisions on contexts (admin only), oldest
/// first. Decisions reach it within a fraction of a second.
#[utoipa::path(get, path = "/v1/audit", operation_id = "listAudit", tag = "security", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Q(p): Q<AuditParams>,
) -> ApiResult<Json<AuditPage>> {
    caller.require_admin()?;
    let since = match &p.since {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| ApiError::invalid_argument("since", format!("since must be an RFC 3339 time: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
    };
    let after = super::check_revision("after", p.after.unwrap_or(0))?;
    let query = ctxmesh_store::coord::AuditQuery {
        agent: p.agent,
        context: p.context,
        allowed: p.allowed,
        since,
        after,
        limit: super::page_size(&state, p.limit, 100)?,
    };
    let records = state.store().coord(req::ReadAudit(query)).await?;
    let next_after = records.last().map_or(after, |r| r.seq);
    Ok(Json(AuditPage { records, next_after }))
}

/// Policy rules.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PolicyList {
    policies: Vec<ctxmesh_core::access::PolicyRule>,
}

/// Add an access policy rule (admin only): allow or deny a permission on
/// contexts matching a pattern to agents matching a pattern and a trust
/// range. Deny wins; see docs/security.md for the order of evaluation.
#[utoipa::path(post, path = "/v1/policies", operation_id = "addPolicy", tag = "security", request_body = ctxmesh_core::access::PolicyRule,
    responses((status = 201, body = PolicyList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn add_policy(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(rule): JsonBody<ctxmesh_core::access::PolicyRule>,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    Ok((StatusCode::CREATED, Json(PolicyList { policies: vec![state.store().coord(req::PutPolicy(rule)).await?] })))
}

/// The policy rules (admin only).
#[utoipa::path(get, path = "/v1/policies", operation_id = "listPolicies", tag = "security",
    responses((status = 200, body = PolicyList), (status = 403, body = ErrorBody)))]
pub(crate) async fn policies(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyList>> {
    caller.require_admin()?;
    Ok(Json(PolicyList { policies: state.store().coord(req::ListPolicies).await? }))
}

/// Delete a policy rule (admin only).
#[utoipa::path(delete, path = "/v1/policies/{id}", operation_id = "deletePolicy", tag = "security",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    state.store().coord(req::DeletePolicy { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
