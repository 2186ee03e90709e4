//! Size limits, each configurable; exceeding one is `413 too_large`.

use serde::{Deserialize, Serialize};

/// The limits a server enforces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: u64,
    /// Largest entry value (serialized JSON), in bytes.
    pub max_value_bytes: u64,
    /// Longest key, in bytes (never more than 512).
    pub max_key_bytes: u64,
    /// Most live entries per context.
    pub max_entries_per_context: u64,
    /// Most operations (comparisons plus operations) per transaction.
    pub max_txn_ops: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 2 * 1024 * 1024,
            max_value_bytes: 1024 * 1024,
            max_key_bytes: crate::ids::MAX_KEY_BYTES as u64,
            max_entries_per_context: 100_000,
            max_txn_ops: 256,
        }
    }
}
