//! The timer wheel of one I/O thread: a heap of deadlines.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::io_thread::IoCtx;

pub(crate) type TimerFn = Box<dyn FnMut(&mut IoCtx<'_>) + Send>;

/// Identifies a timer on its I/O thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

pub(crate) struct Timer {
    pub(crate) run: TimerFn,
    pub(crate) period: Option<Duration>,
    pub(crate) cancelled: Arc<AtomicBool>,
}

#[derive(Default)]
pub(crate) struct Timers {
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    timers: HashMap<u64, Timer>,
    next_id: u64,
    /// The timer running now (taken out of `timers`) and whether it cancelled itself.
    running: Option<(u64, bool)>,
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, timer: Timer) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        self.deadlines.push(Reverse((deadline, id)));
        self.timers.insert(id, timer);
        TimerId(id)
    }

    /// Cancel a timer, including the one running now (a periodic timer may cancel
    /// itself from its own callback).
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        if let Some((running, cancelled)) = &mut self.running
            && *running == id.0
        {
            *cancelled = true;
            return true;
        }
        let removed = self.timers.remove(&id.0).is_some();
        // Heap entries of cancelled timers go lazily, when they reach the top; a thread
        // that cancels far-off timers fast (re-armed deadlines) compacts the heap
        // instead of letting it grow with the cancel rate times the horizon.
        if self.deadlines.len() > 2 * self.timers.len() + 1024 {
            let live = &self.timers;
            self.deadlines.retain(|Reverse((_, id))| live.contains_key(id));
        }
        removed
    }

    /// Entries in the deadline heap, cancelled ones included.
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.deadlines.len()
    }

    pub(crate) fn start_running(&mut self, id: TimerId) {
        self.running = Some((id.0, false));
    }

    /// Done running; true if it cancelled itself meanwhile.
    pub(crate) fn finish_running(&mut self) -> bool {
        self.running.take().is_some_and(|(_, cancelled)| cancelled)
    }

    /// The earliest deadline still live, dropping cancelled entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.deadlines.peek().copied() {
            match self.timers.get(&id) {
                Some(timer) if !timer.cancelled.load(Ordering::Relaxed) => return Some(deadline),
                _ => {
                    self.deadlines.pop();
                    self.timers.remove(&id);
                }
            }
        }
        None
    }

    /// Take the next timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerId, Instant, Timer)> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let Reverse((deadline, id)) = self.deadlines.pop()?;
        self.timers.remove(&id).map(|timer| (TimerId(id), deadline, timer))
    }

    /// Put a periodic timer back for its next round, keeping its id.
    pub(crate) fn reschedule(&mut self, id: TimerId, deadline: Instant, timer: Timer) {
        self.deadlines.push(Reverse((deadline, id.0)));
        self.timers.insert(id.0, timer);
    }

    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_far_off_timers_do_not_pile_up() {
        let mut timers = Timers::default();
        let far = Instant::now() + Duration::from_secs(300);
        for _ in 0..100_000 {
            let id = timers.insert(
                far,
                Timer { run: Box::new(|_| {}), period: None, cancelled: Arc::new(AtomicBool::new(false)) },
            );
            timers.cancel(id);
        }
        assert_eq!(timers.len(), 0);
        assert!(timers.heap_len() <= 1024 + 1, "heap compacted: {}", timers.heap_len());
    }
}
