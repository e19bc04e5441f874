//! Multi-part results: operations that answer in several parts (LDMS dir and lookup of
//! many sets, update with `MORE`, a CA search answered by many servers).
//!
//! The producer sends each part with a `more` flag; the last part has `more == false`.
//! The caller either registers a callback that receives every part in order
//! ([`Parts::on_part`], non-blocking), or collects them all ([`Parts::collect`] and
//! friends, the blocking and async forms of the same path).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::delivery::{Deliverer, Job};
use crate::signal::{AsyncWait, Signal, Spin, Wait, block_until};
use crate::{Error, Result};

type PartCallback<T> = Arc<Mutex<Box<dyn FnMut(Result<T>, bool) + Send>>>;

enum Item<T> {
    Part(T, bool),
    Failed(Error),
}

struct State<T> {
    items: VecDeque<Item<T>>,
    finished: bool,
    sink: Option<PartCallback<T>>,
    delivering: bool,
    /// The collector's signal (a blocked thread or an awaiting task), fired when the
    /// last part or an error arrives.
    waiter: Option<Arc<dyn Signal>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    deliverer: Deliverer,
    origin: &'static str,
}

/// The producer's side. Dropping it before the last part fails the operation with
/// [`Error::Abandoned`].
pub struct PartSender<T: Send + 'static> {
    shared: Arc<Shared<T>>,
}

/// The caller's side of a multi-part operation.
#[must_use = "parts do nothing unless collected or given a callback"]
pub struct Parts<T: Send + 'static> {
    shared: Arc<Shared<T>>,
}

/// A linked pair whose callback runs inline (contained by the global containment).
pub fn parts<T: Send + 'static>() -> (PartSender<T>, Parts<T>) {
    parts_with(Deliverer::inline(), "parts.callback")
}

/// A linked pair whose callback is delivered by `deliverer`.
pub fn parts_with<T: Send + 'static>(deliverer: Deliverer, origin: &'static str) -> (PartSender<T>, Parts<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            finished: false,
            sink: None,
            delivering: false,
            waiter: None,
        }),
        deliverer,
        origin,
    });
    (PartSender { shared: shared.clone() }, Parts { shared })
}

impl<T: Send + 'static> PartSender<T> {
    /// Send one part; `more == false` marks the last one. Parts after the last are ignored.
    pub fn send(&self, part: T, more: bool) {
        self.push(Item::Part(part, more));
    }

    /// End the operation with an error (after any parts already sent).
    pub fn fail(&self, error: Error) {
        self.push(Item::Failed(error));
    }

    /// True once the last part or an error was sent.
    pub fn is_finished(&self) -> bool {
        self.shared.state.lock().finished
    }

    fn push(&self, item: Item<T>) {
        let shared = &self.shared;
        let mut state = shared.state.lock();
        if state.finished {
            return;
        }
        state.finished = matches!(item, Item::Failed(_) | Item::Part(_, false));
        state.items.push_back(item);
        match state.sink.clone() {
            None => {
                let waiter = if state.finished { state.waiter.take() } else { None };
                drop(state);
                if let Some(waiter) = waiter {
                    waiter.fire();
                }
            }
            Some(sink) => deliver_pending(shared, state, &sink),
        }
    }
}

/// Hand queued items to the callback in order. Inline: whoever finds nobody delivering
/// becomes the deliverer and drains (a combiner), so the callback never runs twice at
/// once and never under the lock. Ordered: items become jobs on the source queue, which
/// keeps their order.
fn deliver_pending<'a, T: Send + 'static>(
    shared: &'a Shared<T>,
    mut state: parking_lot::MutexGuard<'a, State<T>>,
    sink: &PartCallback<T>,
) {
    if !shared.deliverer.is_inline() {
        let mut failures = Vec::new();
        while let Some(item) = state.items.pop_front() {
            let sink = sink.clone();
            let job = Job::new(shared.origin, move || call(&sink, item));
            if let Err(err) = shared.deliverer.deliver(job) {
                failures.push(err);
            }
        }
        drop(state);
        // Reported outside the lock: the hook may take other locks (Python's GIL).
        for err in failures {
            shared.deliverer.containment().report(shared.origin, &format!("part not delivered: {err}"));
        }
        return;
    }
    if state.delivering {
        return;
    }
    state.delivering = true;
    while let Some(item) = state.items.pop_front() {
        drop(state);
        shared.deliverer.containment().run(shared.origin, || call(sink, item));
        state = shared.state.lock();
    }
    state.delivering = false;
}

fn call<T>(sink: &PartCallback<T>, item: Item<T>) {
    let mut callback = sink.lock();
    match item {
        Item::Part(part, more) => callback(Ok(part), more),
        Item::Failed(error) => callback(Err(error), false),
    }
}

impl<T: Send + 'static> Drop for PartSender<T> {
    fn drop(&mut self) {
        self.fail(Error::Abandoned);
    }
}

impl<T: Send + 'static> Parts<T> {
    /// Receive every part in `callback(part, more)`; returns at once. Parts that arrived
    /// already are delivered first, in order. An error arrives as `(Err(e), false)`.
    pub fn on_part(self, callback: impl FnMut(Result<T>, bool) + Send + 'static) {
        let sink: PartCallback<T> = Arc::new(Mutex::new(Box::new(callback)));
        let mut state = self.shared.state.lock();
        state.sink = Some(sink.clone());
        deliver_pending(&self.shared, state, &sink);
    }

    /// Wait for every part.
    ///
    /// # Errors
    /// The operation's error, or [`Error::WouldDeadlock`] at once on an I/O thread.
    pub fn collect(self) -> Result<Vec<T>> {
        self.collect_until(None)
    }

    /// Wait at most `timeout` for every part.
    ///
    /// # Errors
    /// [`Error::Timeout`], the operation's error, or [`Error::WouldDeadlock`].
    pub fn collect_timeout(self, timeout: Duration) -> Result<Vec<T>> {
        self.collect_until(Some(Instant::now() + timeout)).map_err(|err| match err {
            Error::Timeout(_) => Error::Timeout(timeout),
            other => other,
        })
    }

    /// Wait until `deadline` (`None`: forever) for every part.
    ///
    /// # Errors
    /// As [`collect_timeout`](Self::collect_timeout).
    pub fn collect_until(self, deadline: Option<Instant>) -> Result<Vec<T>> {
        block_until(&mut Waiting(&self.shared), deadline, Spin::No)?
    }

    /// The async form of [`collect`](Self::collect).
    pub fn collect_async(self) -> impl Future<Output = Result<Vec<T>>> + Send {
        CollectAll { shared: self.shared, task: AsyncWait::new() }
    }
}

fn gather<T>(items: &mut VecDeque<Item<T>>) -> Result<Vec<T>> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        match item {
            Item::Part(part, _) => parts.push(part),
            Item::Failed(error) => return Err(error),
        }
    }
    Ok(parts)
}

/// What [`block_until`] and [`AsyncWait`] wait on: the last part, for one collector.
struct Waiting<'a, T>(&'a Shared<T>);

impl<T> Wait for Waiting<'_, T> {
    type Output = Result<Vec<T>>;

    fn try_take(&mut self) -> Option<Self::Output> {
        let mut state = self.0.state.lock();
        state.finished.then(|| gather(&mut state.items))
    }

    fn register(&mut self, signal: Arc<dyn Signal>) -> Option<Self::Output> {
        let mut state = self.0.state.lock();
        if state.finished {
            return Some(gather(&mut state.items));
        }
        state.waiter = Some(signal);
        None
    }

    fn unregister(&mut self) -> bool {
        self.0.state.lock().waiter.take().is_some()
    }
}

struct CollectAll<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    task: AsyncWait,
}

impl<T: Send + 'static> Future for CollectAll<T> {
    type Output = Result<Vec<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.task.poll(cx, &mut Waiting(&this.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io_guard::IoThreadGuard;

    #[test]
    fn collect_gathers_all_parts_in_order() {
        let (tx, rx) = parts();
        std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i, i < 99);
            }
        });
        assert_eq!(rx.collect().unwrap(), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn callback_sees_buffered_then_live_parts_with_more_flag() {
        let (tx, rx) = parts();
        tx.send(1, true);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        rx.on_part(move |part, more| sink.lock().push((part.unwrap(), more)));
        tx.send(2, true);
        tx.send(3, false);
        tx.send(4, false); // after the last: ignored
        assert_eq!(*seen.lock(), vec![(1, true), (2, true), (3, false)]);
    }

    #[test]
    fn error_after_parts_fails_collect_and_reaches_callback() {
        let (tx, rx) = parts::<u8>();
        tx.send(1, true);
        tx.fail(Error::msg("peer went away"));
        assert!(rx.collect().unwrap_err().to_string().contains("peer went away"));

        let (tx, rx) = parts::<u8>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        rx.on_part(move |part, more| sink.lock().push((part.is_ok(), more)));
        drop(tx);
        assert_eq!(*seen.lock(), vec![(false, false)]);
    }

    #[test]
    fn collect_on_io_thread_would_deadlock() {
        let (_tx, rx) = parts::<u8>();
        let _io = IoThreadGuard::enter();
        assert!(matches!(rx.collect(), Err(Error::WouldDeadlock)));
    }

    #[test]
    fn collect_async_and_timeout() {
        let (tx, rx) = parts();
        tx.send("a", true);
        tx.send("b", false);
        assert_eq!(futures::executor::block_on(rx.collect_async()).unwrap(), vec!["a", "b"]);
        let (_tx, rx) = parts::<u8>();
        assert!(rx.collect_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    }
}
