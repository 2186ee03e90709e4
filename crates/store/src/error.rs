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
    /// An error of the database driver, or stored JSON that does not
    /// decode, kept whole as `source()`: it counts as `Unavailable`,
    /// `Full` or `Backend` as `kind` says, and reads like it.
    #[error("{}", kind.describe(message))]
    Driver {
        /// Which of `Unavailable`, `Full` or `Backend` it counts as.
        kind: DriverFailure,
        /// What failed, with the driver's message.
        message: String,
        /// The driver's (or the JSON decoder's) own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a [`StoreError::Driver`] counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverFailure {
    /// As [`StoreError::Unavailable`]: the database cannot be reached.
    Unavailable,
    /// As [`StoreError::Full`]: the disk is full.
    Full,
    /// As [`StoreError::Backend`]: anything else.
    Backend,
}

impl DriverFailure {
    /// The message of the variant it counts as, so both read alike.
    fn describe(self, message: &str) -> String {
        match self {
            DriverFailure::Unavailable => format!("store unavailable: {message}"),
            DriverFailure::Full => format!("storage full: {message}"),
            DriverFailure::Backend => format!("storage backend error: {message}"),
        }
    }
}

impl StoreError {
    /// An error of the database driver or the JSON decoder, with its source.
    fn driver(
        kind: DriverFailure,
        message: String,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Driver { kind, message, source: Box::new(source) }
    }

    /// Whether the disk is full (`Full`, or a driver's disk-full error).
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full(_) | StoreError::Driver { kind: DriverFailure::Full, .. })
    }

    /// Whether the store cannot take requests (`Unavailable`, or a
    /// driver's lost or refused connection).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Driver { kind: DriverFailure::Unavailable, .. })
    }

    /// What each job of a batch that failed as a whole is answered, on
    /// every backend: `Full` when the disk is full (nothing was written,
    /// the client may retry once space returns), else `Unavailable` (the
    /// client cannot tell whether its write was applied). The batch's own
    /// error, with its source, is the caller's to log.
    pub(crate) fn for_failed_batch(&self) -> StoreError {
        match self {
            StoreError::Full(msg) | StoreError::Driver { kind: DriverFailure::Full, message: msg, .. } => {
                StoreError::Full(msg.clone())
            }
            other => StoreError::Unavailable(format!("commit failed: {other}")),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let kind = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => DriverFailure::Full,
            _ => DriverFailure::Backend,
        };
        StoreError::driver(kind, e.to_string(), e)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let (kind, message) = match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::DISK_FULL => {
                (DriverFailure::Full, format!("{}: {}", db.severity(), db.message()))
            }
            Some(db) => (DriverFailure::Backend, format!("{}: {} ({})", db.severity(), db.message(), db.code().code())),
            // No answer from the database: the connection is gone or
            // could not be made.
            None if e.is_closed() => (DriverFailure::Unavailable, format!("lost the database connection: {e}")),
            // A refused TLS handshake, said in words with what to do.
            None => match ctxmesh_tls::explain(&e, "sslrootcert=FILE in the store URL") {
                Some(why) => (DriverFailure::Unavailable, format!("database unreachable: {why}")),
                None => (DriverFailure::Unavailable, format!("database unreachable: {e}")),
            },
        };
        StoreError::driver(kind, message, e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::driver(DriverFailure::Backend, format!("corrupt JSON in store: {e}"), e)
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
        let full = StoreError::from(sqlite_error(rusqlite::ffi::SQLITE_FULL, "database or disk is full"));
        assert!(matches!(full.for_failed_batch(), StoreError::Full(m) if m == "database or disk is full"));
        let corrupt = StoreError::from(sqlite_error(rusqlite::ffi::SQLITE_CORRUPT, "malformed"));
        assert!(matches!(corrupt.for_failed_batch(), StoreError::Unavailable(m) if m.contains("malformed")));
    }

    fn sqlite_error(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
    }

    /// A converted driver or JSON error keeps the original as `source()`,
    /// reads as before, and counts as the variant it did.
    #[test]
    fn a_converted_error_keeps_its_source() {
        use std::error::Error as _;

        let e = StoreError::from(sqlite_error(rusqlite::ffi::SQLITE_CORRUPT, "database disk image is malformed"));
        assert_eq!(e.to_string(), "storage backend error: database disk image is malformed");
        let source = e.source().and_then(|s| s.downcast_ref::<rusqlite::Error>()).expect("the rusqlite error");
        assert_eq!(source.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt));
        assert!(!e.is_full() && !e.is_unavailable());

        let e = StoreError::from(sqlite_error(rusqlite::ffi::SQLITE_FULL, "database or disk is full"));
        assert_eq!(e.to_string(), "storage full: database or disk is full");
        assert!(e.is_full());
        assert!(e.source().and_then(|s| s.downcast_ref::<rusqlite::Error>()).is_some());

        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let shown = json.to_string();
        let e = StoreError::from(json);
        assert_eq!(e.to_string(), format!("storage backend error: corrupt JSON in store: {shown}"));
        let source = e.source().and_then(|s| s.downcast_ref::<serde_json::Error>()).expect("the JSON error");
        assert_eq!(source.to_string(), shown);
    }
}
