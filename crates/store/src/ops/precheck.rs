//! Stale writes refused without the writer.
//!
//! A guarded write (one with a comparison, such as `If-Match`) whose
//! comparison already fails on the committed state is, under the `reject`
//! policy, refused and changes nothing. Answering it from a read of the
//! committed state gives the answer the writer would give at that state,
//! and keeps the writer (one thread on the embedded store, a context's row
//! lock on PostgreSQL) for the writes that can succeed. On a hot entry most
//! guarded writes are stale: 64 clients racing on one entry see more than
//! nine in ten refused.
//!
//! The read is an extra step for a write that then succeeds, so it is only
//! taken on contexts where guarded writes have lately been refused: a score
//! per context, a moving average of the refused share.
//!
//! The answer is the same as the writer's: the read runs the same planning
//! ([`crate::ops::entries::plan_on`]) on the same committed state, and is used only
//! when it refuses the whole transaction with nothing to write. It is
//! linearizable: the state it read was the committed state at a moment
//! between the request's arrival and its answer, and a refused write
//! changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use ctxmesh_core::Limits;
use ctxmesh_core::txn::TxnRequest;

use super::env::{Env, SchemaCache};
use crate::clock::SharedClock;

/// The score (0 to 1024, the refused share of recent guarded writes) from
/// which guarded writes to a context are checked first.
const THRESHOLD: u32 = 256;

/// Contexts with a score kept; past that, the scores start again.
const MAX_CONTEXTS: usize = 4096;

/// Per-context scores, and what planning a write needs (the limits, the
/// compiled schemas and the clock, shared with the node's writes).
pub(crate) struct Prechecks {
    pub(crate) limits: Limits,
    pub(crate) schemas: SchemaCache,
    pub(crate) clock: SharedClock,
    scores: Mutex<HashMap<String, u32>>,
}

impl Prechecks {
    pub(crate) fn new(limits: Limits, clock: SharedClock) -> Self {
        Prechecks { limits, schemas: SchemaCache::default(), clock, scores: Mutex::default() }
    }

    /// What the node's operations run with.
    pub(crate) fn env(&self) -> Env<'_> {
        Env { limits: &self.limits, schemas: &self.schemas, clock: self.clock.as_ref() }
    }

    /// Whether `txn` on `ctx` should be checked against the committed state
    /// before it is queued for the writer.
    pub(crate) fn wanted(&self, ctx: &str, txn: &TxnRequest) -> bool {
        guarded(txn) && self.lock().get(ctx).is_some_and(|s| *s >= THRESHOLD)
    }

    /// Counts how a guarded write to `ctx` ended.
    pub(crate) fn record(&self, ctx: &str, refused: bool) {
        let mut scores = self.lock();
        if scores.len() >= MAX_CONTEXTS && !scores.contains_key(ctx) {
            scores.clear();
        }
        let score = scores.entry(ctx.to_owned()).or_default();
        *score = *score - *score / 8 + if refused { 128 } else { 0 };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.scores.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A transaction that can fail on a comparison.
pub(crate) fn guarded(txn: &TxnRequest) -> bool {
    !txn.compare.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded_txn() -> TxnRequest {
        serde_json::from_value(serde_json::json!({
            "compare": [{"key": "k", "revision": 3}],
            "success": [{"op": "put", "key": "k", "value": 1}]
        }))
        .unwrap()
    }

    #[test]
    fn checks_start_when_most_guarded_writes_are_refused_and_stop_when_they_succeed() {
        let checks = Prechecks::new(Default::default(), crate::clock::system());
        let txn = guarded_txn();
        assert!(!checks.wanted("a", &txn), "nothing seen yet");
        for _ in 0..3 {
            checks.record("a", true);
        }
        assert!(checks.wanted("a", &txn), "three refusals in a row");
        assert!(!checks.wanted("b", &txn), "scores are per context");
        let unguarded = TxnRequest { compare: vec![], ..txn.clone() };
        assert!(!checks.wanted("a", &unguarded), "a write without a comparison is never refused");
        for _ in 0..20 {
            checks.record("a", false);
        }
        assert!(!checks.wanted("a", &txn), "writes succeed again");
        // One refusal in twenty-five (a spread-out workload) never turns them on.
        for i in 0..500 {
            checks.record("c", i % 25 == 0);
            assert!(!checks.wanted("c", &txn));
        }
    }
}
