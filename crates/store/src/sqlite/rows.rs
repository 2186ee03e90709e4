//! Row encoding and the read queries shared by the writer and the readers.

use chrono::DateTime;
use ctxmesh_core::context::{ContextInfo, ContextSettings, ForkOrigin};
use ctxmesh_core::error::Error;
use ctxmesh_core::ids::prefix_end;
use ctxmesh_core::txn::ChangeKind;
use ctxmesh_core::{Entry, EntryMeta, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{EntryVersion, ReadAt, Result, StoreError};

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

/// A context row: the context and the version of its settings.
pub(crate) struct ContextRow {
    pub(crate) info: ContextInfo,
    pub(crate) settings_version: i64,
}

const CONTEXT_COLUMNS: &str = "id, revision, created_at, updated_at, created_by, settings, settings_version, \
     entry_count, compacted_revision, parent, forked_from";

fn context_from_row(row: &Row<'_>) -> rusqlite::Result<(ContextInfo, String, Option<String>, i64)> {
    let info = ContextInfo {
        id: row.get(0)?,
        revision: row.get::<_, i64>(1)? as u64,
        created_at: from_micros(row.get(2)?),
        updated_at: from_micros(row.get(3)?),
        created_by: row.get(4)?,
        settings: ContextSettings::default(),
        parent: row.get(9)?,
        forked_from: None,
        entry_count: row.get::<_, i64>(7)? as u64,
        compacted_revision: row.get::<_, i64>(8)? as u64,
    };
    Ok((info, row.get(5)?, row.get(10)?, row.get(6)?))
}

fn decode_context(raw: (ContextInfo, String, Option<String>, i64)) -> Result<ContextRow> {
    let (mut info, settings, forked_from, settings_version) = raw;
    info.settings = serde_json::from_str(&settings)?;
    info.forked_from = forked_from.map(|f| serde_json::from_str::<ForkOrigin>(&f)).transpose()?;
    Ok(ContextRow { info, settings_version })
}

/// Loads a context, or `not_found`.
pub(crate) fn load_context(conn: &Connection, id: &str) -> Result<ContextRow> {
    let sql = format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id = ?1");
    let raw = conn.query_row(&sql, [id], context_from_row).optional()?;
    match raw {
        Some(raw) => decode_context(raw),
        None => Err(Error::not_found(format!("context {id:?}")).into()),
    }
}

/// Lists contexts ordered by id.
pub(crate) fn list_contexts(conn: &Connection, after: &str, limit: usize) -> Result<Vec<ContextInfo>> {
    let sql = format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id > ?1 ORDER BY id LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after, limit as i64], context_from_row)?;
    let mut out = Vec::new();
    for raw in rows {
        out.push(decode_context(raw?)?.info);
    }
    Ok(out)
}

pub(crate) const VERSION_COLUMNS: &str =
    "key, revision, change, value, meta, version, created_revision, updated_at, author, vclock";

/// A raw version row, decoded lazily so that JSON errors surface as errors.
pub(crate) struct VersionRow {
    key: String,
    revision: i64,
    change: String,
    value: Option<String>,
    meta: Option<String>,
    version: i64,
    created_revision: i64,
    updated_at: i64,
    author: String,
    vclock: String,
}

pub(crate) fn version_row(row: &Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        key: row.get(0)?,
        revision: row.get(1)?,
        change: row.get(2)?,
        value: row.get(3)?,
        meta: row.get(4)?,
        version: row.get(5)?,
        created_revision: row.get(6)?,
        updated_at: row.get(7)?,
        author: row.get(8)?,
        vclock: row.get(9)?,
    })
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

/// The current entry at `key`; hidden when expired at `now`.
pub(crate) fn entry_latest(conn: &Connection, ctx: &str, key: &str, now: Timestamp) -> Result<Option<Entry>> {
    let sql = format!(
        "SELECT {} FROM entries e JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision \
         WHERE e.ctx = ?1 AND e.key = ?2 AND (e.expires_at IS NULL OR e.expires_at > ?3)",
        prefixed_version_columns()
    );
    let row = conn.prepare_cached(&sql)?.query_row(params![ctx, key, micros(now)], version_row).optional()?;
    Ok(row.map(VersionRow::into_entry).transpose()?.flatten())
}

/// The entry at `key` as of revision `rev`.
pub(crate) fn entry_at(conn: &Connection, ctx: &str, key: &str, rev: u64) -> Result<Option<Entry>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE ctx = ?1 AND key = ?2 AND revision <= ?3 \
         ORDER BY revision DESC LIMIT 1"
    );
    let row = conn.prepare_cached(&sql)?.query_row(params![ctx, key, rev as i64], version_row).optional()?;
    Ok(row.map(VersionRow::into_entry).transpose()?.flatten())
}

fn prefixed_version_columns() -> String {
    VERSION_COLUMNS.split(", ").map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", ")
}

/// Live entries under `prefix` with keys after `after`, ordered by key.
/// With `now`, entries expired at `now` are hidden.
pub(crate) fn list_latest(
    conn: &Connection,
    ctx: &str,
    prefix: &str,
    after: &str,
    limit: usize,
    now: Option<Timestamp>,
) -> Result<Vec<Entry>> {
    let sql = format!(
        "SELECT {} FROM entries e JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision \
         WHERE e.ctx = ?1 AND e.key >= ?2 AND (?3 IS NULL OR e.key < ?3) AND e.key > ?4 \
         AND (?5 IS NULL OR e.expires_at IS NULL OR e.expires_at > ?5) ORDER BY e.key LIMIT ?6",
        prefixed_version_columns()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows =
        stmt.query_map(params![ctx, prefix, prefix_end(prefix), after, now.map(micros), limit as i64], version_row)?;
    collect_entries(rows)
}

/// Entries under `prefix` as of revision `rev`, ordered by key.
pub(crate) fn list_at(
    conn: &Connection,
    ctx: &str,
    prefix: &str,
    after: &str,
    limit: usize,
    rev: u64,
) -> Result<Vec<Entry>> {
    let sql = format!(
        "SELECT {} FROM versions v WHERE v.ctx = ?1 AND v.key >= ?2 AND (?3 IS NULL OR v.key < ?3) AND v.key > ?4 \
         AND v.revision = (SELECT MAX(w.revision) FROM versions w WHERE w.ctx = ?1 AND w.key = v.key AND w.revision <= ?5) \
         AND v.value IS NOT NULL ORDER BY v.key LIMIT ?6",
        prefixed_version_columns()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows =
        stmt.query_map(params![ctx, prefix, prefix_end(prefix), after, rev as i64, limit as i64], version_row)?;
    collect_entries(rows)
}

fn collect_entries(rows: impl Iterator<Item = rusqlite::Result<VersionRow>>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for row in rows {
        if let Some(entry) = row?.into_entry()? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Resolves a read position to a revision (`None`: the latest state),
/// checking that it is readable.
pub(crate) fn resolve_at(conn: &Connection, ctx: &ContextInfo, at: ReadAt) -> Result<Option<u64>> {
    let rev = match at {
        ReadAt::Latest => return Ok(None),
        ReadAt::Revision(rev) => rev,
        ReadAt::Time(ts) => {
            let rev: Option<i64> = conn
                .prepare_cached("SELECT MAX(revision) FROM commits WHERE ctx = ?1 AND at <= ?2")?
                .query_row(params![ctx.id, micros(ts)], |r| r.get(0))?;
            match rev {
                Some(rev) => rev as u64,
                None if ctx.compacted_revision > 1 => {
                    return Err(Error::Compacted { requested: 0, compacted: ctx.compacted_revision }.into());
                }
                None => {
                    return Err(Error::not_found(format!(
                        "a revision of context {:?} at or before {}",
                        ctx.id,
                        ts.to_rfc3339()
                    ))
                    .into());
                }
            }
        }
    };
    ctx.check_readable(rev)?;
    Ok(Some(rev))
}
