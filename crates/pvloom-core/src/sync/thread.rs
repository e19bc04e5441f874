//! A worker thread other threads can hand functions to, with start/stop/join/get.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use super::{AsyncResult, Event, Launcher};
use crate::completion::Completion;
use crate::hook::{Containment, panic_message};
use crate::{Error, Result};

type MainFn<T> = Box<dyn FnOnce(&ThreadContext) -> Result<T> + Send>;

/// What a [`Thread`]'s main function uses to serve work and notice `stop`.
#[derive(Clone)]
pub struct ThreadContext {
    launcher: Launcher,
    stop: Arc<Event>,
}

impl ThreadContext {
    /// True once `stop` was requested.
    pub fn should_stop(&self) -> bool {
        self.stop.is_set()
    }

    /// Run functions handed to the thread, waiting up to `timeout` for the first.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread (never the case for a `Thread`).
    pub fn serve(&self, timeout: Duration) -> Result<usize> {
        self.launcher.serve(timeout)
    }

    /// Serve functions until `stop` is requested.
    ///
    /// # Errors
    /// As [`serve`](Self::serve).
    pub fn serve_until_stopped(&self) -> Result<()> {
        while !self.should_stop() {
            self.launcher.serve(Duration::from_secs(3600))?;
        }
        Ok(())
    }
}

struct Inner<T: Clone> {
    name: String,
    launcher: Launcher,
    stop: Arc<Event>,
    started: Event,
    result: AsyncResult<T>,
    main: Mutex<Option<MainFn<T>>>,
    join: Mutex<Option<JoinHandle<()>>>,
    id: std::sync::OnceLock<std::thread::ThreadId>,
}

/// An OS thread with a stop mechanism, a result, and a way for any thread to run
/// functions on it (`spawn`, `apply`, `apply_async`).
pub struct Thread<T: Clone + Send + 'static = ()> {
    inner: Arc<Inner<T>>,
}

impl<T: Clone + Send + 'static> Clone for Thread<T> {
    fn clone(&self) -> Self {
        Thread { inner: self.inner.clone() }
    }
}

impl Thread<()> {
    /// A thread whose main function serves handed-over functions until stopped.
    pub fn serving(name: impl Into<String>) -> Self {
        Thread::new(name, ThreadContext::serve_until_stopped)
    }
}

impl<T: Clone + Send + 'static> Thread<T> {
    /// A thread (not yet started) that will run `main`.
    pub fn new(name: impl Into<String>, main: impl FnOnce(&ThreadContext) -> Result<T> + Send + 'static) -> Self {
        Thread {
            inner: Arc::new(Inner {
                name: name.into(),
                launcher: Launcher::unbound(),
                stop: Arc::new(Event::new()),
                started: Event::new(),
                result: AsyncResult::new(),
                main: Mutex::new(Some(Box::new(main))),
                join: Mutex::new(None),
                id: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Start the thread; with `wait`, return once its main function runs.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] if started before; [`Error::Timeout`] if `wait` ran out.
    pub fn start(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        let main = self.inner.main.lock().take().ok_or(Error::IllegalTransition { from: "started", to: "started" })?;
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name(self.inner.name.clone())
            .spawn(move || {
                let _ = inner.id.set(std::thread::current().id());
                inner.launcher.bind();
                inner.launcher.make_current();
                inner.started.set();
                let ctx = ThreadContext { launcher: inner.launcher.clone(), stop: inner.stop.clone() };
                let result = catch_unwind(AssertUnwindSafe(|| main(&ctx)))
                    .unwrap_or_else(|p| Err(Error::Panicked(panic_message(p.as_ref()).into())));
                inner.launcher.close();
                let _ = inner.result.set_result(result);
            })
            .map_err(Error::failed)?;
        *self.inner.join.lock() = Some(handle);
        if wait {
            self.wait_started(timeout)?;
        }
        Ok(())
    }

    fn wait_started(&self, timeout: Option<Duration>) -> Result<()> {
        match timeout {
            None => self.inner.started.wait(),
            Some(t) => {
                if self.inner.started.wait_timeout(t)? {
                    Ok(())
                } else {
                    Err(Error::Timeout(t))
                }
            }
        }
    }

    /// Ask the main function to stop; with `wait`, join it.
    ///
    /// # Errors
    /// [`Error::Timeout`] if `wait` ran out.
    pub fn stop(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        self.inner.stop.set();
        self.inner.launcher.wake();
        if wait { self.join(timeout) } else { Ok(()) }
    }

    /// True when called on this thread itself.
    pub fn is_current(&self) -> bool {
        self.inner.id.get() == Some(&std::thread::current().id())
    }

    /// Wait until the main function returned.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it ran out; [`Error::WouldDeadlock`] on an I/O thread or
    /// on this thread itself (it would wait for its own end);
    /// [`Error::IllegalTransition`] before `start`.
    pub fn join(&self, timeout: Option<Duration>) -> Result<()> {
        if self.is_current() {
            return Err(Error::WouldDeadlock);
        }
        if self.inner.main.lock().is_some() {
            return Err(Error::IllegalTransition { from: "not started", to: "joined" });
        }
        if !self.inner.result.wait(timeout)? {
            return Err(Error::Timeout(timeout.unwrap_or_default()));
        }
        let handle = self.inner.join.lock().take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
        Ok(())
    }

    /// Join, then return the main function's value or error.
    ///
    /// # Errors
    /// The main function's error (or panic), or the join's error.
    pub fn get(&self, timeout: Option<Duration>) -> Result<T> {
        self.join(timeout)?;
        self.inner.result.get()
    }

    /// True between start and the end of the main function.
    pub fn is_alive(&self) -> bool {
        self.inner.started.is_set() && !self.inner.result.ready()
    }

    /// True once the main function returned.
    pub fn has_ended(&self) -> bool {
        self.inner.result.ready()
    }

    /// Run `f` on the thread, ignoring its result; a panic goes to the error hook.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.apply_async(move || Containment::global().run("sync.thread.spawn", f)).then(|_| {});
    }

    /// Run `f` on the thread and wait for its value.
    ///
    /// # Errors
    /// [`Error::Panicked`], [`Error::Closed`] once the thread ended, [`Error::WouldDeadlock`].
    pub fn apply<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        self.inner.launcher.apply(f)
    }

    /// Run `f` on the thread; the handle completes with its value.
    pub fn apply_async<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Completion<R> {
        self.inner.launcher.apply_async(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_thread_applies_and_stops() {
        let thread = Thread::serving("test-serving");
        let early = thread.apply_async(|| std::thread::current().name().map(str::to_owned));
        thread.start(true, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(early.wait().unwrap().as_deref(), Some("test-serving"));
        assert_eq!(thread.apply(|| 2 + 2).unwrap(), 4);
        assert!(thread.is_alive());
        thread.stop(true, Some(Duration::from_secs(5))).unwrap();
        assert!(!thread.is_alive());
        assert!(matches!(thread.apply(|| 1), Err(Error::Closed(_))));
        assert!(thread.start(false, None).is_err(), "a thread starts once");
    }

    #[test]
    fn get_returns_main_value_or_error() {
        let thread = Thread::new("test-value", |_| Ok(41 + 1));
        thread.start(false, None).unwrap();
        assert_eq!(thread.get(Some(Duration::from_secs(5))).unwrap(), 42);
        let failing = Thread::<u8>::new("test-panic", |_| panic!("main failed"));
        failing.start(false, None).unwrap();
        assert!(matches!(failing.get(None), Err(Error::Panicked(m)) if &*m == "main failed"));
    }

    #[test]
    fn join_times_out_while_running() {
        let thread = Thread::serving("test-join");
        thread.start(true, None).unwrap();
        assert!(thread.join(Some(Duration::from_millis(10))).unwrap_err().is_timeout());
        thread.stop(true, None).unwrap();
    }
}
