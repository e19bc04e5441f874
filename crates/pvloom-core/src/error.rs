//! The one error type every pvloom operation returns.

use std::sync::Arc;
use std::time::Duration;

/// Why a pvloom operation did not produce its result.
///
/// `Clone` so that one failure can be handed to every waiter of a shared result
/// (an [`AsyncResult`](crate::sync::AsyncResult) read by many threads, a multi-part
/// operation with a blocking collector and a callback).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A blocking call was made on a pvloom I/O thread (directly or from an `Inline`
    /// callback). It would wait for an event that only this thread can deliver, so it is
    /// refused at once instead of hanging.
    #[error("blocking call on an I/O thread would deadlock; use the non-blocking form (callback or completion handle)")]
    WouldDeadlock,
    /// The wait ran out before the result arrived.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The producer of the result went away without completing it.
    #[error("the operation was abandoned before it completed")]
    Abandoned,
    /// The operation was cancelled by the user.
    #[error("the operation was cancelled")]
    Cancelled,
    /// The runtime, queue or thread is shut down.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// A bounded queue refused an item under the `Error` overflow policy.
    #[error("queue is full ({capacity} items)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// A state machine was asked for a transition it does not allow.
    #[error("illegal transition from {from} to {to}")]
    IllegalTransition {
        /// The state the machine was in.
        from: &'static str,
        /// The state that was requested.
        to: &'static str,
    },
    /// A lock was released by a thread that does not hold it.
    #[error("lock released by a thread that does not own it")]
    NotOwner,
    /// User code panicked; the message is kept.
    #[error("panicked: {0}")]
    Panicked(Arc<str>),
    /// The wait was interrupted (for example by Ctrl-C in Python).
    #[error("interrupted")]
    Interrupted,
    /// The operation failed for a reason given by its producer.
    #[error("{0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wrap any error as [`Error::Failed`].
    pub fn failed<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        Error::Failed(Arc::new(err))
    }

    /// A failure described only by a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error::Failed(Arc::new(Message(message.into())))
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
}

#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Shorthand used throughout pvloom.
pub type Result<T, E = Error> = std::result::Result<T, E>;
