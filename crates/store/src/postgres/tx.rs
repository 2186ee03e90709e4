//! [`Tx`] over one PostgreSQL transaction, on a [`Pipeline`]: statements
//! whose answer no operation needs (the rows of a revision, objects, audit
//! records) are buffered and sent with the next statement that answers, or
//! with `COMMIT`; what a job reads first is fetched, with the context's row
//! lock, in the round trip that starts it ([`PgTx::prefetch`]). A single
//! write so costs two round trips: lock and read, then write and commit.
//! Statements are prepared once per connection (deadpool's statement
//! cache).

use std::collections::{HashMap, HashSet};

use ctxmesh_core::access::AuditRecord;
use ctxmesh_core::context::{ContextInfo, ContextSettings};
use ctxmesh_core::error::Error;
use ctxmesh_core::history::Commit;
use ctxmesh_core::ids::prefix_end;
use ctxmesh_core::txn::Plan;
use ctxmesh_core::{Entry, Event, Timestamp};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::pipeline::{Answer, Param, Pipeline, Tail};
use crate::codec::{
    CONTEXT_COLUMNS, OBJECT_COLUMNS, RawContext, VERSION_COLUMNS, VersionRow, collect_entries, from_micros, micros,
    prefixed_version_columns, version_inserts,
};
use crate::coord::AuditQuery;
use crate::error::{Result, StoreError};
use crate::notify::Committed;
use crate::tx::{Object, ObjectFilter, Tx};
use crate::types::EntryVersion;

/// A transaction on a pooled connection, opened and ended by the caller
/// through its [`Pipeline`].
pub(crate) struct PgTx<'p, 'c> {
    pipe: &'p mut Pipeline<'c>,
    /// What [`PgTx::prefetch`] read, until this transaction writes.
    prefetched: Option<Prefetched>,
    pub(crate) published: Vec<Committed>,
}

/// What a job reads first, to be fetched in the round trip that starts it.
pub(crate) struct Prefetch {
    /// The context, read (and with `lock`, locked) first.
    pub(crate) ctx: String,
    pub(crate) lock: bool,
    /// Live entries it will read.
    pub(crate) keys: Vec<String>,
    /// With a time: the entries of the context expiring at or before it
    /// (a job asks which entries expired a little later than it starts).
    pub(crate) expiring_by: Option<Timestamp>,
}

/// The answers of a prefetch. They stay true while the transaction holds
/// the context's row lock (or, for a read, its snapshot) and writes
/// nothing; the first write drops them.
struct Prefetched {
    ctx: String,
    lock: bool,
    info: Option<ContextInfo>,
    keys: HashSet<String>,
    /// The live entries among `keys`, with their expiry (unix micros).
    entries: HashMap<String, (Entry, Option<i64>)>,
    /// The horizon, and the entries expiring by it, by key.
    expiring: Option<(i64, Vec<(String, i64)>)>,
}

impl<'p, 'c> PgTx<'p, 'c> {
    pub(crate) fn new(pipe: &'p mut Pipeline<'c>) -> Self {
        PgTx { pipe, prefetched: None, published: Vec::new() }
    }

    /// Reads, in one round trip (with whatever is buffered before it), what
    /// `what` names; [`Tx::lock_context`], [`Tx::context`],
    /// [`Tx::entry_latest`] and [`Tx::expired_keys`] then answer from it.
    pub(crate) async fn prefetch(&mut self, what: Prefetch) -> Result<()> {
        self.prefetched = None;
        let context_sql = if what.lock {
            format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id = $1 FOR UPDATE")
        } else {
            format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id = $1")
        };
        let entries_sql = format!(
            "SELECT {}, e.expires_at FROM entries e JOIN versions v ON v.ctx = e.ctx AND v.key = e.key \
             AND v.revision = e.revision WHERE e.ctx = $1 AND e.key = ANY($2)",
            prefixed_version_columns()
        );
        let expiring_sql = "SELECT key, expires_at FROM entries WHERE ctx = $1 AND expires_at IS NOT NULL \
                            AND expires_at <= $2 ORDER BY key";
        let horizon = what.expiring_by.map(micros);
        let ctx_param: [&(dyn ToSql + Sync); 1] = [&what.ctx];
        let entries_params: [&(dyn ToSql + Sync); 2] = [&what.ctx, &what.keys];
        let expiring_params: [&(dyn ToSql + Sync); 2] = [&what.ctx, &horizon];
        // The row lock is taken first: the reads after it, each with a
        // snapshot of its own, see every commit made before it.
        let mut tails = vec![Tail::Query(&context_sql, &ctx_param)];
        if !what.keys.is_empty() {
            tails.push(Tail::Query(&entries_sql, &entries_params));
        }
        if horizon.is_some() {
            tails.push(Tail::Query(expiring_sql, &expiring_params));
        }
        let mut answers = self.pipe.flush(&tails).await?.into_iter().map(|a| match a {
            Answer::Rows(rows) => rows,
            Answer::Count(_) => Vec::new(),
        });
        let info = match answers.next().unwrap_or_default().first() {
            Some(row) => Some(context_row(row)?.decode()?),
            None => None,
        };
        let mut entries = HashMap::new();
        if !what.keys.is_empty() {
            for row in answers.next().unwrap_or_default() {
                let expires_at: Option<i64> = row.try_get(10)?;
                if let Some(entry) = version_row(&row)?.into_entry()? {
                    entries.insert(entry.key.clone(), (entry, expires_at));
                }
            }
        }
        let expiring = match horizon {
            Some(horizon) => {
                let rows = answers.next().unwrap_or_default();
                let keys = rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>>>()?;
                Some((horizon, keys))
            }
            None => None,
        };
        self.prefetched = Some(Prefetched {
            ctx: what.ctx,
            lock: what.lock,
            info,
            keys: what.keys.into_iter().collect(),
            entries,
            expiring,
        });
        Ok(())
    }

    /// The prefetched answers about `ctx`, if there are any.
    fn prefetched(&self, ctx: &str) -> Option<&Prefetched> {
        self.prefetched.as_ref().filter(|p| p.ctx == ctx)
    }

    async fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        match self.pipe.flush(&[Tail::Query(sql, params)]).await?.pop() {
            Some(Answer::Rows(rows)) => Ok(rows),
            _ => Err(StoreError::Backend("a query answered no rows".into())),
        }
    }

    /// Runs a write whose answer is needed (sending what is buffered first).
    async fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.prefetched = None;
        match self.pipe.flush(&[Tail::Execute(sql, params)]).await?.pop() {
            Some(Answer::Count(n)) => Ok(n),
            _ => Err(StoreError::Backend("a statement answered no count".into())),
        }
    }

    /// Buffers a write whose answer nobody needs: it is sent with the next
    /// statement that answers, or with `COMMIT`.
    fn defer(&mut self, sql: impl Into<std::borrow::Cow<'static, str>>, params: Vec<Param>) {
        self.prefetched = None;
        self.pipe.push(sql, params);
    }

    async fn contexts(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<ContextInfo>> {
        self.query(sql, params).await?.iter().map(|row| context_row(row)?.decode()).collect()
    }

    async fn one_context(&mut self, sql: &str, id: &str) -> Result<ContextInfo> {
        match self.contexts(sql, &[&id]).await?.pop() {
            Some(info) => Ok(info),
            None => Err(not_found(id)),
        }
    }

    async fn entries(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Entry>> {
        collect_entries(self.query(sql, params).await?.iter().map(version_row))
    }

    async fn strings(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<String>> {
        self.query(sql, params).await?.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn optional_revision(&mut self, sql: &str, ctx: &str, at: Timestamp) -> Result<Option<u64>> {
        let rows = self.query(sql, &[&ctx, &micros(at)]).await?;
        let rev: Option<i64> = match rows.first() {
            Some(row) => row.try_get(0)?,
            None => None,
        };
        Ok(rev.map(|r| r as u64))
    }

    async fn event_rows(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Event>> {
        self.strings(sql, params).await?.iter().map(|e| Ok(serde_json::from_str(e)?)).collect()
    }
}

fn not_found(id: &str) -> StoreError {
    Error::not_found(format!("context {id:?}")).into()
}

fn context_row(row: &Row) -> Result<RawContext> {
    Ok(RawContext {
        id: row.try_get(0)?,
        revision: row.try_get(1)?,
        created_at: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        created_by: row.try_get(4)?,
        settings: row.try_get(5)?,
        entry_count: row.try_get(6)?,
        compacted_revision: row.try_get(7)?,
        parent: row.try_get(8)?,
        forked_from: row.try_get(9)?,
    })
}

pub(crate) fn version_row(row: &Row) -> Result<VersionRow> {
    Ok(VersionRow {
        key: row.try_get(0)?,
        revision: row.try_get(1)?,
        change: row.try_get(2)?,
        value: row.try_get(3)?,
        meta: row.try_get(4)?,
        version: row.try_get(5)?,
        created_revision: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        author: row.try_get(8)?,
        vclock: row.try_get(9)?,
    })
}

/// Clamps a count or revision into PostgreSQL's BIGINT.
fn big(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl Tx for PgTx<'_, '_> {
    async fn context(&mut self, id: &str) -> Result<ContextInfo> {
        if let Some(p) = self.prefetched(id) {
            return p.info.clone().ok_or_else(|| not_found(id));
        }
        self.one_context(&format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id = $1"), id).await
    }

    async fn lock_context(&mut self, id: &str) -> Result<ContextInfo> {
        // The row lock orders every write to this context, across all nodes,
        // until this transaction ends.
        if let Some(p) = self.prefetched(id).filter(|p| p.lock) {
            return p.info.clone().ok_or_else(|| not_found(id));
        }
        self.one_context(&format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id = $1 FOR UPDATE"), id).await
    }

    async fn list_contexts(&mut self, after: &str, limit: usize) -> Result<Vec<ContextInfo>> {
        let sql = format!("SELECT {CONTEXT_COLUMNS} FROM contexts WHERE id > $1 ORDER BY id LIMIT $2");
        self.contexts(&sql, &[&after, &big(limit as u64)]).await
    }

    async fn insert_context(&mut self, info: &ContextInfo) -> Result<bool> {
        let settings = serde_json::to_string(&info.settings)?;
        let forked_from = info.forked_from.as_ref().map(serde_json::to_string).transpose()?;
        let inserted = self
            .execute(
                "INSERT INTO contexts (id, revision, created_at, updated_at, created_by, settings, entry_count, \
                 compacted_revision, parent, forked_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &info.id,
                    &big(info.revision),
                    &micros(info.created_at),
                    &micros(info.updated_at),
                    &info.created_by,
                    &settings,
                    &big(info.entry_count),
                    &big(info.compacted_revision),
                    &info.parent,
                    &forked_from,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn update_settings(&mut self, id: &str, settings: &ContextSettings, at: Timestamp) -> Result<()> {
        let settings = serde_json::to_string(settings)?;
        self.defer(
            "UPDATE contexts SET settings = $2, updated_at = $3 WHERE id = $1",
            vec![Box::new(id.to_owned()), Box::new(settings), Box::new(micros(at))],
        );
        Ok(())
    }

    async fn delete_context(&mut self, id: &str) -> Result<()> {
        self.defer(
            "WITH v AS (DELETE FROM versions WHERE ctx = $1), e AS (DELETE FROM entries WHERE ctx = $1), \
             c AS (DELETE FROM commits WHERE ctx = $1), ev AS (DELETE FROM events WHERE ctx = $1), \
             s AS (DELETE FROM search_docs WHERE ctx = $1) \
             DELETE FROM contexts WHERE id = $1",
            vec![Box::new(id.to_owned())],
        );
        Ok(())
    }

    async fn entry_latest(&mut self, ctx: &str, key: &str, now: Timestamp) -> Result<Option<Entry>> {
        if let Some(p) = self.prefetched(ctx).filter(|p| p.keys.contains(key)) {
            let now = micros(now);
            let live = p.entries.get(key).filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now));
            return Ok(live.map(|(entry, _)| entry.clone()));
        }
        let sql = format!(
            "SELECT {} FROM entries e JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision \
             WHERE e.ctx = $1 AND e.key = $2 AND (e.expires_at IS NULL OR e.expires_at > $3)",
            prefixed_version_columns()
        );
        Ok(self.entries(&sql, &[&ctx, &key, &micros(now)]).await?.pop())
    }

    async fn entry_at(&mut self, ctx: &str, key: &str, rev: u64) -> Result<Option<Entry>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE ctx = $1 AND key = $2 AND revision <= $3 \
             ORDER BY revision DESC LIMIT 1"
        );
        Ok(self.entries(&sql, &[&ctx, &key, &big(rev)]).await?.pop())
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
             WHERE e.ctx = $1 AND e.key >= $2 AND ($3::text IS NULL OR e.key < $3) AND e.key > $4 \
             AND ($5::bigint IS NULL OR e.expires_at IS NULL OR e.expires_at > $5) ORDER BY e.key LIMIT $6",
            prefixed_version_columns()
        );
        let (end, now) = (prefix_end(prefix), now.map(micros));
        self.entries(&sql, &[&ctx, &prefix, &end, &after, &now, &big(limit as u64)]).await
    }

    async fn list_at(&mut self, ctx: &str, prefix: &str, after: &str, limit: usize, rev: u64) -> Result<Vec<Entry>> {
        // The newest version of each key at `rev`, then the live ones.
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM (SELECT DISTINCT ON (v.key) {} FROM versions v \
             WHERE v.ctx = $1 AND v.key >= $2 AND ($3::text IS NULL OR v.key < $3) AND v.key > $4 \
             AND v.revision <= $5 ORDER BY v.key, v.revision DESC) s \
             WHERE s.value IS NOT NULL ORDER BY s.key LIMIT $6",
            prefixed_version_columns()
        );
        let end = prefix_end(prefix);
        self.entries(&sql, &[&ctx, &prefix, &end, &after, &big(rev), &big(limit as u64)]).await
    }

    async fn expired_keys(&mut self, ctx: &str, now: Timestamp) -> Result<Vec<String>> {
        let now_micros = micros(now);
        if let Some((_, expiring)) =
            self.prefetched(ctx).and_then(|p| p.expiring.as_ref()).filter(|(horizon, _)| now_micros <= *horizon)
        {
            return Ok(expiring.iter().filter(|(_, at)| *at <= now_micros).map(|(key, _)| key.clone()).collect());
        }
        self.strings(
            "SELECT key FROM entries WHERE ctx = $1 AND expires_at IS NOT NULL AND expires_at <= $2 ORDER BY key",
            &[&ctx, &micros(now)],
        )
        .await
    }

    async fn contexts_with_expired(&mut self, now: Timestamp) -> Result<Vec<String>> {
        self.strings(
            "SELECT DISTINCT ctx FROM entries WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY ctx",
            &[&micros(now)],
        )
        .await
    }

    async fn last_revision_at(&mut self, ctx: &str, at: Timestamp) -> Result<Option<u64>> {
        self.optional_revision("SELECT MAX(revision) FROM commits WHERE ctx = $1 AND at <= $2", ctx, at).await
    }

    async fn first_revision_since(&mut self, ctx: &str, at: Timestamp) -> Result<Option<u64>> {
        self.optional_revision("SELECT MIN(revision) FROM commits WHERE ctx = $1 AND at >= $2", ctx, at).await
    }

    async fn entry_versions(&mut self, ctx: &str, key: &str, before: u64, limit: usize) -> Result<Vec<EntryVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE ctx = $1 AND key = $2 AND revision < $3 \
             ORDER BY revision DESC LIMIT $4"
        );
        let rows = self.query(&sql, &[&ctx, &key, &big(before), &big(limit as u64)]).await?;
        rows.iter().map(|row| version_row(row)?.into_version()).collect()
    }

    async fn commits(&mut self, ctx: &str, before: u64, limit: usize) -> Result<Vec<Commit>> {
        let rows = self
            .query(
                "SELECT revision, at, author, kind, keys FROM commits WHERE ctx = $1 AND revision < $2 \
                 ORDER BY revision DESC LIMIT $3",
                &[&ctx, &big(before), &big(limit as u64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Commit {
                    revision: r.try_get::<_, i64>(0)? as u64,
                    at: from_micros(r.try_get(1)?),
                    author: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    keys: serde_json::from_str(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    async fn changed_keys(&mut self, ctx: &str, from: u64, to: u64) -> Result<Vec<String>> {
        self.strings(
            "SELECT DISTINCT key FROM versions WHERE ctx = $1 AND revision > $2 AND revision <= $3 ORDER BY key",
            &[&ctx, &big(from), &big(to)],
        )
        .await
    }

    async fn events(&mut self, ctx: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.event_rows(
            "SELECT event FROM events WHERE ctx = $1 AND revision > $2 ORDER BY revision, seq LIMIT $3",
            &[&ctx, &big(after), &big(limit as u64)],
        )
        .await
    }

    async fn revision_events(&mut self, ctx: &str, rev: u64, skip: usize) -> Result<Vec<Event>> {
        self.event_rows(
            "SELECT event FROM events WHERE ctx = $1 AND revision = $2 ORDER BY seq OFFSET $3",
            &[&ctx, &big(rev), &big(skip as u64)],
        )
        .await
    }

    async fn write_plan(&mut self, ctx: &str, plan: &Plan, entry_count: u64) -> Result<()> {
        let rows = version_inserts(plan)?;
        let mut v = VersionColumns::default();
        let (mut live_keys, mut live_revisions, mut live_expiry, mut gone) = (vec![], vec![], vec![], vec![]);
        let mut texts: Vec<String> = vec![];
        for row in rows {
            match row.live {
                Some(expires_at) => {
                    live_keys.push(row.key.to_owned());
                    live_revisions.push(row.revision);
                    live_expiry.push(expires_at);
                    texts.push(row.text.unwrap_or_default());
                }
                None => gone.push(row.key.to_owned()),
            }
            v.key.push(row.key.to_owned());
            v.revision.push(row.revision);
            v.change.push(row.change);
            v.value.push(row.value);
            v.meta.push(row.meta);
            v.version.push(row.version);
            v.created_revision.push(row.created_revision);
            v.updated_at.push(row.updated_at);
            v.author.push(row.author.to_owned());
            v.vclock.push(row.vclock);
        }
        let events = plan.events.iter().map(serde_json::to_string).collect::<serde_json::Result<Vec<_>>>()?;
        let seqs: Vec<i64> = (0..events.len() as i64).collect();
        let keys = serde_json::to_string(&plan.commit.keys)?;
        // One statement for every row of the revision, sent with the
        // commit (or the next read).
        self.defer(
            "WITH v AS (INSERT INTO versions (ctx, key, revision, change, value, meta, version, created_revision, \
                 updated_at, author, vclock) \
               SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
                 $8::bigint[], $9::bigint[], $10::text[], $11::text[])), \
             e AS (INSERT INTO entries (ctx, key, revision, expires_at) \
               SELECT $1, * FROM UNNEST($12::text[], $13::bigint[], $14::bigint[]) \
               ON CONFLICT (ctx, key) DO UPDATE SET revision = excluded.revision, expires_at = excluded.expires_at), \
             d AS (DELETE FROM entries WHERE ctx = $1 AND key = ANY($15::text[])), \
             s AS (INSERT INTO search_docs (ctx, key, doc) \
               SELECT $1, k, to_tsvector('simple', t) FROM UNNEST($12::text[], $24::text[]) AS x(k, t) \
               ON CONFLICT (ctx, key) DO UPDATE SET doc = excluded.doc), \
             sd AS (DELETE FROM search_docs WHERE ctx = $1 AND key = ANY($15::text[])), \
             c AS (INSERT INTO commits (ctx, revision, at, author, kind, keys) VALUES ($1, $16, $17, $18, $19, $20)), \
             ev AS (INSERT INTO events (ctx, revision, seq, event) SELECT $1, $16, * FROM UNNEST($21::bigint[], $22::text[])) \
             UPDATE contexts SET revision = $16, updated_at = $17, entry_count = $23 WHERE id = $1",
            vec![
                Box::new(ctx.to_owned()),
                Box::new(v.key),
                Box::new(v.revision),
                Box::new(v.change),
                Box::new(v.value),
                Box::new(v.meta),
                Box::new(v.version),
                Box::new(v.created_revision),
                Box::new(v.updated_at),
                Box::new(v.author),
                Box::new(v.vclock),
                Box::new(live_keys),
                Box::new(live_revisions),
                Box::new(live_expiry),
                Box::new(gone),
                Box::new(big(plan.revision)),
                Box::new(micros(plan.commit.at)),
                Box::new(plan.commit.author.clone()),
                Box::new(plan.commit.kind.clone()),
                Box::new(keys),
                Box::new(seqs),
                Box::new(events),
                Box::new(big(entry_count)),
                Box::new(texts),
            ],
        );
        Ok(())
    }

    async fn search(&mut self, ctx: &str, terms: &[String], limit: usize) -> Result<Vec<(String, f64)>> {
        let query = terms.join(" | ");
        let rows = self
            .query(
                "SELECT key, ts_rank_cd(doc, q)::float8 AS rank FROM search_docs, to_tsquery('simple', $2) q \
                 WHERE ctx = $1 AND doc @@ q ORDER BY rank DESC, key LIMIT $3",
                &[&ctx, &query, &(limit as i64)],
            )
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    async fn remove_history_before(&mut self, ctx: &str, point: u64) -> Result<u64> {
        let c = big(point);
        // Versions superseded by a newer version at or before the point.
        let superseded = self
            .execute(
                "DELETE FROM versions WHERE ctx = $1 AND revision < $2 AND EXISTS (SELECT 1 FROM versions w \
                 WHERE w.ctx = versions.ctx AND w.key = versions.key AND w.revision > versions.revision \
                 AND w.revision <= $2)",
                &[&ctx, &c],
            )
            .await?;
        // Deletions before the point that are the last word on their key.
        let tombstones = self
            .execute("DELETE FROM versions WHERE ctx = $1 AND revision < $2 AND value IS NULL", &[&ctx, &c])
            .await?;
        self.execute(
            "WITH cm AS (DELETE FROM commits WHERE ctx = $1 AND revision < $2), \
             ev AS (DELETE FROM events WHERE ctx = $1 AND revision < $2) \
             UPDATE contexts SET compacted_revision = $2 WHERE id = $1",
            &[&ctx, &c],
        )
        .await?;
        Ok(superseded + tombstones)
    }

    fn published(&mut self) -> &mut Vec<Committed> {
        &mut self.published
    }

    async fn object(&mut self, kind: &str, id: &str, lock: bool) -> Result<Option<Object>> {
        let sql = if lock {
            format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = $1 AND id = $2 FOR UPDATE")
        } else {
            format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = $1 AND id = $2")
        };
        self.query(&sql, &[&kind, &id]).await?.first().map(object_row).transpose()
    }

    async fn put_object(&mut self, o: &Object) -> Result<()> {
        self.defer(
            "INSERT INTO objects (kind, id, ctx, owner, state, due_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (kind, id) DO UPDATE SET ctx = excluded.ctx, owner = excluded.owner, \
             state = excluded.state, due_at = excluded.due_at, body = excluded.body",
            vec![
                Box::new(o.kind.clone()),
                Box::new(o.id.clone()),
                Box::new(o.ctx.clone()),
                Box::new(o.owner.clone()),
                Box::new(o.state.clone()),
                Box::new(o.due_at.map(micros)),
                Box::new(o.body.clone()),
            ],
        );
        Ok(())
    }

    async fn delete_object(&mut self, kind: &str, id: &str) -> Result<()> {
        self.defer(
            "DELETE FROM objects WHERE kind = $1 AND id = $2",
            vec![Box::new(kind.to_owned()), Box::new(id.to_owned())],
        );
        Ok(())
    }

    async fn objects(&mut self, kind: &str, filter: &ObjectFilter, after: &str, limit: usize) -> Result<Vec<Object>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = $1 AND ($2::text IS NULL OR ctx = $2) \
             AND ($3::text IS NULL OR owner = $3) AND ($4::text IS NULL OR state = $4) AND id > $5 \
             ORDER BY id LIMIT $6"
        );
        let params: [&(dyn ToSql + Sync); 6] =
            [&kind, &filter.ctx, &filter.owner, &filter.state, &after, &big(limit as u64)];
        self.query(&sql, &params).await?.iter().map(object_row).collect()
    }

    async fn due_objects(&mut self, kind: &str, now: Timestamp) -> Result<Vec<String>> {
        self.strings(
            "SELECT id FROM objects WHERE kind = $1 AND due_at IS NOT NULL AND due_at <= $2 ORDER BY id",
            &[&kind, &micros(now)],
        )
        .await
    }

    async fn delete_context_objects(&mut self, ctx: &str) -> Result<()> {
        self.defer("DELETE FROM objects WHERE ctx = $1", vec![Box::new(ctx.to_owned())]);
        Ok(())
    }

    async fn append_stream(&mut self, stream: &str, events: Vec<Event>) -> Result<Vec<Event>> {
        // Taking the head's row lock orders appends to the stream across
        // nodes until this transaction ends.
        let count = events.len() as i64;
        self.prefetched = None;
        let rows = self
            .query(
                "INSERT INTO stream_heads (stream, seq) VALUES ($1, $2) \
                 ON CONFLICT (stream) DO UPDATE SET seq = stream_heads.seq + excluded.seq RETURNING seq",
                &[&stream, &count],
            )
            .await?;
        let head: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(count);
        let mut seq = (head - count) as u64;
        let mut numbered = Vec::with_capacity(events.len());
        for mut event in events {
            seq += 1;
            event.seq = Some(seq);
            numbered.push(event);
        }
        let seqs: Vec<i64> = numbered.iter().map(|e| e.seq.unwrap_or_default() as i64).collect();
        let json = numbered.iter().map(serde_json::to_string).collect::<serde_json::Result<Vec<_>>>()?;
        self.defer(
            "INSERT INTO streams (stream, seq, event) SELECT $1, * FROM UNNEST($2::bigint[], $3::text[])",
            vec![Box::new(stream.to_owned()), Box::new(seqs), Box::new(json)],
        );
        Ok(numbered)
    }

    async fn stream(&mut self, stream: &str, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.event_rows(
            "SELECT event FROM streams WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&stream, &big(after), &big(limit as u64)],
        )
        .await
    }

    async fn append_audit(&mut self, records: &[AuditRecord]) -> Result<()> {
        let at: Vec<i64> = records.iter().map(|r| micros(r.at)).collect();
        let agent: Vec<String> = records.iter().map(|r| r.agent.clone()).collect();
        let action: Vec<String> = records.iter().map(|r| r.action.clone()).collect();
        let resource: Vec<String> = records.iter().map(|r| r.resource.clone()).collect();
        let ctx: Vec<String> = records.iter().map(|r| r.context.clone()).collect();
        let allowed: Vec<bool> = records.iter().map(|r| r.allowed).collect();
        let reason: Vec<String> = records.iter().map(|r| r.reason.clone()).collect();
        self.defer(
            "INSERT INTO audit (at, agent, action, resource, ctx, allowed, reason) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[])",
            vec![
                Box::new(at),
                Box::new(agent),
                Box::new(action),
                Box::new(resource),
                Box::new(ctx),
                Box::new(allowed),
                Box::new(reason),
            ],
        );
        Ok(())
    }

    async fn audit(&mut self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let since = q.since.map(micros);
        let rows = self
            .query(
                "SELECT seq, at, agent, action, resource, ctx, allowed, reason FROM audit WHERE seq > $1 \
                 AND ($2::text IS NULL OR agent = $2) AND ($3::text IS NULL OR ctx = $3) \
                 AND ($4::bool IS NULL OR allowed = $4) AND ($5::bigint IS NULL OR at >= $5) ORDER BY seq LIMIT $6",
                &[&big(q.after), &q.agent, &q.context, &q.allowed, &since, &big(q.limit as u64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.try_get::<_, i64>(0)? as u64,
                    at: from_micros(r.try_get(1)?),
                    agent: r.try_get(2)?,
                    action: r.try_get(3)?,
                    resource: r.try_get(4)?,
                    context: r.try_get(5)?,
                    allowed: r.try_get(6)?,
                    reason: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn trim_audit(&mut self, before: Timestamp) -> Result<u64> {
        self.execute("DELETE FROM audit WHERE at < $1", &[&micros(before)]).await
    }

    async fn stream_head(&mut self, stream: &str) -> Result<u64> {
        let rows = self.query("SELECT seq FROM stream_heads WHERE stream = $1", &[&stream]).await?;
        Ok(rows.first().map(|r| r.try_get::<_, i64>(0)).transpose()?.unwrap_or(0) as u64)
    }
}

fn object_row(row: &Row) -> Result<Object> {
    Ok(Object {
        kind: row.try_get(0)?,
        id: row.try_get(1)?,
        ctx: row.try_get(2)?,
        owner: row.try_get(3)?,
        state: row.try_get(4)?,
        due_at: row.try_get::<_, Option<i64>>(5)?.map(from_micros),
        body: row.try_get(6)?,
    })
}

/// The version rows of a plan, column by column, for `UNNEST`.
#[derive(Default)]
struct VersionColumns {
    key: Vec<String>,
    revision: Vec<i64>,
    change: Vec<&'static str>,
    value: Vec<Option<String>>,
    meta: Vec<Option<String>>,
    version: Vec<i64>,
    created_revision: Vec<i64>,
    updated_at: Vec<i64>,
    author: Vec<String>,
    vclock: Vec<String>,
}
