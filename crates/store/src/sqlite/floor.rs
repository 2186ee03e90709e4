//! The floor under a durable write on the embedded store: SQLite alone
//! storing the rows of a write, with the writer's statements, schema and
//! settings (WAL, `synchronous = FULL`, group commit), and nothing else: no
//! HTTP, no JSON parsing, no planning or validation, no cache. What a
//! write costs here, ctxmesh cannot go below on the same machine
//! (`ctxmesh bench sqlite-floor`).

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::tx::{
    INSERT_COMMIT, INSERT_EVENT, INSERT_VERSION, SearchChange, UPDATE_CONTEXT_REVISION, UPSERT_ENTRY, apply_search,
    exec,
};
use crate::error::Result;

/// Which rows each write stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloorRows {
    /// The version row, the live-entry row and the context's revision: the
    /// least a versioned store with compare-and-swap keeps.
    Entry,
    /// And the commit and event rows that history and watch streams read.
    History,
    /// And the keyword index, written once per batch: every row a write on
    /// the embedded store keeps.
    Full,
}

impl FloorRows {
    /// Every row set, smallest first.
    pub const ALL: [FloorRows; 3] = [FloorRows::Entry, FloorRows::History, FloorRows::Full];
}

/// The workload.
#[derive(Clone, Debug)]
pub struct FloorConfig {
    /// Writes in all.
    pub writes: usize,
    /// Writes per transaction (one fsync each).
    pub batch: usize,
    /// Entries the writes are spread over, at random.
    pub keys: usize,
    /// Bytes of each written value.
    pub value_bytes: usize,
}

/// What the writes cost.
#[derive(Clone, Debug, Serialize)]
pub struct FloorReport {
    /// The rows each write stored.
    pub rows: FloorRows,
    /// Writes in all.
    pub writes: usize,
    /// Writes per transaction.
    pub batch: usize,
    /// CPU time of the writing thread per write, in microseconds,
    /// checkpoints and fsync included (from `/proc/thread-self/schedstat`;
    /// absent where that is not available).
    pub cpu_us_per_write: Option<f64>,
    /// Writes per second of wall time on this one thread.
    pub writes_per_sec: f64,
    /// Database and WAL bytes at the end.
    pub file_bytes: u64,
}

/// Runs `config`'s writes storing `rows`, on a new database in `dir`.
pub fn measure(dir: &Path, rows: FloorRows, config: &FloorConfig) -> Result<FloorReport> {
    let path = dir.join(format!("floor-{}.db", rows_name(rows)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut conn = Connection::open(&path)?;
    super::tune(&conn, super::WRITER_LOOKASIDE_SLOTS)?;
    // The writer's settings; SQLite checkpoints on this thread (the server
    // does it on one of its own), so its cost is counted here.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -{};",
        super::WRITER_CACHE_KIB
    ))?;
    super::schema::migrate(&mut conn)?;
    let ctx = "floor";
    conn.execute(
        "INSERT INTO contexts (id, revision, created_at, updated_at, created_by, settings, settings_version, \
         entry_count) VALUES (?1, 0, 0, 0, 'floor', ?2, 1, 0)",
        params![ctx, serde_json::to_string(&ctxmesh_core::ContextSettings::default())?],
    )?;
    let meta = serde_json::to_string(&ctxmesh_core::EntryMeta::default())?;
    // The value of the CAS scenarios of `ctxmesh bench`, to compare with
    // them: one term for the keyword index.
    let value = serde_json::to_string(&"v".repeat(config.value_bytes))?;
    let mut versions = vec![0i64; config.keys.max(1)];
    let mut revision = 0i64;
    let cpu_before = thread_cpu_ns();
    let started = Instant::now();
    let mut done = 0;
    while done < config.writes {
        exec(&conn, "BEGIN IMMEDIATE")?;
        let mut search = Vec::new();
        for _ in 0..config.batch.min(config.writes - done) {
            let k = rand::random_range(0..versions.len());
            versions[k] += 1;
            revision += 1;
            let key = format!("k{k}");
            conn.prepare_cached(INSERT_VERSION)?.execute(params![
                ctx,
                key,
                revision,
                "updated",
                value,
                meta,
                versions[k],
                revision,
                revision,
                "floor",
                r#"{"floor":1}"#
            ])?;
            conn.prepare_cached(UPSERT_ENTRY)?.execute(params![ctx, key, revision, None::<i64>])?;
            if rows != FloorRows::Entry {
                conn.prepare_cached(INSERT_COMMIT)?.execute(params![
                    ctx,
                    revision,
                    revision,
                    "floor",
                    "txn",
                    format!("[\"{key}\"]")
                ])?;
                let event = format!(
                    r#"{{"type":"context.updated","context":"{ctx}","revision":{revision},"key":"{key}","at":"2026-12-01T00:00:00.000000Z","agent":"floor","priority":"normal","data":{{"change":"updated"}},"version":{}}}"#,
                    versions[k]
                );
                // As ctxmesh stores it: the value is the version's.
                conn.prepare_cached(INSERT_EVENT)?.execute(params![ctx, revision, 0, event, key])?;
            }
            conn.prepare_cached(UPDATE_CONTEXT_REVISION)?.execute(params![
                ctx,
                revision,
                revision,
                versions.len() as i64
            ])?;
            if rows == FloorRows::Full {
                search.push(SearchChange::Put {
                    ctx: ctx.to_owned(),
                    key: key.clone(),
                    text: format!("{key}\n{value}"),
                });
            }
            done += 1;
        }
        apply_search(&conn, &search)?;
        exec(&conn, "COMMIT")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us_per_write = match (cpu_before, thread_cpu_ns()) {
        (Some(before), Some(after)) => Some((after - before) as f64 / 1_000.0 / config.writes.max(1) as f64),
        _ => None,
    };
    drop(conn);
    let file_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    Ok(FloorReport {
        rows,
        writes: config.writes,
        batch: config.batch,
        cpu_us_per_write,
        writes_per_sec: config.writes as f64 / elapsed.max(f64::EPSILON),
        file_bytes,
    })
}

/// The row set's name, as the CLI and JSON spell it.
pub fn rows_name(rows: FloorRows) -> &'static str {
    match rows {
        FloorRows::Entry => "entry",
        FloorRows::History => "history",
        FloorRows::Full => "full",
    }
}

/// CPU time this thread has used, in nanoseconds (Linux).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(path: &Path, sql: &str) -> i64 {
        Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn each_row_set_stores_what_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let config = FloorConfig { writes: 50, batch: 7, keys: 5, value_bytes: 32 };
        for rows in FloorRows::ALL {
            let report = measure(dir.path(), rows, &config).unwrap();
            assert_eq!((report.rows, report.writes, report.batch), (rows, 50, 7));
            assert!(report.writes_per_sec > 0.0 && report.file_bytes > 0);
            if std::path::Path::new("/proc/thread-self/schedstat").exists() {
                assert!(report.cpu_us_per_write.unwrap() > 0.0);
            }
            let db = dir.path().join(format!("floor-{}.db", rows_name(rows)));
            assert_eq!(count(&db, "SELECT count(*) FROM versions"), 50);
            assert_eq!(count(&db, "SELECT revision FROM contexts WHERE id = 'floor'"), 50);
            let live = count(&db, "SELECT count(*) FROM entries");
            assert!((1..=5).contains(&live), "{live} live entries over 5 keys");
            let history = if rows == FloorRows::Entry { 0 } else { 50 };
            assert_eq!(count(&db, "SELECT count(*) FROM commits"), history);
            assert_eq!(count(&db, "SELECT count(*) FROM events"), history);
            // The keyword index holds one document per live entry.
            let indexed = if rows == FloorRows::Full { live } else { 0 };
            assert_eq!(count(&db, "SELECT count(*) FROM search_fts WHERE search_fts MATCH 'vvvvvvvv*'"), indexed);
        }
    }
}
