//! Conflict records: what happened when a write's precondition was stale
//! (docs/conflicts.md). A write settled by its policy (last-write-wins,
//! merge, authority) leaves a resolved record of low severity; a write
//! kept aside under `manual` leaves a pending record of high severity
//! until an agent resolves it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::context::Strategy;
use crate::entry::{Entry, EntryMeta};
use crate::error::{Error, Result};

/// How much a conflict needs attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Settled by the policy.
    Low,
    /// Escalated: waits for a resolution.
    High,
}

/// Where a conflict stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConflictStatus {
    /// Waits for a resolution (`manual`).
    Pending,
    /// Settled, by the policy or by a resolution.
    Resolved,
}

impl ConflictStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStatus::Pending => "pending",
            ConflictStatus::Resolved => "resolved",
        }
    }
}

/// How a stale write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// `last-write-wins`: the write replaced the current value.
    Overwritten,
    /// `merge`: the write was merged with the current value.
    Merged,
    /// `authority`: the writer is trusted more; its write replaced the value.
    Won,
    /// The write was refused (`reject`, a lost or tied `authority`, a
    /// field conflict that `merge` could not settle).
    Rejected,
    /// `manual`: the write was kept aside as a pending conflict.
    Pending,
}

/// A write kept aside under `manual`: one sibling of the conflict (the
/// other is the entry at `current_revision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Proposed {
    /// The value written (`null` with `deleted`).
    pub value: Value,
    /// Whether the write was a deletion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Its metadata.
    #[serde(flatten)]
    pub meta: EntryMeta,
}

/// How a conflict was resolved by an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Resolution {
    /// Who resolved it.
    pub by: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The revision that recorded the resolution.
    pub revision: u64,
    /// `current`, `proposed` or `value`.
    pub chose: String,
}

/// One conflict on one entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conflict {
    /// Its id within the context (`<revision>.<n>`).
    pub id: String,
    /// The context.
    pub context: String,
    /// The entry's key.
    pub key: String,
    /// The strategy that met the stale write.
    pub strategy: Strategy,
    /// `low` when the policy settled it, `high` when escalated.
    pub severity: Severity,
    /// `pending` or `resolved`.
    pub status: ConflictStatus,
    /// How the write ended.
    pub outcome: Outcome,
    /// The revision that recorded the conflict.
    pub detected_revision: u64,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub detected_at: Timestamp,
    /// Who wrote the stale write.
    pub author: String,
    /// The revision the writer had read, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_revision: Option<u64>,
    /// The entry's revision when the write arrived (0: it was absent).
    pub current_revision: u64,
    /// Who wrote that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_author: Option<String>,
    /// JSON pointers of the fields both sides changed (`merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The write kept aside (`manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed: Option<Proposed>,
    /// The entry's tags (for access decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Whether the entry is confidential.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confidential: bool,
    /// How an agent resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// A consensus that fell short: every candidate value with its
    /// weight and supporters (the leading one is `proposed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

/// One agent's proposal to a consensus.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// The proposing agent.
    pub agent: String,
    /// What it proposes.
    pub value: Value,
    /// How sure it is (0..1, default 1).
    #[serde(default = "one")]
    pub confidence: f64,
}

fn one() -> f64 {
    1.0
}

/// One distinct value of a consensus, with its support.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Candidate {
    /// The value.
    pub value: Value,
    /// The sum of its supporters' confidence.
    pub weight: f64,
    /// Its share of all the weight (0..1).
    pub agreement: f64,
    /// The agents that proposed it.
    pub agents: Vec<String>,
}

/// Groups proposals by value (JSON equality), weighted by confidence;
/// the heaviest first (ties: the earliest proposed).
pub fn tally(proposals: &[Proposal]) -> Result<Vec<Candidate>> {
    if proposals.is_empty() {
        return Err(Error::invalid("proposals", "give at least one proposal"));
    }
    let mut out: Vec<Candidate> = Vec::new();
    for p in proposals {
        crate::agent::parse_agent_id(&p.agent)?;
        if !(0.0..=1.0).contains(&p.confidence) {
            return Err(Error::invalid("confidence", "a confidence is between 0 and 1"));
        }
        match out.iter_mut().find(|c| c.value == p.value) {
            Some(c) => {
                c.weight += p.confidence;
                c.agents.push(p.agent.clone());
            }
            None => out.push(Candidate {
                value: p.value.clone(),
                weight: p.confidence,
                agreement: 0.0,
                agents: vec![p.agent.clone()],
            }),
        }
    }
    let total: f64 = out.iter().map(|c| c.weight).sum();
    if total <= 0.0 {
        return Err(Error::invalid("confidence", "every proposal has confidence 0"));
    }
    for c in &mut out {
        c.agreement = c.weight / total;
    }
    out.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    Ok(out)
}

impl Conflict {
    /// The data of its `conflict.detected` or `conflict.resolved` event:
    /// everything but values (events never carry the values of a conflict).
    pub fn event_data(&self) -> Value {
        let mut data = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(map) = data.as_object_mut() {
            map.remove("proposed");
            map.insert("conflict".into(), self.id.clone().into());
            map.remove("id");
        }
        data
    }
}

/// What a transaction reports about one stale write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConflictReport {
    /// The key.
    pub key: String,
    /// The strategy that met it.
    pub strategy: Strategy,
    /// How it ended.
    pub outcome: Outcome,
    /// The conflict record, when one was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// Why it was refused, for `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fields changed both ways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The current entry, for `rejected` and `pending` (when the caller may
    /// read it), so the caller can merge and retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Box<Entry>>,
}

/// `POST /v1/contexts/{ctx}/conflicts/{id}/resolve`: choose a sibling, or
/// supply a merged value with a precondition.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `current` (keep the entry as it is) or `proposed` (apply the write
    /// kept aside).
    #[serde(default)]
    pub choose: Option<String>,
    /// A merged value to write instead (with the proposed metadata).
    #[serde(default)]
    pub value: Option<Value>,
    /// The entry revision the resolution is based on (default: the
    /// conflict's `current_revision`); a newer entry is `412`.
    #[serde(default)]
    pub if_match: Option<u64>,
}

/// A checked resolution.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Keep the current entry.
    Current,
    /// Apply the proposed write.
    Proposed,
    /// Write this value.
    Value(Value),
}

impl ResolveRequest {
    /// The choice it makes.
    pub fn choice(self) -> Result<Choice> {
        match (self.choose.as_deref(), self.value) {
            (Some("current"), None) => Ok(Choice::Current),
            (Some("proposed"), None) => Ok(Choice::Proposed),
            (None, Some(v)) => Ok(Choice::Value(v)),
            _ => Err(Error::invalid("choose", "give either choose (current or proposed) or value")),
        }
    }
}
