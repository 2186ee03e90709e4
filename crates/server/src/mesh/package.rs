//! Packages: what one is asked for, resolved, and computing it from the
//! snapshot of its context revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use ctxmesh_core::access::EntryScope;
use ctxmesh_core::agent::Agent;
use ctxmesh_core::error::Error;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::mesh::{Extractive, MeshSettings, Package, PackageRequest, Prepared, Scorer, build_package};
use ctxmesh_store::StoreError;
use ctxmesh_store::coord as req;
use futures::FutureExt;
use tracing::Instrument as _;

use super::cache::{PackageKey, access_fingerprint};
use super::embed::similarities;
use super::summarize::llm_summaries;
use super::tokens::Encoding;
use crate::AppState;
use crate::error::ApiResult;

/// Most tokens a package may be asked for.
pub(crate) const MAX_BUDGET: usize = 1_000_000;

/// The agent `id` as registered: a package is built from its needs, so
/// it must be.
pub(crate) async fn registered(state: &AppState, id: &str) -> ApiResult<Agent> {
    match state.store().coord(req::GetAgent { id: id.to_owned() }).await {
        Err(StoreError::Core(Error::NotFound { .. })) => Err(Error::NotRegistered {
            agent: id.to_owned(),
            role: "the agent a package is for must be: the package is built from its needs".to_owned(),
        }
        .into()),
        other => Ok(other?),
    }
}

/// What a package is asked for, resolved.
pub(crate) struct Ask {
    pub(crate) ctx: ContextId,
    pub(crate) revision: u64,
    pub(crate) agent: Agent,
    pub(crate) settings: MeshSettings,
    pub(crate) budget: usize,
    pub(crate) encoding: Encoding,
    pub(crate) explain: bool,
    pub(crate) compress: bool,
    /// Every scope an entry must pass (the caller's, the agent's).
    pub(crate) scopes: Vec<EntryScope>,
}

impl Ask {
    pub(super) fn key(&self) -> PackageKey {
        PackageKey {
            context: self.ctx.as_str().to_owned(),
            revision: self.revision,
            agent: self.agent.id.clone(),
            budget: self.budget,
            encoding: self.encoding,
            explain: self.explain,
            compress: self.compress,
            access: access_fingerprint(&self.scopes.iter().collect::<Vec<_>>()),
        }
    }
}

/// Builds (or takes from the cache) the package of `ask`; `true` when it
/// came from the cache.
pub(crate) async fn package(state: &AppState, ask: Ask) -> ApiResult<(Arc<Package>, bool)> {
    let span = tracing::debug_span!(
        "mesh.package",
        ctxmesh.context = ask.ctx.as_str(),
        ctxmesh.revision = ask.revision as i64,
        ctxmesh.package.agent = ask.agent.id.as_str(),
        ctxmesh.package.budget = ask.budget as i64,
        ctxmesh.package.encoding = ask.encoding.name(),
        ctxmesh.package.cached = tracing::field::Empty,
        ctxmesh.package.entries = tracing::field::Empty,
        ctxmesh.package.dropped = tracing::field::Empty,
        ctxmesh.package.tokens = tracing::field::Empty,
    );
    let ask = Arc::new(ask);
    let built =
        state.mesh().package(ask.key(), || compute(state.clone(), ask.clone()).boxed()).instrument(span.clone()).await;
    if let Ok((package, cached)) = &built {
        span.record("ctxmesh.package.cached", cached);
        span.record("ctxmesh.package.entries", package.items.len() as i64);
        span.record("ctxmesh.package.dropped", package.dropped_total as i64);
        span.record("ctxmesh.package.tokens", package.tokens as i64);
    }
    built
}

/// Computes the package of `ask`.
pub(super) async fn compute(state: AppState, ask: Arc<Ask>) -> ApiResult<Package> {
    let mesh = state.mesh();
    {
        let snapshot = mesh.snapshot(&state, &ask.ctx, ask.revision).await?;
        let tokenizer = ask.encoding.tokenizer()?;
        // Confidential entries never go into packages; expired ones are gone.
        let now = chrono::Utc::now();
        let visible: Vec<&Prepared> = snapshot
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| {
                !p.entry.meta.confidential
                    && !p.entry.is_expired(now)
                    && ask.scopes.iter().all(|s| s.permits_entry(&p.entry))
            })
            .collect();
        // With a model, semantic similarity to the objective is a signal.
        let semantic = match (&state.config().embedder, ask.agent.objective.trim()) {
            (Some(embedder), objective) if !objective.is_empty() => {
                similarities(&state, embedder.as_ref(), ask.ctx.as_str(), &visible, objective).await?
            }
            _ => BTreeMap::new(),
        };
        let scorer = Scorer::new(&ask.agent, &ask.settings, &visible, chrono::Utc::now());
        let request = PackageRequest { budget: ask.budget, explain: ask.explain, compress: ask.compress };
        let mut package = build_package(
            ask.ctx.as_str(),
            ask.revision,
            &scorer,
            &visible,
            &semantic,
            &request,
            tokenizer,
            &Extractive,
            ask.encoding.name(),
        );
        if let Some(llm) = &state.config().summarizer {
            llm_summaries(llm, &mut package, &snapshot, &ask.agent.objective, tokenizer).await;
        }
        Ok(package)
    }
}
