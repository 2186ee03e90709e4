//! The prepared entries of a context revision, read once per revision
//! and brought forward from an earlier one by a diff.

use std::collections::HashMap;
use std::sync::Arc;

use ctxmesh_core::ids::ContextId;
use ctxmesh_core::mesh::Prepared;
use ctxmesh_store::{ListQuery, ReadAt};

use super::{Mesh, lock};
use crate::AppState;
use crate::error::ApiResult;

/// Prepared entries of one context revision.
pub(super) type Snapshot = Arc<Vec<Arc<Prepared>>>;

/// Most revisions a snapshot is brought forward by a diff (beyond, it is
/// read whole).
const DIFF_FORWARD: u64 = 256;

/// `base` with `changes` applied (the entries of the later revision), in
/// key order; unchanged entries are shared.
fn forward(base: &[Arc<Prepared>], changes: Vec<ctxmesh_core::DiffChange>) -> Vec<Arc<Prepared>> {
    let mut changed: HashMap<String, Option<ctxmesh_core::Entry>> =
        changes.into_iter().map(|c| (c.key, c.after)).collect();
    let mut out: Vec<Arc<Prepared>> = Vec::with_capacity(base.len() + changed.len());
    for p in base {
        match changed.remove(&p.entry.key) {
            None => out.push(p.clone()),
            Some(Some(after)) => out.push(Arc::new(Prepared::new(after))),
            Some(None) => {}
        }
    }
    let added: Vec<Arc<Prepared>> = changed.into_values().flatten().map(|e| Arc::new(Prepared::new(e))).collect();
    if !added.is_empty() {
        out.extend(added);
        out.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
    }
    out
}

impl Mesh {
    /// The prepared entries of `ctx` at `revision`, in key order: read
    /// once per revision; from a snapshot of an earlier revision of the
    /// context, only what changed since is read and prepared.
    pub(crate) async fn snapshot(&self, state: &AppState, ctx: &ContextId, revision: u64) -> ApiResult<Snapshot> {
        let key = (ctx.as_str().to_owned(), revision);
        let base = {
            let snapshots = lock(&self.snapshots);
            if let Some(s) = snapshots.get(&key) {
                return Ok(s);
            }
            snapshots
                .iter()
                .filter(|((c, r), _)| c == ctx.as_str() && *r < revision && revision - *r <= DIFF_FORWARD)
                .max_by_key(|((_, r), _)| *r)
                .map(|((_, r), s)| (*r, s.clone()))
        };
        let prepared = match base {
            Some((from, base)) => match state.store().diff(ctx, from, revision).await {
                Ok(changes) => Some(forward(&base, changes)),
                // Compacted since: read it whole.
                Err(_) => None,
            },
            None => None,
        };
        let prepared = match prepared {
            Some(p) => p,
            None => {
                let mut prepared = Vec::new();
                let mut after = None;
                loop {
                    let query = ListQuery { prefix: String::new(), after_key: after.take(), limit: 1000 };
                    let page = state.store().list_entries(ctx, ReadAt::Revision(revision), &query).await?;
                    after = page.entries.last().map(|e| e.key.clone());
                    prepared.extend(page.entries.into_iter().map(|e| Arc::new(Prepared::new(e))));
                    if !page.more {
                        break;
                    }
                }
                prepared
            }
        };
        let prepared = Arc::new(prepared);
        lock(&self.snapshots).insert(key, prepared.clone());
        Ok(prepared)
    }
}
