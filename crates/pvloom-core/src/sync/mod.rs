//! Primitives shared by OS threads and async tasks alike — the BLISS list, in Rust.
//!
//! Every blocking form refuses to run on an I/O thread ([`Error::WouldDeadlock`]) and
//! has a timeout form; every one has an `async` form. They are built on one waiting
//! mechanism ([`event_listener`]: a thread parker for blocking waiters, a waker for
//! async ones), the pattern flume uses.

mod async_result;
mod event;
mod launcher;
mod lock;
mod queue;
mod thread;
mod thread_resource;

pub use async_result::AsyncResult;
pub use event::Event;
pub use launcher::Launcher;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use queue::Queue;
pub use thread::{Thread, ThreadContext};
pub use thread_resource::ThreadResource;

use std::time::{Duration, Instant};

use event_listener::{Event as Notify, Listener};

use crate::io_guard::ensure_may_block;
use crate::{Error, Result};

/// Block until `check` yields a value or `deadline` passes.
///
/// The listener is registered before the second check, so a notification between the
/// check and the wait is never lost.
pub(crate) fn block_until<T>(
    notify: &Notify,
    deadline: Option<Instant>,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    ensure_may_block()?;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        let listener = notify.listen();
        if let Some(value) = check() {
            return Ok(value);
        }
        match deadline {
            None => listener.wait(),
            Some(deadline) => {
                if listener.wait_deadline(deadline).is_none() {
                    return check().ok_or(Error::Timeout(Duration::ZERO));
                }
            }
        }
    }
}

/// The async form of [`block_until`] without a deadline.
pub(crate) async fn wait_async<T>(notify: &Notify, mut check: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(value) = check() {
            return value;
        }
        let listener = notify.listen();
        if let Some(value) = check() {
            return value;
        }
        listener.await;
    }
}

/// `Some(now + timeout)`, or `None` (no deadline) for a timeout too large to add.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Replace the placeholder duration of a timeout error with the caller's timeout.
pub(crate) fn name_timeout(err: Error, timeout: Duration) -> Error {
    match err {
        Error::Timeout(_) => Error::Timeout(timeout),
        other => other,
    }
}
