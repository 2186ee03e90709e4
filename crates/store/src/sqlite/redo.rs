//! How the commit log's records are applied to the database again.
//!
//! A record (see `super::change`) is the list of the writing calls of [`Tx`] that the batch's
//! successful jobs made, in order, with their arguments, one JSON object
//! per line. SQLite applies them the same way every time from the same
//! state: replaying record `n` on a database that holds records `1..n`
//! (`log_position.applied = n - 1`, written in the same transaction as the
//! rows) writes exactly the rows the batch wrote. Reads made by the jobs
//! (preconditions, the next revision, a stream's next number) are not
//! recorded: their outcome is in the calls' arguments, or read again from
//! the same state.

use rusqlite::Connection;

use super::change::Change;
use super::tx::{SqliteTx, apply_search, exec, run_now};
use crate::error::{Result, StoreError};
use crate::tx::Tx;

/// The last record the database holds.
pub(crate) fn applied(conn: &Connection) -> Result<u64> {
    let lsn: i64 = conn.query_row("SELECT applied FROM log_position", [], |r| r.get(0))?;
    Ok(lsn as u64)
}

/// Records, in the open transaction, that the database holds record `lsn`.
pub(crate) fn set_applied(conn: &Connection, lsn: u64) -> Result<()> {
    conn.prepare_cached("UPDATE log_position SET applied = ?1")?.execute([lsn as i64])?;
    Ok(())
}

/// Applies record `lsn` (`payload`) to the database, in a transaction of
/// its own that also moves `log_position` to it.
pub(crate) fn replay(conn: &mut Connection, lsn: u64, payload: &[u8]) -> Result<()> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let applied = apply_record(conn, lsn, payload);
    let ended = match &applied {
        Ok(()) => exec(conn, "COMMIT"),
        Err(_) => exec(conn, "ROLLBACK"),
    };
    applied.and(ended)
}

fn apply_record(conn: &mut Connection, lsn: u64, payload: &[u8]) -> Result<()> {
    let mut tx = SqliteTx::replaying(conn);
    for line in payload.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let change: Change<'_> = serde_json::from_slice(line)
            .map_err(|e| StoreError::Backend(format!("commit log record {lsn} does not decode: {e}")))?;
        apply(&mut tx, change)?;
    }
    let search = tx.search.take().unwrap_or_default();
    apply_search(conn, &search)?;
    set_applied(conn, lsn)
}

/// Makes the call `change` describes on `tx`.
fn apply(tx: &mut SqliteTx<'_>, change: Change<'_>) -> Result<()> {
    match change {
        Change::InsertContext { info } => {
            run_now(tx.insert_context(&info))?;
        }
        Change::UpdateSettings { id, settings, at } => run_now(tx.update_settings(&id, &settings, at))?,
        Change::DeleteContext { id } => run_now(tx.delete_context(&id))?,
        Change::WritePlan { ctx, plan, entry_count } => run_now(tx.write_plan(&ctx, &plan, entry_count))?,
        Change::RemoveHistoryBefore { ctx, point } => {
            run_now(tx.remove_history_before(&ctx, point))?;
        }
        Change::PutObject { object } => run_now(tx.put_object(&object))?,
        Change::DeleteObject { kind, id } => run_now(tx.delete_object(&kind, &id))?,
        Change::DeleteContextObjects { ctx } => run_now(tx.delete_context_objects(&ctx))?,
        Change::AppendStream { stream, events } => {
            run_now(tx.append_stream(&stream, events.into_owned()))?;
        }
        Change::AppendAudit { records } => run_now(tx.append_audit(&records))?,
        Change::TrimAudit { before } => {
            run_now(tx.trim_audit(before))?;
        }
    }
    Ok(())
}
