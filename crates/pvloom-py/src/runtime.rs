//! `pvloom.Runtime`: run Python callables on I/O threads or ordered workers.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_core::{
    CallbackFailure, Containment, Deliverer, Delivery, Job, Overflow, Runtime, RuntimeHandle, TimerHandle,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::to_py;
use crate::outcome::{PyCall, PyCompletion, PyHook};

/// A pool of I/O threads that runs Python callbacks.
///
/// `workers=0` (the default) runs callbacks Inline on the I/O threads: lowest latency,
/// and a blocking pvloom call inside them raises `WouldDeadlock`. `workers=N` runs them
/// on N worker threads, in submission order, where blocking is allowed.
#[pyclass(name = "Runtime", module = "pvloom", frozen)]
pub struct PyRuntime {
    runtime: Arc<Mutex<Option<Runtime>>>,
    handle: RuntimeHandle,
    source: Deliverer,
    hook: PyHook,
}

fn parse_overflow(name: &str) -> PyResult<Overflow> {
    match name {
        "drop_oldest" => Ok(Overflow::DropOldest),
        "coalesce" => Ok(Overflow::Coalesce),
        "error" => Ok(Overflow::Error),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "overflow must be 'drop_oldest', 'coalesce' or 'error', not {other:?}"
        ))),
    }
}

/// The Rust-side hook: reports a Rust panic in a callback to the Python hook, or to
/// stderr when there is none.
pub(crate) fn rust_failure_hook(hook: PyHook) -> pvloom_core::ErrorHook {
    Arc::new(move |failure: &CallbackFailure<'_>| {
        crate::gil::attach(|py| {
            let user_hook = hook.lock().as_ref().map(|h| h.clone_ref(py));
            let message = format!("{} (on {})", failure.message, failure.thread);
            match user_hook {
                Some(user_hook) => {
                    let err = pyo3::exceptions::PyRuntimeError::new_err(message);
                    if let Err(hook_err) = user_hook.call1(py, (failure.origin, err.value(py))) {
                        hook_err.write_unraisable(py, Some(user_hook.bind(py)));
                    }
                }
                None => eprintln!("pvloom: callback failed in {}: {message}", failure.origin),
            }
        });
    })
}

impl PyRuntime {
    fn containment(&self) -> &Containment {
        self.handle.containment()
    }

    fn dispatch(&self, origin: &'static str, job: impl FnOnce() + Send + 'static) -> PyResult<()> {
        match &self.source {
            Deliverer::Inline(_) => self.handle.spawn(job),
            Deliverer::Ordered(_) => self.source.deliver(Job::new(origin, job)),
        }
        .map_err(to_py)
    }

    fn callback_job(&self, origin: &'static str, call: PyCall) -> impl FnOnce() + Send + 'static {
        let (containment, hook) = (self.containment().clone(), self.hook.clone());
        move || crate::gil::attach(|py| call.call_contained(py, &containment, origin, &hook))
    }
}

#[pymethods]
impl PyRuntime {
    #[new]
    #[pyo3(signature = (io_threads=2, workers=0, queue_capacity=10_000, overflow="coalesce"))]
    fn new(io_threads: usize, workers: usize, queue_capacity: usize, overflow: &str) -> PyResult<Self> {
        let delivery = if workers == 0 {
            Delivery::Inline
        } else {
            Delivery::Ordered { workers, capacity: queue_capacity, overflow: parse_overflow(overflow)? }
        };
        let hook: PyHook = Arc::new(Mutex::new(None));
        let hold_gil: pvloom_core::WorkerWrapper = Arc::new(|turn: &mut dyn FnMut()| crate::gil::attach(|_| turn()));
        let runtime = Runtime::builder()
            .worker_wrapper(hold_gil)
            .io_threads(io_threads)
            .delivery(delivery)
            .error_hook(rust_failure_hook(hook.clone()))
            .build()
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let handle = runtime.handle();
        let source = handle.deliverer();
        let runtime = Arc::new(Mutex::new(Some(runtime)));
        LIVE_RUNTIMES.lock().push(Arc::downgrade(&runtime));
        Ok(PyRuntime { runtime, handle, source, hook })
    }

    /// Number of I/O threads.
    #[getter]
    fn io_threads(&self) -> usize {
        self.handle.io_threads()
    }

    /// Callback failures (exceptions and panics) counted so far.
    #[getter]
    fn callback_errors(&self) -> u64 {
        self.handle.callback_failures()
    }

    /// Install `hook(origin: str, exception)` for failing callbacks; `None` restores the
    /// default (Python's "Exception ignored in ..." report on stderr). The hook runs on
    /// the failing callback's thread and must not block.
    fn set_error_hook(&self, hook: Option<Py<PyAny>>) {
        *self.hook.lock() = hook;
    }

    /// Run `func(*args, **kwargs)` soon, as a callback (its exception is contained).
    #[pyo3(signature = (func, *args, **kwargs))]
    fn call_soon(&self, func: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) -> PyResult<()> {
        let job = self.callback_job("runtime.call_soon", PyCall::new(func, args, kwargs));
        self.dispatch("runtime.call_soon", job)
    }

    /// Run `func(*args, **kwargs)` as a callback after `delay` seconds.
    #[pyo3(signature = (delay, func, *args, **kwargs))]
    fn call_later(
        &self,
        delay: f64,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<PyTimer> {
        let delay = crate::wait::duration(delay)?.unwrap_or(Duration::from_secs(u64::from(u32::MAX)));
        let job = self.callback_job("runtime.call_later", PyCall::new(func, args, kwargs));
        let source = self.source.clone();
        let timer = self.handle.call_later(delay, move || {
            let _ = source.deliver(Job::new("runtime.call_later", job));
        });
        Ok(PyTimer { timer })
    }

    /// Run `func(*args, **kwargs)` as a callback every `period` seconds until cancelled.
    #[pyo3(signature = (period, func, *args, **kwargs))]
    fn call_every(
        &self,
        period: f64,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<PyTimer> {
        let period = crate::wait::duration(period)?
            .unwrap_or(Duration::from_secs(u64::from(u32::MAX)))
            .max(Duration::from_millis(1));
        let call = Arc::new(PyCall::new(func, args, kwargs));
        let (containment, hook, source) = (self.containment().clone(), self.hook.clone(), self.source.clone());
        let timer = self.handle.call_every(period, move || {
            let (call, containment, hook) = (call.clone(), containment.clone(), hook.clone());
            let job =
                move || crate::gil::attach(|py| call.call_contained(py, &containment, "runtime.call_every", &hook));
            let _ = source.deliver(Job::new("runtime.call_every", job));
        });
        Ok(PyTimer { timer })
    }

    /// Run `func(*args, **kwargs)` as a callback; the returned Completion gets its
    /// value or exception (the non-blocking form; `.result(timeout)` is the blocking one).
    #[pyo3(signature = (func, *args, **kwargs))]
    fn submit(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<PyCompletion>> {
        let call = PyCall::new(func, args, kwargs);
        let (completion, mut setter) = PyCompletion::pending(self.containment().clone(), self.hook.clone());
        let completion = Py::new(py, completion)?;
        let me = completion.clone_ref(py);
        setter.bind(completion.clone_ref(py));
        self.dispatch("runtime.submit", move || {
            crate::gil::attach(|py| {
                let outcome = call.call(py);
                setter.set(py, outcome, &me);
            })
        })?;
        Ok(completion)
    }

    /// Statistics of each I/O thread: name, busy_fraction, events, callbacks, ...
    fn thread_stats<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.handle
            .thread_stats()
            .into_iter()
            .map(|s| {
                let d = PyDict::new(py);
                d.set_item("index", s.index)?;
                d.set_item("name", s.name)?;
                d.set_item("busy_fraction", s.busy_fraction)?;
                d.set_item("busy_total", s.busy_total.as_secs_f64())?;
                d.set_item("events", s.events)?;
                d.set_item("callbacks", s.callbacks)?;
                d.set_item("timers_fired", s.timers_fired)?;
                d.set_item("handlers", s.handlers)?;
                Ok(d)
            })
            .collect()
    }

    /// Stop the threads (waits for running callbacks; releases the GIL meanwhile).
    fn shutdown(&self, py: Python<'_>) {
        let runtime = self.runtime.lock().take();
        py.detach(move || drop(runtime));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: Py<PyTuple>) {
        self.shutdown(py);
    }
}

impl Drop for PyRuntime {
    fn drop(&mut self) {
        let runtime = self.runtime.lock().take();
        if runtime.is_some() {
            // I/O threads may be waiting for the GIL to run a callback: release it while
            // joining them.
            crate::gil::attach(|py| py.detach(move || drop(runtime)));
        }
    }
}

/// Every runtime made from Python that may still run: shut down at interpreter exit,
/// before finalization, since their threads would otherwise take the GIL of a dying
/// interpreter.
static LIVE_RUNTIMES: Mutex<Vec<std::sync::Weak<Mutex<Option<Runtime>>>>> = Mutex::new(Vec::new());

/// Have `runtime` shut down by [`_shutdown_all`] at interpreter exit (for runtimes made
/// by other modules, such as `pvloom.ldms`'s).
pub(crate) fn register_live(runtime: &Arc<Mutex<Option<Runtime>>>) {
    LIVE_RUNTIMES.lock().push(Arc::downgrade(runtime));
}

/// Shut down every runtime and stop every `pvloom.sync.Thread` still running
/// (registered with `atexit` by the `pvloom` package).
#[pyfunction]
pub fn _shutdown_all(py: Python<'_>) {
    let runtimes: Vec<Runtime> = {
        let mut live = LIVE_RUNTIMES.lock();
        let taken = live.iter().filter_map(std::sync::Weak::upgrade).filter_map(|r| r.lock().take()).collect();
        live.clear();
        taken
    };
    py.detach(move || drop(runtimes));
    crate::sync::stop_all_threads(py);
}

/// A timer made by `Runtime.call_later` / `call_every`.
#[pyclass(name = "Timer", module = "pvloom", frozen)]
pub struct PyTimer {
    timer: TimerHandle,
}

#[pymethods]
impl PyTimer {
    /// Stop the timer.
    fn cancel(&self) {
        self.timer.cancel();
    }

    /// True once cancelled.
    #[getter]
    fn cancelled(&self) -> bool {
        self.timer.is_cancelled()
    }
}
