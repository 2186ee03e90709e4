//! The single writer thread: every write to the database goes through it.
//!
//! It takes jobs from a queue, runs as many as are waiting in one SQLite
//! transaction (each inside a savepoint, so a failing job changes nothing),
//! commits once (one fsync), and only then answers every job of the batch.
//! This is group commit: concurrent writers share an fsync, and no caller
//! hears "done" before its write is durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DurationRound, Utc};
use ctxmesh_core::context::{ContextInfo, ContextPatch, ForkOrigin, NewContext};
use ctxmesh_core::error::Error;
use ctxmesh_core::event::types;
use ctxmesh_core::history::commit_kinds;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::schema::CompiledSchemas;
use ctxmesh_core::txn::{ChangeKind, Plan, PlanBuilder, PlanInput, Snapshot, TxnRequest, TxnResponse, plan_txn};
use ctxmesh_core::{Limits, Timestamp};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::rows::{self, ContextRow, load_context, micros};
use crate::notify::{Committed, Hub, SharedEvent};
use crate::{Compaction, NewEvent, Result, StoreError};

/// The author of system-made changes (expiry).
pub(crate) const SYSTEM_AGENT: &str = "system";

/// The current time at the precision the store keeps (microseconds), so
/// that what a write returns equals what a later read returns.
fn now() -> Timestamp {
    let t = Utc::now();
    t.duration_trunc(chrono::Duration::microseconds(1)).unwrap_or(t)
}

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

/// A write the writer thread performs.
pub(crate) enum WriteOp {
    CreateContext { new: NewContext, author: String },
    UpdateContext { id: ContextId, patch: ContextPatch },
    DeleteContext { id: ContextId },
    Txn { id: ContextId, txn: TxnRequest, author: String },
    Rollback { id: ContextId, to: u64, author: String },
    Fork { id: ContextId, at: u64, new_id: ContextId, author: String },
    AppendEvent { id: ContextId, event: NewEvent, author: String },
    Expire { now: Timestamp },
    Compact { id: Option<ContextId>, now: Timestamp },
}

/// What a write returns.
#[allow(clippy::large_enum_variant)] // one value per job, moved once
pub(crate) enum WriteOutput {
    Context(ContextInfo),
    Txn(TxnResponse),
    Revision(u64),
    Count(u64),
    Compactions(Vec<Compaction>),
    Event(ctxmesh_core::Event),
    Unit,
}

pub(crate) struct Job {
    pub(crate) op: WriteOp,
    pub(crate) reply: Reply,
}

/// Where a job's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<WriteOutput>>;

pub(crate) type JobSender = mpsc::Sender<Job>;

/// Counts of the writer's work, to observe group commit.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Database transactions committed (one fsync each).
    pub(crate) commits: AtomicU64,
    /// Jobs answered.
    pub(crate) jobs: AtomicU64,
}

/// Starts the writer thread on `conn`.
pub(crate) fn spawn(conn: Connection, limits: Limits, stats: Arc<WriterStats>, hub: Arc<Hub>) -> Result<JobSender> {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    let writer = Writer { conn, limits, schemas: HashMap::new(), stats, hub, published: Vec::new() };
    std::thread::Builder::new()
        .name("ctxmesh-sqlite-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
    Ok(tx)
}

struct Writer {
    conn: Connection,
    limits: Limits,
    /// Compiled schemas by context id, tagged with the settings version.
    schemas: HashMap<String, (i64, Arc<CompiledSchemas>)>,
    stats: Arc<WriterStats>,
    hub: Arc<Hub>,
    /// Revisions committed by the current batch, published after COMMIT.
    published: Vec<Committed>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        tracing::debug!("sqlite writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        metrics::histogram!("ctxmesh_commit_batch_size").record(batch.len() as f64);
        let (ops, replies): (Vec<WriteOp>, Vec<Reply>) = batch.drain(..).map(|j| (j.op, j.reply)).unzip();
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            fail_all(replies, &e.into());
            return;
        }
        self.published.clear();
        let results: Vec<Result<WriteOutput>> = ops.into_iter().map(|op| self.run_in_savepoint(op)).collect();
        let started = Instant::now();
        let committed = self.conn.execute_batch("COMMIT");
        metrics::histogram!("ctxmesh_fsync_seconds").record(started.elapsed().as_secs_f64());
        match committed {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.jobs.fetch_add(replies.len() as u64, Ordering::Relaxed);
                // Publish before answering: a client that hears "done" and
                // then subscribes finds the revision in the log either way.
                for committed in self.published.drain(..) {
                    self.hub.publish(committed);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch was rolled back");
                let _ = self.conn.execute_batch("ROLLBACK");
                // The schema cache may describe settings that were not committed.
                self.schemas.clear();
                self.published.clear();
                fail_all(replies, &e.into());
            }
        }
    }

    fn run_in_savepoint(&mut self, op: WriteOp) -> Result<WriteOutput> {
        self.conn.execute_batch("SAVEPOINT job")?;
        let published_before = self.published.len();
        let result = self.execute(op);
        if result.is_err() {
            self.conn.execute_batch("ROLLBACK TO job")?;
            self.published.truncate(published_before);
        }
        self.conn.execute_batch("RELEASE job")?;
        result
    }

    fn execute(&mut self, op: WriteOp) -> Result<WriteOutput> {
        match op {
            WriteOp::CreateContext { new, author } => self.create_context(new, &author).map(WriteOutput::Context),
            WriteOp::UpdateContext { id, patch } => self.update_context(&id, patch).map(WriteOutput::Context),
            WriteOp::DeleteContext { id } => self.delete_context(&id).map(|()| WriteOutput::Unit),
            WriteOp::Txn { id, txn, author } => self.txn(&id, &txn, &author).map(WriteOutput::Txn),
            WriteOp::Rollback { id, to, author } => self.rollback(&id, to, &author).map(WriteOutput::Revision),
            WriteOp::Fork { id, at, new_id, author } => self.fork(&id, at, &new_id, &author).map(WriteOutput::Context),
            WriteOp::Expire { now } => self.expire_all(now).map(WriteOutput::Count),
            WriteOp::Compact { id, now } => self.compact(id.as_ref(), now).map(WriteOutput::Compactions),
            WriteOp::AppendEvent { id, event, author } => {
                self.append_event(&id, event, &author).map(WriteOutput::Event)
            }
        }
    }

    /// The context row, locked for this commit (the writer is the only writer).
    fn load(&self, id: &str) -> Result<ContextRow> {
        load_context(&self.conn, id)
    }

    fn schemas_for(&mut self, row: &ContextRow) -> Result<Arc<CompiledSchemas>> {
        if let Some((version, compiled)) = self.schemas.get(&row.info.id)
            && *version == row.settings_version
        {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(CompiledSchemas::compile(&row.info.settings.schemas)?);
        self.schemas.insert(row.info.id.clone(), (row.settings_version, compiled.clone()));
        Ok(compiled)
    }

    fn create_context(&mut self, new: NewContext, author: &str) -> Result<ContextInfo> {
        let (id, settings) = new.into_parts();
        settings.validate()?;
        let now = now();
        let info = self.insert_context(&id, settings, author, now, None)?;
        self.finish_create(info, author, now, commit_kinds::CREATE, Vec::new())
    }

    fn insert_context(
        &mut self,
        id: &ContextId,
        settings: ctxmesh_core::ContextSettings,
        author: &str,
        now: Timestamp,
        forked_from: Option<ForkOrigin>,
    ) -> Result<ContextInfo> {
        let exists: bool =
            self.conn.query_row("SELECT EXISTS(SELECT 1 FROM contexts WHERE id = ?1)", [id.as_str()], |r| r.get(0))?;
        if exists {
            return Err(Error::AlreadyExists { what: format!("context {:?}", id.as_str()) }.into());
        }
        self.schemas.remove(id.as_str());
        self.conn.execute(
            "INSERT INTO contexts (id, revision, created_at, updated_at, created_by, settings, settings_version, \
             entry_count, compacted_revision, parent, forked_from) VALUES (?1, 0, ?2, ?2, ?3, ?4, 1, 0, 0, NULL, ?5)",
            params![
                id.as_str(),
                micros(now),
                author,
                serde_json::to_string(&settings)?,
                forked_from.as_ref().map(serde_json::to_string).transpose()?
            ],
        )?;
        Ok(ContextInfo {
            id: id.as_str().to_owned(),
            revision: 0,
            created_at: now,
            updated_at: now,
            created_by: author.to_owned(),
            settings,
            parent: None,
            forked_from,
            entry_count: 0,
            compacted_revision: 0,
        })
    }

    /// Commits revision 1 of a new context: `context.created` and `entries`.
    fn finish_create(
        &mut self,
        mut info: ContextInfo,
        author: &str,
        now: Timestamp,
        kind: &str,
        entries: Vec<ctxmesh_core::Entry>,
    ) -> Result<ContextInfo> {
        let mut plan = PlanBuilder::new(&info, author, now, kind);
        let data = serde_json::json!({ "forked_from": info.forked_from });
        plan.event(types::CONTEXT_CREATED, None, None, info.forked_from.is_some().then_some(data));
        for e in entries {
            plan.put(&e.key, None, e.value, e.meta);
        }
        apply_plan(&self.conn, &mut info, plan.finish(), &mut self.published)?;
        Ok(info)
    }

    fn update_context(&mut self, id: &ContextId, patch: ContextPatch) -> Result<ContextInfo> {
        let mut row = self.load(id.as_str())?;
        patch.apply(&mut row.info.settings);
        row.info.settings.validate()?;
        let now = now().max(row.info.updated_at);
        self.conn.execute(
            "UPDATE contexts SET settings = ?2, settings_version = settings_version + 1, updated_at = ?3 WHERE id = ?1",
            params![id.as_str(), serde_json::to_string(&row.info.settings)?, micros(now)],
        )?;
        self.schemas.remove(id.as_str());
        row.info.updated_at = now;
        Ok(row.info)
    }

    fn delete_context(&mut self, id: &ContextId) -> Result<()> {
        let ctx = self.load(id.as_str())?.info;
        // The log goes with the context; watchers get one last event.
        let mut plan = PlanBuilder::new(&ctx, SYSTEM_AGENT, now().max(ctx.updated_at), types::CONTEXT_DELETED);
        let event = plan.event(types::CONTEXT_DELETED, None, None, None);
        self.published.push(Committed {
            context: ctx.id.clone(),
            revision: event.revision,
            events: vec![SharedEvent::new(event)],
            deleted: true,
        });
        for table in ["versions", "entries", "commits", "events"] {
            self.conn.execute(&format!("DELETE FROM {table} WHERE ctx = ?1"), [id.as_str()])?;
        }
        self.conn.execute("DELETE FROM contexts WHERE id = ?1", [id.as_str()])?;
        self.schemas.remove(id.as_str());
        Ok(())
    }

    fn txn(&mut self, id: &ContextId, txn: &TxnRequest, author: &str) -> Result<TxnResponse> {
        txn.validate(&self.limits)?;
        let row = self.load(id.as_str())?;
        let schemas = self.schemas_for(&row)?;
        let mut ctx = row.info;
        let now = now().max(ctx.updated_at);
        expire_in(&self.conn, &mut ctx, now, &mut self.published)?;

        let read_set = txn.read_set();
        let mut snapshot = Snapshot::default();
        for key in &read_set.keys {
            if let Some(e) = rows::entry_latest(&self.conn, &ctx.id, key, now)? {
                snapshot.entries.insert(key.clone(), e);
            }
        }
        for prefix in &read_set.prefixes {
            for e in rows::list_latest(&self.conn, &ctx.id, prefix, "", usize::MAX >> 1, Some(now))? {
                snapshot.entries.insert(e.key.clone(), e);
            }
        }
        let input = PlanInput { context: &ctx, schemas: &schemas, limits: &self.limits, author, now };
        let (plan, response) = plan_txn(&input, &snapshot, txn)?;
        if !plan.is_empty() {
            apply_plan(&self.conn, &mut ctx, plan, &mut self.published)?;
        }
        Ok(response)
    }

    fn rollback(&mut self, id: &ContextId, to: u64, author: &str) -> Result<u64> {
        let mut ctx = self.load(id.as_str())?.info;
        ctx.check_readable(to)?;
        let now = now().max(ctx.updated_at);
        expire_in(&self.conn, &mut ctx, now, &mut self.published)?;
        let all = usize::MAX >> 1;
        let target: BTreeMap<String, ctxmesh_core::Entry> =
            rows::list_at(&self.conn, &ctx.id, "", "", all, to)?.into_iter().map(|e| (e.key.clone(), e)).collect();
        let current: BTreeMap<String, ctxmesh_core::Entry> = rows::list_latest(&self.conn, &ctx.id, "", "", all, None)?
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();

        let mut plan = PlanBuilder::new(&ctx, author, now, commit_kinds::ROLLBACK);
        let mut restored = 0u64;
        let mut removed = 0u64;
        for key in current.keys().filter(|k| !target.contains_key(*k)) {
            plan.remove(key, ChangeKind::Deleted);
            removed += 1;
        }
        for (key, old) in &target {
            let now_entry = current.get(key);
            if now_entry.is_some_and(|c| c.same_content(old)) {
                continue;
            }
            plan.put(key, now_entry, old.value.clone(), old.meta.clone());
            restored += 1;
        }
        let data = serde_json::json!({ "to": to, "restored": restored, "removed": removed });
        plan.event(types::CONTEXT_ROLLED_BACK, None, None, Some(data));
        let plan = plan.finish();
        let revision = plan.revision;
        apply_plan(&self.conn, &mut ctx, plan, &mut self.published)?;
        Ok(revision)
    }

    fn fork(&mut self, id: &ContextId, at: u64, new_id: &ContextId, author: &str) -> Result<ContextInfo> {
        let source = self.load(id.as_str())?.info;
        source.check_readable(at)?;
        let entries = rows::list_at(&self.conn, &source.id, "", "", usize::MAX >> 1, at)?;
        let now = now();
        let origin = ForkOrigin { context: source.id.clone(), revision: at };
        let info = self.insert_context(new_id, source.settings.clone(), author, now, Some(origin))?;
        self.finish_create(info, author, now, commit_kinds::FORK, entries)
    }

    fn append_event(&mut self, id: &ContextId, event: NewEvent, author: &str) -> Result<ctxmesh_core::Event> {
        let mut ctx = self.load(id.as_str())?.info;
        let now = now().max(ctx.updated_at);
        let mut plan = PlanBuilder::new(&ctx, author, now, &event.kind);
        let logged = plan.event(&event.kind, event.key.as_deref(), event.priority, event.data);
        apply_plan(&self.conn, &mut ctx, plan.finish(), &mut self.published)?;
        Ok(logged)
    }

    fn expire_all(&mut self, now: Timestamp) -> Result<u64> {
        let contexts: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT DISTINCT ctx FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?1")?;
            stmt.query_map([micros(now)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let mut removed = 0;
        for id in contexts {
            let mut ctx = self.load(&id)?.info;
            let at = now.max(ctx.updated_at);
            removed += expire_in(&self.conn, &mut ctx, at, &mut self.published)?;
        }
        Ok(removed)
    }

    fn compact(&mut self, id: Option<&ContextId>, now: Timestamp) -> Result<Vec<Compaction>> {
        let ids: Vec<String> = match id {
            Some(id) => vec![self.load(id.as_str())?.info.id],
            None => {
                let mut stmt = self.conn.prepare_cached("SELECT id, settings FROM contexts ORDER BY id")?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                let mut ids = Vec::new();
                for row in rows {
                    let (id, settings) = row?;
                    let settings: ctxmesh_core::ContextSettings = serde_json::from_str(&settings)?;
                    if !settings.retention.is_unbounded() {
                        ids.push(id);
                    }
                }
                ids
            }
        };
        let mut done = Vec::new();
        for id in ids {
            let ctx = self.load(&id)?.info;
            if let Some(c) = compact_context(&self.conn, &ctx, now)? {
                done.push(c);
            }
        }
        Ok(done)
    }
}

fn fail_all(replies: Vec<Reply>, e: &StoreError) {
    for reply in replies {
        let _ = reply.send(Err(StoreError::Unavailable(format!("commit failed: {e}"))));
    }
}

/// Removes the entries of `ctx` that expired at `now`, as one revision.
fn expire_in(conn: &Connection, ctx: &mut ContextInfo, now: Timestamp, published: &mut Vec<Committed>) -> Result<u64> {
    let keys: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM entries WHERE ctx = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2 ORDER BY key",
        )?;
        stmt.query_map(params![ctx.id, micros(now)], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    if keys.is_empty() {
        return Ok(0);
    }
    let mut plan = PlanBuilder::new(ctx, SYSTEM_AGENT, now, commit_kinds::EXPIRE);
    for key in &keys {
        plan.remove(key, ChangeKind::Expired);
    }
    apply_plan(conn, ctx, plan.finish(), published)?;
    Ok(keys.len() as u64)
}

/// Writes every row of `plan` and advances `ctx` to the plan's revision;
/// the plan's events move on to `published`.
fn apply_plan(conn: &Connection, ctx: &mut ContextInfo, plan: Plan, published: &mut Vec<Committed>) -> Result<()> {
    let author = &plan.commit.author;
    let at = micros(plan.commit.at);
    let mut insert_version = conn.prepare_cached(
        "INSERT INTO versions (ctx, key, revision, change, value, meta, version, created_revision, updated_at, author, vclock) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut upsert_entry = conn.prepare_cached(
        "INSERT INTO entries (ctx, key, revision, expires_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (ctx, key) DO UPDATE SET revision = excluded.revision, expires_at = excluded.expires_at",
    )?;
    let mut delete_entry = conn.prepare_cached("DELETE FROM entries WHERE ctx = ?1 AND key = ?2")?;
    for change in &plan.changes {
        match &change.after {
            Some(e) => {
                insert_version.execute(params![
                    ctx.id,
                    e.key,
                    e.revision as i64,
                    change.kind.as_str(),
                    serde_json::to_string(&e.value)?,
                    serde_json::to_string(&e.meta)?,
                    e.version as i64,
                    e.created_revision as i64,
                    micros(e.updated_at),
                    e.author,
                    serde_json::to_string(&e.vclock)?,
                ])?;
                upsert_entry.execute(params![ctx.id, e.key, e.revision as i64, e.meta.expires_at.map(micros)])?;
            }
            None => {
                insert_version.execute(params![
                    ctx.id,
                    change.key,
                    plan.revision as i64,
                    change.kind.as_str(),
                    None::<String>,
                    None::<String>,
                    0i64,
                    0i64,
                    at,
                    author,
                    "{}",
                ])?;
                delete_entry.execute(params![ctx.id, change.key])?;
            }
        }
    }
    conn.prepare_cached("INSERT INTO commits (ctx, revision, at, author, kind, keys) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![
            ctx.id,
            plan.revision as i64,
            at,
            author,
            plan.commit.kind,
            serde_json::to_string(&plan.commit.keys)?
        ])?;
    let mut insert_event =
        conn.prepare_cached("INSERT INTO events (ctx, revision, seq, event) VALUES (?1, ?2, ?3, ?4)")?;
    for (seq, event) in plan.events.iter().enumerate() {
        insert_event.execute(params![ctx.id, plan.revision as i64, seq as i64, serde_json::to_string(event)?])?;
    }
    let entry_count = ctx.entry_count as i64 + plan.entry_count_delta;
    conn.prepare_cached("UPDATE contexts SET revision = ?2, updated_at = ?3, entry_count = ?4 WHERE id = ?1")?
        .execute(params![ctx.id, plan.revision as i64, at, entry_count])?;
    ctx.revision = plan.revision;
    ctx.updated_at = plan.commit.at;
    ctx.entry_count = entry_count as u64;
    published.push(Committed {
        context: ctx.id.clone(),
        revision: plan.revision,
        events: plan.events.into_iter().map(SharedEvent::new).collect(),
        deleted: false,
    });
    Ok(())
}

/// Applies the retention policy of `ctx`: history before the compaction
/// point is removed, except what is needed to read the state at that point.
fn compact_context(conn: &Connection, ctx: &ContextInfo, now: Timestamp) -> Result<Option<Compaction>> {
    let retention = &ctx.settings.retention;
    let mut point = 0u64;
    if let Some(n) = retention.max_revisions {
        point = point.max((ctx.revision + 1).saturating_sub(n));
    }
    if let Some(ms) = retention.max_age_ms {
        let cutoff = now - chrono::Duration::milliseconds(ms.min(i64::MAX as u64) as i64);
        let first_young: Option<i64> = conn
            .prepare_cached("SELECT MIN(revision) FROM commits WHERE ctx = ?1 AND at >= ?2")?
            .query_row(params![ctx.id, micros(cutoff)], |r| r.get(0))?;
        point = point.max(first_young.map_or(ctx.revision, |r| r as u64));
    }
    let point = point.min(ctx.revision);
    if point <= ctx.compacted_revision.max(1) {
        return Ok(None);
    }
    let c = point as i64;
    // Versions superseded by a newer version at or before the point.
    let superseded = conn.execute(
        "DELETE FROM versions WHERE ctx = ?1 AND revision < ?2 AND EXISTS (SELECT 1 FROM versions w \
         WHERE w.ctx = versions.ctx AND w.key = versions.key AND w.revision > versions.revision AND w.revision <= ?2)",
        params![ctx.id, c],
    )?;
    // Deletions before the point that are the last word on their key.
    let tombstones =
        conn.execute("DELETE FROM versions WHERE ctx = ?1 AND revision < ?2 AND value IS NULL", params![ctx.id, c])?;
    conn.execute("DELETE FROM commits WHERE ctx = ?1 AND revision < ?2", params![ctx.id, c])?;
    conn.execute("DELETE FROM events WHERE ctx = ?1 AND revision < ?2", params![ctx.id, c])?;
    conn.execute("UPDATE contexts SET compacted_revision = ?2 WHERE id = ?1", params![ctx.id, c])?;
    Ok(Some(Compaction {
        context: ctx.id.clone(),
        compacted_revision: point,
        versions_removed: (superseded + tombstones) as u64,
    }))
}
