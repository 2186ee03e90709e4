//! The domain error type: every failure the pure logic can report, each
//! with a stable code that the HTTP layer turns into a status; and
//! `ErrorCode`, the list of every stable code the API answers with.

use crate::entry::Entry;

/// Declares `ErrorCode` from one table of variants and their wire names,
/// with `as_str` and `ErrorCode::ALL`. Serde and the OpenAPI schema name
/// the variants in snake_case, which a test checks against `as_str`.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        // Exhaustive on purpose: the server's HTTP status and the CLI's
        // exit code are `match`es over it, so a new code does not compile
        // until both say what it means.
        /// A stable error code: the `error.code` of every error answer
        /// (docs/api.md, "Errors"), in JSON the snake_case string.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as sent on the wire, e.g. `"not_found"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    /// `400`: the body is not JSON.
    InvalidJson = "invalid_json",
    /// `400`: the body could not be read.
    InvalidBody = "invalid_body",
    /// `400`: a field or parameter has a wrong type or value.
    InvalidArgument = "invalid_argument",
    /// `400`: a context or agent id is malformed.
    InvalidId = "invalid_id",
    /// `400`: a key, prefix or key pattern is malformed.
    InvalidKey = "invalid_key",
    /// `400`: a transaction is malformed.
    InvalidTxn = "invalid_txn",
    /// `400`: a patch is malformed or does not apply.
    InvalidPatch = "invalid_patch",
    /// `400`: a context's JSON Schema does not compile.
    InvalidSchema = "invalid_schema",
    /// `401`: no token, or one that is unknown, rotated or revoked.
    Unauthenticated = "unauthenticated",
    /// `403`: the caller may not do this.
    Forbidden = "forbidden",
    /// `404`: no such context, entry, agent, route...
    NotFound = "not_found",
    /// `405`: the route exists but not with this method.
    MethodNotAllowed = "method_not_allowed",
    /// `409`: the request conflicts with the current state.
    Conflict = "conflict",
    /// `409`: something that must be new exists already.
    AlreadyExists = "already_exists",
    /// `409`: a write fenced with a lock token older than the lock's latest.
    Fenced = "fenced",
    /// `409`: a handoff or task cannot take this step from its state.
    InvalidTransition = "invalid_transition",
    /// `409`: releasing or refreshing a lock the caller does not hold.
    NotHolder = "not_holder",
    /// `409`: a disconnected agent (lapsed lease) acquiring a lock.
    Disconnected = "disconnected",
    /// `410`: the revision asked for was compacted.
    Compacted = "compacted",
    /// `412`: `If-Match` or `If-None-Match` failed.
    PreconditionFailed = "precondition_failed",
    /// `413`: something exceeds its limit.
    TooLarge = "too_large",
    /// `415`: a `Content-Type` that is not accepted here.
    UnsupportedMediaType = "unsupported_media_type",
    /// `422`: a value breaks its key's schema.
    SchemaViolation = "schema_violation",
    /// `428`: the context requires preconditions and the write had none.
    PreconditionRequired = "precondition_required",
    /// `429`: an agent over its request rate.
    RateLimited = "rate_limited",
    /// `500`: a bug or a storage failure.
    Internal = "internal",
    /// `503`: the store (or another dependency) cannot take requests.
    Unavailable = "unavailable",
    /// `507`: the server's disk is full.
    StorageFull = "storage_full",
}

/// A code compares equal to its string (`e.code() == "not_found"`).
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.as_str()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL.iter().copied().find(|code| code.as_str() == s).ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

/// A string that is not one of the codes of [`ErrorCode`] (from a newer
/// server, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}: this build knows the codes of docs/api.md")]
pub struct UnknownErrorCode(pub String);

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
    /// An agent that what was asked needs registered, and is not: a lock's
    /// holder (its locks end with its lease), a handoff's target, a task's
    /// assignee, a message's recipient (their inbox), a grantee, the agent
    /// a package is for (its needs).
    #[error(
        "agent {agent:?} is not registered ({role}): register it first with POST /v1/agents \
         {{\"id\": {agent:?}}}, or ctxmesh agents register {agent}"
    )]
    NotRegistered {
        /// The agent.
        agent: String,
        /// Why it must be, e.g. `a lock's holder must be registered: its
        /// locks end with its lease`.
        role: String,
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
        /// The stable code: a `409` code (`not_holder`,
        /// `invalid_transition`, `disconnected`, or `conflict`).
        code: ErrorCode,
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
    /// The stable error code (docs/api.md, "Errors").
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidId { .. } => ErrorCode::InvalidId,
            Error::InvalidKey { .. } => ErrorCode::InvalidKey,
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::InvalidTxn(_) => ErrorCode::InvalidTxn,
            Error::InvalidPatch { .. } => ErrorCode::InvalidPatch,
            Error::InvalidSchema { .. } => ErrorCode::InvalidSchema,
            Error::SchemaViolation { .. } => ErrorCode::SchemaViolation,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            Error::PreconditionRequired => ErrorCode::PreconditionRequired,
            Error::NotFound { .. } | Error::NotRegistered { .. } => ErrorCode::NotFound,
            Error::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            Error::Compacted { .. } => ErrorCode::Compacted,
            Error::Fenced { .. } => ErrorCode::Fenced,
            Error::Conflict { code, .. } => *code,
            Error::Forbidden { .. } => ErrorCode::Forbidden,
        }
    }

    /// Machine-readable details for the error body (`error.details`).
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Error::InvalidId { id } => json!({ "id": id }),
            Error::InvalidKey { key, .. } => json!({ "key": key }),
            Error::InvalidArgument { field, .. } => json!({ "field": field }),
            Error::NotRegistered { agent, .. } => json!({ "agent": agent }),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code is its own string on the wire and parses back from it.
    #[test]
    fn every_error_code_round_trips_through_its_string() {
        for &code in ErrorCode::ALL {
            let s = code.as_str();
            assert_eq!(code.to_string(), s);
            assert_eq!(s.parse::<ErrorCode>(), Ok(code));
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
            assert_eq!(serde_json::from_value::<ErrorCode>(serde_json::json!(s)).unwrap(), code);
            assert!(!s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s:?}");
        }
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "two codes share a string");
    }

    /// A code from a newer server is an error to parse, not a guess.
    #[test]
    fn an_unknown_code_does_not_parse() {
        assert_eq!("no_such_code".parse::<ErrorCode>(), Err(UnknownErrorCode("no_such_code".into())));
        assert!(serde_json::from_value::<ErrorCode>(serde_json::json!("NotFound")).is_err());
    }

    /// The codes of `Conflict` errors are typed codes; an unknown one is
    /// `conflict`.
    #[test]
    fn conflict_codes_are_typed() {
        let conflict = |code| Error::Conflict { code, message: String::new() };
        assert_eq!(conflict(ErrorCode::NotHolder).code(), "not_holder");
        assert_eq!(conflict(ErrorCode::InvalidTransition).code(), "invalid_transition");
        assert_eq!(Error::not_found("x").code(), ErrorCode::NotFound);
        assert_eq!(Error::not_found("x").code(), "not_found");
    }
}
