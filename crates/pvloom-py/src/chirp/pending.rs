//! `ChirpPending`: the native half of one send or answer future.
//!
//! The resolver thread resolves every future, but it needs the GIL, and a thread that
//! waits in `result()` holds it until it blocks: each resolved future cost a GIL
//! hand-over and two thread wake-ups on top of the network's. So the outcome is kept
//! here for whoever comes first. A thread waiting in `result()` waits (GIL released,
//! spinning briefly as every pvloom wait does) for the node to finish, then resolves
//! the future itself; the resolver's job finds the outcome taken and does nothing.

use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_core::{Completer, Completion, completion};
use pyo3::prelude::*;

use super::{LoopEnv, resolve};
use crate::wait::{deadline, wait_sliced};

/// What turns the node's outcome into the future's result or exception, with the GIL.
pub(crate) type Make = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;

/// The outcome once the node is done, and the wait for it.
struct Shared {
    make: Mutex<Option<Make>>,
    /// Taken by the one thread waiting for it at a time.
    ready: Mutex<Option<Completion<()>>>,
}

impl Shared {
    fn settle_into(&self, py: Python<'_>, env: &LoopEnv, future: &Py<PyAny>) {
        let make = self.make.lock().take();
        if let Some(make) = make {
            resolve(py, env, future, make(py));
        }
    }
}

/// The node's side of a pending future: give it the outcome with [`finish`](Self::finish).
pub(crate) struct Finisher {
    shared: Arc<Shared>,
    completer: Completer<()>,
    env: Arc<LoopEnv>,
}

impl Finisher {
    /// The node is done: keep the outcome for the first to come, wake a waiting
    /// thread, and queue the resolver's job for when nobody waits. Never waits for the
    /// GIL (called on I/O threads, under node locks).
    pub(crate) fn finish(self, future: Py<PyAny>, make: Make) {
        let Finisher { shared, completer, env } = self;
        *shared.make.lock() = Some(make);
        completer.complete(Ok(()));
        let resolver = env.resolver.clone();
        resolver.push(Box::new(move |py| shared.settle_into(py, &env, &future)));
    }
}

/// A pending future's native half, kept by the Python future as `_pending`.
#[pyclass(name = "ChirpPending", module = "pvloom.chirp", frozen)]
pub struct PyChirpPending {
    shared: Arc<Shared>,
    env: Arc<LoopEnv>,
}

impl PyChirpPending {
    pub(crate) fn new(env: &Arc<LoopEnv>) -> (Self, Finisher) {
        let (completer, ready) = completion();
        let shared = Arc::new(Shared { make: Mutex::new(None), ready: Mutex::new(Some(ready)) });
        let finisher = Finisher { shared: shared.clone(), completer, env: env.clone() };
        (PyChirpPending { shared, env: env.clone() }, finisher)
    }
}

#[pymethods]
impl PyChirpPending {
    /// Wait (GIL released) until the node is done, at most `timeout` seconds (`None`:
    /// forever): True when it is, False on timeout, None when another thread waits
    /// already (wait on the future instead).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        let Some(ready) = self.shared.ready.lock().take() else { return Ok(None) };
        if ready.is_ready() {
            return Ok(Some(true));
        }
        if timeout.is_some_and(|t| t.is_nan() || t <= 0.0) {
            *self.shared.ready.lock() = Some(ready);
            return Ok(Some(false));
        }
        let until = deadline(timeout);
        let mut slot = Some(ready);
        let waited = wait_sliced(py, until, |slice_end| {
            let Some(ready) = slot.take() else { return Ok(Some(())) };
            match ready.poll_wait(Some(slice_end)) {
                Ok(_) => Ok(Some(())),
                Err(pending) => {
                    slot = Some(pending);
                    Ok(None)
                }
            }
        });
        // Still pending (timed out, or interrupted): the next waiter waits for it.
        if let Some(ready) = slot {
            *self.shared.ready.lock() = Some(ready);
        }
        Ok(Some(waited?.is_some()))
    }

    /// Resolve `future` now if the node is done and nobody resolved it yet.
    fn settle(&self, py: Python<'_>, future: Py<PyAny>) {
        self.shared.settle_into(py, &self.env, &future);
    }
}
