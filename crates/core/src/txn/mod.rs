//! Transactions: comparisons, then operations on success or on failure,
//! applied atomically to one context (like etcd's Txn).
//!
//! A backend locks the context, loads a [`Snapshot`] of the keys and prefixes
//! in [`TxnRequest::read_set`], and calls [`plan_txn`]; the returned [`Plan`]
//! holds every row the backend must write. The same [`PlanBuilder`] builds the
//! plans of rollbacks, expiries and forks, so every write path versions
//! entries and emits events the same way.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::Timestamp;
use crate::agent::Trust;
use crate::conflict::{Conflict, ConflictReport, ConflictStatus, Outcome, Proposed, Severity};
use crate::context::ContextInfo;
use crate::context::Strategy;
use crate::entry::{Entry, EntryMeta, EntryWrite, Priority, VClock};
use crate::error::{Error, Result};
use crate::event::{Event, types};
use crate::history::{Commit, event_value};
use crate::ids::{EntryKey, validate_prefix};
use crate::limits::Limits;
use crate::merge::{Side, merge3};
use crate::schema::CompiledSchemas;

mod builder;
mod plan;
mod stale;

pub use builder::PlanBuilder;
pub use plan::{PlanInput, check_value, plan_txn};

/// How a comparison compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// Equal (the default).
    #[default]
    Eq,
    /// Not equal.
    Ne,
    /// Less than (numeric targets only).
    Lt,
    /// Greater than (numeric targets only).
    Gt,
}

/// One comparison. Exactly one of `revision`, `version`, `exists`, `value`
/// and `vclock` is given. An absent entry has revision 0 and version 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The key compared.
    #[schema(value_type = String)]
    pub key: EntryKey,
    /// The comparison operator (default `eq`).
    #[serde(default)]
    pub op: CompareOp,
    /// Compare the entry's revision (its ETag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Compare the entry's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Compare whether the entry exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// Compare the entry's value (`eq`/`ne` only; an absent entry equals nothing).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A causal precondition: the version vector the write was based on.
    /// It holds when the entry's vector does not go beyond it (the writer
    /// has seen every write to the entry: the write descends from it); an
    /// absent entry matches an empty vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub vclock: Option<VClock>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Compare {
    fn validate(&self) -> Result<()> {
        let targets = [
            self.revision.is_some(),
            self.version.is_some(),
            self.exists.is_some(),
            self.value.is_some(),
            self.vclock.is_some(),
        ];
        if targets.iter().filter(|t| **t).count() != 1 {
            return Err(Error::InvalidTxn(format!(
                "compare on {:?} must give exactly one of revision, version, exists, value, vclock",
                self.key.as_str()
            )));
        }
        let ordered = matches!(self.op, CompareOp::Lt | CompareOp::Gt);
        if ordered && (self.exists.is_some() || self.value.is_some()) {
            return Err(Error::InvalidTxn("lt and gt compare only revision or version".into()));
        }
        if self.vclock.is_some() && self.op != CompareOp::Eq {
            return Err(Error::InvalidTxn("a vclock compares with eq only (the write descends from it)".into()));
        }
        Ok(())
    }

    fn holds(&self, entry: Option<&Entry>) -> bool {
        let numeric = |actual: u64, expected: u64| match self.op {
            CompareOp::Eq => actual == expected,
            CompareOp::Ne => actual != expected,
            CompareOp::Lt => actual < expected,
            CompareOp::Gt => actual > expected,
        };
        let equality = |equal: bool| if self.op == CompareOp::Ne { !equal } else { equal };
        if let Some(r) = self.revision {
            numeric(entry.map_or(0, |e| e.revision), r)
        } else if let Some(v) = self.version {
            numeric(entry.map_or(0, |e| e.version), v)
        } else if let Some(x) = self.exists {
            equality(entry.is_some() == x)
        } else if let Some(v) = &self.value {
            equality(entry.is_some_and(|e| &e.value == v))
        } else if let Some(seen) = &self.vclock {
            match entry {
                None => seen.is_empty(),
                Some(e) => e.vclock.iter().all(|(agent, n)| seen.get(agent).is_some_and(|s| s >= n)),
            }
        } else {
            false
        }
    }

    /// A comparison on `key`.
    pub fn on(key: EntryKey) -> Self {
        Compare { key, op: CompareOp::Eq, revision: None, version: None, exists: None, value: None, vclock: None }
    }

    /// The version the writer read, when this comparison names one (an
    /// equality on revision or version, or a vclock).
    fn base(&self) -> Option<BaseRef> {
        if self.op != CompareOp::Eq {
            return None;
        }
        match (self.revision, self.version, &self.vclock) {
            (Some(r), _, _) => Some(BaseRef::Revision(r)),
            (_, Some(v), _) => Some(BaseRef::Version(v)),
            (_, _, Some(vc)) => Some(BaseRef::VClock(vc.clone())),
            _ => None,
        }
    }
}

/// How a stale write names the version it was based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseRef {
    /// The version with this revision.
    Revision(u64),
    /// The version with this version number.
    Version(u64),
    /// The version with this version vector (empty: the entry was absent).
    VClock(VClock),
}

/// A write whose precondition is stale, that the context's policy settles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleWrite {
    /// The key.
    pub key: String,
    /// The version the writer read.
    pub base: BaseRef,
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", try_from = "Map<String, Value>")]
pub enum Op {
    /// Create or replace an entry (value and metadata).
    Put {
        /// The key written.
        #[schema(value_type = String)]
        key: EntryKey,
        /// The value and metadata.
        #[serde(flatten)]
        write: EntryWrite,
    },
    /// Change an existing entry's value by a patch; metadata is kept.
    Patch {
        /// The key patched.
        #[schema(value_type = String)]
        key: EntryKey,
        /// The patch.
        #[serde(flatten)]
        patch: PatchBody,
    },
    /// Delete one entry (no error when absent).
    Delete {
        /// The key deleted.
        #[schema(value_type = String)]
        key: EntryKey,
    },
    /// Delete every entry whose key starts with `prefix`.
    DeletePrefix {
        /// The prefix (a plain string prefix of keys).
        prefix: String,
    },
    /// Read one entry (`key`) or every entry under `prefix`.
    Get {
        /// The key read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        key: Option<EntryKey>,
        /// The prefix read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

/// A patch of an entry's value: exactly one of the two forms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatchBody {
    /// JSON Merge Patch (RFC 7386).
    #[schema(value_type = Object)]
    MergePatch(Value),
    /// JSON Patch (RFC 6902): an array of operations.
    #[schema(value_type = Vec<Object>)]
    JsonPatch(Value),
}

impl PatchBody {
    /// Applies the patch to `value`; a JSON Patch that fails leaves it
    /// unchanged.
    pub fn apply(&self, key: &str, value: &mut Value) -> Result<()> {
        match self {
            PatchBody::MergePatch(patch) => {
                json_patch::merge(value, patch);
                Ok(())
            }
            PatchBody::JsonPatch(ops) => {
                let bad = |reason: String| Error::InvalidPatch { key: key.to_owned(), reason };
                let patch: json_patch::Patch =
                    serde_json::from_value(ops.clone()).map_err(|e| bad(format!("malformed JSON Patch: {e}")))?;
                // Patched on a copy, kept only on success: `json_patch::patch`
                // undoes a failed patch by replaying inverse operations, and
                // panics when one cannot be replayed (a `move` to an ancestor
                // of its `from`, then a failing `test`), which would take the
                // store's writer down with it.
                let mut patched = value.clone();
                json_patch::patch_unsafe(&mut patched, &patch).map_err(|e| bad(e.to_string()))?;
                *value = patched;
                Ok(())
            }
        }
    }
}

impl TryFrom<Map<String, Value>> for Op {
    type Error = String;

    fn try_from(mut map: Map<String, Value>) -> std::result::Result<Self, String> {
        let op = match map.remove("op") {
            Some(Value::String(op)) => op,
            _ => return Err("each operation needs \"op\": put, patch, delete, delete_prefix or get".into()),
        };
        let key = |map: &mut Map<String, Value>| -> std::result::Result<EntryKey, String> {
            match map.remove("key") {
                Some(Value::String(k)) => EntryKey::parse(&k).map_err(|e| e.to_string()),
                _ => Err(format!("operation {op:?} needs a string \"key\"")),
            }
        };
        let no_more = |map: &Map<String, Value>| match map.keys().next() {
            Some(field) => Err(format!("unknown field {field:?} in a {op:?} operation")),
            None => Ok(()),
        };
        let result = match op.as_str() {
            "put" => {
                let key = key(&mut map)?;
                let write = serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
                Op::Put { key, write }
            }
            "patch" => {
                let key = key(&mut map)?;
                let patch = match (map.remove("merge_patch"), map.remove("json_patch")) {
                    (Some(p), None) => PatchBody::MergePatch(p),
                    (None, Some(p)) => PatchBody::JsonPatch(p),
                    _ => return Err("a patch operation needs exactly one of merge_patch and json_patch".into()),
                };
                no_more(&map)?;
                Op::Patch { key, patch }
            }
            "delete" => {
                let key = key(&mut map)?;
                no_more(&map)?;
                Op::Delete { key }
            }
            "delete_prefix" => {
                let prefix = match map.remove("prefix") {
                    Some(Value::String(p)) => p,
                    _ => return Err("delete_prefix needs a string \"prefix\"".into()),
                };
                no_more(&map)?;
                Op::DeletePrefix { prefix }
            }
            "get" => {
                let k = if map.contains_key("key") { Some(key(&mut map)?) } else { None };
                let prefix = match map.remove("prefix") {
                    None => None,
                    Some(Value::String(p)) => Some(p),
                    Some(_) => return Err("get's \"prefix\" must be a string".into()),
                };
                no_more(&map)?;
                if k.is_some() == prefix.is_some() {
                    return Err("get needs exactly one of key and prefix".into());
                }
                Op::Get { key: k, prefix }
            }
            other => return Err(format!("unknown op {other:?}: use put, patch, delete, delete_prefix or get")),
        };
        Ok(result)
    }
}

impl Op {
    fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// `POST /v1/contexts/{ctx}/txn`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxnRequest {
    /// Comparisons; all must hold for `success` to run.
    #[serde(default)]
    pub compare: Vec<Compare>,
    /// Operations applied when every comparison holds.
    #[serde(default)]
    pub success: Vec<Op>,
    /// Operations applied otherwise.
    #[serde(default)]
    pub failure: Vec<Op>,
    /// A fencing token: the transaction is refused (`409 fenced`) when a
    /// newer token of that lock of the context has been issued. Over HTTP,
    /// also the `X-Fencing-Token: <lock>=<token>` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<crate::coord::Fence>,
    /// The entries the caller may read and write, when not all: set by the
    /// server from the caller's access, never sent by clients.
    #[serde(skip)]
    pub scope: Option<TxnScope>,
}

/// The entries a transaction's caller may read and write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnScope {
    /// What it may read (`get` results, value comparisons, patches).
    pub read: crate::access::EntryScope,
    /// What it may write.
    pub write: crate::access::EntryScope,
}

impl TxnScope {
    /// Refuses a comparison of `entry` (a value comparison needs read; any
    /// other, read or write).
    fn check_compare(&self, compare: &Compare, entry: &Entry) -> Result<()> {
        let value = compare.value.is_some();
        if self.read.permits_entry(entry) || (!value && self.write.permits_entry(entry)) {
            return Ok(());
        }
        Err(forbidden(&entry.key, if value { "read" } else { "read or write" }))
    }

    /// Refuses a write that replaces `before` (if any) with an entry at
    /// `key` carrying `meta` (for deletions, `None`).
    pub fn check_write(&self, key: &str, before: Option<&Entry>, meta: Option<&EntryMeta>) -> Result<()> {
        let new_ok = meta.is_none_or(|m| self.write.permits(key, &m.tags, false, None));
        if before.is_none_or(|b| self.write.permits(key, &b.meta.tags, false, None)) && new_ok {
            return Ok(());
        }
        Err(forbidden(key, "write"))
    }
}

fn forbidden(key: &str, what: &str) -> Error {
    Error::Forbidden { reason: format!("the caller may not {what} entry {key:?}") }
}

/// Keys and prefixes a transaction reads; the snapshot must cover them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    /// Single keys.
    pub keys: BTreeSet<String>,
    /// Key prefixes (all entries under each).
    pub prefixes: BTreeSet<String>,
}

impl TxnRequest {
    /// Checks the shape of the transaction against the limits.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        let count = (self.compare.len() + self.success.len() + self.failure.len()) as u64;
        if count > limits.max_txn_ops {
            return Err(Error::TooLarge { what: "transaction".into(), limit: limits.max_txn_ops, actual: count });
        }
        for c in &self.compare {
            c.validate()?;
        }
        for op in self.success.iter().chain(&self.failure) {
            match op {
                Op::DeletePrefix { prefix } => validate_prefix(prefix)?,
                Op::Get { prefix: Some(prefix), .. } => validate_prefix(prefix)?,
                _ => {}
            }
            let key = match op {
                Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key } => Some(key),
                Op::Get { key, .. } => key.as_ref(),
                Op::DeletePrefix { .. } => None,
            };
            if let Some(key) = key
                && key.as_str().len() as u64 > limits.max_key_bytes
            {
                return Err(Error::TooLarge {
                    what: "key".into(),
                    limit: limits.max_key_bytes,
                    actual: key.as_str().len() as u64,
                });
            }
        }
        Ok(())
    }

    /// Whether any branch writes.
    pub fn writes(&self) -> bool {
        self.success.iter().chain(&self.failure).any(Op::is_write)
    }

    /// The comparisons, with the causal preconditions that `put`
    /// operations carry (`vclock`) added as comparisons.
    pub fn comparisons(&self) -> Vec<Compare> {
        let mut all = self.compare.clone();
        for op in &self.success {
            if let Op::Put { key, write } = op
                && let Some(vc) = &write.vclock
            {
                all.push(Compare { vclock: Some(vc.clone()), ..Compare::on(key.clone()) });
            }
        }
        all
    }

    /// When some comparisons fail against `snapshot` and every failed one
    /// is a stale precondition of a write (an equality on revision or
    /// version, or a vclock, on a key the success branch writes) and there
    /// is no failure branch: those writes, for the context's policy to
    /// settle. `None` otherwise (the failure branch runs).
    pub fn stale_writes(&self, snapshot: &Snapshot) -> Option<Vec<StaleWrite>> {
        if !self.failure.is_empty() {
            return None;
        }
        let written: BTreeSet<&str> = self
            .success
            .iter()
            .filter_map(|op| match op {
                Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let mut stale: Vec<StaleWrite> = Vec::new();
        for c in self.comparisons() {
            if c.holds(snapshot.entries.get(c.key.as_str())) {
                continue;
            }
            let base = c.base().filter(|_| written.contains(c.key.as_str()))?;
            if !stale.iter().any(|s| s.key == c.key.as_str()) {
                stale.push(StaleWrite { key: c.key.as_str().to_owned(), base });
            }
        }
        Some(stale).filter(|s| !s.is_empty())
    }

    /// The keys and prefixes the transaction reads.
    pub fn read_set(&self) -> ReadSet {
        let mut set = ReadSet::default();
        for c in &self.compare {
            set.keys.insert(c.key.as_str().to_owned());
        }
        for op in self.success.iter().chain(&self.failure) {
            match op {
                Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key } | Op::Get { key: Some(key), .. } => {
                    set.keys.insert(key.as_str().to_owned());
                }
                Op::DeletePrefix { prefix } | Op::Get { prefix: Some(prefix), .. } => {
                    set.prefixes.insert(prefix.clone());
                }
                Op::Get { key: None, prefix: None } => {}
            }
        }
        set
    }
}

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpResult {
    /// The entry as written.
    Put {
        /// The entry.
        entry: Entry,
    },
    /// The entry as patched.
    Patch {
        /// The entry.
        entry: Entry,
    },
    /// Whether an entry was deleted.
    Delete {
        /// The key.
        key: String,
        /// Whether it existed.
        deleted: bool,
    },
    /// How many entries were deleted.
    DeletePrefix {
        /// The prefix.
        prefix: String,
        /// Number deleted.
        deleted: u64,
    },
    /// The entries read (one or none for a key).
    Get {
        /// The entries.
        entries: Vec<Entry>,
    },
}

/// The answer to a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TxnResponse {
    /// Whether `success` ran: every comparison held, or the context's
    /// policy settled the stale ones (see `conflicts`).
    pub succeeded: bool,
    /// The revision the transaction committed, or the revision it read at
    /// when it changed nothing.
    pub revision: u64,
    /// One result per operation of the branch that ran.
    pub results: Vec<OpResult>,
    /// Stale writes and how the policy settled them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictReport>,
}

/// The current entries a transaction reads, keyed by key.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// For stale writes: the version each was based on, when history has
    /// it (`None` inside: the entry was absent then).
    pub bases: BTreeMap<String, Option<Entry>>,
    /// Trust levels of the writer and of the current versions' authors
    /// (for `authority`); an agent not listed is trusted `none`.
    pub trust: BTreeMap<String, Trust>,
    /// Live (unexpired) entries covering the read set.
    pub entries: BTreeMap<String, Entry>,
}

/// How an entry changed in a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new entry.
    Created,
    /// A replaced or patched entry.
    Updated,
    /// A deleted entry.
    Deleted,
    /// An entry removed because its time to live ran out.
    Expired,
}

impl ChangeKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Expired => "expired",
        }
    }
}

/// One entry change that a plan makes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The key.
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The entry after the change; `None` for deletions.
    pub after: Option<Entry>,
}

/// Everything one commit writes: entry changes, events, the commit record.
/// (Serialized, it is what the embedded store's commit log records of it.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The revision the plan commits.
    pub revision: u64,
    /// Entry changes, at most one per key.
    pub changes: Vec<Change>,
    /// Events, in order.
    pub events: Vec<Event>,
    /// The commit record.
    pub commit: Commit,
    /// Change in the number of live entries.
    pub entry_count_delta: i64,
    /// Conflict records the commit keeps.
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// Whether committing the plan would change nothing (no revision is used).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.events.is_empty() && self.conflicts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextSettings;
    use serde_json::json;

    fn context(revision: u64, entry_count: u64) -> ContextInfo {
        ContextInfo {
            revision,
            entry_count,
            ..ContextInfo::new("c", "a", ContextSettings::default(), chrono::DateTime::UNIX_EPOCH)
        }
    }

    fn txn(v: Value) -> TxnRequest {
        serde_json::from_value(v).unwrap()
    }

    fn plan(ctx: &ContextInfo, snap: &Snapshot, t: &TxnRequest) -> Result<(Plan, TxnResponse)> {
        let schemas = CompiledSchemas::default();
        let limits = Limits::default();
        let input =
            PlanInput { context: ctx, schemas: &schemas, limits: &limits, author: "agent-a", now: chrono::Utc::now() };
        plan_txn(&input, snap, t)
    }

    /// Two writers from one base under `merge`, with `schema` on `doc`: what
    /// planning the second writer's stale write gives.
    fn merge_second(base: Value, first: Value, second: Value, schema: Value) -> Result<(Plan, TxnResponse)> {
        let mut ctx = context(3, 1);
        ctx.settings.policy.strategy = Strategy::Merge;
        let at = |rev: u64, v: Value, author: &str| Entry {
            key: "doc".into(),
            value: v,
            revision: rev,
            version: rev - 1,
            created_revision: 2,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            author: author.into(),
            meta: EntryMeta::default(),
            vclock: VClock::new(),
        };
        let snap = Snapshot {
            entries: BTreeMap::from([("doc".into(), at(3, first, "agent-b"))]),
            bases: BTreeMap::from([("doc".into(), Some(at(2, base, "agent-b")))]),
            trust: BTreeMap::new(),
        };
        let schemas = CompiledSchemas::compile(&BTreeMap::from([("doc".to_owned(), schema)])).unwrap();
        let limits = Limits::default();
        let input =
            PlanInput { context: &ctx, schemas: &schemas, limits: &limits, author: "agent-a", now: chrono::Utc::now() };
        let t = txn(
            json!({"compare": [{"key": "doc", "revision": 2}], "success": [{"op": "put", "key": "doc", "value": second}]}),
        );
        plan_txn(&input, &snap, &t)
    }

    proptest::proptest! {
        /// Disjoint changes merge, unless the merged value breaks the
        /// schema that each side alone satisfies: then 422, nothing planned.
        #[test]
        fn merged_values_are_checked_against_the_schema(a in 0i64..10, b in 0i64..10, max in 2usize..4) {
            let schema = json!({"type": "object", "maxProperties": max});
            let base = json!({"k": 0});
            let result = merge_second(base, json!({"k": 0, "a": a}), json!({"k": 0, "b": b}), schema);
            if max >= 3 {
                let (plan, response) = result.unwrap();
                proptest::prop_assert!(response.succeeded);
                proptest::prop_assert_eq!(&plan.changes[0].after.as_ref().unwrap().value, &json!({"k": 0, "a": a, "b": b}));
                proptest::prop_assert_eq!(response.conflicts[0].outcome, Outcome::Merged);
            } else {
                proptest::prop_assert_eq!(result.unwrap_err().code(), "schema_violation");
            }
        }
    }

    #[test]
    fn put_creates_then_updates() {
        let ctx = context(1, 0);
        let t = txn(json!({"success": [{"op": "put", "key": "a", "value": 1, "tags": ["x"]}]}));
        let (p, r) = plan(&ctx, &Snapshot::default(), &t).unwrap();
        assert!(r.succeeded);
        assert_eq!(r.revision, 2);
        let e = p.changes[0].after.clone().unwrap();
        assert_eq!((e.version, e.created_revision, e.revision), (1, 2, 2));
        assert_eq!(e.vclock["agent-a"], 1);
        assert_eq!(p.entry_count_delta, 1);

        let ctx = context(2, 1);
        let snap = Snapshot { entries: BTreeMap::from([("a".into(), e)]), ..Default::default() };
        let t = txn(json!({"success": [{"op": "patch", "key": "a", "merge_patch": {"b": 2}}]}));
        let (p, _) = plan(&ctx, &snap, &t).unwrap();
        let e2 = p.changes[0].after.clone().unwrap();
        assert_eq!((e2.version, e2.created_revision, e2.revision), (2, 2, 3));
        assert_eq!(e2.value, json!({"b": 2}));
        assert_eq!(e2.meta.tags, vec!["x".to_string()], "patch keeps metadata");
        assert_eq!(p.entry_count_delta, 0);
    }

    #[test]
    fn failed_compare_runs_failure_branch() {
        let ctx = context(1, 0);
        let t = txn(json!({
            "compare": [{"key": "a", "exists": true}],
            "success": [{"op": "put", "key": "a", "value": 1}],
            "failure": [{"op": "put", "key": "b", "value": 2}]
        }));
        let (p, r) = plan(&ctx, &Snapshot::default(), &t).unwrap();
        assert!(!r.succeeded);
        assert_eq!(p.commit.keys, vec!["b".to_string()]);
    }

    #[test]
    fn read_only_txn_uses_no_revision() {
        let ctx = context(5, 0);
        let t = txn(json!({"success": [{"op": "get", "key": "a"}]}));
        let (p, r) = plan(&ctx, &Snapshot::default(), &t).unwrap();
        assert!(p.is_empty());
        assert_eq!(r.revision, 5);
    }

    #[test]
    fn duplicate_writes_are_rejected() {
        let ctx = context(1, 0);
        let t = txn(json!({"success": [{"op": "put", "key": "a", "value": 1}, {"op": "delete", "key": "a"}]}));
        assert_eq!(plan(&ctx, &Snapshot::default(), &t).unwrap_err().code(), "invalid_txn");
        // A delete_prefix writes the keys it deletes, and only those.
        let t =
            txn(json!({"success": [{"op": "delete_prefix", "prefix": "a/"}, {"op": "put", "key": "a/b", "value": 1}]}));
        let (p, r) = plan(&ctx, &Snapshot::default(), &t).unwrap();
        assert!(r.succeeded);
        let b = p.changes[0].after.clone().unwrap();
        let snap = Snapshot { entries: BTreeMap::from([("a/b".into(), b)]), ..Default::default() };
        assert_eq!(plan(&context(2, 1), &snap, &t).unwrap_err().code(), "invalid_txn");
    }

    #[test]
    fn op_parsing_reports_mistakes() {
        let bad = [
            json!({"op": "put", "key": "a"}),
            json!({"op": "put", "key": "a", "value": 1, "bogus": 1}),
            json!({"op": "patch", "key": "a"}),
            json!({"op": "get"}),
            json!({"op": "nope", "key": "a"}),
            json!({"key": "a"}),
            json!({"op": "delete", "key": "a//b"}),
        ];
        for op in bad {
            assert!(serde_json::from_value::<Op>(op.clone()).is_err(), "{op} should not parse");
        }
        let op: Op = serde_json::from_value(json!({"op": "put", "key": "a", "value": 1, "kind": "note"})).unwrap();
        let back = serde_json::to_value(&op).unwrap();
        assert_eq!(serde_json::from_value::<Op>(back).unwrap(), op);
    }

    #[test]
    fn compares() {
        let entry = Entry {
            key: "a".into(),
            value: json!(7),
            revision: 4,
            version: 2,
            created_revision: 3,
            updated_at: chrono::Utc::now(),
            author: "x".into(),
            meta: EntryMeta::default(),
            vclock: Default::default(),
        };
        let c = |v: Value| serde_json::from_value::<Compare>(v).unwrap();
        assert!(c(json!({"key": "a", "revision": 4})).holds(Some(&entry)));
        assert!(!c(json!({"key": "a", "revision": 3})).holds(Some(&entry)));
        assert!(c(json!({"key": "a", "version": 3, "op": "lt"})).holds(Some(&entry)));
        assert!(c(json!({"key": "a", "revision": 0})).holds(None));
        assert!(c(json!({"key": "a", "exists": false})).holds(None));
        assert!(c(json!({"key": "a", "value": 7})).holds(Some(&entry)));
        assert!(c(json!({"key": "a", "value": 7, "op": "ne"})).holds(None));
        assert!(!c(json!({"key": "a", "value": null})).holds(None));
        assert!(c(json!({"key": "a", "revision": 1, "version": 1})).validate().is_err());
        assert!(c(json!({"key": "a", "exists": true, "op": "gt"})).validate().is_err());
    }

    #[test]
    fn failed_json_patch_after_a_move_to_an_ancestor_changes_nothing() {
        // json-patch's own undo cannot replay this move backwards and panics.
        let patch = PatchBody::JsonPatch(json!([
            {"op": "move", "from": "/a/b", "path": "/a"},
            {"op": "test", "path": "/a", "value": 0}
        ]));
        let mut value = json!({"a": {"b": 1}});
        assert_eq!(patch.apply("doc", &mut value).unwrap_err().code(), "invalid_patch");
        assert_eq!(value, json!({"a": {"b": 1}}));
    }

    #[test]
    fn require_precondition() {
        let mut ctx = context(1, 0);
        ctx.settings.policy.require_precondition = true;
        let blind = txn(json!({"success": [{"op": "put", "key": "a", "value": 1}]}));
        assert_eq!(plan(&ctx, &Snapshot::default(), &blind).unwrap_err().code(), "precondition_required");
        let guarded = txn(
            json!({"compare": [{"key": "a", "exists": false}], "success": [{"op": "put", "key": "a", "value": 1}]}),
        );
        assert!(plan(&ctx, &Snapshot::default(), &guarded).is_ok());
    }
}
