//! Validated identifiers: context ids, entry keys and key patterns.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// Longest entry key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// A context id: `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
pub struct ContextId(String);

impl ContextId {
    /// Validates `id` as a context id.
    pub fn parse(id: &str) -> Result<Self> {
        let bytes = id.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 128
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b));
        if valid { Ok(ContextId(id.to_owned())) } else { Err(Error::InvalidId { id: id.to_owned() }) }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContextId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ContextId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ContextId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An entry key: `/`-separated segments of `[A-Za-z0-9._~:@-]+`, at most
/// [`MAX_KEY_BYTES`] bytes in all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EntryKey(String);

impl EntryKey {
    /// Validates `key` as an entry key.
    pub fn parse(key: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidKey { key: key.to_owned(), reason: reason.to_owned() };
        if key.is_empty() {
            return Err(bad("a key must not be empty"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(bad("a key must be at most 512 bytes"));
        }
        for segment in key.split('/') {
            if segment.is_empty() {
                return Err(bad("segments must not be empty (no leading, trailing or double '/')"));
            }
            if !segment.bytes().all(is_key_byte) {
                return Err(bad("segments may hold only A-Z a-z 0-9 . _ ~ : @ -"));
            }
        }
        Ok(EntryKey(key.to_owned()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the key, returning the string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntryKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntryKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~:@-".contains(&b)
}

/// A revision, token or sequence number sent as text: 1 to 19 ASCII digits
/// and nothing else (no sign, no blanks), as the OpenAPI document's
/// `^[0-9]{1,19}$` says.
pub fn parse_decimal(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit());
    if digits { text.parse().ok() } else { None }
}

/// Whether `text` has `min` to `max` characters (Unicode scalar values,
/// as JSON Schema's `minLength`/`maxLength` count them).
pub fn chars_within(text: &str, min: usize, max: usize) -> bool {
    // At most 4 bytes a character: the byte length bounds the count.
    if text.len() < min || text.len() / 4 > max {
        return false;
    }
    (min..=max).contains(&text.chars().count())
}

/// Validates a key prefix used for listing: any prefix of a valid key
/// (it may end with `/` or in the middle of a segment). Empty means all.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidKey { key: prefix.to_owned(), reason: reason.to_owned() };
    if prefix.len() > MAX_KEY_BYTES {
        return Err(bad("a prefix must be at most 512 bytes"));
    }
    if prefix.starts_with('/') || prefix.contains("//") {
        return Err(bad("segments must not be empty"));
    }
    if !prefix.bytes().all(|b| b == b'/' || is_key_byte(b)) {
        return Err(bad("a prefix may hold only A-Z a-z 0-9 . _ ~ : @ - and /"));
    }
    Ok(())
}

/// A glob over keys: `*` matches within one segment, a `**` segment matches
/// any number of segments (including none). `plan/*` matches `plan/a` but not
/// `plan/a/b`; `plan/**` matches both, and `plan` itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyPattern(String);

impl KeyPattern {
    /// Validates a pattern: the key alphabet plus `*`.
    pub fn parse(pattern: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidKey { key: pattern.to_owned(), reason: reason.to_owned() };
        if pattern.is_empty() || pattern.len() > MAX_KEY_BYTES {
            return Err(bad("a pattern must have 1 to 512 bytes"));
        }
        for segment in pattern.split('/') {
            if segment.is_empty() {
                return Err(bad("pattern segments must not be empty"));
            }
            if !segment.bytes().all(|b| b == b'*' || is_key_byte(b)) {
                return Err(bad("a pattern may hold only the key characters and *"));
            }
        }
        Ok(KeyPattern(pattern.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `key` matches this pattern.
    pub fn matches(&self, key: &str) -> bool {
        // The literal part before the first `*` must start the key (but
        // for a last `/`: `a/**` matches `a`): most keys are told apart
        // there, without splitting.
        let literal = self.0.find('*').map_or(self.0.as_str(), |i| self.0[..i].trim_end_matches('/'));
        key.starts_with(literal) && match_segments(self.0.split('/'), key.split('/'))
    }
}

impl<'de> Deserialize<'de> for KeyPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Matches segment by segment without allocating (`**` backtracks).
fn match_segments(mut pattern: std::str::Split<'_, char>, mut key: std::str::Split<'_, char>) -> bool {
    loop {
        match pattern.next() {
            None => return key.next().is_none(),
            Some("**") => {
                let mut rest = key;
                loop {
                    if match_segments(pattern.clone(), rest.clone()) {
                        return true;
                    }
                    if rest.next().is_none() {
                        return false;
                    }
                }
            }
            Some(segment) => match key.next() {
                Some(k) if match_glob(segment.as_bytes(), k.as_bytes()) => {}
                _ => return false,
            },
        }
    }
}

/// `*` matches any run of bytes within a segment.
fn match_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && match_glob(rest, &text[1..]),
    }
}

/// Percent-encodes everything but the URL-unreserved characters, `/`
/// too: a key is one path segment, never mistaken for a sub-resource such
/// as `/history`, and an id cannot add segments.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The smallest string greater than every string starting with `prefix`,
/// for range scans; `None` when there is none (empty prefix).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_ids() {
        assert!(ContextId::parse("task-1").is_ok());
        assert!(ContextId::parse("a.b_c:d-e").is_ok());
        assert!(ContextId::parse(&"a".repeat(128)).is_ok());
        assert!(ContextId::parse(&"a".repeat(129)).is_err());
        assert!(ContextId::parse("").is_err());
        assert!(ContextId::parse("-a").is_err());
        assert!(ContextId::parse("a/b").is_err());
        assert!(ContextId::parse("a b").is_err());
    }

    #[test]
    fn keys() {
        assert!(EntryKey::parse("findings/apple-revenue").is_ok());
        assert!(EntryKey::parse("a/b.c~d:e@f_g").is_ok());
        assert!(EntryKey::parse("").is_err());
        assert!(EntryKey::parse("/a").is_err());
        assert!(EntryKey::parse("a/").is_err());
        assert!(EntryKey::parse("a//b").is_err());
        assert!(EntryKey::parse("a b").is_err());
        assert!(EntryKey::parse("a/é").is_err());
        assert!(EntryKey::parse(&"a".repeat(512)).is_ok());
        assert!(EntryKey::parse(&"a".repeat(513)).is_err());
    }

    #[test]
    fn patterns() {
        let p = KeyPattern::parse("plan/*").unwrap();
        assert!(p.matches("plan/a"));
        assert!(!p.matches("plan/a/b"));
        assert!(!p.matches("plan"));
        let p = KeyPattern::parse("plan/**").unwrap();
        assert!(p.matches("plan"));
        assert!(p.matches("plan/a/b"));
        assert!(!p.matches("planx/a"));
        let p = KeyPattern::parse("find*/x").unwrap();
        assert!(p.matches("findings/x"));
        assert!(!p.matches("fund/x"));
        assert!(KeyPattern::parse("order").unwrap().matches("order"));
        assert!(KeyPattern::parse("**").unwrap().matches("any/thing"));
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end(""), None);
    }
}
