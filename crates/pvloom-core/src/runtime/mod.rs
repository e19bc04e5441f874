//! The runtime: a pool of I/O threads that own every socket and timer, plus the
//! delivery of user callbacks (`Inline` on those threads, or `Ordered` on workers).

mod io_thread;
mod stats;
mod timers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

pub use io_thread::{IoCtx, IoHandler, Keep};
pub use stats::ThreadStats;
pub use timers::TimerId;

use crate::clock::{SharedClock, SystemClock};
use crate::completion::{Completer, Completion, completion_with};
use crate::delivery::{Deliverer, Delivery, Job, WorkerPool, WorkerWrapper};
use crate::hook::{Containment, ErrorHook};
use crate::multipart::{PartSender, Parts, parts_with};
use crate::{Error, Result};
use io_thread::{LoopInputs, LoopState, Task, WAKER_TOKEN};
use stats::IoCounters;

/// Configures a [`Runtime`].
#[derive(Clone)]
pub struct RuntimeBuilder {
    io_threads: usize,
    delivery: Delivery,
    name: String,
    error_hook: Option<ErrorHook>,
    worker_wrapper: Option<WorkerWrapper>,
    clock: SharedClock,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            io_threads: 2,
            delivery: Delivery::Inline,
            name: "pvloom".into(),
            error_hook: None,
            worker_wrapper: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl RuntimeBuilder {
    /// Number of I/O threads (default 2, at least 1).
    pub fn io_threads(mut self, count: usize) -> Self {
        self.io_threads = count.max(1);
        self
    }

    /// Where callbacks run (default [`Delivery::Inline`]).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Prefix of thread names: `{name}-io-N`, `{name}-worker-N` (default `pvloom`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Receive failing callbacks here instead of the default `tracing` error.
    pub fn error_hook(mut self, hook: ErrorHook) -> Self {
        self.error_hook = Some(hook);
        self
    }

    /// Run each Ordered worker turn inside `wrapper` (see [`WorkerWrapper`]).
    pub fn worker_wrapper(mut self, wrapper: WorkerWrapper) -> Self {
        self.worker_wrapper = Some(wrapper);
        self
    }

    /// The clock timers, drivers and endpoints read (default: the system's). A
    /// [`ManualClock`](crate::clock::ManualClock) here makes timers fire only when
    /// time is advanced and the thread wakes; tests of protocol timing use
    /// `harness` (feature `harness`) instead.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Start the threads.
    ///
    /// # Errors
    /// If the OS refuses a thread or a poll instance.
    pub fn build(self) -> std::io::Result<Runtime> {
        let containment = Containment::new();
        if let Some(hook) = self.error_hook {
            containment.set_hook(hook);
        }
        let pool = match self.delivery {
            Delivery::Inline => None,
            Delivery::Ordered { workers, capacity, overflow } => Some(WorkerPool::with_wrapper(
                &self.name,
                workers,
                capacity,
                overflow,
                containment.clone(),
                self.worker_wrapper.clone(),
            )?),
        };
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(self.io_threads);
        let mut starts = Vec::with_capacity(self.io_threads);
        for index in 0..self.io_threads {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
            let registry = poll.registry().try_clone()?;
            let (tx, rx) = crossbeam_channel::unbounded();
            let counters = Arc::new(IoCounters::default());
            let wake_pending = Arc::new(AtomicBool::new(false));
            let name = format!("{}-io-{index}", self.name);
            let loop_id = io_thread::new_loop_id();
            threads.push(IoThread {
                loop_id,
                name: name.clone(),
                tasks: tx,
                waker,
                wake_pending: wake_pending.clone(),
                counters: counters.clone(),
                join: Mutex::new(None),
            });
            starts.push((
                LoopState {
                    index,
                    name,
                    registry,
                    handlers: slab::Slab::new(),
                    timers: timers::Timers::default(),
                    containment: containment.clone(),
                    counters,
                    runtime: std::sync::Weak::new(),
                    clock: self.clock.clone(),
                    deferred: Vec::new(),
                    read_buf: Vec::new(),
                },
                LoopInputs { loop_id, poll, tasks: rx, wake_pending, shutdown: shutdown.clone() },
            ));
        }
        let shared = Arc::new(Shared {
            threads,
            containment,
            pool,
            delivery: self.delivery,
            next_thread: AtomicUsize::new(0),
            shutdown,
            clock: self.clock,
        });
        for (mut state, inputs) in starts {
            state.runtime = Arc::downgrade(&shared);
            let thread = &shared.threads[state.index];
            let handle = std::thread::Builder::new()
                .name(state.name.clone())
                .spawn(move || io_thread::run_loop(state, inputs))?;
            *thread.join.lock() = Some(handle);
        }
        Ok(Runtime { handle: RuntimeHandle { shared } })
    }
}

struct IoThread {
    /// Tells this thread's loop apart from every other (see [`io_thread::send_local`]).
    loop_id: u64,
    name: String,
    tasks: Sender<Task>,
    waker: mio::Waker,
    wake_pending: Arc<AtomicBool>,
    counters: Arc<IoCounters>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl IoThread {
    fn send(&self, task: Task) -> Result<()> {
        // From the thread itself (a callback starting the next operation): its own queue,
        // without the channel's atomics or a wake-up of a poll it is not in.
        let Err(task) = io_thread::send_local(self.loop_id, task) else { return Ok(()) };
        self.tasks.send(task).map_err(|_| Error::Closed("runtime"))?;
        // Wake the poll only if no wake-up is pending already: a burst of tasks costs
        // one eventfd write, not one per task.
        if !self.wake_pending.swap(true, Ordering::SeqCst)
            && let Err(err) = self.waker.wake()
        {
            tracing::error!(thread = self.name, "waking the I/O thread failed: {err}");
        }
        Ok(())
    }
}

pub(crate) struct Shared {
    threads: Vec<IoThread>,
    containment: Containment,
    pool: Option<WorkerPool>,
    delivery: Delivery,
    next_thread: AtomicUsize,
    shutdown: Arc<AtomicBool>,
    clock: SharedClock,
}

/// The owner of a pool of I/O threads. Dropping it shuts the threads down and joins
/// them; [`RuntimeHandle`]s (cheap clones) may outlive it and then report `Closed`.
pub struct Runtime {
    handle: RuntimeHandle,
}

impl Runtime {
    /// A runtime with two I/O threads and `Inline` delivery.
    ///
    /// # Errors
    /// If the OS refuses a thread or a poll instance.
    pub fn new() -> std::io::Result<Self> {
        RuntimeBuilder::default().build()
    }

    /// Configure a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A cloneable handle for use from callbacks and other threads.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for Runtime {
    type Target = RuntimeHandle;
    fn deref(&self) -> &RuntimeHandle {
        &self.handle
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A cloneable handle to a runtime.
#[derive(Clone)]
pub struct RuntimeHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("io_threads", &self.shared.threads.len())
            .field("delivery", &self.shared.delivery)
            .finish()
    }
}

impl RuntimeHandle {
    /// Number of I/O threads.
    pub fn io_threads(&self) -> usize {
        self.shared.threads.len()
    }

    /// The delivery this runtime was built with.
    pub fn delivery(&self) -> Delivery {
        self.shared.delivery
    }

    /// Now, by this runtime's clock.
    pub fn now(&self) -> std::time::Instant {
        self.shared.clock.now()
    }

    /// True once [`shutdown`](Self::shutdown) started.
    pub fn is_shut_down(&self) -> bool {
        self.shared.shutdown.load(Ordering::Acquire)
    }

    /// Run `task` on I/O thread `index` (modulo the pool size).
    ///
    /// # Errors
    /// [`Error::Closed`] after shutdown.
    pub fn run_on(&self, index: usize, task: impl FnOnce(&mut IoCtx<'_>) + Send + 'static) -> Result<()> {
        if self.is_shut_down() {
            return Err(Error::Closed("runtime"));
        }
        let thread = &self.shared.threads[index % self.shared.threads.len()];
        thread.send(Box::new(task))
    }

    /// Run `task` on the next I/O thread in turn; returns the thread's index.
    ///
    /// # Errors
    /// [`Error::Closed`] after shutdown.
    pub fn run_on_any(&self, task: impl FnOnce(&mut IoCtx<'_>) + Send + 'static) -> Result<usize> {
        let index = self.shared.next_thread.fetch_add(1, Ordering::Relaxed) % self.shared.threads.len();
        self.run_on(index, task).map(|()| index)
    }

    /// The I/O thread with the fewest registered sockets (where a new connection goes).
    pub fn least_loaded_thread(&self) -> usize {
        let start = self.shared.next_thread.fetch_add(1, Ordering::Relaxed);
        let count = self.shared.threads.len();
        (0..count)
            .map(|offset| (start + offset) % count)
            .min_by_key(|&index| self.shared.threads[index].counters.handlers.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Run a plain callback on an I/O thread (Inline: it must not block).
    ///
    /// # Errors
    /// [`Error::Closed`] after shutdown.
    pub fn spawn(&self, callback: impl FnOnce() + Send + 'static) -> Result<()> {
        self.run_on_any(move |_| callback()).map(|_| ())
    }

    /// Run `f` on an I/O thread and complete the returned handle with its value: the
    /// smallest example of "non-blocking form plus a wait".
    pub fn submit<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Completion<T> {
        let (completer, completion) = self.completion("runtime.submit");
        let origin = "runtime.submit";
        let containment = self.containment().clone();
        let sent = self.run_on_any(move |_| match containment.run(origin, f) {
            Some(value) => completer.succeed(value),
            None => completer.fail(Error::Panicked("the submitted function panicked".into())),
        });
        match sent {
            Ok(_) => completion,
            Err(err) => Completion::ready(Err(err)),
        }
    }

    /// Run `f` once after `delay` on an I/O thread.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + Send + 'static) -> TimerHandle {
        let mut f = Some(f);
        self.add_timer(delay, None, move || {
            if let Some(f) = f.take() {
                f();
            }
        })
    }

    /// Run `f` every `period` on an I/O thread until the handle is cancelled.
    pub fn call_every(&self, period: Duration, f: impl FnMut() + Send + 'static) -> TimerHandle {
        self.add_timer(period, Some(period), f)
    }

    fn add_timer(
        &self,
        delay: Duration,
        period: Option<Duration>,
        mut f: impl FnMut() + Send + 'static,
    ) -> TimerHandle {
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let _ = self.run_on_any(move |ctx| {
            ctx.add_timer(delay, period, Box::new(move |_| f()), flag);
        });
        TimerHandle { cancelled }
    }

    /// A deliverer for one new source of callbacks, per this runtime's delivery.
    pub fn deliverer(&self) -> Deliverer {
        match &self.shared.pool {
            None => Deliverer::Inline(self.shared.containment.clone()),
            Some(pool) => Deliverer::Ordered(pool.source()),
        }
    }

    /// A deliverer for one new source with its own queue bound and overflow policy
    /// (Inline runtimes ignore both).
    pub fn deliverer_with(&self, capacity: usize, overflow: crate::delivery::Overflow) -> Deliverer {
        match &self.shared.pool {
            None => Deliverer::Inline(self.shared.containment.clone()),
            Some(pool) => Deliverer::Ordered(pool.source_with(capacity, overflow)),
        }
    }

    /// A one-shot pair whose `then` callback is delivered per this runtime's delivery.
    pub fn completion<T: Send + 'static>(&self, origin: &'static str) -> (Completer<T>, Completion<T>) {
        completion_with(self.deliverer(), origin)
    }

    /// A multi-part pair whose callback is delivered per this runtime's delivery.
    pub fn parts<T: Send + 'static>(&self, origin: &'static str) -> (PartSender<T>, Parts<T>) {
        parts_with(self.deliverer(), origin)
    }

    /// Deliver one callback through a deliverer from an I/O thread or anywhere.
    ///
    /// # Errors
    /// As [`Deliverer::deliver`].
    pub fn deliver(
        &self,
        deliverer: &Deliverer,
        origin: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        deliverer.deliver(Job::new(origin, f))
    }

    /// The containment (error hook and failure counter) of this runtime.
    pub fn containment(&self) -> &Containment {
        &self.shared.containment
    }

    /// Replace the error hook.
    pub fn set_error_hook(&self, hook: ErrorHook) {
        self.shared.containment.set_hook(hook);
    }

    /// Callback failures counted so far.
    pub fn callback_failures(&self) -> u64 {
        self.shared.containment.failures()
    }

    /// Statistics of every I/O thread.
    pub fn thread_stats(&self) -> Vec<ThreadStats> {
        self.shared
            .threads
            .iter()
            .enumerate()
            .map(|(index, thread)| thread.counters.snapshot(index, &thread.name))
            .collect()
    }

    /// Stop the I/O threads (their handlers see `closed`) and the workers, and join
    /// them. From an I/O thread or worker it does not join that thread.
    pub fn shutdown(&self) {
        if self.shared.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        for thread in &self.shared.threads {
            let _ = thread.waker.wake();
        }
        let me = std::thread::current().id();
        for thread in &self.shared.threads {
            let handle = thread.join.lock().take();
            if let Some(handle) = handle
                && handle.thread().id() != me
            {
                let _ = handle.join();
            }
        }
        if let Some(pool) = &self.shared.pool {
            pool.shutdown();
        }
    }
}

/// Cancels a timer made by [`RuntimeHandle::call_later`] or [`RuntimeHandle::call_every`].
#[derive(Debug, Clone)]
pub struct TimerHandle {
    cancelled: Arc<AtomicBool>,
}

impl TimerHandle {
    /// Stop the timer; a run already under way finishes.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}
