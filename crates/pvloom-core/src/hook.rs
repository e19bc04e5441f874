//! Containing a failing callback: catch it, report it, count it, carry on.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// What the error hook is told about a callback that failed.
#[derive(Debug, Clone, Copy)]
pub struct CallbackFailure<'a> {
    /// Which kind of callback failed (for example `"runtime.spawn"` or `"ca.monitor"`).
    pub origin: &'a str,
    /// The panic message, or the text of a Python exception.
    pub message: &'a str,
    /// The name of the thread it ran on.
    pub thread: &'a str,
}

/// A user-installed receiver of callback failures. It runs on the thread where the
/// callback failed (often an I/O thread), so it must not block.
pub type ErrorHook = Arc<dyn Fn(&CallbackFailure<'_>) + Send + Sync>;

/// Catches failing callbacks, hands them to the error hook and counts them.
///
/// Cheap to clone: clones share the hook and the counter. Every runtime has one; the
/// [`global`](Containment::global) one serves handles made outside any runtime.
#[derive(Clone)]
pub struct Containment {
    inner: Arc<Inner>,
}

struct Inner {
    hook: RwLock<ErrorHook>,
    failures: AtomicU64,
}

impl Default for Containment {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containment").field("failures", &self.failures()).finish()
    }
}

impl Containment {
    /// A containment with the default hook: a `tracing` error naming the origin.
    pub fn new() -> Self {
        Containment { inner: Arc::new(Inner { hook: RwLock::new(default_hook()), failures: AtomicU64::new(0) }) }
    }

    /// The process-wide containment used by handles created outside a runtime.
    pub fn global() -> &'static Containment {
        static GLOBAL: OnceLock<Containment> = OnceLock::new();
        GLOBAL.get_or_init(Containment::new)
    }

    /// Replace the error hook.
    pub fn set_hook(&self, hook: ErrorHook) {
        *self.inner.hook.write() = hook;
    }

    /// Put back the default hook.
    pub fn reset_hook(&self) {
        self.set_hook(default_hook());
    }

    /// How many callback failures were reported so far.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Run `f`, catching a panic. On a panic the hook is told and `None` is returned.
    #[inline]
    pub fn run<R>(&self, origin: &str, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => Some(value),
            Err(payload) => {
                self.report(origin, &panic_message(payload.as_ref()));
                None
            }
        }
    }

    /// Count a failure that was already reported elsewhere (Python prints its own
    /// traceback through `sys.unraisablehook`), without calling the hook.
    pub fn count_reported(&self) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Report a failure that was caught elsewhere (for example a Python exception).
    pub fn report(&self, origin: &str, message: &str) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        let thread = std::thread::current();
        let failure = CallbackFailure { origin, message, thread: thread.name().unwrap_or("<unnamed>") };
        let hook = self.inner.hook.read().clone();
        // A hook that panics itself must not take the I/O thread down either.
        if catch_unwind(AssertUnwindSafe(|| hook(&failure))).is_err() {
            tracing::error!(origin, "the error hook itself panicked while reporting: {message}");
        }
    }
}

fn default_hook() -> ErrorHook {
    Arc::new(|failure: &CallbackFailure<'_>| {
        tracing::error!(origin = failure.origin, thread = failure.thread, "callback failed: {}", failure.message);
    })
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn panics_are_caught_counted_and_reported() {
        let containment = Containment::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        containment.set_hook(Arc::new(move |f: &CallbackFailure<'_>| {
            sink.lock().push((f.origin.to_owned(), f.message.to_owned()));
        }));
        assert_eq!(containment.run("test.ok", || 7), Some(7));
        assert_eq!(containment.run("test.boom", || -> i32 { panic!("boom {}", 1) }), None);
        assert_eq!(containment.failures(), 1);
        assert_eq!(seen.lock().as_slice(), &[("test.boom".to_owned(), "boom 1".to_owned())]);
    }

    #[test]
    fn a_panicking_hook_is_contained_too() {
        let containment = Containment::new();
        containment.set_hook(Arc::new(|_: &CallbackFailure<'_>| panic!("hook fails")));
        assert_eq!(containment.run("test", || -> () { panic!("first") }), None);
        assert_eq!(containment.failures(), 1);
    }
}
