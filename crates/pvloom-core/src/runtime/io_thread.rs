//! One I/O thread: a mio poll loop over its sockets, its task queue and its timers.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use super::stats::{IoCounters, STATS_WINDOW};
use super::timers::{Timer, TimerId, Timers};
use super::{RuntimeHandle, Shared};
use crate::clock::SharedClock;
use crate::hook::Containment;
use crate::io_guard::IoThreadGuard;

/// The token of the poll's waker; handler tokens are slab keys, far below it.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// Shortest interval between two runs of a periodic timer.
const MIN_PERIOD: Duration = Duration::from_micros(100);

/// Tasks one loop turn runs before it polls sockets again, so a task flood cannot
/// starve the sockets.
const TASK_BUDGET: usize = 1024;

pub(crate) type Task = Box<dyn FnOnce(&mut IoCtx<'_>) + Send>;

/// Whether a handler stays registered after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep the handler and its socket.
    Yes,
    /// Deregister and drop the handler (and its socket).
    No,
}

/// Owns one socket (or several) on an I/O thread and reacts to its readiness.
///
/// A handler is only ever called on its I/O thread, one event at a time, so a
/// connection's events are handled in order without locks.
pub trait IoHandler: Any + Send {
    /// The socket registered under `token` is ready as `event` says.
    fn ready(&mut self, ctx: &mut IoCtx<'_>, token: Token, event: &mio::event::Event) -> Keep;

    /// Register this handler's socket(s) with the I/O thread's registry under `token`.
    ///
    /// # Errors
    /// The registry's error.
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()>;

    /// The handler is being dropped because the runtime shuts down or it returned
    /// [`Keep::No`]; the default does nothing.
    fn closed(&mut self, _ctx: &mut IoCtx<'_>) {}
}

pub(crate) struct LoopState {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) registry: Registry,
    pub(crate) handlers: Slab<Option<Box<dyn IoHandler>>>,
    pub(crate) timers: Timers,
    pub(crate) containment: Containment,
    pub(crate) counters: Arc<IoCounters>,
    pub(crate) runtime: Weak<Shared>,
    pub(crate) clock: SharedClock,
    /// Work put off to the next loop turn (after the next poll).
    pub(crate) deferred: Vec<Task>,
    /// The thread's one socket read buffer, lent to whichever connection reads.
    pub(crate) read_buf: Vec<u8>,
}

/// What an I/O thread offers to the code it runs: its sockets, its timers, its runtime.
pub struct IoCtx<'a> {
    state: &'a mut LoopState,
}

impl IoCtx<'_> {
    /// Borrow the thread's read buffer (at least `len` bytes): connections read into one
    /// buffer per thread instead of holding a buffer each, so ten thousand idle peers
    /// cost no read buffers. Give it back with [`return_read_buf`](Self::return_read_buf);
    /// a nested borrow gets a fresh buffer.
    pub fn take_read_buf(&mut self, len: usize) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.state.read_buf);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf
    }

    /// Return the buffer from [`take_read_buf`](Self::take_read_buf).
    pub fn return_read_buf(&mut self, buf: Vec<u8>) {
        if buf.len() > self.state.read_buf.len() {
            self.state.read_buf = buf;
        }
    }

    /// The index of this I/O thread in its runtime.
    pub fn thread_index(&self) -> usize {
        self.state.index
    }

    /// A handle to the runtime, `None` while it shuts down.
    pub fn runtime(&self) -> Option<RuntimeHandle> {
        self.state.runtime.upgrade().map(|shared| RuntimeHandle { shared })
    }

    /// Now, by the runtime's clock (what drivers hand their endpoints).
    pub fn now(&self) -> Instant {
        self.state.clock.now()
    }

    /// The containment that reports failing callbacks on this runtime.
    pub fn containment(&self) -> &Containment {
        &self.state.containment
    }

    /// Register a handler; it receives its socket's events from now on.
    ///
    /// # Errors
    /// The registry's error; the handler is dropped.
    pub fn register(&mut self, mut handler: Box<dyn IoHandler>) -> std::io::Result<Token> {
        let entry = self.state.handlers.vacant_entry();
        let token = Token(entry.key());
        handler.register(&self.state.registry, token)?;
        entry.insert(Some(handler));
        self.state.counters.handlers.store(self.state.handlers.len(), Ordering::Relaxed);
        Ok(token)
    }

    /// Change the interest of a source registered under `token`.
    ///
    /// # Errors
    /// The registry's error.
    pub fn reregister(
        &self,
        source: &mut impl mio::event::Source,
        token: Token,
        interest: Interest,
    ) -> std::io::Result<()> {
        self.state.registry.reregister(source, token, interest)
    }

    /// The registry of this thread's poll, for handlers managing their own sources.
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// Remove and return the handler under `token` (it is no longer called).
    pub fn deregister(&mut self, token: Token) -> Option<Box<dyn IoHandler>> {
        let handler = self.state.handlers.try_remove(token.0).flatten();
        self.state.counters.handlers.store(self.state.handlers.len(), Ordering::Relaxed);
        handler
    }

    /// The handler under `token` as its concrete type; `None` if absent, of another
    /// type, or currently running (a handler reaches itself through `&mut self`).
    pub fn handler_mut<H: IoHandler>(&mut self, token: Token) -> Option<&mut H> {
        let handler: &mut dyn IoHandler = self.state.handlers.get_mut(token.0)?.as_deref_mut()?;
        (handler as &mut dyn Any).downcast_mut::<H>()
    }

    /// Run `f` with the handler under `token` (of type `H`) and this context, as if
    /// the handler had an event: `Keep::No` from `f` drops the handler. `None` when
    /// there is no such handler (closed, another type, or running right now).
    pub fn with_handler<H: IoHandler, R>(
        &mut self,
        token: Token,
        f: impl FnOnce(&mut H, &mut IoCtx<'_>) -> (R, Keep),
    ) -> Option<R> {
        let slot = self.state.handlers.get_mut(token.0)?;
        let is_h = slot.as_deref().is_some_and(|h| (h as &dyn Any).is::<H>());
        if !is_h {
            return None;
        }
        let mut handler = slot.take()?;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let typed = (handler.as_mut() as &mut dyn Any).downcast_mut::<H>().expect("type checked above");
            f(typed, self)
        }));
        let (result, keep) = match outcome {
            Ok(done) => done,
            Err(panic) => {
                // The handler's state is unknown: close it as if it returned Keep::No
                // (its peers and waiters hear of it), then let the caller's containment
                // report the panic.
                self.state.handlers.try_remove(token.0);
                self.state.counters.handlers.store(self.state.handlers.len(), Ordering::Relaxed);
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.closed(self)));
                std::panic::resume_unwind(panic);
            }
        };
        match keep {
            Keep::Yes => {
                if let Some(slot) = self.state.handlers.get_mut(token.0) {
                    *slot = Some(handler);
                }
            }
            Keep::No => {
                self.state.handlers.try_remove(token.0);
                self.state.counters.handlers.store(self.state.handlers.len(), Ordering::Relaxed);
                handler.closed(self);
            }
        }
        Some(result)
    }

    /// Run `f` once after `delay` on this thread.
    pub fn call_later(&mut self, delay: Duration, f: impl FnOnce(&mut IoCtx<'_>) + Send + 'static) -> TimerId {
        let mut f = Some(f);
        self.add_timer(
            delay,
            None,
            Box::new(move |ctx| {
                if let Some(f) = f.take() {
                    f(ctx);
                }
            }),
            Arc::new(AtomicBool::new(false)),
        )
    }

    /// Run `f` on this thread in the next loop turn, after its sockets were polled
    /// again: a connection with more input waiting puts its next read here, so one busy
    /// peer gets one read budget per turn and the thread's other sockets and timers
    /// their share.
    pub fn defer(&mut self, f: impl FnOnce(&mut IoCtx<'_>) + Send + 'static) {
        self.state.deferred.push(Box::new(f));
    }

    /// Run `f` once at `deadline` (by the runtime's clock) on this thread.
    pub fn call_at(&mut self, deadline: Instant, f: impl FnOnce(&mut IoCtx<'_>) + Send + 'static) -> TimerId {
        let mut f = Some(f);
        let run: Box<dyn FnMut(&mut IoCtx<'_>) + Send> = Box::new(move |ctx| {
            if let Some(f) = f.take() {
                f(ctx);
            }
        });
        let id = self
            .state
            .timers
            .insert(deadline, Timer { run, period: None, cancelled: Arc::new(AtomicBool::new(false)) });
        self.state.counters.timers_pending.store(self.state.timers.len(), Ordering::Relaxed);
        id
    }

    /// Run `f` every `period` on this thread, first after one period.
    pub fn call_every(&mut self, period: Duration, f: impl FnMut(&mut IoCtx<'_>) + Send + 'static) -> TimerId {
        self.add_timer(period, Some(period), Box::new(f), Arc::new(AtomicBool::new(false)))
    }

    pub(crate) fn add_timer(
        &mut self,
        delay: Duration,
        period: Option<Duration>,
        run: Box<dyn FnMut(&mut IoCtx<'_>) + Send>,
        cancelled: Arc<AtomicBool>,
    ) -> TimerId {
        let deadline = self.state.clock.now() + delay;
        let id = self.state.timers.insert(deadline, Timer { run, period, cancelled });
        self.state.counters.timers_pending.store(self.state.timers.len(), Ordering::Relaxed);
        id
    }

    /// Cancel a timer of this thread. Returns false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        let cancelled = self.state.timers.cancel(id);
        self.state.counters.timers_pending.store(self.state.timers.len(), Ordering::Relaxed);
        cancelled
    }

    /// Timers pending on this thread.
    pub fn pending_timers(&self) -> usize {
        self.state.timers.len()
    }
}

pub(crate) struct LoopInputs {
    pub(crate) loop_id: u64,
    pub(crate) poll: Poll,
    pub(crate) tasks: Receiver<Task>,
    pub(crate) wake_pending: Arc<AtomicBool>,
    pub(crate) shutdown: Arc<AtomicBool>,
}

/// A fresh loop identity (never 0, which means "no loop on this thread").
pub(crate) fn new_loop_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// The loop this thread runs (0: none).
    static CURRENT_LOOP: Cell<u64> = const { Cell::new(0) };
    /// Tasks this thread sent to its own loop.
    static LOCAL_TASKS: RefCell<VecDeque<Task>> = const { RefCell::new(VecDeque::new()) };
}

/// Queue `task` on this thread's own loop if that loop is `loop_id`; otherwise hand it back.
pub(crate) fn send_local(loop_id: u64, task: Task) -> std::result::Result<(), Task> {
    if CURRENT_LOOP.with(Cell::get) != loop_id {
        return Err(task);
    }
    LOCAL_TASKS.with(|q| q.borrow_mut().push_back(task));
    Ok(())
}

fn next_local_task() -> Option<Task> {
    LOCAL_TASKS.with(|q| q.borrow_mut().pop_front())
}

fn local_tasks_pending() -> bool {
    LOCAL_TASKS.with(|q| !q.borrow().is_empty())
}

/// Marks the thread as running loop `id` until dropped; then drops what it queued itself.
struct CurrentLoop;

impl CurrentLoop {
    fn enter(id: u64) -> CurrentLoop {
        CURRENT_LOOP.with(|c| c.set(id));
        CurrentLoop
    }
}

impl Drop for CurrentLoop {
    fn drop(&mut self) {
        CURRENT_LOOP.with(|c| c.set(0));
        let left = LOCAL_TASKS.with(|q| std::mem::take(&mut *q.borrow_mut()));
        drop(left);
    }
}

pub(crate) fn run_loop(mut state: LoopState, inputs: LoopInputs) {
    let _io_thread = IoThreadGuard::enter();
    let LoopInputs { loop_id, mut poll, tasks, wake_pending, shutdown } = inputs;
    let _current = CurrentLoop::enter(loop_id);
    let mut events = Events::with_capacity(256);
    let mut window_start = Instant::now();
    let mut window_busy = Duration::ZERO;
    let mut more_tasks = false;
    loop {
        // Timers run on the runtime's clock; the stats window always on real time (a
        // manual clock ahead of it must not make the poll timeout zero).
        let window_end = window_start + STATS_WINDOW;
        let mut timeout = window_end.saturating_duration_since(Instant::now());
        if let Some(deadline) = state.timers.next_deadline() {
            timeout = timeout.min(deadline.saturating_duration_since(state.clock.now()));
        }
        if more_tasks || !state.deferred.is_empty() || local_tasks_pending() {
            timeout = Duration::ZERO;
        }
        if let Err(err) = poll.poll(&mut events, Some(timeout))
            && err.kind() != std::io::ErrorKind::Interrupted
        {
            tracing::error!(thread = state.name, "poll failed: {err}");
        }
        let busy_start = Instant::now();

        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                continue;
            }
            state.counters.events.fetch_add(1, Ordering::Relaxed);
            dispatch_event(&mut state, event);
        }

        for task in std::mem::take(&mut state.deferred) {
            state.counters.callbacks.fetch_add(1, Ordering::Relaxed);
            let containment = state.containment.clone();
            containment.run("runtime.deferred", || task(&mut IoCtx { state: &mut state }));
        }

        wake_pending.store(false, Ordering::SeqCst);
        more_tasks = false;
        // Tasks from other threads, then the ones this thread sent itself (those its
        // handlers' callbacks queued in this turn among them), within one budget.
        for budget_left in (0..TASK_BUDGET).rev() {
            let Some(task) = tasks.try_recv().ok().or_else(next_local_task) else { break };
            state.counters.callbacks.fetch_add(1, Ordering::Relaxed);
            let containment = state.containment.clone();
            containment.run("runtime.task", || task(&mut IoCtx { state: &mut state }));
            if budget_left == 0 {
                more_tasks = !tasks.is_empty() || local_tasks_pending();
            }
        }

        fire_due_timers(&mut state);

        let end = Instant::now();
        let busy = end - busy_start;
        window_busy += busy;
        state.counters.add_busy(busy);
        if end >= window_end {
            state.counters.publish_window(window_busy, end - window_start);
            window_start = end;
            window_busy = Duration::ZERO;
        }
        if shutdown.load(Ordering::Acquire) {
            break;
        }
    }
    close_all_handlers(&mut state);
}

fn dispatch_event(state: &mut LoopState, event: &mio::event::Event) {
    let token = event.token();
    let Some(slot) = state.handlers.get_mut(token.0) else { return };
    let Some(mut handler) = slot.take() else { return };
    state.counters.callbacks.fetch_add(1, Ordering::Relaxed);
    let containment = state.containment.clone();
    let keep = containment
        .run("runtime.io_handler", || handler.ready(&mut IoCtx { state }, token, event))
        // A handler that panicked is in an unknown state: drop it (its socket closes).
        .unwrap_or(Keep::No);
    match keep {
        Keep::Yes => {
            if let Some(slot) = state.handlers.get_mut(token.0) {
                *slot = Some(handler);
            }
        }
        Keep::No => {
            state.handlers.try_remove(token.0);
            state.counters.handlers.store(state.handlers.len(), Ordering::Relaxed);
            containment.run("runtime.io_handler.closed", || handler.closed(&mut IoCtx { state }));
        }
    }
}

fn fire_due_timers(state: &mut LoopState) {
    let now = state.clock.now();
    while let Some((id, deadline, mut timer)) = state.timers.pop_due(now) {
        state.counters.timers_fired.fetch_add(1, Ordering::Relaxed);
        state.counters.callbacks.fetch_add(1, Ordering::Relaxed);
        let containment = state.containment.clone();
        state.timers.start_running(id);
        containment.run("runtime.timer", || (timer.run)(&mut IoCtx { state }));
        let cancelled_itself = state.timers.finish_running();
        if let Some(period) = timer.period
            && !timer.cancelled.load(Ordering::Relaxed)
            && !cancelled_itself
        {
            // Keep the cadence, but never schedule into the past after a stall, and
            // never at `now` itself: a zero period must not spin this loop forever.
            let next = (deadline + period).max(now + MIN_PERIOD);
            state.timers.reschedule(id, next, timer);
        }
    }
    state.counters.timers_pending.store(state.timers.len(), Ordering::Relaxed);
}

fn close_all_handlers(state: &mut LoopState) {
    let tokens: Vec<usize> = state.handlers.iter().map(|(key, _)| key).collect();
    for key in tokens {
        if let Some(Some(mut handler)) = state.handlers.try_remove(key) {
            let containment = state.containment.clone();
            containment.run("runtime.io_handler.closed", || handler.closed(&mut IoCtx { state }));
        }
    }
    state.counters.handlers.store(0, Ordering::Relaxed);
}
