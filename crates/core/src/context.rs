//! Contexts: the shared state of one task, and their settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{ContextId, KeyPattern};
use crate::merge::ArrayMerge;

/// What happens when a write's precondition is stale (docs/conflicts.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `412 Precondition Failed` with the current entry.
    #[default]
    Reject,
    /// The write is applied; the overwrite is recorded.
    LastWriteWins,
    /// Three-way JSON merge.
    Merge,
    /// The writer with the higher trust level wins.
    Authority,
    /// The stale write is kept as a pending conflict.
    Manual,
}

/// A per-key-pattern override of the context's strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    /// Keys this override applies to.
    #[schema(value_type = String)]
    pub pattern: KeyPattern,
    /// The strategy for those keys.
    pub strategy: Strategy,
    /// Field-conflict rule for `merge` on those keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub on_field_conflict: Option<Strategy>,
    /// How `merge` treats arrays of those keys (`set`: as sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrays: Option<ArrayMerge>,
}

/// A context's conflict policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The default strategy.
    #[serde(default)]
    pub strategy: Strategy,
    /// How `merge` settles one field changed both ways: `reject`,
    /// `last-write-wins` or `authority`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub on_field_conflict: Strategy,
    /// Refuse blind writes (writes without a precondition).
    #[serde(default)]
    pub require_precondition: bool,
    /// How `merge` treats arrays: `atomic` (the default: one value) or
    /// `set` (additions of both sides kept, a removal wins).
    #[serde(default, skip_serializing_if = "is_atomic")]
    pub arrays: ArrayMerge,
    /// Strategies per key pattern; the first match wins.
    #[serde(default)]
    pub overrides: Vec<PolicyOverride>,
}

fn is_atomic(a: &ArrayMerge) -> bool {
    *a == ArrayMerge::Atomic
}

/// The conflict rules that govern one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRules {
    /// What a stale write meets.
    pub strategy: Strategy,
    /// How `merge` settles a field changed both ways.
    pub on_field_conflict: Strategy,
    /// How `merge` treats arrays.
    pub arrays: ArrayMerge,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strategy: Strategy::Reject,
            on_field_conflict: Strategy::Reject,
            require_precondition: false,
            arrays: ArrayMerge::Atomic,
            overrides: Vec::new(),
        }
    }
}

impl Policy {
    /// The strategy that governs `key`.
    pub fn strategy_for(&self, key: &str) -> Strategy {
        self.rules_for(key).strategy
    }

    /// The rules that govern `key`: its first matching override, with the
    /// context's settings for what the override leaves out.
    pub fn rules_for(&self, key: &str) -> KeyRules {
        let base = KeyRules { strategy: self.strategy, on_field_conflict: self.on_field_conflict, arrays: self.arrays };
        match self.overrides.iter().find(|o| o.pattern.matches(key)) {
            None => base,
            Some(o) => KeyRules {
                strategy: o.strategy,
                on_field_conflict: o.on_field_conflict.unwrap_or(base.on_field_conflict),
                arrays: o.arrays.unwrap_or(base.arrays),
            },
        }
    }

    fn validate(&self) -> Result<()> {
        let field_rules = [Strategy::Reject, Strategy::LastWriteWins, Strategy::Authority];
        let mut rules = vec![self.on_field_conflict];
        rules.extend(self.overrides.iter().filter_map(|o| o.on_field_conflict));
        if rules.iter().any(|r| !field_rules.contains(r)) {
            return Err(Error::invalid("policy.on_field_conflict", "must be reject, last-write-wins or authority"));
        }
        Ok(())
    }
}

/// How much history a context keeps. Unset fields keep everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep at least this many most recent revisions readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_revisions: Option<u64>,
    /// Keep revisions committed within this many milliseconds readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
}

/// The longest `retention.max_age_ms`: 100 years.
pub const MAX_RETENTION_AGE_MS: u64 = 100 * 365 * 86_400_000;

impl Retention {
    /// Whether this policy ever compacts.
    pub fn is_unbounded(&self) -> bool {
        self.max_revisions.is_none() && self.max_age_ms.is_none()
    }

    fn validate(&self) -> Result<()> {
        if self.max_revisions == Some(0) {
            return Err(Error::invalid("retention.max_revisions", "must be at least 1"));
        }
        match self.max_age_ms {
            Some(0) => return Err(Error::invalid("retention.max_age_ms", "must be positive")),
            // The cutoff (now less the age) must stay on the calendar.
            Some(ms) if ms > MAX_RETENTION_AGE_MS => {
                return Err(Error::invalid(
                    "retention.max_age_ms",
                    format!("must be at most {MAX_RETENTION_AGE_MS} (100 years)"),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The settings of a context that users choose.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextSettings {
    /// Conflict policy.
    #[serde(default)]
    pub policy: Policy,
    /// JSON Schemas by key pattern; a value must satisfy every schema whose
    /// pattern matches its key.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub schemas: BTreeMap<String, Value>,
    /// History retention.
    #[serde(default)]
    pub retention: Retention,
    /// Free labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Relevance weights, thresholds and the workflow (docs/mesh.md).
    #[serde(default)]
    pub mesh: crate::mesh::MeshSettings,
}

impl ContextSettings {
    /// Checks the settings, compiling every schema once.
    pub fn validate(&self) -> Result<()> {
        self.policy.validate()?;
        self.retention.validate()?;
        self.mesh.validate()?;
        crate::schema::CompiledSchemas::compile(&self.schemas)?;
        check_labels(&self.labels)?;
        Ok(())
    }
}

/// `POST /v1/contexts`: a new context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContext {
    /// The new context's id.
    pub id: ContextId,
    /// Conflict policy (default: reject).
    #[serde(default)]
    pub policy: Policy,
    /// JSON Schemas by key pattern.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub schemas: BTreeMap<String, Value>,
    /// History retention (default: keep everything).
    #[serde(default)]
    pub retention: Retention,
    /// Free labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Mesh settings.
    #[serde(default)]
    pub mesh: crate::mesh::MeshSettings,
    /// A context to start from: the new one records it as its `parent` and
    /// copies the parent's entries that `inherit` names (all when empty),
    /// except confidential ones and those `isolate` names.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub parent: Option<ContextId>,
    /// Key patterns of the parent's entries to copy (default: all).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub inherit: Vec<KeyPattern>,
    /// Values that replace (or add to) what is inherited, by key.
    #[serde(default, rename = "override")]
    #[schema(value_type = BTreeMap<String, Object>)]
    pub overrides: BTreeMap<String, Value>,
    /// Key patterns never copied from the parent.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub isolate: Vec<KeyPattern>,
    /// The entries of the parent the creator may read, when not all: set
    /// by the server, never sent by clients.
    #[serde(skip)]
    pub scope: Option<crate::access::EntryScope>,
}

/// What a child context takes from its parent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lineage {
    /// The parent.
    pub parent: Option<ContextId>,
    /// Key patterns to copy (all when empty).
    pub inherit: Vec<KeyPattern>,
    /// Values by key, over what is copied.
    pub overrides: BTreeMap<String, Value>,
    /// Key patterns never copied.
    pub isolate: Vec<KeyPattern>,
    /// What the creator may read of the parent.
    pub scope: Option<crate::access::EntryScope>,
}

impl Lineage {
    /// Whether the parent's entry at `key` is copied.
    pub fn takes(&self, key: &str) -> bool {
        (self.inherit.is_empty() || self.inherit.iter().any(|p| p.matches(key)))
            && !self.isolate.iter().any(|p| p.matches(key))
    }
}

impl NewContext {
    /// Splits into id and settings.
    pub fn into_parts(self) -> (ContextId, ContextSettings) {
        let (id, settings, _) = self.into_lineage();
        (id, settings)
    }

    /// Splits into id, settings and what it takes from a parent.
    pub fn into_lineage(self) -> (ContextId, ContextSettings, Lineage) {
        let settings = ContextSettings {
            policy: self.policy,
            schemas: self.schemas,
            retention: self.retention,
            labels: self.labels,
            mesh: self.mesh,
        };
        let lineage = Lineage {
            parent: self.parent,
            inherit: self.inherit,
            overrides: self.overrides,
            isolate: self.isolate,
            scope: self.scope,
        };
        (self.id, settings, lineage)
    }
}

/// `PATCH /v1/contexts/{ctx}`: settings to replace; absent ones stay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextPatch {
    /// New conflict policy.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// New schemas (replaces all).
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub schemas: Option<BTreeMap<String, Value>>,
    /// New retention.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// New labels (replaces all).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// New mesh settings (replaced whole).
    #[serde(default)]
    pub mesh: Option<crate::mesh::MeshSettings>,
    /// A new workflow alone, the other mesh settings kept as they are when
    /// the patch is applied (after `mesh`). Not part of the API's body: the
    /// context map sets it, so that it never writes back mesh settings it
    /// read before a concurrent `PATCH`.
    #[serde(skip)]
    pub workflow: Option<Vec<String>>,
}

impl ContextPatch {
    /// Applies the patch to `settings`.
    pub fn apply(self, settings: &mut ContextSettings) {
        if let Some(p) = self.policy {
            settings.policy = p;
        }
        if let Some(s) = self.schemas {
            settings.schemas = s;
        }
        if let Some(r) = self.retention {
            settings.retention = r;
        }
        if let Some(l) = self.labels {
            settings.labels = l;
        }
        if let Some(m) = self.mesh {
            settings.mesh = m;
        }
        if let Some(w) = self.workflow {
            settings.mesh.workflow = w;
        }
    }
}

/// Where a forked context came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ForkOrigin {
    /// The source context.
    pub context: String,
    /// The source revision.
    pub revision: u64,
}

/// A context as read: its settings and its state counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextInfo {
    /// The context id.
    pub id: String,
    /// The current revision (1 after create, +1 per committed transaction).
    pub revision: u64,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Time of the last commit or settings change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The agent that created the context.
    pub created_by: String,
    /// Settings.
    #[serde(flatten)]
    pub settings: ContextSettings,
    /// The parent context, when created by inheritance.
    pub parent: Option<String>,
    /// The context and revision this one was forked from.
    pub forked_from: Option<ForkOrigin>,
    /// Number of live entries.
    pub entry_count: u64,
    /// History before this revision was compacted away (0: nothing compacted).
    pub compacted_revision: u64,
}

impl ContextInfo {
    /// A context about to be created by `created_by` at `now`: revision 0,
    /// no entries, no parent.
    pub fn new(id: &str, created_by: &str, settings: ContextSettings, now: Timestamp) -> Self {
        ContextInfo {
            id: id.to_owned(),
            revision: 0,
            created_at: now,
            updated_at: now,
            created_by: created_by.to_owned(),
            settings,
            parent: None,
            forked_from: None,
            entry_count: 0,
            compacted_revision: 0,
        }
    }

    /// Fails with `410 compacted` when revision `at` is no longer readable,
    /// with `404` when it lies in the future, and with `400` for revision 0.
    pub fn check_readable(&self, at: u64) -> Result<()> {
        if at > self.revision {
            return Err(Error::not_found(format!(
                "revision {at} of context {:?} (current is {})",
                self.id, self.revision
            )));
        }
        if at == 0 {
            return Err(Error::invalid("revision", "revisions start at 1"));
        }
        if at < self.compacted_revision {
            return Err(Error::Compacted { requested: at, compacted: self.compacted_revision });
        }
        Ok(())
    }
}

/// Labels (of a context or an agent): at most 64, names of 1 to 128
/// characters, values of at most 256.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > 64 {
        return Err(Error::invalid("labels", "at most 64 labels"));
    }
    for (k, v) in labels {
        if !crate::ids::chars_within(k, 1, 128) || !crate::ids::chars_within(v, 0, 256) {
            return Err(Error::invalid("labels", "label names have 1 to 128 characters, values at most 256"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_wire_shape() {
        let p: Policy = serde_json::from_value(json!({
            "strategy": "merge", "on_field_conflict": "last-write-wins", "require_precondition": false,
            "overrides": [{"pattern": "plan/*", "strategy": "authority"}]
        }))
        .unwrap();
        assert_eq!(p.strategy, Strategy::Merge);
        assert_eq!(p.strategy_for("plan/a"), Strategy::Authority);
        assert_eq!(p.strategy_for("other"), Strategy::Merge);
        assert!(serde_json::from_value::<Policy>(json!({"strategy": "bogus"})).is_err());
        let bad = Policy { on_field_conflict: Strategy::Manual, ..Policy::default() };
        assert!(bad.validate().is_err());
    }
}
