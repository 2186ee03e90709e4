//! Stale writes: how a context's conflict policy meets a write whose
//! comparison failed (reject, last writer wins, authority, merge, manual),
//! and the refusal of a transaction the policy does not settle.

use serde_json::Value;

use super::*;

/// How the policy met one stale write.
#[derive(Debug)]
pub(super) struct Decision {
    pub(super) key: String,
    strategy: Strategy,
    outcome: Outcome,
    reason: Option<String>,
    fields: Vec<String>,
    /// A merge's result, written instead of the operation (`None` inside:
    /// deleted), with its metadata.
    pub(super) replace: Option<(Option<Value>, EntryMeta)>,
    base_revision: Option<u64>,
    /// The write kept aside (`manual`).
    proposed: Option<Proposed>,
}

impl Decision {
    fn refuse(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Rejected;
        self.reason = Some(reason.into());
        self
    }

    /// The conflict record of this decision, as the next one of `builder`.
    pub(super) fn record(
        &self,
        builder: &PlanBuilder,
        input: &PlanInput<'_>,
        current: Option<&Entry>,
        severity: Severity,
    ) -> Conflict {
        let mut tags: Vec<String> = current.map(|c| c.meta.tags.clone()).unwrap_or_default();
        let mut confidential = current.is_some_and(|c| c.meta.confidential);
        if let Some(p) = &self.proposed {
            tags.extend(p.meta.tags.iter().filter(|t| !tags.contains(t)).cloned().collect::<Vec<_>>());
            confidential |= p.meta.confidential;
        }
        Conflict {
            id: builder.next_conflict_id(),
            context: input.context.id.clone(),
            key: self.key.clone(),
            strategy: self.strategy,
            severity,
            status: if severity == Severity::High { ConflictStatus::Pending } else { ConflictStatus::Resolved },
            outcome: self.outcome,
            detected_revision: builder.revision(),
            detected_at: input.now,
            author: input.author.to_owned(),
            base_revision: self.base_revision,
            current_revision: current.map_or(0, |c| c.revision),
            current_author: current.map(|c| c.author.clone()),
            fields: self.fields.clone(),
            proposed: self.proposed.clone(),
            tags,
            confidential,
            resolution: None,
            candidates: Vec::new(),
        }
    }

    pub(super) fn report(&self, conflict: Option<String>, current: Option<&Entry>) -> ConflictReport {
        ConflictReport {
            key: self.key.clone(),
            strategy: self.strategy,
            outcome: self.outcome,
            conflict,
            reason: self.reason.clone(),
            fields: self.fields.clone(),
            current: current.cloned().map(Box::new),
        }
    }
}

/// The operation of the success branch that writes `key`.
fn write_of<'t>(txn: &'t TxnRequest, key: &str) -> Option<&'t Op> {
    txn.success.iter().find(|op| match op {
        Op::Put { key: k, .. } | Op::Patch { key: k, .. } | Op::Delete { key: k } => k.as_str() == key,
        _ => false,
    })
}

/// What `op` would make of the entry if it were applied to `base`: the
/// value (`None`: deleted) and metadata.
fn applied_to(op: &Op, base: Option<&Entry>, now: Timestamp) -> Result<(Option<Value>, EntryMeta)> {
    let meta = || base.map(|b| b.meta.clone()).unwrap_or_default();
    match op {
        Op::Put { write, .. } => {
            let (value, meta) = write.clone().into_meta(now)?;
            Ok((Some(value), meta))
        }
        Op::Patch { key, patch } => {
            let Some(base) = base else { return Err(Error::not_found(format!("entry {:?}", key.as_str()))) };
            let mut value = base.value.clone();
            patch.apply(key.as_str(), &mut value)?;
            Ok((Some(value), meta()))
        }
        _ => Ok((None, meta())),
    }
}

/// Decides one stale write by the policy of its key.
pub(super) fn decide(
    input: &PlanInput<'_>,
    snapshot: &Snapshot,
    txn: &TxnRequest,
    stale: &StaleWrite,
) -> Result<Decision> {
    let key = stale.key.as_str();
    let rules = input.context.settings.policy.rules_for(key);
    let current = snapshot.entries.get(key);
    let base = snapshot.bases.get(key);
    let op = write_of(txn, key).ok_or_else(|| Error::InvalidTxn(format!("no write of {key:?}")))?;
    let trust = |agent: &str| snapshot.trust.get(agent).copied().unwrap_or(Trust::None);
    let (writer, holder) = (trust(input.author), current.map_or(Trust::None, |c| trust(&c.author)));
    let decision = Decision {
        key: key.to_owned(),
        strategy: rules.strategy,
        outcome: Outcome::Rejected,
        reason: None,
        fields: Vec::new(),
        replace: None,
        base_revision: base.and_then(|b| b.as_ref().map(|e| e.revision)),
        proposed: None,
    };
    let outranked = || {
        format!(
            "authority: the current version's author is trusted {}, the writer {}; the higher trust wins, a tie is refused",
            trust_name(holder),
            trust_name(writer)
        )
    };
    Ok(match rules.strategy {
        Strategy::Reject => decision.refuse(match (current, base) {
            (Some(_), _) => "the entry changed since it was read (policy: reject)",
            (None, Some(Some(_))) => "it was deleted since it was read (policy: reject)",
            // Nothing to have read: the precondition names a version the
            // entry never had.
            (None, _) => "read it again, or create it with If-None-Match: *",
        }),
        Strategy::LastWriteWins => Decision { outcome: Outcome::Overwritten, ..decision },
        Strategy::Authority if writer > holder => Decision { outcome: Outcome::Won, ..decision },
        Strategy::Authority => decision.refuse(outranked()),
        Strategy::Manual => {
            let (value, meta) = applied_to(op, base.and_then(Option::as_ref).or(current), input.now)?;
            let proposed = Proposed { deleted: value.is_none(), value: value.unwrap_or(Value::Null), meta };
            Decision { outcome: Outcome::Pending, proposed: Some(proposed), ..decision }
        }
        Strategy::Merge => {
            let Some(base) = base else {
                return Ok(decision.refuse("merge: the version the write was based on is no longer in history"));
            };
            let (ours, meta) = applied_to(op, base.as_ref(), input.now)?;
            let prefer = match rules.on_field_conflict {
                Strategy::LastWriteWins => Some(Side::Ours),
                Strategy::Authority if writer > holder => Some(Side::Ours),
                Strategy::Authority if writer < holder => Some(Side::Theirs),
                _ => None,
            };
            let merged =
                merge3(base.as_ref().map(|b| &b.value), ours.as_ref(), current.map(|c| &c.value), rules.arrays, prefer);
            let fields = merged.conflicts.clone();
            let decision = Decision { fields, ..decision };
            if !merged.conflicts.is_empty() && prefer.is_none() {
                let list = merged.conflicts.iter().map(|f| if f.is_empty() { "/" } else { f.as_str() });
                let rule = match rules.on_field_conflict {
                    Strategy::Authority => outranked(),
                    _ => "on_field_conflict: reject".to_owned(),
                };
                return Ok(decision
                    .refuse(format!("merge: changed both ways: {} ({rule})", list.collect::<Vec<_>>().join(", "))));
            }
            if merged.value.is_none() && !matches!(op, Op::Delete { .. }) {
                return Ok(decision.refuse("merge: the entry was deleted, and the merge keeps it deleted"));
            }
            let meta = match (&merged.value, current) {
                // The current value stands: so does its metadata.
                (Some(v), Some(c)) if *v == c.value && ours.as_ref() != Some(v) => c.meta.clone(),
                _ => meta,
            };
            Decision { outcome: Outcome::Merged, replace: Some((merged.value, meta)), ..decision }
        }
    })
}

fn trust_name(t: Trust) -> &'static str {
    match t {
        Trust::None => "none",
        Trust::Low => "low",
        Trust::Medium => "medium",
        Trust::High => "high",
        Trust::Full => "full",
    }
}

/// When a decision refuses, or keeps a write aside: the whole answer (the
/// transaction applies nothing; a pending conflict takes a revision).
pub(super) fn refusal(
    input: &PlanInput<'_>,
    snapshot: &Snapshot,
    txn: &TxnRequest,
    decisions: &[Decision],
) -> Option<(Plan, TxnResponse)> {
    let readable = |e: &&Entry| txn.scope.as_ref().is_none_or(|s| s.read.permits_entry(e));
    let current = |key: &str| snapshot.entries.get(key).filter(readable);
    let writes = txn.success.iter().filter(|op| op.is_write()).count();
    let alone = writes == 1 && !txn.success.iter().any(|op| matches!(op, Op::DeletePrefix { .. }));
    let refused = decisions.iter().any(|d| d.outcome == Outcome::Rejected || (d.outcome == Outcome::Pending && !alone));
    let mut builder = PlanBuilder::new(input.context, input.author, input.now, crate::history::commit_kinds::TXN);
    let mut reports = Vec::new();
    if refused {
        for d in decisions {
            let mut report = d.report(None, current(&d.key));
            if d.outcome == Outcome::Pending {
                report.outcome = Outcome::Rejected;
                report.reason = Some("manual: a write kept aside must be the transaction's only write".into());
            }
            reports.push(report);
        }
        let response =
            TxnResponse { succeeded: false, revision: input.context.revision, results: vec![], conflicts: reports };
        return Some((builder.finish(), response));
    }
    let pending = decisions.iter().find(|d| d.outcome == Outcome::Pending)?;
    let conflict = pending.record(&builder, input, snapshot.entries.get(&pending.key), Severity::High);
    reports.push(pending.report(Some(conflict.id.clone()), current(&pending.key)));
    builder.conflict(conflict);
    let plan = builder.finish();
    let response = TxnResponse { succeeded: false, revision: plan.revision, results: vec![], conflicts: reports };
    Some((plan, response))
}
