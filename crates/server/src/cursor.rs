//! Opaque pagination cursors.
//!
//! An entry-list cursor pins the revision of the first page, so that every
//! later page reads the same snapshot (by time travel) even while writers
//! go on.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Where the next page of an entry list starts.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct EntryCursor {
    /// The revision the listing reads at.
    pub(crate) r: u64,
    /// The last key returned.
    pub(crate) k: String,
    /// Whether the listing is of the latest state (hides expired entries).
    pub(crate) l: bool,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(cursor: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(|| {
        ApiError::invalid_argument("cursor", "invalid cursor: pass next_cursor from a previous page as is")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = EntryCursor { r: 7, k: "a/b".into(), l: true };
        assert_eq!(decode::<EntryCursor>(&encode(&c)).unwrap(), c);
        assert_eq!(decode::<EntryCursor>("!!").unwrap_err().code, crate::error::ErrorCode::InvalidArgument);
    }
}
