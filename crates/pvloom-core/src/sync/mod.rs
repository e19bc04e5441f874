//! Primitives shared by OS threads and async tasks alike — the BLISS list, in Rust
//! (`HubTrigger` included: a thread's hub is the `Launcher` it serves).
//!
//! Every blocking form refuses to run on an I/O thread ([`Error::WouldDeadlock`]) and
//! has a timeout form; every one has an `async` form. They are built on the one
//! waiting mechanism of pvloom, [`crate::signal`] (a thread parker for blocking
//! waiters, a waker for async ones, behind one `Signal`: the pattern flume uses).

mod async_result;
mod event;
mod hub_trigger;
mod launcher;
mod lock;
mod queue;
mod thread;
mod thread_resource;

pub use async_result::AsyncResult;
pub use event::Event;
pub use hub_trigger::HubTrigger;
pub use launcher::Launcher;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use queue::Queue;
pub use thread::{Thread, ThreadContext};
pub use thread_resource::ThreadResource;

use std::time::{Duration, Instant};

use crate::Error;
pub(crate) use crate::signal::WaitList as Notify;

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
