//! The message service for Python: `MsgData`, `MsgStatusEvent`, the native halves of
//! `MsgClient` and `MessageChannel`, publishing to the process's bus, its stats, and
//! the `Xprt.msg_*` helpers.
//!
//! Callbacks run on the runtime's I/O threads (Inline delivery): each takes the GIL
//! and an exception in it is reported and counted ([`LdmsEnv::call`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_ldms::bus::{MsgBus, MsgClient, MsgData};
use pvloom_ldms::chan::{ChanConfig, ChanError, ChanMode, MessageChannel};
use pvloom_ldms::client::{self, MsgOwner, MsgSubStatus, PublishError};
use pvloom_ldms::msg::{LdmsAddr, MsgType};
use pyo3::exceptions::{PyConnectionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};

use super::{LdmsEnv, connection_error, env, errno_sym, ldms_error, may_block};
use crate::wait::{deadline, wait_sliced};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMsgData>()?;
    m.add_class::<PyMsgStatusEvent>()?;
    m.add_class::<PyMsgClientNative>()?;
    m.add_class::<PyMessageChannelNative>()?;
    m.add_function(pyo3::wrap_pyfunction!(ldms_msg_publish, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(ldms_msg_stats, m)?)?;
    Ok(())
}

fn msg_type_of(v: u32) -> MsgType {
    match v {
        0 => MsgType::String,
        1 => MsgType::Json,
        2 => MsgType::AvroSer,
        n => MsgType::Other(n),
    }
}

fn msg_type_value(t: MsgType) -> u32 {
    match t {
        MsgType::String => 0,
        MsgType::Json => 1,
        MsgType::AvroSer => 2,
        MsgType::Other(n) => n,
    }
}

/// `str` → STRING, `dict`/`list` → JSON (`json.dumps`), `bytes` → STRING; an explicit
/// `msg_type` wins.
pub(crate) fn encode(py: Python<'_>, data: &Bound<'_, PyAny>, msg_type: Option<u32>) -> PyResult<(MsgType, Vec<u8>)> {
    let (t, bytes) = if let Ok(s) = data.cast::<PyString>() {
        (0, s.to_cow()?.as_bytes().to_vec())
    } else if let Ok(b) = data.cast::<PyBytes>() {
        (0, b.as_bytes().to_vec())
    } else if let Ok(b) = data.cast::<PyByteArray>() {
        (0, b.to_vec())
    } else if data.cast::<PyDict>().is_ok() || data.cast::<PyList>().is_ok() {
        let s: String = py.import("json")?.getattr("dumps")?.call1((data,))?.extract()?;
        (1, s.into_bytes())
    } else {
        return Err(PyTypeError::new_err(format!(
            "message data must be str, bytes, dict or list, not {}",
            data.get_type().name()?
        )));
    };
    Ok((msg_type_of(msg_type.unwrap_or(t)), bytes))
}

pub(crate) fn owner(uid: Option<u32>, gid: Option<u32>, perm: u32) -> MsgOwner {
    let d = MsgOwner::default();
    MsgOwner { uid: uid.unwrap_or(d.uid), gid: gid.unwrap_or(d.gid), perm }
}

fn addr_str(a: LdmsAddr) -> String {
    match a.family {
        2 => format!("{}.{}.{}.{}:{}", a.addr[0], a.addr[1], a.addr[2], a.addr[3], a.port),
        10 => format!("[{}]:{}", std::net::Ipv6Addr::from(a.addr), a.port),
        _ => format!("0.0.0.0:{}", a.port),
    }
}

/// A received message (`ldms.MsgData`): `name`, `data` (`str` for STRING, the parsed
/// object for JSON, `bytes` for other types), `raw_data` (bytes), `type`
/// (`ldms_msg_type_e`), `is_json` (0/1), `uid`, `gid`, `perm`, `src` (an `LdmsAddr`),
/// `tid` (the native id of the thread that received it); pvloom's `msg_gn`, `hop_cnt`.
/// Safe to keep.
#[pyclass(name = "MsgData", module = "pvloom.ldms", frozen)]
pub struct PyMsgData {
    m: MsgData,
    /// Made on first access: a callback that looks at the name only pays for no string.
    data: std::sync::OnceLock<Py<PyAny>>,
    tid: u64,
    /// The subscriber's schema registry client: AVRO_SER data is decoded with it.
    registry: Option<Py<PyAny>>,
}

thread_local! {
    /// This thread's native id, asked of Python once per thread, not once per message.
    static NATIVE_TID: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

fn native_tid(py: Python<'_>) -> PyResult<u64> {
    if let Some(t) = NATIVE_TID.with(std::cell::Cell::get) {
        return Ok(t);
    }
    let t: u64 = py.import("threading")?.getattr("get_native_id")?.call0()?.extract()?;
    NATIVE_TID.with(|c| c.set(Some(t)));
    Ok(t)
}

impl PyMsgData {
    fn new(py: Python<'_>, m: &MsgData) -> PyResult<PyMsgData> {
        Ok(PyMsgData { m: m.clone(), data: std::sync::OnceLock::new(), tid: native_tid(py)?, registry: None })
    }

    fn with_registry(py: Python<'_>, m: &MsgData, registry: Option<&Py<PyAny>>) -> PyResult<PyMsgData> {
        let mut d = PyMsgData::new(py, m)?;
        d.registry = registry.map(|r| r.clone_ref(py));
        Ok(d)
    }

    fn make_data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let m = &self.m;
        let raw = m.data();
        Ok(match m.msg_type() {
            MsgType::Json => {
                let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
                let text = String::from_utf8_lossy(trimmed);
                match py.import("json")?.getattr("loads")?.call1((text.trim(),)) {
                    Ok(v) => v.unbind(),
                    Err(_) => PyString::new(py, &text).into_any().unbind(),
                }
            }
            MsgType::String => PyString::new(py, &String::from_utf8_lossy(raw)).into_any().unbind(),
            // Confluent framing and Avro, as the real API decodes it; without a registry
            // (where the real one fails) the bytes as they came.
            MsgType::AvroSer if self.registry.is_some() => py
                .import("pvloom.ldms")?
                .getattr("_avro_decode")?
                .call1((self.registry.as_ref(), PyBytes::new(py, raw)))?
                .unbind(),
            _ => PyBytes::new(py, raw).into_any().unbind(),
        })
    }
}

#[pymethods]
impl PyMsgData {
    #[getter]
    fn name(&self) -> String {
        self.m.name()
    }
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(d) = self.data.get() {
            return Ok(d.clone_ref(py));
        }
        let d = self.make_data(py)?;
        Ok(self.data.get_or_init(|| d).clone_ref(py))
    }
    #[getter]
    fn raw_data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.m.data())
    }
    #[getter]
    fn tid(&self) -> u64 {
        self.tid
    }
    #[getter]
    #[pyo3(name = "type")]
    fn msg_type(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let v = msg_type_value(self.m.msg_type());
        let t = py.import("pvloom.ldms")?.getattr("ldms_msg_type_e")?;
        Ok(t.call1((v,)).map(Bound::unbind).unwrap_or_else(|_| v.into_pyobject(py).unwrap().into_any().unbind()))
    }
    #[getter]
    fn is_json(&self) -> i32 {
        i32::from(self.m.is_json())
    }
    #[getter]
    fn uid(&self) -> u32 {
        self.m.uid()
    }
    #[getter]
    fn gid(&self) -> u32 {
        self.m.gid()
    }
    #[getter]
    fn perm(&self) -> u32 {
        self.m.perm()
    }
    #[getter]
    fn src(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let a = self.m.src();
        let n = if a.family == 2 { 4 } else { 16 };
        let cls = py.import("pvloom.ldms")?.getattr("LdmsAddr")?;
        Ok(cls.call1((a.family, a.port, PyBytes::new(py, &a.addr[..n])))?.unbind())
    }
    #[getter]
    fn msg_gn(&self) -> u64 {
        self.m.msg_gn()
    }
    #[getter]
    fn hop_cnt(&self) -> u32 {
        self.m.hop_cnt()
    }
    fn __repr__(&self) -> String {
        format!(
            "MsgData('{}', {}, {}, {}, {}, {:#o}, {}, len={}, {})",
            self.m.name(),
            addr_str(self.m.src()),
            self.tid,
            self.m.uid(),
            self.m.gid(),
            self.m.perm(),
            i32::from(self.m.is_json()),
            self.m.data().len(),
            msg_type_value(self.m.msg_type())
        )
    }
    fn __str__(&self, py: Python<'_>) -> PyResult<String> {
        self.data(py)?.bind(py).str()?.extract()
    }
}

/// The answer to a `msg_subscribe`/`msg_unsubscribe` with `cb`: `match`, `is_regex`,
/// `status` (0: done, else an errno).
#[pyclass(name = "MsgStatusEvent", module = "pvloom.ldms", frozen, get_all)]
pub struct PyMsgStatusEvent {
    #[pyo3(name = "match")]
    pattern: String,
    is_regex: i32,
    status: i32,
    text: String,
}

#[pymethods]
impl PyMsgStatusEvent {
    fn __repr__(&self) -> String {
        format!("<MsgStatusEvent match={:?} is_regex={} status={}>", self.pattern, self.is_regex, self.status)
    }
}

impl From<&MsgSubStatus> for PyMsgStatusEvent {
    fn from(s: &MsgSubStatus) -> Self {
        PyMsgStatusEvent {
            pattern: s.pattern.clone(),
            is_regex: i32::from(s.is_regex),
            status: s.status,
            text: s.text.clone(),
        }
    }
}

/// `RuntimeError("ldms_msg_publish() failed, rc: N")`, as the real API raises (the
/// errno also in `args[1]`, pvloom's reason in `args[2]`).
fn publish_error(rc: i32, why: &str) -> PyErr {
    PyRuntimeError::new_err((format!("ldms_msg_publish() failed, rc: {rc}"), rc, why.to_string()))
}

/// AVRO_SER data serialised as the real API does it (`sr_client` registers
/// `schema_def`; Confluent framing, then Avro), unless it is bytes already and neither
/// is given (pvloom: data serialised by the caller).
pub(crate) fn avro_payload<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    msg_type: Option<u32>,
    sr_client: Option<&Bound<'py, PyAny>>,
    schema_def: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if msg_type != Some(MsgType::AvroSer.to_u32())
        || (sr_client.is_none() && schema_def.is_none() && data.cast::<PyBytes>().is_ok())
    {
        return Ok(None);
    }
    py.import("pvloom.ldms")?.getattr("_avro_encode")?.call1((sr_client, schema_def, data)).map(Some)
}

/// `Xprt.msg_publish(name, data, msg_type=None, perm=0o444, uid=None, gid=None,
/// sr_client=None, schema_def=None)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn xprt_publish(
    py: Python<'_>,
    x: &client::Xprt,
    name: &str,
    data: &Bound<'_, PyAny>,
    msg_type: Option<u32>,
    who: MsgOwner,
    sr_client: Option<&Bound<'_, PyAny>>,
    schema_def: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let avro = avro_payload(py, data, msg_type, sr_client, schema_def)?;
    let (t, bytes) = encode(py, avro.as_ref().unwrap_or(data), msg_type)?;
    let bytes = bytes::Bytes::from(bytes);
    // With room in the queue a publish never waits: it keeps the GIL, which costs less
    // than giving it up and taking it back. Only a full queue detaches to wait.
    let r = match x.msg_publish_with(name, t, bytes.clone(), who, Duration::ZERO) {
        Err(PublishError::Full { .. }) if pvloom_core::ensure_may_block().is_ok() => {
            let x = x.clone();
            let name = name.to_string();
            py.detach(move || x.msg_publish_with(&name, t, bytes, who, Duration::from_secs(10)))
        }
        r => r,
    };
    r.map(|_| ()).map_err(|e: PublishError| publish_error(e.errno(), &e.to_string()))
}

/// `Xprt.msg_subscribe`/`msg_unsubscribe`: blocking without `cb` (raises on a nonzero
/// status), else `cb(MsgStatusEvent, cb_arg)` later.
pub(crate) fn xprt_sub(
    py: Python<'_>,
    x: &client::Xprt,
    pattern: &str,
    is_regex: bool,
    cb: Option<(Py<PyAny>, Option<Py<PyAny>>)>,
    rate: i64,
    unsub: bool,
) -> PyResult<()> {
    let what = if unsub { "ldms_msg_remote_unsubscribe()" } else { "ldms_msg_remote_subscribe()" };
    match cb {
        None => {
            may_block()?;
            let x = x.clone();
            let p = pattern.to_string();
            let r =
                py.detach(
                    move || {
                        if unsub { x.msg_unsubscribe(&p, is_regex) } else { x.msg_subscribe(&p, is_regex, rate) }
                    },
                );
            r.map(|_| ()).map_err(|e| {
                let errno = e.errno();
                let text = e.to_string();
                let err = ldms_error(e, what);
                if !err.is_instance_of::<PyConnectionError>(py) {
                    return err;
                }
                // MsgSubscribeError(rc, text), as the real API raises.
                match py.import("pvloom.ldms").and_then(|m| m.getattr("MsgSubscribeError")) {
                    Ok(cls) => match cls.call1((errno, format!("{what}: {}: {text}", errno_sym(errno)))) {
                        Ok(v) => PyErr::from_value(v),
                        Err(e) => e,
                    },
                    Err(e) => e,
                }
            })
        }
        Some((cb, cb_arg)) => {
            let env = env()?;
            let arg = cb_arg.unwrap_or_else(|| py.None());
            let done = move |_: &client::Xprt, s: MsgSubStatus| {
                crate::gil::attach(|py| {
                    let ev = PyMsgStatusEvent::from(&s);
                    match Py::new(py, ev) {
                        Ok(ev) => env.call(py, "ldms.msg_subscribe", &cb, (ev, arg.clone_ref(py))),
                        Err(e) => e.write_unraisable(py, Some(cb.bind(py))),
                    }
                })
            };
            if unsub {
                x.msg_unsubscribe_cb(pattern, is_regex, done);
            } else {
                x.msg_subscribe_cb(pattern, is_regex, rate, done);
            }
            Ok(())
        }
    }
}

/// A MessageChannel subscription's callback: `func(MsgData)` on the I/O thread.
fn chan_callback(env: Arc<LdmsEnv>, func: Py<PyAny>) -> pvloom_ldms::chan::ChanCallback {
    Box::new(move |m| {
        crate::gil::attach(|py| match PyMsgData::new(py, m).and_then(|d| Py::new(py, d)) {
            Ok(d) => env.call(py, "ldms.message_channel", &func, (d,)),
            Err(e) => e.write_unraisable(py, Some(func.bind(py))),
        })
    })
}

/// `MsgClient`'s native half, on the process's bus: `func(client, MsgData, arg)` per
/// message when `client` is given (the real API's callback, called straight from here:
/// a Python frame in between cost a tenth of a subscriber's time), else `func(MsgData)`;
/// without `func`, a queue for `get_data`.
#[pyclass(name = "_MsgClient", module = "pvloom.ldms", frozen)]
pub struct PyMsgClientNative {
    c: Mutex<Option<Arc<MsgClient>>>,
    /// Set by `close()` under the GIL; a callback looks at it once it has the GIL, so
    /// none runs after `close()` returned (one may have been waiting for the GIL then).
    closed: Arc<AtomicBool>,
    registry: Option<Py<PyAny>>,
    pattern: String,
    is_regex: bool,
}

#[pymethods]
impl PyMsgClientNative {
    #[new]
    #[pyo3(signature = (pattern, is_regex, func=None, queue_max=65536, client=None, arg=None, sr_client=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        pattern: &str,
        is_regex: bool,
        func: Option<Py<PyAny>>,
        queue_max: usize,
        client: Option<Py<PyAny>>,
        arg: Option<Py<PyAny>>,
        sr_client: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let env = env()?;
        let bus = MsgBus::global();
        let handle = env.handle.clone();
        let registry = sr_client.as_ref().map(|r| r.clone_ref(py));
        let closed = Arc::new(AtomicBool::new(false));
        let closed_seen = closed.clone();
        let c = match func {
            Some(func) => MsgClient::new(bus, &handle, pattern, is_regex, move |m| {
                crate::gil::attach(|py| {
                    if closed_seen.load(Ordering::Acquire) {
                        return;
                    }
                    match PyMsgData::with_registry(py, m, sr_client.as_ref()).and_then(|d| Py::new(py, d)) {
                        Ok(d) => match &client {
                            Some(c) => env.call(py, "ldms.msg_client", &func, (c.clone_ref(py), d, arg.as_ref())),
                            None => env.call(py, "ldms.msg_client", &func, (d,)),
                        },
                        Err(e) => e.write_unraisable(py, Some(func.bind(py))),
                    }
                })
            }),
            None => MsgClient::queue(bus, pattern, is_regex, queue_max),
        }
        .map_err(|e| connection_error(e.errno(), &format!("ldms_msg_subscribe() error: {e}")))?;
        Ok(PyMsgClientNative { c: Mutex::new(Some(Arc::new(c))), closed, pattern: pattern.into(), is_regex, registry })
    }

    /// The next queued message, waiting up to `timeout` seconds (0: no wait); `None`
    /// when none came.
    #[pyo3(signature = (timeout=0.0))]
    fn get_data(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<Py<PyMsgData>>> {
        let Some(c) = self.c.lock().clone() else { return Ok(None) };
        let got = if timeout <= 0.0 {
            c.try_get_data()
        } else {
            may_block()?;
            wait_sliced(py, deadline(Some(timeout)), move |end| {
                let left = end.saturating_duration_since(std::time::Instant::now());
                c.get_data(left)
            })?
        };
        got.map(|m| Py::new(py, PyMsgData::with_registry(py, &m, self.registry.as_ref())?)).transpose()
    }

    /// This client's counters as a dict (`None` once closed).
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let Some(c) = self.c.lock().clone() else { return Ok(py.None()) };
        let Some(s) = c.stats() else { return Ok(py.None()) };
        let d = PyDict::new(py);
        d.set_item("match", &s.pattern)?;
        d.set_item("is_regex", s.is_regex)?;
        d.set_item("tx_count", s.tx.count)?;
        d.set_item("tx_bytes", s.tx.bytes)?;
        d.set_item("first_ts", s.tx.first_ts)?;
        d.set_item("last_ts", s.tx.last_ts)?;
        d.set_item("drops", s.drops)?;
        let counter = |c: &pvloom_ldms::bus::Counter| -> PyResult<Bound<'_, PyDict>> {
            let d = PyDict::new(py);
            d.set_item("count", c.count)?;
            d.set_item("bytes", c.bytes)?;
            d.set_item("first_ts", c.first_ts)?;
            d.set_item("last_ts", c.last_ts)?;
            Ok(d)
        };
        d.set_item("dropped", counter(&s.dropped)?)?;
        let pairs = PyList::empty(py);
        for p in &s.channels {
            let pd = PyDict::new(py);
            pd.set_item("channel", &p.channel)?;
            pd.set_item("tx", counter(&p.tx)?)?;
            pd.set_item("drops", counter(&p.drops)?)?;
            pairs.append(pd)?;
        }
        d.set_item("channels", pairs)?;
        Ok(d.into_any().unbind())
    }

    #[getter]
    #[pyo3(name = "match")]
    fn pattern(&self) -> String {
        self.pattern.clone()
    }

    #[getter]
    fn is_regex(&self) -> bool {
        self.is_regex
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let c = self.c.lock().take();
        if let Some(c) = c {
            c.close();
        }
    }
}

/// `ldms.msg_publish(name, data, msg_type=None, perm=0o444, uid=None, gid=None)`: to
/// this process's bus; returns how many subscribers got it.
#[pyfunction(name = "ldms_msg_publish")]
#[pyo3(signature = (name, data, msg_type=None, perm=0o444, uid=None, gid=None, sr_client=None, schema_def=None))]
#[allow(clippy::too_many_arguments)]
fn ldms_msg_publish(
    py: Python<'_>,
    name: &str,
    data: &Bound<'_, PyAny>,
    msg_type: Option<u32>,
    perm: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    sr_client: Option<&Bound<'_, PyAny>>,
    schema_def: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    env()?;
    let avro = avro_payload(py, data, msg_type, sr_client, schema_def)?;
    let (t, bytes) = encode(py, avro.as_ref().unwrap_or(data), msg_type)?;
    let o = owner(uid, gid, perm);
    let name = name.to_string();
    py.detach(move || MsgBus::global().publish(&name, t, bytes, (o.uid, o.gid, o.perm)))
        .map_err(|e| publish_error(e.errno(), &e.to_string()))
}

/// The process bus's stats as JSON text.
#[pyfunction(name = "ldms_msg_stats")]
#[pyo3(signature = (reset=false))]
fn ldms_msg_stats(reset: bool) -> String {
    let bus = MsgBus::global();
    let s = bus.stats().to_json().to_string();
    if reset {
        bus.reset_stats();
    }
    s
}

/// As the real API: `RuntimeError("MessageChannel.publish() error, errno: 105")`
/// (`ENOBUFS`: the queue is full), with the errno in `args[1]` and pvloom's reason in
/// `args[2]`.
fn chan_error(e: ChanError) -> PyErr {
    match e {
        ChanError::Core(c) => crate::errors::to_py(c),
        ChanError::Mode(m) => PyValueError::new_err(m),
        ChanError::Listen(why) => {
            PyRuntimeError::new_err((format!("ldms_msg_chan_new() error, errno: 98 ({why})"), 98, why))
        }
        e => {
            let rc = e.errno();
            PyRuntimeError::new_err((format!("MessageChannel.publish() error, errno: {rc}"), rc, e.to_string()))
        }
    }
}

/// `MessageChannel`'s native half.
#[pyclass(name = "_MessageChannel", module = "pvloom.ldms", frozen)]
pub struct PyMessageChannelNative {
    ch: MessageChannel,
}

#[pymethods]
impl PyMessageChannelNative {
    #[new]
    /// `func(MsgData)`, when given, gets every name from before the channel listens.
    #[pyo3(signature = (name, mode, remote=None, local=None, reconnect=6.0, fifo_bytes=1<<20, func=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        mode: u32,
        remote: Option<(String, u16)>,
        local: Option<(String, u16)>,
        reconnect: f64,
        fifo_bytes: usize,
        func: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let env = env()?;
        let mode = match mode {
            1 => ChanMode::Subscribe,
            2 => ChanMode::Publish,
            3 => ChanMode::Bidir,
            m => return Err(PyValueError::new_err(format!("bad MessageChannel mode {m}"))),
        };
        let addr = |hp: Option<(String, u16)>| -> PyResult<Option<SocketAddr>> {
            hp.map(|(h, p)| super::xprt::resolve(py, &h, p)).transpose()
        };
        let mut config = ChanConfig::new(name, mode);
        if mode.publishes() {
            config.remote = addr(remote)?;
        }
        if mode.subscribes() {
            config.local = addr(local)?;
        }
        config.reconnect = Duration::from_secs_f64(reconnect.max(0.01));
        config.fifo_bytes = fifo_bytes;
        let handle = env.handle.clone();
        let subs = match func {
            Some(func) if mode.subscribes() => vec![(".*".to_string(), chan_callback(env.clone(), func))],
            _ => Vec::new(),
        };
        let ch = py.detach(move || MessageChannel::open_subscribed(&handle, config, subs)).map_err(chan_error)?;
        Ok(PyMessageChannelNative { ch })
    }

    /// Queue a message; waits up to `timeout` seconds for room (0: fail at once).
    #[pyo3(signature = (tag, data, msg_type=None, uid=None, gid=None, perm=0o444, timeout=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        py: Python<'_>,
        tag: &str,
        data: &Bound<'_, PyAny>,
        msg_type: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        perm: u32,
        timeout: f64,
    ) -> PyResult<()> {
        let (t, bytes) = encode(py, data, msg_type)?;
        let o = owner(uid, gid, perm);
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        if !wait.is_zero() {
            may_block()?;
        }
        let ch = self.ch.clone();
        let tag = tag.to_string();
        py.detach(move || ch.publish(&tag, t, bytes, o, wait)).map_err(chan_error)
    }

    /// `func(MsgData)` for each message whose name matches `regex`.
    fn subscribe(&self, regex: &str, func: Py<PyAny>) -> PyResult<()> {
        self.ch.subscribe(regex, chan_callback(env()?, func)).map_err(chan_error)
    }

    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.ch.stats();
        let d = PyDict::new(py);
        d.set_item("state", s.state)?;
        d.set_item("mode", s.mode)?;
        d.set_item("pub_conn_attempt", s.pub_conn_attempt)?;
        d.set_item("pub_conn_success", s.pub_conn_success)?;
        d.set_item("pub_msg_sent", s.pub_msg_sent)?;
        d.set_item("pub_msg_acked", s.pub_msg_acked)?;
        d.set_item("pub_byte_cnt", s.pub_byte_cnt)?;
        d.set_item("max_q_depth", s.max_q_depth)?;
        d.set_item("cur_q_depth", s.cur_q_depth)?;
        d.set_item("pub_blocked", s.pub_blocked)?;
        let ts = PyDict::new(py);
        ts.set_item("tv_sec", s.pub_last_conn.as_secs())?;
        ts.set_item("tv_nsec", s.pub_last_conn.subsec_nanos())?;
        d.set_item("pub_last_conn", ts)?;
        d.set_item("closing", i32::from(s.closing))?;
        d.set_item("cancel", i32::from(s.cancel))?;
        d.set_item("pub_queued", s.pub_queued)?;
        d.set_item("sub_msg_cnt", s.sub_msg_cnt)?;
        d.set_item("sub_byte_cnt", s.sub_byte_cnt)?;
        Ok(d)
    }

    /// Set the publish queue's bound in bytes.
    fn set_q_limit(&self, max_bytes: usize) {
        self.ch.set_queue_limit(max_bytes);
    }

    /// `(host, port)` it listens on, or `None`.
    fn local_addr(&self) -> Option<(String, u16)> {
        self.ch.local_addr().map(|a| (a.ip().to_string(), a.port()))
    }

    /// Wait up to `timeout` seconds for every sent message's acknowledgement, then end.
    #[pyo3(signature = (timeout=10.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        if !wait.is_zero() && pvloom_core::ensure_may_block().is_err() {
            return self.ch.close(Duration::ZERO).map_err(chan_error);
        }
        let ch = self.ch.clone();
        py.detach(move || ch.close(wait)).map_err(chan_error)
    }
}
