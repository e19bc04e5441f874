//! `pvloom.chirp`'s native half: libchirp's Python pool API (`libchirp.pool`,
//! `libchirp.queue`) on pvloom's Rust chirp node.
//!
//! - [`ChirpLoop`](PyChirpLoop): what libchirp's `Loop` stands for, a pvloom runtime
//!   (two I/O threads, Inline delivery) that runs every node made on it.
//! - [`message`]: `Message`, libchirp's message with its properties; a received one
//!   holds its slot until released.
//! - [`node`]: `ChirpNode`, a running node: send, request, the held-message registry
//!   `stop()` waits on, and the hand-off of every received message to Python.
//!
//! What libchirp's Python layer does in Python (the thread pool, the queue, AUTO_RELEASE,
//! the config object and its checks) stays in Python (`pvloom/chirp.py`); this side
//! owns what has to be fast or correct under threads: moving messages, matching answers
//! to requests (registered before the send, so none is lost), releasing slots.
//!
//! The I/O threads never wait for the GIL to resolve a future: the node completes sends
//! and answers on them, sometimes while it holds its own locks, and the Python threads
//! keep the GIL while calling into the node (its calls never block), so a callback
//! waiting for the GIL there could deadlock. They hand the work to the loop's
//! [`Resolver`] instead, which resolves futures in batches, the GIL taken once per
//! batch rather than once per message (the GIL hand-over between threads, not Python,
//! was most of a send's cost). A thread already waiting on a future resolves it itself
//! ([`pending`]), and the pool's received messages skip the resolver ([`work_queue`]).

mod message;
mod node;
mod pending;
mod work_queue;

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use pvloom_chirp::{ChirpError, ConfigError, SendError, SendFailure};
use pvloom_core::{Containment, Delivery, Runtime, RuntimeHandle};
use pyo3::exceptions::{PyConnectionError, PyMemoryError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::to_py;
use crate::outcome::{PyCall, PyHook, report_exception};

pub use message::PyChirpMessage;
pub use node::PyChirpNode;
pub use pending::PyChirpPending;
pub use work_queue::PyChirpWorkQueue;

/// libchirp's error codes (`ch_error_t`), set as `ecode` on the exceptions, as the real
/// module does.
pub(crate) mod ecode {
    pub const VALUE_ERROR: i32 = 1;
    pub const PROTOCOL_ERROR: i32 = 3;
    pub const EADDRINUSE: i32 = 4;
    pub const TLS_ERROR: i32 = 6;
    pub const TIMEOUT: i32 = 9;
    pub const ENOMEM: i32 = 10;
    pub const SHUTDOWN: i32 = 11;
    pub const CANNOT_CONNECT: i32 = 12;
    pub const BUSY: i32 = 16;
    pub const WRITE_ERROR: i32 = 18;
}

/// Register the chirp classes in `_pvloom`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyChirpLoop>()?;
    m.add_class::<PyChirpMessage>()?;
    m.add_class::<PyChirpNode>()?;
    m.add_class::<PyChirpPending>()?;
    m.add_class::<PyChirpWorkQueue>()?;
    Ok(())
}

/// What the nodes of one loop share: the runtime, the resolver and where callback
/// failures go.
pub(crate) struct LoopEnv {
    pub(crate) handle: RuntimeHandle,
    pub(crate) containment: Containment,
    pub(crate) hook: PyHook,
    pub(crate) resolver: Arc<Resolver>,
    runtime: Arc<Mutex<Option<Runtime>>>,
}

/// Python work handed over by the I/O threads.
pub(crate) type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

#[derive(Default)]
struct Jobs {
    queue: Vec<Job>,
    stopped: bool,
}

/// One thread per loop that runs [`Job`]s in order, in batches: it takes the GIL once
/// for everything queued while it waited for it.
#[derive(Default)]
pub(crate) struct Resolver {
    jobs: Mutex<Jobs>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Resolver {
    fn start() -> std::io::Result<Arc<Resolver>> {
        let resolver = Arc::new(Resolver::default());
        let runs = resolver.clone();
        // "pvloom" in the name: gil::attach keeps the thread's Python state across batches.
        let thread = std::thread::Builder::new().name("pvloom-chirp-py".into()).spawn(move || runs.run())?;
        *resolver.thread.lock() = Some(thread);
        Ok(resolver)
    }

    /// Queue `job`. Never waits for the GIL, so it may be called under any lock.
    /// After [`stop`](Self::stop) the job runs here (only Python threads get here then).
    pub(crate) fn push(&self, job: Job) {
        let mut jobs = self.jobs.lock();
        if jobs.stopped {
            drop(jobs);
            crate::gil::attach(job);
            return;
        }
        jobs.queue.push(job);
        if jobs.queue.len() == 1 {
            self.wake.notify_one();
        }
    }

    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut jobs = self.jobs.lock();
                while jobs.queue.is_empty() && !jobs.stopped {
                    self.wake.wait(&mut jobs);
                }
                if jobs.queue.is_empty() {
                    return;
                }
                std::mem::swap(&mut batch, &mut jobs.queue);
            }
            crate::gil::attach(|py| {
                // What arrived while this batch ran joins it: the GIL is already held.
                loop {
                    for job in batch.drain(..) {
                        job(py);
                    }
                    std::mem::swap(&mut batch, &mut self.jobs.lock().queue);
                    if batch.is_empty() {
                        break;
                    }
                }
            });
        }
    }

    /// Run what is queued, then end the thread; later jobs run where they are pushed.
    /// Called without the GIL (the thread needs it to finish).
    fn stop(&self) {
        self.jobs.lock().stopped = true;
        self.wake.notify_all();
        let thread = self.thread.lock().take();
        // A future's done-callback runs on the resolver thread and may stop the loop
        // there: that thread ends by itself once this job returns, it cannot join itself.
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

impl LoopEnv {
    /// Call `func(*args)` with the GIL held; an exception is reported and counted.
    pub(crate) fn call<'py>(
        &self,
        py: Python<'py>,
        origin: &str,
        func: &Py<PyAny>,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) {
        if let Err(err) = func.bind(py).call1(args) {
            report_exception(py, &self.containment, origin, &self.hook, err, Some(func.bind(py)));
        }
    }
}

/// libchirp's `Loop`: a pvloom runtime for chirp nodes. Its I/O threads own every
/// socket and timer of the nodes made on it and call into Python (Inline delivery).
#[pyclass(name = "ChirpLoop", module = "pvloom.chirp", frozen)]
pub struct PyChirpLoop {
    env: Arc<LoopEnv>,
}

#[pymethods]
impl PyChirpLoop {
    #[new]
    #[pyo3(signature = (io_threads=2))]
    fn new(io_threads: usize) -> PyResult<Self> {
        let hook: PyHook = Arc::new(Mutex::new(None));
        let runtime = Runtime::builder()
            .io_threads(io_threads.max(1))
            .delivery(Delivery::Inline)
            .error_hook(crate::runtime::rust_failure_hook(hook.clone()))
            .build()
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let handle = runtime.handle();
        let containment = handle.containment().clone();
        let resolver = Resolver::start().map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let runtime = Arc::new(Mutex::new(Some(runtime)));
        crate::runtime::register_live(&runtime);
        Ok(PyChirpLoop { env: Arc::new(LoopEnv { handle, containment, hook, resolver, runtime }) })
    }

    /// Run `func(*args, **kwargs)` on one of the loop's I/O threads (libchirp's
    /// `Loop.call_soon`); an exception is reported and counted.
    #[pyo3(signature = (func, *args, **kwargs))]
    fn call_soon(&self, func: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) -> PyResult<()> {
        let call = PyCall::new(func, args, kwargs);
        let env = self.env.clone();
        let ran = self.env.handle.submit(move || {
            crate::gil::attach(|py| call.call_contained(py, &env.containment, "chirp.Loop.call_soon", &env.hook));
        });
        drop(ran);
        Ok(())
    }

    /// Install `hook(origin, exception)` for exceptions raised in this loop's
    /// callbacks; `None` restores Python's "Exception ignored in" report.
    #[pyo3(signature = (hook=None))]
    fn set_error_hook(&self, hook: Option<Py<PyAny>>) {
        *self.env.hook.lock() = hook;
    }

    /// Exceptions (and panics) in this loop's callbacks so far.
    #[getter]
    fn callback_errors(&self) -> u64 {
        self.env.containment.failures()
    }

    /// Stop the runtime (its nodes must be stopped first). Releases the GIL while
    /// joining the I/O threads, which may be waiting for it.
    fn shutdown(&self, py: Python<'_>) {
        let runtime = self.env.runtime.lock().take();
        let resolver = self.env.resolver.clone();
        py.detach(move || {
            // The runtime first: stopping it may still complete sends.
            drop(runtime);
            resolver.stop();
        });
    }

    /// True until `shutdown`.
    #[getter]
    fn running(&self) -> bool {
        self.env.runtime.lock().is_some()
    }
}

/// `concurrent.futures.Future`, imported once.
static FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A new, pending `concurrent.futures.Future`.
pub(crate) fn new_future(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let class = FUTURE.get_or_try_init(py, || py.import("concurrent.futures")?.getattr("Future").map(Bound::unbind))?;
    Ok(class.bind(py).call0()?.unbind())
}

/// Resolve `future` with `result` or fail it with `error`; a future already resolved
/// (cancelled by its owner) is left as it is.
pub(crate) fn resolve(py: Python<'_>, env: &LoopEnv, future: &Py<PyAny>, outcome: PyResult<Py<PyAny>>) {
    let future = future.bind(py);
    // What may give the GIL away (an exception's value is built lazily) comes first.
    let (ok, value) = match outcome {
        Ok(value) => (true, value.into_bound(py)),
        Err(err) => (false, err.value(py).clone().into_any()),
    };
    if store_untouched(py, future, ok, &value) {
        return;
    }
    let method = if ok { intern!(py, "set_result") } else { intern!(py, "set_exception") };
    match future.call_method1(method, (value,)) {
        // Cancelled (or resolved) by its owner meanwhile: nothing to tell.
        Err(err) if err.is_instance(py, invalid_state(py)) => {}
        Err(err) => report_exception(py, &env.containment, "chirp future", &env.hook, err, None),
        Ok(_) => {}
    }
}

/// A `pvloom.chirp` future that nobody has waited on, cancelled or added a callback
/// to has not made its `Condition` yet (it makes it at the first use): nothing can be
/// waiting for it, so its fields are set directly (`true`). That saves the Condition
/// (2-3 µs, most of an asynchronous send's cost). Any other future, or one with a
/// Condition, is left for `set_result` (`false`).
///
/// Nothing between the look and the stores may give the GIL away, or a `result()` or
/// `cancel()` could come in between: pyo3's `intern!` detaches from the interpreter
/// while it makes its string, the first time, so every string is made before the look.
/// (Before that, a `result()` that came then made the Condition, found the future
/// pending and slept its whole timeout: the first batch of sends of a process, one run
/// in twenty.) The Condition is still looked for again after the stores: if one
/// appeared, `_finished_directly` does what `set_result` does once it stored the
/// outcome (the waiters of `concurrent.futures.wait`, `notify_all`, the done-callbacks).
fn store_untouched(py: Python<'_>, future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> bool {
    let (condition, cond, pending) = (intern!(py, "_condition"), intern!(py, "_cond"), intern!(py, "_pending"));
    let key = if ok { intern!(py, "_result") } else { intern!(py, "_exception") };
    let (state, finished) = (intern!(py, "_state"), intern!(py, "FINISHED"));
    let finished_directly = intern!(py, "_finished_directly");
    let Ok(dict) = future.getattr(intern!(py, "__dict__")) else { return false };
    let Ok(dict) = dict.cast::<PyDict>() else { return false };
    // A plain Future keeps its Condition in `_condition`; a pvloom one makes `_cond`.
    let untouched = matches!(dict.contains(condition), Ok(false))
        && matches!(dict.contains(cond), Ok(false))
        && matches!(dict.contains(pending), Ok(true));
    if !untouched || dict.set_item(key, value).and_then(|()| dict.set_item(state, finished)).is_err() {
        return false;
    }
    if matches!(dict.contains(cond), Ok(true))
        && let Err(err) = future.call_method0(finished_directly)
    {
        err.write_unraisable(py, Some(future));
    }
    true
}

/// `concurrent.futures.InvalidStateError`, what setting a done future raises.
fn invalid_state(py: Python<'_>) -> &Bound<'_, PyAny> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS
        .get_or_init(py, || {
            py.import("concurrent.futures")
                .and_then(|m| m.getattr("InvalidStateError"))
                .map(Bound::unbind)
                .unwrap_or_else(|_| py.get_type::<pyo3::exceptions::PyRuntimeError>().into_any().unbind())
        })
        .bind(py)
}

/// `exception` with libchirp's `ecode` attribute.
fn with_ecode(py: Python<'_>, err: PyErr, code: i32) -> PyErr {
    let _ = err.value(py).setattr("ecode", code);
    err
}

/// The exception libchirp's pool raises for a failed send or request: the same
/// built-in classes (`ConnectionError`, `TimeoutError`, `RuntimeError`, `ValueError`,
/// `MemoryError`), each with `ecode`.
pub(crate) fn chirp_exception(py: Python<'_>, err: ChirpError) -> PyErr {
    let text = err.to_string();
    let (exc, code) = match err {
        // libchirp's init fails with CH_TLS_ERROR when OpenSSL refuses the PEM files
        // (its Python layer raises RuntimeError with the last log line).
        ChirpError::Config(ConfigError::Tls(detail)) => {
            (PyRuntimeError::new_err(format!("Could not start encryption: {detail}")), ecode::TLS_ERROR)
        }
        ChirpError::Config(_) => (PyValueError::new_err(text), ecode::VALUE_ERROR),
        ChirpError::Send(SendError::QueueFull { .. }) => {
            // libchirp has no bound; pvloom's is MAX_QUEUED (back-pressure, not loss).
            (PyRuntimeError::new_err(format!("CH_BUSY: {text}")), ecode::BUSY)
        }
        ChirpError::Send(SendError::TooLarge { .. }) => (PyMemoryError::new_err(text), ecode::ENOMEM),
        ChirpError::Send(SendError::Closed) => (PyConnectionError::new_err(text), ecode::WRITE_ERROR),
        ChirpError::Failed(SendFailure::TimedOut(_)) => (PyTimeoutError::new_err(text), ecode::TIMEOUT),
        ChirpError::Failed(SendFailure::ConnectionLost(_)) => (PyConnectionError::new_err(text), ecode::CANNOT_CONNECT),
        ChirpError::Failed(SendFailure::NotSent(_)) => (PyConnectionError::new_err(text), ecode::WRITE_ERROR),
        ChirpError::NoAnswer(_) => (PyTimeoutError::new_err("Chirp request timed out"), ecode::TIMEOUT),
        ChirpError::Stopped => (PyRuntimeError::new_err(text), ecode::SHUTDOWN),
        ChirpError::Listen(_) => (pyo3::exceptions::PyOSError::new_err(text), ecode::EADDRINUSE),
        ChirpError::Runtime(e) => (to_py(e), ecode::PROTOCOL_ERROR),
    };
    with_ecode(py, exc, code)
}
