//! The client context: the runtime, the search engine, the circuits and the PVs.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use pvloom_core::{Delivery, Overflow, Runtime, RuntimeHandle};

use super::config::ClientConfig;
use super::core::ContextInner;
use super::error::CaResult;
use super::pv::Pv;
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
        Ok(Context { inner: ContextInner::start(config, runtime)? })
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
        f.debug_struct("Context").field("pvs", &self.inner.pv_count()).finish()
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
        self.inner.pvs(names, priority).into_iter().map(|shared| Pv { shared }).collect()
    }

    /// Stop searching for `name` (a typo, a PV never expected to exist). A later
    /// operation on its PV searches again.
    pub fn cancel_search(&self, name: &str) {
        self.inner.cancel_search(name);
    }

    /// Time since each known server was last heard from (beacons or circuit traffic).
    pub fn servers_last_heard(&self) -> HashMap<SocketAddrV4, Duration> {
        let servers = self.inner.known_servers();
        servers.into_iter().filter_map(|s| Some((s, self.inner.time_since_last_heard(s)?))).collect()
    }

    /// One PV (see [`get_pvs`](Self::get_pvs)).
    pub fn get_pv(&self, name: &str) -> Pv {
        self.get_pvs(&[name]).remove(0)
    }

    /// Search every unanswered name now, restarting the backoff.
    pub fn search_now(&self) {
        self.inner.search_now();
    }

    /// Names still unanswered (blocking; `WouldDeadlock` on an I/O thread).
    ///
    /// # Errors
    /// `WouldDeadlock`, or the runtime being closed.
    pub fn unanswered_searches(&self) -> CaResult<usize> {
        self.inner.unanswered_searches()
    }

    /// Ask every server to pause subscription updates (EVENTS_OFF).
    pub fn events_off(&self) {
        self.inner.set_events(None, false);
    }

    /// Resume subscription updates (EVENTS_ON); servers send the latest values.
    pub fn events_on(&self) {
        self.inner.set_events(None, true);
    }

    /// EVENTS_OFF (`on == false`) or EVENTS_ON on the circuits to one server only
    /// (caproto: `VirtualCircuitManager.events_off()`).
    pub fn set_server_events(&self, server: SocketAddrV4, on: bool) {
        self.inner.set_events(Some(server), on);
    }

    /// Servers with an open circuit.
    pub fn servers(&self) -> Vec<SocketAddrV4> {
        self.inner.servers()
    }

    /// Time since anything was heard from `server` (beacon or circuit traffic).
    pub fn time_since_last_heard(&self, server: SocketAddrV4) -> Option<Duration> {
        self.inner.time_since_last_heard(server)
    }

    /// Close every circuit and stop the threads. Later operations fail.
    pub fn disconnect(&self) {
        self.inner.disconnect();
    }
}
