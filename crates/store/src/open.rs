//! Opening a store from a URL: `postgres://...`, `sqlite://PATH`, a bare
//! path, or the default file in the data directory.

use crate::api::Store;
use crate::clock::SharedClock;
use crate::error::{Result, StoreError};
use crate::types::Durability;
use crate::{postgres, sqlite};

/// What [`open`] needs besides the URL.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The data directory (the default SQLite file lives there).
    pub data_dir: std::path::PathBuf,
    /// fsync on commit, or not.
    pub durability: Durability,
    /// Limits enforced on writes.
    pub limits: ctxmesh_core::Limits,
    /// Database connections per node (PostgreSQL).
    pub pool_size: usize,
    /// The clock the store stamps and expires by ([`crate::clock::system`]
    /// in a server).
    pub clock: SharedClock,
    /// Size of each commit log segment (embedded store); `None`: the
    /// default, 64 MiB.
    pub log_segment_bytes: Option<u64>,
    /// Whether the embedded store's durability point is its commit log
    /// (see [`sqlite::SqliteConfig::commit_log`]).
    pub commit_log: bool,
}

/// Opens the store a URL names: `postgres://...` (or `postgresql://`),
/// `sqlite://PATH` (or a bare path), or, with no URL, `ctxmesh.db` in the
/// data directory. Returns the store and a description for the start-up
/// log (without credentials).
pub async fn open(url: Option<&str>, options: &OpenOptions) -> Result<(std::sync::Arc<dyn Store>, String)> {
    let path = match url {
        None | Some("") => options.data_dir.join("ctxmesh.db"),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let config = postgres::PostgresConfig {
                durability: options.durability,
                limits: options.limits.clone(),
                pool_size: options.pool_size,
                clock: options.clock.clone(),
                ..postgres::PostgresConfig::new(url)
            };
            let store = postgres::PostgresStore::connect(config).await?;
            return Ok((std::sync::Arc::new(store), format!("postgres {}", redact(url))));
        }
        Some(url) => match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Some(path) => std::path::PathBuf::from(path),
            None if !url.contains("://") => std::path::PathBuf::from(url),
            None => {
                return Err(StoreError::Unavailable(format!(
                    "unknown store URL {url:?}: use postgres://USER@HOST/DB, sqlite://PATH, \
                     or omit --store for the data directory"
                )));
            }
        },
    };
    let defaults = sqlite::SqliteConfig::new(path.clone());
    let config = sqlite::SqliteConfig {
        durability: options.durability,
        limits: options.limits.clone(),
        clock: options.clock.clone(),
        log_segment_bytes: options.log_segment_bytes.unwrap_or(defaults.log_segment_bytes),
        commit_log: options.commit_log,
        ..defaults
    };
    let store = sqlite::SqliteStore::open(config)?;
    Ok((std::sync::Arc::new(store), format!("sqlite {}", path.display())))
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
    }
}
