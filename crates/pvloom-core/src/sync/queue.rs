//! A multi-producer, multi-consumer queue for threads and async tasks (flume inside).

use std::time::Duration;

use crate::io_guard::ensure_may_block;
use crate::{Error, Result};

/// MPMC queue, bounded or not. Blocking `put` waits for room in a bounded queue;
/// blocking `get` waits for an item; both have timeout, `try_` and `async` forms.
pub struct Queue<T> {
    tx: flume::Sender<T>,
    rx: flume::Receiver<T>,
    capacity: Option<usize>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { tx: self.tx.clone(), rx: self.rx.clone(), capacity: self.capacity }
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
        Queue { tx, rx, capacity: None }
    }

    /// A queue holding at most `capacity` items (at least 1).
    pub fn bounded(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, rx) = flume::bounded(capacity);
        Queue { tx, rx, capacity: Some(capacity) }
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
        ensure_may_block()?;
        self.tx.send(item).map_err(|_| CLOSED)
    }

    /// Put an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Timeout`] (the item is dropped), or [`Error::WouldDeadlock`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        ensure_may_block()?;
        self.tx.send_timeout(item, timeout).map_err(|err| match err {
            flume::SendTimeoutError::Timeout(_) => Error::Timeout(timeout),
            flume::SendTimeoutError::Disconnected(_) => CLOSED,
        })
    }

    /// Put an item, waiting at most `timeout` for room; on timeout the item comes back
    /// as `Ok(Err(item))` (for callers that wait in slices and retry).
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn put_timeout_returning(&self, item: T, timeout: Duration) -> Result<std::result::Result<(), T>> {
        ensure_may_block()?;
        match self.tx.send_timeout(item, timeout) {
            Ok(()) => Ok(Ok(())),
            Err(flume::SendTimeoutError::Timeout(item)) => Ok(Err(item)),
            Err(flume::SendTimeoutError::Disconnected(_)) => Err(CLOSED),
        }
    }

    /// Put an item if there is room; otherwise hand it back.
    ///
    /// # Errors
    /// The item, when the queue is full.
    pub fn try_put(&self, item: T) -> std::result::Result<(), T> {
        self.tx.try_send(item).map_err(|err| err.into_inner())
    }

    /// Put an item asynchronously, waiting for room.
    ///
    /// # Errors
    /// Never in practice (the queue holds its own receiver).
    pub async fn put_async(&self, item: T) -> Result<()> {
        self.tx.send_async(item).await.map_err(|_| CLOSED)
    }

    /// Take the oldest item, waiting for one.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn get(&self) -> Result<T> {
        ensure_may_block()?;
        self.rx.recv().map_err(|_| CLOSED)
    }

    /// Take the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], or [`Error::WouldDeadlock`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        ensure_may_block()?;
        self.rx.recv_timeout(timeout).map_err(|err| match err {
            flume::RecvTimeoutError::Timeout => Error::Timeout(timeout),
            flume::RecvTimeoutError::Disconnected => CLOSED,
        })
    }

    /// Take the oldest item if there is one.
    pub fn try_get(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Take the oldest item asynchronously.
    ///
    /// # Errors
    /// Never in practice (the queue holds its own sender).
    pub async fn get_async(&self) -> Result<T> {
        self.rx.recv_async().await.map_err(|_| CLOSED)
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
}
