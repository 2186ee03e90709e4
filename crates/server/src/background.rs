//! Background tasks: sweeping expired entries, lapsed agent leases, expired
//! locks and handoffs past their deadline, and applying retention.

use chrono::Utc;
use tokio::task::JoinSet;

use crate::AppState;
use ctxmesh_store::coord as req;

/// How often queued access decisions are written to the audit log.
pub const AUDIT_FLUSH: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts the background tasks; aborting the set stops them.
pub fn spawn(state: AppState) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let s = state.clone();
    set.spawn(async move {
        let mut tick = tokio::time::interval(s.config().expiry_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match s.store().expire(Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "expired entries removed"),
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
            }
            match s.store().sweep(Utc::now()).await {
                Ok(report) if report == Default::default() => {}
                Ok(report) => tracing::debug!(?report, "leases, locks and handoffs swept"),
                Err(e) => tracing::warn!(error = %e, "coordination sweep failed"),
            }
        }
    });
    let s = state.clone();
    set.spawn(async move {
        // Access decisions are written in batches, a fraction of a second
        // after they are made.
        let mut tick = tokio::time::interval(AUDIT_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            s.flush_audit().await;
        }
    });
    set.spawn(async move {
        let mut tick = tokio::time::interval(state.config().compaction_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let before = Utc::now() - chrono::Duration::from_std(state.config().audit_retention).unwrap_or_default();
            if let Err(e) = state.store().coord(req::TrimAudit { before }).await {
                tracing::warn!(error = %e, "audit retention failed");
            }
            match state.store().compact(None, Utc::now()).await {
                Ok(done) => {
                    for c in done {
                        tracing::info!(context = %c.context, compacted_revision = c.compacted_revision, "history compacted");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "compaction failed"),
            }
        }
    });
    set
}
