//! Per-agent request rate limits: a token bucket per agent on each node.
//! The admin token and `--auth off` are not limited (operators and local
//! experiments); agent tokens are. Also the open streams per agent, and
//! how many refused bearer tokens a node writes to the audit log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: `per_second` requests on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: f64,
}

/// The buckets of one node.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Takes one request of `agent`; when over the limit, how long to wait.
    pub(crate) fn take(&self, agent: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget buckets that have refilled: they carry no state.
            let full = |b: &Bucket| b.tokens + now.duration_since(b.at).as_secs_f64() * limit.per_second >= limit.burst;
            buckets.retain(|_, b| !full(b));
        }
        buckets.entry(agent.to_owned()).or_insert(Bucket { tokens: limit.burst, at: now }).take(limit, now)
    }
}

impl Bucket {
    /// Refills the bucket up to `now` and takes one token; when it is
    /// empty, how long until it holds one.
    fn take(&mut self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * limit.per_second).min(limit.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / limit.per_second))
        }
    }
}

/// Which refused bearer tokens a node writes to the audit log. Anyone can
/// send a refused token, so the records are limited by one bucket per node;
/// the refusals left out are counted, and the next record says how many
/// there were and since when.
#[derive(Debug)]
pub(crate) struct RefusalRecords {
    limit: RateLimit,
    state: Mutex<RefusalState>,
}

#[derive(Debug)]
struct RefusalState {
    bucket: Option<Bucket>,
    /// Refusals left out since the last record, and when the first was.
    left_out: Option<(u64, chrono::DateTime<chrono::Utc>)>,
}

/// Refusals left out of the audit log before one that is recorded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LeftOut {
    /// How many.
    pub(crate) count: u64,
    /// When the first of them was.
    pub(crate) since: chrono::DateTime<chrono::Utc>,
}

impl RefusalRecords {
    /// At most `limit` records.
    pub(crate) fn new(limit: RateLimit) -> Self {
        RefusalRecords { limit, state: Mutex::new(RefusalState { bucket: None, left_out: None }) }
    }

    /// Whether a refusal at `now` (`at` on the wall clock) is recorded:
    /// `Some` with the refusals left out before it, or `None` when it is
    /// left out too.
    pub(crate) fn admit(&self, now: Instant, at: chrono::DateTime<chrono::Utc>) -> Option<Option<LeftOut>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let limit = self.limit;
        let bucket = state.bucket.get_or_insert(Bucket { tokens: limit.burst, at: now });
        if bucket.take(limit, now).is_ok() {
            Some(state.left_out.take().map(|(count, since)| LeftOut { count, since }))
        } else {
            let left_out = state.left_out.get_or_insert((0, at));
            left_out.0 += 1;
            None
        }
    }
}

/// Open streams (SSE watches, WebSocket connections) per agent on a node.
#[derive(Debug, Default)]
pub(crate) struct StreamCounts {
    open: std::sync::Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream of an agent; dropping it (the stream ended) frees its
/// place.
#[derive(Debug)]
pub struct StreamGuard {
    open: std::sync::Arc<Mutex<HashMap<String, usize>>>,
    agent: String,
}

impl StreamCounts {
    /// Takes a place for a stream of `agent`, or `None` when it already
    /// has `max` open.
    pub(crate) fn open(&self, agent: &str, max: usize) -> Option<StreamGuard> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(agent.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(StreamGuard { open: self.open.clone(), agent: agent.to_owned() })
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.agent) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.agent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::default();
        let limit = RateLimit { per_second: 10.0, burst: 3.0 };
        let t = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("a", limit, t).is_ok());
        }
        let wait = limiter.take("a", limit, t).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert!(limiter.take("b", limit, t).is_ok(), "agents have their own buckets");
        assert!(limiter.take("a", limit, t + Duration::from_millis(100)).is_ok(), "refilled at the rate");
    }

    #[test]
    fn refusals_over_the_limit_are_counted_into_the_next_record() {
        let records = RefusalRecords::new(RateLimit { per_second: 1.0, burst: 2.0 });
        let t = Instant::now();
        let at = chrono::Utc::now();
        assert_eq!(records.admit(t, at), Some(None));
        assert_eq!(records.admit(t, at), Some(None));
        let later = at + chrono::Duration::milliseconds(10);
        assert_eq!(records.admit(t, later), None, "over the burst");
        assert_eq!(records.admit(t + Duration::from_millis(500), at), None, "half a token");
        assert_eq!(
            records.admit(t + Duration::from_secs(1), at),
            Some(Some(LeftOut { count: 2, since: later })),
            "refilled: recorded, with the two left out and when the first was"
        );
        assert_eq!(records.admit(t + Duration::from_secs(3), at), Some(None), "the count starts again");
    }

    #[test]
    fn streams_are_counted_until_they_end() {
        let counts = StreamCounts::default();
        let first = counts.open("a", 2).unwrap();
        let _second = counts.open("a", 2).unwrap();
        assert!(counts.open("a", 2).is_none());
        assert!(counts.open("b", 2).is_some());
        drop(first);
        assert!(counts.open("a", 2).is_some(), "an ended stream frees its place");
    }
}
