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
//! Every call into the node releases the GIL: the node completes sends and answers on
//! its I/O threads, which take the GIL to resolve Python futures, sometimes while the
//! node holds its own lock.

mod message;
mod node;

use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_chirp::{ChirpError, ConfigError, SendError, SendFailure};
use pvloom_core::{Containment, Delivery, Runtime, RuntimeHandle};
use pyo3::exceptions::{PyConnectionError, PyMemoryError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::to_py;
use crate::outcome::{PyCall, PyHook, report_exception};

pub use message::PyChirpMessage;
pub use node::PyChirpNode;

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
    Ok(())
}

/// What the nodes of one loop share: the runtime and where callback failures go.
pub(crate) struct LoopEnv {
    pub(crate) handle: RuntimeHandle,
    pub(crate) containment: Containment,
    pub(crate) hook: PyHook,
    runtime: Arc<Mutex<Option<Runtime>>>,
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
        let runtime = Arc::new(Mutex::new(Some(runtime)));
        crate::runtime::register_live(&runtime);
        Ok(PyChirpLoop { env: Arc::new(LoopEnv { handle, containment, hook, runtime }) })
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
        py.detach(move || drop(runtime));
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
    let done = future.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(false);
    if done {
        return;
    }
    let set = match outcome {
        Ok(value) => future.call_method1("set_result", (value,)),
        Err(err) => future.call_method1("set_exception", (err.value(py).clone(),)),
    };
    if let Err(err) = set {
        report_exception(py, &env.containment, "chirp future", &env.hook, err, None);
    }
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
