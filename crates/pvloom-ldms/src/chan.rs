//! [`MessageChannel`]: a resilient message endpoint (the role of `ldms_msg_chan`).
//!
//! - SUBSCRIBE: listens on a local address with a bus of its own; peers publish to it,
//!   and [`subscribe`](MessageChannel::subscribe) adds a local [`MsgClient`] on that bus
//!   (nothing goes on the wire).
//! - PUBLISH: keeps one connection to a remote address, reconnecting every
//!   `reconnect` (the runtime's timers). [`publish`](MessageChannel::publish) enqueues
//!   into a FIFO bounded in bytes, sent while connected; when it is full, publish fails
//!   at once or waits at most the caller's timeout.
//! - BIDIR: both.
//!
//! Acknowledged = the peer returned the message's credit (SEND_QUOTA with rc 0).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use pvloom_core::{RuntimeHandle, TimerHandle};

use crate::bus::{BusConfig, BusError, MsgBus, MsgClient, MsgData};
use crate::client::{MsgOwner, PublishError, Xprt, XprtConfig, XprtEvent, XprtEventKind};
use crate::msg::MsgType;
use crate::server::{LdmsServer, ServerConfig, SetRegistry};

/// What a channel does (the values of the real `get_stats()["mode"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChanMode {
    /// Listen and deliver to local subscribers.
    Subscribe = 1,
    /// Connect and publish.
    Publish = 2,
    /// Both.
    Bidir = 3,
}

impl ChanMode {
    /// Listens.
    pub fn subscribes(self) -> bool {
        matches!(self, ChanMode::Subscribe | ChanMode::Bidir)
    }
    /// Publishes.
    pub fn publishes(self) -> bool {
        matches!(self, ChanMode::Publish | ChanMode::Bidir)
    }
}

/// The publishing connection's state (`get_stats()["state"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChanState {
    /// Not connected (waiting to reconnect, or closed).
    Disconnected = 0,
    /// Connecting.
    Connecting = 1,
    /// Connected.
    Connected = 2,
    /// Closed.
    Closed = 3,
}

/// Settings of a channel.
#[derive(Debug, Clone)]
pub struct ChanConfig {
    /// The channel's name.
    pub name: String,
    /// What it does.
    pub mode: ChanMode,
    /// Where PUBLISH connects.
    pub remote: Option<SocketAddr>,
    /// Where SUBSCRIBE listens.
    pub local: Option<SocketAddr>,
    /// The delay before reconnecting.
    pub reconnect: Duration,
    /// Data bytes the publish FIFO holds at most (one bigger message fits an empty one).
    pub fifo_bytes: usize,
    /// The publishing connection's settings.
    pub xprt: XprtConfig,
}

impl ChanConfig {
    /// Defaults: reconnect every 6 s, a 1 MiB FIFO.
    pub fn new(name: &str, mode: ChanMode) -> ChanConfig {
        ChanConfig {
            name: name.to_string(),
            mode,
            remote: None,
            local: None,
            reconnect: Duration::from_secs(6),
            fifo_bytes: 1 << 20,
            xprt: XprtConfig::default(),
        }
    }
}

/// Why a channel call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChanError {
    /// The message is wrong (name, size), or the regex.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The FIFO stayed full.
    #[error("the channel's queue is full ({queued} bytes); no room within {waited:?}")]
    Full {
        /// Bytes queued.
        queued: usize,
        /// How long it waited.
        waited: Duration,
    },
    /// The configuration does not fit the mode (an address missing), or `subscribe` on
    /// a PUBLISH channel.
    #[error("{0}")]
    Mode(&'static str),
    /// `publish` on a SUBSCRIBE channel (`ENOTSUP`, as `ldms_msg_chan_publish`).
    #[error("not a publishing channel")]
    NotPublisher,
    /// The channel is closing or closed (`ENOTCONN`).
    #[error("the channel is closed")]
    Closed,
    /// Listening failed.
    #[error("listen: {0}")]
    Listen(String),
    /// Waiting is not allowed here.
    #[error(transparent)]
    Core(#[from] pvloom_core::Error),
}

impl ChanError {
    /// The errno the real one would report.
    pub fn errno(&self) -> i32 {
        match self {
            ChanError::Bus(e) => e.errno(),
            ChanError::Full { .. } => ENOBUFS,
            ChanError::Mode(_) => crate::bus::EINVAL,
            ChanError::NotPublisher => crate::bus::ENOTSUP,
            ChanError::Closed => crate::client::ENOTCONN,
            ChanError::Listen(_) => 98,
            ChanError::Core(_) => 5,
        }
    }
}

/// `ENOBUFS`: the publish queue is full (as `ldms_msg_chan_publish`).
pub const ENOBUFS: i32 = 105;

/// One queued message.
#[derive(Debug, Clone)]
struct Item {
    name: String,
    msg_type: MsgType,
    data: Bytes,
    owner: MsgOwner,
}

impl Item {
    fn credit(&self) -> usize {
        self.name.len() + 1 + self.data.len()
    }
}

/// A FIFO bounded in bytes (one message bigger than the bound fits in an empty one).
#[derive(Debug)]
struct Fifo<T> {
    items: VecDeque<(usize, T)>,
    bytes: usize,
    max: usize,
}

impl<T> Fifo<T> {
    fn new(max: usize) -> Fifo<T> {
        Fifo { items: VecDeque::new(), bytes: 0, max }
    }
    fn has_room(&self, len: usize) -> bool {
        self.items.is_empty() || self.bytes + len <= self.max
    }
    fn push(&mut self, len: usize, t: T) {
        self.bytes += len;
        self.items.push_back((len, t));
    }
    fn front(&self) -> Option<&T> {
        self.items.front().map(|(_, t)| t)
    }
    fn pop(&mut self) -> Option<T> {
        let (len, t) = self.items.pop_front()?;
        self.bytes -= len;
        Some(t)
    }
    fn len(&self) -> usize {
        self.items.len()
    }
}

/// A snapshot of a channel's counters (`struct ldms_msg_chan_stats_s`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChanStats {
    /// [`ChanState`] as a number.
    pub state: u32,
    /// [`ChanMode`] as a number.
    pub mode: u32,
    /// The FIFO's bound in data bytes.
    pub max_q_depth: u64,
    /// Data bytes in the FIFO.
    pub cur_q_depth: u64,
    /// Publishes that found the FIFO full.
    pub pub_blocked: u64,
    /// When the last connection was made (zero: never).
    pub pub_last_conn: Duration,
    /// Whether it is closing or closed.
    pub closing: bool,
    /// Whether it was closed without waiting (`cancel`).
    pub cancel: bool,
    /// Connection attempts.
    pub pub_conn_attempt: u64,
    /// Connections made.
    pub pub_conn_success: u64,
    /// Messages handed to the connection.
    pub pub_msg_sent: u64,
    /// Messages the peer acknowledged (returned their credit).
    pub pub_msg_acked: u64,
    /// Data bytes sent.
    pub pub_byte_cnt: u64,
    /// Messages waiting in the FIFO.
    pub pub_queued: u64,
    /// Messages delivered to local subscribers.
    pub sub_msg_cnt: u64,
    /// Their data bytes.
    pub sub_byte_cnt: u64,
}

struct PubState {
    state: ChanState,
    xprt: Option<Xprt>,
    fifo: Fifo<Item>,
    /// Credit of messages sent on the current connection, not yet acknowledged.
    unacked: VecDeque<usize>,
    /// Credit returned that did not yet cover the oldest unacked message.
    credit: usize,
    timer: Option<TimerHandle>,
    blocked: u64,
    last_conn: Duration,
    cancel: bool,
    /// Which connection attempt is current (events of older ones are ignored).
    attempt: u64,
    attempts: u64,
    successes: u64,
    sent: u64,
    acked: u64,
    bytes: u64,
}

struct Inner {
    rt: RuntimeHandle,
    config: ChanConfig,
    bus: Arc<MsgBus>,
    server: Mutex<Option<LdmsServer>>,
    local_addr: OnceLock<SocketAddr>,
    clients: Mutex<Vec<MsgClient>>,
    st: Mutex<PubState>,
    changed: Condvar,
    closed: AtomicBool,
    sub_msgs: AtomicU64,
    sub_bytes: AtomicU64,
}

/// A subscription's callback, for [`MessageChannel::open_subscribed`].
pub type ChanCallback = Box<dyn FnMut(&MsgData) + Send>;

/// A message channel. Cheap to clone; [`close`](Self::close) ends it.
#[derive(Clone)]
pub struct MessageChannel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MessageChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageChannel")
            .field("name", &self.inner.config.name)
            .field("mode", &self.inner.config.mode)
            .finish()
    }
}

impl MessageChannel {
    /// Starts a channel: listens (SUBSCRIBE, BIDIR) and starts connecting (PUBLISH, BIDIR).
    ///
    /// # Errors
    /// [`ChanError::Listen`] when the local address cannot be bound, [`ChanError::Mode`]
    /// when an address the mode needs is missing.
    pub fn open(rt: &RuntimeHandle, config: ChanConfig) -> Result<MessageChannel, ChanError> {
        Self::open_subscribed(rt, config, Vec::new())
    }

    /// As [`open`](Self::open), with `subscriptions` (regex, callback) in place before
    /// it listens: a publisher that connects at once loses nothing to a subscription
    /// made a moment later (messages nobody subscribed to are dropped, as LDMS does).
    ///
    /// # Errors
    /// As [`open`](Self::open); a bad regex is [`ChanError::Bus`].
    pub fn open_subscribed(
        rt: &RuntimeHandle,
        config: ChanConfig,
        subscriptions: Vec<(String, ChanCallback)>,
    ) -> Result<MessageChannel, ChanError> {
        if config.mode.subscribes() && config.local.is_none() {
            return Err(ChanError::Mode("a SUBSCRIBE channel needs a local address"));
        }
        if config.mode.publishes() && config.remote.is_none() {
            return Err(ChanError::Mode("a PUBLISH channel needs a remote address"));
        }
        let st = PubState {
            state: ChanState::Disconnected,
            xprt: None,
            fifo: Fifo::new(config.fifo_bytes),
            unacked: VecDeque::new(),
            credit: 0,
            timer: None,
            blocked: 0,
            last_conn: Duration::ZERO,
            cancel: false,
            attempt: 0,
            attempts: 0,
            successes: 0,
            sent: 0,
            acked: 0,
            bytes: 0,
        };
        let inner = Arc::new(Inner {
            rt: rt.clone(),
            config,
            bus: MsgBus::new(BusConfig::default()),
            server: Mutex::new(None),
            local_addr: OnceLock::new(),
            clients: Mutex::new(Vec::new()),
            st: Mutex::new(st),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            sub_msgs: AtomicU64::new(0),
            sub_bytes: AtomicU64::new(0),
        });
        let ch = MessageChannel { inner };
        for (regex, cb) in subscriptions {
            ch.subscribe(&regex, cb)?;
        }
        let inner = &ch.inner;
        if let Some(addr) = inner.config.local.filter(|_| inner.config.mode.subscribes()) {
            let sc = ServerConfig { bus: Some(inner.bus.clone()), ..ServerConfig::default() };
            let s = LdmsServer::bind(rt.clone(), addr, SetRegistry::new(), sc)
                .map_err(|e| ChanError::Listen(format!("{addr}: {e}")))?;
            let _ = inner.local_addr.set(s.local_addr());
            *inner.server.lock() = Some(s);
        }
        if inner.config.mode.publishes() {
            Inner::connect(inner);
        }
        Ok(ch)
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Where it listens (SUBSCRIBE, BIDIR).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr.get().copied()
    }

    /// The bus peers publish to (SUBSCRIBE, BIDIR).
    pub fn bus(&self) -> &Arc<MsgBus> {
        &self.inner.bus
    }

    /// Delivers messages published to this channel whose names match `regex` to `cb`
    /// (per the runtime's delivery; a panic is contained and reported).
    ///
    /// # Errors
    /// [`BusError::BadRegex`]; [`ChanError::Mode`] on a PUBLISH channel.
    pub fn subscribe(&self, regex: &str, mut cb: impl FnMut(&MsgData) + Send + 'static) -> Result<(), ChanError> {
        if !self.inner.config.mode.subscribes() {
            return Err(ChanError::Mode("subscribe on a PUBLISH channel"));
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(ChanError::Closed);
        }
        let me = Arc::downgrade(&self.inner);
        let c = MsgClient::new(&self.inner.bus, &self.inner.rt, regex, true, move |m| {
            if let Some(inner) = me.upgrade() {
                inner.sub_msgs.fetch_add(1, Ordering::Relaxed);
                inner.sub_bytes.fetch_add(m.data().len() as u64, Ordering::Relaxed);
            }
            cb(m);
        })?;
        self.inner.clients.lock().push(c);
        Ok(())
    }

    /// Queues a message for the peer, waiting at most `wait` for room in the FIFO
    /// (`Duration::ZERO`: fail at once when full). It goes out while connected.
    ///
    /// # Errors
    /// [`ChanError::Bus`] (name, size), [`ChanError::Full`], [`ChanError::NotPublisher`],
    /// [`ChanError::Closed`], `WouldDeadlock` when it would wait on an I/O thread.
    pub fn publish(
        &self,
        name: &str,
        msg_type: MsgType,
        data: impl Into<Bytes>,
        owner: MsgOwner,
        wait: Duration,
    ) -> Result<(), ChanError> {
        let inner = &self.inner;
        if !inner.config.mode.publishes() {
            return Err(ChanError::NotPublisher);
        }
        let data = data.into();
        inner.bus.check(name.as_bytes(), data.len())?;
        let item = Item { name: name.to_string(), msg_type, data, owner };
        // Bounded in data bytes, as `cur_q_depth`.
        let len = item.data.len();
        let mut st = inner.st.lock();
        if inner.closed.load(Ordering::Acquire) {
            return Err(ChanError::Closed);
        }
        if !st.fifo.has_room(len) {
            st.blocked += 1;
            if wait.is_zero() {
                return Err(ChanError::Full { queued: st.fifo.bytes, waited: wait });
            }
            pvloom_core::ensure_may_block()?;
            let end = Instant::now() + wait;
            while !st.fifo.has_room(len) && !inner.closed.load(Ordering::Acquire) {
                if inner.changed.wait_until(&mut st, end).timed_out() {
                    break;
                }
            }
            if !st.fifo.has_room(len) {
                return Err(ChanError::Full { queued: st.fifo.bytes, waited: wait });
            }
        }
        if inner.closed.load(Ordering::Acquire) {
            return Err(ChanError::Closed);
        }
        st.fifo.push(len, item);
        inner.pump(&mut st);
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> ChanStats {
        let inner = &self.inner;
        let st = inner.st.lock();
        ChanStats {
            state: st.state as u32,
            mode: inner.config.mode as u32,
            max_q_depth: st.fifo.max as u64,
            cur_q_depth: st.fifo.bytes as u64,
            pub_blocked: st.blocked,
            pub_last_conn: st.last_conn,
            closing: inner.closed.load(Ordering::Acquire),
            cancel: st.cancel,
            pub_conn_attempt: st.attempts,
            pub_conn_success: st.successes,
            pub_msg_sent: st.sent,
            pub_msg_acked: st.acked,
            pub_byte_cnt: st.bytes,
            pub_queued: st.fifo.len() as u64,
            sub_msg_cnt: inner.sub_msgs.load(Ordering::Relaxed),
            sub_byte_cnt: inner.sub_bytes.load(Ordering::Relaxed),
        }
    }

    /// Sets the FIFO's bound in bytes (`set_q_limit`).
    pub fn set_queue_limit(&self, bytes: usize) {
        self.inner.st.lock().fifo.max = bytes;
        self.inner.changed.notify_all();
    }

    /// Waits up to `timeout` until everything queued was sent and acknowledged
    /// (while connected), then ends the channel; `Duration::ZERO` (`cancel`): at once.
    /// Returns whether everything was acknowledged.
    ///
    /// # Errors
    /// `WouldDeadlock` on an I/O thread with something left to wait for.
    pub fn close(&self, timeout: Duration) -> Result<bool, ChanError> {
        let inner = &self.inner;
        let mut st = inner.st.lock();
        st.cancel = timeout.is_zero();
        let done = |st: &PubState| st.fifo.len() == 0 && st.unacked.is_empty();
        let mut all = done(&st);
        if !all && !timeout.is_zero() {
            pvloom_core::ensure_may_block()?;
            let end = Instant::now() + timeout;
            while !done(&st) && st.state == ChanState::Connected {
                if inner.changed.wait_until(&mut st, end).timed_out() {
                    break;
                }
            }
            all = done(&st);
        }
        inner.closed.store(true, Ordering::Release);
        if let Some(t) = st.timer.take() {
            t.cancel();
        }
        let x = st.xprt.take();
        st.state = ChanState::Closed;
        inner.changed.notify_all();
        drop(st);
        if let Some(x) = x {
            x.close();
        }
        for c in inner.clients.lock().drain(..) {
            c.close();
        }
        drop(inner.server.lock().take());
        Ok(all)
    }
}

impl Inner {
    fn connect(me: &Arc<Inner>) {
        if me.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(addr) = me.config.remote else { return };
        let mut config = me.config.xprt.clone();
        config.conn.bus = Some(me.bus.clone());
        config.msg_queue = me.config.fifo_bytes.max(1);
        let weak = Arc::downgrade(me);
        let attempt = {
            let mut st = me.st.lock();
            if me.closed.load(Ordering::Acquire) {
                return;
            }
            st.attempts += 1;
            st.state = ChanState::Connecting;
            st.attempt += 1;
            st.xprt = None;
            st.attempt
        };
        let on_event = Arc::new(move |x: &Xprt, ev: &XprtEvent| {
            if let Some(inner) = weak.upgrade() {
                inner.on_event(attempt, x, ev);
            }
        });
        // Not under the lock: a failure may be reported on this thread.
        let (x, _wait) = Xprt::connect_with(&me.rt, addr, config, Some(on_event));
        let mut st = me.st.lock();
        if st.attempt == attempt && matches!(st.state, ChanState::Connecting | ChanState::Connected) {
            st.xprt.get_or_insert(x);
        } else if me.closed.load(Ordering::Acquire) {
            drop(st);
            x.close();
        }
    }

    fn schedule_reconnect(self: &Arc<Inner>, st: &mut PubState) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(self);
        st.timer = Some(self.rt.call_later(self.config.reconnect, move || {
            if let Some(inner) = weak.upgrade() {
                Inner::connect(&inner);
            }
        }));
    }

    fn on_event(self: Arc<Inner>, attempt: u64, x: &Xprt, ev: &XprtEvent) {
        let mut st = self.st.lock();
        if st.attempt != attempt || self.closed.load(Ordering::Acquire) {
            return;
        }
        if st.xprt.is_none() {
            st.xprt = Some(x.clone());
        }
        match ev.kind {
            XprtEventKind::Connected => {
                st.successes += 1;
                st.state = ChanState::Connected;
                st.last_conn = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                st.unacked.clear();
                st.credit = 0;
                self.pump(&mut st);
            }
            XprtEventKind::SendQuotaDeposited => {
                // A refusal (rc ≠ 0) returns the credit too, but acknowledges nothing.
                st.credit += ev.quota as usize;
                while let Some(&front) = st.unacked.front() {
                    if front > st.credit {
                        break;
                    }
                    st.credit -= front;
                    st.unacked.pop_front();
                    if ev.rc == 0 {
                        st.acked += 1;
                    }
                }
                self.pump(&mut st);
            }
            XprtEventKind::Disconnected | XprtEventKind::Error | XprtEventKind::Rejected => {
                st.state = ChanState::Disconnected;
                st.xprt = None;
                st.unacked.clear();
                st.credit = 0;
                self.schedule_reconnect(&mut st);
            }
            _ => {}
        }
        self.changed.notify_all();
    }

    /// Sends from the FIFO while the connection takes it.
    fn pump(&self, st: &mut PubState) {
        if st.state != ChanState::Connected {
            return;
        }
        let Some(x) = st.xprt.clone() else { return };
        while let Some(item) = st.fifo.front() {
            let len = item.credit();
            let data_len = item.data.len() as u64;
            match x.msg_publish_with(&item.name, item.msg_type, item.data.clone(), item.owner, Duration::ZERO) {
                Ok(_) => {
                    st.fifo.pop();
                    st.unacked.push_back(len);
                    st.sent += 1;
                    st.bytes += data_len;
                }
                Err(PublishError::Bus(_)) => {
                    // Checked at publish; drop it rather than block the queue.
                    st.fifo.pop();
                }
                Err(_) => break,
            }
        }
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifo_is_bounded_in_bytes_and_takes_one_big_message_when_empty() {
        let mut f = Fifo::new(10);
        assert!(f.has_room(100));
        f.push(6, 'a');
        assert!(f.has_room(4));
        assert!(!f.has_room(5));
        f.push(4, 'b');
        assert_eq!((f.len(), f.bytes), (2, 10));
        assert_eq!(f.pop(), Some('a'));
        assert!(f.has_room(6));
        assert_eq!(f.front(), Some(&'b'));
        assert_eq!(f.pop(), Some('b'));
        assert_eq!((f.pop(), f.bytes), (None, 0));
    }

    #[test]
    fn a_publisher_with_no_peer_retries_on_schedule_and_a_full_fifo_fails_at_once() {
        let rt = pvloom_core::Runtime::new().unwrap();
        // A port nobody listens on.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut config = ChanConfig::new("t", ChanMode::Publish);
        config.remote = Some(free);
        config.reconnect = Duration::from_millis(100);
        config.fifo_bytes = 64;
        let ch = MessageChannel::open(&rt.handle(), config).unwrap();
        let owner = MsgOwner { uid: 0, gid: 0, perm: 0o444 };
        ch.publish("a", MsgType::String, vec![b'x'; 40], owner, Duration::ZERO).unwrap();
        let t0 = Instant::now();
        let e = ch.publish("a", MsgType::String, vec![b'x'; 40], owner, Duration::ZERO).unwrap_err();
        assert!(matches!(e, ChanError::Full { .. }), "{e}");
        let e = ch.publish("a", MsgType::String, vec![b'x'; 40], owner, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, ChanError::Full { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(700));
        let s = ch.stats();
        assert!((3..=9).contains(&s.pub_conn_attempt), "{s:?}");
        assert_eq!((s.pub_conn_success, s.pub_msg_sent, s.pub_queued), (0, 0, 1));
        assert!(!ch.close(Duration::from_millis(50)).unwrap());
    }

    fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while !f() {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn publish_reaches_a_restarted_subscriber_with_what_was_queued_meanwhile() {
        let rt = pvloom_core::Runtime::new().unwrap();
        let owner = MsgOwner { uid: 0, gid: 0, perm: 0o444 };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let sub_config = || {
            let mut c = ChanConfig::new("sub", ChanMode::Subscribe);
            c.local = Some(port);
            c
        };
        let got = Arc::new(Mutex::new(Vec::<String>::new()));
        let g = got.clone();
        let sub = MessageChannel::open(&rt.handle(), sub_config()).unwrap();
        sub.subscribe(".*", move |m| g.lock().push(String::from_utf8_lossy(m.data()).into_owned())).unwrap();
        let mut config = ChanConfig::new("pub", ChanMode::Publish);
        config.remote = Some(port);
        config.reconnect = Duration::from_millis(50);
        let ch = MessageChannel::open(&rt.handle(), config).unwrap();
        assert!(wait_until(Duration::from_secs(5), || ch.stats().state == ChanState::Connected as u32));
        ch.publish("a", MsgType::String, "one", owner, Duration::ZERO).unwrap();
        assert!(wait_until(Duration::from_secs(5), || ch.stats().pub_msg_acked == 1));
        assert_eq!(*got.lock(), ["one"]);
        assert!(sub.close(Duration::from_secs(1)).unwrap());
        assert_eq!(sub.stats().state, ChanState::Closed as u32);
        assert!(wait_until(Duration::from_secs(5), || ch.stats().state != ChanState::Connected as u32));
        ch.publish("a", MsgType::String, "two", owner, Duration::ZERO).unwrap();
        ch.publish("b", MsgType::Json, "{}", owner, Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(ch.stats().cur_q_depth, 5, "data bytes");
        let got2 = Arc::new(Mutex::new(Vec::<String>::new()));
        let g = got2.clone();
        // Subscribed before it listens: the publisher, retrying every 50 ms, may connect
        // and flush its queue at once.
        let cb: ChanCallback = Box::new(move |m| g.lock().push(m.name()));
        let sub2 = MessageChannel::open_subscribed(&rt.handle(), sub_config(), vec![(".*".into(), cb)]).unwrap();
        assert!(wait_until(Duration::from_secs(5), || got2.lock().len() == 2));
        assert_eq!(*got2.lock(), ["a", "b"]);
        assert!(ch.close(Duration::from_secs(5)).unwrap());
        let s = ch.stats();
        assert_eq!((s.pub_msg_sent, s.pub_msg_acked, s.pub_byte_cnt, s.pub_conn_success), (3, 3, 8, 2));
        assert!(s.pub_conn_attempt > 2, "{s:?}");
        assert_eq!(sub2.stats().sub_msg_cnt, 2);
        sub2.close(Duration::ZERO).unwrap();
    }
}
