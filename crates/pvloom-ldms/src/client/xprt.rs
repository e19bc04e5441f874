//! [`Xprt`]: an LDMS client connection on pvloom-core's stream driver.
//!
//! Every operation has one code path: the callback form sends the request from the
//! connection's I/O thread and delivers the result through the runtime's deliverer
//! (panics in callbacks are caught and reported there); the blocking form is the
//! callback form completing a [`Completion`](pvloom_core::Completion) that it waits on,
//! and so returns [`WouldDeadlock`](pvloom_core::Error::WouldDeadlock) at once on an I/O
//! thread.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use pvloom_core::driver::{self, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::{CloseReason, Completer, Completion, Deliverer, IoCtx, RuntimeHandle};

use super::endpoint::{ClientConn, ClientConnConfig};
use super::set::Set;
use super::types::{ClientEvent, DirPart, LookupResult, OpError, OpId, SetId, SetSnapshot};
use crate::FastMap;
use crate::request::dir::DirEntry;

/// Why an API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LdmsError {
    /// The operation failed (errno in [`OpError::errno`]).
    #[error(transparent)]
    Op(#[from] OpError),
    /// Waiting failed: timeout, `WouldDeadlock` on an I/O thread, runtime shut down.
    #[error(transparent)]
    Core(#[from] pvloom_core::Error),
    /// The peer refused the connection.
    #[error("connection rejected: {0}")]
    Rejected(String),
    /// The connection could not be made.
    #[error("connect failed: {0}")]
    Connect(String),
}

impl LdmsError {
    /// The errno LDMS would report.
    pub fn errno(&self) -> i32 {
        match self {
            LdmsError::Op(e) => e.errno(),
            LdmsError::Core(pvloom_core::Error::Timeout(_)) => super::types::ETIMEDOUT,
            LdmsError::Core(_) => super::types::EIO,
            LdmsError::Rejected(_) => 111,
            LdmsError::Connect(_) => super::types::ENOTCONN,
        }
    }
}

/// Settings of an [`Xprt`].
#[derive(Debug, Clone)]
pub struct XprtConfig {
    /// The endpoint's settings (rail connect message, operation deadlines).
    pub conn: ClientConnConfig,
    /// The socket's settings (connect timeout, buffers).
    pub stream: StreamConfig,
    /// How long the blocking forms wait (each operation also has this deadline).
    pub timeout: Duration,
    /// Bytes of published messages that may wait for the peer before a publisher waits
    /// (or fails, when it asked not to wait).
    pub msg_queue: usize,
}

impl Default for XprtConfig {
    fn default() -> Self {
        XprtConfig {
            conn: ClientConnConfig::default(),
            stream: StreamConfig { read_chunk: 256 * 1024, quickack: true, ..StreamConfig::default() },
            timeout: Duration::from_secs(10),
            msg_queue: 8 << 20,
        }
    }
}

/// The type of an [`XprtEvent`] (`LDMS_XPRT_EVENT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XprtEventKind {
    /// The connection is up.
    Connected,
    /// The peer refused it.
    Rejected,
    /// Connecting failed.
    Error,
    /// An established connection ended.
    Disconnected,
    /// An application message arrived ([`XprtEvent::data`]).
    Recv,
    /// A send went out (pvloom reports none: sends are queued, not completed one by one).
    SendComplete,
    /// The peer returned send credit ([`XprtEvent::quota`]).
    SendQuotaDeposited,
    /// The peer deleted a set ([`XprtEvent::set_name`]).
    SetDelete,
}

/// A transport event; owned, so a callback may keep it.
#[derive(Debug, Clone)]
pub struct XprtEvent {
    /// What happened.
    pub kind: XprtEventKind,
    /// RECV: the message.
    pub data: Option<Bytes>,
    /// REJECTED, ERROR, DISCONNECTED: why.
    pub reason: Option<String>,
    /// SET_DELETE: the instance name.
    pub set_name: Option<String>,
    /// SEND_QUOTA_DEPOSITED: the credit.
    pub quota: u32,
    /// SEND_QUOTA_DEPOSITED: the peer's status (an errno when it refused a message).
    pub rc: i32,
}

impl XprtEvent {
    fn new(kind: XprtEventKind) -> Self {
        XprtEvent { kind, data: None, reason: None, set_name: None, quota: 0, rc: 0 }
    }
}

/// One directory callback delivery.
#[derive(Debug, Clone)]
pub enum DirReply {
    /// A part of the directory (`more` tells if others follow).
    Part(DirPart),
    /// A change after a DIR with notify ([`DIR_ADD`](crate::request::DIR_ADD), ...).
    Update {
        /// The change type.
        kind: u32,
        /// The sets.
        entries: Vec<DirEntry>,
    },
}

type EventCb = Arc<dyn Fn(&Xprt, &XprtEvent) + Send + Sync>;
type Shared<F> = Arc<Mutex<F>>;
type DirCb = Shared<Box<dyn FnMut(&Xprt, Result<DirReply, OpError>) + Send>>;
type LookupCb = Shared<Box<dyn FnMut(&Xprt, Result<Set, OpError>, bool) + Send>>;
type UpdateCb = Box<dyn FnOnce(&Set, Result<Arc<SetSnapshot>, OpError>, u32) + Send>;

/// Who hears an update's outcome: a callback (delivered as every callback is), or a
/// completion someone waits on, completed on the I/O thread itself: a blocking update
/// then wakes its caller directly instead of through a delivery worker.
pub(super) enum UpdateWaiter {
    Callback(UpdateCb),
    Completion(Completer<Result<Arc<SetSnapshot>, OpError>>),
}

impl UpdateWaiter {
    fn finish(self, xprt: &Xprt, set: Set, result: Result<Arc<SetSnapshot>, OpError>, flags: u32) {
        match self {
            UpdateWaiter::Callback(cb) => xprt.deliver("ldms.update", move || cb(&set, result, flags)),
            UpdateWaiter::Completion(done) => done.succeed(result),
        }
    }
}
pub(super) type PushCb = Shared<Box<dyn FnMut(&Set, Result<Arc<SetSnapshot>, OpError>, u32) + Send>>;

pub(super) struct XprtInner {
    rt: RuntimeHandle,
    address: Arc<StreamAddress<XprtApp>>,
    deliverer: Deliverer,
    pub(super) config: XprtConfig,
    peer: SocketAddr,
    pub(super) state: Mutex<XprtState>,
    /// Notified when the connection ends (`state.closed`).
    ended: parking_lot::Condvar,
    /// What this connection publishes goes out through it.
    pub(super) link: Arc<crate::bus::Link>,
}

#[derive(Default)]
pub(super) struct XprtState {
    pub(super) connected: bool,
    pub(super) closed: bool,
    on_event: Option<EventCb>,
    /// The last errno a peer refused a published message with.
    pub(super) refused: Option<i32>,
    /// Whether the peer's rail connect message said its message service is on.
    pub(super) peer_msg_enabled: bool,
}

/// An LDMS connection to one peer. Cheap to clone; every method may be called from any
/// thread, and the callback forms from inside callbacks.
#[derive(Clone)]
pub struct Xprt {
    pub(super) inner: Arc<XprtInner>,
}

impl std::fmt::Debug for Xprt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xprt").field("peer", &self.inner.peer).field("connected", &self.is_connected()).finish()
    }
}

/// The driver's application: the endpoint, and whom to tell about what.
pub(super) struct XprtApp {
    pub(super) conn: ClientConn,
    xprt: Weak<XprtInner>,
    connect: Option<Completer<Result<(), LdmsError>>>,
    dirs: FastMap<OpId, (DirCb, bool)>,
    lookups: FastMap<OpId, LookupCb>,
    updates: FastMap<OpId, UpdateWaiter>,
    pub(super) pushes: FastMap<SetId, PushCb>,
    sets: FastMap<SetId, Weak<super::set::SetInner>>,
    pub(super) msg_subs: FastMap<OpId, super::msg::MsgSubCb>,
}

impl Xprt {
    /// Connect to `addr` without waiting: `on_event` gets CONNECTED, REJECTED, ERROR and
    /// every later event; the returned completion resolves when the connection is up or
    /// has failed.
    pub fn connect_with(
        rt: &RuntimeHandle,
        addr: SocketAddr,
        config: XprtConfig,
        on_event: Option<EventCb>,
    ) -> (Xprt, Completion<Result<(), LdmsError>>) {
        let address = StreamAddress::new(rt.clone(), rt.least_loaded_thread());
        let link = crate::bus::Link::new(crate::server::Credentials::root());
        let waker = Arc::downgrade(&address);
        link.set_waker(move || {
            if let Some(a) = waker.upgrade() {
                a.exec(|_, _| {}, || {});
            }
        });
        let inner = Arc::new(XprtInner {
            link: link.clone(),
            rt: rt.clone(),
            address: address.clone(),
            deliverer: rt.deliverer(),
            config: config.clone(),
            peer: addr,
            state: Mutex::new(XprtState { on_event, ..XprtState::default() }),
            ended: parking_lot::Condvar::new(),
        });
        let (done, wait) = pvloom_core::completion();
        let xprt = Xprt { inner: inner.clone() };
        let weak = Arc::downgrade(&inner);
        let stream = config.stream;
        let sent = rt.run_on(address.thread(), move |ctx| {
            let app = XprtApp {
                conn: ClientConn::with_link(ctx.now(), config.conn.clone(), link),
                xprt: weak,
                connect: Some(done),
                dirs: FastMap::default(),
                lookups: FastMap::default(),
                updates: FastMap::default(),
                pushes: FastMap::default(),
                sets: FastMap::default(),
                msg_subs: FastMap::default(),
            };
            // On failure the app is dropped with its completer: the wait sees Abandoned.
            if let Err(e) = driver::connect(ctx, &address, addr, stream, app) {
                tracing::debug!("LDMS connect to {addr} failed at once: {e}");
            }
        });
        if let Err(e) = sent {
            tracing::debug!("LDMS connect not started: {e}");
        }
        (xprt, wait)
    }

    /// Connect without waiting, reporting to `on_event`.
    pub fn connect_cb(
        rt: &RuntimeHandle,
        addr: SocketAddr,
        config: XprtConfig,
        on_event: impl Fn(&Xprt, &XprtEvent) + Send + Sync + 'static,
    ) -> Xprt {
        Self::connect_with(rt, addr, config, Some(Arc::new(on_event))).0
    }

    /// Connect and wait (at most `config.timeout`) until connected.
    ///
    /// # Errors
    /// [`LdmsError::Rejected`], [`LdmsError::Connect`], a timeout, or `WouldDeadlock` on
    /// an I/O thread.
    pub fn connect(rt: &RuntimeHandle, addr: SocketAddr, config: XprtConfig) -> Result<Xprt, LdmsError> {
        pvloom_core::ensure_may_block()?;
        let timeout = config.timeout;
        let (xprt, wait) = Self::connect_with(rt, addr, config, None);
        match wait.wait_timeout(timeout) {
            Ok(Ok(())) => Ok(xprt),
            Ok(Err(e)) => Err(e),
            Err(pvloom_core::Error::Abandoned) => Err(LdmsError::Connect(format!("could not connect to {addr}"))),
            Err(e) => {
                xprt.close();
                Err(e.into())
            }
        }
    }

    /// Replace the event callback.
    pub fn set_event_callback(&self, on_event: impl Fn(&Xprt, &XprtEvent) + Send + Sync + 'static) {
        self.inner.state.lock().on_event = Some(Arc::new(on_event));
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        let s = self.inner.state.lock();
        s.connected && !s.closed
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &XprtConfig {
        &self.inner.config
    }

    /// The runtime it runs on.
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.inner.rt
    }

    /// Run `f` with the app on its I/O thread; `missing` when the connection is gone.
    pub(super) fn exec(
        &self,
        f: impl FnOnce(&mut XprtApp, &mut IoCtx<'_>) + Send + 'static,
        missing: impl FnOnce() + Send + 'static,
    ) {
        self.inner.address.exec(f, missing);
    }

    /// As [`exec`](Self::exec), `state` going to `f`, or to `missing` if the connection
    /// is gone.
    pub(super) fn exec_with<S: Send + 'static>(
        &self,
        state: S,
        f: impl FnOnce(S, &mut XprtApp, &mut IoCtx<'_>) + Send + 'static,
        missing: impl FnOnce(S) + Send + 'static,
    ) {
        self.inner.address.exec_with(state, f, missing);
    }

    /// Deliver `f(self)` as a callback.
    fn call(&self, origin: &'static str, f: impl FnOnce(&Xprt) + Send + 'static) {
        let x = self.clone();
        self.deliver(origin, move || f(&x));
    }

    pub(super) fn deliver(&self, origin: &'static str, f: impl FnOnce() + Send + 'static) {
        if let Err(e) = self.inner.deliverer.dispatch(origin, None, f) {
            self.inner.deliverer.containment().report(origin, &format!("callback not delivered: {e}"));
        }
    }

    /// Ask for the directory; `cb` gets each part (and, with
    /// [`DIR_F_NOTIFY`](crate::request::DIR_F_NOTIFY), each later change).
    pub fn dir_cb(&self, flags: u32, cb: impl FnMut(&Xprt, Result<DirReply, OpError>) + Send + 'static) {
        let cb: DirCb = Arc::new(Mutex::new(Box::new(cb)));
        let timeout = self.inner.config.timeout;
        let me = self.clone();
        let on_missing = cb.clone();
        self.exec(
            move |app, ctx| match app.conn.dir(ctx.now(), flags, Some(timeout)) {
                Ok(op) => {
                    app.dirs.insert(op, (cb, flags & crate::request::DIR_F_NOTIFY != 0));
                }
                Err(e) => me.call("ldms.dir", move |x| (cb.lock())(x, Err(e))),
            },
            {
                let me = self.clone();
                move || me.call("ldms.dir", move |x| (on_missing.lock())(x, Err(OpError::NotConnected)))
            },
        );
    }

    /// The whole directory, every part collected, as a completion (the blocking
    /// [`dir`](Self::dir) waits on it; bindings wait on it their own way).
    pub fn dir_all(&self) -> Completion<Result<Vec<DirEntry>, OpError>> {
        let (done, wait) = pvloom_core::completion::<Result<Vec<DirEntry>, OpError>>();
        let mut done = Some(done);
        let mut all = Vec::new();
        self.dir_cb(0, move |_, r| match r {
            Ok(DirReply::Part(p)) => {
                all.extend(p.entries);
                if !p.more
                    && let Some(d) = done.take()
                {
                    d.succeed(Ok(std::mem::take(&mut all)));
                }
            }
            Ok(DirReply::Update { .. }) => {}
            Err(e) => {
                if let Some(d) = done.take() {
                    d.succeed(Err(e));
                }
            }
        });
        wait
    }

    /// The whole directory, waiting for every part.
    ///
    /// # Errors
    /// The DIR's failure, a timeout, or `WouldDeadlock` on an I/O thread.
    pub fn dir(&self) -> Result<Vec<DirEntry>, LdmsError> {
        pvloom_core::ensure_may_block()?;
        Ok(self.dir_all().wait_timeout(self.wait_time())??)
    }

    /// Stop directory updates.
    pub fn dir_cancel(&self) {
        self.exec(
            |app, ctx| {
                let _ = app.conn.dir_cancel(ctx.now());
            },
            || {},
        );
    }

    fn wait_time(&self) -> Duration {
        self.inner.config.timeout + Duration::from_secs(1)
    }

    /// Look sets up by instance name, schema or regex (`flags` as
    /// [`LOOKUP_RE`](crate::request::LOOKUP_RE)...); `cb(xprt, set, more)` per set, or
    /// once with the error (`ENOENT`: nothing matched).
    pub fn lookup_cb(
        &self,
        name: &str,
        flags: u32,
        cb: impl FnMut(&Xprt, Result<Set, OpError>, bool) + Send + 'static,
    ) {
        let cb: LookupCb = Arc::new(Mutex::new(Box::new(cb)));
        let timeout = self.inner.config.timeout;
        let name = name.to_string();
        let me = self.clone();
        let on_missing = cb.clone();
        self.exec(
            move |app, ctx| match app.conn.lookup(ctx.now(), &name, flags, Some(timeout)) {
                Ok(op) => {
                    app.lookups.insert(op, cb);
                }
                Err(e) => me.call("ldms.lookup", move |x| (cb.lock())(x, Err(e), false)),
            },
            {
                let me = self.clone();
                move || me.call("ldms.lookup", move |x| (on_missing.lock())(x, Err(OpError::NotConnected), false))
            },
        );
    }

    /// Every set a lookup matches, as a completion (the blocking
    /// [`lookup`](Self::lookup) waits on it).
    pub fn lookup_all(&self, name: &str, flags: u32) -> Completion<Result<Vec<Set>, OpError>> {
        let (done, wait) = pvloom_core::completion::<Result<Vec<Set>, OpError>>();
        let mut done = Some(done);
        let mut all = Vec::new();
        self.lookup_cb(name, flags, move |_, r, more| match r {
            Ok(s) => {
                all.push(s);
                if !more && let Some(d) = done.take() {
                    d.succeed(Ok(std::mem::take(&mut all)));
                }
            }
            Err(e) => {
                if let Some(d) = done.take() {
                    d.succeed(Err(e));
                }
            }
        });
        wait
    }

    /// Look sets up and wait for all of them.
    ///
    /// # Errors
    /// The lookup's failure (`ENOENT` when nothing matched), a timeout, or
    /// `WouldDeadlock` on an I/O thread.
    pub fn lookup(&self, name: &str, flags: u32) -> Result<Vec<Set>, LdmsError> {
        pvloom_core::ensure_may_block()?;
        Ok(self.lookup_all(name, flags).wait_timeout(self.wait_time())??)
    }

    /// Send an application message (LDMS SEND_MSG); the peer gets a RECV event.
    pub fn send(&self, data: &[u8]) {
        let data = data.to_vec();
        self.exec(
            move |app, _| {
                let _ = app.conn.send(&data);
            },
            || {},
        );
    }

    /// Close the connection; pending operations fail, DISCONNECTED follows. Messages
    /// already published go out first (see [`ClientConn::close`](super::ClientConn::close)).
    pub fn close(&self) {
        self.exec(|app, _| app.conn.close("closed by the application"), || {});
    }

    /// [`close`](Self::close), then wait until the connection has ended (what was
    /// published has gone out), at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, or `WouldDeadlock` on an I/O thread (the close is still made).
    pub fn close_timeout(&self, timeout: Duration) -> Result<(), LdmsError> {
        self.close();
        self.wait_closed(timeout)
    }

    /// Wait until the connection has ended, at most `timeout` (after a
    /// [`close`](Self::close), until what was published has gone out).
    ///
    /// # Errors
    /// `Timeout`, or `WouldDeadlock` on an I/O thread.
    pub fn wait_closed(&self, timeout: Duration) -> Result<(), LdmsError> {
        pvloom_core::ensure_may_block()?;
        let end = Instant::now() + timeout;
        let mut s = self.inner.state.lock();
        while !s.closed {
            if self.inner.ended.wait_until(&mut s, end).timed_out() && !s.closed {
                return Err(pvloom_core::Error::Timeout(timeout).into());
            }
        }
        Ok(())
    }

    /// Update `set` (the [`Set`] API calls this).
    pub(super) fn update_set(&self, set: &Set, waiter: UpdateWaiter) {
        let id = set.id();
        let timeout = self.inner.config.timeout;
        self.exec_with(
            (waiter, set.clone()),
            move |(waiter, s), app, ctx| match app.conn.update(ctx.now(), id, Some(timeout)) {
                Ok(op) => {
                    app.updates.insert(op, waiter);
                }
                Err(e) => {
                    let flags = error_flags(&e);
                    let me = s.xprt().clone();
                    waiter.finish(&me, s, Err(e), flags);
                }
            },
            |(waiter, s)| {
                let e = OpError::NotConnected;
                let flags = error_flags(&e);
                let me = s.xprt().clone();
                waiter.finish(&me, s, Err(e), flags);
            },
        );
    }
}

/// Update-callback flags carrying an error (`LDMS_UPD_ERROR`).
pub(super) fn error_flags(e: &OpError) -> u32 {
    e.errno() as u32 & crate::request::UPD_ERROR_MASK
}

impl XprtApp {
    fn xprt(&self) -> Option<Xprt> {
        self.xprt.upgrade().map(|inner| Xprt { inner })
    }

    fn set(&mut self, xprt: &Xprt, id: SetId) -> Option<Set> {
        self.sets.get(&id).and_then(Weak::upgrade).map(|inner| Set { inner }).or_else(|| {
            let _ = xprt;
            None
        })
    }

    fn new_set(&mut self, xprt: &Xprt, r: LookupResult) -> Set {
        let set = Set::new(xprt.clone(), r);
        self.sets.insert(set.id(), Arc::downgrade(&set.inner));
        set
    }

    fn event(&self, xprt: &Xprt, ev: XprtEvent) {
        let cb = xprt.inner.state.lock().on_event.clone();
        if let Some(cb) = cb {
            let x = xprt.clone();
            xprt.deliver("ldms.xprt_event", move || cb(&x, &ev));
        }
    }
}

impl StreamApp for XprtApp {
    type Endpoint = ClientConn;

    fn endpoint(&mut self) -> &mut ClientConn {
        &mut self.conn
    }

    fn on_event(&mut self, event: ClientEvent, _ctx: &mut IoCtx<'_>) {
        let Some(xprt) = self.xprt() else { return self.conn.close("the Xprt was dropped") };
        match event {
            ClientEvent::Connected { peer } => {
                {
                    let mut st = xprt.inner.state.lock();
                    st.connected = true;
                    st.peer_msg_enabled = peer.msg_enabled != 0;
                }
                if let Some(c) = self.connect.take() {
                    c.succeed(Ok(()));
                }
                self.event(&xprt, XprtEvent::new(XprtEventKind::Connected));
            }
            ClientEvent::Rejected { reason } => {
                if let Some(c) = self.connect.take() {
                    c.succeed(Err(LdmsError::Rejected(reason.clone())));
                }
                let mut ev = XprtEvent::new(XprtEventKind::Rejected);
                ev.reason = Some(reason);
                self.event(&xprt, ev);
            }
            ClientEvent::Closed { reason, was_connected } => self.closed(&xprt, &reason, was_connected),
            ClientEvent::Dir { op, result } => {
                let last = !matches!(&result, Ok(p) if p.more);
                let Some((cb, notify)) = self.dirs.get(&op).cloned() else { return };
                if last && !(notify && result.is_ok()) {
                    self.dirs.remove(&op);
                }
                let x = xprt.clone();
                xprt.deliver("ldms.dir", move || (cb.lock())(&x, result.map(DirReply::Part)));
            }
            ClientEvent::DirUpdate { op, kind, entries } => {
                let Some((cb, _)) = self.dirs.get(&op).cloned() else { return };
                let x = xprt.clone();
                xprt.deliver("ldms.dir", move || (cb.lock())(&x, Ok(DirReply::Update { kind, entries })));
            }
            ClientEvent::Lookup { op, result } => {
                let Some(cb) = self.lookups.get(&op).cloned() else { return };
                let (result, more) = match result {
                    Ok(r) => {
                        let more = r.more;
                        (Ok(self.new_set(&xprt, r)), more)
                    }
                    Err(e) => (Err(e), false),
                };
                if !more {
                    self.lookups.remove(&op);
                }
                let x = xprt.clone();
                xprt.deliver("ldms.lookup", move || (cb.lock())(&x, result, more));
            }
            ClientEvent::Update { op, set, result } => {
                let Some(waiter) = self.updates.remove(&op) else { return };
                let Some(s) = self.set(&xprt, set) else { return };
                if let Ok(snap) = &result {
                    s.store(snap.clone());
                }
                let flags = result.as_ref().err().map_or(0, error_flags);
                waiter.finish(&xprt, s, result, flags);
            }
            ClientEvent::Push { set, flags, result } => {
                let last = flags & crate::request::UPD_F_PUSH_LAST != 0;
                let cb = if last { self.pushes.remove(&set) } else { self.pushes.get(&set).cloned() };
                let (Some(cb), Some(s)) = (cb, self.set(&xprt, set)) else { return };
                if let Ok(snap) = &result {
                    s.store(snap.clone());
                }
                let flags = flags | result.as_ref().err().map_or(0, error_flags);
                xprt.deliver("ldms.push", move || (cb.lock())(&s, result, flags));
            }
            ClientEvent::SetDelete { set, name } => {
                if let Some(id) = set {
                    self.sets.remove(&id);
                    self.pushes.remove(&id);
                }
                let mut ev = XprtEvent::new(XprtEventKind::SetDelete);
                ev.set_name = Some(name);
                self.event(&xprt, ev);
            }
            ClientEvent::Recv { data } => {
                let mut ev = XprtEvent::new(XprtEventKind::Recv);
                ev.data = Some(data);
                self.event(&xprt, ev);
            }
            ClientEvent::SendQuota { quota, rc } => {
                if rc != 0 {
                    xprt.note_refusal(rc);
                }
                let mut ev = XprtEvent::new(XprtEventKind::SendQuotaDeposited);
                ev.quota = quota;
                ev.rc = rc;
                self.event(&xprt, ev);
            }
            ClientEvent::MsgSubStatus { op, status } => {
                if let Some(cb) = self.msg_subs.remove(&op) {
                    let x = xprt.clone();
                    xprt.deliver("ldms.msg_subscribe", move || cb(&x, status));
                }
            }
        }
    }

    fn on_closed(&mut self, reason: &CloseReason, _ctx: &mut IoCtx<'_>) {
        if let Some(xprt) = self.xprt() {
            let was = xprt.inner.state.lock().connected;
            self.closed(&xprt, reason, was);
        }
    }
}

impl XprtApp {
    /// The connection ended: fail what waits, tell the event callback once.
    fn closed(&mut self, xprt: &Xprt, reason: &CloseReason, was_connected: bool) {
        {
            let mut s = xprt.inner.state.lock();
            if s.closed {
                return;
            }
            s.closed = true;
            xprt.inner.ended.notify_all();
        }
        let why = reason.to_string();
        if let Some(c) = self.connect.take() {
            c.succeed(Err(LdmsError::Connect(why.clone())));
        }
        for (_, (cb, _)) in self.dirs.drain() {
            let (x, e) = (xprt.clone(), OpError::Disconnected(why.clone()));
            xprt.deliver("ldms.dir", move || (cb.lock())(&x, Err(e)));
        }
        for (_, cb) in self.msg_subs.drain() {
            let x = xprt.clone();
            let status = super::types::MsgSubStatus {
                pattern: String::new(),
                is_regex: false,
                unsubscribe: false,
                status: super::types::ENOTCONN,
                text: why.clone(),
            };
            xprt.deliver("ldms.msg_subscribe", move || cb(&x, status));
        }
        xprt.inner.link.clear();
        for (_, cb) in self.lookups.drain() {
            let (x, e) = (xprt.clone(), OpError::Disconnected(why.clone()));
            xprt.deliver("ldms.lookup", move || (cb.lock())(&x, Err(e), false));
        }
        let kind = if was_connected { XprtEventKind::Disconnected } else { XprtEventKind::Error };
        let mut ev = XprtEvent::new(kind);
        ev.reason = Some(why);
        self.event(xprt, ev);
    }
}
