//! Planning a transaction: which branch runs, its operations applied in
//! order, and the revision they make.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::stale::{Decision, decide, refusal};
use super::*;

/// What a transaction plan needs besides the snapshot.
#[derive(Debug)]
pub struct PlanInput<'a> {
    /// The context, as locked for this commit.
    pub context: &'a ContextInfo,
    /// Its compiled schemas.
    pub schemas: &'a CompiledSchemas,
    /// Limits to enforce.
    pub limits: &'a Limits,
    /// The writing agent.
    pub author: &'a str,
    /// Commit time.
    pub now: Timestamp,
}

/// Plans a transaction against `snapshot`. Comparison failures are not
/// errors (the failure branch runs); an operation that cannot be applied
/// fails the whole transaction and nothing changes.
///
/// Three steps: choose the branch (settling stale writes by the
/// context's policy, which may refuse the whole transaction), apply its
/// operations in order, and finish the revision (the
/// conflict records of settled writes, the entry-count limit).
pub fn plan_txn(input: &PlanInput<'_>, snapshot: &Snapshot, txn: &TxnRequest) -> Result<(Plan, TxnResponse)> {
    let chosen = match choose(input, snapshot, txn)? {
        Branch::Refused(plan, response) => return Ok((plan, response)),
        Branch::Run(chosen) => chosen,
    };
    let mut applier = Applier {
        input,
        scope: txn.scope.as_ref(),
        settled: &chosen.settled,
        builder: PlanBuilder::new(input.context, input.author, input.now, commit_kind(chosen.ops)),
        state: snapshot.entries.iter().map(|(k, e)| (k.clone(), Some(e.clone()))).collect(),
        written: BTreeSet::new(),
        deleted_prefixes: Vec::new(),
        prefix_deleted: BTreeSet::new(),
    };
    let results = chosen.ops.iter().map(|op| applier.apply(op)).collect::<Result<Vec<_>>>()?;
    finish(input, snapshot, applier.builder, chosen, results)
}

/// The kind of the commit that runs `ops`: that of its write when it has
/// one, else `txn`.
fn commit_kind(ops: &[Op]) -> &'static str {
    use crate::history::commit_kinds as kinds;
    let mut writes = ops.iter().filter(|op| op.is_write());
    match (writes.next(), writes.next()) {
        (Some(Op::Put { .. }), None) => kinds::PUT,
        (Some(Op::Patch { .. }), None) => kinds::PATCH,
        (Some(Op::Delete { .. }), None) => kinds::DELETE,
        (Some(Op::DeletePrefix { .. }), None) => kinds::DELETE_PREFIX,
        _ => kinds::TXN,
    }
}

/// What a transaction runs: its branch, and how the stale writes in it
/// were settled (by key).
struct Chosen<'t> {
    succeeded: bool,
    ops: &'t [Op],
    settled: BTreeMap<String, Decision>,
}

enum Branch<'t> {
    /// The policy refused the transaction: this plan (its conflict
    /// records) and this answer.
    Refused(Plan, TxnResponse),
    Run(Chosen<'t>),
}

/// Picks the branch: `success` when every comparison holds or every stale
/// write is settled by the policy, else `failure`.
fn choose<'t>(input: &PlanInput<'_>, snapshot: &Snapshot, txn: &'t TxnRequest) -> Result<Branch<'t>> {
    let compares = txn.comparisons();
    if let Some(scope) = txn.scope.as_ref() {
        for c in &compares {
            if let Some(e) = snapshot.entries.get(c.key.as_str()) {
                scope.check_compare(c, e)?;
            }
        }
    }
    let chosen = if compares.iter().all(|c| c.holds(snapshot.entries.get(c.key.as_str()))) {
        Chosen { succeeded: true, ops: &txn.success, settled: BTreeMap::new() }
    } else if let Some(stale) = txn.stale_writes(snapshot) {
        let decisions = stale.iter().map(|s| decide(input, snapshot, txn, s)).collect::<Result<Vec<_>>>()?;
        if let Some((plan, response)) = refusal(input, snapshot, txn, &decisions) {
            return Ok(Branch::Refused(plan, response));
        }
        let settled = decisions.into_iter().map(|d| (d.key.clone(), d)).collect();
        Chosen { succeeded: true, ops: &txn.success, settled }
    } else {
        Chosen { succeeded: false, ops: &txn.failure, settled: BTreeMap::new() }
    };
    if input.context.settings.policy.require_precondition {
        check_preconditions(&compares, chosen.ops)?;
    }
    Ok(Branch::Run(chosen))
}

/// The operations of a branch, applied in order to the snapshot: each
/// sees the writes before it.
struct Applier<'a, 'i> {
    input: &'a PlanInput<'i>,
    scope: Option<&'a TxnScope>,
    settled: &'a BTreeMap<String, Decision>,
    builder: PlanBuilder,
    /// Every entry as the operations so far left it (`None`: deleted).
    state: BTreeMap<String, Option<Entry>>,
    written: BTreeSet<String>,
    deleted_prefixes: Vec<String>,
    /// The keys a `delete_prefix` deleted (written by it).
    prefix_deleted: BTreeSet<String>,
}

impl Applier<'_, '_> {
    fn apply(&mut self, op: &Op) -> Result<OpResult> {
        match op {
            Op::Put { key, write } => self.put(key.as_str(), write),
            Op::Patch { key, patch } => self.patch(key.as_str(), patch),
            Op::Delete { key } => self.delete(key.as_str()),
            Op::DeletePrefix { prefix } => self.delete_prefix(prefix),
            Op::Get { key, prefix } => Ok(self.get(key.as_ref(), prefix.as_deref())),
        }
    }

    /// A key is written at most once per transaction; a `delete_prefix`
    /// writes the keys it deletes (a key under its prefix that did not
    /// exist may still be written after it).
    fn claim(&mut self, key: &str) -> Result<()> {
        if !self.written.insert(key.to_owned()) || self.prefix_deleted.contains(key) {
            return Err(Error::InvalidTxn(format!("key {key:?} is written more than once")));
        }
        Ok(())
    }

    /// What a settled stale write writes instead of its operation.
    fn replacement(&self, key: &str) -> Option<(Value, EntryMeta)> {
        match self.settled.get(key).and_then(|d| d.replace.clone()) {
            Some((Some(value), meta)) => Some((value, meta)),
            _ => None,
        }
    }

    fn current(&self, key: &str) -> Option<Entry> {
        self.state.get(key).cloned().flatten()
    }

    fn put(&mut self, key: &str, write: &EntryWrite) -> Result<OpResult> {
        self.claim(key)?;
        let (value, meta) = match self.replacement(key) {
            Some(replaced) => replaced,
            None => write.clone().into_meta(self.input.now)?,
        };
        check_value(self.input.limits, self.input.schemas, key, &value)?;
        let before = self.current(key);
        if let Some(scope) = self.scope {
            scope.check_write(key, before.as_ref(), Some(&meta))?;
        }
        let entry = self.builder.put(key, before.as_ref(), value, meta);
        self.state.insert(key.to_owned(), Some(entry.clone()));
        Ok(OpResult::Put { entry })
    }

    fn patch(&mut self, key: &str, patch: &PatchBody) -> Result<OpResult> {
        self.claim(key)?;
        let Some(before) = self.current(key) else {
            return Err(Error::not_found(format!("entry {key:?}")));
        };
        if let Some(scope) = self.scope {
            // A patch answers with the whole new value: it reads.
            if !scope.read.permits_entry(&before) {
                return Err(forbidden(key, "read"));
            }
            scope.check_write(key, Some(&before), None)?;
        }
        let (value, meta) = match self.replacement(key) {
            Some(replaced) => replaced,
            None => {
                let mut value = before.value.clone();
                patch.apply(key, &mut value)?;
                (value, before.meta.clone())
            }
        };
        check_value(self.input.limits, self.input.schemas, key, &value)?;
        let entry = self.builder.put(key, Some(&before), value, meta);
        self.state.insert(key.to_owned(), Some(entry.clone()));
        Ok(OpResult::Patch { entry })
    }

    fn delete(&mut self, key: &str) -> Result<OpResult> {
        self.claim(key)?;
        let mut before = self.current(key);
        if let (Some(scope), Some(b)) = (self.scope, &before) {
            scope.check_write(key, Some(b), None)?;
        }
        // A merge that kept the current value deletes nothing.
        if self.replacement(key).is_some() {
            before = None;
        }
        let existed = before.is_some();
        if let Some(before) = before {
            self.builder.remove(&before, ChangeKind::Deleted);
            self.state.insert(key.to_owned(), None);
        }
        Ok(OpResult::Delete { key: key.to_owned(), deleted: existed })
    }

    fn delete_prefix(&mut self, prefix: &str) -> Result<OpResult> {
        if self.written.iter().any(|k| k.starts_with(prefix))
            || self.deleted_prefixes.iter().any(|p| p.starts_with(prefix) || prefix.starts_with(p.as_str()))
        {
            return Err(Error::InvalidTxn(format!("prefix {prefix:?} overlaps another write")));
        }
        let doomed: Vec<Entry> =
            self.state.iter().filter(|(k, _)| k.starts_with(prefix)).filter_map(|(_, e)| e.clone()).collect();
        for before in &doomed {
            if let Some(scope) = self.scope {
                scope.check_write(&before.key, Some(before), None)?;
            }
            self.builder.remove(before, ChangeKind::Deleted);
            self.state.insert(before.key.clone(), None);
            self.prefix_deleted.insert(before.key.clone());
        }
        self.deleted_prefixes.push(prefix.to_owned());
        Ok(OpResult::DeletePrefix { prefix: prefix.to_owned(), deleted: doomed.len() as u64 })
    }

    fn get(&self, key: Option<&EntryKey>, prefix: Option<&str>) -> OpResult {
        let entries: Vec<Entry> = match (key, prefix) {
            (Some(key), _) => self.current(key.as_str()).into_iter().collect(),
            (None, Some(prefix)) => {
                self.state.iter().filter(|(k, _)| k.starts_with(prefix)).filter_map(|(_, e)| e.clone()).collect()
            }
            (None, None) => Vec::new(),
        };
        // An entry the caller may not read is, for it, absent.
        let entries = match self.scope {
            Some(scope) => entries.into_iter().filter(|e| scope.read.permits_entry(e)).collect(),
            None => entries,
        };
        OpResult::Get { entries }
    }
}

/// Closes the revision: a conflict record for each settled stale write,
/// and the limit on the number of entries.
fn finish(
    input: &PlanInput<'_>,
    snapshot: &Snapshot,
    mut builder: PlanBuilder,
    chosen: Chosen<'_>,
    results: Vec<OpResult>,
) -> Result<(Plan, TxnResponse)> {
    let mut reports = Vec::new();
    for (key, d) in chosen.settled {
        let current = snapshot.entries.get(&key);
        let conflict = d.record(&builder, input, current, Severity::Low);
        reports.push(d.report(Some(conflict.id.clone()), None));
        builder.conflict(conflict);
    }
    let plan = builder.finish();
    let live = input.context.entry_count as i64 + plan.entry_count_delta;
    if plan.entry_count_delta > 0 && live as u64 > input.limits.max_entries_per_context {
        return Err(Error::TooLarge {
            what: "number of entries in the context".into(),
            limit: input.limits.max_entries_per_context,
            actual: live as u64,
        });
    }
    let revision = if plan.is_empty() { input.context.revision } else { plan.revision };
    Ok((plan, TxnResponse { succeeded: chosen.succeeded, revision, results, conflicts: reports }))
}

fn check_preconditions(compare: &[Compare], ops: &[Op]) -> Result<()> {
    let compared: BTreeSet<&str> = compare.iter().map(|c| c.key.as_str()).collect();
    for op in ops {
        let covered = match op {
            Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key } => compared.contains(key.as_str()),
            Op::DeletePrefix { .. } => !compared.is_empty(),
            Op::Get { .. } => true,
        };
        if !covered {
            return Err(Error::PreconditionRequired);
        }
    }
    Ok(())
}

/// Checks a value about to be written at `key` against the size limit
/// and the context's schemas.
pub fn check_value(limits: &Limits, schemas: &CompiledSchemas, key: &str, value: &Value) -> Result<()> {
    let size = serde_json::to_vec(value).map(|v| v.len() as u64).unwrap_or(u64::MAX);
    if size > limits.max_value_bytes {
        return Err(Error::TooLarge { what: format!("value of {key:?}"), limit: limits.max_value_bytes, actual: size });
    }
    schemas.validate(key, value)
}
