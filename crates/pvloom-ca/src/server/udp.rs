//! The UDP side of the server: answering searches and sending beacons.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pvloom_core::mio::net::UdpSocket;
use pvloom_core::mio::{Interest, Registry, Token};
use pvloom_core::{IoCtx, IoHandler, Keep};

use super::ServerShared;
use crate::proto::command::{Command, Role};
use crate::proto::constants::MAX_UDP_RECV;
use crate::proto::decode_datagram;
use crate::proto::search::Broadcaster;

/// First beacon interval; it doubles up to the beacon period (rsrv's ramp).
const FIRST_BEACON: Duration = Duration::from_millis(20);

pub(crate) struct SearchResponder {
    pub(crate) socket: UdpSocket,
    pub(crate) shared: Arc<ServerShared>,
    pub(crate) broadcaster: Broadcaster,
    pub(crate) buffer: Vec<u8>,
}

impl SearchResponder {
    pub(crate) fn new(socket: UdpSocket, shared: Arc<ServerShared>) -> Self {
        SearchResponder { socket, shared, broadcaster: Broadcaster::new(), buffer: vec![0; MAX_UDP_RECV] }
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
                Command::SearchRequest { name, search_id, .. } if self.shared.registry.contains(&name) => {
                    found.push(search_id);
                }
                _ => {}
            }
        }
        if found.is_empty() {
            return;
        }
        match self.broadcaster.search_reply_datagrams(sequence, self.shared.tcp_port, &found) {
            Ok(replies) => {
                for reply in replies {
                    let _ = self.socket.send_to(&reply, from);
                }
            }
            Err(err) => tracing::warn!("cannot encode search replies: {err}"),
        }
    }

    /// Send one beacon to every beacon destination.
    pub(crate) fn beacon(&mut self) {
        let Ok(beacon) = self.broadcaster.beacon(self.shared.tcp_port, None) else { return };
        for destination in &self.shared.config.beacon_destinations {
            let _ = self.socket.send_to(&beacon, SocketAddr::V4(*destination));
        }
    }
}

/// Schedule the beacon ramp on the responder registered under `token`.
pub(crate) fn start_beacons(ctx: &mut IoCtx<'_>, token: Token, period: Duration) {
    fn next(ctx: &mut IoCtx<'_>, token: Token, interval: Duration, period: Duration) {
        ctx.call_later(interval, move |ctx| {
            let alive = ctx.with_handler::<SearchResponder, _>(token, |responder, _| {
                responder.beacon();
                (true, Keep::Yes)
            });
            if alive == Some(true) {
                next(ctx, token, (interval * 2).min(period), period);
            }
        });
    }
    next(ctx, token, FIRST_BEACON, period.max(FIRST_BEACON));
}

impl IoHandler for SearchResponder {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn ready(&mut self, _ctx: &mut IoCtx<'_>, _: Token, _: &pvloom_core::mio::event::Event) -> Keep {
        // Edge-triggered: read until the socket is empty, or datagrams would wait.
        let mut errors = 0;
        loop {
            match self.socket.recv_from(&mut self.buffer) {
                Ok((n, from)) => {
                    let datagram = self.buffer[..n].to_vec();
                    self.answer(&datagram, from);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Keep::Yes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors surface here once each; a socket that keeps failing
                    // is given up on for this event rather than spun on.
                    tracing::debug!("search socket: {e}");
                    errors += 1;
                    if errors > 64 {
                        return Keep::Yes;
                    }
                }
            }
        }
    }
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
