//! One-shot completion handles: the result of an operation that completes once.
//!
//! The producer (usually an I/O thread) holds a [`Completer`]; the caller holds a
//! [`Completion`] and picks how to receive the result: [`wait`](Completion::wait),
//! [`wait_timeout`](Completion::wait_timeout), [`then`](Completion::then) (a callback,
//! run through the operation's [`Deliverer`]), or `.await`. Every blocking operation in
//! pvloom is its non-blocking form followed by one of these waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::delivery::Deliverer;
use crate::signal::{AsyncWait, Signal, Spin, Wait, block_until};
use crate::{Error, Result};

type Then<T> = Box<dyn FnOnce(Result<T>) + Send>;

enum State<T> {
    /// `waiter`: the signal of the thread blocked in `wait` or of the task awaiting it,
    /// fired on completion.
    Pending {
        then: Option<Then<T>>,
        waiter: Option<Arc<dyn Signal>>,
    },
    Ready(Result<T>),
    Taken,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    deliverer: Deliverer,
    origin: &'static str,
}

/// The producer's side: complete it once. Dropping it uncompleted completes the
/// operation with [`Error::Abandoned`], so no waiter waits forever.
pub struct Completer<T: Send + 'static> {
    shared: Option<Arc<Shared<T>>>,
}

/// The caller's side of a one-shot operation.
#[must_use = "a completion does nothing unless waited on, awaited or given a callback"]
pub struct Completion<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    task: AsyncWait,
}

/// A linked pair whose `then` callback runs inline, contained by the global containment.
pub fn completion<T: Send + 'static>() -> (Completer<T>, Completion<T>) {
    completion_with(Deliverer::inline(), "completion.then")
}

/// A linked pair whose `then` callback is delivered by `deliverer`.
pub fn completion_with<T: Send + 'static>(deliverer: Deliverer, origin: &'static str) -> (Completer<T>, Completion<T>) {
    let shared = Arc::new(Shared { state: Mutex::new(State::Pending { then: None, waiter: None }), deliverer, origin });
    (Completer { shared: Some(shared.clone()) }, Completion { shared, task: AsyncWait::new() })
}

impl<T: Send + 'static> Completer<T> {
    /// Complete with a value.
    pub fn succeed(self, value: T) {
        self.complete(Ok(value));
    }

    /// Complete with an error.
    pub fn fail(self, error: Error) {
        self.complete(Err(error));
    }

    /// Complete with a result. Never blocks: a `then` callback is handed to the
    /// deliverer, which runs it here (Inline) or queues it (Ordered).
    pub fn complete(mut self, result: Result<T>) {
        if let Some(shared) = self.shared.take() {
            finish(&shared, result);
        }
    }

    /// True once the caller dropped its [`Completion`] without a callback: the result
    /// would be thrown away, so the producer may skip the work.
    pub fn is_abandoned(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| Arc::strong_count(s) == 1)
    }
}

fn finish<T: Send + 'static>(shared: &Arc<Shared<T>>, result: Result<T>) {
    let mut state = shared.state.lock();
    match std::mem::replace(&mut *state, State::Taken) {
        State::Pending { then: Some(then), .. } => {
            drop(state);
            // `dispatch`: an inline callback runs without being boxed a second time.
            if let Err(err) = shared.deliverer.dispatch(shared.origin, None, move || then(result)) {
                shared.deliverer.containment().report(shared.origin, &format!("callback not delivered: {err}"));
            }
        }
        State::Pending { then: None, waiter } => {
            *state = State::Ready(result);
            drop(state);
            if let Some(waiter) = waiter {
                waiter.fire();
            }
        }
        // Completed twice cannot happen (complete consumes self); keep what is there.
        other => *state = other,
    }
}

impl<T: Send + 'static> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            finish(&shared, Err(Error::Abandoned));
        }
    }
}

impl<T: Send + 'static> Completion<T> {
    /// A completion that is already complete.
    pub fn ready(result: Result<T>) -> Self {
        let (completer, completion) = completion();
        completer.complete(result);
        completion
    }

    /// True once the result has arrived.
    pub fn is_ready(&self) -> bool {
        matches!(*self.shared.state.lock(), State::Ready(_))
    }

    /// Wait for the result, however long it takes.
    ///
    /// # Errors
    /// The operation's error, or [`Error::WouldDeadlock`] at once on an I/O thread.
    pub fn wait(self) -> Result<T> {
        self.wait_until(None)
    }

    /// Wait at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it runs out; the operation's error; or
    /// [`Error::WouldDeadlock`] at once on an I/O thread.
    pub fn wait_timeout(self, timeout: Duration) -> Result<T> {
        self.wait_until(Some(Instant::now() + timeout)).map_err(|err| match err {
            Error::Timeout(_) => Error::Timeout(timeout),
            other => other,
        })
    }

    /// Wait until `deadline` (`None`: forever).
    ///
    /// # Errors
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_until(self, deadline: Option<Instant>) -> Result<T> {
        match self.poll_wait(deadline) {
            Ok(result) => result,
            Err(_pending) => Err(Error::Timeout(Duration::ZERO)),
        }
    }

    /// Wait until `deadline`; on timeout, hand the completion back so the caller can
    /// wait again (Python waits in short slices to notice Ctrl-C).
    ///
    /// # Errors
    /// `Err(self)` when the deadline passed first. `Ok(Err(WouldDeadlock))` on an I/O thread.
    pub fn poll_wait(self, deadline: Option<Instant>) -> std::result::Result<Result<T>, Self> {
        // A result that is a few hundred nanoseconds away is caught spinning, before
        // paying for a park and a wake-up.
        match block_until(&mut Waiting(&self.shared), deadline, Spin::Backoff) {
            Ok(result) => Ok(result),
            Err(Error::Timeout(_)) => Err(self),
            Err(err) => Ok(Err(err)),
        }
    }

    /// Receive the result in `callback` instead of waiting; returns at once. If the
    /// result is already there, the callback runs now on this thread (contained);
    /// otherwise the producer's deliverer runs it.
    pub fn then(self, callback: impl FnOnce(Result<T>) + Send + 'static) {
        let mut state = self.shared.state.lock();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Pending { .. } => {
                *state = State::Pending { then: Some(Box::new(callback)), waiter: None };
            }
            State::Ready(result) => {
                drop(state);
                self.shared.deliverer.containment().run(self.shared.origin, move || callback(result));
            }
            State::Taken => {}
        }
    }
}

/// What [`block_until`] and [`AsyncWait`] wait on: one waiter at most, whose signal
/// lives in the state.
struct Waiting<'a, T>(&'a Shared<T>);

impl<T> Wait for Waiting<'_, T> {
    type Output = Result<T>;

    fn try_take(&mut self) -> Option<Result<T>> {
        let mut state = self.0.state.lock();
        match &*state {
            State::Ready(_) => match std::mem::replace(&mut *state, State::Taken) {
                State::Ready(result) => Some(result),
                _ => unreachable!("checked just above"),
            },
            State::Pending { .. } => None,
            State::Taken => Some(Err(Error::Abandoned)),
        }
    }

    fn register(&mut self, signal: Arc<dyn Signal>) -> Option<Result<T>> {
        {
            let mut state = self.0.state.lock();
            if let State::Pending { waiter, .. } = &mut *state {
                *waiter = Some(signal);
                return None;
            }
        }
        self.try_take()
    }

    fn unregister(&mut self) -> bool {
        match &mut *self.0.state.lock() {
            State::Pending { waiter, .. } => waiter.take().is_some(),
            _ => false,
        }
    }
}

impl<T: Send + 'static> Future for Completion<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        this.task.poll(cx, &mut Waiting(&this.shared))
    }
}

impl<T: Send + 'static> std::fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion").field("ready", &self.is_ready()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io_guard::IoThreadGuard;
    use std::sync::mpsc;

    #[test]
    fn wait_receives_value_from_another_thread() {
        let (tx, rx) = completion();
        std::thread::spawn(move || tx.succeed(42));
        assert_eq!(rx.wait().unwrap(), 42);
    }

    #[test]
    fn wait_timeout_times_out_and_names_the_duration() {
        let (_tx, rx) = completion::<u8>();
        let err = rx.wait_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, Error::Timeout(d) if d == Duration::from_millis(20)));
    }

    #[test]
    fn dropped_completer_abandons() {
        let (tx, rx) = completion::<u8>();
        drop(tx);
        assert!(matches!(rx.wait(), Err(Error::Abandoned)));
    }

    #[test]
    fn then_before_and_after_completion() {
        let (tx, rx) = completion();
        let (seen_tx, seen_rx) = mpsc::channel();
        let sink = seen_tx.clone();
        rx.then(move |r| sink.send(r.unwrap()).unwrap());
        tx.succeed(1);
        let late = Completion::ready(Ok(2));
        late.then(move |r| seen_tx.send(r.unwrap()).unwrap());
        assert_eq!(seen_rx.recv().unwrap(), 1);
        assert_eq!(seen_rx.recv().unwrap(), 2);
    }

    #[test]
    fn wait_on_io_thread_would_deadlock_at_once() {
        let (_tx, rx) = completion::<u8>();
        let _io = IoThreadGuard::enter();
        let start = Instant::now();
        assert!(matches!(rx.wait(), Err(Error::WouldDeadlock)));
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn poll_wait_hands_back_on_timeout() {
        let (tx, rx) = completion();
        let rx = rx.poll_wait(Some(Instant::now() + Duration::from_millis(5))).unwrap_err();
        tx.succeed(5);
        assert_eq!(rx.poll_wait(None).ok().unwrap().unwrap(), 5);
    }

    #[test]
    fn future_resolves() {
        let (tx, rx) = completion();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx.succeed("done");
        });
        assert_eq!(futures::executor::block_on(rx).unwrap(), "done");
    }
}
