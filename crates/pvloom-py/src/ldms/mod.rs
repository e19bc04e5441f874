//! `pvloom.ldms`'s native half: the LDMS Python API (`ovis_ldms.ldms`'s names and
//! signatures) on pvloom's Rust LDMS client and set server.
//!
//! - [`xprt`]: `Xprt` (connect, listen with the accepted connections' events, accept,
//!   dir, lookup, send, recv, close), `XprtEvent`, `DirSet`, `DirData`.
//! - [`set`]: `Set`, for looked-up sets (update, push) and sets this process serves
//!   (transactions, writes, publish); `update_all`, many updates in one native call.
//! - [`msg`]: the message service: `MsgData`, `MsgStatusEvent`, `MsgClient`'s and
//!   `MessageChannel`'s native halves, publishing to this process's bus, its stats.
//! - [`values`]: metric values between Python and [`MetricValue`](pvloom_ldms::set::MetricValue).
//!
//! One process-wide runtime (made by `ldms.init` or the first call that needs it)
//! runs every connection; its callbacks are Inline: they run on the I/O threads, as
//! LDMS's do on zap's, and a blocking call made inside one raises `pvloom.WouldDeadlock`
//! at once. An exception in a callback is reported (Python's "Exception ignored in"
//! report, or the hook of `ldms.set_error_hook`) and counted; the I/O thread goes on.
//! Every blocking call releases the GIL and waits in slices (Ctrl-C works).

mod msg;
mod set;
mod values;
mod xprt;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;
use pvloom_core::{Completion, Containment, Delivery, Runtime, RuntimeHandle};
use pvloom_ldms::client::LdmsError;
use pvloom_ldms::server::SetRegistry;
use pyo3::call::PyCallArgs;
use pyo3::exceptions::{PyConnectionError, PyTimeoutError};
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::outcome::{PyHook, report_exception};
use crate::wait::{deadline, wait_sliced};

pub use set::PySet;
pub use xprt::{PyDirData, PyDirSet, PySetDeleteEventData, PyXprt, PyXprtEvent};

/// Register the `Ldms*` classes and functions in `_pvloom`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyXprt>()?;
    m.add_class::<PyXprtEvent>()?;
    m.add_class::<PySetDeleteEventData>()?;
    m.add_class::<PyDirSet>()?;
    m.add_class::<PyDirData>()?;
    m.add_class::<PySet>()?;
    m.add_function(pyo3::wrap_pyfunction!(ldms_init, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(ldms_set_error_hook, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(ldms_callback_errors, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(set::ldms_update_all, m)?)?;
    msg::register(m)?;
    Ok(())
}

/// What every LDMS object of this process shares: the runtime, where callback failures
/// are counted and reported, and the registry of the sets this process serves.
pub(crate) struct LdmsEnv {
    pub(crate) handle: RuntimeHandle,
    pub(crate) containment: Containment,
    pub(crate) hook: PyHook,
    pub(crate) registry: Arc<SetRegistry>,
    /// Kept so the runtime lives as long as the process (shut down at exit).
    _runtime: Arc<Mutex<Option<Runtime>>>,
}

static ENV: OnceLock<Arc<LdmsEnv>> = OnceLock::new();

impl LdmsEnv {
    fn start(io_threads: usize) -> PyResult<Arc<LdmsEnv>> {
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
        Ok(Arc::new(LdmsEnv { handle, containment, hook, registry: SetRegistry::new(), _runtime: runtime }))
    }

    /// Call `func(*args)` with the GIL held; an exception is reported and counted.
    pub(crate) fn call<'py>(&self, py: Python<'py>, origin: &str, func: &Py<PyAny>, args: impl PyCallArgs<'py>) {
        if let Err(err) = func.bind(py).call1(args) {
            report_exception(py, &self.containment, origin, &self.hook, err, Some(func.bind(py)));
        }
    }
}

/// The process's LDMS environment, started with two I/O threads on first use.
pub(crate) fn env() -> PyResult<Arc<LdmsEnv>> {
    if let Some(env) = ENV.get() {
        return Ok(env.clone());
    }
    let made = LdmsEnv::start(2)?;
    Ok(ENV.get_or_init(|| made).clone())
}

/// `ldms.init(max_sz)`: start LDMS (the memory size is accepted for compatibility:
/// pvloom allocates as it goes). `io_threads` sets the I/O thread count the first time.
#[pyfunction(name = "ldms_init")]
#[pyo3(signature = (max_sz=0, io_threads=2))]
fn ldms_init(max_sz: i64, io_threads: usize) -> PyResult<()> {
    let _ = max_sz;
    if ENV.get().is_none() {
        let made = LdmsEnv::start(io_threads)?;
        let _ = ENV.set(made);
    }
    Ok(())
}

/// Install `hook(origin, exception)` for exceptions raised in LDMS callbacks; `None`
/// restores Python's "Exception ignored in" report on stderr.
#[pyfunction(name = "ldms_set_error_hook")]
#[pyo3(signature = (hook=None))]
fn ldms_set_error_hook(hook: Option<Py<PyAny>>) -> PyResult<()> {
    *env()?.hook.lock() = hook;
    Ok(())
}

/// Exceptions (and panics) in LDMS callbacks counted so far.
#[pyfunction(name = "ldms_callback_errors")]
fn ldms_callback_errors() -> PyResult<u64> {
    Ok(env()?.containment.failures())
}

/// `ENOENT(2)`-style names of the errnos LDMS reports.
pub(crate) fn errno_sym(errno: i32) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        22 => "EINVAL",
        32 => "EPIPE",
        95 => "ENOTSUP",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        _ => return format!("UNKNOWN_ERRNO_{errno}"),
    };
    format!("{name}({errno})")
}

/// `ConnectionError(errno, "<what>: ENOENT(2)")`, as the real API raises.
pub(crate) fn connection_error(errno: i32, what: &str) -> PyErr {
    PyConnectionError::new_err((errno, format!("{what}: {}", errno_sym(errno))))
}

/// The Python exception for a failed LDMS call.
pub(crate) fn ldms_error(err: LdmsError, what: &str) -> PyErr {
    match err {
        LdmsError::Core(e @ (pvloom_core::Error::WouldDeadlock | pvloom_core::Error::Interrupted)) => to_py(e),
        LdmsError::Core(pvloom_core::Error::Timeout(d)) => {
            PyTimeoutError::new_err(format!("{what}: no answer in {d:?}"))
        }
        LdmsError::Rejected(reason) => PyConnectionError::new_err((111, format!("{what}: rejected: {reason}"))),
        LdmsError::Connect(reason) => PyConnectionError::new_err((103, format!("{what}: {reason}"))),
        other => connection_error(other.errno(), what),
    }
}

/// Raise `WouldDeadlock` on an I/O thread (inside an Inline callback).
pub(crate) fn may_block() -> PyResult<()> {
    pvloom_core::ensure_may_block().map_err(to_py)
}

/// Wait for `completion` with the GIL released, in slices; `TimeoutError` when
/// `timeout` (seconds; `None`: forever) passes first.
pub(crate) fn wait_for<T: Send + 'static>(
    py: Python<'_>,
    completion: Completion<T>,
    timeout: Option<f64>,
    what: &str,
) -> PyResult<T> {
    let mut pending = Some(completion);
    let got = wait_sliced(py, deadline(timeout), move |slice_end: Instant| {
        let Some(completion) = pending.take() else { return Ok(None) };
        match completion.poll_wait(Some(slice_end)) {
            Ok(result) => result.map(Some),
            Err(still) => {
                pending = Some(still);
                Ok(None)
            }
        }
    })?;
    got.ok_or_else(|| PyTimeoutError::new_err(format!("{what}: timed out")))
}
