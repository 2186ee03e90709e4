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
    /// The backend failed (I/O, corruption, a bug). Details are logged by
    /// whoever reports it, never sent to clients.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(format!("corrupt JSON in store: {e}"))
    }
}

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
