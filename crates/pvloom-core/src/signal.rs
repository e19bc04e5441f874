//! The one waiting mechanism behind every wait in pvloom, in flume's shape: a waiter
//! hands a [`Signal`] to whatever it waits on, and the producer fires it.
//!
//! - [`Signal`]: how a waiter is woken. [`ThreadSignal`] unparks a blocked thread (one
//!   futex wake, no mutex hand-over); [`WakerSignal`] wakes an async task.
//! - [`Wait`]: what is waited for: take the result if it is there, register a signal
//!   to be fired at the next change, withdraw it.
//! - [`block_until`]: the only blocking wait. It refuses to run on an I/O thread
//!   ([`Error::WouldDeadlock`]), may spin briefly before parking, and takes an optional
//!   deadline.
//! - [`AsyncWait`]: the same wait, polled by a future.
//! - [`WaitList`]: the waiter list of primitives that many wait on at once (Event,
//!   Lock, AsyncResult, ...), with [`notify_one`](WaitList::notify_one) and
//!   [`notify_all`](WaitList::notify_all), and its blocking and async waits.
//!
//! Completion and Parts have one waiter at most and keep its signal in their own state;
//! everything else waits on a [`WaitList`]. Either way the wait is [`block_until`] or
//! [`AsyncWait`].

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use parking_lot::Mutex;

use crate::io_guard::ensure_may_block;
use crate::{Error, Result};

/// Wakes one waiter. A registration is fired at most once; after the fire the producer
/// has forgotten it.
pub trait Signal: Send + Sync {
    /// Wake the waiter this signal belongs to.
    fn fire(&self);
}

/// Wakes a thread blocked in [`block_until`].
#[derive(Debug)]
pub struct ThreadSignal {
    thread: Thread,
    fired: AtomicBool,
}

impl ThreadSignal {
    /// A signal for the calling thread (the only thread that may [`park`](Self::park) on it).
    pub fn current() -> Arc<Self> {
        Arc::new(ThreadSignal { thread: std::thread::current(), fired: AtomicBool::new(false) })
    }

    /// True once fired.
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Park until fired or until `deadline` (`None`: no deadline); true if fired.
    /// Spurious unparks (a stale fire of an earlier signal, `Thread::unpark` by someone
    /// else) are absorbed here.
    pub fn park(&self, deadline: Option<Instant>) -> bool {
        debug_assert_eq!(self.thread.id(), std::thread::current().id(), "parked on another thread's signal");
        loop {
            if self.is_fired() {
                return true;
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return self.is_fired();
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

impl Signal for ThreadSignal {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Wakes an async task waiting through [`AsyncWait`].
#[derive(Debug)]
pub struct WakerSignal {
    waker: Mutex<Option<Waker>>,
    fired: AtomicBool,
}

impl WakerSignal {
    /// A signal that wakes `waker`.
    pub fn new(waker: Waker) -> Arc<Self> {
        Arc::new(WakerSignal { waker: Mutex::new(Some(waker)), fired: AtomicBool::new(false) })
    }

    /// True once fired.
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Make a later fire wake `waker` (the task may have moved); false if it fired already.
    pub fn update(&self, waker: &Waker) -> bool {
        let mut slot = self.waker.lock();
        if self.is_fired() {
            return false;
        }
        match &*slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        true
    }
}

impl Signal for WakerSignal {
    fn fire(&self) {
        let waker = {
            let mut slot = self.waker.lock();
            self.fired.store(true, Ordering::Release);
            slot.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Something a thread or a task waits for.
pub trait Wait {
    /// What the wait produces.
    type Output;

    /// The result if it is there now; never registers anything.
    fn try_take(&mut self) -> Option<Self::Output>;

    /// Arrange for `signal` to be fired at the next change that may let
    /// [`try_take`](Self::try_take) succeed, then take the result if it is already there,
    /// so that a change between the check and the registration is never lost. A fire
    /// removes the registration.
    fn register(&mut self, signal: Arc<dyn Signal>) -> Option<Self::Output>;

    /// Withdraw the last registration; false if it was fired (or never made).
    fn unregister(&mut self) -> bool;

    /// A waiter that was fired but leaves without its result hands the wake-up on
    /// (a released lock must wake somebody). Nothing by default.
    fn pass_on(&mut self) {}
}

/// How a blocking wait starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spin {
    /// Park at once.
    No,
    /// Spin and yield briefly first (crossbeam's `Backoff`), as crossbeam's channels do:
    /// a result a few hundred nanoseconds away is caught without a park and a wake-up.
    /// Then keep spinning for as long as this thread's recent waits say the result is
    /// near ([`AdaptiveSpin`]): a network round trip of tens of microseconds is caught
    /// without the park and the wake-up, which cost as much again.
    Backoff,
}

/// How long a thread spins before it parks, learnt from how long its waits took.
///
/// A wait's whole duration (from its start to its result, spun or parked) goes into a
/// moving average; the next wait spins for twice that, if it is within
/// [`MAX`](Self::MAX), or not at all. So a thread in a request/reply loop with a
/// peer on the same host spins through each round trip, and one whose waits are long
/// (a monitor, a timeout) parks at once and burns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveSpin {
    average: Duration,
}

impl AdaptiveSpin {
    /// The longest spin. A wake-up costs ~10–30 µs; spinning for longer than a few of
    /// them would cost more than it saves.
    pub const MAX: Duration = Duration::from_micros(200);

    /// A thread that has not waited yet: it spins for its first waits.
    pub const fn new() -> Self {
        AdaptiveSpin { average: Duration::from_micros(50) }
    }

    /// How long the next wait spins.
    pub fn budget(&self) -> Duration {
        let twice = self.average * 2;
        if twice <= Self::MAX { twice } else { Duration::ZERO }
    }

    /// A wait took `took`.
    pub fn observe(&mut self, took: Duration) {
        // Clamped, so that one very long wait does not keep the thread from spinning
        // for many short ones afterwards.
        let took = took.min(Self::MAX * 4);
        self.average = (self.average * 7 + took) / 8;
    }
}

impl Default for AdaptiveSpin {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static SPIN: Cell<AdaptiveSpin> = const { Cell::new(AdaptiveSpin::new()) };
}

/// Spin until `wait` has its result or `budget` passed.
fn spin_for<W: Wait>(wait: &mut W, budget: Duration) -> Option<W::Output> {
    if budget.is_zero() {
        return None;
    }
    let until = Instant::now() + budget;
    loop {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
        if let Some(value) = wait.try_take() {
            return Some(value);
        }
        if Instant::now() >= until {
            return None;
        }
    }
}

/// The one blocking wait: wait for `wait` until `deadline` (`None`: forever).
///
/// # Errors
/// [`Error::WouldDeadlock`] at once on an I/O thread; [`Error::Timeout`] with a zero
/// duration when the deadline passed (callers put their own timeout in it).
pub fn block_until<W: Wait>(wait: &mut W, deadline: Option<Instant>, spin: Spin) -> Result<W::Output> {
    ensure_may_block()?;
    if spin == Spin::Backoff {
        let started = Instant::now();
        let result = block_until_inner(wait, deadline, spin);
        SPIN.with(|s| {
            let mut learnt = s.get();
            learnt.observe(started.elapsed());
            s.set(learnt);
        });
        return result;
    }
    block_until_inner(wait, deadline, spin)
}

fn block_until_inner<W: Wait>(wait: &mut W, deadline: Option<Instant>, spin: Spin) -> Result<W::Output> {
    match spin {
        Spin::No => {
            if let Some(value) = wait.try_take() {
                return Ok(value);
            }
        }
        Spin::Backoff => {
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                if let Some(value) = wait.try_take() {
                    return Ok(value);
                }
                backoff.snooze();
            }
            let mut budget = SPIN.with(|s| s.get().budget());
            if let Some(deadline) = deadline {
                budget = budget.min(deadline.saturating_duration_since(Instant::now()));
            }
            if let Some(value) = spin_for(wait, budget) {
                return Ok(value);
            }
        }
    }
    loop {
        let signal = ThreadSignal::current();
        if let Some(value) = wait.register(signal.clone()) {
            // A wake-up that reached this registration meanwhile is not ours to keep.
            if !wait.unregister() {
                wait.pass_on();
            }
            return Ok(value);
        }
        if signal.park(deadline) {
            // Fired: the registration is gone. Take the result, or (another waiter was
            // faster) register again.
            if let Some(value) = wait.try_take() {
                return Ok(value);
            }
            continue;
        }
        let fired = !wait.unregister();
        if let Some(value) = wait.try_take() {
            return Ok(value);
        }
        if fired {
            wait.pass_on();
        }
        return Err(Error::Timeout(Duration::ZERO));
    }
}

/// The async form of [`block_until`]: a future keeps one and polls through it, and
/// calls [`cancel`](Self::cancel) when dropped unfinished.
#[derive(Debug, Default)]
pub struct AsyncWait {
    signal: Option<Arc<WakerSignal>>,
}

impl AsyncWait {
    /// Not waiting yet.
    pub const fn new() -> Self {
        AsyncWait { signal: None }
    }

    /// Poll `wait` for the task of `cx`.
    pub fn poll<W: Wait>(&mut self, cx: &mut Context<'_>, wait: &mut W) -> Poll<W::Output> {
        if let Some(signal) = self.signal.take()
            && signal.update(cx.waker())
        {
            // Still registered: polled for another reason, or the waker moved.
            if let Some(value) = wait.try_take() {
                if !wait.unregister() {
                    wait.pass_on();
                }
                return Poll::Ready(value);
            }
            self.signal = Some(signal);
            return Poll::Pending;
        }
        // Not registered, or fired (which removed the registration).
        if let Some(value) = wait.try_take() {
            return Poll::Ready(value);
        }
        let signal = WakerSignal::new(cx.waker().clone());
        if let Some(value) = wait.register(signal.clone()) {
            if !wait.unregister() {
                wait.pass_on();
            }
            return Poll::Ready(value);
        }
        self.signal = Some(signal);
        Poll::Pending
    }

    /// The future is dropped: withdraw its registration, handing on a wake-up it got
    /// but will never use.
    pub fn cancel<W: Wait>(&mut self, wait: &mut W) {
        if self.signal.take().is_some() && !wait.unregister() {
            wait.pass_on();
        }
    }
}

#[derive(Default)]
struct Waiters {
    next_id: u64,
    queue: VecDeque<(u64, Arc<dyn Signal>)>,
}

/// The waiters of a primitive many wait on, oldest first.
///
/// The producer changes the condition, then notifies; a waiter registers, then checks
/// the condition ([`Wait::register`]). A notification with nobody registered costs one
/// fence and one load.
#[derive(Default)]
pub struct WaitList {
    waiters: Mutex<Waiters>,
    len: AtomicUsize,
}

impl std::fmt::Debug for WaitList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitList").field("waiters", &self.len.load(Ordering::Relaxed)).finish()
    }
}

impl WaitList {
    /// Nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many wait now.
    pub fn waiters(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn insert(&self, signal: Arc<dyn Signal>) -> u64 {
        let id = {
            let mut waiters = self.waiters.lock();
            let id = waiters.next_id;
            waiters.next_id += 1;
            waiters.queue.push_back((id, signal));
            self.len.store(waiters.queue.len(), Ordering::SeqCst);
            id
        };
        // Pairs with the fence in `notify`: either the notifier sees this waiter, or
        // this waiter's check sees the notifier's change.
        fence(Ordering::SeqCst);
        id
    }

    fn remove(&self, id: u64) -> bool {
        let mut waiters = self.waiters.lock();
        match waiters.queue.iter().position(|(other, _)| *other == id) {
            Some(index) => {
                waiters.queue.remove(index);
                self.len.store(waiters.queue.len(), Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Wake the oldest waiter; true if there was one.
    pub fn notify_one(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.len.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let signal = {
            let mut waiters = self.waiters.lock();
            let signal = waiters.queue.pop_front();
            self.len.store(waiters.queue.len(), Ordering::SeqCst);
            signal
        };
        match signal {
            Some((_, signal)) => {
                signal.fire();
                true
            }
            None => false,
        }
    }

    /// Wake every waiter; how many there were.
    pub fn notify_all(&self) -> usize {
        fence(Ordering::SeqCst);
        if self.len.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        let queue = {
            let mut waiters = self.waiters.lock();
            self.len.store(0, Ordering::SeqCst);
            std::mem::take(&mut waiters.queue)
        };
        let count = queue.len();
        for (_, signal) in queue {
            signal.fire();
        }
        count
    }

    /// Block until `check` yields a value or `deadline` (`None`: never) passes.
    ///
    /// # Errors
    /// As [`block_until`].
    pub fn wait_until<T>(&self, deadline: Option<Instant>, check: impl FnMut() -> Option<T>) -> Result<T> {
        block_until(&mut ListWait { list: self, check, id: None }, deadline, Spin::No)
    }

    /// Wait until `check` yields a value, asynchronously.
    pub fn wait_async<T, F: FnMut() -> Option<T> + Unpin>(&self, check: F) -> WaitFuture<'_, F> {
        WaitFuture { wait: ListWait { list: self, check, id: None }, waiter: AsyncWait::new() }
    }
}

/// A [`Wait`] for `check` on a [`WaitList`].
struct ListWait<'a, F> {
    list: &'a WaitList,
    check: F,
    id: Option<u64>,
}

impl<T, F: FnMut() -> Option<T>> Wait for ListWait<'_, F> {
    type Output = T;

    fn try_take(&mut self) -> Option<T> {
        (self.check)()
    }

    fn register(&mut self, signal: Arc<dyn Signal>) -> Option<T> {
        self.id = Some(self.list.insert(signal));
        (self.check)()
    }

    fn unregister(&mut self) -> bool {
        // Ids are never reused, so a fired (removed) id is simply not found.
        self.id.take().is_some_and(|id| self.list.remove(id))
    }

    fn pass_on(&mut self) {
        self.list.notify_one();
    }
}

/// The future of [`WaitList::wait_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitFuture<'a, F> {
    wait: ListWait<'a, F>,
    waiter: AsyncWait,
}

impl<T, F: FnMut() -> Option<T> + Unpin> Future for WaitFuture<'_, F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        this.waiter.poll(cx, &mut this.wait)
    }
}

impl<F> Drop for WaitFuture<'_, F> {
    fn drop(&mut self) {
        // `cancel` needs `Wait`, which needs the closure's output type; do its work here.
        if self.waiter.signal.take().is_some() {
            let list = self.wait.list;
            if !self.wait.id.take().is_some_and(|id| list.remove(id)) {
                list.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    struct Flag {
        set: AtomicBool,
        list: WaitList,
    }

    impl Flag {
        fn new() -> Arc<Self> {
            Arc::new(Flag { set: AtomicBool::new(false), list: WaitList::new() })
        }
        fn set(&self) {
            self.set.store(true, Ordering::Release);
            self.list.notify_all();
        }
        fn check(&self) -> Option<()> {
            self.set.load(Ordering::Acquire).then_some(())
        }
        fn wait(&self, timeout: Option<Duration>) -> Result<()> {
            self.list.wait_until(timeout.map(|t| Instant::now() + t), || self.check())
        }
    }

    #[test]
    fn adaptive_spin_follows_short_waits_and_stops_for_long_ones() {
        let us = Duration::from_micros;
        let mut spin = AdaptiveSpin::new();
        assert_eq!(spin.budget(), us(100), "a fresh thread spins for its first waits");
        for _ in 0..64 {
            spin.observe(us(40));
        }
        let budget = spin.budget();
        assert!(budget >= us(78) && budget <= us(82), "round trips of 40 us: spin ~80, got {budget:?}");
        for _ in 0..16 {
            spin.observe(Duration::from_secs(1));
        }
        assert_eq!(spin.budget(), Duration::ZERO, "long waits: park at once");
        // One long wait among short ones does not stop the spinning for long.
        for _ in 0..64 {
            spin.observe(us(20));
        }
        spin.observe(Duration::from_secs(5));
        assert_eq!(spin.budget(), Duration::ZERO);
        spin.observe(us(20));
        spin.observe(us(20));
        spin.observe(us(20));
        assert!(spin.budget() > Duration::ZERO, "clamped: three short waits bring it back, got {:?}", spin.budget());
    }

    #[test]
    fn thread_signal_fired_before_park_returns_at_once() {
        let signal = ThreadSignal::current();
        signal.fire();
        let start = Instant::now();
        assert!(signal.park(Some(Instant::now() + Duration::from_secs(5))));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn wake_before_wait() {
        let flag = Flag::new();
        flag.set();
        let start = Instant::now();
        flag.wait(Some(Duration::from_secs(5))).unwrap();
        flag.wait(None).unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(flag.list.waiters(), 0);
    }

    #[test]
    fn wake_during_wait() {
        let flag = Flag::new();
        let waiter = {
            let flag = flag.clone();
            std::thread::spawn(move || flag.wait(Some(Duration::from_secs(10))))
        };
        while flag.list.waiters() == 0 {
            std::thread::yield_now();
        }
        flag.set();
        waiter.join().unwrap().unwrap();
        assert_eq!(flag.list.waiters(), 0);
    }

    #[test]
    fn timeout_returns_and_withdraws_the_waiter() {
        let flag = Flag::new();
        let start = Instant::now();
        let err = flag.wait(Some(Duration::from_millis(20))).unwrap_err();
        assert!(err.is_timeout());
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(flag.list.waiters(), 0);
    }

    #[test]
    fn would_deadlock_on_an_io_thread() {
        let runtime = Runtime::new().unwrap();
        let (tx, rx) = mpsc::channel();
        runtime
            .spawn(move || {
                let flag = Flag::new();
                let start = Instant::now();
                let outcome = flag.wait(Some(Duration::from_secs(5)));
                let forever = flag.wait(None);
                tx.send((outcome, forever, start.elapsed())).unwrap();
            })
            .unwrap();
        let (outcome, forever, elapsed) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(outcome, Err(Error::WouldDeadlock)));
        assert!(matches!(forever, Err(Error::WouldDeadlock)));
        assert!(elapsed < Duration::from_millis(50), "refused at once, took {elapsed:?}");
    }

    #[test]
    fn async_wake() {
        let flag = Flag::new();
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                while flag.list.waiters() == 0 {
                    std::thread::yield_now();
                }
                flag.set();
            })
        };
        futures::executor::block_on(flag.list.wait_async(|| flag.check()));
        setter.join().unwrap();
        assert_eq!(flag.list.waiters(), 0);
    }

    #[test]
    fn many_waiters_all_woken() {
        let flag = Flag::new();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let flag = flag.clone();
                std::thread::spawn(move || flag.wait(Some(Duration::from_secs(10))))
            })
            .collect();
        let pool = futures::executor::ThreadPool::builder().pool_size(2).create().unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let flag = flag.clone();
                let (tx, rx) = mpsc::channel();
                pool.spawn_ok(async move {
                    flag.list.wait_async(|| flag.check()).await;
                    tx.send(()).unwrap();
                });
                rx
            })
            .collect();
        while flag.list.waiters() < 16 {
            std::thread::yield_now();
        }
        // A wake-up with nothing set: everybody re-checks and registers again.
        assert_eq!(flag.list.notify_all(), 16);
        while flag.list.waiters() < 16 {
            std::thread::yield_now();
        }
        flag.set();
        for thread in threads {
            thread.join().unwrap().unwrap();
        }
        for task in tasks {
            task.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }

    /// A counting semaphore on a WaitList: `notify_one` per permit.
    struct Permits {
        free: AtomicUsize,
        list: WaitList,
    }

    impl Permits {
        fn take(&self) -> Option<()> {
            self.free.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok().map(|_| ())
        }
        fn give(&self) {
            self.free.fetch_add(1, Ordering::AcqRel);
            self.list.notify_one();
        }
    }

    #[test]
    fn notify_one_hands_each_permit_to_one_waiter() {
        let permits = Arc::new(Permits { free: AtomicUsize::new(0), list: WaitList::new() });
        let done = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (permits, done) = (permits.clone(), done.clone());
                std::thread::spawn(move || {
                    permits.list.wait_until(Some(Instant::now() + Duration::from_secs(10)), || permits.take()).unwrap();
                    done.fetch_add(1, Ordering::AcqRel);
                })
            })
            .collect();
        for given in 1..=6 {
            permits.give();
            let deadline = Instant::now() + Duration::from_secs(10);
            while done.load(Ordering::Acquire) < given {
                assert!(Instant::now() < deadline, "permit {given} not taken");
                std::thread::yield_now();
            }
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(done.load(Ordering::Acquire), 6);
    }

    #[test]
    fn dropped_future_hands_its_wake_up_on() {
        let permits = Permits { free: AtomicUsize::new(0), list: WaitList::new() };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(permits.list.wait_async(|| permits.take()));
        let mut second = Box::pin(permits.list.wait_async(|| permits.take()));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        permits.give(); // fires `first`, which goes away without taking it
        drop(first);
        assert_eq!(permits.list.waiters(), 0, "the wake-up went on to `second`");
        assert!(second.as_mut().poll(&mut cx).is_ready());
    }

    /// A wake-up that reaches a waiter which then finds its value on its own is
    /// handed on to the next waiter, never lost.
    #[test]
    fn a_wake_up_taken_by_a_waiter_that_needed_none_is_passed_on() {
        let permits = Permits { free: AtomicUsize::new(0), list: WaitList::new() };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut d = Box::pin(permits.list.wait_async(|| permits.take()));
        let d_ptr: *mut _ = &mut d;
        let mut calls = 0;
        let mut b = Box::pin(permits.list.wait_async(|| {
            calls += 1;
            if calls == 1 {
                return None; // B finds nothing and registers.
            }
            // While B registers: X arrives unseen (nobody waited yet), B's re-check takes
            // it, D registers, and Y's notify_one picks B, the oldest waiter.
            permits.free.fetch_add(1, Ordering::AcqRel);
            let got = permits.take();
            let mut cx2 = Context::from_waker(&waker);
            // SAFETY: D is a distinct pinned future; nothing else touches it meanwhile.
            assert!(unsafe { (*d_ptr).as_mut() }.poll(&mut cx2).is_pending());
            permits.give();
            got
        }));
        assert!(b.as_mut().poll(&mut cx).is_ready());
        drop(b);
        assert_eq!(permits.list.waiters(), 0, "B handed Y's wake-up on to D");
        assert!(d.as_mut().poll(&mut cx).is_ready(), "D takes Y");
    }
}
