//! A result set once by one party and read by any number of others.

use std::time::Duration;

use parking_lot::Mutex;

use super::{Notify, deadline_after, name_timeout};
use crate::{Error, Result};

/// Holds a value or an error once set; every reader gets a clone.
pub struct AsyncResult<T: Clone> {
    slot: Mutex<Option<Result<T>>>,
    notify: Notify,
}

impl<T: Clone> Default for AsyncResult<T> {
    fn default() -> Self {
        AsyncResult { slot: Mutex::new(None), notify: Notify::new() }
    }
}

impl<T: Clone> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").field("ready", &self.ready()).finish()
    }
}

impl<T: Clone> AsyncResult<T> {
    /// An empty result.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a value.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] if it was set already (the first result stays).
    pub fn set(&self, value: T) -> Result<()> {
        self.set_result(Ok(value))
    }

    /// Set an error, which [`get`](Self::get) will return.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] if it was set already.
    pub fn set_error(&self, error: Error) -> Result<()> {
        self.set_result(Err(error))
    }

    /// Set a value or an error.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] if it was set already.
    pub fn set_result(&self, result: Result<T>) -> Result<()> {
        let mut slot = self.slot.lock();
        if slot.is_some() {
            return Err(Error::IllegalTransition { from: "ready", to: "ready" });
        }
        *slot = Some(result);
        drop(slot);
        self.notify.notify_all();
        Ok(())
    }

    /// True once set.
    pub fn ready(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// `Some(true)` if set to a value, `Some(false)` if set to an error, `None` if unset.
    pub fn successful(&self) -> Option<bool> {
        self.slot.lock().as_ref().map(Result::is_ok)
    }

    /// The result if set, without waiting.
    pub fn peek(&self) -> Option<Result<T>> {
        self.slot.lock().clone()
    }

    /// Wait for the result and return it (the error if an error was set).
    ///
    /// # Errors
    /// The error that was set, or [`Error::WouldDeadlock`] on an I/O thread.
    pub fn get(&self) -> Result<T> {
        self.notify.wait_until(None, || self.peek())?
    }

    /// As [`get`](Self::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], the error that was set, or [`Error::WouldDeadlock`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.notify.wait_until(deadline_after(timeout), || self.peek()).map_err(|e| name_timeout(e, timeout))?
    }

    /// Wait until set, at most `timeout`; `Ok(false)` when it ran out.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(deadline_after);
        match self.notify.wait_until(deadline, || self.ready().then_some(())) {
            Ok(()) => Ok(true),
            Err(Error::Timeout(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The async form of [`get`](Self::get).
    ///
    /// # Errors
    /// The error that was set.
    pub async fn get_async(&self) -> Result<T> {
        self.notify.wait_async(|| self.peek()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_once_read_many() {
        let result = AsyncResult::new();
        assert_eq!(result.successful(), None);
        result.set(3).unwrap();
        assert!(result.set(4).is_err());
        assert_eq!(result.get().unwrap(), 3);
        assert_eq!(result.get_timeout(Duration::from_millis(1)).unwrap(), 3);
        assert_eq!(result.successful(), Some(true));
    }

    #[test]
    fn error_is_returned_by_get() {
        let result = AsyncResult::<u8>::new();
        result.set_error(Error::msg("no beam")).unwrap();
        assert_eq!(result.successful(), Some(false));
        assert_eq!(result.get().unwrap_err().to_string(), "no beam");
    }

    #[test]
    fn get_timeout_names_timeout() {
        let result = AsyncResult::<u8>::new();
        let err = result.get_timeout(Duration::from_millis(5)).unwrap_err();
        assert!(matches!(err, Error::Timeout(d) if d == Duration::from_millis(5)));
        assert!(!result.wait(Some(Duration::from_millis(5))).unwrap());
    }
}
