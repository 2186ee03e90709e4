//! The store's clock. Every time the store stamps (commits, leases, lock
//! and entry expiries, audit records) or compares against (hiding expired
//! entries) comes from the [`Clock`] it was opened with: the wall clock in
//! a server, a [`ManualClock`] in tests, which then run without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DurationRound, Utc};
use ctxmesh_core::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time, at the precision the store keeps (microseconds),
    /// so that what a write returns equals what a later read returns.
    fn now(&self) -> Timestamp;
}

/// A shared clock, as the stores hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate(Utc::now())
    }
}

/// The wall clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: [`ManualClock::advance`] and
/// [`ManualClock::set`]. Clones share one time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock standing at the current wall-clock time.
    pub fn new() -> Self {
        Self::at(Utc::now())
    }

    /// A clock standing at `at`.
    pub fn at(at: Timestamp) -> Self {
        ManualClock { now: Arc::new(Mutex::new(truncate(at))) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.lock();
        *now = truncate(*now + by);
    }

    /// Moves the clock to `at` (forward or back).
    pub fn set(&self, at: Timestamp) {
        *self.lock() = truncate(at);
    }

    /// This clock, shared, for a store to use.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

fn truncate(t: Timestamp) -> Timestamp {
    t.duration_trunc(chrono::Duration::microseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start, "it does not move by itself");
        let shared = clock.shared();
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(shared.now(), start + chrono::Duration::seconds(30));
        clock.set(start);
        assert_eq!(shared.now(), start);
    }

    #[test]
    fn times_are_kept_to_the_microsecond() {
        let clock = ManualClock::at(Utc::now());
        assert_eq!(clock.now().timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1000, 0);
    }
}
