//! The context mesh over HTTP: an agent's package of relevant context
//! within its token budget (docs/mesh.md).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::agent::Agent;
use ctxmesh_core::conflict::{Candidate, Proposal, tally};
use ctxmesh_core::mesh::Package;
use ctxmesh_store::coord::{CoordOutput, CoordRead, CoordWrite};
use serde::{Deserialize, Serialize};

use super::{P, context_id};
use crate::AppState;
use crate::authz::Scopes;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, JsonBody, Q};
use crate::mesh::{Ask, Encoding};

/// How a package is returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// The package as JSON (the default).
    #[default]
    Json,
    /// Prompt-ready Markdown (`text/markdown`).
    Markdown,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct PackageParams {
    /// The agent it is for (default: the caller).
    agent: Option<String>,
    /// Most tokens (default: the agent's `token_budget`).
    budget: Option<usize>,
    /// `json` (default) or `markdown`.
    #[serde(default)]
    format: Format,
    /// `cl100k_base` (default) or `o200k_base`.
    #[serde(default)]
    encoding: Encoding,
    /// Include every entry's relevance signals, and the entries left out.
    #[serde(default)]
    explain: bool,
    /// Summarize entries that do not fit whole (default true); false
    /// references them instead.
    compress: Option<bool>,
    /// Build it as of this revision (what the agent saw then).
    at: Option<u64>,
}

/// Most tokens a package may be asked for.
pub(crate) const MAX_BUDGET: usize = 1_000_000;

/// The agent `id` as registered.
pub(crate) async fn registered(state: &AppState, id: &str) -> ApiResult<Agent> {
    match state.store().coord_read(CoordRead::Agent { id: id.to_owned() }).await? {
        CoordOutput::Agent(a) => Ok(a),
        other => Err(ApiError::internal(format!("unexpected output {other:?}"))),
    }
}

/// The context an agent needs, ranked by relevance and packed into its
/// token budget (counted with tiktoken): entries whole, summarized, or as
/// references to fetch; never cut. Entries the caller or the agent may not
/// read, and confidential entries, are never in it.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/package", tag = "mesh", params(PackageParams),
    responses((status = 200, body = Package), (status = 200, content_type = "text/markdown"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn package(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(p): Q<PackageParams>,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    let agent = registered(&state, p.agent.as_deref().unwrap_or(&caller.agent)).await?;
    let info = state.store().get_context(&ctx).await?;
    state.mesh().remember(ctx.as_str(), &info.settings.mesh);
    let revision = match p.at {
        Some(at) if at > info.revision => {
            return Err(ApiError::invalid_argument("at", format!("the context is at revision {}", info.revision)));
        }
        Some(at) => {
            info.check_readable(at)?;
            at
        }
        None => info.revision,
    };
    let budget = p.budget.unwrap_or(agent.token_budget.min(MAX_BUDGET as u64) as usize);
    if budget == 0 || budget > MAX_BUDGET {
        return Err(ApiError::invalid_argument("budget", format!("a budget is 1 to {MAX_BUDGET} tokens")));
    }
    let mut filters = vec![scopes.read];
    if agent.id != caller.agent {
        let resource = format!("GET /v1/contexts/{}/package?agent={}", ctx.as_str(), agent.id);
        filters.push(crate::authz::read_scope_of(&state, &agent.id, &ctx, &resource).await?);
    }
    filters.retain(|s| !s.is_all());
    let ask = Ask {
        ctx,
        revision,
        agent,
        settings: info.settings.mesh,
        budget,
        encoding: p.encoding,
        explain: p.explain,
        compress: p.compress.unwrap_or(true),
        scopes: filters,
    };
    let (package, cached) = crate::mesh::package(&state, ask).await?;
    let mut response = match p.format {
        Format::Json => Json(package.as_ref()).into_response(),
        Format::Markdown => {
            let mut r = package.text.clone().into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/markdown; charset=utf-8"));
            h.insert("x-package-tokens", HeaderValue::from(package.tokens));
            h.insert("x-package-revision", HeaderValue::from(package.revision));
            r
        }
    };
    let cache = HeaderValue::from_static(if cached { "hit" } else { "miss" });
    response.headers_mut().insert("x-package-cache", cache);
    Ok(response)
}

/// `POST /v1/contexts/{ctx}/consensus`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsensusRequest {
    /// The entry the consensus decides: the agreed value is written there.
    key: String,
    /// The agents' proposals.
    proposals: Vec<Proposal>,
    /// The share of the total confidence the leading value needs
    /// (default 0.5; above half of it is a majority).
    #[serde(default = "half")]
    min_agreement: f64,
}

fn half() -> f64 {
    0.5
}

/// What a consensus came to.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsensusOutcome {
    /// Whether the leading value reached `min_agreement`.
    agreed: bool,
    /// The leading value's share of the total confidence.
    agreement: f64,
    /// The entry written with the agreed value (kind `decision`, its
    /// confidence the agreement).
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<ctxmesh_core::Entry>,
    /// The pending conflict it was escalated to.
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<ctxmesh_core::conflict::Conflict>,
    /// Every distinct value with its weight and supporters, heaviest first.
    candidates: Vec<Candidate>,
}

/// Weighs the agents' proposals by confidence: when the leading value has
/// at least `min_agreement` of the total, it is written to `key` (`200`);
/// otherwise a pending conflict with every candidate is recorded and
/// `conflict.detected` logged (`202`), to resolve like any conflict.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/consensus", tag = "mesh", request_body = ConsensusRequest,
    responses((status = 200, body = ConsensusOutcome), (status = 202, body = ConsensusOutcome),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn consensus(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    JsonBody(req): JsonBody<ConsensusRequest>,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    let key = ctxmesh_core::EntryKey::parse(&req.key)?;
    if !(req.min_agreement > 0.0 && req.min_agreement <= 1.0) {
        return Err(ApiError::invalid_argument("min_agreement", "min_agreement is above 0 and at most 1"));
    }
    let candidates = tally(&req.proposals)?;
    let agreement = candidates[0].agreement;
    if agreement >= req.min_agreement {
        let write = ctxmesh_core::EntryWrite {
            value: candidates[0].value.clone(),
            kind: Some("decision".into()),
            confidence: Some(agreement),
            ..Default::default()
        };
        let op = ctxmesh_core::txn::Op::Put { key, write };
        let txn = ctxmesh_core::TxnRequest { success: vec![op], scope: scopes.txn(), ..Default::default() };
        let response = state.store().txn(&ctx, txn, &caller.agent).await?;
        let entry = match response.results.into_iter().next() {
            Some(ctxmesh_core::txn::OpResult::Put { entry }) => entry,
            _ => return Err(ApiError::internal("a write returned no entry")),
        };
        let outcome = ConsensusOutcome { agreed: true, agreement, entry: Some(entry), conflict: None, candidates };
        return Ok(Json(outcome).into_response());
    }
    if let Some(scope) = scopes.txn() {
        scope.check_write(key.as_str(), None, None)?;
    }
    let op = CoordWrite::Escalate { ctx, key: key.into_string(), author: caller.agent, candidates: candidates.clone() };
    let conflict = match state.store().coord_write(op).await? {
        CoordOutput::Conflict(c) => *c,
        other => return Err(ApiError::internal(format!("unexpected output {other:?}"))),
    };
    let outcome = ConsensusOutcome { agreed: false, agreement, entry: None, conflict: Some(conflict), candidates };
    Ok((StatusCode::ACCEPTED, Json(outcome)).into_response())
}
