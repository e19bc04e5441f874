//! `ldms.Xprt` and what its callbacks receive: `XprtEvent`, `DirData`, `DirSet`.
//!
//! An `Xprt` is one of three things: a client connection (`connect`), a listener
//! (`listen`: pvloom's set server), or a connection that listener accepted (handed to
//! `listen`'s callback or returned by `accept()`, wrapping a server [`Peer`]).
//!
//! Everything handed to a callback is a plain Python object made from owned Rust
//! values, safe to keep after the callback returns.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use pvloom_ldms::bus::{BusConfig, MsgBus};
use pvloom_ldms::client::{self, DirReply, XprtConfig, XprtEvent, XprtEventKind};
use pvloom_ldms::request::dir::DirEntry;
use pvloom_ldms::request::{DIR_LIST, LOOKUP_BY_SCHEMA, LOOKUP_RE};
use pvloom_ldms::server::{LdmsServer, Peer, PeerEvent, ServerConfig};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::set::PySet;
use super::{LdmsEnv, connection_error, env, ldms_error, may_block, wait_for};
use crate::wait::{deadline, wait_sliced};

/// A `(host, port)` pair for Python.
type HostPort = (String, u16);

/// `ENOTCONN`.
const ENOTCONN: i32 = 107;
/// `ENOTSUP`.
const ENOTSUP: i32 = 95;

/// What a blocking call (`recv()`, `accept()`) waits for, filled by the event handler.
struct WaitQueue<T> {
    q: Mutex<VecDeque<T>>,
    cv: Condvar,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue { q: Mutex::new(VecDeque::new()), cv: Condvar::new() }
    }
}

impl<T> WaitQueue<T> {
    fn push(&self, item: T) {
        self.q.lock().push_back(item);
        self.cv.notify_all();
    }
}

/// Messages for the blocking `recv()`; `None` marks the end of the connection.
type RecvQueue = WaitQueue<Option<Vec<u8>>>;
/// Accepted connections for the blocking `accept()`.
type AcceptQueue = WaitQueue<Py<PyXprt>>;

#[derive(Default)]
struct XState {
    conn: Option<client::Xprt>,
    server: Option<LdmsServer>,
    /// An accepted connection: the server's handle on it.
    peer: Option<Peer>,
    has_cb: bool,
    ended: bool,
}

/// An LDMS transport (`ovis_ldms.ldms.Xprt`): `Xprt(name="sock", auth="none")`, then
/// `connect` to a peer or `listen` to serve this process's published sets. A listener
/// hands each connection it accepts to `listen`'s callback or to `accept()` as an
/// `Xprt` of its own, which can `send`, `recv`, `close`, `get_addr` and tell
/// `is_connected`. (LDMS lets either end `dir` and `lookup`; pvloom's accepted side is a
/// set-server connection, so `dir`/`lookup` on it raise `ConnectionError` `ENOTSUP`.)
#[pyclass(name = "Xprt", module = "pvloom.ldms", frozen)]
pub struct PyXprt {
    state: Mutex<XState>,
    recv: Arc<RecvQueue>,
    /// A listener's connections for `accept()`.
    accepts: Arc<AcceptQueue>,
    /// Sets looked up here, by instance name (for SET_DELETE's `set`).
    looked_up: Mutex<HashMap<String, Py<PySet>>>,
    /// An application context attached to the transport.
    ctxt: Mutex<Option<Py<PyAny>>>,
}

pub(super) fn resolve(py: Python<'_>, host: &str, port: u16) -> PyResult<SocketAddr> {
    let host = if host == "localhost" { "127.0.0.1" } else { host }.to_owned();
    py.detach(move || {
        let addrs: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs()?.collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
    })
    .map_err(|e| connection_error(e.raw_os_error().unwrap_or(2), &format!("cannot resolve {port}")))
}

fn port_of(port: &Bound<'_, PyAny>) -> PyResult<u16> {
    match port.extract::<u16>() {
        Ok(p) => Ok(p),
        Err(_) => port.extract::<String>()?.parse().map_err(|_| PyValueError::new_err("bad port")),
    }
}

impl PyXprt {
    fn blank(state: XState) -> PyXprt {
        PyXprt {
            state: Mutex::new(state),
            recv: Arc::new(RecvQueue::default()),
            accepts: Arc::new(AcceptQueue::default()),
            looked_up: Mutex::new(HashMap::new()),
            ctxt: Mutex::new(None),
        }
    }

    fn conn(&self) -> PyResult<client::Xprt> {
        let st = self.state.lock();
        if st.peer.is_some() {
            return Err(connection_error(
                ENOTSUP,
                "dir()/lookup() on an accepted Xprt (pvloom's accepted side is a set-server connection; \
                 connect() to the peer to query it)",
            ));
        }
        st.conn.clone().ok_or_else(|| connection_error(ENOTCONN, "not connected"))
    }

    fn peer(&self) -> Option<Peer> {
        self.state.lock().peer.clone()
    }

    /// The listener's handler of its connections' events: each connection becomes one
    /// Python `Xprt` (made at CONNECTED, forgotten after DISCONNECTED) handed to `cb`
    /// with every event, or, without `cb`, to `accept()` (and its messages to that
    /// `Xprt`'s `recv()`).
    fn on_peer_event(
        cb: Option<(Py<PyAny>, Py<PyAny>)>,
        accepts: Arc<AcceptQueue>,
        env: Arc<LdmsEnv>,
    ) -> impl Fn(&Peer, PeerEvent) + Send + Sync + 'static {
        let accepted: Mutex<HashMap<u64, Py<PyXprt>>> = Mutex::new(HashMap::new());
        move |peer, ev| {
            let (kind, data, reason, set_name) = match ev {
                PeerEvent::Connected => (XprtEventKind::Connected, None, None, None),
                PeerEvent::Recv(d) => (XprtEventKind::Recv, Some(d), None, None),
                PeerEvent::Disconnected(why) => (XprtEventKind::Disconnected, None, Some(why), None),
                PeerEvent::PeerSetDeleted { name } => (XprtEventKind::SetDelete, None, None, Some(name)),
                // LDMS completes its own SET_DELETE quietly.
                PeerEvent::SetDeleteAcked { .. } => return,
            };
            let ev = XprtEvent { kind, data, reason, set_name, quota: 0, rc: 0 };
            let end = kind == XprtEventKind::Disconnected;
            crate::gil::attach(|py| {
                let x = {
                    let mut map = accepted.lock();
                    let known = if end { map.remove(&peer.id()) } else { map.get(&peer.id()).map(|x| x.clone_ref(py)) };
                    match known {
                        Some(x) => x,
                        None => {
                            let state = XState { peer: Some(peer.clone()), has_cb: cb.is_some(), ..XState::default() };
                            match Py::new(py, PyXprt::blank(state)) {
                                Ok(x) => {
                                    if !end {
                                        map.insert(peer.id(), x.clone_ref(py));
                                    }
                                    x
                                }
                                Err(err) => return err.write_unraisable(py, None),
                            }
                        }
                    }
                };
                if end {
                    x.get().state.lock().ended = true;
                }
                match &cb {
                    Some((func, arg)) => match PyXprtEvent::new(py, &ev, x.get()) {
                        Ok(event) => env.call(py, "ldms.xprt_event", func, (x, event, arg.clone_ref(py))),
                        Err(err) => err.write_unraisable(py, Some(func.bind(py))),
                    },
                    None => match (kind, ev.data) {
                        (XprtEventKind::Connected, _) => accepts.push(x),
                        (XprtEventKind::Recv, Some(d)) => x.get().recv.push(Some(d.to_vec())),
                        (XprtEventKind::Disconnected, _) => x.get().recv.push(None),
                        _ => {}
                    },
                }
            })
        }
    }

    fn remember(&self, py: Python<'_>, set: &Py<PySet>) {
        let name = set.get().name_of();
        self.looked_up.lock().insert(name, set.clone_ref(py));
    }

    /// The transport-event handler: Python's `cb(xprt, event, cb_arg)`, or the queue
    /// of the blocking `recv()` without a callback.
    fn on_event(
        me: Py<PyXprt>,
        recv: Arc<RecvQueue>,
        cb: Option<(Py<PyAny>, Py<PyAny>)>,
        env: Arc<LdmsEnv>,
    ) -> impl Fn(&client::Xprt, &XprtEvent) + Send + Sync + 'static {
        move |x, ev| {
            let end = matches!(ev.kind, XprtEventKind::Disconnected | XprtEventKind::Error | XprtEventKind::Rejected);
            match &cb {
                None => {
                    if let (XprtEventKind::Recv, Some(data)) = (ev.kind, &ev.data) {
                        recv.push(Some(data.to_vec()));
                    }
                }
                Some((func, arg)) => crate::gil::attach(|py| match PyXprtEvent::new(py, ev, me.get()) {
                    Ok(event) => env.call(py, "ldms.xprt_event", func, (me.clone_ref(py), event, arg.clone_ref(py))),
                    Err(err) => err.write_unraisable(py, Some(func.bind(py))),
                }),
            }
            if end {
                me.get().state.lock().ended = true;
                recv.push(None);
                // Drop this handler (and its reference to the Python Xprt).
                x.set_event_callback(|_, _| {});
            }
        }
    }
}

#[pymethods]
impl PyXprt {
    #[new]
    #[pyo3(signature = (name="sock", auth="none", auth_opts=None, **_kwargs))]
    fn new(
        name: &str,
        auth: Option<&str>,
        auth_opts: Option<Bound<'_, PyDict>>,
        _kwargs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let _ = auth_opts;
        if name != "sock" {
            return Err(connection_error(95, &format!("transport {name:?} (pvloom offers \"sock\")")));
        }
        if !matches!(auth, None | Some("none")) {
            return Err(connection_error(95, &format!("auth {auth:?} (pvloom offers \"none\")")));
        }
        Ok(PyXprt::blank(XState::default()))
    }

    /// An application context attached to the transport.
    #[getter]
    fn get_ctxt(&self, py: Python<'_>) -> Py<PyAny> {
        self.ctxt.lock().as_ref().map_or_else(|| py.None(), |c| c.clone_ref(py))
    }

    #[setter]
    fn set_ctxt(&self, value: Py<PyAny>) {
        *self.ctxt.lock() = Some(value);
    }

    /// Connect to `host:port`. Blocking without `cb` (raises `ConnectionError` on
    /// failure, `TimeoutError` after `timeout` seconds, `pvloom.WouldDeadlock` inside a
    /// callback); with `cb`, returns at once and `cb(xprt, event, cb_arg)` gets
    /// EVENT_CONNECTED (or REJECTED/ERROR) and every later event.
    #[pyo3(signature = (host, port=None, cb=None, cb_arg=None, timeout=None))]
    fn connect(
        slf: &Bound<'_, Self>,
        host: &str,
        port: Option<&Bound<'_, PyAny>>,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let py = slf.py();
        let port = port.map(port_of).transpose()?.unwrap_or(411);
        if cb.is_none() {
            may_block()?;
        }
        let addr = resolve(py, host, port)?;
        let env = env()?;
        let me = slf.get();
        let has_cb = cb.is_some();
        let cb = cb.map(|f| (f, cb_arg.unwrap_or_else(|| py.None())));
        let handler = Self::on_event(slf.clone().unbind(), me.recv.clone(), cb, env.clone());
        let (x, wait) = client::Xprt::connect_with(&env.handle, addr, XprtConfig::default(), Some(Arc::new(handler)));
        {
            let mut st = me.state.lock();
            st.conn = Some(x.clone());
            st.has_cb = has_cb;
            st.ended = false;
        }
        if has_cb {
            return Ok(());
        }
        let result = wait_for(py, wait, timeout.or(Some(30.0)), "connect");
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ldms_error(e, "Connect error")),
            Err(e) => {
                x.close();
                if e.is_instance_of::<crate::errors::PvloomError>(py) {
                    return Err(connection_error(111, "Connect error"));
                }
                Err(e)
            }
        }
    }

    /// Listen on `host:port` (`host=None`: every address; `port=0`: a free one, see
    /// `get_addr()`) and serve every published `Set` to the peers that connect.
    ///
    /// With `cb`, `cb(xprt, event, cb_arg)` gets each accepted connection's events:
    /// EVENT_CONNECTED with `xprt` the newly accepted connection (an `Xprt`), then its
    /// EVENT_RECV (`event.data`), EVENT_SET_DELETE and finally EVENT_DISCONNECTED, all
    /// with that same `Xprt` object. Without `cb`, `accept()` returns each connection
    /// and its `recv()` its messages.
    ///
    /// `msg` turns the message service on for the connections it accepts: `True`, on
    /// this process's bus (as LDMS: `MsgClient`s here get what peers publish);
    /// `"private"` (pvloom), on a bus of the listener's own (peers that subscribe get
    /// what other peers publish; nothing reaches this process's `MsgClient`s except
    /// through a subscribing connection). Off by default: peers' `msg_subscribe` fails
    /// with `ENOTSUP`.
    #[pyo3(signature = (host=None, port=None, cb=None, cb_arg=None, msg=None))]
    fn listen(
        &self,
        py: Python<'_>,
        host: Option<&str>,
        port: Option<&Bound<'_, PyAny>>,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
        msg: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let bus = match msg {
            None => None,
            Some(m) if m.extract::<String>().is_ok_and(|s| s == "private") => Some(MsgBus::new(BusConfig::default())),
            Some(m) if m.is_truthy()? => Some(MsgBus::global().clone()),
            Some(_) => None,
        };
        let config = ServerConfig { bus, ..ServerConfig::default() };
        may_block()?;
        let port = port.map(port_of).transpose()?.unwrap_or(411);
        let addr = resolve(py, host.unwrap_or("0.0.0.0"), port)?;
        let env = env()?;
        let has_cb = cb.is_some();
        let cb = cb.map(|f| (f, cb_arg.unwrap_or_else(|| py.None())));
        let handler = Self::on_peer_event(cb, self.accepts.clone(), env.clone());
        let (handle, registry) = (env.handle.clone(), env.registry.clone());
        let server = py
            .detach(move || LdmsServer::bind_with_events(handle, addr, registry, config, handler))
            .map_err(|e| connection_error(e.raw_os_error().unwrap_or(5), "ldms_xprt_listen_by_name() error"))?;
        let mut st = self.state.lock();
        st.server = Some(server);
        st.has_cb = has_cb;
        Ok(())
    }

    /// The next connection this listener accepted, as an `Xprt` (blocks, the GIL
    /// released); raises `queue.Empty` after `timeout` seconds, `pvloom.WouldDeadlock`
    /// inside a callback. Only for a `listen()` without `cb` (with one, connections go
    /// to it: `ValueError`).
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyXprt>> {
        may_block()?;
        {
            let st = self.state.lock();
            if st.server.is_none() {
                return Err(PyValueError::new_err("Bad `Xprt.accept()` call: the Xprt is not listening."));
            }
            if st.has_cb {
                return Err(PyValueError::new_err(
                    "Bad `Xprt.accept()` call. The callback has been supplied to `listen()`; connections go to it.",
                ));
            }
        }
        let accepts = self.accepts.clone();
        let got = wait_sliced(py, deadline(timeout), move |slice_end| {
            let mut q = accepts.q.lock();
            loop {
                if let Some(x) = q.pop_front() {
                    return Ok(Some(x));
                }
                if accepts.cv.wait_until(&mut q, slice_end).timed_out() {
                    return Ok(None);
                }
            }
        })?;
        got.ok_or_else(|| queue_empty(py))
    }

    /// `((host, port) local, (host, port) remote)`; `None` for an end that is unknown.
    fn get_addr(&self) -> (Option<HostPort>, Option<HostPort>) {
        let st = self.state.lock();
        let pair = |a: SocketAddr| (a.ip().to_string(), a.port());
        if let Some(p) = &st.peer {
            return (p.local_addr().map(pair), Some(pair(p.remote_addr())));
        }
        (st.server.as_ref().map(|s| pair(s.local_addr())), st.conn.as_ref().map(|c| pair(c.peer_addr())))
    }

    /// Close the connection (DISCONNECTED follows) or stop listening. Messages already
    /// published go out first: outside callbacks this waits (GIL released) until they
    /// have, at most the connection's operation timeout, so that a script may exit
    /// right after it.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let (conn, server, peer) = {
            let mut st = self.state.lock();
            (st.conn.clone(), st.server.take(), st.peer.clone())
        };
        if let Some(c) = conn {
            c.close();
            if !pvloom_core::is_io_thread() {
                let limit = c.config().conn.op_timeout + Duration::from_secs(1);
                wait_sliced(py, deadline(Some(limit.as_secs_f64())), move |slice_end| {
                    let slice = slice_end.saturating_duration_since(Instant::now());
                    Ok(c.wait_closed(slice).is_ok().then_some(()))
                })?;
            }
        }
        if let Some(p) = peer {
            p.close();
        }
        py.detach(move || drop(server));
        Ok(())
    }

    /// The peer's set directory. Blocking without `cb`: a list of `DirSet`. With `cb`:
    /// `cb(xprt, status, dir_data, cb_arg)` per part until `dir_data.more == 0` (and,
    /// with `flags=DIR_F_NOTIFY`, for every later change).
    #[pyo3(signature = (cb=None, cb_arg=None, flags=0))]
    fn dir(slf: &Bound<'_, Self>, cb: Option<Py<PyAny>>, cb_arg: Option<Py<PyAny>>, flags: u32) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let x = slf.get().conn()?;
        let Some(cb) = cb else {
            may_block()?;
            let wait = x.dir_all();
            let entries =
                wait_for(py, wait, None, "dir")?.map_err(|e| connection_error(e.errno(), "dir callback status"))?;
            let list = entries.iter().map(|e| Py::new(py, PyDirSet::from(e))).collect::<PyResult<Vec<_>>>()?;
            return Ok(PyList::new(py, list)?.into_any().unbind());
        };
        let env = env()?;
        let me: Py<PyXprt> = slf.clone().unbind();
        let arg = cb_arg.unwrap_or_else(|| py.None());
        x.dir_cb(flags, move |_, r| {
            crate::gil::attach(|py| {
                let (status, kind, more, entries) = match r {
                    Ok(DirReply::Part(p)) => (0, DIR_LIST, p.more, p.entries),
                    Ok(DirReply::Update { kind, entries }) => (0, kind, false, entries),
                    Err(e) => (e.errno(), DIR_LIST, false, Vec::new()),
                };
                let data = PyDirData::new(py, kind, more, &entries);
                match data {
                    Ok(data) => env.call(py, "ldms.dir", &cb, (me.clone_ref(py), status, data, arg.clone_ref(py))),
                    Err(err) => err.write_unraisable(py, Some(cb.bind(py))),
                }
            })
        });
        Ok(py.None())
    }

    /// Look sets up by instance name (`flags=LOOKUP_BY_INSTANCE`), schema
    /// (`LOOKUP_BY_SCHEMA`) or regular expression (`LOOKUP_RE`). Blocking without `cb`:
    /// one `Set` (by instance) or a list of them; `ConnectionError` (errno `ENOENT`)
    /// when nothing matched. With `cb`: `cb(xprt, status, more, lset, cb_arg)` per set.
    #[pyo3(signature = (name, flags=0, cb=None, cb_arg=None))]
    fn lookup(
        slf: &Bound<'_, Self>,
        name: &str,
        flags: u32,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let me = slf.get();
        let x = me.conn()?;
        let Some(cb) = cb else {
            may_block()?;
            let wait = x.lookup_all(name, flags);
            let found = wait_for(py, wait, None, "lookup")?
                .map_err(|e| connection_error(e.errno(), "lookup callback status"))?;
            let sets = found.into_iter().map(|s| Py::new(py, PySet::remote(s))).collect::<PyResult<Vec<_>>>()?;
            for s in &sets {
                me.remember(py, s);
            }
            if flags & (LOOKUP_BY_SCHEMA | LOOKUP_RE) == 0 && sets.len() == 1 {
                return Ok(sets.into_iter().next().expect("one set").into_any());
            }
            return Ok(PyList::new(py, sets)?.into_any().unbind());
        };
        let env = env()?;
        let pyx: Py<PyXprt> = slf.clone().unbind();
        let arg = cb_arg.unwrap_or_else(|| py.None());
        x.lookup_cb(name, flags, move |_, r, more| {
            crate::gil::attach(|py| {
                let (status, lset) = match r {
                    Ok(s) => match Py::new(py, PySet::remote(s)) {
                        Ok(s) => {
                            pyx.get().remember(py, &s);
                            (0, s.into_any())
                        }
                        Err(err) => return err.write_unraisable(py, Some(cb.bind(py))),
                    },
                    Err(e) => (e.errno(), py.None()),
                };
                env.call(py, "ldms.lookup", &cb, (pyx.clone_ref(py), status, i32::from(more), lset, arg.clone_ref(py)));
            })
        });
        Ok(py.None())
    }

    /// Send `data` to the peer (it gets an EVENT_RECV); does not wait. On an accepted
    /// `Xprt`, raises `ConnectionError` (`ENOTCONN`, `EMSGSIZE`, `ENOBUFS` while the
    /// connection's outbound queue is full).
    fn send(&self, data: &[u8]) -> PyResult<()> {
        if let Some(p) = self.peer() {
            return p.send(data.to_vec()).map_err(|e| connection_error(e.errno() as i32, "ldms_xprt_send() error"));
        }
        self.conn()?.send(data);
        Ok(())
    }

    /// Wait for a message from the peer (`bytes`; `None` once disconnected); raises
    /// `queue.Empty` after `timeout` seconds. Only without a `connect` (or `listen`,
    /// for an accepted `Xprt`) callback; with one, messages go to it.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyBytes>>> {
        if self.state.lock().has_cb {
            return Err(PyValueError::new_err(
                "Bad `Xprt.recv()` call. The callback has been supplied to `connect()` or `listen()`; \
                 messages go to it.",
            ));
        }
        may_block()?;
        let recv = self.recv.clone();
        let got = wait_sliced(py, deadline(timeout), move |slice_end| {
            let mut q = recv.q.lock();
            loop {
                if let Some(item) = q.pop_front() {
                    if item.is_none() {
                        // Leave the end marker for later calls.
                        q.push_front(None);
                    }
                    return Ok(Some(item));
                }
                if recv.cv.wait_until(&mut q, slice_end).timed_out() {
                    return Ok(None);
                }
            }
        })?;
        match got {
            Some(Some(data)) => Ok(Some(PyBytes::new(py, &data).unbind())),
            Some(None) => Ok(None),
            None => Err(queue_empty(py)),
        }
    }

    /// Publish `data` to the peer under `name`: `str` as STRING, `dict`/`list` as JSON
    /// (`json.dumps`), `bytes` as STRING; an explicit `msg_type` wins. Waits (the GIL
    /// released) up to 10 s while 8 MiB already wait for the peer; inside a callback it
    /// fails at once instead. Raises `ConnectionError` (`ENOTCONN`, `EAGAIN`,
    /// `EMSGSIZE`, `EINVAL`). `LDMS_MSG_AVRO_SER` serialises `data` with `schema_def`,
    /// registered through `sr_client`, as the real API does (`ValueError` without
    /// them, unless `data` is bytes already serialised).
    #[pyo3(signature = (name, data, msg_type=None, perm=0o444, uid=None, gid=None, sr_client=None, schema_def=None))]
    #[allow(clippy::too_many_arguments)]
    fn msg_publish(
        &self,
        py: Python<'_>,
        name: &str,
        data: &Bound<'_, PyAny>,
        msg_type: Option<u32>,
        perm: u32,
        uid: Option<u32>,
        gid: Option<u32>,
        sr_client: Option<&Bound<'_, PyAny>>,
        schema_def: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let x = self.conn()?;
        let who = super::msg::owner(uid, gid, perm);
        super::msg::xprt_publish(py, &x, name, data, msg_type, who, sr_client, schema_def)
    }

    /// Ask the peer to forward messages named `match` (a regex with `is_regex`), at most
    /// `rx_rate` bytes/s (-1: all); they reach this process's `MsgClient`s. Without
    /// `cb` it blocks for the answer and raises `ConnectionError(errno, ...)` on a
    /// nonzero status; with `cb`, `cb(MsgStatusEvent, cb_arg)` gets it.
    #[pyo3(signature = (r#match, is_regex, cb=None, cb_arg=None, rx_rate=-1))]
    fn msg_subscribe(
        &self,
        py: Python<'_>,
        r#match: &str,
        is_regex: &Bound<'_, PyAny>,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
        rx_rate: i64,
    ) -> PyResult<()> {
        let x = self.conn()?;
        super::msg::xprt_sub(py, &x, r#match, is_regex.is_truthy()?, cb.map(|f| (f, cb_arg)), rx_rate, false)
    }

    /// Stop a forwarding asked for by `msg_subscribe` (same answer forms; `ENOENT` for
    /// no such subscription).
    #[pyo3(signature = (r#match, is_regex, cb=None, cb_arg=None))]
    fn msg_unsubscribe(
        &self,
        py: Python<'_>,
        r#match: &str,
        is_regex: &Bound<'_, PyAny>,
        cb: Option<Py<PyAny>>,
        cb_arg: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let x = self.conn()?;
        super::msg::xprt_sub(py, &x, r#match, is_regex.is_truthy()?, cb.map(|f| (f, cb_arg)), 0, true)
    }

    /// 1 when the peer said its message service is on, else 0.
    #[getter]
    fn peer_msg_is_enabled(&self) -> i32 {
        let st = self.state.lock();
        i32::from(st.conn.as_ref().is_some_and(client::Xprt::peer_msg_is_enabled))
    }

    /// True while connected.
    #[getter]
    fn is_connected(&self) -> bool {
        let st = self.state.lock();
        st.peer.as_ref().is_some_and(Peer::is_connected) || st.conn.as_ref().is_some_and(client::Xprt::is_connected)
    }

    fn __repr__(&self) -> String {
        let st = self.state.lock();
        if let Some(p) = &st.peer {
            return format!("<pvloom.ldms.Xprt accepted from {}>", p.remote_addr());
        }
        match (&st.conn, &st.server) {
            (Some(c), _) => format!("<pvloom.ldms.Xprt to {}>", c.peer_addr()),
            (None, Some(s)) => format!("<pvloom.ldms.Xprt listening on {}>", s.local_addr()),
            _ => "<pvloom.ldms.Xprt>".into(),
        }
    }
}

/// `queue.Empty()`, what the real API's blocking `recv()`/`accept()` raise on timeout.
fn queue_empty(py: Python<'_>) -> PyErr {
    match py.import("queue").and_then(|q| q.getattr("Empty")).and_then(|e| e.call0()) {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

/// A transport event (`ovis_ldms.ldms.XprtEvent`): `type` (`EVENT_*`), `data` (bytes
/// of EVENT_RECV), `quota`, `set_delete` (EVENT_SET_DELETE), `reason`. Safe to keep.
#[pyclass(name = "XprtEvent", module = "pvloom.ldms", frozen, get_all)]
pub struct PyXprtEvent {
    /// The event type (`EVENT_CONNECTED`...).
    #[pyo3(name = "type")]
    kind: u32,
    /// EVENT_RECV: the message.
    data: Option<Py<PyBytes>>,
    /// EVENT_SEND_QUOTA_DEPOSITED: the credit returned.
    quota: u32,
    /// EVENT_SET_DELETE: which set.
    set_delete: Option<Py<PySetDeleteEventData>>,
    /// REJECTED, ERROR, DISCONNECTED: why (pvloom's addition).
    reason: Option<String>,
}

impl PyXprtEvent {
    fn new(py: Python<'_>, ev: &XprtEvent, xprt: &PyXprt) -> PyResult<Self> {
        let kind = match ev.kind {
            XprtEventKind::Connected => 0,
            XprtEventKind::Rejected => 1,
            XprtEventKind::Error => 2,
            XprtEventKind::Disconnected => 3,
            XprtEventKind::Recv => 4,
            XprtEventKind::SetDelete => 5,
            XprtEventKind::SendComplete => 6,
            XprtEventKind::SendQuotaDeposited => 7,
        };
        let set_delete = match &ev.set_name {
            Some(name) => {
                let set = xprt.looked_up.lock().remove(name).map(Py::into_any);
                Some(Py::new(py, PySetDeleteEventData { name: name.clone(), set })?)
            }
            None => None,
        };
        Ok(PyXprtEvent {
            kind,
            data: ev.data.as_ref().map(|d| PyBytes::new(py, d).unbind()),
            quota: ev.quota,
            set_delete,
            reason: ev.reason.clone(),
        })
    }
}

#[pymethods]
impl PyXprtEvent {
    fn __repr__(&self) -> String {
        format!("<pvloom.ldms.XprtEvent type={}>", self.kind)
    }
}

/// EVENT_SET_DELETE's data: the set's `name` and the `Set` looked up here (or `None`).
#[pyclass(name = "SetDeleteEventData", module = "pvloom.ldms", frozen, get_all)]
pub struct PySetDeleteEventData {
    /// The instance name.
    name: String,
    /// The `Set` object, if it was looked up on this transport.
    set: Option<Py<PyAny>>,
}

/// One set of a directory (`ovis_ldms.ldms.DirSet`); plain values, safe to keep.
#[pyclass(name = "DirSet", module = "pvloom.ldms", frozen, get_all)]
pub struct PyDirSet {
    /// The instance name.
    name: String,
    /// The instance name.
    inst_name: String,
    /// The schema name.
    schema_name: String,
    /// The schema digest, in hex.
    digest_str: String,
    /// State flags (`C` consistent, `L`/`R` local/remote, `P` pushed).
    flags: String,
    /// Meta section size.
    meta_size: u32,
    /// Data section size.
    data_size: u32,
    /// Heap size.
    heap_size: u32,
    /// Owner uid.
    uid: u32,
    /// Owner gid.
    gid: u32,
    /// Permissions as `ls` shows them (`-rwxr-x---`).
    perm: String,
    /// Number of metrics.
    card: u32,
    /// Number of data-section copies.
    array_card: u32,
    /// Meta generation number.
    meta_gn: u64,
    /// Data generation number.
    data_gn: u64,
    /// `(sec, usec)` of the last transaction's end.
    timestamp: (u32, u32),
    /// `(sec, usec)` of the last transaction's duration.
    duration: (u32, u32),
    info_pairs: Vec<(String, String)>,
}

fn perm_str(perm: u32) -> String {
    let mut s = String::from("-");
    for shift in [6, 3, 0] {
        let bits = perm >> shift;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

impl From<&DirEntry> for PyDirSet {
    fn from(e: &DirEntry) -> Self {
        PyDirSet {
            name: e.name.clone(),
            inst_name: e.name.clone(),
            schema_name: e.schema.clone(),
            digest_str: e.digest.clone(),
            flags: e.flags.clone(),
            meta_size: e.meta_size,
            data_size: e.data_size,
            heap_size: e.heap_size,
            uid: e.uid,
            gid: e.gid,
            perm: perm_str(e.perm),
            card: e.card,
            array_card: e.array_card,
            meta_gn: e.meta_gn,
            data_gn: e.data_gn,
            timestamp: (e.timestamp.sec, e.timestamp.usec),
            duration: (e.duration.sec, e.duration.usec),
            info_pairs: e.info.iter().map(|i| (i.key.clone(), i.value.clone())).collect(),
        }
    }
}

#[pymethods]
impl PyDirSet {
    /// Set information supplied by the producer, as a dict.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.info_pairs {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("<pvloom.ldms.DirSet {:?} schema={:?}>", self.name, self.schema_name)
    }
}

/// One directory callback's data (`ovis_ldms.ldms.DirData`): `type` (`DIR_LIST`,
/// `DIR_ADD`, `DIR_DEL`, `DIR_UPD`), `more` (1 if more parts follow), `set_data`
/// (a list of `DirSet`). Safe to keep.
#[pyclass(name = "DirData", module = "pvloom.ldms", frozen, get_all)]
pub struct PyDirData {
    /// The directory event type.
    #[pyo3(name = "type")]
    kind: u32,
    /// 1 if more parts follow.
    more: i32,
    /// The sets.
    set_data: Py<PyList>,
}

impl PyDirData {
    fn new(py: Python<'_>, kind: u32, more: bool, entries: &[DirEntry]) -> PyResult<Py<PyDirData>> {
        let sets = entries.iter().map(|e| Py::new(py, PyDirSet::from(e))).collect::<PyResult<Vec<_>>>()?;
        Py::new(py, PyDirData { kind, more: i32::from(more), set_data: PyList::new(py, sets)?.unbind() })
    }
}
