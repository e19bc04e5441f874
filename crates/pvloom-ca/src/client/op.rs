//! An operation's result slot, shared by whoever may finish it first: the reply, a
//! timeout timer, or a disconnect.

use parking_lot::Mutex;
use pvloom_core::Completer;

use super::error::CaError;

pub(crate) struct OpSlot<T: Send + 'static> {
    completer: Mutex<Option<Completer<T>>>,
}

impl<T: Send + 'static> OpSlot<T> {
    pub(crate) fn new(completer: Completer<T>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(OpSlot { completer: Mutex::new(Some(completer)) })
    }

    /// True once finished (or the caller stopped caring): a read nobody waits for
    /// need not be sent.
    pub(crate) fn is_done(&self) -> bool {
        self.completer.lock().as_ref().is_none_or(Completer::is_abandoned)
    }

    /// True once finished (timed out, failed): a write is sent even when nobody waits
    /// for its outcome (fire and forget), but not after it timed out.
    pub(crate) fn is_finished(&self) -> bool {
        self.completer.lock().is_none()
    }

    // The completer is taken out before completing: completing may run the caller's
    // callback right here (Inline), which must not run under this lock.
    pub(crate) fn succeed(&self, value: T) {
        let completer = self.completer.lock().take();
        if let Some(completer) = completer {
            completer.succeed(value);
        }
    }

    pub(crate) fn fail(&self, error: CaError) {
        let completer = self.completer.lock().take();
        if let Some(completer) = completer {
            completer.fail(error.into_core());
        }
    }
}
