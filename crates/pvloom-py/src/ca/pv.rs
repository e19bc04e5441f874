//! PVs and subscriptions, native half.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_ca::client::{
    CaError, CallbackHandle, DbrClass, DbrType, Pv, ReadOptions, Response, SubscribeOptions, Subscription, Value,
    WriteOptions,
};
use pvloom_ca::proto::{CaString, NativeType};
use pvloom_core::Completion;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use super::errors::{ca_error_to_py, timeout_error};
use super::response::PyCaResponse;
use super::{CallbackEnv, duration};
use crate::wait::{deadline, wait_sliced};

/// Grace after an operation's own timeout before the Python side gives up waiting:
/// the client's timer normally fires first, with the better message.
const GRACE: Duration = Duration::from_millis(100);

/// caproto's class names (`'native'`, `'status'`, `'time'`, `'graphic'`, `'control'`).
pub(crate) fn parse_class(class: &str) -> PyResult<DbrClass> {
    match class.to_ascii_lowercase().as_str() {
        "native" | "plain" => Ok(DbrClass::Plain),
        "status" | "sts" => Ok(DbrClass::Status),
        "time" => Ok(DbrClass::Time),
        "graphic" | "gr" => Ok(DbrClass::Graphic),
        "control" | "ctrl" => Ok(DbrClass::Control),
        other => Err(PyValueError::new_err(format!(
            "data_type must be 'native', 'status', 'time', 'graphic', 'control' or a ChannelType, not {other:?}"
        ))),
    }
}

pub(crate) fn parse_type(code: u16) -> PyResult<DbrType> {
    DbrType::from_code(code).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A value to write, from what the facade prepared: a list of `bytes` for strings,
/// native-endian bytes for numbers (`kind` is the native type code).
fn value_from_py(kind: u16, payload: &Bound<'_, PyAny>) -> PyResult<Value> {
    let native = NativeType::from_code(kind).ok_or_else(|| PyValueError::new_err(format!("bad value kind {kind}")))?;
    if native == NativeType::String {
        let items: Vec<PyBackedBytes> = payload.extract()?;
        return Ok(Value::String(items.iter().map(|b| CaString::new(b.to_vec())).collect()));
    }
    let bytes: PyBackedBytes = payload.extract()?;
    macro_rules! decode {
        ($t:ty, $variant:ident) => {{
            const SIZE: usize = std::mem::size_of::<$t>();
            if bytes.len() % SIZE != 0 {
                return Err(PyValueError::new_err("payload is not a whole number of elements"));
            }
            Value::$variant(
                bytes.chunks_exact(SIZE).map(|c| <$t>::from_ne_bytes(c.try_into().expect("chunk of SIZE"))).collect(),
            )
        }};
    }
    Ok(match native {
        NativeType::String => unreachable!("handled above"),
        NativeType::Short => decode!(i16, Short),
        NativeType::Float => decode!(f32, Float),
        NativeType::Enum => decode!(u16, Enum),
        NativeType::Char => Value::Char(bytes.to_vec()),
        NativeType::Long => decode!(i32, Long),
        NativeType::Double => decode!(f64, Double),
    })
}

/// Wait for `completion` with the GIL released, in slices (Ctrl-C works); `None`
/// when `timeout` (plus a grace) passed first.
fn wait_completion<T: Send + 'static>(
    py: Python<'_>,
    completion: Completion<T>,
    timeout: Option<f64>,
) -> PyResult<Option<Result<T, pvloom_core::Error>>> {
    let until = deadline(timeout).map(|d| d + GRACE);
    let mut pending = Some(completion);
    wait_sliced(py, until, move |slice_end| {
        let Some(completion) = pending.take() else { return Ok(None) };
        match completion.poll_wait(Some(slice_end)) {
            Ok(result) => Ok(Some(result)),
            Err(still_pending) => {
                pending = Some(still_pending);
                Ok(None)
            }
        }
    })
}

/// A channel (caproto's `PV`, native half). Made by `CaContext.get_pvs`.
#[pyclass(name = "CaPv", module = "pvloom._pvloom", frozen)]
pub struct PyCaPv {
    pv: Pv,
    env: Arc<CallbackEnv>,
}

impl PyCaPv {
    pub(crate) fn new(pv: Pv, env: Arc<CallbackEnv>) -> Self {
        PyCaPv { pv, env }
    }

    /// The Rust channel.
    pub(crate) fn pv(&self) -> &Pv {
        &self.pv
    }

    /// Hand an operation's outcome to `callback(response, exception)` when it comes.
    fn deliver<T: Send + 'static>(
        &self,
        completion: Completion<T>,
        operation: &'static str,
        callback: Py<PyAny>,
        convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    ) {
        let (env, name) = (self.env.clone(), self.pv.name().to_owned());
        completion.then(move |result| {
            crate::gil::attach(|py| {
                let outcome = match result {
                    Ok(value) => convert(py, value).map(|v| (v, py.None())),
                    Err(err) => {
                        let err = ca_error_to_py(py, CaError::from_core(err, &name, operation));
                        Ok((py.None(), err.into_value(py).into_any()))
                    }
                };
                match outcome {
                    Ok(args) => env.call(py, operation, &callback, None, args),
                    Err(err) => crate::outcome::report_exception(
                        py,
                        &env.containment,
                        operation,
                        &env.hook,
                        err,
                        Some(callback.bind(py)),
                    ),
                }
            })
        });
    }

    fn finish<T: Send + 'static>(
        &self,
        py: Python<'_>,
        completion: Completion<T>,
        operation: &'static str,
        timeout: Option<f64>,
    ) -> PyResult<T> {
        let name = self.pv.name();
        match wait_completion(py, completion, timeout)? {
            Some(Ok(value)) => Ok(value),
            Some(Err(err)) => {
                let err = CaError::from_core(err, name, operation);
                if err.is_timeout() {
                    Err(timeout_error(py, name, operation, timeout, self.pv.connected()))
                } else {
                    Err(ca_error_to_py(py, err))
                }
            }
            None => Err(timeout_error(py, name, operation, timeout, self.pv.connected())),
        }
    }
}

#[pymethods]
impl PyCaPv {
    /// The PV's name.
    #[getter]
    fn name(&self) -> &str {
        self.pv.name()
    }

    /// The circuit priority.
    #[getter]
    fn priority(&self) -> u16 {
        self.pv.priority()
    }

    /// True while connected.
    #[getter]
    fn connected(&self) -> bool {
        self.pv.connected()
    }

    /// The channel's native type code (0..=6), once connected.
    #[getter]
    fn native_type(&self) -> Option<u16> {
        self.pv.native_type().map(|t| t.native().code())
    }

    /// The channel's element count, once connected.
    #[getter]
    fn element_count(&self) -> Option<u32> {
        self.pv.element_count()
    }

    /// Access rights bits (1: read, 2: write).
    #[getter]
    fn access_rights(&self) -> u32 {
        self.pv.access_rights().0
    }

    /// `(host, port)` of the server (the last one while disconnected).
    #[getter]
    fn server_address(&self) -> Option<(String, u16)> {
        self.pv.server_address().map(|a| (a.ip().to_string(), a.port()))
    }

    /// Seconds since the server was last heard from (`None`: never).
    fn time_since_last_heard(&self) -> Option<f64> {
        self.pv.time_since_last_heard().map(|d| d.as_secs_f64())
    }

    /// Wait until connected (`None`: forever); raises `CaprotoTimeoutError`.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_connection(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        pvloom_core::ensure_may_block().map_err(crate::errors::to_py)?;
        if self.pv.connected() {
            return Ok(());
        }
        let pv = self.pv.clone();
        let connected = wait_sliced(py, deadline(timeout), move |slice_end| {
            let slice = slice_end.saturating_duration_since(Instant::now());
            match pv.wait_for_connection(Some(slice)) {
                Ok(()) => Ok(Some(())),
                Err(CaError::ConnectionTimeout { .. }) => Ok(None),
                Err(err) => Err(err.into_core()),
            }
        })?;
        connected.ok_or_else(|| timeout_error(py, self.pv.name(), "connection", timeout, false))
    }

    /// Read. `wait=True`: block and return a `CaResponse`. `wait=False`: return
    /// `None` at once; `callback(response, exception)` gets the outcome.
    #[pyo3(signature = (data_type=None, class_=None, data_count=None, timeout=None, notify=true, wait=true, callback=None))]
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        py: Python<'_>,
        data_type: Option<u16>,
        class_: Option<&str>,
        data_count: Option<u32>,
        timeout: Option<f64>,
        notify: bool,
        wait: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Option<PyCaResponse>> {
        let options = ReadOptions {
            data_type: data_type.map(parse_type).transpose()?,
            class: class_.map(parse_class).transpose()?,
            data_count: data_count.filter(|&n| n > 0),
            timeout: Some(duration(timeout)),
            notify,
        };
        if wait {
            // Refuse at once on an I/O thread, before anything is sent.
            pvloom_core::ensure_may_block().map_err(crate::errors::to_py)?;
        }
        let completion = self.pv.read_async(options);
        if !wait {
            match callback {
                Some(callback) => self.deliver(completion, "read", callback, |py, response| {
                    Ok(Py::new(py, PyCaResponse { response: Arc::new(response) })?.into_any())
                }),
                None => completion.then(|_| {}),
            }
            return Ok(None);
        }
        let response = self.finish(py, completion, "read", timeout)?;
        Ok(Some(PyCaResponse { response: Arc::new(response) }))
    }

    /// Write `payload` (see the facade) as native type `kind`, sent as `data_type`
    /// (`None`: the value's own type; the server converts). Blocking when `wait`;
    /// otherwise `callback(True, exception)` gets the outcome (when `notify`).
    #[pyo3(signature = (kind, payload, data_type=None, timeout=None, notify=true, wait=true, callback=None))]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        kind: u16,
        payload: &Bound<'_, PyAny>,
        data_type: Option<u16>,
        timeout: Option<f64>,
        notify: bool,
        wait: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let value = value_from_py(kind, payload)?;
        let options = WriteOptions {
            notify,
            data_type: data_type.map(parse_type).transpose()?,
            timeout: Some(duration(timeout)),
        };
        if wait {
            pvloom_core::ensure_may_block().map_err(crate::errors::to_py)?;
        }
        let completion = self.pv.write_async(value, options);
        if !wait {
            // A completion dropped without a callback would cancel the write: keep it.
            match callback {
                Some(callback) => self.deliver(completion, "write", callback, |py, ()| {
                    Ok(true.into_pyobject(py)?.to_owned().into_any().unbind())
                }),
                None => completion.then(|_| {}),
            }
            return Ok(());
        }
        self.finish(py, completion, "write", timeout)
    }

    /// A subscription (inactive until its first callback).
    #[pyo3(signature = (data_type=None, class_=None, data_count=None, mask=None, queue=4096))]
    fn subscribe(
        &self,
        data_type: Option<u16>,
        class_: Option<&str>,
        data_count: Option<u32>,
        mask: Option<u16>,
        queue: usize,
    ) -> PyResult<PyCaSubscription> {
        let defaults = SubscribeOptions::default();
        let options = SubscribeOptions {
            data_type: data_type.map(parse_type).transpose()?,
            class: class_.map(parse_class).transpose()?.unwrap_or(DbrClass::Plain),
            data_count: data_count.filter(|&n| n > 0),
            mask: mask.unwrap_or(defaults.mask),
            queue,
        };
        Ok(PyCaSubscription {
            subscription: self.pv.subscribe(options),
            env: self.env.clone(),
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Call `func(state)` (`'connected'`/`'disconnected'`) on every connection change.
    fn add_connection_callback(&self, func: Py<PyAny>) -> u64 {
        let env = self.env.clone();
        self.pv.add_connection_callback(move |_pv, state| {
            crate::gil::attach(|py| env.call(py, "ca.connection", &func, None, (state.as_str(),)));
        })
    }

    /// Remove a connection callback.
    fn remove_connection_callback(&self, token: u64) {
        self.pv.remove_connection_callback(token);
    }

    /// Call `func(bits)` whenever the server changes the access rights.
    fn add_access_rights_callback(&self, func: Py<PyAny>) -> u64 {
        let env = self.env.clone();
        self.pv.add_access_rights_callback(move |_pv, rights| {
            crate::gil::attach(|py| env.call(py, "ca.access_rights", &func, None, (rights.0,)));
        })
    }

    /// Remove an access-rights callback.
    fn remove_access_rights_callback(&self, token: u64) {
        self.pv.remove_access_rights_callback(token);
    }

    /// Clear the channel until it is used again (ignored while subscribed).
    fn go_idle(&self) {
        self.pv.go_idle();
    }

    fn __repr__(&self) -> String {
        format!("<CaPv {:?} connected={}>", self.pv.name(), self.pv.connected())
    }
}

/// A monitor (caproto's `Subscription`, native half): one Rust callback per Python
/// callback, held by its token until removed.
#[pyclass(name = "CaSubscription", module = "pvloom._pvloom", frozen)]
pub struct PyCaSubscription {
    subscription: Subscription,
    env: Arc<CallbackEnv>,
    handles: Mutex<HashMap<u64, CallbackHandle>>,
}

#[pymethods]
impl PyCaSubscription {
    /// Call `func(response)` for every update; the first callback starts the
    /// subscription. `culprit` names the user's function in error reports.
    #[pyo3(signature = (func, culprit=None))]
    fn add_callback(&self, func: Py<PyAny>, culprit: Option<Py<PyAny>>) -> u64 {
        let env = self.env.clone();
        let handle = self.subscription.add_callback(move |response: Arc<Response>| {
            crate::gil::attach(|py| match Py::new(py, PyCaResponse { response }) {
                Ok(response) => env.call(py, "ca.subscription", &func, culprit.as_ref(), (response,)),
                Err(err) => {
                    crate::outcome::report_exception(py, &env.containment, "ca.subscription", &env.hook, err, None)
                }
            })
        });
        let token = handle.token();
        self.handles.lock().insert(token, handle);
        token
    }

    /// Remove one callback; the last one cancels the subscription.
    fn remove_callback(&self, py: Python<'_>, token: u64) {
        let handle = self.handles.lock().remove(&token);
        // Dropping the handle may drop Python objects: fine with the GIL held.
        py.detach(move || drop(handle));
    }

    /// Remove every callback and cancel.
    fn clear(&self, py: Python<'_>) {
        let handles: Vec<CallbackHandle> = self.handles.lock().drain().map(|(_, h)| h).collect();
        let subscription = self.subscription.clone();
        py.detach(move || {
            drop(handles);
            subscription.clear();
        });
    }

    /// The last update received, if any.
    fn most_recent(&self) -> Option<PyCaResponse> {
        self.subscription.most_recent().map(|response| PyCaResponse { response })
    }

    /// True while subscribed on the server (it has callbacks).
    #[getter]
    fn active(&self) -> bool {
        self.subscription.is_active()
    }

    /// Updates received so far.
    #[getter]
    fn received(&self) -> u64 {
        self.subscription.received()
    }

    /// The subscription id used on the wire.
    #[getter]
    fn id(&self) -> u32 {
        self.subscription.id()
    }
}
