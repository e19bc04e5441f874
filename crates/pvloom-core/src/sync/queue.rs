//! A multi-producer, multi-consumer queue for threads and async tasks.
//!
//! A flume channel holds the items, used only through its non-blocking `try_` calls;
//! every wait (for an item, for room) is pvloom's one waiting mechanism, a
//! [`WaitList`] each.

use std::sync::Arc;
use std::time::Duration;

use super::{Notify, deadline_after};
use crate::{Error, Result};

/// Who waits for an item, and who waits for room.
#[derive(Default)]
struct Waiters {
    items: Notify,
    room: Notify,
}

/// MPMC queue, bounded or not. Blocking `put` waits for room in a bounded queue;
/// blocking `get` waits for an item; both have timeout, `try_` and `async` forms.
pub struct Queue<T> {
    tx: flume::Sender<T>,
    rx: flume::Receiver<T>,
    capacity: Option<usize>,
    waiters: Arc<Waiters>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { tx: self.tx.clone(), rx: self.rx.clone(), capacity: self.capacity, waiters: self.waiters.clone() }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("len", &self.len()).field("capacity", &self.capacity).finish()
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self::unbounded()
    }
}

// The queue owns both ends, so its channel never disconnects; these map the
// impossible cases to a clear error rather than a panic.
const CLOSED: Error = Error::Closed("queue");

impl<T> Queue<T> {
    /// A queue without a size limit.
    pub fn unbounded() -> Self {
        let (tx, rx) = flume::unbounded();
        Queue { tx, rx, capacity: None, waiters: Arc::default() }
    }

    /// A queue holding at most `capacity` items (at least 1).
    pub fn bounded(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, rx) = flume::bounded(capacity);
        Queue { tx, rx, capacity: Some(capacity), waiters: Arc::default() }
    }

    /// The size limit, if any.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Put an item, waiting for room.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn put(&self, item: T) -> Result<()> {
        match self.put_until(item, None)? {
            Ok(()) => Ok(()),
            Err(_) => unreachable!("no deadline"),
        }
    }

    /// Put an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Timeout`] (the item is dropped), or [`Error::WouldDeadlock`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        match self.put_timeout_returning(item, timeout)? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Put an item, waiting at most `timeout` for room; on timeout the item comes back
    /// as `Ok(Err(item))` (for callers that wait in slices and retry).
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn put_timeout_returning(&self, item: T, timeout: Duration) -> Result<std::result::Result<(), T>> {
        self.put_until(item, deadline_after(timeout))
    }

    fn put_until(&self, item: T, deadline: Option<std::time::Instant>) -> Result<std::result::Result<(), T>> {
        let mut item = Some(item);
        let outcome = self.waiters.room.wait_until(deadline, || self.offer(&mut item));
        match outcome {
            Ok(sent) => sent.map(Ok),
            Err(Error::Timeout(_)) => Ok(Err(item.take().expect("kept on timeout"))),
            Err(err) => Err(err),
        }
    }

    /// One attempt to put `item` (left in place when the queue is full): `Some` once
    /// it is decided.
    fn offer(&self, item: &mut Option<T>) -> Option<Result<()>> {
        match self.tx.try_send(item.take()?) {
            Ok(()) => {
                self.waiters.items.notify_one();
                Some(Ok(()))
            }
            Err(flume::TrySendError::Full(back)) => {
                *item = Some(back);
                None
            }
            Err(flume::TrySendError::Disconnected(_)) => Some(Err(CLOSED)),
        }
    }

    /// Put an item if there is room; otherwise hand it back.
    ///
    /// # Errors
    /// The item, when the queue is full.
    pub fn try_put(&self, item: T) -> std::result::Result<(), T> {
        let mut item = Some(item);
        match self.offer(&mut item) {
            Some(_) => Ok(()),
            None => Err(item.take().expect("kept when full")),
        }
    }

    /// Put an item asynchronously, waiting for room.
    ///
    /// # Errors
    /// Never in practice (the queue holds its own receiver).
    pub async fn put_async(&self, item: T) -> Result<()> {
        let mut item = Some(item);
        self.waiters.room.wait_async(|| self.offer(&mut item)).await
    }

    /// Take the oldest item, waiting for one.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn get(&self) -> Result<T> {
        self.waiters.items.wait_until(None, || self.take())?
    }

    /// Take the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], or [`Error::WouldDeadlock`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.waiters
            .items
            .wait_until(deadline_after(timeout), || self.take())
            .map_err(|err| super::name_timeout(err, timeout))?
    }

    /// One attempt to take an item: `Some` once it is decided.
    fn take(&self) -> Option<Result<T>> {
        match self.rx.try_recv() {
            Ok(item) => {
                self.waiters.room.notify_one();
                Some(Ok(item))
            }
            Err(flume::TryRecvError::Empty) => None,
            Err(flume::TryRecvError::Disconnected) => Some(Err(CLOSED)),
        }
    }

    /// Take the oldest item if there is one.
    pub fn try_get(&self) -> Option<T> {
        self.take().and_then(Result::ok)
    }

    /// Take the oldest item asynchronously.
    ///
    /// # Errors
    /// Never in practice (the queue holds its own sender).
    pub async fn get_async(&self) -> Result<T> {
        self.waiters.items.wait_async(|| self.take()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io_guard::IoThreadGuard;

    #[test]
    fn bounded_put_times_out_when_full() {
        let queue = Queue::bounded(1);
        queue.put(1).unwrap();
        assert!(queue.put_timeout(2, Duration::from_millis(5)).unwrap_err().is_timeout());
        assert_eq!(queue.try_put(3), Err(3));
        assert_eq!(queue.get().unwrap(), 1);
        assert!(queue.get_timeout(Duration::from_millis(5)).unwrap_err().is_timeout());
    }

    #[test]
    fn blocking_forms_refused_on_io_thread_but_try_forms_work() {
        let queue = Queue::unbounded();
        let _io = IoThreadGuard::enter();
        assert!(matches!(queue.put(1), Err(Error::WouldDeadlock)));
        assert!(queue.try_put(1).is_ok());
        assert!(matches!(queue.get(), Err(Error::WouldDeadlock)));
        assert_eq!(queue.try_get(), Some(1));
    }

    #[test]
    fn blocked_put_and_get_are_woken_through_the_wait_lists() {
        let queue = Queue::bounded(1);
        queue.put(1).unwrap();
        assert_eq!(queue.put_timeout_returning(2, Duration::from_millis(5)).unwrap(), Err(2), "the item comes back");
        let putter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.put_timeout(2, Duration::from_secs(10)))
        };
        while queue.waiters.room.waiters() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(queue.get().unwrap(), 1);
        putter.join().unwrap().unwrap();
        assert_eq!(queue.get().unwrap(), 2);

        let getter = {
            let queue = queue.clone();
            std::thread::spawn(move || futures::executor::block_on(queue.get_async()))
        };
        while queue.waiters.items.waiters() == 0 {
            std::thread::yield_now();
        }
        futures::executor::block_on(queue.put_async(3)).unwrap();
        assert_eq!(getter.join().unwrap().unwrap(), 3);
    }
}
