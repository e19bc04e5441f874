//! `pvloom.ca`'s native half: pvloom's Channel Access client for the caproto-compatible
//! facade in `python/pvloom/ca.py`.
//!
//! The classes here are deliberately thin: [`PyCaContext`], [`PyCaPv`],
//! [`PyCaSubscription`] and [`PyCaResponse`] expose the Rust client almost one to
//! one, and the Python facade turns them into caproto's `Context`, `PV`,
//! `Subscription` and response objects. Every blocking call releases the GIL and waits
//! in slices ([`wait_sliced`](crate::wait::wait_sliced)); every Python callback runs
//! with pvloom-core's contract (an exception is reported and counted, never raised
//! into the I/O thread). Non-blocking reads (`Batch`, `PV.read(wait=False)`) go
//! through [`CaContext.read_batch`](PyCaContext::read_batch): issued in one call with
//! the GIL released, their replies handed to Python in bursts (`burst`), one GIL hold
//! for every reply there by then instead of one worker turn per reply.

mod burst;
mod errors;
mod pv;
mod response;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_ca::client::{ClientConfig, Context, ReadOptions};
use pvloom_core::{Containment, Deliverer, Job};
use pyo3::call::PyCallArgs;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::outcome::{PyHook, report_exception};

pub use errors::ca_error_to_py;
pub use pv::{PyCaPv, PyCaSubscription};
pub use response::PyCaResponse;

/// Register the `Ca*` classes in `_pvloom`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCaContext>()?;
    m.add_class::<PyCaPv>()?;
    m.add_class::<PyCaSubscription>()?;
    m.add_class::<PyCaResponse>()?;
    Ok(())
}

/// Longest timeout handed to the Rust client: "never" in Python is this many seconds
/// (about four months) on the Rust side, whose timeouts are durations.
pub(crate) const NEVER_SECS: f64 = 1.0e7;

/// Seconds from Python (`None`: never) as a duration for the Rust client.
pub(crate) fn duration(timeout: Option<f64>) -> Duration {
    Duration::from_secs_f64(timeout.filter(|t| t.is_finite() && *t >= 0.0).unwrap_or(NEVER_SECS).min(NEVER_SECS))
}

/// What every callback of one context shares: where its failures are counted and
/// reported.
pub(crate) struct CallbackEnv {
    pub(crate) containment: Containment,
    pub(crate) hook: PyHook,
}

impl CallbackEnv {
    /// Call `func(*args)` with the GIL held; an exception is reported (naming
    /// `culprit`, or `func`) and counted, never raised.
    pub(crate) fn call<'py>(
        &self,
        py: Python<'py>,
        origin: &str,
        func: &Py<PyAny>,
        culprit: Option<&Py<PyAny>>,
        args: impl PyCallArgs<'py>,
    ) {
        if let Err(err) = func.bind(py).call1(args) {
            let culprit = culprit.unwrap_or(func).bind(py);
            report_exception(py, &self.containment, origin, &self.hook, err, Some(culprit));
        }
    }
}

/// A Channel Access client context (caproto's `Context`, native half).
///
/// `CaContext(timeout=2.0, host_name=None, client_name=None, max_workers=1)`; the
/// servers to search come from the EPICS environment variables (`EPICS_CA_ADDR_LIST`,
/// `EPICS_CA_AUTO_ADDR_LIST`, `EPICS_CA_SERVER_PORT`, ...), read when it is made.
#[pyclass(name = "CaContext", module = "pvloom._pvloom", frozen)]
pub struct PyCaContext {
    ctx: Context,
    env: Arc<CallbackEnv>,
    deliverer: Deliverer,
    max_workers: usize,
}

#[pymethods]
impl PyCaContext {
    #[new]
    #[pyo3(signature = (timeout=2.0, host_name=None, client_name=None, max_workers=1))]
    fn new(
        py: Python<'_>,
        timeout: Option<f64>,
        host_name: Option<String>,
        client_name: Option<String>,
        max_workers: usize,
    ) -> PyResult<Self> {
        let config = ClientConfig::from_env().map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        // Callback workers hold the GIL for a whole turn (up to 64 callbacks) instead of
        // taking it once per callback.
        let hold_gil: pvloom_core::WorkerWrapper =
            std::sync::Arc::new(|turn: &mut dyn FnMut()| crate::gil::attach(|_| turn()));
        let mut builder = Context::builder()
            .config(config)
            .max_workers(max_workers)
            .timeout(duration(timeout))
            .worker_wrapper(hold_gil);
        if let Some(name) = host_name {
            builder = builder.host_name(name);
        }
        if let Some(name) = client_name {
            builder = builder.client_name(name);
        }
        let ctx = py.detach(move || builder.build()).map_err(|e| ca_error_to_py(py, e))?;
        let containment = ctx.runtime().containment().clone();
        let deliverer = ctx.runtime().deliverer();
        let env = Arc::new(CallbackEnv { containment, hook: Arc::new(Mutex::new(None)) });
        Ok(PyCaContext { ctx, env, deliverer, max_workers })
    }

    /// PVs for `names` at circuit `priority`; searching starts at once. The same name
    /// and priority give the same channel.
    #[pyo3(signature = (names, priority=0))]
    fn get_pvs(&self, names: Vec<String>, priority: u16) -> Vec<PyCaPv> {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.ctx
            .get_pvs_with_priority(&refs, priority)
            .into_iter()
            .map(|pv| PyCaPv::new(pv, self.env.clone()))
            .collect()
    }

    /// Read every PV of `pvs` without waiting (one request each, issued with the GIL
    /// released); `callbacks[i](make(raw))` gets the reply of `pvs[i]`, and
    /// `on_error(callbacks[i], name, exception)` a failure. Replies are handed to
    /// Python in bursts: one GIL acquisition for all the replies there by then.
    #[pyo3(signature = (pvs, callbacks, make, on_error, data_type=None, class_=None, data_count=None, timeout=None, notify=true))]
    #[allow(clippy::too_many_arguments)]
    fn read_batch(
        &self,
        py: Python<'_>,
        pvs: Vec<PyRef<'_, PyCaPv>>,
        callbacks: Vec<Py<PyAny>>,
        make: Py<PyAny>,
        on_error: Py<PyAny>,
        data_type: Option<u16>,
        class_: Option<&str>,
        data_count: Option<u32>,
        timeout: Option<f64>,
        notify: bool,
    ) -> PyResult<()> {
        if pvs.len() != callbacks.len() {
            return Err(pyo3::exceptions::PyValueError::new_err("one callback per PV"));
        }
        let options = ReadOptions {
            data_type: data_type.map(pv::parse_type).transpose()?,
            class: class_.map(pv::parse_class).transpose()?,
            data_count: data_count.filter(|&n| n > 0),
            timeout: Some(duration(timeout)),
            notify,
        };
        let reads: Vec<_> = pvs.iter().map(|pv| pv.pv().clone()).zip(callbacks).collect();
        drop(pvs);
        let burst = burst::Burst::new(self.env.clone(), self.deliverer.clone(), burst::Shapers { make, on_error });
        py.detach(move || burst.issue(reads, options));
        Ok(())
    }

    /// Worker threads running callbacks (0: Inline on the I/O threads).
    #[getter]
    fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Search every unanswered name now.
    fn search_now(&self) {
        self.ctx.search_now();
    }

    /// Names whose search is unanswered (blocking, briefly).
    fn unanswered_searches(&self, py: Python<'_>) -> PyResult<usize> {
        let ctx = self.ctx.clone();
        py.detach(move || ctx.unanswered_searches()).map_err(|e| ca_error_to_py(py, e))
    }

    /// `(host, port)` of every server with an open circuit.
    fn servers(&self) -> Vec<(String, u16)> {
        self.ctx.servers().into_iter().map(|a| (a.ip().to_string(), a.port())).collect()
    }

    /// Seconds since anything was heard from the server at `host:port` (`None`: never).
    fn time_since_last_heard(&self, host: &str, port: u16) -> Option<f64> {
        let ip: std::net::Ipv4Addr = host.parse().ok()?;
        self.ctx.time_since_last_heard(std::net::SocketAddrV4::new(ip, port)).map(|d| d.as_secs_f64())
    }

    /// Stop searching for `name` (a typo, a PV never expected to exist).
    fn cancel_search(&self, name: &str) {
        self.ctx.cancel_search(name);
    }

    /// EVENTS_OFF (`on=False`) or EVENTS_ON on the circuits to one server.
    fn set_server_events(&self, host: &str, port: u16, on: bool) -> PyResult<()> {
        let ip: std::net::Ipv4Addr = host
            .parse()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("not an IPv4 address: {host}")))?;
        self.ctx.set_server_events(std::net::SocketAddrV4::new(ip, port), on);
        Ok(())
    }

    /// Ask every server to pause subscription updates (EVENTS_OFF).
    fn events_off(&self) {
        self.ctx.events_off();
    }

    /// Resume subscription updates (EVENTS_ON).
    fn events_on(&self) {
        self.ctx.events_on();
    }

    /// Callback failures (exceptions) counted so far.
    #[getter]
    fn callback_errors(&self) -> u64 {
        self.env.containment.failures()
    }

    /// Install `hook(origin, exception)` for failing callbacks; `None`: Python's
    /// "Exception ignored in" report.
    fn set_error_hook(&self, hook: Option<Py<PyAny>>) {
        *self.env.hook.lock() = hook;
    }

    /// Run `func(*args)` as a callback of this context (on a worker; now, with
    /// `max_workers=0`). Its exception is reported and counted.
    #[pyo3(signature = (func, *args))]
    fn call_soon(&self, func: Py<PyAny>, args: Py<PyTuple>) -> PyResult<()> {
        let env = self.env.clone();
        let job = move || {
            crate::gil::attach(|py| {
                let args = args.bind(py).clone();
                env.call(py, "ca.callback", &func, None, args);
            })
        };
        self.deliverer.deliver(Job::new("ca.callback", job)).map_err(crate::errors::to_py)
    }

    /// Close every circuit and stop the threads (releases the GIL while joining them).
    fn disconnect(&self, py: Python<'_>) {
        let ctx = self.ctx.clone();
        py.detach(move || ctx.disconnect());
    }
}

impl Drop for PyCaContext {
    fn drop(&mut self) {
        // The runtime never joins the thread it is dropped on, so this is safe anywhere.
        let ctx = self.ctx.clone();
        // I/O threads may be waiting for the GIL to run a callback: release it.
        crate::gil::attach(|py| py.detach(move || ctx.disconnect()));
    }
}
