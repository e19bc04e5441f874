//! Name resolution over UDP: searches with libca-like backoff, beacons, and the
//! registration with the CA repeater.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pvloom_core::mio::net::UdpSocket;
use pvloom_core::mio::{Interest, Registry, Token};
use pvloom_core::{IoCtx, IoHandler, Keep};

use super::context::ContextInner;
use super::handle::{HandlerAddress, Marked};
use crate::proto::command::Command;
use crate::proto::constants::{MAX_UDP_RECV, MIN_ROUND_TRIP_ESTIMATE};
use crate::proto::search::{Broadcaster, DatagramEvent, SearchItem};

/// How often the engine looks for searches that are due.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// Servers whose beacons are tracked at most.
const MAX_TRACKED_SERVERS: usize = 4096;
/// Time to wait for the repeater's confirmation before starting one ourselves.
const REPEATER_CONFIRM_WAIT: Duration = Duration::from_millis(500);

pub(crate) struct SearchMarker;
pub(crate) type SearchAddress = HandlerAddress<SearchMarker>;

struct Pending {
    name: String,
    attempt: u32,
    due: Instant,
}

struct BeaconSeen {
    id: u32,
    at: Instant,
    period: Option<Duration>,
}

/// The delay before search attempt `attempt + 1`: doubling from libca's minimum
/// round-trip estimate, capped at `max` — forever, at a decreasing rate.
pub(crate) fn search_delay(attempt: u32, max: Duration) -> Duration {
    MIN_ROUND_TRIP_ESTIMATE.saturating_mul(1u32 << attempt.min(16)).min(max)
}

enum RepeaterLink {
    Unregistered { next_try: Instant, tries: u32 },
    Confirmed,
}

pub(crate) struct SearchHandler {
    address: Arc<SearchAddress>,
    context: Weak<ContextInner>,
    socket: UdpSocket,
    destinations: Vec<SocketAddrV4>,
    broadcaster: Broadcaster,
    pending: HashMap<u32, Pending>,
    beacons: HashMap<SocketAddrV4, BeaconSeen>,
    max_period: Duration,
    repeater_port: u16,
    repeater: RepeaterLink,
    recv_buffer: Vec<u8>,
}

impl Marked for SearchHandler {
    type Marker = SearchMarker;
    fn marker(&self) -> &Arc<SearchMarker> {
        &self.address.marker
    }
}

impl SearchHandler {
    /// Bind the search socket and register the engine on this I/O thread, with its
    /// periodic tick.
    pub(crate) fn open(
        ctx: &mut IoCtx<'_>,
        address: Arc<SearchAddress>,
        context: &Arc<ContextInner>,
    ) -> std::io::Result<()> {
        let socket = UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
        socket.set_broadcast(true)?;
        let handler = SearchHandler {
            address: address.clone(),
            context: Arc::downgrade(context),
            socket,
            destinations: context.config.search_destinations(),
            broadcaster: Broadcaster::new(),
            pending: HashMap::new(),
            beacons: HashMap::new(),
            max_period: context.config.max_search_period,
            repeater_port: context.config.repeater_port,
            repeater: RepeaterLink::Unregistered { next_try: Instant::now(), tries: 0 },
            recv_buffer: vec![0; MAX_UDP_RECV],
        };
        let token = ctx.register(Box::new(handler))?;
        let _ = address.token.set(token);
        ctx.call_every(TICK, move |ctx| {
            ctx.with_handler::<SearchHandler, _>(token, |handler, ctx| ((), handler.tick(ctx)));
        });
        Ok(())
    }

    /// Search `name` now, or, after `failures` failed connections in a row, after
    /// the backoff those failures earned.
    pub(crate) fn add(&mut self, cid: u32, name: String, failures: u32) {
        let delay = if failures == 0 { Duration::ZERO } else { search_delay(failures + 3, self.max_period) };
        self.pending.insert(cid, Pending { name, attempt: failures, due: Instant::now() + delay });
    }

    /// Stop searching `cid` (a name server answered it).
    pub(crate) fn forget(&mut self, cid: u32) {
        self.pending.remove(&cid);
    }

    /// Search every unanswered name once now, keeping their backoff.
    pub(crate) fn retry_now(&mut self) {
        let now = Instant::now();
        for pending in self.pending.values_mut() {
            pending.due = pending.due.min(now);
        }
    }

    /// Search every unanswered name at once and restart their backoff.
    pub(crate) fn search_now(&mut self) {
        let now = Instant::now();
        for pending in self.pending.values_mut() {
            pending.attempt = 0;
            pending.due = now;
        }
    }

    pub(crate) fn unanswered(&self) -> usize {
        self.pending.len()
    }

    fn tick(&mut self, _ctx: &mut IoCtx<'_>) -> Keep {
        let now = Instant::now();
        self.register_with_repeater(now);
        let due: Vec<(u32, String)> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| p.due <= now)
            .map(|(&cid, p)| {
                p.attempt = p.attempt.saturating_add(1);
                p.due = now + search_delay(p.attempt, self.max_period);
                (cid, p.name.clone())
            })
            .collect();
        if due.is_empty() {
            return Keep::Yes;
        }
        if let Some(context) = self.context.upgrade() {
            context.search_name_servers(&due);
        }
        let items = due.iter().map(|(cid, name)| SearchItem { search_id: *cid, name });
        match self.broadcaster.search_datagrams(items, false) {
            Ok(datagrams) => {
                for datagram in &datagrams {
                    for destination in &self.destinations {
                        if let Err(e) = self.socket.send_to(datagram, SocketAddr::V4(*destination))
                            && e.kind() != std::io::ErrorKind::WouldBlock
                        {
                            tracing::debug!(%destination, "search send failed: {e}");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!("cannot encode searches: {err}"),
        }
        Keep::Yes
    }

    fn register_with_repeater(&mut self, now: Instant) {
        let RepeaterLink::Unregistered { next_try, tries } = &mut self.repeater else { return };
        if *next_try > now {
            return;
        }
        if *tries > 0
            && *tries % 2 == 0
            && let Some(context) = self.context.upgrade()
        {
            // Nobody confirmed: start the repeater in this process (if the port is
            // taken, another repeater runs and will confirm the next try).
            context.ensure_repeater();
        }
        *tries += 1;
        *next_try = now + REPEATER_CONFIRM_WAIT;
        let register = Command::RepeaterRegisterRequest { client_address: Ipv4Addr::LOCALHOST };
        if let Ok(bytes) = register.to_bytes() {
            let _ =
                self.socket.send_to(&bytes, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.repeater_port)));
        }
    }

    fn receive(&mut self) -> Keep {
        loop {
            match self.socket.recv_from(&mut self.recv_buffer) {
                Ok((n, SocketAddr::V4(sender))) => {
                    let datagram = Bytes::copy_from_slice(&self.recv_buffer[..n]);
                    match Broadcaster::client_events(datagram, sender) {
                        Ok(events) => self.handle(events),
                        Err(err) => tracing::debug!(%sender, "bad datagram ignored: {err}"),
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ICMP port unreachable and friends surface here; the socket is fine.
                Err(e) => tracing::debug!("search socket: {e}"),
            }
        }
    }

    fn handle(&mut self, events: Vec<DatagramEvent>) {
        let Some(context) = self.context.upgrade() else { return };
        for event in events {
            match event {
                DatagramEvent::Found { search_id, server, version, .. } => {
                    if self.pending.remove(&search_id).is_some() {
                        context.heard_from(server);
                        context.found(search_id, server, version.unwrap_or(0));
                    }
                }
                DatagramEvent::Beacon { server, beacon_id, .. } => {
                    context.heard_from(server);
                    if self.is_anomaly(server, beacon_id) && !self.pending.is_empty() {
                        tracing::debug!(%server, "beacon anomaly: searching unanswered names now");
                        self.search_now();
                    }
                }
                DatagramEvent::RepeaterConfirm { .. } => {
                    if !matches!(self.repeater, RepeaterLink::Confirmed) {
                        tracing::debug!("registered with the CA repeater");
                    }
                    self.repeater = RepeaterLink::Confirmed;
                }
                DatagramEvent::NotFound { .. } => {}
                DatagramEvent::Error { status, message } => {
                    tracing::debug!(status, "search error from a server: {message}")
                }
            }
        }
    }

    /// A beacon anomaly: a server not seen before, a restarted one (its beacon
    /// counter jumped), or beacons suddenly much faster than before (a restart's ramp).
    fn is_anomaly(&mut self, server: SocketAddrV4, id: u32) -> bool {
        let now = Instant::now();
        let anomaly = match self.beacons.get(&server) {
            None => true,
            Some(seen) => {
                let gap = now.saturating_duration_since(seen.at);
                let restarted = id != seen.id.wrapping_add(1);
                let faster = seen.period.is_some_and(|p| gap < p / 3);
                restarted || faster
            }
        };
        let period = self.beacons.get(&server).map(|s| now.saturating_duration_since(s.at));
        if self.beacons.len() >= MAX_TRACKED_SERVERS && !self.beacons.contains_key(&server) {
            // Spoofed beacons from endless addresses must not grow this table: forget
            // servers silent for a minute, or everything if that is not enough.
            self.beacons.retain(|_, seen| now.saturating_duration_since(seen.at) < Duration::from_secs(60));
            if self.beacons.len() >= MAX_TRACKED_SERVERS {
                self.beacons.clear();
            }
        }
        self.beacons.insert(server, BeaconSeen { id, at: now, period });
        anomaly
    }
}

impl IoHandler for SearchHandler {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn ready(&mut self, _ctx: &mut IoCtx<'_>, _token: Token, _event: &pvloom_core::mio::event::Event) -> Keep {
        self.receive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let max = Duration::from_secs(300);
        assert_eq!(search_delay(0, max), Duration::from_millis(32));
        assert_eq!(search_delay(1, max), Duration::from_millis(64));
        assert_eq!(search_delay(5, max), Duration::from_millis(1024));
        assert_eq!(search_delay(40, max), max, "retries forever at the capped rate");
    }
}
