//! pvloom-core: the runtime and callback contract shared by every pvloom protocol.
//!
//! - [`Runtime`]: a pool of I/O threads (default 2, named `pvloom-io-N`) that own every
//!   socket and timer, with per-thread statistics.
//! - [`Completion`] (one-shot) and [`Parts`] (multi-part) handles: every operation has
//!   a non-blocking form (callback or handle) and a blocking form that is the same path
//!   plus a wait.
//! - [`Delivery`]: callbacks run `Inline` on the I/O thread or `Ordered` on workers,
//!   through a bounded per-source queue with an explicit [`Overflow`] policy.
//! - The deadlock guard: a blocking wait on an I/O thread returns
//!   [`Error::WouldDeadlock`] at once ([`io_guard`]).
//! - Containment: a panicking callback is caught, reported to the error hook and
//!   counted ([`Containment`]); the thread goes on.
//! - [`signal`]: the one waiting mechanism under all of these (a thread parker or a
//!   waker behind one `Signal`), with the deadlock guard and a timeout on every wait.
//! - [`sync`]: Event, Queue, AsyncResult, Lock, RLock, Launcher, Thread and
//!   ThreadResource for threads and async tasks alike.
//! - [`Subscriber`]: the INIT/ON/OFF/FAULT listener/consumer state machine.
#![warn(missing_docs)]

pub mod clock;
pub mod completion;
pub mod delivery;
pub mod driver;
pub mod endpoint;
mod error;
#[cfg(any(test, feature = "harness"))]
pub mod harness;
pub mod hook;
pub mod io_guard;
pub mod multipart;
pub mod runtime;
pub mod signal;
pub mod subscriber;
pub mod sync;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use completion::{Completer, Completion, completion, completion_with};
pub use delivery::{Deliverer, Delivery, Job, Overflow, SourceStats, WorkerWrapper};
pub use endpoint::{CloseReason, Datagram, DatagramEndpoint, StreamEndpoint};
pub use error::{Error, Result};
pub use hook::{CallbackFailure, Containment, ErrorHook};
pub use io_guard::{ensure_may_block, is_io_thread};
pub use multipart::{PartSender, Parts, parts, parts_with};
pub use runtime::{IoCtx, IoHandler, Keep, Runtime, RuntimeBuilder, RuntimeHandle, ThreadStats, TimerHandle, TimerId};
pub use subscriber::{Emitter, Mode, Subscriber, SubscriberState};

/// Re-exported: endpoints transmit into [`bytes::BytesMut`].
pub use bytes;
/// Re-exported so protocol crates register sockets with the same mio version.
pub use mio;
