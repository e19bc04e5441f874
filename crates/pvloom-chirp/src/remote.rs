//! The remotes a node knows, sans-I/O: which connection serves each, when a remote
//! may be connected again after a failure, and when an idle one is forgotten.
//!
//! A remote is keyed by (family, address, port), the port being the one the remote
//! announced in its handshake (where it listens), so a connection it opened and one
//! opened to it serve the same remote. When both race, the connection whose
//! handshake completed last wins; the loser is handed back to be retired.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{Limits, reconnect_block};

/// Who a remote is: address family and address (in [`IpAddr`]'s variant) and the
/// port it listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteKey {
    /// Address (its variant is the family).
    pub addr: IpAddr,
    /// Listening port.
    pub port: u16,
}

impl RemoteKey {
    /// The key of `addr`. An IPv4-mapped IPv6 address is the IPv4 remote it maps
    /// (one remote, whichever socket family it was reached through).
    pub fn new(addr: IpAddr, port: u16) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        RemoteKey { addr, port }
    }

    /// As a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

impl From<SocketAddr> for RemoteKey {
    fn from(addr: SocketAddr) -> Self {
        RemoteKey::new(addr.ip(), addr.port())
    }
}

struct Remote<C> {
    conn: Option<C>,
    blocked_until: Option<Instant>,
    last_activity: Instant,
    /// A connection serving it was lost (so the next connect is a reconnect).
    lost_one: bool,
}

/// What [`RemoteTable::handle_timeout`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableEvent<C> {
    /// The remote's block ended: connect again if messages wait for it.
    Unblocked(RemoteKey),
    /// The remote was idle longer than the reuse time and is forgotten; its
    /// connection, if any, must be closed.
    Collected(RemoteKey, Option<C>),
}

/// The remotes of one node; `C` names a connection (an id, an address).
pub struct RemoteTable<C> {
    remotes: HashMap<RemoteKey, Remote<C>>,
    reuse_time: Duration,
    gc_at: Instant,
    limits: Limits,
    rng: fastrand::Rng,
}

impl<C: Clone + PartialEq> RemoteTable<C> {
    /// An empty table at `now`.
    pub fn new(now: Instant, limits: Limits, mut rng: fastrand::Rng) -> Self {
        let gc_at = now + limits.gc_period(&mut rng);
        RemoteTable { remotes: HashMap::new(), reuse_time: limits.reuse_time, gc_at, limits, rng }
    }

    /// Remotes known.
    pub fn len(&self) -> usize {
        self.remotes.len()
    }

    /// True when none is known.
    pub fn is_empty(&self) -> bool {
        self.remotes.is_empty()
    }

    /// The connection serving `key`.
    pub fn connection(&self, key: &RemoteKey) -> Option<&C> {
        self.remotes.get(key)?.conn.as_ref()
    }

    /// True once a connection serving `key` was lost (until the remote is collected):
    /// connecting again is a reconnect.
    pub fn lost_one(&self, key: &RemoteKey) -> bool {
        self.remotes.get(key).is_some_and(|r| r.lost_one)
    }

    /// Until when `key` may not be connected (after a failure).
    pub fn blocked_until(&self, key: &RemoteKey, now: Instant) -> Option<Instant> {
        self.remotes.get(key)?.blocked_until.filter(|&until| until > now)
    }

    /// Note activity on `key` (a message sent or received), creating it if new.
    pub fn touch(&mut self, now: Instant, key: RemoteKey) {
        self.remotes
            .entry(key)
            .or_insert(Remote { conn: None, blocked_until: None, last_activity: now, lost_one: false })
            .last_activity = now;
    }

    /// A connection is being opened to `key` (it serves it until replaced or lost).
    pub fn connecting(&mut self, now: Instant, key: RemoteKey, conn: C) -> Option<C> {
        self.attach(now, key, conn)
    }

    /// `conn` completed its handshake for `key`: it now serves the remote (the last
    /// handshake wins). Returns the connection it replaced, to be retired.
    pub fn handshake(&mut self, now: Instant, key: RemoteKey, conn: C) -> Option<C> {
        self.attach(now, key, conn)
    }

    fn attach(&mut self, now: Instant, key: RemoteKey, conn: C) -> Option<C> {
        let remote = self.remotes.entry(key).or_insert(Remote {
            conn: None,
            blocked_until: None,
            last_activity: now,
            lost_one: false,
        });
        remote.last_activity = now;
        let old = remote.conn.replace(conn.clone());
        old.filter(|old| *old != conn)
    }

    /// `conn` closed. If it served `key`, the remote has none now and is blocked for
    /// 50–550 ms (libchirp's debounce: a failing peer is not hammered). Returns the
    /// end of the block, if one was set.
    pub fn connection_lost(&mut self, now: Instant, key: &RemoteKey, conn: &C) -> Option<Instant> {
        let remote = self.remotes.get_mut(key)?;
        if remote.conn.as_ref() != Some(conn) {
            return None;
        }
        remote.conn = None;
        remote.lost_one = true;
        let until = now + reconnect_block(&mut self.rng);
        remote.blocked_until = Some(until);
        Some(until)
    }

    /// The next deadline: a block ending or the GC.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let blocks = self.remotes.values().filter_map(|r| r.blocked_until);
        Some(blocks.fold(self.gc_at, Instant::min))
    }

    /// Deadlines that passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<TableEvent<C>> {
        let mut events = Vec::new();
        for (key, remote) in &mut self.remotes {
            if remote.blocked_until.is_some_and(|until| until <= now) {
                remote.blocked_until = None;
                events.push(TableEvent::Unblocked(*key));
            }
        }
        if now >= self.gc_at {
            let reuse_time = self.reuse_time;
            let idle: Vec<RemoteKey> = self
                .remotes
                .iter()
                .filter(|(_, r)| {
                    r.blocked_until.is_none() && now.saturating_duration_since(r.last_activity) > reuse_time
                })
                .map(|(key, _)| *key)
                .collect();
            for key in idle {
                if let Some(remote) = self.remotes.remove(&key) {
                    events.push(TableEvent::Collected(key, remote.conn));
                }
            }
            self.gc_at = now + self.limits.gc_period(&mut self.rng);
        }
        events
    }
}
