//! The client's core: the context's tables, each PV's phase (searching,
//! connecting, connected, idle) with its reconnect backoff, the subscriptions, and
//! the operations' way to their circuit. It sits between the thin API (`Context`,
//! `Pv`, `Subscription`) and the drivers (`circuit`, `search`), which report to it
//! through [`CoreSink`]; the drivers never import it. The state lives in one module
//! because it is one object graph: a PV knows its context, the context its PVs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::sync::Event;
use pvloom_core::{Completion, Deliverer, Job, Overflow, Runtime, RuntimeHandle};

use super::circuit::{BacklogGuard, CircuitAddress, CircuitEvent, CircuitHandler, CircuitMarker, CircuitSink};
use super::config::ClientConfig;
use super::error::{CaError, CaResult};
use super::op::OpSlot;
use super::options::{ConnectionState, ReadOptions, SubscribeOptions, WriteOptions};
use super::response::Response;
use super::search::{SearchAddress, SearchHandler, SearchSink};
use super::search_engine::{SearchConfig, SearchEvent};
use crate::proto::command::AccessRights;
use crate::proto::{DbrClass, DbrData, DbrType, Value};

/// A circuit of this client.
pub(crate) type Circuit = CircuitAddress<CoreSink>;

/// Where the drivers report: a weak link to the context (drivers never keep it alive).
#[derive(Clone)]
pub(crate) struct CoreSink(Weak<ContextInner>);

impl CircuitSink for CoreSink {
    type Channel = Arc<PvShared>;
    type Sub = Arc<SubShared>;

    fn queued(sub: &Arc<SubShared>) -> bool {
        !sub.deliverer.is_inline()
    }

    fn on_event(&self, circuit: &mut CircuitHandler<Self>, event: CircuitEvent<Self>) {
        match event {
            CircuitEvent::Created { channel, native_type, count, version } => {
                let link = Link { circuit: circuit.address().clone(), native_type, count, server_version: version };
                channel.on_connected(link, circuit);
            }
            CircuitEvent::AccessRights { channel, rights } => channel.on_access_rights(rights),
            CircuitEvent::Lost { channel, search_again } => {
                if search_again {
                    channel.on_access_rights(AccessRights(0));
                }
                channel.on_disconnected(search_again);
            }
            CircuitEvent::Refused { channel } => {
                // E.g. the previous channel of this cid is still being cleared: try
                // again through a fresh search rather than waiting forever.
                if let Some(context) = self.0.upgrade() {
                    context.runtime.call_later(Duration::from_millis(100), move || channel.on_disconnected(true));
                }
            }
            CircuitEvent::Update { sub, response, backlog } => sub.deliver(Arc::new(response), backlog),
            CircuitEvent::NameServerFound { search_id, server } => {
                if let Some(context) = self.0.upgrade() {
                    context.found_by_name_server(search_id, server);
                }
            }
            CircuitEvent::Closed => {
                if let Some(context) = self.0.upgrade() {
                    context.circuit_closed(circuit.address());
                }
            }
        }
    }
}

impl SearchSink for CoreSink {
    fn on_search_event(&self, event: SearchEvent) {
        let Some(context) = self.0.upgrade() else { return };
        match event {
            SearchEvent::Found { cid, server, version } => context.found(cid, server, version.unwrap_or(0)),
            SearchEvent::Heard(server) => context.heard_from(server),
            SearchEvent::Due(names) => context.search_name_servers(&names),
            SearchEvent::StartRepeater => context.ensure_repeater(),
            SearchEvent::RepeaterConfirmed => {}
        }
    }
}

// ---- the context ----

#[derive(Default)]
struct ContextState {
    pvs: HashMap<(String, u16), Arc<PvShared>>,
    by_cid: HashMap<u32, Weak<PvShared>>,
    circuits: HashMap<(SocketAddrV4, u16), Arc<Circuit>>,
    heard: HashMap<SocketAddrV4, Instant>,
    /// When each name server's circuit was last (re)opened.
    name_server_opened: HashMap<SocketAddrV4, Instant>,
}

pub(crate) struct ContextInner {
    pub(crate) runtime: RuntimeHandle,
    owned_runtime: Mutex<Option<Runtime>>,
    pub(crate) config: ClientConfig,
    search: Arc<SearchAddress<CoreSink>>,
    state: Mutex<ContextState>,
    next_cid: AtomicU32,
    repeater: Mutex<Option<crate::repeater::RepeaterHandle>>,
}

impl ContextInner {
    /// The context's core on `runtime`, with its search engine started.
    pub(crate) fn start(config: ClientConfig, runtime: Runtime) -> CaResult<Arc<Self>> {
        let handle = runtime.handle();
        let search = SearchAddress::new(handle.clone(), 0);
        let inner = Arc::new(ContextInner {
            runtime: handle.clone(),
            owned_runtime: Mutex::new(Some(runtime)),
            config,
            search: search.clone(),
            state: Mutex::new(ContextState::default()),
            next_cid: AtomicU32::new(1),
            repeater: Mutex::new(None),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = CoreSink(Arc::downgrade(&inner));
        let search_config = SearchConfig {
            destinations: inner.config.search_destinations(),
            max_period: inner.config.max_search_period,
            repeater_port: Some(inner.config.repeater_port),
        };
        handle.run_on(0, move |ctx| {
            let _ = tx.send(SearchHandler::open(ctx, &search, search_config, sink));
        })?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| CaError::Core(pvloom_core::Error::msg("search engine did not start")))??;
        Ok(inner)
    }

    /// Hand PVs to the search engine.
    pub(crate) fn search(&self, pv: &Arc<PvShared>) {
        let failures = pv.state.lock().quick_failures;
        self.search_many(vec![(pv.cid, pv.name.clone())], failures);
    }

    fn search_many(&self, names: Vec<(u32, String)>, failures: u32) {
        self.search.exec(
            move |handler, ctx| {
                let now = ctx.now();
                for (cid, name) in names {
                    handler.engine.add(now, cid, name, failures);
                }
            },
            || {},
        );
    }

    /// The search engine found `cid` at `server`.
    pub(crate) fn found(self: &Arc<Self>, cid: u32, server: SocketAddrV4, _version: u16) {
        let Some(pv) = self.state.lock().by_cid.get(&cid).and_then(Weak::upgrade) else { return };
        {
            let mut state = pv.state.lock();
            if state.phase != Phase::Searching {
                return;
            }
            state.phase = Phase::Connecting;
        }
        let circuit = self.circuit_for(server, pv.priority);
        let retry = pv.clone();
        let (cid, name) = (pv.cid, pv.name.clone());
        circuit.exec(move |handler, _| handler.create_channel(cid, &name, pv), move || retry.on_disconnected(true));
    }

    /// Send due searches to every name server over TCP, reopening a lost name-server
    /// circuit at most once a second.
    pub(crate) fn search_name_servers(self: &Arc<Self>, items: &[(u32, String)]) {
        if self.config.name_servers.is_empty() || items.is_empty() {
            return;
        }
        for &server in &self.config.name_servers {
            let open = {
                let mut state = self.state.lock();
                let alive = state.circuits.get(&(server, 0)).is_some_and(|c| !c.marker.closed.load(Ordering::Acquire));
                let recent =
                    state.name_server_opened.get(&server).is_some_and(|t| t.elapsed() < Duration::from_secs(1));
                if !alive && !recent {
                    state.name_server_opened.insert(server, Instant::now());
                }
                alive || !recent
            };
            if open {
                let items = items.to_vec();
                self.circuit_for(server, 0).exec(move |handler, _| handler.search(&items), || {});
            }
        }
    }

    /// A name server found `cid` at `server`.
    pub(crate) fn found_by_name_server(self: &Arc<Self>, cid: u32, server: SocketAddrV4) {
        self.search.exec(move |handler, _| handler.engine.forget(cid), || {});
        self.found(cid, server, 0);
    }

    /// The circuit to `server` at `priority`, opened now if there is none.
    fn circuit_for(self: &Arc<Self>, server: SocketAddrV4, priority: u16) -> Arc<Circuit> {
        let mut state = self.state.lock();
        if let Some(existing) = state.circuits.get(&(server, priority))
            && !existing.marker.closed.load(Ordering::Acquire)
        {
            return existing.clone();
        }
        let thread = self.runtime.least_loaded_thread();
        let address = CircuitAddress::new(self.runtime.clone(), thread, CircuitMarker::new(server, priority));
        state.circuits.insert((server, priority), address.clone());
        drop(state);
        let (context, opening) = (self.clone(), address.clone());
        let _ = self.runtime.run_on(address.thread(), move |ctx| {
            let sink = CoreSink(Arc::downgrade(&context));
            if let Err(err) = CircuitHandler::open(ctx, opening.clone(), &context.config, sink) {
                tracing::warn!(%server, "cannot open circuit: {err}");
                opening.marker.closed.store(true, std::sync::atomic::Ordering::Release);
                context.circuit_closed(&opening);
            }
        });
        address
    }

    pub(crate) fn circuit_closed(&self, address: &Arc<Circuit>) {
        let key = (address.marker.addr, address.marker.priority);
        let mut state = self.state.lock();
        if state.circuits.get(&key).is_some_and(|c| Arc::ptr_eq(c, address)) {
            state.circuits.remove(&key);
        }
    }

    pub(crate) fn heard_from(&self, server: SocketAddrV4) {
        let mut state = self.state.lock();
        if state.heard.len() >= 4096 && !state.heard.contains_key(&server) {
            // Bounded against spoofed beacons: keep what was heard in the last minute.
            state.heard.retain(|_, at| at.elapsed() < Duration::from_secs(60));
            if state.heard.len() >= 4096 {
                state.heard.clear();
            }
        }
        state.heard.insert(server, Instant::now());
    }

    pub(crate) fn time_since_last_heard(&self, server: SocketAddrV4) -> Option<Duration> {
        let state = self.state.lock();
        let beacon = state.heard.get(&server).copied();
        let traffic = state
            .circuits
            .iter()
            .filter(|((addr, _), _)| *addr == server)
            .map(|(_, c)| *c.marker.last_heard.lock())
            .max();
        beacon.into_iter().chain(traffic).max().map(|t| t.elapsed())
    }

    /// Start an in-process repeater when none confirmed our registration.
    pub(crate) fn ensure_repeater(&self) {
        let mut repeater = self.repeater.lock();
        if repeater.is_some() {
            return;
        }
        let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.config.repeater_port);
        match crate::repeater::spawn_repeater(&self.runtime, bind) {
            Ok(handle) => {
                tracing::info!(port = self.config.repeater_port, "started an in-process CA repeater");
                *repeater = Some(handle);
            }
            Err(err) => tracing::debug!("repeater port busy (another repeater runs?): {err}"),
        }
    }

    /// PVs for `names` at `priority`; new names start searching at once, and every
    /// unanswered name is searched again now (as caproto's get_pvs).
    pub(crate) fn pvs(self: &Arc<Self>, names: &[&str], priority: u16) -> Vec<Arc<PvShared>> {
        let mut new = Vec::new();
        let pvs = {
            let mut state = self.state.lock();
            names
                .iter()
                .map(|name| {
                    let key = ((*name).to_owned(), priority);
                    if let Some(existing) = state.pvs.get(&key) {
                        return existing.clone();
                    }
                    let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::new(PvShared::new(
                        (*name).to_owned(),
                        priority,
                        cid,
                        Arc::downgrade(self),
                        self.runtime.deliverer(),
                    ));
                    state.pvs.insert(key, shared.clone());
                    state.by_cid.insert(cid, Arc::downgrade(&shared));
                    new.push((cid, (*name).to_owned()));
                    shared
                })
                .collect()
        };
        if !new.is_empty() {
            self.search_many(new, 0);
        }
        self.search.exec(|handler, ctx| handler.engine.retry_now(ctx.now()), || {});
        pvs
    }

    /// Stop searching every still-searching PV named `name`.
    pub(crate) fn cancel_search(&self, name: &str) {
        let mut cids = Vec::new();
        for pv in self.state.lock().pvs.values().filter(|pv| pv.name == name) {
            // Only a PV still searching is affected; a connected one keeps its channel.
            let mut state = pv.state.lock();
            if state.phase == Phase::Searching {
                state.phase = Phase::Idle;
                cids.push(pv.cid);
            }
        }
        self.search.exec(
            move |handler, _| {
                for cid in cids {
                    handler.engine.forget(cid);
                }
            },
            || {},
        );
    }

    /// Every server heard of (beacons or circuits).
    pub(crate) fn known_servers(&self) -> Vec<SocketAddrV4> {
        let state = self.state.lock();
        let mut all: Vec<_> = state.heard.keys().copied().chain(state.circuits.keys().map(|(a, _)| *a)).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Servers with an open circuit.
    pub(crate) fn servers(&self) -> Vec<SocketAddrV4> {
        let mut servers: Vec<_> = self.state.lock().circuits.keys().map(|(addr, _)| *addr).collect();
        servers.sort();
        servers.dedup();
        servers
    }

    pub(crate) fn search_now(&self) {
        self.search.exec(|handler, ctx| handler.engine.search_now(ctx.now()), || {});
    }

    pub(crate) fn unanswered_searches(&self) -> CaResult<usize> {
        let (completer, completion) = pvloom_core::completion();
        self.search.exec(move |handler, _| completer.succeed(handler.engine.unanswered()), || {});
        Ok(completion.wait_timeout(Duration::from_secs(5))?)
    }

    /// EVENTS_ON/OFF on the circuits to `server`, or on every circuit.
    pub(crate) fn set_events(&self, server: Option<SocketAddrV4>, on: bool) {
        let circuits: Vec<_> = self
            .state
            .lock()
            .circuits
            .iter()
            .filter(|((a, _), _)| server.is_none_or(|s| s == *a))
            .map(|(_, c)| c.clone())
            .collect();
        for circuit in circuits {
            circuit.exec(move |handler, _| handler.set_events(on), || {});
        }
    }

    pub(crate) fn disconnect(&self) {
        let runtime = self.owned_runtime.lock().take();
        drop(runtime);
    }

    pub(crate) fn pv_count(&self) -> usize {
        self.state.lock().pvs.len()
    }
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        if let Some(runtime) = self.owned_runtime.get_mut().take() {
            drop(runtime);
        }
    }
}

// ---- PVs ----

/// The channel's place on a circuit, valid while connected.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) circuit: Arc<Circuit>,
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
pub(crate) type ConnectionCallback = Arc<dyn Fn(ConnectionState) + Send + Sync>;
pub(crate) type AccessCallback = Arc<dyn Fn(AccessRights) + Send + Sync>;

pub(crate) struct PvState {
    pub(crate) phase: Phase,
    pub(crate) link: Option<Link>,
    pub(crate) access: AccessRights,
    waiters: Vec<Waiter>,
    pub(crate) connection_callbacks: Vec<(u64, ConnectionCallback)>,
    pub(crate) access_callbacks: Vec<(u64, AccessCallback)>,
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
    pub(crate) next_token: AtomicU64,
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
    pub(crate) fn on_connected(self: &Arc<Self>, link: Link, handler: &mut CircuitHandler<CoreSink>) {
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
                sub.add_to(handler, &link);
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
        for (_, callback) in callbacks {
            let _ = self.deliverer.deliver(Job::new("ca.access_rights", move || callback(rights)));
        }
    }

    fn tell_connection(self: &Arc<Self>, callbacks: Vec<(u64, ConnectionCallback)>, state: ConnectionState) {
        for (_, callback) in callbacks {
            let _ = self.deliverer.deliver(Job::new("ca.connection", move || callback(state)));
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

    /// The result slot and handle of a new operation, and its timeout. Once on a
    /// circuit the operation's deadline is the circuit's (gone when it completes);
    /// only while the PV is not connected yet does a runtime timer guard the wait.
    fn start_op<T: Send + 'static>(
        self: &Arc<Self>,
        origin: &'static str,
        operation: &'static str,
        timeout: Option<Duration>,
    ) -> (Arc<OpSlot<T>>, Completion<T>, Duration, Option<pvloom_core::TimerHandle>) {
        let (completer, completion) = pvloom_core::completion_with(self.deliverer.clone(), origin);
        let slot = OpSlot::new(completer);
        let timeout = timeout.unwrap_or_else(|| self.default_timeout());
        let guard = (self.phase() != Phase::Connected).then(|| self.arm_timeout(&slot, operation, timeout));
        (slot, completion, timeout, guard.flatten())
    }

    /// Read without waiting: the handle completes with the response, or an error
    /// after `options.timeout`.
    pub(crate) fn read_async(self: &Arc<Self>, options: ReadOptions) -> Completion<Response> {
        let (slot, completion, timeout, guard) = self.start_op("ca.read", "read", options.timeout);
        let pv = self.clone();
        let waiting = slot.clone();
        self.with_link(
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
                            handler.start_read(
                                ctx.now(),
                                pv.cid,
                                &pv.name,
                                data_type,
                                count,
                                options.notify,
                                timeout,
                                slot,
                            );
                        },
                        move || slot2.fail(CaError::Disconnected { name, operation: "read" }),
                    );
                }
            },
            move || !waiting.is_done(),
        );
        completion
    }

    /// Write without waiting: with `notify` the handle completes when the server
    /// reports the put done; without, once the request is sent.
    pub(crate) fn write_async(self: &Arc<Self>, value: Value, options: WriteOptions) -> Completion<()> {
        let (slot, completion, timeout, guard) = self.start_op("ca.write", "write", options.timeout);
        let pv = self.clone();
        let waiting = slot.clone();
        self.with_link(
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
                            handler.start_write(
                                ctx.now(),
                                pv.cid,
                                &pv.name,
                                data_type,
                                value,
                                options.notify,
                                timeout,
                                slot,
                            );
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
    pub(crate) fn subscribe(self: &Arc<Self>, options: SubscribeOptions) -> Arc<SubShared> {
        let sub = SubShared::new(self.clone(), options);
        self.state.lock().subscriptions.push(Arc::downgrade(&sub));
        sub
    }

    /// EVENTS_ON/OFF on this PV's circuit.
    pub(crate) fn set_events(&self, on: bool) {
        let link = self.state.lock().link.clone();
        if let Some(link) = link {
            link.circuit.exec(move |handler, _| handler.set_events(on), || {});
        }
    }

    /// Clear the channel unless a subscription is active; a later operation connects again.
    pub(crate) fn go_idle(self: &Arc<Self>) {
        let link = {
            let mut state = self.state.lock();
            state.subscriptions.retain(|s| s.strong_count() > 0);
            let active = state.subscriptions.iter().filter_map(Weak::upgrade).any(|s| s.is_active());
            if active || state.phase != Phase::Connected {
                return;
            }
            state.phase = Phase::Idle;
            state.link.take()
        };
        self.connected.clear();
        if let Some(link) = link {
            let cid = self.cid;
            link.circuit.exec(move |handler, _| handler.clear_channel(cid), || {});
        }
    }
}

// ---- subscriptions ----

pub(crate) type UpdateCallback = Arc<dyn Fn(Arc<Response>) + Send + Sync>;

static NEXT_SUBSCRIPTION_ID: AtomicU32 = AtomicU32::new(1);

pub(crate) struct SubShared {
    pub(crate) pv: Arc<PvShared>,
    pub(crate) options: SubscribeOptions,
    /// Stable identity (the coalescing key of its updates).
    pub(crate) id: u32,
    /// The id used on the wire by the current EVENT_ADD (0: none yet); fresh each time.
    wire: std::sync::atomic::AtomicU32,
    pub(crate) callbacks: Mutex<Vec<(u64, UpdateCallback)>>,
    pub(crate) active: AtomicBool,
    pub(crate) next_token: AtomicU64,
    pub(crate) deliverer: Deliverer,
    pub(crate) most_recent: Mutex<Option<Arc<Response>>>,
    pub(crate) received: AtomicU64,
}

impl SubShared {
    pub(crate) fn new(pv: Arc<PvShared>, options: SubscribeOptions) -> Arc<Self> {
        let deliverer = match pv.context.upgrade() {
            Some(context) => context.runtime.deliverer_with(options.queue.max(1), Overflow::Coalesce),
            None => Deliverer::inline(),
        };
        Arc::new(SubShared {
            pv,
            options,
            id: NEXT_SUBSCRIPTION_ID.fetch_add(1, Ordering::Relaxed),
            wire: std::sync::atomic::AtomicU32::new(0),
            callbacks: Mutex::new(Vec::new()),
            active: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
            deliverer,
            most_recent: Mutex::new(None),
            received: AtomicU64::new(0),
        })
    }

    pub(crate) fn wire_id(&self) -> u32 {
        self.wire.load(Ordering::Acquire)
    }

    pub(crate) fn new_wire_id(&self) -> u32 {
        let id = NEXT_SUBSCRIPTION_ID.fetch_add(1, Ordering::Relaxed).max(1);
        self.wire.store(id, Ordering::Release);
        id
    }

    /// Send EVENT_ADD on `handler`'s circuit (after connect and on reconnection),
    /// under a fresh wire id, unless it is live there already.
    pub(crate) fn add_to(self: &Arc<Self>, handler: &mut CircuitHandler<CoreSink>, link: &Link) {
        if handler.has_subscription(self.wire_id()) {
            return;
        }
        let wire = self.new_wire_id();
        let (data_type, count) = self.request_for(link.native_type, link.count);
        handler.subscribe(self.pv.cid, wire, data_type, count, self.options.mask, self.clone());
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The DBR type and count to subscribe with on a channel. A count is always
    /// given: count 0 on a plain type would look like a cancel confirmation.
    pub(crate) fn request_for(&self, native: DbrType, channel_count: u32) -> (DbrType, u32) {
        let data_type =
            self.options.data_type.unwrap_or_else(|| native.promote_to(self.options.class).unwrap_or(native));
        (data_type, self.options.data_count.unwrap_or(channel_count).max(1))
    }

    /// An update arrived (on the circuit's I/O thread): remember it and hand it to
    /// every callback through the subscription's deliverer.
    pub(crate) fn deliver(self: &Arc<Self>, response: Arc<Response>, backlog: Option<BacklogGuard>) {
        self.received.fetch_add(1, Ordering::Relaxed);
        *self.most_recent.lock() = Some(response.clone());
        let callbacks: Vec<UpdateCallback> = self.callbacks.lock().iter().map(|(_, c)| c.clone()).collect();
        if callbacks.is_empty() {
            return;
        }
        let key = u64::from(self.id);
        let _ = self.deliverer.dispatch("ca.subscription", Some(key), move || {
            let _backlog = backlog;
            for callback in callbacks {
                callback(response.clone());
            }
        });
    }

    pub(crate) fn start(self: &Arc<Self>) {
        let sub = self.clone();
        let wanted = self.clone();
        self.pv.with_link(
            move |link| {
                if let Ok(link) = link
                    && sub.is_active()
                {
                    let (circuit, sub2) = (link.circuit.clone(), sub.clone());
                    circuit.exec(move |handler, _| sub2.add_to(handler, &link), || {});
                }
            },
            move || wanted.is_active(),
        );
    }

    pub(crate) fn stop(self: &Arc<Self>) {
        let link = self.pv.state.lock().link.clone();
        if let Some(link) = link {
            let sub = self.clone();
            link.circuit.exec(move |handler, _| handler.cancel_subscription(sub.wire_id()), || {});
        }
    }
}
