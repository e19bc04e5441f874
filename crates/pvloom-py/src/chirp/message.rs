//! `Message`: libchirp's message (`libchirp.MessageThread`) with its properties.
//!
//! A new message has a random identity, no data, address 0.0.0.0 and port 0; set
//! `data`, `address` and `port` and send it. A received one carries the sender's
//! address and public port (so sending it back answers it), its identity (kept by the
//! answer), and one of the connection's slots until `release()`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pvloom_chirp::{Identity, Outgoing};
use pvloom_core::bytes::Bytes;
use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyTuple};

use super::node::Held;
use super::{LoopEnv, new_future, resolve};

struct Fields {
    identity: Identity,
    serial: u32,
    header: Bytes,
    data: Bytes,
    address: IpAddr,
    port: u16,
    remote_identity: Identity,
}

/// A received message's slot and where it is registered until released.
pub(crate) struct Slot {
    message: pvloom_chirp::Message,
    held: Arc<Held>,
    key: u64,
    env: Arc<LoopEnv>,
}

/// A chirp message. To answer a message, replace its data and send it.
#[pyclass(name = "Message", module = "pvloom.chirp", frozen, subclass)]
pub struct PyChirpMessage {
    fields: Mutex<Fields>,
    slot: Mutex<Option<Slot>>,
    /// Set while a send of this message is in flight (libchirp refuses a second one).
    pub(crate) sending: AtomicBool,
}

impl PyChirpMessage {
    /// A message received by a node, holding `slot` (`None` for a request's answer,
    /// whose slot the node released at once).
    pub(crate) fn received(
        message: pvloom_chirp::Message,
        slot: Option<(Arc<Held>, u64, Arc<LoopEnv>)>,
    ) -> PyChirpMessage {
        let fields = Fields {
            identity: message.identity,
            serial: message.serial,
            header: message.header.clone(),
            data: message.data.clone(),
            address: message.address,
            port: message.port,
            remote_identity: message.remote_identity,
        };
        let slot = slot.map(|(held, key, env)| Slot { message, held, key, env });
        PyChirpMessage { fields: Mutex::new(fields), slot: Mutex::new(slot), sending: AtomicBool::new(false) }
    }

    /// What goes on the wire, and where to.
    pub(crate) fn outgoing(&self) -> (SocketAddr, Outgoing) {
        let f = self.fields.lock();
        (
            SocketAddr::new(f.address, f.port),
            Outgoing { identity: f.identity, header: f.header.clone(), data: f.data.clone() },
        )
    }

    /// Mark a send as begun; `RuntimeError` if one is in flight.
    pub(crate) fn begin_send(&self) -> PyResult<()> {
        if self.sending.swap(true, Ordering::AcqRel) {
            return Err(PyRuntimeError::new_err("Message still sending, please wait for the send() result"));
        }
        Ok(())
    }

    /// Release the slot, resolving a new `concurrent.futures.Future` with
    /// `(identity, serial)`, or `None` when there is no slot.
    pub(crate) fn release_into_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let future = new_future(py)?;
        self.release_then(Some(future.clone_ref(py)))?;
        Ok(future)
    }

    /// Release the slot; resolve `future`, if any, as [`release_into_future`] says.
    /// `RuntimeError` while a send of the message is in flight.
    fn release_then(&self, future: Option<Py<PyAny>>) -> PyResult<()> {
        let slot = self.slot.lock().take();
        let Some(slot) = slot.filter(|s| {
            // A slot whose connection is gone needs no release, only forgetting.
            let live = s.message.has_slot();
            if !live {
                s.held.remove(s.key);
            }
            live
        }) else {
            if let Some(future) = future {
                Python::attach(|py| future.bind(py).call_method1(intern!(py, "set_result"), (py.None(),)).map(drop))?;
            }
            return Ok(());
        };
        if self.sending.load(Ordering::Acquire) {
            // As libchirp: the slot stays until the send is done.
            *self.slot.lock() = Some(slot);
            return Err(PyRuntimeError::new_err("Message still sending, please wait for the send() result"));
        }
        let Slot { message, held, key, env } = slot;
        // The GIL is kept: release never blocks, and the callback goes through the resolver.
        message.release().then(move |released| {
            held.remove(key);
            let Some(future) = future else { return };
            env.resolver.clone().push(Box::new(move |py| {
                let value = match released {
                    Ok(Some((identity, serial))) => Ok(PyTuple::new(
                        py,
                        [PyBytes::new(py, identity.as_bytes()).into_any(), PyInt::new(py, serial).into_any()],
                    )
                    .map_or_else(|_| py.None(), |t| t.into_any().unbind())),
                    Ok(None) | Err(_) => Ok(py.None()),
                };
                resolve(py, &env, &future, value);
            }));
        });
        Ok(())
    }
}

#[pymethods]
impl PyChirpMessage {
    /// A new message (`cmsg` must be `None`: pvloom has no C message to wrap).
    #[new]
    #[pyo3(signature = (cmsg=None))]
    fn new(cmsg: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        if cmsg.is_some_and(|c| !c.is_none()) {
            return Err(PyTypeError::new_err("pvloom.chirp.Message() takes no C message"));
        }
        let fields = Fields {
            identity: Identity::random(),
            serial: 0,
            header: Bytes::new(),
            data: Bytes::new(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            remote_identity: Identity::ZERO,
        };
        Ok(PyChirpMessage { fields: Mutex::new(fields), slot: Mutex::new(None), sending: AtomicBool::new(false) })
    }

    /// Identifies the message and its answers (16 bytes; an answer keeps it).
    #[getter]
    fn identity<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.fields.lock().identity.as_bytes())
    }

    /// The sender's serial of a received message (0 for a new one).
    #[getter]
    fn serial(&self) -> u32 {
        self.fields.lock().serial
    }

    /// Header bytes of upper-layer protocols.
    #[getter]
    fn header<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.fields.lock().header)
    }

    #[setter]
    fn set_header(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = value.cast::<PyBytes>().map_err(|_| PyAssertionError::new_err("header must be bytes"))?;
        if bytes.as_bytes().len() > usize::from(u16::MAX) {
            return Err(PyValueError::new_err("header longer than 65535 bytes"));
        }
        self.fields.lock().header = Bytes::copy_from_slice(bytes.as_bytes());
        Ok(())
    }

    /// The data.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.fields.lock().data)
    }

    #[setter]
    fn set_data(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = value.cast::<PyBytes>().map_err(|_| PyAssertionError::new_err("data must be bytes"))?;
        self.fields.lock().data = Bytes::copy_from_slice(bytes.as_bytes());
        Ok(())
    }

    /// Received: the sender's address. To send: where to (`ipaddress` notation,
    /// compressed).
    #[getter]
    fn address(&self) -> String {
        self.fields.lock().address.to_string()
    }

    #[setter]
    fn set_address(&self, value: &str) -> PyResult<()> {
        let address: IpAddr = value
            .parse()
            .map_err(|_| PyValueError::new_err(format!("{value:?} does not appear to be an IPv4 or IPv6 address")))?;
        self.fields.lock().address = address;
        Ok(())
    }

    /// Received: the sender's public port. To send: the remote's port.
    #[getter]
    fn port(&self) -> u16 {
        self.fields.lock().port
    }

    #[setter]
    fn set_port(&self, value: i64) -> PyResult<()> {
        let port = u16::try_from(value).map_err(|_| PyAssertionError::new_err("port must be within 0..=65535"))?;
        self.fields.lock().port = port;
        Ok(())
    }

    /// The sending node's identity (zero for a new message).
    #[getter]
    fn remote_identity<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.fields.lock().remote_identity.as_bytes())
    }

    /// True while the message holds one of its connection's slots.
    #[getter]
    fn has_slot(&self) -> bool {
        self.slot.lock().as_ref().is_some_and(|s| s.message.has_slot())
    }

    /// Release the slot (acknowledging the message if the sender asked for it).
    /// Returns a `concurrent.futures.Future` resolved with `(identity, serial)`, or
    /// with `None` if there was no slot.
    fn release_slot(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.release_into_future(py)
    }

    /// Alias of `release_slot`.
    fn release(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.release_into_future(py)
    }

    /// `release()` without its future, for AUTO_RELEASE, which drops it: no Python
    /// object is made or resolved per message.
    fn _release_nowait(&self) -> PyResult<()> {
        self.release_then(None)
    }

    fn __repr__(&self) -> String {
        let f = self.fields.lock();
        format!(
            "<pvloom.chirp.Message identity={} serial={} {} data_len={} has_slot={}>",
            f.identity,
            f.serial,
            SocketAddr::new(f.address, f.port),
            f.data.len(),
            self.slot.lock().as_ref().is_some_and(|s| s.message.has_slot())
        )
    }
}
