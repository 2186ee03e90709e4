//! The PostgreSQL schema and its migrations, recorded in
//! `ctxmesh_migrations`. Nodes that start together migrate one at a time
//! under an advisory lock.

use deadpool_postgres::Client;

use crate::error::{Result, StoreError};

/// Each step moves the schema from version `index` to `index + 1`. Keys and
/// ids compare bytewise (`COLLATE "C"`), as prefix ranges and pagination
/// need, whatever the database's default collation.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE contexts (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    revision           BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,   -- unix microseconds
    updated_at         BIGINT NOT NULL,
    created_by         TEXT NOT NULL,
    settings           TEXT NOT NULL,     -- JSON: policy, schemas, retention, labels
    entry_count        BIGINT NOT NULL,
    compacted_revision BIGINT NOT NULL DEFAULT 0,
    parent             TEXT,
    forked_from        TEXT               -- JSON {context, revision}
);

CREATE TABLE versions (
    ctx              TEXT COLLATE "C" NOT NULL,
    key              TEXT COLLATE "C" NOT NULL,
    revision         BIGINT NOT NULL,
    change           TEXT NOT NULL,       -- created | updated | deleted | expired
    value            TEXT,                -- JSON; NULL for deletions
    meta             TEXT,                -- JSON EntryMeta; NULL for deletions
    version          BIGINT NOT NULL,
    created_revision BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    author           TEXT NOT NULL,
    vclock           TEXT NOT NULL,
    PRIMARY KEY (ctx, key, revision)
);
CREATE INDEX versions_by_revision ON versions (ctx, revision);

CREATE TABLE entries (
    ctx        TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    revision   BIGINT NOT NULL,
    expires_at BIGINT,                    -- unix microseconds
    PRIMARY KEY (ctx, key)
);
CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE commits (
    ctx      TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    author   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    keys     TEXT NOT NULL,               -- JSON array
    PRIMARY KEY (ctx, revision)
);
CREATE INDEX commits_by_time ON commits (ctx, at);

CREATE TABLE events (
    ctx      TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL,
    seq      INTEGER NOT NULL,            -- order within the revision
    event    TEXT NOT NULL,               -- JSON Event
    PRIMARY KEY (ctx, revision, seq)
);
"#,
    r#"
CREATE TABLE objects (
    kind   TEXT COLLATE "C" NOT NULL,     -- agent | lock | handoff | task
    id     TEXT COLLATE "C" NOT NULL,
    ctx    TEXT COLLATE "C",
    owner  TEXT COLLATE "C",
    state  TEXT,
    due_at BIGINT,                        -- unix microseconds: lease, TTL, deadline
    body   TEXT NOT NULL,                 -- JSON
    PRIMARY KEY (kind, id)
);
CREATE INDEX objects_by_ctx ON objects (kind, ctx, id);
CREATE INDEX objects_by_owner ON objects (kind, owner, id);
CREATE INDEX objects_due ON objects (kind, due_at) WHERE due_at IS NOT NULL;

-- The head of each stream; its row lock orders appends across nodes.
CREATE TABLE stream_heads (
    stream TEXT COLLATE "C" PRIMARY KEY,
    seq    BIGINT NOT NULL
);

CREATE TABLE streams (
    stream TEXT COLLATE "C" NOT NULL,
    seq    BIGINT NOT NULL,
    event  TEXT NOT NULL,                 -- JSON Event with its seq
    PRIMARY KEY (stream, seq)
);
"#,
    r#"
CREATE TABLE audit (
    seq      BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,             -- unix microseconds
    agent    TEXT COLLATE "C" NOT NULL,
    action   TEXT NOT NULL,
    resource TEXT NOT NULL,
    ctx      TEXT COLLATE "C" NOT NULL,
    allowed  BOOLEAN NOT NULL,
    reason   TEXT NOT NULL
);
CREATE INDEX audit_by_agent ON audit (agent, seq);
CREATE INDEX audit_by_ctx ON audit (ctx, seq);
CREATE INDEX audit_by_time ON audit (at);
"#,
    r#"
-- Keyword search: one document per live entry, ranked by ts_rank_cd.
CREATE TABLE search_docs (
    ctx TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    doc TSVECTOR NOT NULL,
    PRIMARY KEY (ctx, key)
);
CREATE INDEX search_docs_fts ON search_docs USING GIN (doc);
"#,
];

/// The migration that added keyword search: the entries there were before
/// it are indexed when it runs.
const SEARCH_MIGRATION: usize = 4;

/// The key of ctxmesh's migration lock ("ctxmesh" in ASCII).
const MIGRATION_LOCK: i64 = 0x0063_7478_6d65_7368;

/// Brings the schema up to date; returns the schema the tables live in.
pub(crate) async fn migrate(client: &mut Client) -> Result<String> {
    let schema: Option<String> = client.query_one("SELECT current_schema()", &[]).await?.try_get(0)?;
    let Some(schema) = schema else {
        return Err(StoreError::Unavailable(
            "the database has no schema to create ctxmesh's tables in: create the schema named in search_path".into(),
        ));
    };
    let tx = client.transaction().await?;
    // Held until this transaction ends: one node migrates, the others wait
    // and then find the schema current.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS ctxmesh_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await?;
    let current: i32 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM ctxmesh_migrations", &[]).await?.try_get(0)?;
    let current = current as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this ctxmesh knows ({}): upgrade ctxmesh",
            MIGRATIONS.len()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await?;
        if version + 1 == SEARCH_MIGRATION {
            let rows = tx
                .query(
                    "SELECT e.ctx, e.key, v.value, v.meta FROM entries e \
                     JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision",
                    &[],
                )
                .await?;
            for row in rows {
                let (ctx, key): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                let text = crate::codec::stored_search_text(&key, row.try_get(2)?, row.try_get(3)?)?;
                tx.execute(
                    "INSERT INTO search_docs (ctx, key, doc) VALUES ($1, $2, to_tsvector('simple', $3))",
                    &[&ctx, &key, &text],
                )
                .await?;
            }
        }
        tx.execute("INSERT INTO ctxmesh_migrations (version) VALUES ($1)", &[&(version as i32 + 1)]).await?;
    }
    tx.commit().await?;
    Ok(schema)
}
