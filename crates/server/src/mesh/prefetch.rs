//! Workflow prefetch: after a write by an agent of a context's workflow,
//! the next agent's package is computed ahead of its request.

use std::sync::Arc;

use ctxmesh_core::ids::ContextId;
use ctxmesh_core::mesh::MeshSettings;
use futures::FutureExt;

use super::package::{Ask, MAX_BUDGET, compute, registered};
use super::tokens::Encoding;
use super::{Mesh, lock};
use crate::AppState;
use crate::error::ApiResult;

/// After `author` wrote `ctx` at `revision`: when the context has a
/// workflow and `author` is in it, the next agent's package (at its
/// defaults) is computed ahead, so that its request finds it. The cache
/// slot is taken before this returns: a request that arrives while it is
/// being computed waits for it instead of computing it again.
pub(crate) async fn after_write(state: &AppState, ctx: &ContextId, author: &str, revision: u64) {
    let settings = match state.mesh().remembered(ctx.as_str()) {
        Some(s) => s,
        None => match state.store().get_context(ctx).await {
            Ok(info) => {
                state.mesh().remember(ctx.as_str(), &info.settings.mesh);
                Arc::new(info.settings.mesh)
            }
            Err(_) => return,
        },
    };
    let Some(next) = settings.next_after(author).map(str::to_owned) else { return };
    let ask = async {
        let agent = registered(state, &next).await?;
        let resource = format!("prefetch {}/package?agent={next}", ctx.as_str());
        let scope = crate::authz::read_scope_of(state, &next, ctx, &resource).await?;
        ApiResult::Ok(Ask {
            ctx: ctx.clone(),
            revision,
            budget: agent.token_budget.min(MAX_BUDGET as u64) as usize,
            agent,
            settings: (*settings).clone(),
            encoding: Encoding::default(),
            explain: false,
            compress: true,
            scopes: [scope].into_iter().filter(|s| !s.is_all()).collect(),
        })
    };
    let ask = match ask.await {
        Ok(ask) => ask,
        Err(e) => {
            tracing::debug!(context = %ctx, agent = %next, error = %e.message, "no prefetch");
            return;
        }
    };
    let ask = Arc::new(ask);
    let (pending, started) = state.mesh().start(ask.key(), compute(state.clone(), ask.clone()).boxed());
    if started {
        metrics::counter!("ctxmesh_package_prefetches_total").increment(1);
        tokio::spawn(pending);
    }
}

impl Mesh {
    /// Remembers a context's mesh settings (for prefetch).
    pub(crate) fn remember(&self, ctx: &str, settings: &MeshSettings) {
        lock(&self.workflows).insert(ctx.to_owned(), Arc::new(settings.clone()));
    }

    pub(super) fn remembered(&self, ctx: &str) -> Option<Arc<MeshSettings>> {
        lock(&self.workflows).get(&ctx.to_owned())
    }
}
