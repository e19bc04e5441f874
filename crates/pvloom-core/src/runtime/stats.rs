//! Per-I/O-thread statistics, readable from any thread (LDMS calls them thread stats).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How long one busy-fraction window lasts.
pub(crate) const STATS_WINDOW: Duration = Duration::from_secs(1);

/// Counters one I/O thread updates and anyone may read.
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub(crate) events: AtomicU64,
    pub(crate) callbacks: AtomicU64,
    pub(crate) timers_fired: AtomicU64,
    pub(crate) handlers: AtomicUsize,
    pub(crate) timers_pending: AtomicUsize,
    /// Busy fraction of the last completed window, in millionths.
    pub(crate) busy_ppm: AtomicU64,
    /// Total busy time since start, in nanoseconds.
    pub(crate) busy_ns: AtomicU64,
}

impl IoCounters {
    pub(crate) fn publish_window(&self, busy: Duration, window: Duration) {
        let ppm = (busy.as_nanos().saturating_mul(1_000_000) / window.as_nanos().max(1)).min(1_000_000);
        self.busy_ppm.store(ppm as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_busy(&self, busy: Duration) {
        self.busy_ns.fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, index: usize, name: &str) -> ThreadStats {
        ThreadStats {
            index,
            name: name.to_owned(),
            busy_fraction: self.busy_ppm.load(Ordering::Relaxed) as f64 / 1e6,
            busy_total: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
            events: self.events.load(Ordering::Relaxed),
            callbacks: self.callbacks.load(Ordering::Relaxed),
            timers_fired: self.timers_fired.load(Ordering::Relaxed),
            handlers: self.handlers.load(Ordering::Relaxed),
            timers_pending: self.timers_pending.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one I/O thread's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadStats {
    /// The thread's index in the pool.
    pub index: usize,
    /// The thread's name (`pvloom-io-N`).
    pub name: String,
    /// Fraction of the last one-second window spent working rather than waiting (0..=1).
    pub busy_fraction: f64,
    /// Time spent working since the thread started.
    pub busy_total: Duration,
    /// Socket readiness events handled.
    pub events: u64,
    /// Callbacks, tasks and timer functions run.
    pub callbacks: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Sockets registered now.
    pub handlers: usize,
    /// Timers armed on the thread (protocol deadlines, periodic work).
    pub timers_pending: usize,
}
