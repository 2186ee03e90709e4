//! The SQLite schema and its migrations, versioned by `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::Result;

/// Each step moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE contexts (
    id                 TEXT PRIMARY KEY,
    revision           INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,   -- unix microseconds
    updated_at         INTEGER NOT NULL,
    created_by         TEXT NOT NULL,
    settings           TEXT NOT NULL,      -- JSON: policy, schemas, retention, labels
    settings_version   INTEGER NOT NULL,
    entry_count        INTEGER NOT NULL,
    compacted_revision INTEGER NOT NULL DEFAULT 0,
    parent             TEXT,
    forked_from        TEXT                -- JSON {context, revision}
) WITHOUT ROWID;

-- Every version of every entry; the current entry is the newest version.
CREATE TABLE versions (
    ctx              TEXT NOT NULL,
    key              TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    change           TEXT NOT NULL,        -- created | updated | deleted | expired
    value            TEXT,                 -- JSON; NULL for deletions
    meta             TEXT,                 -- JSON EntryMeta; NULL for deletions
    version          INTEGER NOT NULL,
    created_revision INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    author           TEXT NOT NULL,
    vclock           TEXT NOT NULL,
    PRIMARY KEY (ctx, key, revision)
) WITHOUT ROWID;
CREATE INDEX versions_by_revision ON versions (ctx, revision);

-- The live entries: a pointer to the current version of each key.
CREATE TABLE entries (
    ctx        TEXT NOT NULL,
    key        TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    expires_at INTEGER,                    -- unix microseconds
    PRIMARY KEY (ctx, key)
) WITHOUT ROWID;
CREATE INDEX entries_expiry ON entries (ctx, expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE commits (
    ctx      TEXT NOT NULL,
    revision INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    author   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    keys     TEXT NOT NULL,                -- JSON array
    PRIMARY KEY (ctx, revision)
) WITHOUT ROWID;
CREATE INDEX commits_by_time ON commits (ctx, at);

CREATE TABLE events (
    ctx      TEXT NOT NULL,
    revision INTEGER NOT NULL,
    seq      INTEGER NOT NULL,             -- order within the revision
    event    TEXT NOT NULL,                -- JSON Event
    PRIMARY KEY (ctx, revision, seq)
) WITHOUT ROWID;
"#,
    r#"
-- Agents, locks, handoffs and tasks: a JSON body and its lookup columns.
CREATE TABLE objects (
    kind   TEXT NOT NULL,                  -- agent | lock | handoff | task
    id     TEXT NOT NULL,
    ctx    TEXT,
    owner  TEXT,
    state  TEXT,
    due_at INTEGER,                        -- unix microseconds: lease, TTL, deadline
    body   TEXT NOT NULL,                  -- JSON
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX objects_by_ctx ON objects (kind, ctx, id);
CREATE INDEX objects_by_owner ON objects (kind, owner, id);
CREATE INDEX objects_due ON objects (kind, due_at) WHERE due_at IS NOT NULL;

-- Per-agent inboxes and the agents feed: events numbered per stream.
CREATE TABLE streams (
    stream TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    event  TEXT NOT NULL,                  -- JSON Event with its seq
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
"#,
    r#"
-- Access decisions on contexts.
CREATE TABLE audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,             -- unix microseconds
    agent    TEXT NOT NULL,
    action   TEXT NOT NULL,
    resource TEXT NOT NULL,
    ctx      TEXT NOT NULL,
    allowed  INTEGER NOT NULL,
    reason   TEXT NOT NULL
);
CREATE INDEX audit_by_agent ON audit (agent, seq);
CREATE INDEX audit_by_ctx ON audit (ctx, seq);
CREATE INDEX audit_by_time ON audit (at);
"#,
    r#"
-- Keyword search: one document per live entry, ranked by BM25.
CREATE TABLE search_docs (
    id  INTEGER PRIMARY KEY,
    ctx TEXT NOT NULL,
    key TEXT NOT NULL,
    UNIQUE (ctx, key)
);
CREATE VIRTUAL TABLE search_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
"#,
    r#"
-- The keyword index keeps no copy of the text (the entries have it), and
-- deletes without reading it back: a write replaces its entry's document
-- without tokenizing the old text again.
DROP TABLE search_fts;
DELETE FROM search_docs;
CREATE VIRTUAL TABLE search_fts USING fts5(
    text, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);
"#,
    r#"
-- The last commit log record the database holds (see sqlite/log.rs): it
-- moves in the same transaction as the rows of the record. (Written so
-- that a schema set back to an older version, as tests do, migrates again.)
CREATE TABLE IF NOT EXISTS log_position (applied INTEGER NOT NULL);
INSERT INTO log_position (applied) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM log_position);
"#,
    r#"
-- Versions in a rowid table: a write appends its version (value and all)
-- at the table's end, and only the small key of the unique index lands on
-- a page of its own. Keyed by (ctx, key, revision) without a rowid, each
-- write put its whole row on a random leaf of the largest table, which
-- split and rewrote pages of about three rows each.
CREATE TABLE versions_by_row (
    ctx              TEXT NOT NULL,
    key              TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    change           TEXT NOT NULL,
    value            TEXT,
    meta             TEXT,
    version          INTEGER NOT NULL,
    created_revision INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    author           TEXT NOT NULL,
    vclock           TEXT NOT NULL
);
INSERT INTO versions_by_row SELECT ctx, key, revision, change, value, meta, version, created_revision,
    updated_at, author, vclock FROM versions ORDER BY ctx, revision, key;
DROP TABLE versions;
ALTER TABLE versions_by_row RENAME TO versions;
CREATE UNIQUE INDEX versions_by_key ON versions (ctx, key, revision);
CREATE INDEX versions_by_revision ON versions (ctx, revision);
"#,
    r#"
-- An entry event stores its value once, in the version row: `value_key`
-- names the entry whose version at the event's revision holds the event's
-- `data.value` (NULL: the event holds all of itself).
ALTER TABLE events ADD COLUMN value_key TEXT;
"#,
];

/// The schema version this ctxmesh writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// The migrations that (re)made the keyword index: the entries there were
/// before are indexed when they run.
const SEARCH_MIGRATIONS: [usize; 2] = [4, 5];

/// Indexes the live entries for keyword search (once, at the migration
/// that added it).
fn index_existing(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let mut read = tx.prepare(
        "SELECT e.ctx, e.key, v.value, v.meta FROM entries e \
         JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision",
    )?;
    let rows = read.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)))?;
    let mut doc = tx.prepare("INSERT INTO search_docs (ctx, key) VALUES (?1, ?2) RETURNING id")?;
    let mut text = tx.prepare("INSERT INTO search_fts (rowid, text) VALUES (?1, ?2)")?;
    for row in rows {
        let (ctx, key, value, meta): (String, String, Option<String>, Option<String>) = row?;
        let indexed = crate::codec::stored_search_text(&key, value, meta)?;
        let id: i64 = doc.query_row(rusqlite::params![ctx, key], |r| r.get(0))?;
        text.execute(rusqlite::params![id, indexed])?;
    }
    Ok(())
}

/// The migrations that add a column (table, column): skipped where the
/// column is there already (as when tests set the schema version back).
const COLUMN_MIGRATIONS: [(usize, &str, &str); 1] = [(8, "events", "value_key")];

/// Whether `table` has `column`.
fn has_column(tx: &rusqlite::Transaction<'_>, table: &str, column: &str) -> Result<bool> {
    let found: i64 = tx.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        rusqlite::params![table, column],
        |r| r.get(0),
    )?;
    Ok(found > 0)
}

/// Brings the database schema up to date.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(crate::StoreError::Backend(format!(
            "the database has schema version {current}, newer than this ctxmesh knows ({}): upgrade ctxmesh",
            MIGRATIONS.len()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        let present = match COLUMN_MIGRATIONS.iter().find(|(n, ..)| *n == version + 1) {
            Some((_, table, column)) => has_column(&tx, table, column)?,
            None => false,
        };
        if !present {
            tx.execute_batch(sql)?;
        }
        if SEARCH_MIGRATIONS.contains(&(version + 1)) {
            index_existing(&tx)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))?;
        tx.commit()?;
    }
    Ok(())
}
