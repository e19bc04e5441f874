//! Run closures on the thread that owns the launcher, from any thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use parking_lot::RwLock;

use super::Queue;
use crate::completion::{Completion, completion};
use crate::hook::panic_message;
use crate::{Error, Result};

type Task = Box<dyn FnOnce() + Send>;

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Launcher>> = const { std::cell::RefCell::new(None) };
}

/// Executes functions on its owning thread. Other threads queue them with
/// [`apply`](Self::apply) / [`apply_async`](Self::apply_async); the owner runs them
/// when it calls [`serve`](Self::serve) or [`run_pending`](Self::run_pending). Called
/// on the owner itself, `apply` runs the function at once (no self-deadlock).
#[derive(Clone)]
pub struct Launcher {
    shared: Arc<Shared>,
}

struct Shared {
    owner: OnceLock<ThreadId>,
    queue: Queue<Task>,
    /// `false` once the owner stopped serving; queuing then fails instead of hanging.
    open: RwLock<bool>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher").field("owner", &self.shared.owner.get()).field("pending", &self.pending()).finish()
    }
}

impl Default for Launcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Launcher {
    /// A launcher owned by the calling thread.
    pub fn new() -> Self {
        let launcher = Self::unbound();
        launcher.bind();
        launcher
    }

    /// A launcher whose owner is the first thread that calls [`bind`](Self::bind).
    pub(crate) fn unbound() -> Self {
        Launcher {
            shared: Arc::new(Shared { owner: OnceLock::new(), queue: Queue::unbounded(), open: RwLock::new(true) }),
        }
    }

    pub(crate) fn bind(&self) {
        let _ = self.shared.owner.set(std::thread::current().id());
    }

    /// The calling thread's hub: the launcher of the `Thread` it is (bound when that
    /// thread started), or else one made for this thread on first use. A `HubTrigger`
    /// created without an explicit launcher runs on it, so the thread must serve it.
    pub fn current() -> Launcher {
        CURRENT.with(|current| current.borrow_mut().get_or_insert_with(Launcher::new).clone())
    }

    /// Make this launcher the calling thread's hub (see [`current`](Self::current)).
    pub(crate) fn make_current(&self) {
        CURRENT.with(|current| *current.borrow_mut() = Some(self.clone()));
    }

    /// True when called on the owning thread.
    pub fn is_owner(&self) -> bool {
        self.shared.owner.get() == Some(&std::thread::current().id())
    }

    /// False once the owner stopped serving for good.
    pub(crate) fn is_open(&self) -> bool {
        *self.shared.open.read()
    }

    /// Functions queued and not yet run.
    pub fn pending(&self) -> usize {
        self.shared.queue.len()
    }

    /// Queue `f` for the owner; the handle completes with its value, or with
    /// [`Error::Panicked`] if it panicked, or [`Error::Closed`] if the owner stopped.
    pub fn apply_async<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Completion<R> {
        let (completer, completion) = completion();
        let task: Task = Box::new(move || match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => completer.succeed(value),
            Err(payload) => completer.fail(Error::Panicked(panic_message(payload.as_ref()).into())),
        });
        let open = self.shared.open.read();
        if !*open {
            return Completion::ready(Err(Error::Closed("launcher")));
        }
        // An unbounded queue: putting never waits nor fails.
        let _ = self.shared.queue.try_put(task);
        completion
    }

    /// Run `f` on the owner and return its value; at once when called by the owner.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async), and [`Error::WouldDeadlock`] on an I/O thread.
    pub fn apply<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        if self.is_owner() {
            return catch_unwind(AssertUnwindSafe(f)).map_err(|p| Error::Panicked(panic_message(p.as_ref()).into()));
        }
        self.apply_async(f).wait()
    }

    /// As [`apply`](Self::apply), waiting at most `timeout` for the owner.
    ///
    /// # Errors
    /// [`Error::Timeout`] too (the function may still run later).
    pub fn apply_timeout<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
        timeout: Duration,
    ) -> Result<R> {
        if self.is_owner() {
            return self.apply(f);
        }
        self.apply_async(f).wait_timeout(timeout)
    }

    fn ensure_owner(&self) -> Result<()> {
        if self.is_owner() { Ok(()) } else { Err(Error::NotOwner) }
    }

    /// Run every queued function now (owner only). Returns how many ran.
    ///
    /// # Errors
    /// [`Error::NotOwner`] on another thread.
    pub fn run_pending(&self) -> Result<usize> {
        self.ensure_owner()?;
        let mut ran = 0;
        while let Some(task) = self.shared.queue.try_get() {
            task();
            ran += 1;
        }
        Ok(ran)
    }

    /// Wait up to `timeout` for work, then run everything queued (owner only).
    ///
    /// # Errors
    /// [`Error::NotOwner`], or [`Error::WouldDeadlock`] on an I/O thread.
    pub fn serve(&self, timeout: Duration) -> Result<usize> {
        self.ensure_owner()?;
        match self.shared.queue.get_timeout(timeout) {
            Ok(task) => {
                task();
                Ok(1 + self.run_pending()?)
            }
            Err(Error::Timeout(_)) => Ok(0),
            Err(err) => Err(err),
        }
    }

    /// Wait for work asynchronously and run everything queued (owner only).
    ///
    /// # Errors
    /// [`Error::NotOwner`] on another thread.
    pub async fn serve_async(&self) -> Result<usize> {
        self.ensure_owner()?;
        match self.shared.queue.get_async().await {
            Ok(task) => {
                task();
                Ok(1 + self.run_pending()?)
            }
            Err(_) => Ok(0),
        }
    }

    /// Wake a `serve` that is waiting, without giving it work.
    pub(crate) fn wake(&self) {
        let _ = self.shared.queue.try_put(Box::new(|| {}));
    }

    /// Refuse new work and abandon what is queued (its waiters get `Abandoned`).
    pub(crate) fn close(&self) {
        *self.shared.open.write() = false;
        while let Some(task) = self.shared.queue.try_get() {
            drop(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_from_other_thread_runs_on_owner() {
        let launcher = Launcher::new();
        let remote = launcher.clone();
        let owner = std::thread::current().id();
        let caller = std::thread::spawn(move || remote.apply(move || std::thread::current().id() == owner));
        while !caller.is_finished() {
            launcher.serve(Duration::from_millis(10)).unwrap();
        }
        assert!(caller.join().unwrap().unwrap());
    }

    #[test]
    fn apply_on_owner_runs_inline_and_reports_panics() {
        let launcher = Launcher::new();
        assert_eq!(launcher.apply(|| 5).unwrap(), 5);
        assert!(matches!(launcher.apply(|| -> u8 { panic!("bad") }), Err(Error::Panicked(m)) if &*m == "bad"));
    }

    #[test]
    fn only_the_owner_serves_and_closed_launcher_refuses() {
        let launcher = Launcher::new();
        let remote = launcher.clone();
        assert!(matches!(std::thread::spawn(move || remote.run_pending()).join().unwrap(), Err(Error::NotOwner)));
        let queued = launcher.apply_async(|| 1);
        launcher.close();
        assert!(matches!(queued.wait(), Err(Error::Abandoned)));
        assert!(matches!(launcher.apply_async(|| 1).wait(), Err(Error::Closed(_))));
    }
}
