//! What every operation works with: its [`Env`] (limits, compiled
//! schemas, the clock), and the one way a planned revision is written
//! ([`apply_plan`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::schema::CompiledSchemas;
use ctxmesh_core::txn::Plan;
use ctxmesh_core::{Limits, Timestamp};
use serde_json::Value;

use crate::clock::Clock;
use crate::error::Result;
use crate::notify::{Committed, SharedEvent};
use crate::objects::conflict_object;
use crate::tx::Tx;

/// The author of system-made changes (expiry, deletion).
pub(crate) const SYSTEM_AGENT: &str = "system";

/// What the write operations need besides the transaction.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) limits: &'a Limits,
    pub(crate) schemas: &'a SchemaCache,
    pub(crate) clock: &'a dyn Clock,
}

impl Env<'_> {
    /// The current time, from the store's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Writes `plan` and advances `ctx` to its revision; the plan's events are
/// queued for publication.
pub(crate) async fn apply_plan(tx: &mut impl Tx, ctx: &mut ContextInfo, plan: Plan) -> Result<()> {
    let entry_count = (ctx.entry_count as i64 + plan.entry_count_delta).max(0) as u64;
    tx.write_plan(&ctx.id, &plan, entry_count).await?;
    for conflict in &plan.conflicts {
        tx.put_object(&conflict_object(conflict)?).await?;
    }
    ctx.revision = plan.revision;
    ctx.updated_at = plan.commit.at;
    ctx.entry_count = entry_count;
    tx.published().push(Committed {
        context: ctx.id.clone(),
        revision: plan.revision,
        events: plan.events.into_iter().map(SharedEvent::new).collect(),
        deleted: false,
    });
    Ok(())
}

/// A fresh id: time-ordered, unique across nodes.
pub(crate) fn new_id(prefix: &str, at: Timestamp) -> String {
    let micros = at.timestamp_micros();
    let salt: u64 = rand::random();
    format!("{prefix}-{micros:x}-{salt:016x}")
}

/// Compiled schemas by context, reused while a context's schemas stay the
/// same (compiling a JSON Schema costs far more than comparing one).
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    compiled: Mutex<HashMap<String, Compiled>>,
}

/// A context's schemas as stored, and compiled.
type Compiled = (BTreeMap<String, Value>, Arc<CompiledSchemas>);

impl SchemaCache {
    /// The compiled schemas of `ctx`.
    pub(crate) fn get(&self, ctx: &ContextInfo) -> Result<Arc<CompiledSchemas>> {
        let schemas = &ctx.settings.schemas;
        if let Some((source, compiled)) = self.lock().get(&ctx.id)
            && source == schemas
        {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(CompiledSchemas::compile(schemas)?);
        self.lock().insert(ctx.id.clone(), (schemas.clone(), compiled.clone()));
        Ok(compiled)
    }

    /// Forgets a context (deleted).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Compiled>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}
