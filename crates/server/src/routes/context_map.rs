//! `/v1/contexts/{ctx}/context-map`: a context map as seed 001 writes it,
//! whole: each agent's `needs` and `produces` (plain lists of names, or the
//! structured form) and the context's workflow order, in one request.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use ctxmesh_core::agent::{AgentPatch, AgentSpec, ContextMap, parse_agent_id};
use ctxmesh_core::context::ContextPatch;
use ctxmesh_core::ids::ContextId;
use ctxmesh_store::coord as req;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::agents::issue_token;
use super::{P, context_id};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{Caller, JsonBody};

/// The most agents of one map (as of a context's workflow).
pub(crate) const MAX_MAP_AGENTS: usize = 64;

/// What one agent of a context map needs and produces.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MapAgent {
    /// What it needs: a list of names (each matches an entry by kind, tag,
    /// key or key prefix), or kinds, tags, key patterns and names.
    #[serde(default)]
    needs: ContextMap,
    /// What it produces, in the same forms.
    #[serde(default)]
    produces: ContextMap,
}

/// What one agent of a context's map needs and produces.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MapAgentView {
    /// What it needs.
    needs: ContextMap,
    /// What it produces.
    produces: ContextMap,
}

/// The agents of a map, in the order the request lists them (the order
/// is the workflow's unless `workflow` says otherwise).
pub(crate) struct MapAgents(Vec<(String, MapAgent)>);

impl<'de> Deserialize<'de> for MapAgents {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = MapAgents;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of agent ids to their needs and produces")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<MapAgents, A::Error> {
                let mut agents: Vec<(String, MapAgent)> = Vec::new();
                while let Some((id, agent)) = map.next_entry::<String, MapAgent>()? {
                    if agents.iter().any(|(seen, _)| *seen == id) {
                        return Err(serde::de::Error::custom(format!("agent {id:?} is listed twice")));
                    }
                    agents.push((id, agent));
                }
                Ok(MapAgents(agents))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// A context map: what each agent of the context needs and produces.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextMapRequest {
    /// Each agent's needs and produces, by agent id, in workflow order.
    /// Agents not yet registered are registered.
    #[schema(value_type = BTreeMap<String, MapAgent>)]
    agents: MapAgents,
    /// The context's workflow order, when it is not the order of `agents`
    /// (each one of them, once).
    #[serde(default)]
    workflow: Option<Vec<String>>,
}

/// A context's map: its workflow and what each of its agents needs and
/// produces.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ContextMapView {
    /// The context.
    context: String,
    /// Its workflow: the agents in order.
    workflow: Vec<String>,
    /// What each agent of the workflow needs and produces (agents since
    /// unregistered are left out).
    agents: BTreeMap<String, MapAgentView>,
    /// The tokens of the agents this request registered, shown this once.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tokens: BTreeMap<String, String>,
}

async fn view(state: &AppState, ctx: &ContextId, tokens: BTreeMap<String, String>) -> ApiResult<ContextMapView> {
    let info = state.store().get_context(ctx).await?;
    let workflow = info.settings.mesh.workflow.clone();
    let mut agents = BTreeMap::new();
    for id in &workflow {
        match state.store().coord(req::GetAgent { id: id.clone() }).await.map_err(ApiError::from) {
            Ok(a) => {
                agents.insert(id.clone(), MapAgentView { needs: a.needs, produces: a.produces });
            }
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ContextMapView { context: info.id, workflow, agents, tokens })
}

/// The context's map: its workflow, and what each agent of it needs and
/// produces.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/context-map", operation_id = "getContextMap", tag = "mesh",
    responses((status = 200, body = ContextMapView), (status = 404, body = ErrorBody)))]
pub(crate) async fn read(State(state): State<AppState>, P(ctx): P<String>) -> ApiResult<Json<ContextMapView>> {
    Ok(Json(view(&state, &context_id(&ctx)?, BTreeMap::new()).await?))
}

/// Set a context's map, as seed 001 writes it (admin only): each agent's
/// `needs` and `produces` are registered or replaced (a plain list of
/// names, or kinds, tags, key patterns and names), and the context's
/// workflow becomes the agents' order. Everything is checked before
/// anything changes; sending the same map again changes nothing more.
#[utoipa::path(put, path = "/v1/contexts/{ctx}/context-map", operation_id = "putContextMap", tag = "mesh",
    request_body = ContextMapRequest,
    responses((status = 200, body = ContextMapView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    P(ctx): P<String>,
    JsonBody(map): JsonBody<ContextMapRequest>,
) -> ApiResult<Json<ContextMapView>> {
    caller.require_admin()?;
    let ctx = context_id(&ctx)?;
    let agents = map.agents.0;
    if agents.is_empty() || agents.len() > MAX_MAP_AGENTS {
        return Err(ApiError::invalid_argument("agents", format!("a context map names 1 to {MAX_MAP_AGENTS} agents")));
    }
    for (id, agent) in &agents {
        parse_agent_id(id)?;
        agent.needs.validate(&format!("agents.{id}.needs"))?;
        agent.produces.validate(&format!("agents.{id}.produces"))?;
    }
    let workflow = match map.workflow {
        None => agents.iter().map(|(id, _)| id.clone()).collect(),
        Some(order) => {
            let mut sorted = order.clone();
            sorted.sort();
            let mut listed: Vec<String> = agents.iter().map(|(id, _)| id.clone()).collect();
            listed.sort();
            if sorted != listed {
                return Err(ApiError::invalid_argument("workflow", "the workflow lists each agent of `agents` once"));
            }
            order
        }
    };
    // The context exists before any agent changes.
    state.store().get_context(&ctx).await?;

    let mut tokens = BTreeMap::new();
    for (id, agent) in agents {
        let patch: AgentPatch = serde_json::from_value(json!({"needs": agent.needs, "produces": agent.produces}))
            .map_err(|e| ApiError::invalid_argument(&format!("agents.{id}"), e.to_string()))?;
        match state
            .store()
            .coord(req::UpdateAgent { id: id.clone(), patch: patch.clone() })
            .await
            .map_err(ApiError::from)
        {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::NotFound => {
                let spec: AgentSpec =
                    serde_json::from_value(json!({"id": id, "needs": agent.needs, "produces": agent.produces}))
                        .map_err(|e| ApiError::invalid_argument(&format!("agents.{id}"), e.to_string()))?;
                match state.store().coord(req::Register(spec)).await.map_err(ApiError::from) {
                    Ok(a) => {
                        tokens.insert(a.id.clone(), issue_token(&state, &a.id).await?);
                    }
                    // Registered meanwhile by another request: update it.
                    Err(e) if e.code == ErrorCode::AlreadyExists => {
                        state.store().coord(req::UpdateAgent { id: id.clone(), patch }).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    // The workflow alone, set under the context's lock: mesh settings a
    // concurrent `PATCH` changes meanwhile are kept.
    let patch = ContextPatch { workflow: Some(workflow), ..ContextPatch::default() };
    let updated = state.store().update_context(&ctx, patch).await?;
    state.mesh().remember(&updated.id, &updated.settings.mesh);
    Ok(Json(view(&state, &ctx, tokens).await?))
}
