//! The Channel Access repeater: fans UDP datagrams sent to the repeater port (server
//! beacons above all) out to every CA client of this host that registered with it.
//!
//! The repeater exists because a host's kernel delivers a unicast (and on old kernels
//! a broadcast) datagram to only one of the sockets bound to a port: one process
//! binds `EPICS_CA_REPEATER_PORT` (default [`CA_REPEATER_PORT`], 5065) and
//! copies what it receives to the clients, each listening on its own ephemeral port.
//!
//! Layout, as in the rest of pvloom:
//!
//! * [`RepeaterCore`]: the sans-I/O state machine. Bytes in ([`handle_datagram`]),
//!   [`Transmit`]s out. What only the operating system knows (is an address ours? is a
//!   port still bound?) comes from a [`HostProbe`], [`SystemProbe`] by default.
//! * [`spawn_repeater`] / [`spawn_repeater_with`]: a thin driver on a pvloom-core
//!   [`Runtime`] I/O thread, controlled by a [`RepeaterHandle`].
//! * [`run_repeater`]: a runtime of its own, blocking for good (`pvloom ca repeater`).
//!
//! # Behaviour (EPICS base `modules/ca/src/client/repeater.cpp`)
//!
//! * A datagram of at least 16 bytes whose header command is `REPEATER_REGISTER` (24)
//!   registers its sender; so does an **empty** datagram, which is what libca itself
//!   sends (its `udpiiu::repeaterRegistrationMessage` sends the header with length 0).
//!   Only the sender's address and port count; the address in the message is ignored.
//! * A registration is accepted from 127.0.0.1, or from an address the host owns (the
//!   repeater tries to bind a socket to it). Others are ignored, with no answer.
//! * Clients are keyed by UDP port: a second registration from a known port is
//!   confirmed again (to the address first registered) and changes nothing else.
//! * The confirmation is a bare `REPEATER_CONFIRM` (17) header whose `m_available`
//!   holds the client's IPv4 address. After it, every *other* client gets a no-op (an
//!   all-zero `VERSION` header), and a new client triggers the check of all clients.
//! * Everything else is forwarded unchanged to every client except its sender (exact
//!   address and port), with two EPICS rules: a beacon (`RSRV_IS_UP`, 13) whose
//!   `m_available` is 0 gets the sender's address written there, and a datagram that
//!   starts with a registration is forwarded without its first 16 bytes (nothing at
//!   all if that was the whole datagram). Datagrams of 1 to 15 bytes are forwarded too.
//! * A client is gone when its port can be bound again: the check binds a throw-away
//!   socket to `0.0.0.0:port`; `EADDRINUSE` means alive, success means gone.
//!
//! Differences from EPICS base, all on the side of robustness: the client table is
//! bounded ([`RepeaterConfig::max_clients`]); clients are also checked periodically
//! ([`RepeaterConfig::verify_interval`]), not only when another client registers or a
//! send fails; a failing bind test other than "address in use" keeps the client
//! (EPICS drops it, so running out of descriptors would drop everyone); registrations
//! from the repeater's own port are refused; and datagrams go out of the repeater's
//! own socket (like caproto's repeater) rather than one connected socket per client.
//!
//! [`handle_datagram`]: RepeaterCore::handle_datagram
//! [`CA_REPEATER_PORT`]: crate::proto::constants::CA_REPEATER_PORT

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pvloom_core::mio::net::UdpSocket;
use pvloom_core::mio::{Interest, Registry, Token};
use pvloom_core::sync::Event;
use pvloom_core::{IoCtx, IoHandler, Keep, Runtime, RuntimeHandle, TimerId};

use crate::proto::command::code;
use crate::proto::constants::{HEADER_SIZE, MAX_UDP_RECV};
use crate::proto::header::Header;

/// Default bound of the client table.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;

/// Default period of the liveness check of every client.
pub const DEFAULT_VERIFY_INTERVAL: Duration = Duration::from_secs(5);

/// Refused input is logged at most once per this interval (with a count of the rest).
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Datagrams one readiness event reads before yielding to the thread's other sockets.
const RECV_BUDGET: usize = 256;

/// How long [`RepeaterHandle::stop`] waits for the socket to close.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// How long [`spawn_repeater`] waits for the I/O thread to take the socket.
const REGISTER_WAIT: Duration = Duration::from_secs(5);

/// Byte range of the header's `m_available` field (the beacon's server address).
const AVAILABLE: std::ops::Range<usize> = 12..16;

// ---------------------------------------------------------------------------------
// The sans-I/O core
// ---------------------------------------------------------------------------------

/// One datagram the repeater wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddrV4,
    /// The datagram, shared between the copies of one fan-out.
    pub bytes: Bytes,
}

/// What a bind test says about a UDP port of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortStatus {
    /// Some socket holds the port: the client is alive.
    InUse,
    /// The port could be bound: the client is gone.
    Free,
    /// The test failed for another reason; the client is kept.
    Unknown,
}

/// The questions only the operating system can answer, asked by [`RepeaterCore`].
///
/// [`SystemProbe`] answers them with bind tests, as EPICS base does; tests substitute
/// a fake.
pub trait HostProbe: Send {
    /// True if `ip` is an address of this host (registrations from elsewhere are
    /// ignored). 127.0.0.1 is accepted without asking.
    fn is_local_address(&mut self, ip: Ipv4Addr) -> bool;

    /// Whether a socket of this host still has UDP `port` bound.
    fn udp_port_status(&mut self, port: u16) -> PortStatus;
}

/// The real [`HostProbe`]: bind tests with throw-away sockets.
///
/// * `is_local_address(ip)` binds `ip:0`; only an address of this host can be bound
///   (EPICS `register_new_client`).
/// * `udp_port_status(port)` binds `0.0.0.0:port` without `SO_REUSEADDR`, which
///   conflicts with a socket bound to that port on any address (EPICS
///   `repeaterClient::verify`, and caproto's `check_ports_in_use`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl HostProbe for SystemProbe {
    fn is_local_address(&mut self, ip: Ipv4Addr) -> bool {
        StdUdpSocket::bind(SocketAddrV4::new(ip, 0)).is_ok()
    }

    fn udp_port_status(&mut self, port: u16) -> PortStatus {
        match StdUdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
            Ok(_) => PortStatus::Free,
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => PortStatus::InUse,
            Err(err) => {
                tracing::debug!(port, "CA repeater: bind test of a client port failed: {err}");
                PortStatus::Unknown
            }
        }
    }
}

/// Settings of a repeater.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeaterConfig {
    /// Most clients registered at once; further registrations are refused (after a
    /// check that frees the places of clients gone). Default [`DEFAULT_MAX_CLIENTS`].
    pub max_clients: usize,
    /// Period of the driver's liveness check of every client. Default
    /// [`DEFAULT_VERIFY_INTERVAL`]. The core itself has no timers.
    pub verify_interval: Duration,
}

impl Default for RepeaterConfig {
    fn default() -> Self {
        RepeaterConfig { max_clients: DEFAULT_MAX_CLIENTS, verify_interval: DEFAULT_VERIFY_INTERVAL }
    }
}

/// Counters of a [`RepeaterCore`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepeaterStats {
    /// Datagrams handled.
    pub datagrams: u64,
    /// Registrations confirmed (new clients and repeated ones).
    pub registrations: u64,
    /// Registrations refused (foreign address, own port, table full).
    pub refused: u64,
    /// Copies queued for clients (forwarded datagrams and no-ops).
    pub forwarded: u64,
    /// Clients removed because their port was free again or by [`RepeaterCore::remove_client`].
    pub removed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Client {
    addr: SocketAddrV4,
    registered_at: Instant,
}

/// Logs refused input at most once per [`WARN_INTERVAL`].
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// `Some(number of warnings suppressed since the last one)` if this one may be logged.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < WARN_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The repeater's state machine: the client table and the rules of
/// `repeater.cpp`, without sockets (see the [module documentation](self)).
pub struct RepeaterCore {
    config: RepeaterConfig,
    /// Keyed by port, as EPICS matches registrations (`identicalPort`).
    clients: BTreeMap<u16, Client>,
    probe: Box<dyn HostProbe>,
    own_port: Option<u16>,
    warnings: WarnLimiter,
    stats: RepeaterStats,
    /// Bumped whenever the client table changes.
    generation: u64,
}

impl std::fmt::Debug for RepeaterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepeaterCore")
            .field("config", &self.config)
            .field("clients", &self.clients.values().map(|client| client.addr).collect::<Vec<_>>())
            .field("own_port", &self.own_port)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for RepeaterCore {
    fn default() -> Self {
        RepeaterCore::new(RepeaterConfig::default())
    }
}

impl RepeaterCore {
    /// A core that asks the operating system ([`SystemProbe`]).
    pub fn new(config: RepeaterConfig) -> Self {
        RepeaterCore::with_probe(config, SystemProbe)
    }

    /// A core that asks `probe` whether addresses are local and ports still bound.
    pub fn with_probe(config: RepeaterConfig, probe: impl HostProbe + 'static) -> Self {
        RepeaterCore {
            config,
            clients: BTreeMap::new(),
            probe: Box::new(probe),
            own_port: None,
            warnings: WarnLimiter::default(),
            stats: RepeaterStats::default(),
            generation: 0,
        }
    }

    /// The port the repeater itself is bound to: registrations from it are refused,
    /// so the repeater never sends to itself.
    pub fn set_own_port(&mut self, port: Option<u16>) {
        self.own_port = port;
    }

    /// The settings.
    pub fn config(&self) -> &RepeaterConfig {
        &self.config
    }

    /// Handles one datagram received from `from` at `now`; returns what to send: the
    /// confirmation of a registration, the no-ops that follow it, or the copies of a
    /// forwarded datagram. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, datagram: &[u8]) -> Vec<Transmit> {
        self.stats.datagrams += 1;
        let mut out = Vec::new();
        let Some(first) = datagram.first_chunk::<HEADER_SIZE>() else {
            if datagram.is_empty() {
                // The registration of libca (and of clients older than EPICS 3.12).
                self.register(now, from, &mut out);
            } else {
                // Shorter than a header: EPICS forwards it as it is.
                self.fan_out(from, Bytes::copy_from_slice(datagram), &mut out);
            }
            return out;
        };
        let command = u16::from_be_bytes([first[0], first[1]]);
        if command == code::REPEATER_REGISTER {
            self.register(now, from, &mut out);
            // EPICS strips the registration and forwards whatever followed it.
            let rest = &datagram[HEADER_SIZE..];
            if !rest.is_empty() {
                self.fan_out(from, Bytes::copy_from_slice(rest), &mut out);
            }
        } else if command == code::RSRV_IS_UP && first[AVAILABLE] == [0; 4] {
            // A beacon without its server address: the sender's address is the server's.
            let mut patched = BytesMut::from(datagram);
            patched[AVAILABLE].copy_from_slice(&from.ip().octets());
            self.fan_out(from, patched.freeze(), &mut out);
        } else {
            self.fan_out(from, Bytes::copy_from_slice(datagram), &mut out);
        }
        out
    }

    /// The registered clients, by port.
    pub fn clients(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        self.clients.values().map(|client| client.addr)
    }

    /// Number of registered clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// True if `addr` is registered.
    pub fn is_client(&self, addr: SocketAddrV4) -> bool {
        self.clients.get(&addr.port()).is_some_and(|client| client.addr == addr)
    }

    /// Removes the client `addr`; false if it was not registered.
    pub fn remove_client(&mut self, addr: SocketAddrV4) -> bool {
        if !self.is_client(addr) {
            return false;
        }
        self.clients.remove(&addr.port());
        self.stats.removed += 1;
        self.generation += 1;
        true
    }

    /// Checks every client's port and removes the clients whose port is free again
    /// (EPICS `verifyClients`); returns the removed ones.
    pub fn verify_clients(&mut self) -> Vec<SocketAddrV4> {
        let ports: Vec<u16> = self.clients.keys().copied().collect();
        ports.into_iter().filter_map(|port| self.verify_port(port)).collect()
    }

    /// Checks one client, as EPICS does when a send to it fails; true if it stays
    /// registered (false if it was removed or was not registered).
    pub fn verify_client(&mut self, addr: SocketAddrV4) -> bool {
        if !self.is_client(addr) {
            return false;
        }
        self.verify_port(addr.port()).is_none()
    }

    /// Counters since the core was made.
    pub fn stats(&self) -> RepeaterStats {
        self.stats
    }

    /// Removes the client on `port` if its port is free; returns it if so.
    fn verify_port(&mut self, port: u16) -> Option<SocketAddrV4> {
        if self.probe.udp_port_status(port) != PortStatus::Free {
            return None;
        }
        let client = self.clients.remove(&port)?;
        self.stats.removed += 1;
        self.generation += 1;
        tracing::info!(
            client = %client.addr,
            registered_for = ?client.registered_at.elapsed(),
            "CA repeater: client removed (its port is free)"
        );
        Some(client.addr)
    }

    fn register(&mut self, now: Instant, from: SocketAddrV4, out: &mut Vec<Transmit>) {
        if let Some(reason) = self.refusal(from) {
            self.refuse(now, from, reason);
            return;
        }
        let (client, is_new) = match self.clients.get(&from.port()) {
            Some(known) => (known.addr, false),
            None => {
                if self.clients.len() >= self.config.max_clients {
                    // Make room from the clients gone before refusing.
                    self.verify_clients();
                }
                if self.clients.len() >= self.config.max_clients {
                    self.refuse(now, from, "the client table is full");
                    return;
                }
                self.clients.insert(from.port(), Client { addr: from, registered_at: now });
                self.generation += 1;
                tracing::info!(client = %from, clients = self.clients.len(), "CA repeater: client registered");
                (from, true)
            }
        };
        self.stats.registrations += 1;
        out.push(Transmit { to: client, bytes: confirm_bytes(*client.ip()) });
        if is_new {
            // EPICS checks every client when a new one arrives (after its confirmation;
            // ours is already queued, and a client that just sent holds its port).
            self.verify_clients();
        }
        // EPICS sends a no-op to every other client "so that we don't accumulate
        // sockets when there are no beacons" (a dead client fails the send).
        self.fan_out(from, noop_bytes(), out);
    }

    fn refusal(&mut self, from: SocketAddrV4) -> Option<&'static str> {
        if from.port() == 0 {
            return Some("no port to answer to");
        }
        if self.own_port == Some(from.port()) {
            return Some("it comes from the repeater's own port");
        }
        if *from.ip() != Ipv4Addr::LOCALHOST && !self.probe.is_local_address(*from.ip()) {
            return Some("the repeater and its clients must be on the same host");
        }
        None
    }

    fn refuse(&mut self, now: Instant, from: SocketAddrV4, reason: &'static str) {
        self.stats.refused += 1;
        if let Some(suppressed) = self.warnings.allow(now) {
            tracing::warn!(%from, suppressed, "CA repeater: registration refused: {reason}");
        }
    }

    /// Queues `bytes` for every client except `from` (EPICS `fanOut`).
    fn fan_out(&mut self, from: SocketAddrV4, bytes: Bytes, out: &mut Vec<Transmit>) {
        for client in self.clients.values().filter(|client| client.addr != from) {
            out.push(Transmit { to: client.addr, bytes: bytes.clone() });
            self.stats.forwarded += 1;
        }
    }
}

/// `REPEATER_CONFIRM` with the client's address in `m_available`.
fn confirm_bytes(client: Ipv4Addr) -> Bytes {
    header_bytes(Header { command: code::REPEATER_CONFIRM, param2: u32::from(client), ..Header::default() })
}

/// The all-zero `VERSION` header EPICS sends as a no-op.
fn noop_bytes() -> Bytes {
    header_bytes(Header { command: code::VERSION, ..Header::default() })
}

fn header_bytes(header: Header) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_SIZE);
    header.encode(&mut buf);
    buf.freeze()
}

// ---------------------------------------------------------------------------------
// The driver on a pvloom-core runtime
// ---------------------------------------------------------------------------------

/// State shared by the driver (on its I/O thread) and the [`RepeaterHandle`].
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    /// Set once the socket is closed; waited on through pvloom-core's one waiting
    /// mechanism (timeouts, and `WouldDeadlock` on an I/O thread).
    closed: Event,
    client_count: AtomicUsize,
    clients: Mutex<Vec<SocketAddrV4>>,
    token: OnceLock<Token>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn mark_closed(&self) {
        self.closed.set();
    }

    fn is_closed(&self) -> bool {
        self.closed.is_set()
    }

    /// Waits until closed, at most `timeout` (forever if `None`); true if closed.
    ///
    /// # Errors
    /// [`pvloom_core::Error::WouldDeadlock`] at once on an I/O thread.
    fn wait_closed(&self, timeout: Option<Duration>) -> pvloom_core::Result<bool> {
        match timeout {
            None => self.closed.wait().map(|()| true),
            Some(timeout) => self.closed.wait_timeout(timeout),
        }
    }
}

fn send_all(socket: &UdpSocket, core: &mut RepeaterCore, transmits: Vec<Transmit>) {
    for transmit in transmits {
        match socket.send_to(&transmit.bytes, SocketAddr::V4(transmit.to)) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                tracing::debug!(to = %transmit.to, "CA repeater: send buffer full, datagram dropped");
            }
            Err(err) => {
                tracing::debug!(to = %transmit.to, "CA repeater: send failed: {err}");
                // EPICS: a failed send makes the repeater check that client.
                core.verify_client(transmit.to);
            }
        }
    }
}

/// Owns the repeater's socket on its I/O thread.
struct RepeaterDriver {
    /// `None` once closed; dropped before the handle hears of the closure.
    socket: Option<UdpSocket>,
    core: RepeaterCore,
    shared: Arc<Shared>,
    buf: Box<[u8]>,
    token: Option<Token>,
    next_check: Option<TimerId>,
    published: Option<u64>,
}

impl RepeaterDriver {
    /// Reads datagrams until the socket is drained or the budget is spent.
    fn drain(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        if self.shared.stop.load(Ordering::Acquire) {
            return Keep::No;
        }
        let Some(socket) = &self.socket else { return Keep::No };
        for _ in 0..RECV_BUDGET {
            match socket.recv_from(&mut self.buf) {
                Ok((len, SocketAddr::V4(from))) => {
                    let transmits = self.core.handle_datagram(Instant::now(), from, &self.buf[..len]);
                    send_all(socket, &mut self.core, transmits);
                }
                Ok((_, SocketAddr::V6(_))) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.publish();
                    return Keep::Yes;
                }
                // ICMP errors of earlier sends (Linux, Windows), as EPICS ignores them.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
                    ) => {}
                Err(err) => {
                    tracing::warn!("CA repeater: unexpected UDP receive error: {err}");
                    break;
                }
            }
        }
        // Budget spent (or an odd error): go on at the next loop turn, after the other
        // sockets of this thread had theirs. Readiness is edge-triggered, so nobody
        // else would call us back.
        self.publish();
        self.schedule(ctx, Duration::ZERO, RepeaterDriver::drain);
        Keep::Yes
    }

    /// The periodic liveness check.
    fn check(&mut self, ctx: &mut IoCtx<'_>) -> Keep {
        self.next_check = None;
        if self.shared.stop.load(Ordering::Acquire) {
            return Keep::No;
        }
        self.core.verify_clients();
        self.publish();
        self.arm_check(ctx);
        Keep::Yes
    }

    fn arm_check(&mut self, ctx: &mut IoCtx<'_>) {
        let interval = self.core.config().verify_interval;
        self.next_check = self.schedule(ctx, interval, RepeaterDriver::check);
    }

    /// Runs `step` on this driver after `delay`, if it is still registered then.
    ///
    /// A one-shot timer re-armed by each run, rather than `call_every`: a periodic
    /// timer cannot be cancelled from its own run, so it would outlive the driver.
    fn schedule(
        &self,
        ctx: &mut IoCtx<'_>,
        delay: Duration,
        step: fn(&mut RepeaterDriver, &mut IoCtx<'_>) -> Keep,
    ) -> Option<TimerId> {
        let token = self.token?;
        let shared = self.shared.clone();
        Some(ctx.call_later(delay, move |ctx| {
            ctx.with_handler::<RepeaterDriver, _>(token, |driver, ctx| {
                // The token may have been reused by another repeater since.
                if Arc::ptr_eq(&driver.shared, &shared) { ((), step(driver, ctx)) } else { ((), Keep::Yes) }
            });
        }))
    }

    /// Makes the client table visible to the handle.
    fn publish(&mut self) {
        if self.published == Some(self.core.generation) {
            return;
        }
        self.published = Some(self.core.generation);
        self.shared.client_count.store(self.core.client_count(), Ordering::Release);
        *lock(&self.shared.clients) = self.core.clients().collect();
    }
}

impl IoHandler for RepeaterDriver {
    fn ready(&mut self, ctx: &mut IoCtx<'_>, _token: Token, event: &pvloom_core::mio::event::Event) -> Keep {
        if self.shared.stop.load(Ordering::Acquire) {
            return Keep::No;
        }
        if event.is_readable() { self.drain(ctx) } else { Keep::Yes }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.token = Some(token);
        match &mut self.socket {
            Some(socket) => registry.register(socket, token, Interest::READABLE),
            None => Err(io::Error::other("the CA repeater's socket is closed")),
        }
    }

    fn closed(&mut self, ctx: &mut IoCtx<'_>) {
        if let Some(id) = self.next_check.take() {
            ctx.cancel_timer(id);
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = ctx.registry().deregister(&mut socket);
            tracing::info!(addr = ?socket.local_addr().ok(), "CA repeater stopped");
        }
    }
}

impl Drop for RepeaterDriver {
    fn drop(&mut self) {
        // Close the socket first: whoever waits for the closure may bind the port next.
        drop(self.socket.take());
        self.shared.client_count.store(0, Ordering::Release);
        lock(&self.shared.clients).clear();
        self.shared.mark_closed();
    }
}

/// Controls a repeater started by [`spawn_repeater`]; dropping it stops the repeater.
#[derive(Debug)]
pub struct RepeaterHandle {
    runtime: RuntimeHandle,
    thread: usize,
    local_addr: SocketAddrV4,
    shared: Arc<Shared>,
}

impl RepeaterHandle {
    /// The address the repeater's socket is bound to (with the actual port if `0` was
    /// asked for).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// Number of registered clients.
    pub fn client_count(&self) -> usize {
        self.shared.client_count.load(Ordering::Acquire)
    }

    /// The registered clients.
    pub fn clients(&self) -> Vec<SocketAddrV4> {
        lock(&self.shared.clients).clone()
    }

    /// True until the repeater's socket is closed (by [`stop`](Self::stop) or by the
    /// shutdown of its runtime).
    pub fn is_running(&self) -> bool {
        !self.shared.is_closed()
    }

    /// Stops the repeater and, unless called on an I/O thread, waits (up to 2 s) until
    /// its socket is closed, so the port can be bound again. Idempotent.
    pub fn stop(&self) {
        if self.shared.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        let sent = self.runtime.run_on(self.thread, move |ctx| {
            if let Some(&token) = shared.token.get() {
                ctx.with_handler::<RepeaterDriver, _>(token, |driver, _| {
                    let ours = Arc::ptr_eq(&driver.shared, &shared);
                    ((), if ours { Keep::No } else { Keep::Yes })
                });
            }
        });
        // On an I/O thread the wait is refused (`WouldDeadlock`): return at once.
        if sent.is_ok() && matches!(self.shared.wait_closed(Some(STOP_WAIT)), Ok(false)) {
            tracing::warn!(addr = %self.local_addr, "CA repeater: the socket did not close within {STOP_WAIT:?}");
        }
    }

    /// Blocks until the repeater stops (which, for a repeater nobody stops, is never):
    /// [`wait_timeout(None)`](Self::wait_timeout). On an I/O thread, where the wait
    /// would never end, it returns at once (and logs why).
    pub fn wait(&self) {
        if let Err(err) = self.wait_timeout(None) {
            tracing::error!(addr = %self.local_addr, "CA repeater: not waiting: {err}");
        }
    }

    /// Blocks until the repeater stops, at most `timeout` (`None`: however long it
    /// takes); `Ok(true)` once stopped, `Ok(false)` when the timeout ran out.
    ///
    /// # Errors
    /// [`pvloom_core::Error::WouldDeadlock`] at once on an I/O thread (the repeater's
    /// own thread could never close the socket while it waits).
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> pvloom_core::Result<bool> {
        self.shared.wait_closed(timeout)
    }
}

impl Drop for RepeaterHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a repeater on `runtime` with the default [`RepeaterConfig`]; see
/// [`spawn_repeater_with`].
///
/// # Errors
/// As [`spawn_repeater_with`]; notably [`io::ErrorKind::AddrInUse`] when another
/// repeater already holds the port.
pub fn spawn_repeater(runtime: &RuntimeHandle, bind: SocketAddrV4) -> io::Result<RepeaterHandle> {
    spawn_repeater_with(runtime, bind, RepeaterConfig::default())
}

/// Starts a repeater bound to `bind` on an I/O thread of `runtime`.
///
/// The standard repeater binds `0.0.0.0:5065` (`EPICS_CA_REPEATER_PORT`). The socket is
/// bound here, on the calling thread, without `SO_REUSEADDR`, so a port already taken
/// (by another repeater, of EPICS, caproto or pvloom) fails at once with
/// [`io::ErrorKind::AddrInUse`]; that is how a client learns that a repeater runs.
/// Port 0 binds a free port ([`RepeaterHandle::local_addr`] tells which).
///
/// Off an I/O thread this waits until the I/O thread has taken the socket.
///
/// # Errors
/// The bind's error, or the registry's, or `Other` when the runtime is shut down.
pub fn spawn_repeater_with(
    runtime: &RuntimeHandle,
    bind: SocketAddrV4,
    config: RepeaterConfig,
) -> io::Result<RepeaterHandle> {
    let socket = StdUdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let local_addr = match socket.local_addr()? {
        SocketAddr::V4(addr) => addr,
        SocketAddr::V6(addr) => return Err(io::Error::other(format!("bound to an IPv6 address {addr}"))),
    };
    let mut core = RepeaterCore::new(config);
    core.set_own_port(Some(local_addr.port()));
    let shared = Arc::new(Shared::default());
    let driver = RepeaterDriver {
        socket: Some(UdpSocket::from_std(socket)),
        core,
        shared: shared.clone(),
        buf: vec![0; MAX_UDP_RECV].into_boxed_slice(),
        token: None,
        next_check: None,
        published: None,
    };
    let (registered_tx, registered_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    let task_shared = shared.clone();
    let thread = runtime
        .run_on_any(move |ctx| {
            let result = ctx.register(Box::new(driver)).map(|token| {
                let _ = task_shared.token.set(token);
                ctx.with_handler::<RepeaterDriver, _>(token, |driver, ctx| {
                    driver.arm_check(ctx);
                    ((), Keep::Yes)
                });
            });
            if let Err(err) = &result {
                // The driver, dropped by `register`, has closed its socket and told the handle.
                tracing::error!(addr = %local_addr, "CA repeater: registering the socket failed: {err}");
            }
            let _ = registered_tx.send(result);
        })
        .map_err(|err| io::Error::other(format!("CA repeater: {err}")))?;
    // A timeout (a busy runtime) is no failure: the registration is queued.
    if !pvloom_core::is_io_thread()
        && let Ok(Err(err)) = registered_rx.recv_timeout(REGISTER_WAIT)
    {
        return Err(err);
    }
    tracing::info!(addr = %local_addr, "CA repeater listening");
    Ok(RepeaterHandle { runtime: runtime.clone(), thread, local_addr, shared })
}

/// Runs a repeater bound to `bind` on a runtime of its own (one I/O thread) and blocks
/// for as long as it runs: forever, unless its socket fails. For `pvloom ca repeater`.
///
/// # Errors
/// As [`spawn_repeater_with`] ([`io::ErrorKind::AddrInUse`]: a repeater already runs),
/// or `Other` if the repeater stopped.
pub fn run_repeater(bind: SocketAddrV4) -> io::Result<()> {
    let runtime = Runtime::builder().io_threads(1).name("ca-repeater").build()?;
    let handle = spawn_repeater(&runtime, bind)?;
    handle.wait();
    Err(io::Error::other("the CA repeater stopped"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::proto::{Command, Role, decode_datagram};

    /// A host whose local addresses and bound ports the test decides.
    #[derive(Clone, Default)]
    struct FakeHost(Arc<Mutex<FakeState>>);

    #[derive(Default)]
    struct FakeState {
        local: HashSet<Ipv4Addr>,
        bound: HashSet<u16>,
        probes: usize,
    }

    impl FakeHost {
        fn bind(&self, port: u16) {
            lock(&self.0).bound.insert(port);
        }
        fn unbind(&self, port: u16) {
            lock(&self.0).bound.remove(&port);
        }
        fn add_local(&self, ip: Ipv4Addr) {
            lock(&self.0).local.insert(ip);
        }
        fn probes(&self) -> usize {
            lock(&self.0).probes
        }
    }

    impl HostProbe for FakeHost {
        fn is_local_address(&mut self, ip: Ipv4Addr) -> bool {
            lock(&self.0).local.contains(&ip)
        }
        fn udp_port_status(&mut self, port: u16) -> PortStatus {
            let mut state = lock(&self.0);
            state.probes += 1;
            if state.bound.contains(&port) { PortStatus::InUse } else { PortStatus::Free }
        }
    }

    fn core_with(max_clients: usize) -> (RepeaterCore, FakeHost) {
        let host = FakeHost::default();
        let config = RepeaterConfig { max_clients, ..RepeaterConfig::default() };
        (RepeaterCore::with_probe(config, host.clone()), host)
    }

    fn local(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
    }

    fn register_bytes() -> Vec<u8> {
        Command::RepeaterRegisterRequest { client_address: Ipv4Addr::UNSPECIFIED }.to_bytes().unwrap().to_vec()
    }

    fn beacon(address: Option<Ipv4Addr>) -> Vec<u8> {
        Command::Beacon { version: 13, server_port: 5064, beacon_id: 7, address }.to_bytes().unwrap().to_vec()
    }

    /// Registers a bound client on `port` and returns the repeater's answer.
    fn register(core: &mut RepeaterCore, host: &FakeHost, port: u16) -> Vec<Transmit> {
        host.bind(port);
        core.handle_datagram(Instant::now(), local(port), &register_bytes())
    }

    #[test]
    fn registration_is_confirmed_with_the_exact_bytes() {
        let (mut core, host) = core_with(8);
        let out = register(&mut core, &host, 40000);
        let expected = [0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1];
        assert_eq!(out, vec![Transmit { to: local(40000), bytes: Bytes::copy_from_slice(&expected) }]);
        let codec = Command::RepeaterConfirmResponse { repeater_address: Ipv4Addr::LOCALHOST }.to_bytes().unwrap();
        assert_eq!(out[0].bytes, codec);
        let decoded = decode_datagram(out[0].bytes.clone(), Role::Client).unwrap();
        assert_eq!(decoded, vec![Command::RepeaterConfirmResponse { repeater_address: Ipv4Addr::LOCALHOST }]);
        assert_eq!(core.clients().collect::<Vec<_>>(), vec![local(40000)]);
    }

    #[test]
    fn an_empty_datagram_registers_like_libca_does() {
        let (mut core, host) = core_with(8);
        host.bind(40001);
        let out = core.handle_datagram(Instant::now(), local(40001), &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes[..2], [0, 17]);
        assert_eq!(core.client_count(), 1);
    }

    #[test]
    fn a_new_client_makes_the_others_receive_a_noop() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        let out = register(&mut core, &host, 40001);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].to, local(40001));
        assert_eq!(out[1], Transmit { to: local(40000), bytes: Bytes::from_static(&[0; 16]) });
        let noop = decode_datagram(out[1].bytes.clone(), Role::Client).unwrap();
        assert!(matches!(noop[..], [Command::DatagramVersion { version: 0, sequence: None }]));
    }

    #[test]
    fn re_registration_is_confirmed_again_and_changes_nothing() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        register(&mut core, &host, 40001);
        let probes = host.probes();
        let out = register(&mut core, &host, 40000);
        assert_eq!(out[0].to, local(40000));
        assert_eq!(out[0].bytes[..2], [0, 17]);
        assert_eq!(core.client_count(), 2);
        assert_eq!(host.probes(), probes, "only a new client triggers the check of all clients");
        assert_eq!(core.stats().registrations, 3);
    }

    #[test]
    fn a_known_port_from_another_local_address_is_the_same_client() {
        let (mut core, host) = core_with(8);
        let lan = Ipv4Addr::new(192, 0, 2, 2);
        host.add_local(lan);
        register(&mut core, &host, 40000);
        let out = core.handle_datagram(Instant::now(), SocketAddrV4::new(lan, 40000), &register_bytes());
        // EPICS answers the client as first registered.
        assert_eq!(out[0], Transmit { to: local(40000), bytes: confirm_bytes(Ipv4Addr::LOCALHOST) });
        assert_eq!(core.clients().collect::<Vec<_>>(), vec![local(40000)]);
    }

    #[test]
    fn beacons_go_to_every_client_but_the_sender_unchanged() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        register(&mut core, &host, 40001);
        let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 33333);
        let beacon = beacon(Some(Ipv4Addr::new(10, 0, 0, 5)));
        let out = core.handle_datagram(Instant::now(), server, &beacon);
        let mut targets: Vec<_> = out.iter().map(|t| t.to).collect();
        targets.sort();
        assert_eq!(targets, vec![local(40000), local(40001)]);
        assert!(out.iter().all(|t| t.bytes[..] == beacon[..]));

        // From a client: everybody else gets it, not the sender.
        let out = core.handle_datagram(Instant::now(), local(40000), &beacon);
        assert_eq!(out.iter().map(|t| t.to).collect::<Vec<_>>(), vec![local(40001)]);
    }

    #[test]
    fn a_beacon_without_address_gets_the_senders() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 33333);
        let out = core.handle_datagram(Instant::now(), server, &beacon(None));
        assert_eq!(out[0].bytes[..], beacon(Some(Ipv4Addr::new(10, 0, 0, 5)))[..]);
        let decoded = decode_datagram(out[0].bytes.clone(), Role::Client).unwrap();
        assert!(matches!(decoded[..], [Command::Beacon { address: Some(ip), .. }] if ip == Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[test]
    fn anything_else_is_forwarded_byte_for_byte() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        let sender = local(50000);
        for datagram in [vec![1u8], vec![0xff; 15], vec![0xab; 16], vec![7; 1000]] {
            let out = core.handle_datagram(Instant::now(), sender, &datagram);
            assert_eq!(out, vec![Transmit { to: local(40000), bytes: Bytes::from(datagram) }]);
        }
    }

    #[test]
    fn what_follows_a_registration_is_forwarded_without_it() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        host.bind(40001);
        let mut datagram = register_bytes();
        datagram.extend_from_slice(&beacon(Some(Ipv4Addr::LOCALHOST)));
        let out = core.handle_datagram(Instant::now(), local(40001), &datagram);
        // confirm to 40001, noop to 40000, the rest to 40000.
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].to, local(40001));
        assert_eq!(out[2], Transmit { to: local(40000), bytes: Bytes::from(beacon(Some(Ipv4Addr::LOCALHOST))) });
    }

    #[test]
    fn foreign_and_own_port_registrations_are_refused() {
        let (mut core, host) = core_with(8);
        core.set_own_port(Some(5065));
        let foreign = SocketAddrV4::new(Ipv4Addr::new(10, 9, 8, 7), 40000);
        assert!(core.handle_datagram(Instant::now(), foreign, &register_bytes()).is_empty());
        host.bind(5065);
        assert!(core.handle_datagram(Instant::now(), local(5065), &register_bytes()).is_empty());
        assert!(core.handle_datagram(Instant::now(), local(0), &[]).is_empty());
        assert_eq!(core.client_count(), 0);
        assert_eq!(core.stats().refused, 3);
        // An address of this host other than loopback is accepted.
        let lan = Ipv4Addr::new(192, 0, 2, 2);
        host.add_local(lan);
        host.bind(40000);
        assert_eq!(core.handle_datagram(Instant::now(), SocketAddrV4::new(lan, 40000), &register_bytes()).len(), 1);
    }

    #[test]
    fn clients_whose_port_is_free_are_removed() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        register(&mut core, &host, 40001);
        host.unbind(40000);
        assert_eq!(core.verify_clients(), vec![local(40000)]);
        assert_eq!(core.clients().collect::<Vec<_>>(), vec![local(40001)]);
        assert!(core.verify_client(local(40001)));
        host.unbind(40001);
        assert!(!core.verify_client(local(40001)));
        assert_eq!(core.client_count(), 0);
        assert_eq!(core.stats().removed, 2);
    }

    #[test]
    fn a_new_client_triggers_the_check_of_the_others() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        host.unbind(40000);
        let out = register(&mut core, &host, 40001);
        assert_eq!(out.len(), 1, "the dead client gets no no-op");
        assert_eq!(core.clients().collect::<Vec<_>>(), vec![local(40001)]);
    }

    #[test]
    fn remove_client_needs_the_exact_address() {
        let (mut core, host) = core_with(8);
        register(&mut core, &host, 40000);
        assert!(!core.remove_client(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 40000)));
        assert!(core.remove_client(local(40000)));
        assert!(!core.remove_client(local(40000)));
    }

    #[test]
    fn the_client_table_is_bounded() {
        let (mut core, host) = core_with(3);
        for port in 40000..40003 {
            assert_eq!(register(&mut core, &host, port)[0].bytes[..2], [0, 17]);
        }
        assert!(register(&mut core, &host, 40003).is_empty(), "a fourth client is refused");
        assert_eq!(core.client_count(), 3);
        assert_eq!(core.stats().refused, 1);
        // Known clients are still confirmed, and a place frees up when a client leaves.
        assert_eq!(register(&mut core, &host, 40001).len(), 3);
        host.unbind(40000);
        assert_eq!(register(&mut core, &host, 40003)[0].to, local(40003));
        assert_eq!(core.client_count(), 3);
        assert!(!core.is_client(local(40000)));
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut limiter = WarnLimiter::default();
        let start = Instant::now();
        assert_eq!(limiter.allow(start), Some(0));
        assert_eq!(limiter.allow(start + Duration::from_secs(1)), None);
        assert_eq!(limiter.allow(start + Duration::from_secs(2)), None);
        assert_eq!(limiter.allow(start + WARN_INTERVAL), Some(2));
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic_nor_reach_their_sender(
            datagrams in prop::collection::vec(
                (0u8..4, 1u16..6, prop::collection::vec(any::<u8>(), 0..64)),
                1..40,
            ),
        ) {
            let (mut core, host) = core_with(3);
            for port in 1..6 {
                host.bind(port);
            }
            let lan = Ipv4Addr::new(192, 0, 2, 2);
            host.add_local(lan);
            for (kind, port, mut bytes) in datagrams {
                let ip = [Ipv4Addr::LOCALHOST, lan, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
                    [usize::from(kind)];
                if kind == 0 && bytes.len() >= 2 {
                    // Make registrations frequent.
                    bytes[..2].copy_from_slice(&code::REPEATER_REGISTER.to_be_bytes());
                }
                let from = SocketAddrV4::new(ip, port);
                let out = core.handle_datagram(Instant::now(), from, &bytes);
                prop_assert!(core.client_count() <= 3);
                for transmit in &out {
                    prop_assert!(transmit.to != from || transmit.bytes[..2] == [0, 17]);
                    prop_assert!(transmit.bytes.len() <= bytes.len().max(HEADER_SIZE));
                }
            }
        }
    }
}
