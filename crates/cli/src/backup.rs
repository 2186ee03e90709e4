//! `ctxmesh backup`, `ctxmesh restore` and `ctxmesh check`: backups of the
//! embedded store (docs/backup.md).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use ctxmesh_store::sqlite::backup::{self, CheckReport, ContextState};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The database file's name in a data directory and in a backup.
const DATABASE: &str = "ctxmesh.db";
/// The manifest's name in a backup.
const MANIFEST: &str = "manifest.json";
/// What `format` says in every manifest.
const FORMAT: &str = "ctxmesh-backup";
/// The manifest format this ctxmesh writes and reads.
const FORMAT_VERSION: u32 = 1;

/// `ctxmesh backup`.
#[derive(Args, Debug)]
pub(crate) struct BackupArgs {
    /// The directory to write the backup to (created; it must not hold a
    /// backup already).
    #[arg(long)]
    to: PathBuf,
    /// Copy the store in this data directory directly, instead of asking
    /// --server (a server may be running on it, or not).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The server to back up (the admin token is needed).
    #[arg(long, env = "CTXMESH_SERVER", default_value = "http://127.0.0.1:7600")]
    server: String,
    /// The admin token. Without it: $CTXMESH_TOKEN, then `admin.token` in
    /// --token-data-dir, then the server's entry in the credentials file.
    #[arg(long)]
    token: Option<String>,
    /// The server's data directory, where its admin token may be found.
    #[arg(long, env = "CTXMESH_DATA_DIR", default_value = "./ctxmesh-data")]
    token_data_dir: PathBuf,
}

/// `ctxmesh restore`.
#[derive(Args, Debug)]
pub(crate) struct RestoreArgs {
    /// The backup directory (`ctxmesh backup --to`).
    #[arg(long)]
    from: PathBuf,
    /// The data directory to restore into (no server may be running on it).
    #[arg(long)]
    data_dir: PathBuf,
    /// Replace the store in --data-dir if there is one.
    #[arg(long)]
    force: bool,
}

/// `ctxmesh check`.
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The data directory whose store to check (a server may be running on it).
    #[arg(long, env = "CTXMESH_DATA_DIR", default_value = "./ctxmesh-data")]
    data_dir: PathBuf,
    /// Check a backup directory instead of --data-dir: its manifest, its
    /// checksum, then its database.
    #[arg(long)]
    backup: Option<PathBuf>,
}

/// `manifest.json` of a backup.
#[derive(Serialize, Deserialize, Debug)]
struct Manifest {
    /// Always `ctxmesh-backup`.
    format: String,
    /// The manifest's format version.
    format_version: u32,
    /// The ctxmesh that took it.
    ctxmesh_version: String,
    /// When it was taken (RFC 3339).
    created_at: chrono::DateTime<chrono::Utc>,
    /// Where it was taken from.
    source: Source,
    /// The database file.
    database: Database,
    /// Each context's revision in the backup.
    contexts: Vec<ContextState>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Source {
    /// A running server, over the API.
    Server { server: String },
    /// A data directory, read directly.
    DataDir { path: PathBuf, server_running: bool },
}

#[derive(Serialize, Deserialize, Debug)]
struct Database {
    /// Its name in the backup directory.
    file: String,
    /// Its size in bytes.
    size: u64,
    /// The SHA-256 of its bytes, in hex.
    sha256: String,
    /// Its schema version.
    schema_version: usize,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (hex) and size of the file at `path`.
fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

fn sync_path(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync {}", path.display()))
}

/// Removes a partial file when the backup fails before it is complete.
struct Partial(PathBuf);

impl Partial {
    /// The file, now complete: it stays.
    fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

pub(crate) async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let dir = &args.to;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if dir.join(MANIFEST).exists() || dir.join(DATABASE).exists() {
        bail!("{} holds a backup already: back up into a new directory", dir.display());
    }
    let partial = Partial(dir.join(format!("{DATABASE}.partial")));
    let _ = std::fs::remove_file(&partial.0);
    let source = match &args.data_dir {
        Some(data_dir) => {
            let db = data_dir.join(DATABASE);
            let copied = tokio::task::spawn_blocking({
                let (db, dest) = (db.clone(), partial.0.clone());
                move || backup::copy_database(&db, &dest)
            })
            .await?
            .with_context(|| format!("cannot back up {}", db.display()))?;
            Source::DataDir {
                path: std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone()),
                server_running: copied == backup::CopySource::BesideServer,
            }
        }
        None => {
            // HTTPS through rustls with ring (no-op when a provider is set).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let lookup = crate::credentials::find_token(&args.server, args.token.as_deref(), &args.token_data_dir);
            let mut client = ctxmesh_client::Client::new(&args.server);
            if let Some(token) = lookup.token() {
                client = client.with_token(token);
            }
            let mut file =
                std::fs::File::create(&partial.0).with_context(|| format!("cannot create {}", partial.0.display()))?;
            let saved = client.backup(|chunk| file.write_all(chunk)).await;
            saved.map_err(|e| lookup.explain(e.into())).context("the server did not send a backup")?;
            file.sync_all().with_context(|| format!("cannot sync {}", partial.0.display()))?;
            Source::Server { server: args.server.clone() }
        }
    };
    sync_path(&partial.0)?;
    let (sha256, size) = sha256_file(&partial.0)?;
    let report = tokio::task::spawn_blocking({
        let path = partial.0.clone();
        move || backup::check(&path, true)
    })
    .await??;
    if !report.ok() {
        bail!("the copy fails the consistency check, no backup was written:\n  {}", report.problems.join("\n  "));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        ctxmesh_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now(),
        source,
        database: Database { file: DATABASE.into(), size, sha256, schema_version: report.schema_version },
        contexts: report.contexts.clone(),
    };
    let db = dir.join(DATABASE);
    std::fs::rename(&partial.0, &db).with_context(|| format!("cannot rename {}", partial.0.display()))?;
    partial.keep();
    // The manifest last: a directory with one holds a whole backup.
    let temp = dir.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&temp, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    sync_path(&temp)?;
    std::fs::rename(&temp, dir.join(MANIFEST)).with_context(|| format!("cannot rename {}", temp.display()))?;
    sync_path(dir)?;
    let from = match &manifest.source {
        Source::Server { server } => server.clone(),
        Source::DataDir { path, .. } => path.display().to_string(),
    };
    outln!("backed up {from} to {}", dir.display());
    summary(&manifest.contexts, size);
    outln!("sha256 {}", manifest.database.sha256);
    Ok(())
}

fn summary(contexts: &[ContextState], size: u64) {
    let entries: u64 = contexts.iter().map(|c| c.entries).sum();
    outln!("{} contexts, {entries} live entries, {size} bytes", contexts.len());
    for c in contexts {
        outln!("  {}  revision {}  {} entries", c.id, c.revision, c.entries);
    }
}

/// Reads the manifest of the backup in `dir` and checks the database file
/// against it (size and checksum); returns the manifest and the file.
fn verify(dir: &Path) -> anyhow::Result<(Manifest, PathBuf)> {
    let path = dir.join(MANIFEST);
    let raw =
        std::fs::read(&path).with_context(|| format!("cannot read {} (is it a ctxmesh backup?)", path.display()))?;
    let manifest: Manifest =
        serde_json::from_slice(&raw).with_context(|| format!("{} is not a ctxmesh backup manifest", path.display()))?;
    if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
        bail!(
            "{} is a {} manifest of version {}: this ctxmesh reads {FORMAT} version {FORMAT_VERSION}",
            path.display(),
            manifest.format,
            manifest.format_version
        );
    }
    let name = &manifest.database.file;
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == ".." {
        bail!("{} names the database file {name:?}, which is not a file of the backup", path.display());
    }
    let file = dir.join(name);
    let (sha256, size) = sha256_file(&file)?;
    if size != manifest.database.size || sha256 != manifest.database.sha256 {
        bail!(
            "{} does not match its manifest (size {size}, sha256 {sha256}; the manifest says size {}, sha256 {}): \
             the backup is damaged, nothing was changed",
            file.display(),
            manifest.database.size,
            manifest.database.sha256
        );
    }
    Ok((manifest, file))
}

pub(crate) async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let (manifest, file) = verify(&args.from)?;
    let db = args.data_dir.join(DATABASE);
    let force = args.force;
    let report = tokio::task::spawn_blocking({
        let db = db.clone();
        move || backup::restore(&file, &db, force)
    })
    .await?
    .map_err(|e| match e {
        ctxmesh_store::StoreError::Core(ctxmesh_core::Error::AlreadyExists { .. }) => {
            anyhow::anyhow!("{} holds a store already: pass --force to replace it", args.data_dir.display())
        }
        e => anyhow::Error::new(e).context(format!("cannot restore into {}", args.data_dir.display())),
    })?;
    report_check(&db, &report)?;
    if report.contexts != manifest.contexts {
        bail!("the restored store's contexts differ from the manifest's");
    }
    outln!("restored the backup of {} into {}", manifest.created_at.to_rfc3339(), args.data_dir.display());
    summary(&report.contexts, manifest.database.size);
    Ok(())
}

/// Prints the problems a check found, and fails if there are any.
fn report_check(path: &Path, report: &CheckReport) -> anyhow::Result<()> {
    if !report.ok() {
        bail!("{} fails the consistency check:\n  {}", path.display(), report.problems.join("\n  "));
    }
    outln!("{}: consistent (SQLite integrity check and ctxmesh invariants passed)", path.display());
    Ok(())
}

pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let (path, immutable) = match &args.backup {
        Some(dir) => {
            let (manifest, file) = verify(dir)?;
            outln!("{}: matches its manifest (sha256 {})", file.display(), manifest.database.sha256);
            (file, true)
        }
        None => (args.data_dir.join(DATABASE), false),
    };
    let report = tokio::task::spawn_blocking({
        let path = path.clone();
        move || backup::check(&path, immutable)
    })
    .await?
    .with_context(|| format!("cannot check {}", path.display()))?;
    report_check(&path, &report)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    summary(&report.contexts, size);
    Ok(())
}
