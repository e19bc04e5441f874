//! The time source that runtimes, drivers and tests read through.
//!
//! Protocol state machines never read a clock: they are handed `now`. Whoever drives
//! them reads it here, so a test can substitute a [`ManualClock`] and step virtual
//! time instead of sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A source of `now`.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The operating system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: virtual time for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the real `Instant::now()` of its creation.
    pub fn new() -> Self {
        ManualClock { now: Arc::new(Mutex::new(Instant::now())) }
    }

    /// Move time forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.now.lock() += by;
    }

    /// Move time forward to `to` (never backwards).
    pub fn advance_to(&self, to: Instant) {
        let mut now = self.now.lock();
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock()
    }
}

/// A shared clock, as runtimes hold it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::new();
        let start = clock.now();
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), start + Duration::from_secs(3));
        clock.advance_to(start);
        assert_eq!(clock.now(), start + Duration::from_secs(3), "never backwards");
        let copy = clock.clone();
        copy.advance(Duration::from_millis(1));
        assert_eq!(clock.now(), start + Duration::from_millis(3001), "clones share one time");
    }
}
