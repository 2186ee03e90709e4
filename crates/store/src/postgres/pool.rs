//! The connection pool of a node, and what a failure to get a connection
//! means to a caller.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};

use crate::error::{Result, StoreError};

/// A pool of at most `size` (at least 2) connections to the database
/// `config` names, over TLS as it says.
pub(super) fn build(config: super::tls::ConnectConfig, size: usize) -> Result<Pool> {
    let manager =
        Manager::from_config(config.config, config.tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    // A request waits a bounded time for a connection, then is told the
    // store is unavailable (503) instead of hanging.
    Pool::builder(manager)
        .max_size(size.max(2))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))
}

/// A connection could not be had: the database's own error, or the store
/// is unavailable.
pub(super) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => e.into(),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}
