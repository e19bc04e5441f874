//! `pvloom.sync`: the cross-thread primitives for Python threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pvloom_core::sync::{
    AsyncResult, Event, HubTrigger, Launcher, Lock, Queue, RLock, Thread, ThreadContext, ThreadResource,
};
use pvloom_core::{Completion, Containment, Error};
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::to_py;
use crate::outcome::{Outcome, PyCall, PyCompletion, PyHook, SharedOutcome, is_exception};
use crate::wait::{deadline, wait_sliced};

fn remaining(slice_end: Instant) -> Duration {
    slice_end.saturating_duration_since(Instant::now())
}

fn no_hook() -> PyHook {
    Arc::new(parking_lot::Mutex::new(None))
}

/// A Python completion fed by a pvloom completion.
fn completion_to_py(py: Python<'_>, completion: Completion<Outcome>) -> PyResult<Py<PyCompletion>> {
    let (handle, mut setter) = PyCompletion::pending(Containment::global().clone(), no_hook());
    let handle = Py::new(py, handle)?;
    let me = handle.clone_ref(py);
    setter.bind(handle.clone_ref(py));
    completion.then(move |result| {
        crate::gil::attach(|py| setter.set(py, result.unwrap_or_else(Outcome::Failed), &me));
    });
    Ok(handle)
}

fn outcome_of(value: Py<PyAny>, py: Python<'_>) -> Outcome {
    let bound = value.bind(py);
    if is_exception(bound) { Outcome::Raised(PyErr::from_value(bound.clone())) } else { Outcome::Value(value) }
}

/// Set once, wakes every waiter (`threading.Event`-like).
#[pyclass(name = "Event", module = "pvloom.sync", frozen)]
pub struct PyEvent {
    inner: Arc<Event>,
}

#[pymethods]
impl PyEvent {
    #[new]
    fn new() -> Self {
        PyEvent { inner: Arc::new(Event::new()) }
    }

    /// Wait until set; `False` if `timeout` (seconds) ran out.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let event = self.inner.clone();
        let set = wait_sliced(py, deadline(timeout), move |end| Ok(event.wait_timeout(remaining(end))?.then_some(())))?;
        Ok(set.is_some())
    }

    fn set(&self) {
        self.inner.set();
    }

    /// BLISS's name for `set`.
    fn send(&self) {
        self.inner.set();
    }

    fn clear(&self) {
        self.inner.clear();
    }

    fn is_set(&self) -> bool {
        self.inner.is_set()
    }
}

fn queue_exception(py: Python<'_>, name: &str) -> PyErr {
    match py.import("queue").and_then(|m| m.getattr(name)) {
        Ok(class) => PyErr::from_type(class.cast_into().expect("queue exceptions are types"), ()),
        Err(err) => err,
    }
}

/// MPMC queue (`queue.Queue`-like; `maxsize=0` is unbounded).
#[pyclass(name = "Queue", module = "pvloom.sync", frozen)]
pub struct PyQueue {
    inner: Queue<Py<PyAny>>,
}

#[pymethods]
impl PyQueue {
    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: usize) -> Self {
        PyQueue { inner: if maxsize == 0 { Queue::unbounded() } else { Queue::bounded(maxsize) } }
    }

    /// Put `item`; waits for room when bounded (raises `queue.Full` on timeout).
    #[pyo3(signature = (item, block=true, timeout=None))]
    fn put(&self, py: Python<'_>, item: Py<PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        let item = match self.inner.try_put(item) {
            Ok(()) => return Ok(()),
            Err(item) if !block => {
                drop(item);
                return Err(queue_exception(py, "Full"));
            }
            Err(item) => item,
        };
        let queue = self.inner.clone();
        let mut pending = Some(item);
        let put = wait_sliced(py, deadline(timeout), move |end| {
            let item = pending.take().expect("kept until put");
            match queue.put_timeout_returning(item, remaining(end))? {
                Ok(()) => Ok(Some(())),
                Err(item) => {
                    pending = Some(item);
                    Ok(None)
                }
            }
        })?;
        put.ok_or_else(|| queue_exception(py, "Full"))
    }

    /// Take the oldest item (raises `queue.Empty` on timeout or when empty and not blocking).
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        if let Some(item) = self.inner.try_get() {
            return Ok(item);
        }
        if !block {
            return Err(queue_exception(py, "Empty"));
        }
        let queue = self.inner.clone();
        let item = wait_sliced(py, deadline(timeout), move |end| match queue.get_timeout(remaining(end)) {
            Ok(item) => Ok(Some(item)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(err) => Err(err),
        })?;
        item.ok_or_else(|| queue_exception(py, "Empty"))
    }

    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.put(py, item, false, None)
    }

    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get(py, false, None)
    }

    fn qsize(&self) -> usize {
        self.inner.len()
    }

    fn empty(&self) -> bool {
        self.inner.is_empty()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// A result set once (a value, or an exception instance) and read by many.
#[pyclass(name = "AsyncResult", module = "pvloom.sync", frozen)]
pub struct PyAsyncResult {
    inner: Arc<AsyncResult<SharedOutcome>>,
}

#[pymethods]
impl PyAsyncResult {
    #[new]
    fn new() -> Self {
        PyAsyncResult { inner: Arc::new(AsyncResult::new()) }
    }

    /// Set the result; an exception instance makes `get` raise it.
    fn set(&self, py: Python<'_>, value: Py<PyAny>) -> PyResult<()> {
        self.inner.set(Arc::new(outcome_of(value, py))).map_err(to_py)
    }

    /// Wait for the result and return it, or raise the exception that was set.
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let result = self.inner.clone();
        let outcome = wait_sliced(py, deadline(timeout), move |end| match result.get_timeout(remaining(end)) {
            Ok(outcome) => Ok(Some(outcome)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(err) => Err(err),
        })?;
        match outcome {
            Some(outcome) => outcome.to_py_result(py),
            None => Err(PyTimeoutError::new_err("AsyncResult.get timed out")),
        }
    }

    /// Wait until set; `False` if `timeout` ran out.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let result = self.inner.clone();
        let ready =
            wait_sliced(py, deadline(timeout), move |end| Ok(result.wait(Some(remaining(end)))?.then_some(())))?;
        Ok(ready.is_some())
    }

    fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// True if set to a value (not an exception).
    fn successful(&self) -> bool {
        self.inner.peek().is_some_and(|o| o.as_ref().is_ok_and(|o| matches!(**o, Outcome::Value(_))))
    }
}

fn runtime_error(message: &str) -> PyErr {
    PyRuntimeError::new_err(message.to_owned())
}

/// A lock (`threading.Lock`-like) shared by threads.
#[pyclass(name = "Lock", module = "pvloom.sync", frozen)]
pub struct PyLock {
    inner: Arc<Lock>,
}

#[pymethods]
impl PyLock {
    #[new]
    fn new() -> Self {
        PyLock { inner: Arc::new(Lock::new()) }
    }

    #[pyo3(signature = (blocking=true, timeout=-1.0))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        if let Some(guard) = self.inner.try_acquire() {
            guard.keep();
            return Ok(true);
        }
        if !blocking {
            return Ok(false);
        }
        let lock = self.inner.clone();
        let got = wait_sliced(py, deadline(Some(timeout)), move |end| {
            Ok(lock.acquire_timeout(remaining(end))?.map(|guard| guard.keep()))
        })?;
        Ok(got.is_some())
    }

    fn release(&self) -> PyResult<()> {
        self.inner.release().map_err(|_| runtime_error("release unlocked lock"))
    }

    fn locked(&self) -> bool {
        self.inner.is_locked()
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, -1.0)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: Py<PyTuple>) -> PyResult<()> {
        self.release()
    }
}

/// A re-entrant lock owned by a thread (`threading.RLock`-like).
#[pyclass(name = "RLock", module = "pvloom.sync", frozen)]
pub struct PyRLock {
    inner: Arc<RLock>,
}

#[pymethods]
impl PyRLock {
    #[new]
    fn new() -> Self {
        PyRLock { inner: Arc::new(RLock::new()) }
    }

    #[pyo3(signature = (blocking=true, timeout=-1.0))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        if let Some(guard) = self.inner.try_acquire() {
            guard.keep();
            return Ok(true);
        }
        if !blocking {
            return Ok(false);
        }
        let lock = self.inner.clone();
        let got = wait_sliced(py, deadline(Some(timeout)), move |end| {
            Ok(lock.acquire_timeout(remaining(end))?.map(|guard| guard.keep()))
        })?;
        Ok(got.is_some())
    }

    fn release(&self) -> PyResult<()> {
        self.inner.release().map_err(|_| runtime_error("cannot release un-acquired lock"))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, -1.0)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: Py<PyTuple>) -> PyResult<()> {
        self.release()
    }
}

/// Runs functions on the thread that created it, from any thread.
#[pyclass(name = "Launcher", module = "pvloom.sync", frozen)]
pub struct PyLauncher {
    inner: Launcher,
}

fn launcher_apply_async(py: Python<'_>, launcher: &Launcher, call: PyCall) -> PyResult<Py<PyCompletion>> {
    let completion = launcher.apply_async(move || crate::gil::attach(|py| call.call(py)));
    completion_to_py(py, completion)
}

fn launcher_apply(py: Python<'_>, launcher: &Launcher, call: PyCall) -> PyResult<Py<PyAny>> {
    if launcher.is_owner() {
        return call.call(py).to_py_result(py);
    }
    let completion = launcher_apply_async(py, launcher, call)?;
    completion.get().wait_for(py)
}

impl PyCompletion {
    fn wait_for(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.blocking_result(py)
    }
}

#[pymethods]
impl PyLauncher {
    #[new]
    fn new() -> Self {
        PyLauncher { inner: Launcher::new() }
    }

    /// The calling thread's hub: its `Thread`'s launcher, or one made for it on first use.
    #[staticmethod]
    fn current() -> Self {
        PyLauncher { inner: Launcher::current() }
    }

    /// Run `func(*args, **kwargs)` on the owning thread and return its value.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn apply(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        launcher_apply(py, &self.inner, PyCall::new(func, args, kwargs))
    }

    /// Queue `func(*args, **kwargs)` for the owning thread; returns a Completion.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn apply_async(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<PyCompletion>> {
        launcher_apply_async(py, &self.inner, PyCall::new(func, args, kwargs))
    }

    /// Owner only: wait up to `timeout` seconds for work, run it all; returns how many ran.
    #[pyo3(signature = (timeout=None))]
    fn serve(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let launcher = self.inner.clone();
        let ran = wait_sliced(py, deadline(timeout), move |end| {
            let ran = launcher.serve(remaining(end))?;
            Ok((ran > 0).then_some(ran))
        })?;
        Ok(ran.unwrap_or(0))
    }

    /// Owner only: run what is queued now.
    fn run_pending(&self, py: Python<'_>) -> PyResult<usize> {
        let launcher = self.inner.clone();
        py.detach(move || launcher.run_pending()).map_err(to_py)
    }

    /// Functions queued and not yet run.
    fn pending(&self) -> usize {
        self.inner.pending()
    }
}

/// `HubTrigger(func, blocking=False, launcher=None)`: `send()` from any thread runs
/// `func()` on the hub of the thread that created it — the launcher that thread serves
/// (`Launcher.current()`, or a `Thread`'s own). Sends before a run coalesce; an
/// exception goes to `sys.unraisablehook`, never to the sender.
#[pyclass(name = "HubTrigger", module = "pvloom.sync", frozen)]
pub struct PyHubTrigger {
    inner: HubTrigger,
}

#[pymethods]
impl PyHubTrigger {
    #[new]
    #[pyo3(signature = (func, blocking=false, launcher=None))]
    fn new(func: Py<PyAny>, blocking: bool, launcher: Option<PyRef<'_, PyLauncher>>) -> Self {
        let launcher = launcher.map_or_else(Launcher::current, |l| l.inner.clone());
        let inner = HubTrigger::new(&launcher, blocking, move || {
            crate::gil::attach(|py| {
                if let Err(err) = func.call0(py) {
                    // Python prints its own traceback; the containment only counts it.
                    err.write_unraisable(py, Some(func.bind(py)));
                    Containment::global().count_reported();
                }
            });
        });
        PyHubTrigger { inner }
    }

    /// Have `func` run on the hub; `False` when the hub stopped serving for good.
    fn send(&self, py: Python<'_>) -> bool {
        let inner = &self.inner;
        // A blocking trigger sent on its hub runs `func` here, with the GIL held.
        py.detach(|| inner.send())
    }

    /// Whether a run is queued and not yet started.
    fn pending(&self) -> bool {
        self.inner.is_pending()
    }
}

/// What a `Thread`'s main function gets: `serve(timeout)` and `should_stop()`.
#[pyclass(name = "ThreadContext", module = "pvloom.sync", frozen)]
pub struct PyThreadContext {
    inner: ThreadContext,
}

#[pymethods]
impl PyThreadContext {
    fn should_stop(&self) -> bool {
        self.inner.should_stop()
    }

    /// Run functions handed to this thread, waiting up to `timeout` seconds for the first.
    #[pyo3(signature = (timeout=None))]
    fn serve(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let ctx = self.inner.clone();
        let ran = wait_sliced(py, deadline(timeout), move |end| {
            let ran = ctx.serve(remaining(end))?;
            Ok((ran > 0 || ctx.should_stop()).then_some(ran))
        })?;
        Ok(ran.unwrap_or(0))
    }
}

/// Threads made from Python, stopped at interpreter exit.
static LIVE_THREADS: parking_lot::Mutex<Vec<Thread<SharedOutcome>>> = parking_lot::Mutex::new(Vec::new());

/// Ask every running `pvloom.sync.Thread` to stop and give each a moment to end.
pub fn stop_all_threads(py: Python<'_>) {
    let threads: Vec<Thread<SharedOutcome>> = std::mem::take(&mut *LIVE_THREADS.lock());
    py.detach(move || {
        for thread in &threads {
            let _ = thread.stop(false, None);
        }
        for thread in &threads {
            // Not `is_alive`: one started a moment ago without waiting is not alive yet,
            // and would run its main after the interpreter is gone.
            if !thread.has_ended() {
                let _ = thread.join(Some(Duration::from_millis(500)));
            }
        }
    });
}

/// A thread other threads can hand functions to, with start/stop/join/get.
///
/// `Thread(main=None, name=None)`: without `main` it serves handed-over functions until
/// stopped; with `main`, `main(ctx)` runs and may call `ctx.serve(timeout)` and
/// `ctx.should_stop()`; `get()` returns its value or raises its exception.
#[pyclass(name = "Thread", module = "pvloom.sync", frozen)]
pub struct PyThread {
    inner: Thread<SharedOutcome>,
}

#[pymethods]
impl PyThread {
    #[new]
    #[pyo3(signature = (main=None, name=None))]
    fn new(main: Option<Py<PyAny>>, name: Option<String>) -> Self {
        let name = name.unwrap_or_else(|| "pvloom-thread".to_owned());
        let inner = Thread::new(name, move |ctx: &ThreadContext| {
            let Some(main) = main else {
                ctx.serve_until_stopped()?;
                return Ok(Arc::new(crate::gil::attach(|py| Outcome::Value(py.None()))));
            };
            let ctx = ctx.clone();
            Ok(Arc::new(crate::gil::attach(|py| match Py::new(py, PyThreadContext { inner: ctx }) {
                Ok(ctx) => match main.call1(py, (ctx,)) {
                    Ok(value) => Outcome::Value(value),
                    Err(err) => Outcome::Raised(err),
                },
                Err(err) => Outcome::Raised(err),
            })))
        });
        PyThread { inner }
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    #[pyo3(signature = (wait=true, timeout=None))]
    fn start(&self, py: Python<'_>, wait: bool, timeout: Option<f64>) -> PyResult<()> {
        let thread = self.inner.clone();
        // Only the ended ones go: one started a moment ago is not alive yet, and must
        // still be stopped at exit. They are dropped after the lock: the last reference
        // to a result can run Python finalizers, which may let in a thread that wants
        // this lock while it holds the GIL.
        let ended: Vec<_> = {
            let mut live = LIVE_THREADS.lock();
            let (ended, kept) = std::mem::take(&mut *live).into_iter().partition(Thread::has_ended);
            *live = kept;
            live.push(self.inner.clone());
            ended
        };
        drop(ended);
        let timeout = match timeout {
            Some(secs) => crate::wait::duration(secs)?,
            None => None,
        };
        py.detach(move || thread.start(wait, timeout)).map_err(to_py)
    }

    #[pyo3(signature = (wait=true, timeout=None))]
    fn stop(&self, py: Python<'_>, wait: bool, timeout: Option<f64>) -> PyResult<()> {
        self.inner.stop(false, None).map_err(to_py)?;
        if wait { self.join(py, timeout) } else { Ok(()) }
    }

    /// Wait until the main function returned (raises `TimeoutError`).
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let thread = self.inner.clone();
        let joined = wait_sliced(py, deadline(timeout), move |end| match thread.join(Some(remaining(end))) {
            Ok(()) => Ok(Some(())),
            Err(Error::Timeout(_)) => Ok(None),
            Err(err) => Err(err),
        })?;
        joined.ok_or_else(|| PyTimeoutError::new_err("Thread.join timed out"))
    }

    /// Join, then return the main function's value or raise its exception.
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.join(py, timeout)?;
        let thread = self.inner.clone();
        let outcome = py.detach(move || thread.get(Some(Duration::ZERO))).map_err(to_py)?;
        outcome.to_py_result(py)
    }

    fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// Run `func(*args, **kwargs)` on the thread, ignoring its result.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn spawn(&self, func: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) {
        let call = PyCall::new(func, args, kwargs);
        let hook = no_hook();
        self.inner.spawn(move || {
            crate::gil::attach(|py| call.call_contained(py, Containment::global(), "sync.thread.spawn", &hook))
        });
    }

    /// Run `func(*args, **kwargs)` on the thread and return its value.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn apply(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let completion = self.apply_async(py, func, args, kwargs)?;
        completion.get().wait_for(py)
    }

    /// Run `func(*args, **kwargs)` on the thread; returns a Completion.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn apply_async(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<PyCompletion>> {
        let call = PyCall::new(func, args, kwargs);
        let completion = self.inner.apply_async(move || crate::gil::attach(|py| call.call(py)));
        completion_to_py(py, completion)
    }
}

/// One value per thread, made by `init()` on first `get()`, dropped when its thread ends.
#[pyclass(name = "ThreadResource", module = "pvloom.sync", frozen)]
pub struct PyThreadResource {
    inner: ThreadResource<SharedOutcome>,
}

#[pymethods]
impl PyThreadResource {
    #[new]
    fn new(init: Py<PyAny>) -> Self {
        let inner = ThreadResource::new(move || {
            Arc::new(crate::gil::attach(|py| match init.call0(py) {
                Ok(value) => Outcome::Value(value),
                Err(err) => Outcome::Raised(err),
            }))
        });
        PyThreadResource { inner }
    }

    /// This thread's value (made now if needed).
    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = self.inner.get();
        if matches!(**value, Outcome::Raised(_)) {
            self.inner.pop();
        }
        value.to_py_result(py)
    }

    /// Remove this thread's value; returns it or `None`.
    fn pop(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.pop().map(|value| value.to_py_result(py)).transpose()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let values: Vec<Py<PyAny>> = self.inner.iter().filter_map(|value| value.to_py_result(py).ok()).collect();
        Ok(pyo3::types::PyList::new(py, values)?.try_iter()?.into_any().unbind())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
