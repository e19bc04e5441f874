//! The UDP side of the server: answering searches and sending beacons, as a sans-I/O
//! [`SearchResponder`] run by pvloom-core's datagram driver.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pvloom_core::IoCtx;
use pvloom_core::driver::DatagramApp;
use pvloom_core::endpoint::{Datagram, DatagramEndpoint};

use super::ServerShared;
use crate::proto::command::{Command, Role};
use crate::proto::decode_datagram;
use crate::proto::search::Broadcaster;

/// First beacon interval; it doubles up to the beacon period (rsrv's ramp).
pub const FIRST_BEACON: Duration = Duration::from_millis(20);

/// Whether the server has a PV of that name.
pub type HasName = Box<dyn Fn(&str) -> bool + Send>;

/// The sans-I/O search responder and beacon sender of one server.
pub struct SearchResponder {
    tcp_port: u16,
    has_name: HasName,
    broadcaster: Broadcaster,
    beacon_destinations: Vec<SocketAddrV4>,
    beacon_period: Duration,
    beacon_interval: Duration,
    next_beacon: Instant,
    out: VecDeque<Datagram>,
}

impl SearchResponder {
    /// A responder for a server on `tcp_port`; the beacon ramp starts at `now`.
    pub fn new(
        now: Instant,
        tcp_port: u16,
        beacon_destinations: Vec<SocketAddrV4>,
        beacon_period: Duration,
        has_name: HasName,
    ) -> Self {
        SearchResponder {
            tcp_port,
            has_name,
            broadcaster: Broadcaster::new(),
            beacon_destinations,
            beacon_period: beacon_period.max(FIRST_BEACON),
            beacon_interval: FIRST_BEACON,
            // As rsrv: the first beacon goes out as the server starts.
            next_beacon: now,
            out: VecDeque::new(),
        }
    }

    fn answer(&mut self, datagram: &[u8], from: SocketAddr) {
        let commands = match decode_datagram(Bytes::copy_from_slice(datagram), Role::Server) {
            Ok(commands) => commands,
            Err(err) => {
                tracing::debug!(%from, "bad search datagram ignored: {err}");
                return;
            }
        };
        let mut sequence = None;
        let mut found = Vec::new();
        for command in commands {
            match command {
                Command::DatagramVersion { sequence: s, .. } => sequence = s,
                // A name this server lacks gets no reply, even with DO_REPLY: other servers
                // may have it, and rsrv's search_reply_udp stays silent too.
                Command::SearchRequest { name, search_id, .. } if (self.has_name)(&name) => {
                    found.push(search_id);
                }
                _ => {}
            }
        }
        if found.is_empty() {
            return;
        }
        match self.broadcaster.search_reply_datagrams(sequence, self.tcp_port, &found) {
            Ok(replies) => self.out.extend(replies.into_iter().map(|data| Datagram { to: from, data })),
            Err(err) => tracing::warn!("cannot encode search replies: {err}"),
        }
    }

    fn beacon(&mut self) {
        let Ok(beacon) = self.broadcaster.beacon(self.tcp_port, None) else { return };
        for destination in &self.beacon_destinations {
            self.out.push_back(Datagram { to: SocketAddr::V4(*destination), data: beacon.clone() });
        }
    }
}

impl DatagramEndpoint for SearchResponder {
    type Event = ();

    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, data: &[u8]) {
        self.answer(data, from);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_beacon {
            return;
        }
        self.beacon();
        let interval = self.beacon_interval;
        self.beacon_interval = (interval * 2).min(self.beacon_period);
        // Keep the cadence, but after a stall never two beacons at once: clients would
        // take the short gap for a restart.
        self.next_beacon = (self.next_beacon + interval).max(now + interval);
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Datagram> {
        self.out.pop_front()
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.beacon_destinations.is_empty()).then_some(self.next_beacon)
    }
}

/// The server's search socket: the responder, driven.
pub(crate) struct SearchSocket {
    pub(crate) responder: SearchResponder,
}

impl SearchSocket {
    pub(crate) fn new(now: Instant, shared: Arc<ServerShared>) -> Self {
        let config = &shared.config;
        let (destinations, period, port) = (config.beacon_destinations.clone(), config.beacon_period, shared.tcp_port);
        let has_name: HasName = Box::new(move |name| shared.registry.contains(name));
        SearchSocket { responder: SearchResponder::new(now, port, destinations, period, has_name) }
    }
}

impl DatagramApp for SearchSocket {
    type Endpoint = SearchResponder;

    fn endpoint(&mut self) -> &mut SearchResponder {
        &mut self.responder
    }

    fn on_event(&mut self, (): (), _ctx: &mut IoCtx<'_>) {}
}

/// Beacon destinations as configured (`addr:port`).
pub(crate) fn parse_destinations(list: &str, port: u16) -> Vec<SocketAddrV4> {
    list.split_whitespace()
        .filter_map(|entry| match entry.rsplit_once(':') {
            Some((host, p)) => Some(SocketAddrV4::new(host.parse().ok()?, p.parse().ok()?)),
            None => Some(SocketAddrV4::new(entry.parse().ok()?, port)),
        })
        .collect()
}
