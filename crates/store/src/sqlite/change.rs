//! What a batch changed, as the commit log records it: the writing calls
//! of [`Tx`] its successful jobs made, in order, one JSON object per line
//! (`super::redo` applies them again).

use std::borrow::Cow;

use ctxmesh_core::Event;
use ctxmesh_core::Timestamp;
use ctxmesh_core::access::AuditRecord;
use ctxmesh_core::context::{ContextInfo, ContextSettings};
use ctxmesh_core::txn::Plan;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tx::Object;
#[cfg(doc)]
use crate::tx::Tx;

/// One writing call of a [`Tx`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Change<'a> {
    InsertContext { info: Cow<'a, ContextInfo> },
    UpdateSettings { id: Cow<'a, str>, settings: Cow<'a, ContextSettings>, at: Timestamp },
    DeleteContext { id: Cow<'a, str> },
    WritePlan { ctx: Cow<'a, str>, plan: Cow<'a, Plan>, entry_count: u64 },
    RemoveHistoryBefore { ctx: Cow<'a, str>, point: u64 },
    PutObject { object: Cow<'a, Object> },
    DeleteObject { kind: Cow<'a, str>, id: Cow<'a, str> },
    DeleteContextObjects { ctx: Cow<'a, str> },
    AppendStream { stream: Cow<'a, str>, events: Cow<'a, [Event]> },
    AppendAudit { records: Cow<'a, [AuditRecord]> },
    TrimAudit { before: Timestamp },
}

/// Adds `change` to the record `buf`.
pub(crate) fn note(buf: &mut Vec<u8>, change: &Change<'_>) -> Result<()> {
    serde_json::to_writer(&mut *buf, change)?;
    buf.push(b'\n');
    Ok(())
}
