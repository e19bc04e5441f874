//! A process variable: its connection life cycle and its operations.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_core::sync::Event;
use pvloom_core::{Completion, Deliverer, Job};

use super::circuit::{CircuitAddress, CircuitHandler};
use super::context::ContextInner;
use super::error::{CaError, CaResult};
use super::op::OpSlot;
use super::response::Response;
use super::subscription::{SubShared, SubscribeOptions, Subscription};
use crate::proto::command::AccessRights;
use crate::proto::{DbrClass, DbrData, DbrType, Value};

/// Whether a PV is connected, as told to connection-state callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The channel exists on a live circuit.
    Connected,
    /// The channel is gone (circuit lost, server cleared it); pvloom searches again.
    Disconnected,
}

impl ConnectionState {
    /// caproto's names: `"connected"` / `"disconnected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
        }
    }
}

/// The channel's place on a circuit, valid while connected.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) circuit: Arc<CircuitAddress>,
    pub(crate) native_type: DbrType,
    pub(crate) count: u32,
    pub(crate) server_version: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Searching,
    Connecting,
    Connected,
    Idle,
}

/// An operation waiting for the connection, and whether it still wants it (an
/// operation that timed out does not): a PV that never connects must not collect
/// waiters forever.
struct Waiter {
    run: Box<dyn FnOnce(Result<Link, CaError>) + Send>,
    wanted: Box<dyn Fn() -> bool + Send>,
}
type ConnectionCallback = Arc<dyn Fn(&Pv, ConnectionState) + Send + Sync>;
type AccessCallback = Arc<dyn Fn(&Pv, AccessRights) + Send + Sync>;

pub(crate) struct PvState {
    pub(crate) phase: Phase,
    pub(crate) link: Option<Link>,
    pub(crate) access: AccessRights,
    waiters: Vec<Waiter>,
    connection_callbacks: Vec<(u64, ConnectionCallback)>,
    access_callbacks: Vec<(u64, AccessCallback)>,
    pub(crate) subscriptions: Vec<Weak<SubShared>>,
    pub(crate) last_server: Option<SocketAddrV4>,
    connected_at: Option<std::time::Instant>,
    /// Connections in a row that failed or died young: the next search waits
    /// accordingly, so a server that keeps failing is not hammered.
    pub(crate) quick_failures: u32,
}

/// A connection shorter than this counts as a failure for the reconnect backoff.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(5);

pub(crate) struct PvShared {
    pub(crate) name: String,
    pub(crate) priority: u16,
    pub(crate) cid: u32,
    pub(crate) context: Weak<ContextInner>,
    pub(crate) state: Mutex<PvState>,
    pub(crate) connected: Event,
    pub(crate) deliverer: Deliverer,
    next_token: AtomicU64,
}

/// A PV: a name, the channel behind it, and operations on it. Cheap to clone.
///
/// Made by [`Context::get_pvs`](super::Context::get_pvs); connecting happens in the
/// background and resumes by itself after a server restart.
#[derive(Clone)]
pub struct Pv {
    pub(crate) shared: Arc<PvShared>,
}

impl std::fmt::Debug for Pv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pv").field("name", &self.shared.name).field("connected", &self.connected()).finish()
    }
}

/// Options of a read. The default reads the native type, all elements, with notify.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// The DBR type to ask for; `None`: the native type promoted to `class`.
    pub data_type: Option<DbrType>,
    /// The class when `data_type` is `None` (plain when `None`).
    pub class: Option<DbrClass>,
    /// Elements to ask for; `None`: all (the channel's count).
    pub data_count: Option<u32>,
    /// How long the blocking form waits (and when the callback gets a timeout);
    /// `None`: the context's default.
    pub timeout: Option<Duration>,
    /// READ_NOTIFY (true, the default in practice) or the obsolete READ.
    pub notify: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { data_type: None, class: None, data_count: None, timeout: None, notify: true }
    }
}

impl ReadOptions {
    /// Read as the given class (e.g. `DbrClass::Time`).
    pub fn class(class: DbrClass) -> Self {
        ReadOptions { class: Some(class), notify: true, ..Default::default() }
    }
}

/// Options of a write.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// WRITE_NOTIFY: the server reports completion (and errors). Otherwise a plain
    /// WRITE, complete once sent.
    pub notify: bool,
    /// The DBR type to send; `None`: the value's own type (the server converts).
    pub data_type: Option<DbrType>,
    /// How long the blocking form waits; `None`: the context's default.
    pub timeout: Option<Duration>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { notify: true, data_type: None, timeout: None }
    }
}

impl PvShared {
    pub(crate) fn new(
        name: String,
        priority: u16,
        cid: u32,
        context: Weak<ContextInner>,
        deliverer: Deliverer,
    ) -> Self {
        PvShared {
            name,
            priority,
            cid,
            context,
            state: Mutex::new(PvState {
                phase: Phase::Searching,
                link: None,
                access: AccessRights(0),
                waiters: Vec::new(),
                connection_callbacks: Vec::new(),
                access_callbacks: Vec::new(),
                subscriptions: Vec::new(),
                last_server: None,
                connected_at: None,
                quick_failures: 0,
            }),
            connected: Event::new(),
            deliverer,
            next_token: AtomicU64::new(1),
        }
    }

    fn context(&self) -> CaResult<Arc<ContextInner>> {
        self.context.upgrade().ok_or_else(|| CaError::Cleared(self.name.clone()))
    }

    /// Run `f` with the link once connected (now, if connected), unless `wanted` says
    /// the operation gave up meanwhile. An idle PV starts connecting again.
    pub(crate) fn with_link(
        self: &Arc<Self>,
        f: impl FnOnce(Result<Link, CaError>) + Send + 'static,
        wanted: impl Fn() -> bool + Send + 'static,
    ) {
        let mut state = self.state.lock();
        if let (Phase::Connected, Some(link)) = (state.phase, state.link.clone()) {
            drop(state);
            f(Ok(link));
            return;
        }
        state.waiters.retain(|waiter| (waiter.wanted)());
        state.waiters.push(Waiter { run: Box::new(f), wanted: Box::new(wanted) });
        let wake = state.phase == Phase::Idle;
        if wake {
            state.phase = Phase::Searching;
        }
        drop(state);
        if wake && let Ok(context) = self.context() {
            context.search(self);
        }
    }

    /// The circuit confirmed the channel (on the circuit's thread).
    pub(crate) fn on_connected(self: &Arc<Self>, link: Link, handler: &mut CircuitHandler) {
        let (waiters, subscriptions, callbacks) = {
            let mut state = self.state.lock();
            state.phase = Phase::Connected;
            state.connected_at = Some(std::time::Instant::now());
            state.last_server = Some(link.circuit.marker.addr);
            state.link = Some(link.clone());
            state.subscriptions.retain(|s| s.strong_count() > 0);
            let subs: Vec<_> = state.subscriptions.iter().filter_map(Weak::upgrade).collect();
            (std::mem::take(&mut state.waiters), subs, state.connection_callbacks.clone())
        };
        self.connected.set();
        for sub in subscriptions {
            if sub.is_active() {
                handler.add_subscription(&sub, &link);
            }
        }
        self.tell_connection(callbacks, ConnectionState::Connected);
        for waiter in waiters {
            if (waiter.wanted)() {
                (waiter.run)(Ok(link.clone()));
            }
        }
    }

    /// The channel is gone; search again unless it went idle on purpose.
    pub(crate) fn on_disconnected(self: &Arc<Self>, search_again: bool) {
        let callbacks = {
            let mut state = self.state.lock();
            let was_connected = state.phase == Phase::Connected;
            let healthy = state.connected_at.take().is_some_and(|t| t.elapsed() >= HEALTHY_CONNECTION);
            state.quick_failures = if healthy { 0 } else { state.quick_failures.saturating_add(1) };
            state.link = None;
            if state.phase != Phase::Idle {
                state.phase = if search_again { Phase::Searching } else { Phase::Idle };
            }
            was_connected.then(|| state.connection_callbacks.clone())
        };
        self.connected.clear();
        if let Some(callbacks) = callbacks {
            self.tell_connection(callbacks, ConnectionState::Disconnected);
        }
        if search_again && let Ok(context) = self.context() {
            context.search(self);
        }
    }

    pub(crate) fn on_access_rights(self: &Arc<Self>, rights: AccessRights) {
        let callbacks = {
            let mut state = self.state.lock();
            state.access = rights;
            state.access_callbacks.clone()
        };
        let pv = Pv { shared: self.clone() };
        for (_, callback) in callbacks {
            let pv = pv.clone();
            let _ = self.deliverer.deliver(Job::new("ca.access_rights", move || callback(&pv, rights)));
        }
    }

    fn tell_connection(self: &Arc<Self>, callbacks: Vec<(u64, ConnectionCallback)>, state: ConnectionState) {
        let pv = Pv { shared: self.clone() };
        for (_, callback) in callbacks {
            let pv = pv.clone();
            let _ = self.deliverer.deliver(Job::new("ca.connection", move || callback(&pv, state)));
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.state.lock().phase
    }

    pub(crate) fn default_timeout(&self) -> Duration {
        self.context.upgrade().map_or(Duration::from_secs(2), |c| c.config.timeout)
    }

    /// Arm a timer that fails `slot` with a timeout naming this PV (for the wait
    /// for a connection; cancel it once the operation reached a circuit).
    pub(crate) fn arm_timeout<T: Send + 'static>(
        self: &Arc<Self>,
        slot: &Arc<OpSlot<T>>,
        operation: &'static str,
        timeout: Duration,
    ) -> Option<pvloom_core::TimerHandle> {
        let Ok(context) = self.context() else { return None };
        let (slot, name) = (slot.clone(), self.name.clone());
        let connected = self.phase() == Phase::Connected;
        Some(context.runtime.call_later(timeout, move || {
            let error = if connected || operation != "connect" {
                CaError::Timeout { name, operation, timeout }
            } else {
                CaError::ConnectionTimeout { name, timeout }
            };
            slot.fail(error);
        }))
    }
}

impl Pv {
    /// The PV's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The circuit priority it asked for (0..=99).
    pub fn priority(&self) -> u16 {
        self.shared.priority
    }

    /// True while connected.
    pub fn connected(&self) -> bool {
        self.shared.phase() == Phase::Connected
    }

    /// The channel's native DBR type, once connected.
    pub fn native_type(&self) -> Option<DbrType> {
        self.shared.state.lock().link.as_ref().map(|l| l.native_type)
    }

    /// The channel's element count, once connected.
    pub fn element_count(&self) -> Option<u32> {
        self.shared.state.lock().link.as_ref().map(|l| l.count)
    }

    /// Read/write rights granted by the server.
    pub fn access_rights(&self) -> AccessRights {
        self.shared.state.lock().access
    }

    /// The server holding the channel (the last one, while disconnected).
    pub fn server_address(&self) -> Option<SocketAddrV4> {
        self.shared.state.lock().last_server
    }

    /// Time since anything was heard from this PV's server (beacon or circuit traffic).
    pub fn time_since_last_heard(&self) -> Option<Duration> {
        let server = self.server_address()?;
        self.shared.context.upgrade()?.time_since_last_heard(server)
    }

    /// Wait until connected.
    ///
    /// # Errors
    /// [`CaError::ConnectionTimeout`] naming the PV; `WouldDeadlock` on an I/O thread.
    pub fn wait_for_connection(&self, timeout: Option<Duration>) -> CaResult<()> {
        let timeout = timeout.unwrap_or_else(|| self.shared.default_timeout());
        if self.shared.connected.wait_timeout(timeout)? {
            Ok(())
        } else {
            Err(CaError::ConnectionTimeout { name: self.shared.name.clone(), timeout })
        }
    }

    /// Call `callback(pv, state)` on every connection change; returns a token for
    /// [`remove_connection_callback`](Self::remove_connection_callback).
    pub fn add_connection_callback(&self, callback: impl Fn(&Pv, ConnectionState) + Send + Sync + 'static) -> u64 {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        self.shared.state.lock().connection_callbacks.push((token, Arc::new(callback)));
        token
    }

    /// Remove a connection callback.
    pub fn remove_connection_callback(&self, token: u64) {
        self.shared.state.lock().connection_callbacks.retain(|(t, _)| *t != token);
    }

    /// Call `callback(pv, rights)` whenever the server changes the access rights.
    pub fn add_access_rights_callback(&self, callback: impl Fn(&Pv, AccessRights) + Send + Sync + 'static) -> u64 {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        self.shared.state.lock().access_callbacks.push((token, Arc::new(callback)));
        token
    }

    /// Remove an access-rights callback.
    pub fn remove_access_rights_callback(&self, token: u64) {
        self.shared.state.lock().access_callbacks.retain(|(t, _)| *t != token);
    }

    /// Read with default options (blocking).
    ///
    /// # Errors
    /// Timeout naming the PV, no read access, server error, `WouldDeadlock`.
    pub fn read(&self) -> CaResult<Response> {
        self.read_with(ReadOptions { notify: true, ..Default::default() })
    }

    /// Read (blocking): [`read_async`](Self::read_async) plus a wait.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_with(&self, options: ReadOptions) -> CaResult<Response> {
        let timeout = options.timeout.unwrap_or_else(|| self.shared.default_timeout());
        self.read_async(options)
            .wait_timeout(timeout + Duration::from_millis(50))
            .map_err(|e| CaError::from_core(e, &self.shared.name, "read"))
    }

    /// The result slot and handle of a new operation, and its timeout. Once on a
    /// circuit the operation's deadline is the circuit's (gone when it completes);
    /// only while the PV is not connected yet does a runtime timer guard the wait.
    fn start_op<T: Send + 'static>(
        &self,
        origin: &'static str,
        operation: &'static str,
        timeout: Option<Duration>,
    ) -> (Arc<OpSlot<T>>, Completion<T>, Duration, Option<pvloom_core::TimerHandle>) {
        let (completer, completion) = pvloom_core::completion_with(self.shared.deliverer.clone(), origin);
        let slot = OpSlot::new(completer);
        let timeout = timeout.unwrap_or_else(|| self.shared.default_timeout());
        let guard =
            (self.shared.phase() != Phase::Connected).then(|| self.shared.arm_timeout(&slot, operation, timeout));
        (slot, completion, timeout, guard.flatten())
    }

    /// Read without waiting: the handle completes with the response, or an error
    /// after `options.timeout`.
    pub fn read_async(&self, options: ReadOptions) -> Completion<Response> {
        let (slot, completion, timeout, guard) = self.start_op("ca.read", "read", options.timeout);
        let pv = self.shared.clone();
        let waiting = slot.clone();
        self.shared.with_link(
            move |link| match link {
                Err(err) => slot.fail(err),
                Ok(link) => {
                    if slot.is_done() {
                        return;
                    }
                    if !pv.state.lock().access.can_read() {
                        return slot.fail(CaError::NoReadAccess { name: pv.name.clone() });
                    }
                    let data_type = options.data_type.unwrap_or_else(|| {
                        options.class.and_then(|c| link.native_type.promote_to(c)).unwrap_or(link.native_type)
                    });
                    // 4.13 servers take 0 as "all elements"; the obsolete READ always names a count.
                    let dynamic = link.server_version >= 13 && options.notify;
                    let count = options.data_count.unwrap_or(if dynamic { 0 } else { link.count });
                    if let Some(guard) = guard {
                        guard.cancel();
                    }
                    let (circuit, name, slot2) = (link.circuit.clone(), pv.name.clone(), slot.clone());
                    circuit.exec(
                        move |handler, ctx| {
                            handler.start_read(ctx.now(), &pv, data_type, count, options.notify, timeout, slot);
                        },
                        move || slot2.fail(CaError::Disconnected { name, operation: "read" }),
                    );
                }
            },
            move || !waiting.is_done(),
        );
        completion
    }

    /// Write with notify and wait (blocking).
    ///
    /// # Errors
    /// Timeout, no write access, server error (e.g. `ECA_PUTFAIL`), bad value.
    pub fn write(&self, value: impl Into<DbrValue>) -> CaResult<()> {
        self.write_with(value, WriteOptions::default())
    }

    /// Write (blocking): [`write_async`](Self::write_async) plus a wait.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_with(&self, value: impl Into<DbrValue>, options: WriteOptions) -> CaResult<()> {
        let timeout = options.timeout.unwrap_or_else(|| self.shared.default_timeout());
        self.write_async(value, options)
            .wait_timeout(timeout + Duration::from_millis(50))
            .map_err(|e| CaError::from_core(e, &self.shared.name, "write"))
    }

    /// Write without waiting: with `notify` the handle completes when the server
    /// reports the put done; without, once the request is sent.
    pub fn write_async(&self, value: impl Into<DbrValue>, options: WriteOptions) -> Completion<()> {
        let value = value.into().0;
        let (slot, completion, timeout, guard) = self.start_op("ca.write", "write", options.timeout);
        let pv = self.shared.clone();
        let waiting = slot.clone();
        self.shared.with_link(
            move |link| match link {
                Err(err) => slot.fail(err),
                Ok(link) => {
                    if slot.is_finished() {
                        return;
                    }
                    if !pv.state.lock().access.can_write() {
                        return slot.fail(CaError::NoWriteAccess { name: pv.name.clone() });
                    }
                    let data_type = match options.data_type {
                        Some(t) => t,
                        None => match DbrType::from_parts(value.native_type(), DbrClass::Plain) {
                            Some(t) => t,
                            None => {
                                return slot
                                    .fail(CaError::BadValue { name: pv.name.clone(), reason: "no plain type".into() });
                            }
                        },
                    };
                    let value = match value.convert(data_type.native()) {
                        Ok(v) => v,
                        Err(e) => return slot.fail(CaError::BadValue { name: pv.name.clone(), reason: e.to_string() }),
                    };
                    if let Some(guard) = guard {
                        guard.cancel();
                    }
                    let (circuit, name, slot2) = (link.circuit.clone(), pv.name.clone(), slot.clone());
                    circuit.exec(
                        move |handler, ctx| {
                            let value = DbrData::plain(value);
                            handler.start_write(ctx.now(), &pv, data_type, value, options.notify, timeout, slot);
                        },
                        move || slot2.fail(CaError::Disconnected { name, operation: "write" }),
                    );
                }
            },
            move || !waiting.is_finished(),
        );
        completion
    }

    /// A subscription (not yet active: it starts with its first callback).
    pub fn subscribe(&self, options: SubscribeOptions) -> Subscription {
        let sub = SubShared::new(self.shared.clone(), options);
        self.shared.state.lock().subscriptions.push(Arc::downgrade(&sub));
        Subscription { shared: sub }
    }

    /// Ask this PV's server to pause subscription updates on its circuit (caproto:
    /// `pv.circuit_manager.events_off()`).
    pub fn events_off(&self) {
        self.set_events(false);
    }

    /// Resume subscription updates on this PV's circuit; the latest values arrive.
    pub fn events_on(&self) {
        self.set_events(true);
    }

    fn set_events(&self, on: bool) {
        let link = self.shared.state.lock().link.clone();
        if let Some(link) = link {
            link.circuit.exec(move |handler, _| handler.set_events(on), || {});
        }
    }

    /// Clear the channel to spare client and server; any later operation connects
    /// again. Does nothing while a subscription is active (as caproto).
    pub fn go_idle(&self) {
        let link = {
            let mut state = self.shared.state.lock();
            state.subscriptions.retain(|s| s.strong_count() > 0);
            let active = state.subscriptions.iter().filter_map(Weak::upgrade).any(|s| s.is_active());
            if active || state.phase != Phase::Connected {
                return;
            }
            state.phase = Phase::Idle;
            state.link.take()
        };
        self.shared.connected.clear();
        if let Some(link) = link {
            let pv = self.shared.clone();
            link.circuit.exec(move |handler, _| handler.clear_channel(&pv), || {});
        }
    }
}

/// A value to write: anything convertible to a [`Value`].
pub struct DbrValue(pub Value);

impl From<Value> for DbrValue {
    fn from(value: Value) -> Self {
        DbrValue(value)
    }
}

macro_rules! dbr_value_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<$t> for DbrValue {
            fn from(v: $t) -> Self { DbrValue(Value::$variant(vec![v])) }
        }
        impl From<Vec<$t>> for DbrValue {
            fn from(v: Vec<$t>) -> Self { DbrValue(Value::$variant(v)) }
        }
        impl From<&[$t]> for DbrValue {
            fn from(v: &[$t]) -> Self { DbrValue(Value::$variant(v.to_vec())) }
        }
    )*};
}

dbr_value_from!(f64 => Double, f32 => Float, i32 => Long, i16 => Short, u8 => Char);

impl From<&str> for DbrValue {
    fn from(v: &str) -> Self {
        DbrValue(Value::String(vec![v.into()]))
    }
}

impl From<String> for DbrValue {
    fn from(v: String) -> Self {
        DbrValue(Value::String(vec![v.into()]))
    }
}

impl From<Vec<String>> for DbrValue {
    fn from(v: Vec<String>) -> Self {
        DbrValue(Value::String(v.into_iter().map(Into::into).collect()))
    }
}
