//! Endpoints wired together in memory and stepped on virtual time (quinn-proto's
//! `Pair`): protocol timing — backoff, keepalive, deadlines, flow control — is tested
//! in microseconds of real time, with no sockets and no sleeps.
//!
//! Enabled by the `harness` feature (protocol crates take it as a dev-dependency).
//!
//! ```
//! # use std::time::{Duration, Instant};
//! # use pvloom_core::bytes::BytesMut;
//! # use pvloom_core::endpoint::{CloseReason, StreamEndpoint};
//! # use pvloom_core::harness::StreamPair;
//! /// Says "ping" every second; the peer echoes.
//! struct Pinger { next: Option<Instant>, out: Vec<u8>, heard: Vec<Vec<u8>> }
//! impl StreamEndpoint for Pinger {
//!     type Event = Vec<u8>;
//!     fn handle_connected(&mut self, now: Instant) { self.next = Some(now + Duration::from_secs(1)); }
//!     fn handle_input(&mut self, _: Instant, data: &[u8]) { self.heard.push(data.to_vec()); }
//!     fn handle_timeout(&mut self, now: Instant) {
//!         if self.next.is_some_and(|at| now >= at) {
//!             self.out.extend_from_slice(b"ping");
//!             self.next = Some(now + Duration::from_secs(1));
//!         }
//!     }
//!     fn poll_transmit(&mut self, _: Instant, _: usize, out: &mut BytesMut) { out.extend_from_slice(&self.out); self.out.clear(); }
//!     fn poll_event(&mut self) -> Option<Vec<u8>> { self.heard.pop() }
//!     fn poll_timeout(&self) -> Option<Instant> { self.next }
//!     fn poll_close(&mut self) -> Option<CloseReason> { None }
//! }
//! let pinger = || Pinger { next: None, out: Vec::new(), heard: Vec::new() };
//! let mut pair = StreamPair::new(pinger(), pinger());
//! pair.advance(Duration::from_millis(3500));
//! assert_eq!(pair.server_events.len(), 3, "three pings in 3.5 virtual seconds");
//! ```

use std::any::Any;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use crate::endpoint::{CloseReason, DatagramEndpoint, StreamEndpoint};

/// Bytes one side may have in flight unread, by default (a socket buffer's worth).
pub const DEFAULT_WINDOW: usize = 256 * 1024;

/// A bound on the steps of one `drive`, so a protocol that ping-pongs forever
/// fails its test instead of hanging it.
const MAX_STEPS: usize = 100_000;

/// Which side of a [`StreamPair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connecting side.
    Client,
    /// The accepting side.
    Server,
}

/// A client and a server endpoint joined by an in-memory connection.
pub struct StreamPair<C: StreamEndpoint, S: StreamEndpoint> {
    now: Instant,
    /// The client endpoint.
    pub client: C,
    /// The server endpoint.
    pub server: S,
    /// Events the client emitted, oldest first.
    pub client_events: VecDeque<C::Event>,
    /// Events the server emitted, oldest first.
    pub server_events: VecDeque<S::Event>,
    to_server: BytesMut,
    to_client: BytesMut,
    /// Bytes in flight towards a side before its peer's transmit room is zero.
    pub window: usize,
    /// While false the server reads nothing (a stalled peer).
    pub server_reads: bool,
    /// While false the client reads nothing.
    pub client_reads: bool,
    closed: Option<(Side, CloseReason)>,
    /// Bytes the client sent / the server sent, in all.
    pub bytes_sent: (u64, u64),
}

impl<C: StreamEndpoint, S: StreamEndpoint> StreamPair<C, S> {
    /// Connect the two now (both see `handle_connected`), then drive.
    pub fn new(client: C, server: S) -> Self {
        let now = Instant::now();
        let mut pair = StreamPair {
            now,
            client,
            server,
            client_events: VecDeque::new(),
            server_events: VecDeque::new(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            window: DEFAULT_WINDOW,
            server_reads: true,
            client_reads: true,
            closed: None,
            bytes_sent: (0, 0),
        };
        pair.client.handle_connected(now);
        pair.server.handle_connected(now);
        pair.drive();
        pair
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Who closed, and why, once the connection is closed.
    pub fn closed(&self) -> Option<&(Side, CloseReason)> {
        self.closed.as_ref()
    }

    /// Move bytes and events until nothing changes.
    pub fn drive(&mut self) {
        for _ in 0..MAX_STEPS {
            if !self.step() {
                return;
            }
        }
        panic!("endpoints still busy after {MAX_STEPS} steps: a protocol loop without time passing");
    }

    fn step(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let now = self.now;
        let mut progress = false;
        while let Some(event) = self.client.poll_event() {
            self.client_events.push_back(event);
            progress = true;
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push_back(event);
            progress = true;
        }
        if let Some(reason) = self.client.poll_close() {
            self.close(Side::Client, reason);
            return false;
        }
        if let Some(reason) = self.server.poll_close() {
            self.close(Side::Server, reason);
            return false;
        }
        let before = self.to_server.len();
        self.client.poll_transmit(now, self.window.saturating_sub(before), &mut self.to_server);
        self.bytes_sent.0 += (self.to_server.len() - before) as u64;
        progress |= self.to_server.len() != before;
        let before = self.to_client.len();
        self.server.poll_transmit(now, self.window.saturating_sub(before), &mut self.to_client);
        self.bytes_sent.1 += (self.to_client.len() - before) as u64;
        progress |= self.to_client.len() != before;
        if self.server_reads && self.server.wants_input() && !self.to_server.is_empty() {
            let data = self.to_server.split();
            self.server.handle_input(now, &data);
            progress = true;
        }
        if self.client_reads && self.client.wants_input() && !self.to_client.is_empty() {
            let data = self.to_client.split();
            self.client.handle_input(now, &data);
            progress = true;
        }
        progress
    }

    /// Feed raw bytes to the server as if the client had sent them (a scripted or
    /// misbehaving peer), then drive.
    pub fn inject_to_server(&mut self, data: &[u8]) {
        self.server.handle_input(self.now, data);
        self.drive();
    }

    /// Feed raw bytes to the client as if the server had sent them, then drive.
    pub fn inject_to_client(&mut self, data: &[u8]) {
        self.client.handle_input(self.now, data);
        self.drive();
    }

    /// Drop the bytes in flight towards the client (lost with a dead peer).
    pub fn discard_to_client(&mut self) {
        self.to_client.advance(self.to_client.len());
    }

    fn close(&mut self, by: Side, reason: CloseReason) {
        let now = self.now;
        match by {
            Side::Client => {
                self.client.handle_closed(now, &reason);
                self.server.handle_closed(now, &CloseReason::PeerClosed);
            }
            Side::Server => {
                self.server.handle_closed(now, &reason);
                self.client.handle_closed(now, &CloseReason::PeerClosed);
            }
        }
        while let Some(event) = self.client.poll_event() {
            self.client_events.push_back(event);
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push_back(event);
        }
        self.closed = Some((by, reason));
    }

    /// The earlier of the two endpoints' deadlines.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        match (self.client.poll_timeout(), self.server.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Jump to the next deadline, fire it, drive; `None` when no timer is armed.
    pub fn advance_to_next_timeout(&mut self) -> Option<Instant> {
        let at = self.next_timeout()?;
        self.fire_at(at);
        Some(at)
    }

    /// Let `by` of virtual time pass, firing every deadline on the way in order.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..MAX_STEPS {
            match self.next_timeout() {
                Some(at) if at <= target => self.fire_at(at),
                _ => {
                    self.now = self.now.max(target);
                    self.drive();
                    return;
                }
            }
        }
        panic!("still due after {MAX_STEPS} timeouts: an endpoint whose deadline does not move");
    }

    fn fire_at(&mut self, at: Instant) {
        self.now = self.now.max(at);
        let now = self.now;
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        self.drive();
    }
}

/// A node of a [`DatagramNet`], with the events it emitted.
struct Node<E: DatagramEndpoint> {
    endpoint: E,
    events: VecDeque<E::Event>,
}

trait AnyNode: Any {
    fn deliver(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    fn transmit(&mut self, now: Instant) -> Option<crate::endpoint::Datagram>;
    fn collect(&mut self) -> bool;
    fn timeout(&self) -> Option<Instant>;
    fn fire(&mut self, now: Instant);
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<E: DatagramEndpoint> AnyNode for Node<E> {
    fn deliver(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.endpoint.handle_datagram(now, from, data);
    }
    fn transmit(&mut self, now: Instant) -> Option<crate::endpoint::Datagram> {
        self.endpoint.poll_transmit(now)
    }
    fn collect(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.endpoint.poll_event() {
            self.events.push_back(event);
            any = true;
        }
        any
    }
    fn timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }
    fn fire(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// Datagram endpoints of any types on one virtual network: a datagram goes to the
/// node bound at its destination, or to every other node on that port when the
/// destination is a broadcast address; anything else is lost (and counted).
pub struct DatagramNet {
    now: Instant,
    nodes: Vec<(SocketAddr, Box<dyn AnyNode>)>,
    /// Datagrams sent to an address no node holds.
    pub lost: u64,
    /// Datagrams delivered, in all.
    pub delivered: u64,
    /// Every datagram sent: (when, from, to, size).
    pub log: Vec<(Instant, SocketAddr, SocketAddr, usize)>,
}

impl Default for DatagramNet {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramNet {
    /// An empty network at virtual now.
    pub fn new() -> Self {
        DatagramNet { now: Instant::now(), nodes: Vec::new(), lost: 0, delivered: 0, log: Vec::new() }
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Put `endpoint` at `addr`.
    pub fn add<E: DatagramEndpoint>(&mut self, addr: SocketAddr, endpoint: E) {
        self.nodes.push((addr, Box::new(Node { endpoint, events: VecDeque::new() })));
    }

    /// Remove the node at `addr` (a server that went away); its datagrams are lost.
    pub fn remove(&mut self, addr: SocketAddr) {
        self.nodes.retain(|(a, _)| *a != addr);
    }

    fn node<E: DatagramEndpoint>(&mut self, addr: SocketAddr) -> &mut Node<E> {
        let (_, node) = self.nodes.iter_mut().find(|(a, _)| *a == addr).expect("no node at that address");
        node.as_any().downcast_mut::<Node<E>>().expect("the node at that address is of another type")
    }

    /// The endpoint at `addr`, to call directly (then [`drive`](Self::drive)).
    pub fn endpoint<E: DatagramEndpoint>(&mut self, addr: SocketAddr) -> &mut E {
        &mut self.node::<E>(addr).endpoint
    }

    /// The events the endpoint at `addr` emitted so far (taken).
    pub fn take_events<E: DatagramEndpoint>(&mut self, addr: SocketAddr) -> Vec<E::Event> {
        self.node::<E>(addr).events.drain(..).collect()
    }

    /// Deliver `data` to the node at `to` as if `from` (a scripted or absent peer) had
    /// sent it now, then drive.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let now = self.now;
        if let Some((_, node)) = self.nodes.iter_mut().find(|(a, _)| *a == to) {
            node.deliver(now, from, data);
            self.delivered += 1;
        } else {
            self.lost += 1;
        }
        self.drive();
    }

    /// Deliver datagrams and collect events until nothing moves.
    pub fn drive(&mut self) {
        for _ in 0..MAX_STEPS {
            let mut progress = false;
            let mut in_flight = Vec::new();
            for (addr, node) in &mut self.nodes {
                progress |= node.collect();
                while let Some(datagram) = node.transmit(self.now) {
                    in_flight.push((*addr, datagram));
                }
            }
            for (from, datagram) in in_flight {
                progress = true;
                self.log.push((self.now, from, datagram.to, datagram.data.len()));
                let broadcast = is_broadcast(datagram.to);
                let mut reached = false;
                for (addr, node) in &mut self.nodes {
                    let hit = if broadcast {
                        addr.port() == datagram.to.port() && *addr != from
                    } else {
                        *addr == datagram.to
                    };
                    if hit {
                        node.deliver(self.now, from, &datagram.data);
                        self.delivered += 1;
                        reached = true;
                    }
                }
                if !reached {
                    self.lost += 1;
                }
            }
            if !progress {
                return;
            }
        }
        panic!("datagram endpoints still busy after {MAX_STEPS} steps");
    }

    /// The earliest deadline of any node.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.nodes.iter().filter_map(|(_, node)| node.timeout()).min()
    }

    /// Let `by` of virtual time pass, firing every deadline in order.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..MAX_STEPS {
            let Some(at) = self.next_timeout().filter(|at| *at <= target) else {
                self.now = self.now.max(target);
                self.drive();
                return;
            };
            self.now = self.now.max(at);
            let now = self.now;
            for (_, node) in &mut self.nodes {
                if node.timeout().is_some_and(|t| t <= now) {
                    node.fire(now);
                }
            }
            self.drive();
        }
        panic!("still due after {MAX_STEPS} timeouts: an endpoint whose deadline does not move");
    }
}

fn is_broadcast(addr: SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(v4) => v4.ip().is_broadcast() || v4.ip().octets()[3] == 255,
        SocketAddr::V6(_) => false,
    }
}
