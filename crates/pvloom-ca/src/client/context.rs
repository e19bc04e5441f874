//! The client context: the runtime, the search engine, the circuits and the PVs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::{Delivery, Overflow, Runtime, RuntimeHandle};

use super::circuit::{CircuitAddress, CircuitHandler, CircuitMarker};
use super::config::ClientConfig;
use super::error::{CaError, CaResult};
use super::pv::{Phase, Pv, PvShared};
use super::search::{SearchAddress, SearchHandler};
use crate::proto::constants::CA_PRIORITY_MAX;

/// Configures a [`Context`] (caproto: `Context(broadcaster, timeout, host_name,
/// client_name, max_workers)`).
#[derive(Clone)]
pub struct ContextBuilder {
    config: Option<ClientConfig>,
    max_workers: usize,
    io_threads: usize,
    timeout: Option<Duration>,
    host_name: Option<String>,
    client_name: Option<String>,
    error_hook: Option<pvloom_core::ErrorHook>,
    worker_wrapper: Option<pvloom_core::WorkerWrapper>,
}

impl std::fmt::Debug for ContextBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextBuilder")
            .field("max_workers", &self.max_workers)
            .field("io_threads", &self.io_threads)
            .finish()
    }
}

impl Default for ContextBuilder {
    fn default() -> Self {
        ContextBuilder {
            config: None,
            max_workers: 1,
            io_threads: 2,
            timeout: None,
            host_name: None,
            client_name: None,
            error_hook: None,
            worker_wrapper: None,
        }
    }
}

impl ContextBuilder {
    /// Use these settings instead of the environment.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Worker threads running user callbacks, in arrival order per subscription
    /// (caproto's `max_workers`, default 1). 0 runs callbacks Inline on the I/O threads.
    pub fn max_workers(mut self, workers: usize) -> Self {
        self.max_workers = workers;
        self
    }

    /// I/O threads (default 2).
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// Default timeout of blocking calls.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Host name sent to servers.
    pub fn host_name(mut self, name: impl Into<String>) -> Self {
        self.host_name = Some(name.into());
        self
    }

    /// User name sent to servers.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// Receive failing callbacks (panics) here instead of the default `tracing` error.
    pub fn error_hook(mut self, hook: pvloom_core::ErrorHook) -> Self {
        self.error_hook = Some(hook);
        self
    }

    /// Run each callback worker's turn inside `wrapper` (the Python bindings hold the
    /// GIL across a turn).
    pub fn worker_wrapper(mut self, wrapper: pvloom_core::WorkerWrapper) -> Self {
        self.worker_wrapper = Some(wrapper);
        self
    }

    /// Start the context: its runtime, its search engine.
    ///
    /// # Errors
    /// An unusable environment variable, or the OS refusing threads or sockets.
    pub fn build(self) -> CaResult<Context> {
        let mut config = match self.config {
            Some(config) => config,
            None => ClientConfig::from_env()?,
        };
        if let Some(timeout) = self.timeout {
            config.timeout = timeout;
        }
        if let Some(name) = self.host_name {
            config.host_name = name;
        }
        if let Some(name) = self.client_name {
            config.client_name = name;
        }
        let delivery = if self.max_workers == 0 {
            Delivery::Inline
        } else {
            Delivery::Ordered { workers: self.max_workers, capacity: 10_000, overflow: Overflow::Coalesce }
        };
        let mut runtime = Runtime::builder().name("pvloom-ca").io_threads(self.io_threads).delivery(delivery);
        if let Some(hook) = self.error_hook {
            runtime = runtime.error_hook(hook);
        }
        if let Some(wrapper) = self.worker_wrapper {
            runtime = runtime.worker_wrapper(wrapper);
        }
        let runtime = runtime.build()?;
        let handle = runtime.handle();
        let search: Arc<SearchAddress> = SearchAddress::new(handle.clone(), 0);
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
        let context = inner.clone();
        handle.run_on(0, move |ctx| {
            let _ = tx.send(SearchHandler::open(ctx, &search, &context));
        })?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| CaError::Core(pvloom_core::Error::msg("search engine did not start")))??;
        Ok(Context { inner })
    }
}

#[derive(Default)]
struct ContextState {
    pvs: HashMap<(String, u16), Arc<PvShared>>,
    by_cid: HashMap<u32, Weak<PvShared>>,
    circuits: HashMap<(SocketAddrV4, u16), Arc<CircuitAddress>>,
    heard: HashMap<SocketAddrV4, Instant>,
    /// When each name server's circuit was last (re)opened.
    name_server_opened: HashMap<SocketAddrV4, Instant>,
}

pub(crate) struct ContextInner {
    pub(crate) runtime: RuntimeHandle,
    owned_runtime: Mutex<Option<Runtime>>,
    pub(crate) config: ClientConfig,
    search: Arc<SearchAddress>,
    state: Mutex<ContextState>,
    next_cid: AtomicU32,
    repeater: Mutex<Option<crate::repeater::RepeaterHandle>>,
}

impl ContextInner {
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
        circuit.exec(move |handler, _| handler.create_channel(&pv), move || retry.on_disconnected(true));
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
    fn circuit_for(self: &Arc<Self>, server: SocketAddrV4, priority: u16) -> Arc<CircuitAddress> {
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
            if let Err(err) = CircuitHandler::open(ctx, opening.clone(), &context) {
                tracing::warn!(%server, "cannot open circuit: {err}");
                opening.marker.closed.store(true, std::sync::atomic::Ordering::Release);
                context.circuit_closed(&opening);
            }
        });
        address
    }

    pub(crate) fn circuit_closed(&self, address: &Arc<CircuitAddress>) {
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
}

/// A Channel Access client: caproto's threading `Context`.
///
/// ```no_run
/// use pvloom_ca::client::Context;
/// let ctx = Context::new()?;
/// let pvs = ctx.get_pvs(&["random_walk:x", "random_walk:dt"]);
/// let reading = pvs[0].read()?;
/// println!("{:?}", reading.value());
/// # Ok::<(), pvloom_ca::client::CaError>(())
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("pvs", &self.inner.state.lock().pvs.len()).finish()
    }
}

impl Context {
    /// A context configured from the environment, one callback worker.
    ///
    /// # Errors
    /// As [`ContextBuilder::build`].
    pub fn new() -> CaResult<Self> {
        ContextBuilder::default().build()
    }

    /// Configure a context.
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The settings in effect.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The runtime under the context (I/O threads, callback delivery, stats).
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.inner.runtime
    }

    /// PVs for `names` at priority 0; searching starts at once, all names packed
    /// into as few datagrams as fit. The same name twice gives the same PV.
    pub fn get_pvs(&self, names: &[&str]) -> Vec<Pv> {
        self.get_pvs_with_priority(names, 0)
    }

    /// As [`get_pvs`](Self::get_pvs) at circuit `priority` (0..=99).
    pub fn get_pvs_with_priority(&self, names: &[&str], priority: u16) -> Vec<Pv> {
        let priority = priority.min(CA_PRIORITY_MAX);
        let mut new = Vec::new();
        let pvs = {
            let mut state = self.inner.state.lock();
            names
                .iter()
                .map(|name| {
                    let key = ((*name).to_owned(), priority);
                    if let Some(existing) = state.pvs.get(&key) {
                        return Pv { shared: existing.clone() };
                    }
                    let cid = self.inner.next_cid.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::new(PvShared::new(
                        (*name).to_owned(),
                        priority,
                        cid,
                        Arc::downgrade(&self.inner),
                        self.inner.runtime.deliverer(),
                    ));
                    state.pvs.insert(key, shared.clone());
                    state.by_cid.insert(cid, Arc::downgrade(&shared));
                    new.push((cid, (*name).to_owned()));
                    Pv { shared }
                })
                .collect()
        };
        if !new.is_empty() {
            self.inner.search_many(new, 0);
        }
        // As caproto: every get_pvs retries all unanswered searches once, now.
        self.inner.search.exec(|handler, ctx| handler.engine.retry_now(ctx.now()), || {});
        pvs
    }

    /// Stop searching for `name` (a typo, a PV never expected to exist). A later
    /// operation on its PV searches again.
    pub fn cancel_search(&self, name: &str) {
        let mut cids = Vec::new();
        for pv in self.inner.state.lock().pvs.values().filter(|pv| pv.name == name) {
            // Only a PV still searching is affected; a connected one keeps its channel.
            let mut state = pv.state.lock();
            if state.phase == super::pv::Phase::Searching {
                state.phase = super::pv::Phase::Idle;
                cids.push(pv.cid);
            }
        }
        self.inner.search.exec(
            move |handler, _| {
                for cid in cids {
                    handler.engine.forget(cid);
                }
            },
            || {},
        );
    }

    /// Time since each known server was last heard from (beacons or circuit traffic).
    pub fn servers_last_heard(&self) -> HashMap<SocketAddrV4, Duration> {
        let servers: Vec<SocketAddrV4> = {
            let state = self.inner.state.lock();
            let mut all: Vec<_> = state.heard.keys().copied().chain(state.circuits.keys().map(|(a, _)| *a)).collect();
            all.sort();
            all.dedup();
            all
        };
        servers.into_iter().filter_map(|s| Some((s, self.inner.time_since_last_heard(s)?))).collect()
    }

    /// One PV (see [`get_pvs`](Self::get_pvs)).
    pub fn get_pv(&self, name: &str) -> Pv {
        self.get_pvs(&[name]).remove(0)
    }

    /// Search every unanswered name now, restarting the backoff.
    pub fn search_now(&self) {
        self.inner.search.exec(|handler, ctx| handler.engine.search_now(ctx.now()), || {});
    }

    /// Names still unanswered (blocking; `WouldDeadlock` on an I/O thread).
    ///
    /// # Errors
    /// `WouldDeadlock`, or the runtime being closed.
    pub fn unanswered_searches(&self) -> CaResult<usize> {
        let (completer, completion) = pvloom_core::completion();
        self.inner.search.exec(move |handler, _| completer.succeed(handler.engine.unanswered()), || {});
        Ok(completion.wait_timeout(Duration::from_secs(5))?)
    }

    /// Ask every server to pause subscription updates (EVENTS_OFF).
    pub fn events_off(&self) {
        self.for_each_circuit(|handler| handler.set_events(false));
    }

    /// Resume subscription updates (EVENTS_ON); servers send the latest values.
    pub fn events_on(&self) {
        self.for_each_circuit(|handler| handler.set_events(true));
    }

    /// EVENTS_OFF (`on == false`) or EVENTS_ON on the circuits to one server only
    /// (caproto: `VirtualCircuitManager.events_off()`).
    pub fn set_server_events(&self, server: SocketAddrV4, on: bool) {
        let circuits: Vec<_> = self
            .inner
            .state
            .lock()
            .circuits
            .iter()
            .filter(|((a, _), _)| *a == server)
            .map(|(_, c)| c.clone())
            .collect();
        for circuit in circuits {
            circuit.exec(move |handler, _| handler.set_events(on), || {});
        }
    }

    fn for_each_circuit(&self, f: impl Fn(&mut CircuitHandler) + Send + Sync + Clone + 'static) {
        let circuits: Vec<_> = self.inner.state.lock().circuits.values().cloned().collect();
        for circuit in circuits {
            let f = f.clone();
            circuit.exec(move |handler, _| f(handler), || {});
        }
    }

    /// Servers with an open circuit.
    pub fn servers(&self) -> Vec<SocketAddrV4> {
        let mut servers: Vec<_> = self.inner.state.lock().circuits.keys().map(|(addr, _)| *addr).collect();
        servers.sort();
        servers.dedup();
        servers
    }

    /// Time since anything was heard from `server` (beacon or circuit traffic).
    pub fn time_since_last_heard(&self, server: SocketAddrV4) -> Option<Duration> {
        self.inner.time_since_last_heard(server)
    }

    /// Close every circuit and stop the threads. Later operations fail.
    pub fn disconnect(&self) {
        let runtime = self.inner.owned_runtime.lock().take();
        drop(runtime);
    }
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        if let Some(runtime) = self.owned_runtime.get_mut().take() {
            drop(runtime);
        }
    }
}
