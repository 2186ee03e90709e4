//! The SQLite floor: what storing a durable write's rows costs SQLite
//! alone on this machine, without the server around it. ctxmesh's writer
//! cannot be cheaper than this; the difference is its own work.

use clap::Args;
use ctxmesh_store::sqlite::floor::{self, FloorConfig, FloorRows};

/// Options of `ctxmesh bench sqlite-floor`.
#[derive(Args, Debug)]
pub(crate) struct FloorBench {
    /// Writes per row set.
    #[arg(long, default_value_t = 50_000)]
    writes: usize,
    /// Writes per transaction (one fsync each); the server's group commit
    /// gathers about 20 to 25 at 64 clients.
    #[arg(long, default_value_t = 22)]
    batch: usize,
    /// Entries the writes are spread over (cas-many uses 1,000).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Bytes of each value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
}

pub(crate) fn run(bench: &FloorBench, json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        bench.writes > 0 && bench.batch > 0 && bench.keys > 0,
        "--writes, --batch and --keys must be positive"
    );
    let dir = tempfile::tempdir()?;
    let config =
        FloorConfig { writes: bench.writes, batch: bench.batch, keys: bench.keys, value_bytes: bench.value_size };
    let mut reports = Vec::new();
    for rows in FloorRows::ALL {
        reports.push(floor::measure(dir.path(), rows, &config)?);
    }
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                floor::rows_name(r.rows).to_owned(),
                r.writes.to_string(),
                r.batch.to_string(),
                r.cpu_us_per_write.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
                format!("{:.0}", r.writes_per_sec),
                format!("{:.1}", r.file_bytes as f64 / (1 << 20) as f64),
            ]
        })
        .collect();
    crate::table::print(&["rows", "writes", "batch", "cpu_us/write", "writes/s", "file_mib"], &rows);
    outln!(
        "(entry: version, live-entry and context rows; history: and the commit and event rows; \
         full: and the keyword index, as the embedded store writes them; one thread, synchronous = FULL)"
    );
    Ok(())
}
