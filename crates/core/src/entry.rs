//! Entries: one item of a context, with its metadata and versioning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::error::{Error, Result};
use crate::ids::EntryKey;

/// A version vector: writer agent id → number of its writes to the entry.
pub type VClock = BTreeMap<String, u64>;

/// How urgent an entry or a message is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background information.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Worth pushing to interested agents.
    High,
    /// Must be seen at once.
    Critical,
}

impl Priority {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// Descriptive metadata of an entry, set by its writer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryMeta {
    /// Free string; well-known: objective, constraint, finding, decision,
    /// output, message, note.
    #[serde(default)]
    pub kind: Option<String>,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The writer's confidence in the value, 0..1.
    #[serde(default)]
    pub confidence: Option<f64>,
    /// Urgency of the entry.
    #[serde(default)]
    pub priority: Priority,
    /// Keys of entries this one depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Explicit relevance per agent id, 0..1.
    #[serde(default)]
    pub relevance: BTreeMap<String, f64>,
    /// When the entry expires (its removal is a revision of its own).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Confidential entries reach only agents with explicit read access.
    #[serde(default)]
    pub confidential: bool,
}

/// One entry of a context as read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// The entry's key.
    pub key: String,
    /// Any JSON value.
    pub value: Value,
    /// The context revision of the entry's last change; its ETag.
    pub revision: u64,
    /// 1 on create, +1 on each update; restarts at 1 after delete and re-create.
    pub version: u64,
    /// The context revision that created the entry.
    pub created_revision: u64,
    /// Time of the last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The agent that made the last change.
    pub author: String,
    /// Descriptive metadata.
    #[serde(flatten)]
    pub meta: EntryMeta,
    /// Writes per agent to this entry.
    #[serde(default)]
    pub vclock: VClock,
}

impl Entry {
    /// Whether two entries hold the same value and metadata (whatever their
    /// versioning says).
    pub fn same_content(&self, other: &Entry) -> bool {
        self.value == other.value && self.meta == other.meta
    }

    /// Whether the entry has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.meta.expires_at.is_some_and(|at| at <= now)
    }
}

/// The body of a write (`PUT` or a transaction's `put`): a value and its
/// metadata. A write replaces the value and all metadata; fields left out
/// take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryWrite {
    /// The new value (required; `null` is a value).
    pub value: Value,
    /// See [`EntryMeta::kind`].
    #[serde(default)]
    pub kind: Option<String>,
    /// See [`EntryMeta::tags`].
    #[serde(default)]
    pub tags: Vec<String>,
    /// See [`EntryMeta::confidence`].
    #[serde(default)]
    pub confidence: Option<f64>,
    /// See [`EntryMeta::priority`].
    #[serde(default)]
    pub priority: Priority,
    /// See [`EntryMeta::depends_on`].
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// See [`EntryMeta::relevance`].
    #[serde(default)]
    pub relevance: BTreeMap<String, f64>,
    /// Absolute expiry; exclusive with `ttl_ms`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Time to live from the write, in milliseconds; exclusive with `expires_at`.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    /// See [`EntryMeta::confidential`].
    #[serde(default)]
    pub confidential: bool,
    /// A causal precondition: the version vector of the entry the write
    /// was based on (as read). The write applies when it descends from the
    /// current entry; otherwise the context's conflict policy decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub vclock: Option<VClock>,
}

/// Most tags an entry may carry.
const MAX_TAGS: usize = 64;
/// Longest kind or tag, in bytes.
const MAX_LABEL_CHARS: usize = 128;

impl EntryWrite {
    /// Validates the metadata and resolves `ttl_ms` against `now`.
    pub fn into_meta(self, now: Timestamp) -> Result<(Value, EntryMeta)> {
        if let Some(kind) = &self.kind {
            check_label("kind", kind)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        for tag in &self.tags {
            check_label("tags", tag)?;
        }
        if let Some(c) = self.confidence {
            check_unit("confidence", c)?;
        }
        for (agent, r) in &self.relevance {
            check_unit(&format!("relevance.{agent}"), *r)?;
        }
        for dep in &self.depends_on {
            EntryKey::parse(dep)?;
        }
        let expires_at = match (self.expires_at, self.ttl_ms) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("ttl_ms", "give either ttl_ms or expires_at, not both"));
            }
            (Some(at), None) => Some(at),
            (None, Some(0)) => return Err(Error::invalid("ttl_ms", "must be positive")),
            (None, Some(ms)) => {
                let ms = i64::try_from(ms).map_err(|_| Error::invalid("ttl_ms", "too large"))?;
                Some(now + chrono::Duration::milliseconds(ms))
            }
            (None, None) => None,
        };
        let meta = EntryMeta {
            kind: self.kind,
            tags: self.tags,
            confidence: self.confidence,
            priority: self.priority,
            depends_on: self.depends_on,
            relevance: self.relevance,
            expires_at,
            confidential: self.confidential,
        };
        Ok((self.value, meta))
    }
}

fn check_label(field: &str, value: &str) -> Result<()> {
    if !crate::ids::chars_within(value, 1, MAX_LABEL_CHARS) {
        return Err(Error::invalid(field, format!("must have 1 to {MAX_LABEL_CHARS} characters")));
    }
    Ok(())
}

fn check_unit(field: &str, value: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::invalid(field, "must be between 0 and 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entry_serializes_flat() {
        let entry = Entry {
            key: "a".into(),
            value: json!(1),
            revision: 3,
            version: 1,
            created_revision: 3,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            author: "x".into(),
            meta: EntryMeta { kind: Some("finding".into()), ..Default::default() },
            vclock: VClock::from([("x".into(), 1)]),
        };
        let v = serde_json::to_value(&entry).unwrap();
        assert_eq!(v["kind"], "finding");
        assert_eq!(v["priority"], "normal");
        assert_eq!(v["vclock"]["x"], 1);
        let back: Entry = serde_json::from_value(v).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn write_validation() {
        let now = chrono::Utc::now();
        let w: EntryWrite = serde_json::from_value(json!({"value": 1, "ttl_ms": 1000})).unwrap();
        let (_, meta) = w.into_meta(now).unwrap();
        assert_eq!(meta.expires_at, Some(now + chrono::Duration::seconds(1)));
        let w: EntryWrite = serde_json::from_value(json!({"value": 1, "confidence": 1.5})).unwrap();
        assert_eq!(w.into_meta(now).unwrap_err().code(), "invalid_argument");
        let w: EntryWrite = serde_json::from_value(json!({"value": 1, "depends_on": ["a//b"]})).unwrap();
        assert_eq!(w.into_meta(now).unwrap_err().code(), "invalid_key");
        assert!(serde_json::from_value::<EntryWrite>(json!({"value": 1, "bogus": 2})).is_err());
        assert!(serde_json::from_value::<EntryWrite>(json!({"kind": "x"})).is_err());
    }
}
