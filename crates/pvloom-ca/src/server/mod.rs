//! The Channel Access server: serve PVs that any EPICS client can use.
//!
//! - UDP: answers searches for names it has (unicast and broadcast) and sends beacons
//!   (a fast ramp at start, then every `EPICS_CAS_BEACON_PERIOD`).
//! - TCP: one circuit per client on the least-loaded I/O thread; every request of
//!   protocol 4.13; access rights per PV from [`AccessRules`].
//! - Fan-out with bounded memory: each client has an outbox holding at most the newest
//!   update per subscription (EPICS rsrv's coalescing), so a slow client never grows the
//!   server and never delays the others.
//! - PVs come from code ([`Server::add_pv`], caproto's `pvproperty`) or from `.db` files
//!   ([`db`]).

mod access;
mod acf;
mod backend;
pub mod db;
mod endpoint;
mod filter;
pub mod iocsh;
mod outbox;
mod records;
mod registry;
pub mod states;
mod tcp;
mod udp;

pub use udp::{HasName, SearchResponder};

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pvloom_core::mio::net::{TcpListener, UdpSocket};
use pvloom_core::{Runtime, RuntimeHandle};

pub use access::{AccessError, AccessRule, AccessRules, NO_ACCESS, READ_ONLY, READ_WRITE};
pub use acf::{AccessSecurity, AcfError};
pub use backend::{MonitorGate, PutHook, PutHookError, PvBackend, PvSpec, SimplePv, Status};
pub use records::DbIoc;
pub use registry::{Registry, Resolver, ServedPv};
pub use tcp::DEFAULT_SEND_STALL_TIMEOUT;

use crate::proto::Value;

/// Server settings, read from the `EPICS_CAS_*` variables rsrv honours.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Interface to serve on (`EPICS_CAS_INTF_ADDR_LIST`, first entry; default all).
    pub interface: Ipv4Addr,
    /// TCP and UDP port (`EPICS_CAS_SERVER_PORT`, else `EPICS_CA_SERVER_PORT`, 5064;
    /// 0 picks a free one).
    pub port: u16,
    /// Where beacons go (`EPICS_CAS_BEACON_ADDR_LIST`, plus interface broadcasts unless
    /// `EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO`), at `EPICS_CA_REPEATER_PORT`.
    pub beacon_destinations: Vec<SocketAddrV4>,
    /// Steady beacon interval (`EPICS_CAS_BEACON_PERIOD`, 15 s).
    pub beacon_period: Duration,
    /// Largest request payload accepted from a client (`EPICS_CA_MAX_ARRAY_BYTES`).
    pub max_array_bytes: usize,
    /// Clients served at once.
    pub max_clients: usize,
    /// Channels one client may hold.
    pub max_channels_per_client: usize,
    /// Creates for names the server lacks before a client is disconnected (real clients
    /// create channels only after a search found them; thousands of misses is abuse).
    pub max_failed_creates: u32,
    /// How long a client may leave its socket unread before it is disconnected.
    pub send_stall_timeout: Duration,
    /// Minor protocol version announced to clients (VERSION on every new circuit).
    pub protocol_version: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            interface: Ipv4Addr::UNSPECIFIED,
            port: crate::proto::constants::CA_SERVER_PORT,
            beacon_destinations: Vec::new(),
            beacon_period: Duration::from_secs(15),
            max_array_bytes: crate::client::DEFAULT_MAX_ARRAY_BYTES,
            max_clients: 4096,
            max_channels_per_client: 100_000,
            max_failed_creates: 1_000,
            send_stall_timeout: DEFAULT_SEND_STALL_TIMEOUT,
            protocol_version: crate::proto::constants::CA_MINOR_PROTOCOL_REVISION,
        }
    }
}

impl ServerConfig {
    /// Settings from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from any variable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut config = ServerConfig::default();
        if let Some(port) =
            get("EPICS_CAS_SERVER_PORT").or_else(|| get("EPICS_CA_SERVER_PORT")).and_then(|p| p.parse().ok())
        {
            config.port = port;
        }
        if let Some(ip) = get("EPICS_CAS_INTF_ADDR_LIST").and_then(|l| l.split_whitespace().next()?.parse().ok()) {
            config.interface = ip;
        }
        let repeater_port: u16 = get("EPICS_CA_REPEATER_PORT").and_then(|p| p.parse().ok()).unwrap_or(5065);
        if let Some(list) = get("EPICS_CAS_BEACON_ADDR_LIST").or_else(|| get("EPICS_CA_ADDR_LIST")) {
            config.beacon_destinations = udp::parse_destinations(&list, repeater_port);
            // An address list names servers' ports; beacons go to the repeater port.
            for destination in &mut config.beacon_destinations {
                destination.set_port(repeater_port);
            }
        }
        let auto = get("EPICS_CAS_AUTO_BEACON_ADDR_LIST").or_else(|| get("EPICS_CA_AUTO_ADDR_LIST"));
        if auto.is_none_or(|v| !v.eq_ignore_ascii_case("no")) {
            let mut auto_list = ClientBroadcasts::list(repeater_port);
            config.beacon_destinations.append(&mut auto_list);
        }
        config.beacon_destinations.sort();
        config.beacon_destinations.dedup();
        if let Some(period) = get("EPICS_CAS_BEACON_PERIOD")
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| *p > 0.0)
            .and_then(|p| Duration::try_from_secs_f64(p).ok())
        {
            config.beacon_period = period;
        }
        if let Some(bytes) = get("EPICS_CA_MAX_ARRAY_BYTES").and_then(|b| b.parse::<usize>().ok()) {
            config.max_array_bytes = bytes.max(16_384);
        }
        config
    }
}

/// Interface broadcast addresses, shared with the client's auto address list.
struct ClientBroadcasts;

impl ClientBroadcasts {
    fn list(port: u16) -> Vec<SocketAddrV4> {
        let config = crate::client::ClientConfig { server_port: port, addr_list: Vec::new(), ..Default::default() };
        config.search_destinations()
    }
}

pub(crate) struct ServerShared {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Registry,
    pub(crate) access: AccessRules,
    pub(crate) tcp_port: u16,
    clients: AtomicUsize,
}

impl ServerShared {
    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    pub(crate) fn client_opened(&self) {
        self.clients.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn client_closed(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Configures a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    config: Option<ServerConfig>,
    access: AccessRules,
    io_threads: usize,
}

impl ServerBuilder {
    /// Use these settings instead of the environment.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Access rules (default: everyone reads and writes).
    pub fn access_rules(mut self, rules: AccessRules) -> Self {
        self.access = rules;
        self
    }

    /// I/O threads (default 2).
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// Bind the sockets and start serving (PVs may be added before and after).
    ///
    /// # Errors
    /// A port in use or another socket error.
    pub fn start(self) -> std::io::Result<Server> {
        let config = self.config.unwrap_or_else(ServerConfig::from_env);
        let runtime = Runtime::builder().name("pvloom-ioc").io_threads(self.io_threads.max(1)).build()?;
        let handle = runtime.handle();
        let (listener, udp) = bind_sockets(config.interface, config.port)?;
        let tcp_port = listener.local_addr()?.port();
        let shared = Arc::new(ServerShared {
            config,
            registry: Registry::default(),
            access: self.access,
            tcp_port,
            clients: AtomicUsize::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let (s1, s2) = (shared.clone(), shared.clone());
        handle
            .run_on(0, move |ctx| {
                let accept = move |stream, peer, ctx: &mut pvloom_core::IoCtx<'_>| tcp::accept(stream, peer, &s1, ctx);
                let registered =
                    ctx.register(Box::new(pvloom_core::driver::Listener::new(listener, accept))).and_then(|_| {
                        let address = pvloom_core::driver::DatagramAddress::new(
                            ctx.runtime().ok_or_else(|| std::io::Error::other("runtime closed"))?,
                            0,
                        );
                        let socket = udp::SearchSocket::new(ctx.now(), s2);
                        pvloom_core::driver::bind_udp(ctx, &address, udp, socket)
                    });
                let _ = tx.send(registered);
            })
            .map_err(std::io::Error::other)?;
        rx.recv_timeout(Duration::from_secs(10)).map_err(std::io::Error::other)??;
        tracing::info!(port = tcp_port, "CA server listening");
        Ok(Server { runtime: Some(runtime), handle, shared })
    }
}

/// The TCP listener and the search socket. When another server (another IOC on this
/// host) holds the TCP port, the listener takes an ephemeral one, and search replies
/// and beacons name it; the UDP port is shared (SO_REUSEADDR, as rsrv binds it), so
/// every server on the host sees broadcast searches.
fn bind_sockets(interface: Ipv4Addr, port: u16) -> std::io::Result<(TcpListener, UdpSocket)> {
    let listener = match pvloom_core::driver::bind_tcp(SocketAddr::V4(SocketAddrV4::new(interface, port))) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 => {
            let listener = pvloom_core::driver::bind_tcp(SocketAddr::V4(SocketAddrV4::new(interface, 0)))?;
            tracing::info!(
                port,
                actual = listener.local_addr()?.port(),
                "CA TCP port in use (another server?): listening on an ephemeral port"
            );
            listener
        }
        other => other?,
    };
    // A free port was asked for: searches come to the port the listener got.
    let udp_port = if port == 0 { listener.local_addr()?.port() } else { port };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(interface, udp_port)).into())?;
    Ok((listener, UdpSocket::from_std(socket.into())))
}

pub(crate) type TimerHandles = Vec<pvloom_core::TimerHandle>;

/// A running Channel Access server. Dropping it closes every client and socket.
pub struct Server {
    runtime: Option<Runtime>,
    handle: RuntimeHandle,
    shared: Arc<ServerShared>,
}

/// A PV defined in code: post new values, read the current one.
#[derive(Clone)]
pub struct PvHandle {
    served: Arc<ServedPv>,
    simple: Arc<SimplePv>,
}

impl PvHandle {
    /// Set a new value and notify subscribers.
    pub fn post(&self, value: Value) {
        let events = self.simple.set(value);
        self.served.post(events);
    }

    /// The current value.
    pub fn value(&self) -> Value {
        self.simple.value()
    }

    /// The PV's name.
    pub fn name(&self) -> &str {
        &self.served.name
    }
}

impl Server {
    /// Configure a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder { io_threads: 2, ..Default::default() }
    }

    /// The TCP port served (the UDP search port too, unless the configured port was
    /// taken by another server and this one listens on an ephemeral TCP port).
    pub fn port(&self) -> u16 {
        self.shared.tcp_port
    }

    /// The runtime under the server.
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.handle
    }

    /// Serve a PV defined in code.
    pub fn add_pv(&self, name: &str, spec: PvSpec) -> PvHandle {
        let simple = Arc::new(SimplePv::new(spec));
        let served = ServedPv::new(name.to_owned(), simple.clone());
        self.shared.registry.insert(served.clone());
        PvHandle { served, simple }
    }

    /// Serve any backend under `name`.
    pub fn add_backend(&self, name: &str, backend: Arc<dyn PvBackend>) -> Arc<ServedPv> {
        let served = ServedPv::new(name.to_owned(), backend);
        self.shared.registry.insert(served.clone());
        served
    }

    /// The served PVs.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.shared.clients()
    }

    /// Stop serving: every client is disconnected.
    pub fn shutdown(&mut self) {
        drop(self.runtime.take());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
