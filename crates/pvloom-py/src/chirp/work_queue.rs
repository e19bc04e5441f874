//! `ChirpWorkQueue`: the work queue of `pvloom.chirp.Chirp`'s thread pool, which the
//! node fills directly.
//!
//! The pool's workers take their work from `executor._work_queue` (`get(block=True)`).
//! With a `queue.SimpleQueue` there, a received message went from the I/O thread to
//! the resolver thread (for the GIL), which put it in the queue, which woke a worker
//! (for the GIL again): two thread hops and two GIL hand-overs per message. This queue
//! takes the received message on the I/O thread without the GIL and wakes a worker,
//! which makes the Python message and its work item itself. What `submit()` queues goes
//! in as it is; the queue is FIFO over both.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};
use pyo3::prelude::*;

use super::LoopEnv;
use super::message::PyChirpMessage;
use super::node::Held;
use crate::wait::{deadline, wait_sliced};

/// A message the node received, before it becomes a Python object.
pub(crate) struct Received {
    pub(crate) message: pvloom_chirp::Message,
    pub(crate) held: Arc<Held>,
    pub(crate) key: u64,
    pub(crate) env: Arc<LoopEnv>,
}

enum Entry {
    Item(Py<PyAny>),
    Received(Received),
}

#[derive(Default)]
struct State {
    entries: VecDeque<Entry>,
    /// The pool shut down: received messages go the resolver's way (and are released).
    refuses_messages: bool,
    /// Workers parked on `ready`.
    parked: usize,
    /// One of them was woken and has not looked at the queue yet.
    waking: bool,
}

/// The queue proper, shared with the node's handler.
///
/// One parked worker is woken at a time: a push wakes one unless one is already on its
/// way, and a worker that takes an entry and leaves others wakes the next. Waking one
/// per message (as `SimpleQueue` does) woke workers that found nothing left, or
/// queued for the GIL: a third of the pool's CPU per message, in context switches.
#[derive(Default)]
pub(crate) struct WorkQueue {
    state: Mutex<State>,
    ready: Condvar,
}

impl WorkQueue {
    /// Queue a received message for a worker; once the pool shut down, release it
    /// unhandled (nobody will handle it). Never waits for the GIL.
    pub(crate) fn push_received(&self, received: Received) {
        let mut state = self.state.lock();
        if state.refuses_messages {
            drop(state);
            received.message.release_detached();
            received.held.remove(received.key);
            return;
        }
        state.entries.push_back(Entry::Received(received));
        self.wake_one(state);
    }

    fn push(&self, entry: Entry) {
        let mut state = self.state.lock();
        state.entries.push_back(entry);
        self.wake_one(state);
    }

    /// Wake a parked worker for what is queued, unless one is on its way already.
    fn wake_one(&self, mut state: MutexGuard<'_, State>) {
        if !state.entries.is_empty() && state.parked > 0 && !state.waking {
            state.waking = true;
            drop(state);
            self.ready.notify_one();
        }
    }

    /// The next entry, if there is one, at once.
    fn take_now(&self) -> Option<Entry> {
        let mut state = self.state.lock();
        let entry = state.entries.pop_front();
        self.wake_one(state);
        entry
    }

    /// The next entry, waiting until `until`.
    fn pop_until(&self, until: Instant) -> Option<Entry> {
        let mut state = self.state.lock();
        loop {
            if let Some(entry) = state.entries.pop_front() {
                self.wake_one(state);
                return Some(entry);
            }
            if Instant::now() >= until {
                return None;
            }
            state.parked += 1;
            self.ready.wait_until(&mut state, until);
            state.parked -= 1;
            state.waking = false;
        }
    }
}

/// The pool's work queue (`queue.SimpleQueue`'s methods). `make_item(msg)` makes the
/// work item of a received message.
#[pyclass(name = "ChirpWorkQueue", module = "pvloom.chirp", frozen)]
pub struct PyChirpWorkQueue {
    pub(crate) queue: Arc<WorkQueue>,
    make_item: Py<PyAny>,
}

impl PyChirpWorkQueue {
    fn to_python(&self, py: Python<'_>, entry: Entry) -> PyResult<Py<PyAny>> {
        match entry {
            Entry::Item(item) => Ok(item),
            Entry::Received(Received { message, held, key, env }) => {
                let msg = Py::new(py, PyChirpMessage::received(message, Some((held, key, env))))?;
                Ok(self.make_item.bind(py).call1((msg,))?.unbind())
            }
        }
    }

    fn empty_error(py: Python<'_>) -> PyErr {
        match py.import("queue").and_then(|m| m.getattr("Empty")) {
            Ok(empty) => PyErr::from_value(empty.call0().unwrap_or(empty)),
            Err(err) => err,
        }
    }
}

#[pymethods]
impl PyChirpWorkQueue {
    #[new]
    fn new(make_item: Py<PyAny>) -> Self {
        PyChirpWorkQueue { queue: Arc::new(WorkQueue::default()), make_item }
    }

    /// Queue `item` (never blocks: the queue is unbounded, as SimpleQueue).
    #[pyo3(signature = (item, block=true, timeout=None))]
    fn put(&self, item: Py<PyAny>, block: bool, timeout: Option<f64>) {
        let _ = (block, timeout);
        self.queue.push(Entry::Item(item));
    }

    /// `put(item, False)`.
    fn put_nowait(&self, item: Py<PyAny>) {
        self.queue.push(Entry::Item(item));
    }

    /// The next item; waits (GIL released) if `block`, up to `timeout` seconds
    /// (`None`: forever). `queue.Empty` when there is none.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let entry = match self.queue.take_now() {
            Some(entry) => Some(entry),
            None if !block => None,
            None => {
                let queue = self.queue.clone();
                wait_sliced(py, deadline(timeout), move |slice_end| Ok(queue.pop_until(slice_end)))?
            }
        };
        match entry {
            Some(entry) => self.to_python(py, entry),
            None => Err(Self::empty_error(py)),
        }
    }

    /// `get(False)`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get(py, false, None)
    }

    /// Entries queued.
    fn qsize(&self) -> usize {
        self.queue.state.lock().entries.len()
    }

    /// True if nothing is queued.
    fn empty(&self) -> bool {
        self.queue.state.lock().entries.is_empty()
    }

    /// From now on received messages are not queued (the pool shut down).
    fn refuse_messages(&self) {
        self.queue.state.lock().refuses_messages = true;
    }
}
