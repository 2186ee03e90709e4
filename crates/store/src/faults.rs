//! Failpoints inside the write path, for the robustness suite
//! (`scripts/robust`, docs/robustness.md).
//!
//! They exist only in a build with the `failpoints` feature; without it
//! [`failpoint`] is an empty inline function and costs nothing. With it, a
//! failpoint is configured by name through the `fail` crate, from the
//! `FAILPOINTS` environment variable at start-up
//! (`FAILPOINTS='sqlite::commit::before=5%1*return(crash)'`), with the
//! action `return(crash)` or `return(ioerr)`:
//!
//! - `crash` aborts the process on the spot, as a power cut or `kill -9`
//!   would stop it: no destructor runs, nothing is flushed;
//! - `ioerr` makes the step fail with an I/O error, as a failing disk
//!   would, and the write path handles it as it handles a real one.
//!
//! The failpoints, in the order a write meets them:
//!
//! | name | where |
//! |---|---|
//! | `sqlite::batch::mid` | between two jobs of a batch, inside its transaction |
//! | `log::append::before` | before the batch's record is written to the commit log |
//! | `log::append::mid` | half of the record written |
//! | `log::sync::before` | the record written, before its `fdatasync` |
//! | `log::sync::after` | the record durable (the durability point), before the database commit |
//! | `sqlite::commit::before` | before the database COMMIT (an I/O error takes the record back) |
//! | `sqlite::commit::after` | committed, before the batch's revisions are published |
//! | `sqlite::answer::before` | published, before the jobs are answered |
//! | `sqlite::checkpoint` | before a WAL checkpoint copies pages into the database |
//! | `sqlite::checkpoint::after` | after a checkpoint, before it moves the point the log is trimmed behind |
//! | `log::trim` | before each closed commit log segment is removed |
//! | `log::replay::mid` | between two records replayed on start |
//! | `postgres::batch::mid` | between two jobs of a batch, inside its transaction |
//! | `postgres::commit::before` | before the batch's COMMIT |
//! | `postgres::commit::after` | after the COMMIT, before publishing and answering |
//!
//! An I/O error after the durability point would tell a client its durable
//! write failed, which no real disk error can cause: there, `ioerr` crashes
//! too.

use crate::error::Result;

/// Evaluates the failpoint `name`, before the durability point: `Ok`
/// unless it is configured and fires (`ioerr`: an I/O error; `crash`).
#[cfg(feature = "failpoints")]
pub(crate) fn failpoint(name: &'static str) -> Result<()> {
    failpoint_with(name, || {})
}

/// Like [`failpoint`], but runs `on_fire` first when it fires (to leave a
/// write half done, as a crash in the middle of it would).
#[cfg(feature = "failpoints")]
pub(crate) fn failpoint_with(name: &'static str, on_fire: impl FnOnce()) -> Result<()> {
    match fail::eval(name, |arg| arg.unwrap_or_default()) {
        None => Ok(()),
        Some(action) => {
            on_fire();
            if action == "ioerr" {
                // The line the robustness runner counts faults by.
                tracing::warn!(failpoint = name, action = "ioerr", "failpoint fired");
                Err(crate::StoreError::Backend(format!("injected I/O error at failpoint {name}")))
            } else {
                crash(name)
            }
        }
    }
}

/// Evaluates the failpoint `name`, at or after the durability point: any
/// action that fires crashes.
#[cfg(feature = "failpoints")]
pub(crate) fn crashpoint(name: &'static str) {
    if fail::eval(name, |_| ()).is_some() {
        crash(name);
    }
}

#[cfg(feature = "failpoints")]
fn crash(name: &'static str) -> ! {
    tracing::error!(failpoint = name, action = "crash", "failpoint fired");
    eprintln!("failpoint fired: {name} crash");
    std::process::abort();
}

/// Without the `failpoints` feature: always `Ok`.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn failpoint(_name: &'static str) -> Result<()> {
    Ok(())
}

/// Without the `failpoints` feature: always `Ok`, `on_fire` never runs.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn failpoint_with(_name: &'static str, _on_fire: impl FnOnce()) -> Result<()> {
    Ok(())
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn crashpoint(_name: &'static str) {}

/// Configures the failpoints the `FAILPOINTS` environment variable names
/// (`name=actions` pairs separated by `;`, in the `fail` crate's syntax),
/// in a build with the `failpoints` feature. Without the feature a
/// non-empty `FAILPOINTS` is refused, so that a run meant to inject faults
/// cannot silently inject none.
pub fn setup_from_env() -> std::result::Result<(), String> {
    let wanted = std::env::var("FAILPOINTS").unwrap_or_default();
    if wanted.trim().is_empty() {
        return Ok(());
    }
    #[cfg(feature = "failpoints")]
    {
        for pair in wanted.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, actions) =
                pair.split_once('=').ok_or_else(|| format!("failpoint {pair:?}: expected name=actions"))?;
            fail::cfg(name.trim(), actions.trim()).map_err(|e| format!("failpoint {name:?}: {e}"))?;
        }
        tracing::warn!(failpoints = %wanted, "failpoints configured");
        Ok(())
    }
    #[cfg(not(feature = "failpoints"))]
    {
        Err("FAILPOINTS is set, but this build has no failpoints: build with `--features failpoints`".into())
    }
}
