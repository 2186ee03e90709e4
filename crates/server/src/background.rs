//! Background tasks: sweeping expired entries, lapsed agent leases, expired
//! locks and handoffs past their deadline, and applying retention.

use chrono::Utc;
use tokio::task::JoinSet;

use crate::AppState;

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
    set.spawn(async move {
        let mut tick = tokio::time::interval(state.config().compaction_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
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
