//! Snapshots of the embedded store's database for backups: a consistent
//! copy made with `VACUUM INTO` in one read transaction beside the writer,
//! named beside the database, and the copies a stopped process left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// The part of a snapshot file's name after the database's name.
const SNAPSHOT_INFIX: &str = ".snapshot-";

/// A new name beside the database `db` for a snapshot file
/// (`ctxmesh.db.snapshot-<pid>-<n>.tmp`).
pub(crate) fn snapshot_path(db: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = db.as_os_str().to_owned();
    name.push(format!("{SNAPSHOT_INFIX}{}-{n}.tmp", std::process::id()));
    PathBuf::from(name)
}

/// Removes the snapshot files a process that stopped in the middle of a
/// backup left beside the database `db` (called with the database locked).
pub(crate) fn remove_stale_snapshots(db: &Path) {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name().and_then(|n| n.to_str())) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{name}{SNAPSHOT_INFIX}");
    let Ok(items) = std::fs::read_dir(dir) else { return };
    for item in items.flatten() {
        let file = item.file_name();
        let Some(file) = file.to_str() else { continue };
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            match std::fs::remove_file(item.path()) {
                Ok(()) => tracing::info!(file, "removed a database snapshot left by an earlier process"),
                Err(e) => tracing::warn!(file, error = %e, "could not remove an old database snapshot"),
            }
        }
    }
}

/// Copies the database `conn` reads into a new file at `dest`: one read
/// transaction, so the copy holds every transaction committed before it
/// began and nothing after. Returns the copy's size.
pub(crate) fn vacuum_into(conn: &Connection, dest: &Path) -> Result<u64> {
    let target =
        dest.to_str().ok_or_else(|| StoreError::Backend(format!("the path {} is not UTF-8", dest.display())))?;
    let made = conn.execute("VACUUM INTO ?1", [target]);
    if let Err(e) = made {
        let _ = std::fs::remove_file(dest);
        return Err(e.into());
    }
    let size =
        std::fs::metadata(dest).map_err(|e| StoreError::Backend(format!("cannot read {}: {e}", dest.display())))?.len();
    Ok(size)
}
