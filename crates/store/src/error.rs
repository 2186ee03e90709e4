//! The storage error type.

/// A storage error: a domain error, or a failure of the backend itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The request is wrong (not found, precondition failed, too large...).
    #[error(transparent)]
    Core(#[from] ctxmesh_core::Error),
    /// The backend is shutting down or cannot take requests.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The disk is full: writes are refused until space returns; reads
    /// go on.
    #[error("storage full: {0}")]
    Full(String),
    /// The backend failed (I/O, corruption, a bug). Details are logged by
    /// whoever reports it, never sent to clients.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// What each job of a batch that failed as a whole is answered, on
    /// every backend: `Full` when the disk is full (nothing was written,
    /// the client may retry once space returns), else `Unavailable` (the
    /// client cannot tell whether its write was applied).
    pub(crate) fn for_failed_batch(&self) -> StoreError {
        match self {
            StoreError::Full(msg) => StoreError::Full(msg.clone()),
            other => StoreError::Unavailable(format!("commit failed: {other}")),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::DISK_FULL => {
                StoreError::Full(format!("{}: {}", db.severity(), db.message()))
            }
            Some(db) => StoreError::Backend(format!("{}: {} ({})", db.severity(), db.message(), db.code().code())),
            // No answer from the database: the connection is gone or
            // could not be made.
            None if e.is_closed() => StoreError::Unavailable(format!("lost the database connection: {e}")),
            None => StoreError::Unavailable(format!("database unreachable: {e}")),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(format!("corrupt JSON in store: {e}"))
    }
}

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch that failed on a full disk answers each job `Full` (nothing
    /// was written); any other failure leaves the outcome unknown.
    #[test]
    fn a_failed_batch_keeps_storage_full_and_nothing_else() {
        assert!(matches!(StoreError::Full("disk".into()).for_failed_batch(), StoreError::Full(m) if m == "disk"));
        assert!(matches!(StoreError::Backend("io".into()).for_failed_batch(), StoreError::Unavailable(_)));
        assert!(matches!(StoreError::Unavailable("gone".into()).for_failed_batch(), StoreError::Unavailable(_)));
    }
}
