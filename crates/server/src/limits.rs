//! Per-agent request rate limits: a token bucket per agent on each node.
//! The admin token and `--auth off` are not limited (operators and local
//! experiments); agent tokens are.

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
        let bucket = buckets.entry(agent.to_owned()).or_insert(Bucket { tokens: limit.burst, at: now });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * limit.per_second).min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / limit.per_second))
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
