//! A flag that threads and tasks wait on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Notify, deadline_after};
use crate::{Error, Result};

/// Set once, wakes every waiter; stays set until cleared.
#[derive(Default)]
pub struct Event {
    flag: AtomicBool,
    notify: Notify,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}

impl Event {
    /// A clear event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the flag and wake every waiter.
    pub fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_all();
    }

    /// Clear the flag.
    pub fn clear(&self) {
        self.flag.store(false, Ordering::Release);
    }

    /// True while set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Wait until set.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn wait(&self) -> Result<()> {
        self.notify.wait_until(None, || self.is_set().then_some(()))
    }

    /// Wait at most `timeout`; `Ok(false)` when it ran out.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        match self.notify.wait_until(deadline_after(timeout), || self.is_set().then_some(())) {
            Ok(()) => Ok(true),
            Err(Error::Timeout(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Wait until set, asynchronously.
    pub async fn wait_async(&self) {
        self.notify.wait_async(|| self.is_set().then_some(())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io_guard::IoThreadGuard;
    use std::sync::Arc;

    #[test]
    fn set_wakes_waiter_and_clear_resets() {
        let event = Arc::new(Event::new());
        let waiter = {
            let event = event.clone();
            std::thread::spawn(move || event.wait_timeout(Duration::from_secs(5)).unwrap())
        };
        event.set();
        assert!(waiter.join().unwrap());
        event.clear();
        assert!(!event.wait_timeout(Duration::from_millis(10)).unwrap());
    }

    #[test]
    fn wait_on_io_thread_is_refused() {
        let event = Event::new();
        let _io = IoThreadGuard::enter();
        assert!(matches!(event.wait_timeout(Duration::from_secs(1)), Err(Error::WouldDeadlock)));
    }
}
