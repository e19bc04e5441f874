//! `ChirpPending`: the native half of one send or answer future.
//!
//! The resolver thread resolves every future, but it needs the GIL, and a thread that
//! waits in `result()` holds it until it blocks: each resolved future cost a GIL
//! hand-over and two thread wake-ups on top of the network's. So the outcome is kept
//! here for whoever comes first. A thread waiting in `result()` waits (GIL released,
//! spinning briefly as every pvloom wait does) for the node to finish, then resolves
//! the future itself. When the node finishes while a thread waits, no resolver job is
//! queued at all (the waiter resolves it whatever ends its wait); otherwise the
//! resolver's job resolves it, or finds it resolved.

use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_core::{Completer, Completion, completion};
use pyo3::prelude::*;

use super::{LoopEnv, resolve};
use crate::wait::{deadline, wait_sliced};

/// What turns the node's outcome into the future's result or exception, with the GIL.
pub(crate) type Make = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;

#[derive(Default)]
struct State {
    /// The outcome, once the node is done, until somebody resolves the future with it.
    make: Option<Make>,
    /// The wait for the node, taken by the one thread waiting at a time.
    ready: Option<Completion<()>>,
    /// A thread is waiting: it will resolve the future when its wait ends.
    waiter: bool,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn settle_into(&self, py: Python<'_>, env: &LoopEnv, future: &Py<PyAny>) {
        let make = self.state.lock().make.take();
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
    /// The node is done: keep the outcome for the first to come and wake a waiting
    /// thread; with none waiting, queue the resolver's job. Never waits for the GIL
    /// (called on I/O threads, under node locks).
    pub(crate) fn finish(self, future: Py<PyAny>, make: Make) {
        let Finisher { shared, completer, env } = self;
        let waiter = {
            let mut state = shared.state.lock();
            state.make = Some(make);
            state.waiter
        };
        completer.complete(Ok(()));
        if !waiter {
            let resolver = env.resolver.clone();
            resolver.push(Box::new(move |py| shared.settle_into(py, &env, &future)));
        }
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
        let state = State { ready: Some(ready), ..State::default() };
        let shared = Arc::new(Shared { state: Mutex::new(state) });
        let finisher = Finisher { shared: shared.clone(), completer, env: env.clone() };
        (PyChirpPending { shared, env: env.clone() }, finisher)
    }
}

#[pymethods]
impl PyChirpPending {
    /// Wait (GIL released) until the node is done, at most `timeout` seconds (`None`:
    /// forever), then resolve `future` if the node is done and nobody did yet. True
    /// when the node is done, False on timeout, None when another thread waits already
    /// (wait on the future instead).
    #[pyo3(signature = (future, timeout=None))]
    fn wait(&self, py: Python<'_>, future: Py<PyAny>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        let ready = {
            let mut state = self.shared.state.lock();
            let Some(ready) = state.ready.take() else { return Ok(None) };
            state.waiter = true;
            ready
        };
        let mut slot = Some(ready);
        let no_wait = timeout.is_some_and(|t| t.is_nan() || t <= 0.0);
        let waited = if slot.as_ref().is_some_and(Completion::is_ready) || no_wait {
            Ok(None)
        } else {
            wait_sliced(py, deadline(timeout), |slice_end| {
                let Some(ready) = slot.take() else { return Ok(Some(())) };
                match ready.poll_wait(Some(slice_end)) {
                    Ok(_) => Ok(Some(())),
                    Err(pending) => {
                        slot = Some(pending);
                        Ok(None)
                    }
                }
            })
        };
        let done = slot.as_ref().is_none_or(Completion::is_ready);
        {
            let mut state = self.shared.state.lock();
            state.waiter = false;
            // Still pending (timed out, or interrupted): the next waiter waits for it.
            if !done {
                state.ready = slot;
            }
        }
        // Whatever ended the wait: a finish seen while waiting queued no job.
        self.shared.settle_into(py, &self.env, &future);
        waited?;
        Ok(Some(done))
    }
}
