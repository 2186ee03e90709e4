//! How rows are encoded, shared by every backend: timestamps as unix
//! microseconds, JSON documents as text, changes by name.

use chrono::DateTime;
use ctxmesh_core::context::{ContextInfo, ForkOrigin};
use ctxmesh_core::txn::ChangeKind;
use ctxmesh_core::{Entry, EntryMeta, Timestamp};

use crate::error::{Result, StoreError};
use crate::types::EntryVersion;

/// Timestamps are stored as unix microseconds.
pub(crate) fn micros(ts: Timestamp) -> i64 {
    ts.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> Timestamp {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub(crate) fn change_from_str(s: &str) -> Result<ChangeKind> {
    Ok(match s {
        "created" => ChangeKind::Created,
        "updated" => ChangeKind::Updated,
        "deleted" => ChangeKind::Deleted,
        "expired" => ChangeKind::Expired,
        other => return Err(StoreError::Backend(format!("unknown change kind {other:?} in store"))),
    })
}

/// The columns of a context row, in the order every backend selects them.
pub(crate) const CONTEXT_COLUMNS: &str = "id, revision, created_at, updated_at, created_by, settings, \
     entry_count, compacted_revision, parent, forked_from";

/// A raw context row.
pub(crate) struct RawContext {
    pub(crate) id: String,
    pub(crate) revision: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) created_by: String,
    pub(crate) settings: String,
    pub(crate) entry_count: i64,
    pub(crate) compacted_revision: i64,
    pub(crate) parent: Option<String>,
    pub(crate) forked_from: Option<String>,
}

impl RawContext {
    pub(crate) fn decode(self) -> Result<ContextInfo> {
        Ok(ContextInfo {
            id: self.id,
            revision: self.revision as u64,
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
            created_by: self.created_by,
            settings: serde_json::from_str(&self.settings)?,
            parent: self.parent,
            forked_from: self.forked_from.map(|f| serde_json::from_str::<ForkOrigin>(&f)).transpose()?,
            entry_count: self.entry_count as u64,
            compacted_revision: self.compacted_revision as u64,
        })
    }
}

/// The columns of a version row, in the order every backend selects them.
pub(crate) const VERSION_COLUMNS: &str =
    "key, revision, change, value, meta, version, created_revision, updated_at, author, vclock";

/// [`VERSION_COLUMNS`] qualified by the table alias `v`.
pub(crate) fn prefixed_version_columns() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        VERSION_COLUMNS.split(", ").map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", ")
    });
    &COLUMNS
}

/// A raw version row, decoded lazily so that JSON errors surface as errors.
pub(crate) struct VersionRow {
    pub(crate) key: String,
    pub(crate) revision: i64,
    pub(crate) change: String,
    pub(crate) value: Option<String>,
    pub(crate) meta: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_revision: i64,
    pub(crate) updated_at: i64,
    pub(crate) author: String,
    pub(crate) vclock: String,
}

impl VersionRow {
    /// The version as a history item.
    pub(crate) fn into_version(self) -> Result<EntryVersion> {
        let change = change_from_str(&self.change)?;
        let revision = self.revision as u64;
        let entry = self.into_entry()?;
        Ok(EntryVersion { revision, change, entry })
    }

    /// The entry this version holds; `None` for deletions.
    pub(crate) fn into_entry(self) -> Result<Option<Entry>> {
        let (Some(value), Some(meta)) = (self.value, self.meta) else {
            return Ok(None);
        };
        Ok(Some(Entry {
            key: self.key,
            value: serde_json::from_str(&value)?,
            revision: self.revision as u64,
            version: self.version as u64,
            created_revision: self.created_revision as u64,
            updated_at: from_micros(self.updated_at),
            author: self.author,
            meta: serde_json::from_str::<EntryMeta>(&meta)?,
            vclock: serde_json::from_str(&self.vclock)?,
        }))
    }
}

/// Decodes version rows, skipping deletions.
pub(crate) fn collect_entries(rows: impl IntoIterator<Item = Result<VersionRow>>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for row in rows {
        if let Some(entry) = row?.into_entry()? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The search text of an entry stored as a version row's `value` and
/// `meta` columns (JSON).
pub(crate) fn stored_search_text(key: &str, value: Option<String>, meta: Option<String>) -> Result<String> {
    let entry = ctxmesh_core::Entry {
        key: key.to_owned(),
        value: value.map(|v| serde_json::from_str(&v)).transpose()?.unwrap_or_default(),
        meta: meta.map(|m| serde_json::from_str(&m)).transpose()?.unwrap_or_default(),
        revision: 0,
        version: 0,
        created_revision: 0,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        author: String::new(),
        vclock: Default::default(),
    };
    Ok(ctxmesh_core::mesh::search_text(&entry))
}

/// One row of the versions table as written by a plan.
pub(crate) struct VersionInsert<'a> {
    pub(crate) key: &'a str,
    pub(crate) revision: i64,
    pub(crate) change: &'static str,
    pub(crate) value: Option<String>,
    pub(crate) meta: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_revision: i64,
    pub(crate) updated_at: i64,
    pub(crate) author: &'a str,
    pub(crate) vclock: String,
    /// For a live entry: its expiry (the entries table), else `None`.
    pub(crate) live: Option<Option<i64>>,
    /// For a live entry: its text for keyword search.
    pub(crate) text: Option<String>,
}

/// The rows a plan writes to the versions table, in order.
pub(crate) fn version_inserts(plan: &ctxmesh_core::txn::Plan) -> Result<Vec<VersionInsert<'_>>> {
    let mut out = Vec::with_capacity(plan.changes.len());
    for change in &plan.changes {
        out.push(match &change.after {
            Some(e) => VersionInsert {
                key: &e.key,
                revision: e.revision as i64,
                change: change.kind.as_str(),
                value: Some(serde_json::to_string(&e.value)?),
                meta: Some(serde_json::to_string(&e.meta)?),
                version: e.version as i64,
                created_revision: e.created_revision as i64,
                updated_at: micros(e.updated_at),
                author: &e.author,
                vclock: serde_json::to_string(&e.vclock)?,
                live: Some(e.meta.expires_at.map(micros)),
                text: Some(ctxmesh_core::mesh::search_text(e)),
            },
            None => VersionInsert {
                key: &change.key,
                revision: plan.revision as i64,
                change: change.kind.as_str(),
                value: None,
                meta: None,
                version: 0,
                created_revision: 0,
                updated_at: micros(plan.commit.at),
                author: &plan.commit.author,
                vclock: "{}".to_owned(),
                live: None,
                text: None,
            },
        });
    }
    Ok(out)
}

/// The columns of an object row, in the order every backend selects them.
pub(crate) const OBJECT_COLUMNS: &str = "kind, id, ctx, owner, state, due_at, body";
