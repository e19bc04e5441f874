//! [`MsgClient`]: a subscriber in this process (`ldms_msg_subscribe`), and [`MsgData`],
//! what it receives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use pvloom_core::{Deliverer, RuntimeHandle};

use super::{BusError, BusMsg, ClientStats, CreditShare, MsgBus, Target};
use crate::msg::{Hop, LdmsAddr, MsgType};
use crate::server::Credentials;

/// One delivered message. Until the callback returns (or the message is taken from the
/// queue) its sender's credit is not returned: a slow consumer slows its publishers. The
/// message may be kept afterwards without holding anyone up.
#[derive(Clone)]
pub struct MsgData {
    msg: Arc<BusMsg>,
}

impl std::fmt::Debug for MsgData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.msg.fmt(f)
    }
}

impl MsgData {
    pub(crate) fn new(msg: Arc<BusMsg>) -> MsgData {
        MsgData { msg }
    }
    /// The name (tag), lossily as text.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.msg.name).into_owned()
    }
    /// The name's bytes.
    pub fn name_bytes(&self) -> &Bytes {
        &self.msg.name
    }
    /// The data as sent.
    pub fn data(&self) -> &Bytes {
        &self.msg.data
    }
    /// STRING, JSON or AVRO_SER.
    pub fn msg_type(&self) -> MsgType {
        self.msg.header.msg_type
    }
    /// True for a JSON message.
    pub fn is_json(&self) -> bool {
        self.msg.header.msg_type == MsgType::Json
    }
    /// The JSON data, parsed.
    ///
    /// # Errors
    /// The data is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.msg.data)
    }
    /// The publisher's uid.
    pub fn uid(&self) -> u32 {
        self.msg.header.uid
    }
    /// The publisher's gid.
    pub fn gid(&self) -> u32 {
        self.msg.header.gid
    }
    /// The permission bits.
    pub fn perm(&self) -> u32 {
        self.msg.header.perm
    }
    /// Where it came from (all zero: this process, or a loopback peer).
    pub fn src(&self) -> LdmsAddr {
        self.msg.header.src
    }
    /// The publisher's message number.
    pub fn msg_gn(&self) -> u64 {
        self.msg.header.msg_gn
    }
    /// How many daemons passed it on before it got here.
    pub fn hop_cnt(&self) -> u32 {
        self.msg.header.hop_cnt
    }
    /// The hops' timestamps, publisher first.
    pub fn hops(&self) -> &[Hop] {
        &self.msg.header.hops
    }
    /// The underlying message.
    pub fn message(&self) -> &Arc<BusMsg> {
        &self.msg
    }
}

type Callback = Box<dyn FnMut(&MsgData) + Send>;

const ORIGIN: &str = "ldms.msg_client";

/// A callback and the messages waiting for it. It runs one message at a time, in
/// order, on whichever delivering thread finds it free. A delivery that finds it busy
/// leaves its message to the thread running it instead of waiting: on the same thread
/// (a callback that publishes to a name it matches) waiting would never end, and two
/// callbacks publishing to each other from two threads would wait for each other.
struct CallbackSink {
    cb: Mutex<Callback>,
    waiting: Mutex<VecDeque<(MsgData, CreditShare)>>,
    closed: AtomicBool,
    deliverer: Deliverer,
}

impl CallbackSink {
    fn deliver(&self, data: MsgData, token: CreditShare) {
        self.waiting.lock().push_back((data, token));
        loop {
            let Some(mut cb) = self.cb.try_lock() else { return };
            loop {
                let next = self.waiting.lock().pop_front();
                let Some((data, token)) = next else { break };
                if !self.closed.load(Ordering::Acquire) {
                    // Contained here too, so a panic does not strand what waits behind it.
                    self.deliverer.containment().run(ORIGIN, || cb(&data));
                }
                drop(token);
            }
            drop(cb);
            // One left between the last look and the unlock would wait for the next delivery.
            if self.waiting.lock().is_empty() {
                return;
            }
        }
    }
}

enum Sink {
    Callback(Arc<CallbackSink>),
    Queue { q: Mutex<VecDeque<(MsgData, CreditShare)>>, ready: Condvar, max: usize },
}

pub(super) struct LocalClient {
    pub(super) credentials: Credentials,
    sink: Sink,
    drops: AtomicU64,
    closed: AtomicBool,
}

impl LocalClient {
    pub(super) fn deliver(&self, msg: &Arc<BusMsg>, token: CreditShare) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let data = MsgData::new(msg.clone());
        match &self.sink {
            Sink::Callback(sink) => {
                let deliverer = &sink.deliverer;
                let sink = sink.clone();
                if let Err(e) = deliverer.dispatch(ORIGIN, None, move || sink.deliver(data, token)) {
                    self.drops.fetch_add(1, Ordering::Relaxed);
                    deliverer.containment().report(ORIGIN, &format!("message not delivered: {e}"));
                }
            }
            Sink::Queue { q, ready, max } => {
                let mut q = q.lock();
                if q.len() >= *max {
                    self.drops.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                q.push_back((data, token));
                ready.notify_one();
            }
        }
    }
}

/// A subscriber in this process. Dropping it (or [`close`](Self::close)) unsubscribes.
pub struct MsgClient {
    bus: Arc<MsgBus>,
    id: u64,
    inner: Arc<LocalClient>,
    pattern: String,
    is_regex: bool,
}

impl std::fmt::Debug for MsgClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgClient").field("pattern", &self.pattern).field("is_regex", &self.is_regex).finish()
    }
}

impl MsgClient {
    fn with_sink(bus: &Arc<MsgBus>, pattern: &str, is_regex: bool, sink: Sink) -> Result<MsgClient, BusError> {
        let inner = Arc::new(LocalClient {
            credentials: Credentials::root(),
            sink,
            drops: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let sub = bus.new_sub(0, pattern, is_regex, 0, Target::Local(Arc::downgrade(&inner)))?;
        let id = bus.add(sub);
        Ok(MsgClient { bus: bus.clone(), id, inner, pattern: pattern.to_string(), is_regex })
    }

    /// Subscribes `cb` to names equal to `pattern` (or matching it, `is_regex`). `cb` is
    /// delivered per `rt`'s delivery, one message at a time and in order; a message that
    /// finds it running (on another thread, or `cb` publishing to a name it matches)
    /// runs on that thread once `cb` returns. A panic in it is contained and reported.
    ///
    /// # Errors
    /// [`BusError::BadRegex`].
    pub fn new(
        bus: &Arc<MsgBus>,
        rt: &RuntimeHandle,
        pattern: &str,
        is_regex: bool,
        cb: impl FnMut(&MsgData) + Send + 'static,
    ) -> Result<MsgClient, BusError> {
        let sink = CallbackSink {
            cb: Mutex::new(Box::new(cb)),
            waiting: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            deliverer: rt.deliverer(),
        };
        Self::with_sink(bus, pattern, is_regex, Sink::Callback(Arc::new(sink)))
    }

    /// A subscriber that queues what it gets (at most `max` messages; more are dropped and
    /// counted) for [`get_data`](Self::get_data).
    ///
    /// # Errors
    /// [`BusError::BadRegex`].
    pub fn queue(bus: &Arc<MsgBus>, pattern: &str, is_regex: bool, max: usize) -> Result<MsgClient, BusError> {
        let sink = Sink::Queue { q: Mutex::new(VecDeque::new()), ready: Condvar::new(), max: max.max(1) };
        Self::with_sink(bus, pattern, is_regex, sink)
    }

    /// The next queued message, if one is there now.
    pub fn try_get_data(&self) -> Option<MsgData> {
        match &self.inner.sink {
            Sink::Queue { q, .. } => q.lock().pop_front().map(|(m, _)| m),
            Sink::Callback(_) => None,
        }
    }

    /// The next queued message, waiting up to `timeout` (`Ok(None)`: none came).
    ///
    /// # Errors
    /// `WouldDeadlock` when it would wait on an I/O thread.
    pub fn get_data(&self, timeout: Duration) -> Result<Option<MsgData>, pvloom_core::Error> {
        let Sink::Queue { q, ready, .. } = &self.inner.sink else { return Ok(None) };
        let mut q = q.lock();
        if let Some((m, _)) = q.pop_front() {
            return Ok(Some(m));
        }
        pvloom_core::ensure_may_block()?;
        let end = Instant::now() + timeout;
        while q.is_empty() && !self.inner.closed.load(Ordering::Acquire) {
            if ready.wait_until(&mut q, end).timed_out() {
                break;
            }
        }
        Ok(q.pop_front().map(|(m, _)| m))
    }

    /// The pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern is a regex.
    pub fn is_regex(&self) -> bool {
        self.is_regex
    }

    /// Messages this client did not get (its queue was full, or delivery failed).
    pub fn drops(&self) -> u64 {
        self.inner.drops.load(Ordering::Relaxed)
    }

    /// This client's counters.
    pub fn stats(&self) -> Option<ClientStats> {
        let mut s = self.bus.stats().clients.into_iter().find(|c| c.id == self.id)?;
        s.drops += self.drops();
        Some(s)
    }

    /// Unsubscribes; no callback starts after it returns (one running now finishes,
    /// and what waited for it is dropped).
    pub fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            self.bus.remove_sub(self.id);
            match &self.inner.sink {
                Sink::Queue { q, ready, .. } => {
                    q.lock().clear();
                    ready.notify_all();
                }
                Sink::Callback(sink) => sink.closed.store(true, Ordering::Release),
            }
        }
    }
}

impl Drop for MsgClient {
    fn drop(&mut self) {
        self.close();
    }
}
