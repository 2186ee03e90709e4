//! [`Tx`] over one SQLite connection: the writer thread's transaction, or a
//! reader thread's snapshot. SQLite answers synchronously, so every future
//! here is ready when first polled; [`run_now`] drives one to completion.

use std::borrow::Cow;
use std::future::Future;

use ctxmesh_core::access::AuditRecord;
use ctxmesh_core::context::{ContextInfo, ContextSettings};
use ctxmesh_core::error::Error;
use ctxmesh_core::history::Commit;
use ctxmesh_core::ids::prefix_end;
use ctxmesh_core::txn::Plan;
use ctxmesh_core::{Entry, Event, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::change::{self, Change};
use super::live::{BatchChanges, LiveCache, LiveChange};
use crate::codec::{
    CONTEXT_COLUMNS, OBJECT_COLUMNS, RawContext, VERSION_COLUMNS, VersionRow, collect_entries, from_micros, micros,
    prefixed_version_columns, version_inserts,
};
use crate::coord::AuditQuery;
use crate::error::{Result, StoreError};
use crate::notify::Committed;
use crate::tx::{Object, ObjectFilter, Tx};
use crate::types::EntryVersion;

/// A transaction on a SQLite connection, opened and ended by the caller.
pub(crate) struct SqliteTx<'a> {
    pub(crate) conn: &'a mut Connection,
    pub(crate) published: Vec<Committed>,
    /// Full-text index changes held back for the writer to apply once per
    /// batch (`None`: applied at once).
    pub(crate) search: Option<Vec<SearchChange>>,
    /// The changes to live entries, for the writer's cache (`None`: not
    /// collected).
    pub(crate) live: Option<Vec<LiveChange>>,
    /// For the writer: the live-entry cache, and what the batch has changed
    /// so far (see [`SqliteTx::committed_entry`]).
    committed: Option<(&'a LiveCache, &'a BatchChanges)>,
    /// Whether this transaction changed what authenticating or authorizing
    /// a request reads (see `sqlite/access.rs`).
    pub(crate) access_changed: bool,
    /// For the writer: the commit log record of the batch, to which every
    /// writing call is added (see `super::change`).
    redo: Option<&'a mut Vec<u8>>,
}

impl<'a> SqliteTx<'a> {
    pub(crate) fn new(conn: &'a mut Connection) -> Self {
        SqliteTx {
            conn,
            published: Vec::new(),
            search: None,
            live: None,
            committed: None,
            access_changed: false,
            redo: None,
        }
    }

    /// The transaction that replays a commit log record: its full-text
    /// index changes are held back, as the writer's are, for the caller to
    /// apply once.
    pub(crate) fn replaying(conn: &'a mut Connection) -> Self {
        SqliteTx { search: Some(Vec::new()), ..SqliteTx::new(conn) }
    }

    /// The writer's transaction: its full-text index changes are held back
    /// in `search` (FTS5 writes its pending index data to disk at the end
    /// of every savepoint: one savepoint per job would make one index
    /// segment per write; applied once, before the batch commits, they make
    /// one), and its changes to live entries are collected in `live`. It
    /// reads the entries of `live_cache` that `batch` has not changed, and
    /// adds each writing call to the batch's commit log record `redo`
    /// (when the commit log is on).
    pub(crate) fn writer(
        conn: &'a mut Connection,
        live_cache: &'a LiveCache,
        batch: &'a BatchChanges,
        redo: Option<&'a mut Vec<u8>>,
    ) -> Self {
        SqliteTx {
            conn,
            published: Vec::new(),
            search: Some(Vec::new()),
            live: Some(Vec::new()),
            committed: Some((live_cache, batch)),
            access_changed: false,
            redo,
        }
    }

    /// Adds a writing call to the commit log record, for the writer.
    fn note(&mut self, change: Change<'_>) -> Result<()> {
        match &mut self.redo {
            Some(buf) => change::note(buf, &change),
            None => Ok(()),
        }
    }

    /// For the writer: the latest entry at `key` (`Some(None)`: absent) as
    /// the last commit left it, from the live-entry cache, when neither the
    /// batch so far nor this job changed it and the cache holds it; then it
    /// is what this transaction would read (see the `live` module).
    fn committed_entry(&self, ctx: &str, key: &str, now: Timestamp) -> Option<Option<Entry>> {
        let (cache, batch) = self.committed?;
        let mine = self.live.as_deref().unwrap_or_default();
        if batch.changed(ctx, key) || mine.iter().any(|c| c.touches(ctx, key)) {
            return None;
        }
        cache.get(ctx, key, now).map(|(entry, _)| entry)
    }

    /// Writes a plan's rows (versions, live entries, the commit, events,
    /// the context's revision) and returns its full-text index changes.
    fn write_rows(&mut self, ctx: &str, plan: &Plan, entry_count: u64) -> Result<Vec<SearchChange>> {
        let conn = &*self.conn;
        let mut insert_version = conn.prepare_cached(INSERT_VERSION)?;
        let mut upsert_entry = conn.prepare_cached(UPSERT_ENTRY)?;
        let mut delete_entry = conn.prepare_cached("DELETE FROM entries WHERE ctx = ?1 AND key = ?2")?;
        let mut search = Vec::new();
        for v in version_inserts(plan)? {
            insert_version.execute(params![
                ctx,
                v.key,
                v.revision,
                v.change,
                v.value,
                v.meta,
                v.version,
                v.created_revision,
                v.updated_at,
                v.author,
                v.vclock,
            ])?;
            match v.live {
                Some(expires_at) => upsert_entry.execute(params![ctx, v.key, v.revision, expires_at])?,
                None => delete_entry.execute(params![ctx, v.key])?,
            };
            search.push(match v.text {
                Some(text) => SearchChange::Put { ctx: ctx.to_owned(), key: v.key.to_owned(), text },
                None => SearchChange::Remove { ctx: ctx.to_owned(), key: v.key.to_owned() },
            });
        }
        let at = micros(plan.commit.at);
        conn.prepare_cached(INSERT_COMMIT)?.execute(params![
            ctx,
            plan.revision as i64,
            at,
            plan.commit.author,
            plan.commit.kind,
            serde_json::to_string(&plan.commit.keys)?
        ])?;
        let mut insert_event = conn.prepare_cached(INSERT_EVENT)?;
        for (seq, event) in plan.events.iter().enumerate() {
            let (json, value_key) = stored_event(event, plan)?;
            insert_event.execute(params![ctx, plan.revision as i64, seq as i64, json, value_key])?;
        }
        conn.prepare_cached(UPDATE_CONTEXT_REVISION)?.execute(params![
            ctx,
            plan.revision as i64,
            at,
            entry_count as i64
        ])?;
        if let Some(live) = &mut self.live {
            let entries = plan.changes.iter().map(|c| (c.key.clone(), c.after.clone())).collect();
            live.push(LiveChange::Revision {
                ctx: ctx.to_owned(),
                revision: plan.revision,
                updated_at: plan.commit.at,
                entry_count,
                entries,
            });
        }
        Ok(search)
    }

    /// Notes, for the writer's cache, a change to a context's row other
    /// than a new revision.
    fn context_changed(&mut self, ctx: &str) {
        // A context created, deleted or reset changes who may use it.
        self.access_changed = true;
        if let Some(live) = &mut self.live {
            live.push(LiveChange::Context { ctx: ctx.to_owned() });
        }
    }

    fn search_change(&mut self, change: SearchChange) -> Result<()> {
        match &mut self.search {
            Some(held) => held.push(change),
            None => apply_search(self.conn, &[change])?,
        }
        Ok(())
    }
}

/// The statements that store a write's rows (also run by
/// [`super::floor`], which measures what they cost alone).
pub(super) const INSERT_VERSION: &str = "INSERT INTO versions (ctx, key, revision, change, value, meta, version, \
     created_revision, updated_at, author, vclock) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
pub(super) const UPSERT_ENTRY: &str = "INSERT INTO entries (ctx, key, revision, expires_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (ctx, key) DO UPDATE SET revision = excluded.revision, expires_at = excluded.expires_at";
pub(super) const INSERT_COMMIT: &str =
    "INSERT INTO commits (ctx, revision, at, author, kind, keys) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (ctx, revision, seq, event, value_key) VALUES (?1, ?2, ?3, ?4, ?5)";

/// An event as it is stored: an entry event whose `data.value` is the
/// value its revision wrote to that entry leaves it out, and names the
/// entry (`value_key`) whose version row holds it, so that a write stores
/// its value once. [`events_of`] puts it back.
fn stored_event<'a>(event: &'a Event, plan: &Plan) -> Result<(String, Option<&'a str>)> {
    let key = event.key.as_deref();
    let value = event.data.as_ref().and_then(|d| d.get("value"));
    let written = |key: &str| plan.changes.iter().rev().find(|c| c.key == key).and_then(|c| c.after.as_ref());
    if let (Some(key), Some(value)) = (key, value)
        && written(key).is_some_and(|entry| &entry.value == value)
    {
        let mut stripped = event.clone();
        if let Some(data) = stripped.data.as_mut().and_then(Value::as_object_mut) {
            data.remove("value");
        }
        return Ok((serde_json::to_string(&stripped)?, Some(key)));
    }
    Ok((serde_json::to_string(event)?, None))
}

/// Reads the events of a query whose rows are the stored event and, for
/// a context's events, the value of the version its `value_key` names.
pub(super) const UPDATE_CONTEXT_REVISION: &str =
    "UPDATE contexts SET revision = ?2, updated_at = ?3, entry_count = ?4 WHERE id = ?1";

/// A change to the full-text index.
#[derive(Debug)]
pub(crate) enum SearchChange {
    /// The entry's text (a new one replaces the old).
    Put { ctx: String, key: String, text: String },
    /// The entry is gone.
    Remove { ctx: String, key: String },
    /// The context is gone.
    DropContext { ctx: String },
}

/// Applies `changes` in order, in the current transaction.
///
/// Only the last change of each entry counts (a batch that writes one key
/// ten times indexes it once). The documents are resolved first and the
/// full-text index is written after: once FTS5 takes part in a
/// transaction, every statement that opens a statement savepoint makes it
/// write its pending index data to disk, which would undo the batching.
pub(crate) fn apply_search(conn: &Connection, changes: &[SearchChange]) -> Result<()> {
    let mut find_doc = conn.prepare_cached("SELECT id FROM search_docs WHERE ctx = ?1 AND key = ?2")?;
    let mut insert_doc = conn.prepare_cached("INSERT INTO search_docs (ctx, key) VALUES (?1, ?2) RETURNING id")?;
    let mut delete_doc = conn.prepare_cached("DELETE FROM search_docs WHERE id = ?1")?;
    // Documents first; what the index must do, in order.
    // (document, its new text, whether it is new)
    let mut index: Vec<(i64, Option<&str>, bool)> = Vec::new();
    for change in last_changes(changes) {
        match change {
            SearchChange::Put { ctx, key, text } => {
                match find_doc.query_row(params![ctx, key], |r| r.get::<_, i64>(0)).optional()? {
                    Some(id) => index.push((id, Some(text), false)),
                    None => index.push((insert_doc.query_row(params![ctx, key], |r| r.get(0))?, Some(text), true)),
                }
            }
            SearchChange::Remove { ctx, key } => {
                if let Some(id) = find_doc.query_row(params![ctx, key], |r| r.get::<_, i64>(0)).optional()? {
                    delete_doc.execute([id])?;
                    index.push((id, None, false));
                }
            }
            SearchChange::DropContext { ctx } => {
                // Rare (a deleted context): the index is written here, in
                // order, whatever it costs.
                conn.execute(
                    "DELETE FROM search_fts WHERE rowid IN (SELECT id FROM search_docs WHERE ctx = ?1)",
                    [ctx],
                )?;
                conn.execute("DELETE FROM search_docs WHERE ctx = ?1", [ctx])?;
            }
        }
    }
    let mut delete_text = conn.prepare_cached("DELETE FROM search_fts WHERE rowid = ?1")?;
    let mut insert_text = conn.prepare_cached("INSERT INTO search_fts (rowid, text) VALUES (?1, ?2)")?;
    for (id, text, new) in index {
        if !new {
            delete_text.execute([id])?;
        }
        if let Some(text) = text {
            insert_text.execute(params![id, text])?;
        }
    }
    Ok(())
}

/// `changes` without those a later change of the same entry overrides (a
/// later put or removal of the key, or the removal of its context), in
/// their order.
fn last_changes(changes: &[SearchChange]) -> Vec<&SearchChange> {
    let mut seen = std::collections::HashSet::new();
    let mut dropped = std::collections::HashSet::new();
    let mut kept: Vec<&SearchChange> = changes
        .iter()
        .rev()
        .filter(|change| match change {
            SearchChange::Put { ctx, key, .. } | SearchChange::Remove { ctx, key } => {
                !dropped.contains(ctx.as_str()) && seen.insert((ctx.as_str(), key.as_str()))
            }
            SearchChange::DropContext { ctx } => dropped.insert(ctx.as_str()),
        })
        .collect();
    kept.reverse();
    kept
}

/// Runs a statement without parameters or rows (`BEGIN`, `SAVEPOINT`, ...),
/// prepared once per connection.
pub(crate) fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Drives a future over a [`SqliteTx`] to completion. They never wait:
/// every query runs synchronously on this thread.
pub(crate) fn run_now<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    futures::FutureExt::now_or_never(Box::pin(future))
        .unwrap_or_else(|| Err(StoreError::Backend("a SQLite operation did not complete synchronously".into())))
}

fn context_row(row: &Row<'_>) -> rusqlite::Result<RawContext> {
    Ok(RawContext {
        id: row.get(0)?,
        revision: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        created_by: row.get(4)?,
        settings: row.get(5)?,
        entry_count: row.get(6)?,
        compacted_revision: row.get(7)?,
        parent: row.get(8)?,
        forked_from: row.get(9)?,
    })
}

fn version_row(row: &Row<'_>) -> rusqlite::Result<VersionRow> {
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

fn entries_of(rows: impl Iterator<Item = rusqlite::Result<VersionRow>>) -> Result<Vec<Entry>> {
    collect_entries(rows.map(|r| r.map_err(StoreError::from)))
}

fn strings(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let out = stmt.query_map(params, |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(out)
}

/// Events parsed row by row, straight from SQLite's buffer.
fn events_of(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(sql)?;
    // Streams (inboxes, the agents feed) have the event column alone.
    let with_values = stmt.column_count() > 1;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let json = row.get_ref(0)?.as_bytes().map_err(rusqlite::Error::from)?;
        let mut event: Event = serde_json::from_slice(json)?;
        if with_values
            && let Some(value) = row.get_ref(1)?.as_bytes_or_null().map_err(rusqlite::Error::from)?
            && let Some(data) = event.data.as_mut().and_then(Value::as_object_mut)
        {
            data.insert("value".to_owned(), serde_json::from_slice(value)?);
        }
        out.push(event);
    }
    Ok(out)
}

/// The events and the values they leave to their versions (see
/// [`stored_event`]), for a `WHERE` clause on `e`.
macro_rules! events_query {
    ($where:literal) => {
        concat!(
            "SELECT e.event, v.value FROM events e LEFT JOIN versions v ",
            "ON v.ctx = e.ctx AND v.key = e.value_key AND v.revision = e.revision ",
            $where
        )
    };
}

impl SqliteTx<'_> {
    fn load_context(&self, id: &str) -> Result<ContextInfo> {
        let sql = format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id = ?1");
        match self.conn.prepare_cached(&sql)?.query_row([id], context_row).optional()? {
            Some(raw) => raw.decode(),
            None => Err(Error::not_found(format!("context {id:?}")).into()),
        }
    }

    fn optional_revision(&self, sql: &str, ctx: &str, at: Timestamp) -> Result<Option<u64>> {
        let rev: Option<i64> = self.conn.prepare_cached(sql)?.query_row(params![ctx, micros(at)], |r| r.get(0))?;
        Ok(rev.map(|r| r as u64))
    }
}

impl Tx for SqliteTx<'_> {
    async fn context(&mut self, id: &str) -> Result<ContextInfo> {
        self.load_context(id)
    }

    async fn lock_context(&mut self, id: &str) -> Result<ContextInfo> {
        // The writer thread is the only writer: its transaction holds every
        // context until it commits.
        self.load_context(id)
    }

    async fn list_contexts(&mut self, after: &str, limit: usize) -> Result<Vec<ContextInfo>> {
        let sql = format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id > ?1 ORDER BY id LIMIT ?2");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, limit as i64], context_row)?;
        rows.map(|raw| raw?.decode()).collect()
    }

    async fn insert_context(&mut self, info: &ContextInfo) -> Result<bool> {
        self.note(Change::InsertContext { info: Cow::Borrowed(info) })?;
        self.context_changed(&info.id);
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO contexts (id, revision, created_at, updated_at, created_by, settings, settings_version, \
             entry_count, compacted_revision, parent, forked_from) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                info.id,
                info.revision as i64,
                micros(info.created_at),
                micros(info.updated_at),
                info.created_by,
                serde_json::to_string(&info.settings)?,
                info.entry_count as i64,
                info.compacted_revision as i64,
                info.parent,
                info.forked_from.as_ref().map(serde_json::to_string).transpose()?,
            ])?;
        Ok(inserted == 1)
    }

    async fn update_settings(&mut self, id: &str, settings: &ContextSettings, at: Timestamp) -> Result<()> {
        self.note(Change::UpdateSettings { id: id.into(), settings: Cow::Borrowed(settings), at })?;
        self.context_changed(id);
        self.conn.execute(
            "UPDATE contexts SET settings = ?2, settings_version = settings_version + 1, updated_at = ?3 WHERE id = ?1",
            params![id, serde_json::to_string(settings)?, micros(at)],
        )?;
        Ok(())
    }

    async fn delete_context(&mut self, id: &str) -> Result<()> {
        self.note(Change::DeleteContext { id: id.into() })?;
        self.access_changed = true;
        self.search_change(SearchChange::DropContext { ctx: id.to_owned() })?;
        if let Some(live) = &mut self.live {
            live.push(LiveChange::Dropped { ctx: id.to_owned() });
        }
        for table in ["versions", "entries", "commits", "events"] {
            self.conn.execute(&format!("DELETE FROM {table} WHERE ctx = ?1"), [id])?;
        }
        self.conn.execute("DELETE FROM contexts WHERE id = ?1", [id])?;
        Ok(())
    }

    async fn search(&mut self, ctx: &str, terms: &[String], limit: usize) -> Result<Vec<(String, f64)>> {
        let query = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ");
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.key, -bm25(search_fts) AS score FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid \
             WHERE search_fts MATCH ?1 AND d.ctx = ?2 ORDER BY score DESC, d.key LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![query, ctx, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    async fn entry_latest(&mut self, ctx: &str, key: &str, now: Timestamp) -> Result<Option<Entry>> {
        if let Some(entry) = self.committed_entry(ctx, key, now) {
            return Ok(entry);
        }
        let sql = format!(
            "SELECT {} FROM entries e JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision \
             WHERE e.ctx = ?1 AND e.key = ?2 AND (e.expires_at IS NULL OR e.expires_at > ?3)",
            prefixed_version_columns()
        );
        let row = self.conn.prepare_cached(&sql)?.query_row(params![ctx, key, micros(now)], version_row).optional()?;
        Ok(row.map(VersionRow::into_entry).transpose()?.flatten())
    }

    async fn entry_at(&mut self, ctx: &str, key: &str, rev: u64) -> Result<Option<Entry>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE ctx = ?1 AND key = ?2 AND revision <= ?3 \
             ORDER BY revision DESC LIMIT 1"
        );
        let row = self.conn.prepare_cached(&sql)?.query_row(params![ctx, key, rev as i64], version_row).optional()?;
        Ok(row.map(VersionRow::into_entry).transpose()?.flatten())
    }

    async fn list_latest(
        &mut self,
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
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let params = params![ctx, prefix, prefix_end(prefix), after, now.map(micros), limit as i64];
        entries_of(stmt.query_map(params, version_row)?)
    }

    async fn list_at(&mut self, ctx: &str, prefix: &str, after: &str, limit: usize, rev: u64) -> Result<Vec<Entry>> {
        let sql = format!(
            "SELECT {} FROM versions v WHERE v.ctx = ?1 AND v.key >= ?2 AND (?3 IS NULL OR v.key < ?3) AND v.key > ?4 \
             AND v.revision = (SELECT MAX(w.revision) FROM versions w WHERE w.ctx = ?1 AND w.key = v.key AND w.revision <= ?5) \
             AND v.value IS NOT NULL ORDER BY v.key LIMIT ?6",
            prefixed_version_columns()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let params = params![ctx, prefix, prefix_end(prefix), after, rev as i64, limit as i64];
        entries_of(stmt.query_map(params, version_row)?)
    }

    async fn expired_keys(&mut self, ctx: &str, now: Timestamp) -> Result<Vec<String>> {
        strings(
            self.conn,
            "SELECT key FROM entries WHERE ctx = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2 ORDER BY key",
            params![ctx, micros(now)],
        )
    }

    async fn contexts_with_expired(&mut self, now: Timestamp) -> Result<Vec<String>> {
        strings(
            self.conn,
            "SELECT DISTINCT ctx FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY ctx",
            [micros(now)],
        )
    }

    async fn last_revision_at(&mut self, ctx: &str, at: Timestamp) -> Result<Option<u64>> {
        self.optional_revision("SELECT MAX(revision) FROM commits WHERE ctx = ?1 AND at <= ?2", ctx, at)
    }

    async fn first_revision_since(&mut self, ctx: &str, at: Timestamp) -> Result<Option<u64>> {
        self.optional_revision("SELECT MIN(revision) FROM commits WHERE ctx = ?1 AND at >= ?2", ctx, at)
    }

    async fn entry_versions(&mut self, ctx: &str, key: &str, before: u64, limit: usize) -> Result<Vec<EntryVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE ctx = ?1 AND key = ?2 AND revision < ?3 \
             ORDER BY revision DESC LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![ctx, key, before.min(i64::MAX as u64) as i64, limit as i64], version_row)?;
        rows.map(|row| row?.into_version()).collect()
    }

    async fn commits(&mut self, ctx: &str, before: u64, limit: usize) -> Result<Vec<Commit>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT revision, at, author, kind, keys FROM commits WHERE ctx = ?1 AND revision < ?2 \
             ORDER BY revision DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![ctx, before.min(i64::MAX as u64) as i64, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, String>(4)?))
        })?;
        rows.map(|row| {
            let (revision, at, author, kind, keys) = row?;
            Ok(Commit {
                revision: revision as u64,
                at: from_micros(at),
                author,
                kind,
                keys: serde_json::from_str(&keys)?,
            })
        })
        .collect()
    }

    async fn changed_keys(&mut self, ctx: &str, from: u64, to: u64) -> Result<Vec<String>> {
        strings(
            self.conn,
            "SELECT DISTINCT key FROM versions WHERE ctx = ?1 AND revision > ?2 AND revision <= ?3 ORDER BY key",
            params![ctx, from as i64, to as i64],
        )
    }

    async fn events(&mut self, ctx: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        events_of(
            self.conn,
            events_query!("WHERE e.ctx = ?1 AND e.revision > ?2 ORDER BY e.revision, e.seq LIMIT ?3"),
            params![ctx, after as i64, limit as i64],
        )
    }

    async fn revision_events(&mut self, ctx: &str, rev: u64, skip: usize) -> Result<Vec<Event>> {
        events_of(
            self.conn,
            events_query!("WHERE e.ctx = ?1 AND e.revision = ?2 ORDER BY e.seq LIMIT -1 OFFSET ?3"),
            params![ctx, rev as i64, skip as i64],
        )
    }

    async fn write_plan(&mut self, ctx: &str, plan: &Plan, entry_count: u64) -> Result<()> {
        self.note(Change::WritePlan { ctx: ctx.into(), plan: Cow::Borrowed(plan), entry_count })?;
        let search = self.write_rows(ctx, plan, entry_count)?;
        for change in search {
            self.search_change(change)?;
        }
        Ok(())
    }

    async fn remove_history_before(&mut self, ctx: &str, point: u64) -> Result<u64> {
        self.note(Change::RemoveHistoryBefore { ctx: ctx.into(), point })?;
        self.context_changed(ctx);
        let c = point as i64;
        // Versions superseded by a newer version at or before the point.
        let superseded = self.conn.execute(
            "DELETE FROM versions WHERE ctx = ?1 AND revision < ?2 AND EXISTS (SELECT 1 FROM versions w \
             WHERE w.ctx = versions.ctx AND w.key = versions.key AND w.revision > versions.revision AND w.revision <= ?2)",
            params![ctx, c],
        )?;
        // Deletions before the point that are the last word on their key.
        let tombstones = self
            .conn
            .execute("DELETE FROM versions WHERE ctx = ?1 AND revision < ?2 AND value IS NULL", params![ctx, c])?;
        self.conn.execute("DELETE FROM commits WHERE ctx = ?1 AND revision < ?2", params![ctx, c])?;
        self.conn.execute("DELETE FROM events WHERE ctx = ?1 AND revision < ?2", params![ctx, c])?;
        self.conn.execute("UPDATE contexts SET compacted_revision = ?2 WHERE id = ?1", params![ctx, c])?;
        Ok((superseded + tombstones) as u64)
    }

    fn published(&mut self) -> &mut Vec<Committed> {
        &mut self.published
    }

    async fn object(&mut self, kind: &str, id: &str, _lock: bool) -> Result<Option<Object>> {
        // The writer thread is the only writer: no lock to take.
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = ?1 AND id = ?2");
        Ok(self.conn.prepare_cached(&sql)?.query_row(params![kind, id], object_row).optional()?)
    }

    async fn put_object(&mut self, o: &Object) -> Result<()> {
        self.note(Change::PutObject { object: Cow::Borrowed(o) })?;
        self.access_changed |= crate::objects::affects_access(&o.kind);
        self.conn
            .prepare_cached(
                "INSERT INTO objects (kind, id, ctx, owner, state, due_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (kind, id) DO UPDATE SET ctx = excluded.ctx, owner = excluded.owner, \
                 state = excluded.state, due_at = excluded.due_at, body = excluded.body",
            )?
            .execute(params![o.kind, o.id, o.ctx, o.owner, o.state, o.due_at.map(micros), o.body])?;
        Ok(())
    }

    async fn delete_object(&mut self, kind: &str, id: &str) -> Result<()> {
        self.note(Change::DeleteObject { kind: kind.into(), id: id.into() })?;
        self.access_changed |= crate::objects::affects_access(kind);
        self.conn.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND id = ?2")?.execute(params![kind, id])?;
        Ok(())
    }

    async fn objects(&mut self, kind: &str, filter: &ObjectFilter, after: &str, limit: usize) -> Result<Vec<Object>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = ?1 AND (?2 IS NULL OR ctx = ?2) \
             AND (?3 IS NULL OR owner = ?3) AND (?4 IS NULL OR state = ?4) AND id > ?5 ORDER BY id LIMIT ?6"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![kind, filter.ctx, filter.owner, filter.state, after, limit.min(i64::MAX as usize) as i64],
            object_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    async fn due_objects(&mut self, kind: &str, now: Timestamp) -> Result<Vec<String>> {
        strings(
            self.conn,
            "SELECT id FROM objects WHERE kind = ?1 AND due_at IS NOT NULL AND due_at <= ?2 ORDER BY id",
            params![kind, micros(now)],
        )
    }

    async fn delete_context_objects(&mut self, ctx: &str) -> Result<()> {
        self.note(Change::DeleteContextObjects { ctx: ctx.into() })?;
        self.access_changed = true;
        self.conn.prepare_cached("DELETE FROM objects WHERE ctx = ?1")?.execute([ctx])?;
        Ok(())
    }

    async fn append_stream(&mut self, stream: &str, events: Vec<Event>) -> Result<Vec<Event>> {
        self.note(Change::AppendStream { stream: stream.into(), events: Cow::Borrowed(&events) })?;
        let mut seq = self.stream_head(stream).await?;
        let mut insert = self.conn.prepare_cached("INSERT INTO streams (stream, seq, event) VALUES (?1, ?2, ?3)")?;
        let mut out = Vec::with_capacity(events.len());
        for mut event in events {
            seq += 1;
            event.seq = Some(seq);
            insert.execute(params![stream, seq as i64, serde_json::to_string(&event)?])?;
            out.push(event);
        }
        Ok(out)
    }

    async fn stream(&mut self, stream: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        events_of(
            self.conn,
            "SELECT event FROM streams WHERE stream = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            params![stream, after as i64, limit.min(i64::MAX as usize) as i64],
        )
    }

    async fn append_audit(&mut self, records: &[AuditRecord]) -> Result<()> {
        self.note(Change::AppendAudit { records: Cow::Borrowed(records) })?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO audit (at, agent, action, resource, ctx, allowed, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in records {
            insert.execute(params![micros(r.at), r.agent, r.action, r.resource, r.context, r.allowed, r.reason])?;
        }
        Ok(())
    }

    async fn audit(&mut self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, agent, action, resource, ctx, allowed, reason FROM audit WHERE seq > ?1 \
             AND (?2 IS NULL OR agent = ?2) AND (?3 IS NULL OR ctx = ?3) AND (?4 IS NULL OR allowed = ?4) \
             AND (?5 IS NULL OR at >= ?5) ORDER BY seq LIMIT ?6",
        )?;
        let params = params![
            q.after.min(i64::MAX as u64) as i64,
            q.agent,
            q.context,
            q.allowed,
            q.since.map(micros),
            q.limit.min(i64::MAX as usize) as i64
        ];
        let rows = stmt.query_map(params, |r| {
            Ok(AuditRecord {
                seq: r.get::<_, i64>(0)? as u64,
                at: from_micros(r.get(1)?),
                agent: r.get(2)?,
                action: r.get(3)?,
                resource: r.get(4)?,
                context: r.get(5)?,
                allowed: r.get(6)?,
                reason: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    async fn trim_audit(&mut self, before: Timestamp) -> Result<u64> {
        self.note(Change::TrimAudit { before })?;
        Ok(self.conn.prepare_cached("DELETE FROM audit WHERE at < ?1")?.execute([micros(before)])? as u64)
    }

    async fn stream_head(&mut self, stream: &str) -> Result<u64> {
        let head: Option<i64> = self
            .conn
            .prepare_cached("SELECT MAX(seq) FROM streams WHERE stream = ?1")?
            .query_row([stream], |r| r.get(0))?;
        Ok(head.unwrap_or(0) as u64)
    }
}

fn object_row(row: &Row<'_>) -> rusqlite::Result<Object> {
    Ok(Object {
        kind: row.get(0)?,
        id: row.get(1)?,
        ctx: row.get(2)?,
        owner: row.get(3)?,
        state: row.get(4)?,
        due_at: row.get::<_, Option<i64>>(5)?.map(from_micros),
        body: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::{SearchChange, last_changes};

    fn put(ctx: &str, key: &str, text: &str) -> SearchChange {
        SearchChange::Put { ctx: ctx.into(), key: key.into(), text: text.into() }
    }

    fn describe(changes: Vec<&SearchChange>) -> Vec<String> {
        changes
            .into_iter()
            .map(|c| match c {
                SearchChange::Put { ctx, key, text } => format!("put {ctx}/{key}={text}"),
                SearchChange::Remove { ctx, key } => format!("remove {ctx}/{key}"),
                SearchChange::DropContext { ctx } => format!("drop {ctx}"),
            })
            .collect()
    }

    #[test]
    fn only_the_last_change_of_an_entry_is_indexed() {
        let changes = vec![
            put("a", "k", "1"),
            put("a", "j", "1"),
            put("a", "k", "2"),
            SearchChange::Remove { ctx: "a".into(), key: "j".into() },
            put("b", "k", "1"),
            SearchChange::DropContext { ctx: "b".into() },
            put("b", "k", "2"),
            SearchChange::DropContext { ctx: "c".into() },
            put("c", "x", "1"),
            SearchChange::DropContext { ctx: "c".into() },
        ];
        assert_eq!(describe(last_changes(&changes)), ["put a/k=2", "remove a/j", "drop b", "put b/k=2", "drop c"]);
    }
}
