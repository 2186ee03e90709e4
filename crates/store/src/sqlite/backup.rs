//! Backups of the embedded store: a consistent copy of the database
//! (`VACUUM INTO`, one read transaction, while the writer goes on), the
//! consistency check of a database file, and putting a copy in place in a
//! data directory (see docs/backup.md).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::snapshot::vacuum_into;
use super::{SqliteConfig, lock_database, recover, schema};
use crate::error::{Result, StoreError};

/// How [`copy_database`] reached the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// A server had the database open: the copy was read beside it, as its
    /// own readers read.
    BesideServer,
    /// No process had it: it was locked for the copy (no server could
    /// start on it meanwhile), after the commit log, if any, was replayed.
    Locked,
}

/// Copies the database file `db` into `dest` (which must not exist), with
/// or without a server running on it:
///
/// - a server has it (its lock is held): the copy is made on a read-only
///   connection, in one read transaction, as the server's own readers read
///   (WAL mode lets them run beside the writer);
/// - no server has it: it is locked for the time of the copy, and opened as
///   a server start opens it (the commit log, if there is one, is
///   replayed: a power cut may have left acknowledged writes only there).
pub fn copy_database(db: &Path, dest: &Path) -> Result<CopySource> {
    if !db.is_file() {
        return Err(StoreError::Unavailable(format!("there is no ctxmesh database at {}", db.display())));
    }
    let source = match lock_database(db, std::time::Duration::ZERO) {
        Ok(lock) => {
            let mut conn = Connection::open(db)?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")?;
            schema::migrate(&mut conn)?;
            let config = SqliteConfig { commit_log: SqliteConfig::new(db).log_dir().exists(), ..SqliteConfig::new(db) };
            let (log, _) = recover(&mut conn, &config)?;
            drop(log);
            vacuum_into(&conn, dest)?;
            drop(conn);
            drop(lock);
            CopySource::Locked
        }
        Err(StoreError::Unavailable(_)) => {
            let conn = read_only(db, false)?;
            let version = schema_version(&conn)?;
            if version != schema::VERSION {
                return Err(StoreError::Unavailable(format!(
                    "the server running on {} has schema version {version}, this ctxmesh knows {}: \
                     back it up with the ctxmesh of that server",
                    db.display(),
                    schema::VERSION
                )));
            }
            vacuum_into(&conn, dest)?;
            CopySource::BesideServer
        }
        Err(e) => return Err(e),
    };
    sync_file(dest)?;
    Ok(source)
}

/// Opens `path` read-only; `immutable`: a file nothing else writes (a
/// backup), read without taking locks or making WAL files beside it.
fn read_only(path: &Path, immutable: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = if immutable {
        let raw =
            path.to_str().ok_or_else(|| StoreError::Backend(format!("the path {} is not UTF-8", path.display())))?;
        let escaped = raw.replace('%', "%25").replace('?', "%3f").replace('#', "%23");
        Connection::open_with_flags(format!("file:{escaped}?immutable=1"), flags)?
    } else {
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn
    };
    Ok(conn)
}

fn schema_version(conn: &Connection) -> Result<usize> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize)
}

/// Makes the file's content durable.
fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Backend(format!("cannot sync {}: {e}", path.display())))
}

/// Makes a directory's entries (a file renamed into it) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Backend(format!("cannot sync {}: {e}", dir.display())))
}

/// One context as a database file holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextState {
    /// The context's id.
    pub id: String,
    /// Its revision.
    pub revision: u64,
    /// Its live entries.
    pub entries: u64,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// The schema version (`PRAGMA user_version`).
    pub schema_version: usize,
    /// Every context, by id.
    pub contexts: Vec<ContextState>,
    /// Rows of history (entry versions) in all.
    pub versions: u64,
    /// What is wrong, one line each (empty: the database is consistent).
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Most examples reported of each kind of problem.
const EXAMPLES: usize = 10;

/// Checks the database file at `path`: SQLite's `integrity_check`, then
/// ctxmesh's own invariants, all in one read transaction (a server may be
/// writing). `immutable`: the file is a copy nothing writes (a backup).
///
/// The invariants are those a torn or partial copy breaks: for every
/// context, a commit for each revision from its compaction point up to its
/// revision and none after; no row (version, live entry, commit, event)
/// of a context that does not exist or at a revision after its context's;
/// every live entry is the newest version of its key, and not a deletion,
/// and every key whose newest version is not a deletion is live; every key
/// a commit names has its version at that revision; every event that
/// refers to a version finds it; entry counts and the keyword index match
/// the live entries; coordination objects and stream events are JSON, and
/// objects of a context name one that exists; the commit log position is
/// one row.
pub fn check(path: &Path, immutable: bool) -> Result<CheckReport> {
    if !path.is_file() {
        return Err(StoreError::Unavailable(format!("there is no database file at {}", path.display())));
    }
    let conn = read_only(path, immutable)?;
    conn.execute_batch("BEGIN")?;
    let report = check_in(&conn);
    let _ = conn.execute_batch("COMMIT");
    report
}

fn check_in(conn: &Connection) -> Result<CheckReport> {
    let schema_version =
        schema_version(conn).map_err(|e| StoreError::Backend(format!("not a readable ctxmesh database: {e}")))?;
    let mut report = CheckReport { schema_version, ..CheckReport::default() };
    let integrity: Vec<String> = {
        let mut stmt = conn.prepare("PRAGMA integrity_check(100)")?;
        stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    if integrity != ["ok"] {
        report.problems.extend(integrity.into_iter().map(|line| format!("SQLite integrity check: {line}")));
        // The tables themselves cannot be trusted: their invariants would
        // only repeat it.
        return Ok(report);
    }
    if report.schema_version != schema::VERSION {
        report.problems.push(format!(
            "schema version {} where this ctxmesh writes {} (a database of another ctxmesh version)",
            report.schema_version,
            schema::VERSION
        ));
        return Ok(report);
    }
    // Contexts and their commits.
    let mut stmt = conn.prepare(
        "SELECT c.id, c.revision, c.compacted_revision, c.entry_count, \
         (SELECT count(*) FROM commits m WHERE m.ctx = c.id AND m.revision BETWEEN max(c.compacted_revision, 1) AND c.revision), \
         (SELECT count(*) FROM entries e WHERE e.ctx = c.id), \
         (SELECT count(*) FROM search_docs d WHERE d.ctx = c.id) \
         FROM contexts c ORDER BY c.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    for row in rows {
        let (id, revision, compacted, entry_count, commits, live, docs) = row?;
        let first = compacted.max(1);
        if revision < 1 || compacted > revision {
            report.problems.push(format!("context {id:?}: revision {revision} with compaction point {compacted}"));
        } else if commits != revision - first + 1 {
            report.problems.push(format!(
                "context {id:?}: {commits} commits between revisions {first} and {revision}, where every revision has one"
            ));
        }
        if entry_count != live {
            report.problems.push(format!("context {id:?}: entry count {entry_count}, but {live} live entries"));
        }
        if docs != live {
            report.problems.push(format!("context {id:?}: {docs} keyword index documents for {live} live entries"));
        }
        report.contexts.push(ContextState { id, revision: revision.max(0) as u64, entries: live.max(0) as u64 });
    }
    drop(stmt);
    report.versions = conn.query_row("SELECT count(*) FROM versions", [], |r| r.get::<_, i64>(0))?.max(0) as u64;
    let checks: &[(&str, &str)] = &[
        (
            "a version of a missing context or after its context's revision",
            "SELECT t.ctx || ' ' || t.key || ' @' || t.revision FROM versions t LEFT JOIN contexts c ON c.id = t.ctx \
             WHERE c.id IS NULL OR t.revision > c.revision OR t.revision < 1",
        ),
        (
            "a live entry of a missing context or after its context's revision",
            "SELECT t.ctx || ' ' || t.key || ' @' || t.revision FROM entries t LEFT JOIN contexts c ON c.id = t.ctx \
             WHERE c.id IS NULL OR t.revision > c.revision",
        ),
        (
            "a commit of a missing context, after its context's revision or before its compaction point",
            "SELECT t.ctx || ' @' || t.revision FROM commits t LEFT JOIN contexts c ON c.id = t.ctx \
             WHERE c.id IS NULL OR t.revision > c.revision OR t.revision < max(c.compacted_revision, 1)",
        ),
        (
            "an event of a missing context, after its context's revision or before its compaction point",
            "SELECT t.ctx || ' @' || t.revision FROM events t LEFT JOIN contexts c ON c.id = t.ctx \
             WHERE c.id IS NULL OR t.revision > c.revision OR t.revision < c.compacted_revision",
        ),
        (
            "a live entry that is not the newest version of its key, or is a deletion",
            "SELECT e.ctx || ' ' || e.key || ' @' || e.revision FROM entries e \
             LEFT JOIN versions v ON v.ctx = e.ctx AND v.key = e.key AND v.revision = e.revision \
             WHERE v.ctx IS NULL OR v.value IS NULL OR EXISTS (SELECT 1 FROM versions w \
             WHERE w.ctx = e.ctx AND w.key = e.key AND w.revision > e.revision)",
        ),
        (
            "a key whose newest version is not a deletion, without a live entry",
            "SELECT v.ctx || ' ' || v.key || ' @' || v.revision FROM versions v WHERE v.value IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM versions w WHERE w.ctx = v.ctx AND w.key = v.key AND w.revision > v.revision) \
             AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.ctx = v.ctx AND e.key = v.key)",
        ),
        (
            "a key a commit names without its version at that revision",
            "SELECT m.ctx || ' ' || k.value || ' @' || m.revision FROM commits m, json_each(m.keys) k \
             WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.ctx = m.ctx AND v.key = k.value AND v.revision = m.revision)",
        ),
        (
            "an event whose value is in a version that is missing",
            "SELECT t.ctx || ' ' || t.value_key || ' @' || t.revision FROM events t WHERE t.value_key IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.ctx = t.ctx AND v.key = t.value_key AND v.revision = t.revision)",
        ),
        (
            "a keyword index document without a live entry",
            "SELECT d.ctx || ' ' || d.key FROM search_docs d \
             WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.ctx = d.ctx AND e.key = d.key)",
        ),
        (
            "a coordination object that is not JSON, or of a missing context",
            "SELECT o.kind || ' ' || o.id FROM objects o WHERE NOT json_valid(o.body) \
             OR (o.ctx IS NOT NULL AND NOT EXISTS (SELECT 1 FROM contexts c WHERE c.id = o.ctx))",
        ),
        (
            "a stream event that is not JSON",
            "SELECT s.stream || ' #' || s.seq FROM streams s WHERE NOT json_valid(s.event)",
        ),
        ("a commit log position that is not one row", "SELECT count(*) FROM log_position HAVING count(*) <> 1"),
    ];
    for (what, sql) in checks {
        let sql = format!("{sql} LIMIT {}", EXAMPLES + 1);
        let mut stmt = conn.prepare(&sql)?;
        let found: Vec<String> = stmt
            .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))?
            .map(|v| v.map(show))
            .collect::<rusqlite::Result<_>>()?;
        for (n, example) in found.iter().enumerate() {
            if n == EXAMPLES {
                report.problems.push(format!("{what}: and more"));
                break;
            }
            report.problems.push(format!("{what}: {example}"));
        }
    }
    Ok(report)
}

fn show(value: rusqlite::types::Value) -> String {
    match value {
        rusqlite::types::Value::Text(s) => s,
        rusqlite::types::Value::Integer(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Files of a store beside its database `db`: SQLite's WAL and shared
/// memory, and the commit log directory.
fn companions(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with("-wal"), with("-shm"), SqliteConfig::new(db).log_dir()]
}

/// Puts the database file `copy` (a backup, already verified by its
/// checksum) in place at `db`: refuses when a server has `db` open, or
/// when a store is there and not `force`; checks the copy before it
/// replaces anything; writes it to a temporary file beside `db`, syncs it
/// and renames it over `db` (a crash leaves the old store or the new one,
/// never part of one). With `force`, the old store's WAL and commit log go
/// first: they belong to the old database and would be applied to the new
/// one. Returns the check of the database in place.
pub fn restore(copy: &Path, db: &Path, force: bool) -> Result<CheckReport> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
    let _lock = lock_database(db, std::time::Duration::ZERO)?;
    let present = db.exists() || companions(db).iter().any(|p| p.exists());
    if present && !force {
        let what = format!("a store at {}", db.display());
        return Err(StoreError::Core(ctxmesh_core::Error::AlreadyExists { what }));
    }
    let before = check(copy, true)?;
    if !before.ok() {
        return Err(StoreError::Backend(format!(
            "the backup fails the consistency check, nothing was changed: {}",
            before.problems.join("; ")
        )));
    }
    let mut temp = db.as_os_str().to_owned();
    temp.push(".restore.tmp");
    let temp = PathBuf::from(temp);
    std::fs::copy(copy, &temp)
        .map_err(|e| StoreError::Backend(format!("cannot copy {} to {}: {e}", copy.display(), temp.display())))?;
    sync_file(&temp)?;
    for path in companions(db) {
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Backend(format!("cannot remove {}: {e}", path.display()))),
        }
    }
    std::fs::rename(&temp, db)
        .map_err(|e| StoreError::Backend(format!("cannot rename {} to {}: {e}", temp.display(), db.display())))?;
    sync_dir(&dir)?;
    check(db, false)
}

/// The revision of each context in the database file `path` (a backup).
pub fn contexts(path: &Path) -> Result<Vec<ContextState>> {
    let conn = read_only(path, true)?;
    let mut stmt = conn.prepare(
        "SELECT c.id, c.revision, (SELECT count(*) FROM entries e WHERE e.ctx = c.id) FROM contexts c ORDER BY c.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ContextState {
            id: r.get(0)?,
            revision: r.get::<_, i64>(1)?.max(0) as u64,
            entries: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
