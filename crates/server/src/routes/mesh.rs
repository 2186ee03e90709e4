//! The context mesh over HTTP: an agent's package of relevant context
//! within its token budget (docs/mesh.md).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ctxmesh_core::conflict::{Candidate, Proposal, tally};
use std::collections::HashMap;

use ctxmesh_core::access::EntryScope;
use ctxmesh_core::agent::Agent;
use ctxmesh_core::ids::{ContextId, KeyPattern};
use ctxmesh_core::mesh::{Package, Prepared};
use ctxmesh_store::coord as req;

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{P, context_id};
use crate::AppState;
use crate::authz::Scopes;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{Caller, JsonBody, Q};
use crate::mesh::{Ask, Encoding, MAX_BUDGET, registered};

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
#[into_params(parameter_in = Query)]
pub(crate) struct PackageParams {
    /// The agent it is for (default: the caller).
    agent: Option<String>,
    /// Build it as of this revision (what the agent saw then).
    at: Option<u64>,
}

/// How a package is asked for, besides whose and when.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShapeParams {
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
}

/// The context an agent needs, ranked by relevance and packed into its
/// token budget (counted with tiktoken): entries whole, summarized, or as
/// references to fetch; never cut. Entries the caller or the agent may not
/// read, and confidential entries, are never in it.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/package", operation_id = "getPackage", tag = "mesh", params(PackageParams, ShapeParams),
    responses((status = 200, description = "The package: JSON, or Markdown with `format=markdown`",
            content((Package = "application/json"), (String = "text/markdown"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn package(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(p): Q<PackageParams>,
    Q(shape): Q<ShapeParams>,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    let agent = package_agent(&state, &caller, p.agent.as_deref()).await?;
    let mut filters = vec![scopes.read];
    if agent.id != caller.agent {
        let resource = format!("GET /v1/contexts/{}/package?agent={}", ctx.as_str(), agent.id);
        filters.push(crate::authz::read_scope_of(&state, &agent.id, &ctx, &resource).await?);
    }
    answer_package(&state, ctx, agent, p.at, shape, filters).await
}

/// The package of `ctx` at revision `at` (default: the current one) for
/// `agent`, of the entries every scope of `filters` permits, answered in
/// the format `shape` asks.
async fn answer_package(
    state: &AppState,
    ctx: ContextId,
    agent: Agent,
    at: Option<u64>,
    shape: ShapeParams,
    mut filters: Vec<EntryScope>,
) -> ApiResult<Response> {
    let info = state.store().get_context(&ctx).await?;
    state.mesh().remember(ctx.as_str(), &info.settings.mesh);
    let revision = match at {
        // A revision after the current one is `404`, as for every read at a
        // revision.
        Some(at) => {
            info.check_readable(at)?;
            at
        }
        None => info.revision,
    };
    let budget = shape.budget.unwrap_or(agent.token_budget.min(MAX_BUDGET as u64) as usize);
    if budget == 0 || budget > MAX_BUDGET {
        return Err(ApiError::invalid_argument("budget", format!("a budget is 1 to {MAX_BUDGET} tokens")));
    }
    filters.retain(|s| !s.is_all());
    let ask = Ask {
        ctx,
        revision,
        agent,
        settings: info.settings.mesh,
        budget,
        encoding: shape.encoding,
        explain: shape.explain,
        compress: shape.compress.unwrap_or(true),
        scopes: filters,
    };
    let (package, cached) = crate::mesh::package(state, ask).await?;
    let mut response = match shape.format {
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

/// The context a handoff carries: the package of its keys (all of the
/// context when it names none) as of its revision, built for its target
/// within the target's budget (or `budget`). The caller must be able to
/// read the handoff (its source, its target, or a reader of its context),
/// and the package holds only what both the caller and the target may
/// read.
#[utoipa::path(get, path = "/v1/handoffs/{id}/package", operation_id = "getHandoffPackage", tag = "handoffs", params(ShapeParams),
    responses((status = 200, description = "The package: JSON, or Markdown with `format=markdown`",
            content((Package = "application/json"), (String = "text/markdown"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody)))]
pub(crate) async fn handoff_package(
    State(state): State<AppState>,
    caller: Caller,
    P(id): P<String>,
    Q(shape): Q<ShapeParams>,
) -> ApiResult<Response> {
    let h = state.store().coord(req::GetHandoff { id }).await?;
    let ctx = context_id(&h.context)?;
    let resource = format!("GET /v1/handoffs/{}/package", h.id);
    let mut filters = Vec::new();
    // The caller reads with its own identity (a JWT's trust claim
    // included); the target, when someone else asks, as registered.
    if !caller.admin {
        filters.push(crate::authz::read_scope(&state, &caller, &ctx, &resource).await?);
    }
    if caller.admin || caller.agent != h.target {
        filters.push(crate::authz::read_scope_of(&state, &h.target, &ctx, &resource).await?);
    }
    if !h.keys.is_empty() {
        let patterns = h.keys.iter().map(|k| KeyPattern::parse(k)).collect::<Result<Vec<_>, _>>()?;
        filters.push(EntryScope::of_keys(ctx.as_str(), &h.target, &patterns));
    }
    let agent = registered(&state, &h.target).await?;
    answer_package(&state, ctx, agent, Some(h.revision), shape, filters).await
}

/// The agent a package is for: the one named, else the caller, which
/// must then be an agent (the admin acts as none unless `X-Agent-Id`
/// names one).
async fn package_agent(state: &AppState, caller: &Caller, named: Option<&str>) -> ApiResult<Agent> {
    match (named, registered(state, named.unwrap_or(&caller.agent)).await) {
        (None, Err(e)) if caller.is_plain_admin() && e.code == ErrorCode::NotFound => Err(ApiError::invalid_argument(
            "agent",
            "name the agent the package is for with ?agent=ID (or X-Agent-Id): the admin acts as no agent",
        )),
        (_, result) => result,
    }
}

/// Writes `write` at `key` as `caller`, within its scopes; the entry.
async fn put_entry(
    state: &AppState,
    caller: &Caller,
    scopes: &Scopes,
    ctx: &ctxmesh_core::ContextId,
    key: ctxmesh_core::EntryKey,
    write: ctxmesh_core::EntryWrite,
) -> ApiResult<ctxmesh_core::Entry> {
    let op = ctxmesh_core::txn::Op::Put { key, write };
    let txn = ctxmesh_core::TxnRequest { success: vec![op], scope: scopes.txn(), ..Default::default() };
    match state.store().txn(ctx, txn, &caller.agent).await?.results.into_iter().next() {
        Some(ctxmesh_core::txn::OpResult::Put { entry }) => Ok(entry),
        _ => Err(ApiError::internal("a write returned no entry")),
    }
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
#[utoipa::path(post, path = "/v1/contexts/{ctx}/consensus", operation_id = "reachConsensus", tag = "mesh", request_body = ConsensusRequest,
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
        let entry = put_entry(&state, &caller, &scopes, &ctx, key, write).await?;
        let outcome = ConsensusOutcome { agreed: true, agreement, entry: Some(entry), conflict: None, candidates };
        return Ok(Json(outcome).into_response());
    }
    if let Some(scope) = scopes.txn() {
        scope.check_write(key.as_str(), None, None)?;
    }
    let op = req::Escalate { ctx, key: key.into_string(), author: caller.agent, candidates: candidates.clone() };
    let conflict = state.store().coord(op).await?;
    let outcome = ConsensusOutcome { agreed: false, agreement, entry: None, conflict: Some(conflict), candidates };
    Ok((StatusCode::ACCEPTED, Json(outcome)).into_response())
}

/// How a search ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Words (BM25 on SQLite, full-text rank on PostgreSQL).
    Keyword,
    /// Meaning: embeddings of the query and of each entry (needs a model).
    Semantic,
    /// Both, fused by reciprocal rank (the default with a model).
    Hybrid,
}

impl Mode {
    /// Its name in a query string.
    fn name(self) -> &'static str {
        match self {
            Mode::Keyword => "keyword",
            Mode::Semantic => "semantic",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// The longest search query, in characters.
const MAX_QUERY_CHARS: usize = 4096;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// What to look for: 1 to 4096 characters, not only blanks.
    #[param(min_length = 1, max_length = 4096, pattern = "[^ \t\r\n]")]
    q: String,
    /// `keyword`, `semantic` or `hybrid` (default: hybrid with a model,
    /// else keyword).
    mode: Option<Mode>,
    /// Most hits (default 10, at most 100).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Only entries of this kind.
    kind: Option<String>,
    /// Only entries carrying every one of these tags (comma-separated).
    tags: Option<String>,
    /// Only entries last written by this agent.
    author: Option<String>,
    /// Only entries written at or after this time (RFC 3339).
    since: Option<String>,
    /// Only entries written before this time (RFC 3339).
    until: Option<String>,
}

/// One search hit.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Hit {
    /// The key.
    key: String,
    /// Its score: the keyword score, the cosine similarity, or the fused
    /// reciprocal-rank score.
    score: f64,
    /// The entry.
    entry: ctxmesh_core::Entry,
}

/// What a search found.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SearchResults {
    /// The mode used.
    mode: Mode,
    /// The revision searched.
    revision: u64,
    /// Best first.
    hits: Vec<Hit>,
}

/// The constant of reciprocal rank fusion.
const RRF_K: f64 = 60.0;

fn time_param(field: &str, value: &Option<String>) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .as_deref()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| ApiError::invalid_argument(field, format!("{field} is an RFC 3339 time")))
        })
        .transpose()
}

/// Search the current entries of a context by words, by meaning, or both.
/// Only entries the caller may read are found, never confidential ones.
#[utoipa::path(get, path = "/v1/contexts/{ctx}/search", operation_id = "searchEntries", tag = "mesh", params(SearchParams),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    scopes: Scopes,
    P(ctx): P<String>,
    Q(p): Q<SearchParams>,
) -> ApiResult<Json<SearchResults>> {
    let ctx = context_id(&ctx)?;
    let blank = p.q.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if blank || p.q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid_argument("q", format!("a query has 1 to {MAX_QUERY_CHARS} characters")));
    }
    let limit = p.limit.unwrap_or(10);
    if limit == 0 || limit > 100 {
        return Err(ApiError::invalid_argument("limit", "limit is 1 to 100"));
    }
    let embedder = state.config().embedder.clone();
    let mode = p.mode.unwrap_or(if embedder.is_some() { Mode::Hybrid } else { Mode::Keyword });
    if mode != Mode::Keyword && embedder.is_none() {
        return Err(ApiError::invalid_argument("mode", "no embedding model is configured: use mode=keyword"));
    }
    // The times are checked before anything is read.
    time_param("since", &p.since)?;
    time_param("until", &p.until)?;
    let span = tracing::debug_span!(
        "mesh.search",
        ctxmesh.context = ctx.as_str(),
        ctxmesh.search.mode = mode.name(),
        ctxmesh.search.limit = limit as i64,
        ctxmesh.revision = tracing::field::Empty,
        ctxmesh.search.hits = tracing::field::Empty,
    );
    let found = search_in(&state, &scopes, &ctx, &p, mode, limit, embedder).instrument(span.clone()).await?;
    span.record("ctxmesh.revision", found.revision as i64);
    span.record("ctxmesh.search.hits", found.hits.len() as i64);
    Ok(Json(found))
}

/// The search of a valid request.
async fn search_in(
    state: &AppState,
    scopes: &Scopes,
    ctx: &ContextId,
    p: &SearchParams,
    mode: Mode,
    limit: usize,
    embedder: Option<std::sync::Arc<dyn crate::mesh::Embedder>>,
) -> ApiResult<SearchResults> {
    let (since, until) = (time_param("since", &p.since)?, time_param("until", &p.until)?);
    let tags: Vec<&str> = p.tags.as_deref().map(|t| t.split(',').map(str::trim).collect()).unwrap_or_default();
    let info = state.store().get_context(ctx).await?;
    let snapshot = state.mesh().snapshot(state, ctx, info.revision).await?;
    let now = chrono::Utc::now();
    let visible: Vec<&Prepared> = snapshot
        .iter()
        .map(|x| x.as_ref())
        .filter(|x| {
            let e = &x.entry;
            !e.meta.confidential
                && !e.is_expired(now)
                && scopes.read.permits_entry(e)
                && p.kind.as_ref().is_none_or(|k| e.meta.kind.as_ref() == Some(k))
                && tags.iter().all(|t| e.meta.tags.iter().any(|have| have == t))
                && p.author.as_ref().is_none_or(|a| &e.author == a)
                && since.is_none_or(|t| e.updated_at >= t)
                && until.is_none_or(|t| e.updated_at < t)
        })
        .collect();
    let by_key: HashMap<&str, &Prepared> = visible.iter().map(|x| (x.entry.key.as_str(), *x)).collect();
    let mut ranked: Vec<Vec<(String, f64)>> = Vec::new();
    if mode != Mode::Semantic {
        let mut terms: Vec<String> = ctxmesh_core::mesh::words(&p.q).collect();
        terms.sort();
        terms.dedup();
        let hits = state.store().search(ctx, &terms, 1000).await?;
        ranked.push(hits.into_iter().filter(|(k, _)| by_key.contains_key(k.as_str())).collect());
    }
    if let (Some(embedder), true) = (&embedder, mode != Mode::Keyword) {
        let scores = crate::mesh::similarities(state, embedder.as_ref(), ctx.as_str(), &visible, &p.q).await?;
        let mut list: Vec<(String, f64)> = scores.into_iter().collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.push(list);
    }
    let fused: Vec<(String, f64)> = match ranked.as_slice() {
        [one] => one.clone(),
        lists => {
            let mut score: HashMap<String, f64> = HashMap::new();
            for list in lists {
                for (rank, (key, _)) in list.iter().enumerate() {
                    *score.entry(key.clone()).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
                }
            }
            let mut out: Vec<(String, f64)> = score.into_iter().collect();
            out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            out
        }
    };
    let hits = fused
        .into_iter()
        .take(limit)
        .filter_map(|(key, score)| by_key.get(key.as_str()).map(|x| Hit { key, score, entry: x.entry.clone() }))
        .collect();
    Ok(SearchResults { mode, revision: info.revision, hits })
}

/// `POST /v1/contexts/{ctx}/decisions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionRequest {
    /// What was decided.
    decision: serde_json::Value,
    /// The context revision the agent read before deciding (1 to the
    /// context's revision).
    #[schema(minimum = 1)]
    read_revision: u64,
    /// Where to record it (default `decisions/<agent>/<read_revision>`).
    key: Option<String>,
}

/// A recorded decision.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DecisionRecord {
    /// The entry holding it (kind `decision`).
    entry: ctxmesh_core::Entry,
    /// Where the package the agent saw is rebuilt.
    replay: String,
}

/// Record a decision with the revision the agent read: an entry of kind
/// `decision` holding `{"decision", "read_revision", "agent"}`, and the
/// path that rebuilds the package the agent saw at that revision.
#[utoipa::path(post, path = "/v1/contexts/{ctx}/decisions", operation_id = "recordDecision", tag = "mesh", request_body = DecisionRequest,
    responses((status = 201, body = DecisionRecord), (status = 400, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn decision(
    State(state): State<AppState>,
    caller: Caller,
    scopes: Scopes,
    P(ctx): P<String>,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> ApiResult<Response> {
    let ctx = context_id(&ctx)?;
    let info = state.store().get_context(&ctx).await?;
    if req.read_revision == 0 || req.read_revision > info.revision {
        let message = format!("read_revision is 1 to the context's revision {}", info.revision);
        return Err(ApiError::invalid_argument("read_revision", message));
    }
    info.check_readable(req.read_revision)?;
    let key = req.key.unwrap_or_else(|| format!("decisions/{}/{}", caller.agent, req.read_revision));
    let key = ctxmesh_core::EntryKey::parse(&key)?;
    let value =
        serde_json::json!({"decision": req.decision, "read_revision": req.read_revision, "agent": caller.agent});
    let write = ctxmesh_core::EntryWrite { value, kind: Some("decision".into()), ..Default::default() };
    let entry = put_entry(&state, &caller, &scopes, &ctx, key, write).await?;
    let replay = format!("/v1/contexts/{}/package?agent={}&at={}", ctx.as_str(), caller.agent, req.read_revision);
    Ok((StatusCode::CREATED, Json(DecisionRecord { entry, replay })).into_response())
}
