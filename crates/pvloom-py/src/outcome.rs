//! Results carried across threads, and the Python completion handle.

use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_core::sync::AsyncResult;
use pvloom_core::{Containment, Error};
use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::to_py;
use crate::wait::{deadline, wait_sliced};

/// What a Python call produced: a value, a raised exception, or a pvloom error.
pub enum Outcome {
    Value(Py<PyAny>),
    Raised(PyErr),
    Failed(Error),
}

/// `Clone` for the shared result cells without needing the GIL.
pub type SharedOutcome = Arc<Outcome>;

impl Outcome {
    pub fn to_py_result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Outcome::Value(value) => Ok(value.clone_ref(py)),
            Outcome::Raised(err) => Err(err.clone_ref(py)),
            Outcome::Failed(err) => Err(to_py(err.clone())),
        }
    }
}

/// A Python callable with its arguments, to run later on another thread.
pub struct PyCall {
    func: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
}

impl PyCall {
    pub fn new(func: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) -> Self {
        PyCall { func, args, kwargs }
    }

    /// Call it (the GIL must be held).
    pub fn call(&self, py: Python<'_>) -> Outcome {
        let kwargs = self.kwargs.as_ref().map(|k| k.bind(py));
        match self.func.bind(py).call(self.args.bind(py), kwargs) {
            Ok(value) => Outcome::Value(value.unbind()),
            Err(err) => Outcome::Raised(err),
        }
    }

    /// Call it as a callback: an exception is contained (reported and counted).
    pub fn call_contained(&self, py: Python<'_>, containment: &Containment, origin: &str, hook: &PyHook) {
        if let Outcome::Raised(err) = self.call(py) {
            report_exception(py, containment, origin, hook, err, Some(self.func.bind(py)));
        }
    }
}

/// The user's Python error hook, `hook(origin, exception)`; `None` means Python's
/// own unraisable-exception report (printed to stderr with its traceback).
pub type PyHook = Arc<Mutex<Option<Py<PyAny>>>>;

/// Report a callback's exception to the hook and count it. Never raises.
pub fn report_exception(
    py: Python<'_>,
    containment: &Containment,
    origin: &str,
    hook: &PyHook,
    err: PyErr,
    culprit: Option<&Bound<'_, PyAny>>,
) {
    let user_hook = hook.lock().as_ref().map(|h| h.clone_ref(py));
    match user_hook {
        Some(user_hook) => {
            containment.count_reported();
            if let Err(hook_err) = user_hook.call1(py, (origin, err.value(py))) {
                hook_err.write_unraisable(py, Some(user_hook.bind(py)));
            }
        }
        None => {
            containment.count_reported();
            err.write_unraisable(py, culprit);
        }
    }
}

/// The result of a pvloom operation, usable like `concurrent.futures.Future`:
/// `wait`/`result` (blocking, with timeout), `done`, `add_done_callback`/`then`.
#[pyclass(name = "Completion", module = "pvloom", frozen)]
pub struct PyCompletion {
    result: Arc<AsyncResult<SharedOutcome>>,
    callbacks: Arc<Mutex<Option<Vec<Py<PyAny>>>>>,
    containment: Containment,
    hook: PyHook,
}

impl PyCompletion {
    /// A handle completed later through the returned setter.
    pub fn pending(containment: Containment, hook: PyHook) -> (Self, CompletionSetter) {
        let result = Arc::new(AsyncResult::new());
        let callbacks = Arc::new(Mutex::new(Some(Vec::new())));
        let setter = CompletionSetter {
            result: result.clone(),
            callbacks: callbacks.clone(),
            containment: containment.clone(),
            hook: hook.clone(),
            me: None,
        };
        (PyCompletion { result, callbacks, containment, hook }, setter)
    }
}

/// Completes a [`PyCompletion`] and runs its callbacks on the completing thread. If it
/// is dropped unused (its job was dropped by a full queue or a shutdown), the
/// completion fails with `Abandoned` instead of never completing.
pub struct CompletionSetter {
    result: Arc<AsyncResult<SharedOutcome>>,
    callbacks: Arc<Mutex<Option<Vec<Py<PyAny>>>>>,
    containment: Containment,
    hook: PyHook,
    me: Option<Py<PyCompletion>>,
}

impl Drop for CompletionSetter {
    fn drop(&mut self) {
        if self.result.ready() {
            return;
        }
        let _ = self.result.set(Arc::new(Outcome::Failed(Error::Abandoned)));
        // Taken even when empty: a callback added later must run at once, not join a
        // list that nobody will run any more.
        let callbacks = self.callbacks.lock().take().unwrap_or_default();
        if let (false, Some(me)) = (callbacks.is_empty(), self.me.take()) {
            let (containment, hook) = (self.containment.clone(), self.hook.clone());
            crate::gil::attach(|py| {
                for callback in callbacks {
                    if let Err(err) = callback.call1(py, (me.clone_ref(py),)) {
                        report_exception(py, &containment, "completion.callback", &hook, err, Some(callback.bind(py)));
                    }
                }
            });
        }
    }
}

impl CompletionSetter {
    /// Remember the Python object it completes (for callbacks run on abandonment).
    pub fn bind(&mut self, me: Py<PyCompletion>) {
        self.me = Some(me);
    }

    pub fn set(self, py: Python<'_>, outcome: Outcome, me: &Py<PyCompletion>) {
        let _ = self.result.set(Arc::new(outcome));
        let callbacks = self.callbacks.lock().take().unwrap_or_default();
        for callback in callbacks {
            if let Err(err) = callback.call1(py, (me.clone_ref(py),)) {
                report_exception(
                    py,
                    &self.containment,
                    "completion.callback",
                    &self.hook,
                    err,
                    Some(callback.bind(py)),
                );
            }
        }
    }
}

impl PyCompletion {
    /// The blocking form without a timeout, for Rust callers.
    pub fn blocking_result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.result(py, None)
    }
}

#[pymethods]
impl PyCompletion {
    /// Wait for the result and return it (or raise its exception). `timeout` in
    /// seconds; `None` waits forever; raises `TimeoutError` when it runs out.
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        // A finished completion is read without waiting, so a done-callback may call
        // `result()` even on an I/O thread.
        if let Some(ready) = self.result.peek() {
            return ready.map_err(to_py)?.to_py_result(py);
        }
        let result = self.result.clone();
        let outcome = wait_sliced(py, deadline(timeout), move |slice_end| {
            let remaining = slice_end.saturating_duration_since(std::time::Instant::now());
            match result.get_timeout(remaining) {
                Ok(outcome) => Ok(Some(outcome)),
                Err(Error::Timeout(_)) => Ok(None),
                Err(err) => Err(err),
            }
        })?;
        match outcome {
            Some(outcome) => outcome.to_py_result(py),
            None => Err(to_py(Error::Timeout(
                crate::wait::duration(timeout.unwrap_or(0.0)).ok().flatten().unwrap_or_default(),
            ))),
        }
    }

    /// Alias of `result`, the pvloom name for the blocking form.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.result(py, timeout)
    }

    /// True once the result is there.
    fn done(&self) -> bool {
        self.result.ready()
    }

    /// The exception the operation raised, or `None` (waits like `result`).
    #[pyo3(signature = (timeout=None))]
    fn exception(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        match self.result(py, timeout) {
            Ok(_) => Ok(None),
            Err(err) if err.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) && !self.done() => Err(err),
            Err(err) => Ok(Some(err.value(py).clone().into_any().unbind())),
        }
    }

    /// Call `fn(completion)` once done: now, if it is done already; otherwise on the
    /// thread that completes it (an I/O thread under Inline delivery).
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>) -> PyResult<()> {
        let me = slf.get();
        {
            let mut callbacks = me.callbacks.lock();
            if let Some(pending) = callbacks.as_mut() {
                pending.push(callback);
                return Ok(());
            }
        }
        let py = slf.py();
        if let Err(err) = callback.call1(py, (slf.clone(),)) {
            report_exception(py, &me.containment, "completion.callback", &me.hook, err, Some(callback.bind(py)));
        }
        Ok(())
    }

    /// Alias of `add_done_callback`.
    fn then(slf: &Bound<'_, Self>, callback: Py<PyAny>) -> PyResult<()> {
        Self::add_done_callback(slf, callback)
    }

    fn __repr__(&self) -> String {
        format!("<pvloom.Completion done={}>", self.done())
    }
}

/// True if `value` is an exception instance (BLISS's `AsyncResult.set` convention).
pub fn is_exception(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyBaseException>()
}
