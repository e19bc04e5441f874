//! Knowing, cheaply, whether the current thread is one of pvloom's I/O threads.
//!
//! A blocking wait on an I/O thread waits for an event that only that thread could
//! deliver: a silent deadlock in LDMS, a panic in tokio. pvloom refuses it with
//! [`Error::WouldDeadlock`] instead. The marker is a
//! thread-local flag set by an RAII guard around each I/O thread's loop, as tokio does.

use std::cell::Cell;

use crate::{Error, Result};

thread_local! {
    static ON_IO_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as an I/O thread for as long as it lives.
///
/// Nested guards restore the previous state on drop, so a guard can also be used to
/// run a piece of code "as if on an I/O thread" in tests.
#[must_use = "the marker is removed when the guard is dropped"]
pub struct IoThreadGuard {
    previous: bool,
    // Not Send: the guard must be dropped on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl IoThreadGuard {
    /// Mark the current thread.
    pub fn enter() -> Self {
        let previous = ON_IO_THREAD.with(|flag| flag.replace(true));
        IoThreadGuard { previous, _not_send: std::marker::PhantomData }
    }
}

impl Drop for IoThreadGuard {
    fn drop(&mut self) {
        ON_IO_THREAD.with(|flag| flag.set(self.previous));
    }
}

/// True when called on a pvloom I/O thread (including from an `Inline` callback).
pub fn is_io_thread() -> bool {
    ON_IO_THREAD.with(Cell::get)
}

/// Every blocking wait calls this first.
///
/// # Errors
/// [`Error::WouldDeadlock`] on an I/O thread.
#[inline]
pub fn ensure_may_block() -> Result<()> {
    if is_io_thread() { Err(Error::WouldDeadlock) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_sets_and_restores_marker() {
        assert!(!is_io_thread());
        {
            let _outer = IoThreadGuard::enter();
            assert!(is_io_thread());
            assert!(matches!(ensure_may_block(), Err(Error::WouldDeadlock)));
            {
                let _inner = IoThreadGuard::enter();
                assert!(is_io_thread());
            }
            assert!(is_io_thread());
        }
        assert!(!is_io_thread());
        assert!(ensure_may_block().is_ok());
    }

    #[test]
    fn marker_is_per_thread() {
        let _guard = IoThreadGuard::enter();
        std::thread::spawn(|| assert!(!is_io_thread())).join().unwrap();
    }
}
