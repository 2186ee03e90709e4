//! The domain error type: every failure the pure logic can report, each
//! with a stable code that the HTTP layer turns into a status.

use crate::entry::Entry;

/// A domain error. The `code()` of each variant is part of the public API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A context id that does not match `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`.
    #[error(
        "invalid context id {id:?}: use 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit"
    )]
    InvalidId {
        /// The id as given.
        id: String,
    },
    /// An entry key that is empty, too long or has a bad segment.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of a request that has a wrong value.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field (dotted path) that is wrong.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A transaction that is malformed (for example, one key written twice).
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),
    /// A patch that is malformed or does not apply to the current value.
    #[error("patch cannot be applied to {key:?}: {reason}")]
    InvalidPatch {
        /// The key being patched.
        key: String,
        /// Why it did not apply.
        reason: String,
    },
    /// A JSON Schema in the context settings that does not compile.
    #[error("invalid schema for pattern {pattern:?}: {reason}")]
    InvalidSchema {
        /// The key pattern the schema is attached to.
        pattern: String,
        /// Why it is not a valid schema.
        reason: String,
    },
    /// A value that violates the schema attached to its key.
    #[error("value of {key:?} violates the schema of {pattern:?} at {pointer:?}: {message}")]
    SchemaViolation {
        /// The key being written.
        key: String,
        /// The key pattern whose schema failed.
        pattern: String,
        /// JSON pointer into the value where validation failed.
        pointer: String,
        /// JSON pointer into the schema of the failing keyword.
        schema_path: String,
        /// The validator's message.
        message: String,
    },
    /// Something exceeds a configured limit.
    #[error("{what} is too large: {actual} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The configured limit.
        limit: u64,
        /// The size that was asked for.
        actual: u64,
    },
    /// A precondition (`If-Match`, `If-None-Match`) failed. Nothing changed.
    #[error("precondition failed for {key:?}: {}{}", describe_current(*.current_revision),
        reason.as_ref().map(|r| format!("; {r}")).unwrap_or_default())]
    PreconditionFailed {
        /// The key whose precondition failed.
        key: String,
        /// Revision of the current entry, if it exists.
        current_revision: Option<u64>,
        /// The current entry, so the caller can merge and retry.
        current: Option<Box<Entry>>,
        /// Why the conflict policy refused the write, when one decided.
        reason: Option<String>,
        /// Fields both sides changed (`merge`).
        fields: Vec<String>,
    },
    /// A write that needs a precondition and has none (`require_precondition`).
    #[error("this context requires a precondition on writes: send If-Match or If-None-Match")]
    PreconditionRequired,
    /// A context, entry or revision that does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `context "a"`.
        what: String,
    },
    /// Something that must be new exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists already.
        what: String,
    },
    /// A write fenced with a token older than the lock's latest.
    #[error("lock {lock:?} has a newer fencing token ({current}) than this write's ({token}): the lock was lost")]
    Fenced {
        /// The lock's name.
        lock: String,
        /// The token the write carried.
        token: u64,
        /// The lock's latest token.
        current: u64,
    },
    /// The request conflicts with the current state (an illegal state
    /// transition, a lock held by another agent...). `code` is stable.
    #[error("{message}")]
    Conflict {
        /// The stable code (`invalid_transition`, `not_holder`, ...).
        code: &'static str,
        /// What happened and what to do.
        message: String,
    },
    /// The caller may not do this.
    #[error("{reason}")]
    Forbidden {
        /// Why.
        reason: String,
    },
    /// A read of history before the context's compaction point.
    #[error("revision {requested} was compacted: history before revision {compacted} is gone")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The first revision still readable.
        compacted: u64,
    },
}

impl Error {
    /// The stable error code of DESIGN.md section 5.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidId { .. } => "invalid_id",
            Error::InvalidKey { .. } => "invalid_key",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::InvalidTxn(_) => "invalid_txn",
            Error::InvalidPatch { .. } => "invalid_patch",
            Error::InvalidSchema { .. } => "invalid_schema",
            Error::SchemaViolation { .. } => "schema_violation",
            Error::TooLarge { .. } => "too_large",
            Error::PreconditionFailed { .. } => "precondition_failed",
            Error::PreconditionRequired => "precondition_required",
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Compacted { .. } => "compacted",
            Error::Fenced { .. } => "fenced",
            Error::Conflict { code, .. } => code,
            Error::Forbidden { .. } => "forbidden",
        }
    }

    /// Machine-readable details for the error body (`error.details`).
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Error::InvalidId { id } => json!({ "id": id }),
            Error::InvalidKey { key, .. } => json!({ "key": key }),
            Error::InvalidArgument { field, .. } => json!({ "field": field }),
            Error::InvalidPatch { key, .. } => json!({ "key": key }),
            Error::InvalidSchema { pattern, .. } => json!({ "pattern": pattern }),
            Error::SchemaViolation { key, pattern, pointer, schema_path, .. } => json!({
                "key": key, "pattern": pattern, "pointer": pointer, "schema_path": schema_path
            }),
            Error::TooLarge { what, limit, actual } => {
                json!({ "what": what, "limit": limit, "actual": actual })
            }
            Error::PreconditionFailed { key, current_revision, current, reason, fields } => {
                let mut d = json!({ "key": key, "current_revision": current_revision, "current": current });
                if let Some(reason) = reason {
                    d["reason"] = json!(reason);
                }
                if !fields.is_empty() {
                    d["fields"] = json!(fields);
                }
                d
            }
            Error::Compacted { requested, compacted } => {
                json!({ "requested": requested, "compacted_revision": compacted })
            }
            Error::Fenced { lock, token, current } => {
                json!({ "lock": lock, "token": token, "current_token": current })
            }
            Error::InvalidTxn(_)
            | Error::Conflict { .. }
            | Error::Forbidden { .. }
            | Error::PreconditionRequired
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. } => json!({}),
        }
    }

    /// Shorthand for an [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// Shorthand for an [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

fn describe_current(revision: Option<u64>) -> String {
    match revision {
        Some(r) => format!("the entry is now at revision {r}; error.details.current holds it: merge and retry"),
        None => "the entry does not exist".to_owned(),
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
