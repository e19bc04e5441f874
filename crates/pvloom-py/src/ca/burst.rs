//! Many non-blocking reads at once (caproto's `Batch`, `PV.read(wait=False)`),
//! delivered to Python in bursts.
//!
//! A read's [`Completion`] is not given a `then` callback (one job, one worker turn
//! and one GIL acquisition per reply) but polled as a future: its waker, run on the
//! I/O thread that completes it, only queues the reply on the [`Burst`]. The first
//! reply queued schedules one drain job on the context's callback deliverer, which
//! takes the GIL once and calls the callbacks of every reply queued by then (and of
//! those that arrive while it runs). Issuing happens with the GIL released.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use pvloom_ca::client::{CaError, Pv, ReadOptions, Response};
use pvloom_core::{Completion, Deliverer, Job};
use pyo3::prelude::*;

use super::CallbackEnv;
use super::errors::ca_error_to_py;
use super::response::PyCaResponse;
use crate::outcome::report_exception;

const ORIGIN: &str = "ca.read";

/// What the facade gives every read of one burst: `make(raw)` builds the response
/// handed to `callback(response)`; `on_error(callback, name, exception)` handles a
/// failed read (an error status, a timeout, a lost circuit).
pub(crate) struct Shapers {
    pub(crate) make: Py<PyAny>,
    pub(crate) on_error: Py<PyAny>,
}

/// The replies of one group of reads, waiting for the drain job.
pub(crate) struct Burst {
    env: Arc<CallbackEnv>,
    deliverer: Deliverer,
    shapers: Shapers,
    ready: Mutex<Vec<Arc<Slot>>>,
    /// A drain job is queued or running.
    scheduled: AtomicBool,
    /// The deliverer refused the drain (the context is closing): replies are dropped.
    refused: AtomicBool,
}

/// One read: its completion until it is drained, and the callback for its outcome.
struct Slot {
    burst: Arc<Burst>,
    read: Mutex<Option<Pending>>,
}

struct Pending {
    completion: Completion<Response>,
    /// The result, when the poll at registration found it already there.
    result: Option<pvloom_core::Result<Response>>,
    pv: Pv,
    callback: Py<PyAny>,
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        let burst = self.burst.clone();
        burst.push(self);
    }
}

impl Burst {
    pub(crate) fn new(env: Arc<CallbackEnv>, deliverer: Deliverer, shapers: Shapers) -> Arc<Self> {
        Arc::new(Burst {
            env,
            deliverer,
            shapers,
            ready: Mutex::new(Vec::new()),
            scheduled: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        })
    }

    /// Start a read of each `(pv, callback)`; returns at once. Call without the GIL.
    pub(crate) fn issue(self: &Arc<Self>, reads: Vec<(Pv, Py<PyAny>)>, options: ReadOptions) {
        for (pv, callback) in reads {
            let completion = pv.read_async(options);
            let pending = Pending { completion, result: None, pv, callback };
            Arc::new(Slot { burst: self.clone(), read: Mutex::new(Some(pending)) }).register();
        }
    }

    /// Queue a completed read; schedule a drain unless one is pending.
    fn push(self: &Arc<Self>, slot: Arc<Slot>) {
        if self.refused.load(Ordering::Acquire) {
            return;
        }
        self.ready.lock().push(slot);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.schedule();
        }
    }

    fn schedule(self: &Arc<Self>) {
        let burst = self.clone();
        if let Err(err) = self.deliverer.deliver(Job::new(ORIGIN, move || burst.drain())) {
            self.env.containment.report(ORIGIN, &format!("read callbacks not delivered: {err}"));
            // The context is closing: nothing will drain these (and they hold the burst).
            self.refused.store(true, Ordering::Release);
            drop(std::mem::take(&mut *self.ready.lock()));
        }
    }

    /// Run the callbacks of every queued reply, with the GIL taken once.
    fn drain(self: &Arc<Self>) {
        crate::gil::attach(|py| {
            loop {
                let batch = std::mem::take(&mut *self.ready.lock());
                if batch.is_empty() {
                    self.scheduled.store(false, Ordering::Release);
                    // A reply queued after the take but before the store found
                    // `scheduled` still set: take it here, unless another drain did.
                    if self.ready.lock().is_empty() || self.scheduled.swap(true, Ordering::AcqRel) {
                        return;
                    }
                    continue;
                }
                for slot in batch {
                    slot.finish(py, self);
                }
            }
        });
    }

    fn call_back(&self, py: Python<'_>, pv: &Pv, callback: Py<PyAny>, result: pvloom_core::Result<Response>) {
        let env = &self.env;
        let outcome = match result {
            Ok(response) => Py::new(py, PyCaResponse { response: Arc::new(response) })
                .and_then(|raw| self.shapers.make.bind(py).call1((raw,)))
                .map(|response| env.call(py, "read", &callback, None, (response,))),
            Err(err) => {
                let exc = ca_error_to_py(py, CaError::from_core(err, pv.name(), "read"));
                self.shapers.on_error.bind(py).call1((&callback, pv.name(), exc.into_value(py))).map(drop)
            }
        };
        if let Err(err) = outcome {
            report_exception(py, &env.containment, "read", &env.hook, err, Some(callback.bind(py)));
        }
    }
}

impl Slot {
    /// Poll the completion with this slot as its waker: a reply already there is
    /// queued now, a later one by the I/O thread that completes it.
    fn register(self: &Arc<Self>) {
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let ready = {
            let mut read = self.read.lock();
            match read.as_mut() {
                Some(pending) => match Pin::new(&mut pending.completion).poll(&mut cx) {
                    Poll::Ready(result) => {
                        pending.result = Some(result);
                        true
                    }
                    Poll::Pending => false,
                },
                None => false,
            }
        };
        if ready {
            self.burst.push(self.clone());
        }
    }

    fn finish(self: &Arc<Self>, py: Python<'_>, burst: &Burst) {
        let Some(mut pending) = self.read.lock().take() else { return };
        if let Some(result) = pending.result.take() {
            return burst.call_back(py, &pending.pv, pending.callback, result);
        }
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut pending.completion).poll(&mut cx) {
            Poll::Ready(result) => burst.call_back(py, &pending.pv, pending.callback, result),
            // Woken before its result was there (not expected): wait for the next wake.
            Poll::Pending => *self.read.lock() = Some(pending),
        }
    }
}
