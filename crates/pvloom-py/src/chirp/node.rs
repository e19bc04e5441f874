//! `ChirpNode`: a running pvloom chirp node for Python.
//!
//! Received messages are registered as held until released, so `stop()` can wait for
//! them as libchirp does, and handed on: into the pool's `ChirpWorkQueue` directly, or
//! (the queue API) to a Python callable through the loop's resolver thread. Sends and
//! requests resolve `concurrent.futures.Future`s through their `ChirpPending`: the
//! thread waiting on one, or else the resolver thread.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use pvloom_chirp::{Chirp, ChirpError, Config, Identity};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::message::PyChirpMessage;
use super::pending::{Finisher, PyChirpPending};
use super::work_queue::{PyChirpWorkQueue, Received};
use super::{LoopEnv, PyChirpLoop, chirp_exception};
use crate::errors::to_py;
use crate::outcome::report_exception;
use crate::wait::{deadline, wait_sliced};

/// Received messages not yet released, by a key of their own.
#[derive(Default)]
pub struct Held {
    messages: Mutex<HashMap<u64, pvloom_chirp::Message>>,
    next: AtomicU64,
    emptied: Condvar,
}

impl Held {
    fn insert(&self, message: pvloom_chirp::Message) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.messages.lock().insert(key, message);
        key
    }

    pub(crate) fn remove(&self, key: u64) {
        let mut messages = self.messages.lock();
        messages.remove(&key);
        if messages.is_empty() {
            self.emptied.notify_all();
        }
    }

    /// Wait until every message is released or `until` passes; true if all were.
    fn wait_empty(&self, until: Instant) -> bool {
        let mut messages = self.messages.lock();
        while !messages.is_empty() {
            if self.emptied.wait_until(&mut messages, until).timed_out() {
                return messages.is_empty();
            }
        }
        true
    }

    fn len(&self) -> usize {
        self.messages.lock().len()
    }
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a number of seconds >= 0, not {value}")))
}

/// A running node. Made by `pvloom.chirp.Chirp`; not for direct use.
#[pyclass(name = "ChirpNode", module = "pvloom.chirp", frozen)]
pub struct PyChirpNode {
    node: Chirp,
    held: Arc<Held>,
    env: Arc<LoopEnv>,
    timeout: Duration,
}

#[pymethods]
impl PyChirpNode {
    /// Start a node on `chirp_loop`; `on_message(msg)` is called on an I/O thread for
    /// every message that is not the answer to one of this node's requests.
    #[new]
    #[pyo3(signature = (
        chirp_loop, on_message, *, port=2998, bind_v4="0.0.0.0", backlog=100, max_slots=0, synchronous=true,
        buffer_size=0, max_msg_size=pvloom_chirp::config::DEFAULT_MAX_MSG_SIZE, identity=None, timeout=5.0,
        reuse_time=30.0, disable_encryption=false, cert_chain_pem=None, dh_params_pem=None, always_encrypt=false,
        max_queued=65_536
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        chirp_loop: &PyChirpLoop,
        on_message: Py<PyAny>,
        port: u16,
        bind_v4: &str,
        backlog: u32,
        max_slots: u8,
        synchronous: bool,
        buffer_size: u32,
        max_msg_size: u32,
        identity: Option<&[u8]>,
        timeout: f64,
        reuse_time: f64,
        disable_encryption: bool,
        cert_chain_pem: Option<PathBuf>,
        dh_params_pem: Option<PathBuf>,
        always_encrypt: bool,
        max_queued: usize,
    ) -> PyResult<Self> {
        let env = chirp_loop.env.clone();
        if env.runtime.lock().is_none() {
            return Err(PyRuntimeError::new_err("the loop is stopped"));
        }
        let identity = match identity {
            None => None,
            Some(bytes) => {
                Some(Identity(bytes.try_into().map_err(|_| PyValueError::new_err("IDENTITY must be 16 bytes"))?))
            }
        };
        let bind_v4: Ipv4Addr = match bind_v4.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4,
            _ => return Err(PyValueError::new_err(format!("BIND_V4 {bind_v4:?} is not an IPv4 address"))),
        };
        let config = Config {
            port,
            bind_v4,
            backlog,
            max_slots,
            synchronous,
            buffer_size,
            max_msg_size,
            identity,
            timeout: seconds("TIMEOUT", timeout)?,
            reuse_time: seconds("REUSE_TIME", reuse_time)?,
            disable_encryption,
            cert_chain_pem,
            dh_params_pem,
            always_encrypt,
            // The Python pool releases a message after its handler, on its own thread.
            auto_release: false,
            max_queued,
            ..Config::default()
        };
        let held = Arc::new(Held::default());
        // The pool's own work queue: messages go to its workers without the resolver.
        let direct = on_message.bind(py).cast::<PyChirpWorkQueue>().ok().map(|q| q.get().queue.clone());
        let handler = {
            let (env, held) = (env.clone(), held.clone());
            let on_message = Arc::new(on_message);
            move |message: pvloom_chirp::Message| {
                let key = held.insert(message.clone());
                let message = match &direct {
                    None => message,
                    Some(queue) => {
                        let received = Received { message, held: held.clone(), key, env: env.clone() };
                        queue.push_received(received);
                        return;
                    }
                };
                let (env, held, on_message) = (env.clone(), held.clone(), on_message.clone());
                // In order: one resolver thread runs the jobs as they were queued.
                env.resolver.clone().push(Box::new(move |py| {
                    let received = PyChirpMessage::received(message, Some((held, key, env.clone())));
                    match Py::new(py, received) {
                        Ok(received) => env.call(py, "chirp handler", &on_message, (received,)),
                        Err(err) => report_exception(py, &env.containment, "chirp handler", &env.hook, err, None),
                    }
                }));
            }
        };
        let handle = env.handle.clone();
        let node = py.detach(|| Chirp::start(&handle, &config, handler)).map_err(|e| chirp_exception(py, e))?;
        Ok(PyChirpNode { node, held, env, timeout: config.timeout })
    }

    /// The node's identity (16 bytes).
    fn identity<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.node.identity().as_bytes())
    }

    /// The port it listens on.
    #[getter]
    fn port(&self) -> u16 {
        self.node.port()
    }

    /// Send `msg` to its address and port; `future` gets `msg` when the OS took it
    /// (asynchronous) or the remote released it (synchronous), or the exception.
    /// Returns the future's native half (`ChirpPending`), through which a thread
    /// waiting for it resolves it.
    fn send(&self, msg: &Bound<'_, PyChirpMessage>, future: Py<PyAny>) -> PyResult<PyChirpPending> {
        let message = msg.get();
        message.begin_send()?;
        let (to, outgoing) = message.outgoing();
        let msg: Py<PyChirpMessage> = msg.clone().unbind();
        // The GIL is kept: the node's send never blocks, and its callbacks never wait
        // for the GIL (they go through the resolver).
        let sent = self.node.send(to, outgoing);
        let (pending, finisher) = PyChirpPending::new(&self.env);
        sent.then(settle_send(msg, future, finisher));
        Ok(pending)
    }

    /// Send `msg` and resolve `answer_future` with the answer (a message with the same
    /// identity), or `TimeoutError` after TIMEOUT; `send_future` as for `send`.
    /// Returns the two futures' native halves.
    fn request(
        &self,
        msg: &Bound<'_, PyChirpMessage>,
        send_future: Py<PyAny>,
        answer_future: Py<PyAny>,
    ) -> PyResult<(PyChirpPending, PyChirpPending)> {
        let message = msg.get();
        message.begin_send()?;
        let (to, outgoing) = message.outgoing();
        let msg: Py<PyChirpMessage> = msg.clone().unbind();
        // The GIL is kept, as in send.
        let (sent, answer) = self.node.request(to, outgoing);
        let (send_pending, send_finisher) = PyChirpPending::new(&self.env);
        sent.then(settle_send(msg, send_future, send_finisher));
        let (answer_pending, answer_finisher) = PyChirpPending::new(&self.env);
        answer.then(move |result| {
            answer_finisher.finish(
                answer_future,
                Box::new(move |py| match result {
                    Ok(Ok(answer)) => Py::new(py, PyChirpMessage::received(answer, None)).map(Py::into_any),
                    Ok(Err(error)) => Err(chirp_exception(py, error)),
                    Err(error) => Err(to_py(error)),
                }),
            );
        });
        Ok((send_pending, answer_pending))
    }

    /// Messages received and not yet released.
    #[getter]
    fn held(&self) -> usize {
        self.held.len()
    }

    /// Wait (GIL released) until every received message is released, at most
    /// `timeout` seconds (`None`: TIMEOUT); true if they all were.
    #[pyo3(signature = (timeout=None))]
    fn wait_released(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let until = deadline(Some(timeout.unwrap_or(self.timeout.as_secs_f64())));
        let held = self.held.clone();
        let done = wait_sliced(py, until, move |slice_end| Ok(held.wait_empty(slice_end).then_some(())))?;
        Ok(done.is_some())
    }

    /// Release every message still held (libchirp's clean-up at a stop that timed out).
    fn release_all(&self, py: Python<'_>) {
        let messages: Vec<_> = self.held.messages.lock().drain().map(|(_, m)| m).collect();
        self.held.emptied.notify_all();
        py.detach(move || {
            for message in messages {
                drop(message.release());
            }
        });
    }

    /// Stop: no more listening, connections closed, what waits fails.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.node.stop());
    }
}

/// The callback that resolves a send's future with the message or the exception.
fn settle_send(
    msg: Py<PyChirpMessage>,
    future: Py<PyAny>,
    finisher: Finisher,
) -> impl FnOnce(Result<Result<(), ChirpError>, pvloom_core::Error>) + Send + 'static {
    move |result| {
        msg.get().sending.store(false, Ordering::Release);
        finisher.finish(
            future,
            Box::new(move |py| match result {
                Ok(Ok(())) => Ok(msg.into_any()),
                Ok(Err(error)) => Err(chirp_exception(py, error)),
                Err(error) => Err(to_py(error)),
            }),
        );
    }
}
