//! The sans-I/O search engine: which names to search when (libca's backoff), beacon
//! anomalies, and the registration with the CA repeater. It keeps one schedule of
//! deadlines and says when it next has work, so an idle client wakes for nothing.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pvloom_core::endpoint::{Datagram, DatagramEndpoint};

use crate::proto::command::Command;
use crate::proto::constants::MIN_ROUND_TRIP_ESTIMATE;
use crate::proto::search::{Broadcaster, DatagramEvent, SearchItem};

/// Servers whose beacons are tracked at most.
const MAX_TRACKED_SERVERS: usize = 4096;
/// Time to wait for the repeater's confirmation before trying again (every second
/// try without one, the application starts a repeater itself).
pub const REPEATER_CONFIRM_WAIT: Duration = Duration::from_millis(500);
/// How long a server's beacons are remembered once it falls silent, when the table
/// is full.
const BEACON_MEMORY: Duration = Duration::from_secs(60);

/// The delay before search attempt `attempt + 1`: doubling from libca's minimum
/// round-trip estimate, capped at `max` — forever, at a decreasing rate.
pub fn search_delay(attempt: u32, max: Duration) -> Duration {
    MIN_ROUND_TRIP_ESTIMATE.saturating_mul(1u32 << attempt.min(16)).min(max)
}

/// Settings of the search engine.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Where searches go (EPICS_CA_ADDR_LIST and the automatic broadcasts).
    pub destinations: Vec<SocketAddrV4>,
    /// The longest interval between two searches of one name.
    pub max_period: Duration,
    /// The repeater's port on this host; `None`: do not register.
    pub repeater_port: Option<u16>,
}

/// What the search engine tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchEvent {
    /// A server answered the search for `cid`.
    Found {
        /// The searching channel.
        cid: u32,
        /// The server's circuit address.
        server: SocketAddrV4,
        /// The minor version it announced, if any.
        version: Option<u16>,
    },
    /// Something was heard from `server` (a search reply or a beacon).
    Heard(SocketAddrV4),
    /// These names are due: search them on the name servers too (TCP).
    Due(Vec<(u32, String)>),
    /// No repeater confirmed the registration: start one in this process.
    StartRepeater,
    /// The repeater confirmed the registration.
    RepeaterConfirmed,
}

struct Pending {
    name: String,
    attempt: u32,
    due: Instant,
}

/// How far back in the backoff a beacon anomaly puts an unanswered name (libca's
/// `beaconAnomalyRetrySetpoint`): searched now, then every 2 s and slower.
const BEACON_ANOMALY_ATTEMPT: u32 = 6;

struct BeaconSeen {
    id: u32,
    at: Instant,
    /// A running average of the beacon period, once two beacons were seen.
    average: Option<Duration>,
}

enum Repeater {
    Off,
    Unregistered { next_try: Instant, tries: u32 },
    Confirmed,
}

/// The search engine of one client context.
pub struct SearchEngine {
    config: SearchConfig,
    broadcaster: Broadcaster,
    pending: HashMap<u32, Pending>,
    schedule: BTreeSet<(Instant, u32)>,
    beacons: HashMap<SocketAddrV4, BeaconSeen>,
    repeater: Repeater,
    out: VecDeque<Datagram>,
    events: VecDeque<SearchEvent>,
    started: Instant,
}

impl SearchEngine {
    /// An engine that registers with the repeater at once (if it has a port).
    pub fn new(now: Instant, mut config: SearchConfig) -> Self {
        // A zero cap would make every search due again at once, forever.
        config.max_period = config.max_period.max(MIN_ROUND_TRIP_ESTIMATE);
        let repeater = match config.repeater_port {
            Some(_) => Repeater::Unregistered { next_try: now, tries: 0 },
            None => Repeater::Off,
        };
        SearchEngine {
            config,
            broadcaster: Broadcaster::new(),
            pending: HashMap::new(),
            schedule: BTreeSet::new(),
            beacons: HashMap::new(),
            repeater,
            out: VecDeque::new(),
            events: VecDeque::new(),
            started: now,
        }
    }

    fn reschedule(&mut self, cid: u32, due: Instant) {
        if let Some(pending) = self.pending.get_mut(&cid) {
            self.schedule.remove(&(pending.due, cid));
            pending.due = due;
            self.schedule.insert((due, cid));
        }
    }

    /// Search `name` for `cid` now, or, after `failures` failed connections in a
    /// row, after the backoff those failures earned.
    pub fn add(&mut self, now: Instant, cid: u32, name: String, failures: u32) {
        let delay = if failures == 0 { Duration::ZERO } else { search_delay(failures + 3, self.config.max_period) };
        self.forget(cid);
        let due = now + delay;
        self.pending.insert(cid, Pending { name, attempt: failures, due });
        self.schedule.insert((due, cid));
    }

    /// Stop searching `cid`.
    pub fn forget(&mut self, cid: u32) {
        if let Some(pending) = self.pending.remove(&cid) {
            self.schedule.remove(&(pending.due, cid));
        }
    }

    /// Search every unanswered name once now, keeping its backoff.
    pub fn retry_now(&mut self, now: Instant) {
        let cids: Vec<u32> = self.pending.iter().filter(|(_, p)| p.due > now).map(|(&cid, _)| cid).collect();
        for cid in cids {
            self.reschedule(cid, now);
        }
    }

    /// Search every unanswered name now and restart its backoff.
    pub fn search_now(&mut self, now: Instant) {
        let cids: Vec<u32> = self.pending.keys().copied().collect();
        for cid in cids {
            if let Some(pending) = self.pending.get_mut(&cid) {
                pending.attempt = 0;
            }
            self.reschedule(cid, now);
        }
    }

    /// Names not answered yet.
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// When `cid` is searched next.
    pub fn next_search(&self, cid: u32) -> Option<Instant> {
        self.pending.get(&cid).map(|p| p.due)
    }

    fn send_due(&mut self, now: Instant) {
        let mut due = Vec::new();
        for _ in 0..self.schedule.len() {
            let Some(&(at, cid)) = self.schedule.first() else { break };
            if at > now {
                break;
            }
            self.schedule.pop_first();
            let Some(pending) = self.pending.get_mut(&cid) else { continue };
            pending.attempt = pending.attempt.saturating_add(1);
            pending.due = now + search_delay(pending.attempt, self.config.max_period);
            self.schedule.insert((pending.due, cid));
            due.push((cid, pending.name.clone()));
        }
        if due.is_empty() {
            return;
        }
        let items = due.iter().map(|(cid, name)| SearchItem { search_id: *cid, name });
        match self.broadcaster.search_datagrams(items, false) {
            Ok(datagrams) => {
                for data in datagrams {
                    for destination in &self.config.destinations {
                        self.out.push_back(Datagram { to: SocketAddr::V4(*destination), data: data.clone() });
                    }
                }
            }
            Err(err) => tracing::warn!("cannot encode searches: {err}"),
        }
        self.events.push_back(SearchEvent::Due(due));
    }

    fn register_with_repeater(&mut self, now: Instant) {
        let Some(port) = self.config.repeater_port else { return };
        let Repeater::Unregistered { next_try, tries } = &mut self.repeater else { return };
        if *next_try > now {
            return;
        }
        if *tries > 0 && *tries % 2 == 0 {
            // Nobody confirmed: the application starts a repeater (if the port is
            // taken, another repeater runs and will confirm the next try).
            self.events.push_back(SearchEvent::StartRepeater);
        }
        *tries += 1;
        *next_try = now + REPEATER_CONFIRM_WAIT;
        let register = Command::RepeaterRegisterRequest { client_address: Ipv4Addr::LOCALHOST };
        if let Ok(data) = register.to_bytes() {
            let to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
            self.out.push_back(Datagram { to, data });
        }
    }

    /// A beacon anomaly, judged as libca's beacon table does: a server that came up
    /// after this client (known from its second beacon), a restart (beacons at least
    /// 20 % faster than the running average: rsrv's start-up ramp), or a server back
    /// after three or more missing beacons. Duplicated beacons (redundant routes) and
    /// small jumps of the counter (lost beacons) are ignored.
    fn is_anomaly(&mut self, now: Instant, server: SocketAddrV4, id: u32) -> bool {
        let started = self.started;
        if let Some(seen) = self.beacons.get_mut(&server) {
            let advance = id.wrapping_sub(seen.id);
            seen.id = id;
            if advance == 0 || advance > u32::MAX - 256 || (2..4).contains(&advance) {
                return false;
            }
            let period = now.saturating_duration_since(seen.at);
            let anomaly = match seen.average {
                // The second beacon: a server first heard later than one period after
                // this client started is new, not one we merely learned of.
                None => period <= seen.at.saturating_duration_since(started),
                Some(average) => period >= average.mul_f64(3.25) || period <= average.mul_f64(0.8),
            };
            seen.average = Some(match seen.average {
                None => period,
                Some(average) => period / 8 + average.mul_f64(0.875),
            });
            seen.at = now;
            return anomaly;
        }
        if self.beacons.len() >= MAX_TRACKED_SERVERS {
            // Spoofed beacons from endless addresses must not grow this table: forget
            // servers silent for a minute, or everything if that is not enough.
            self.beacons.retain(|_, seen| now.saturating_duration_since(seen.at) < BEACON_MEMORY);
            if self.beacons.len() >= MAX_TRACKED_SERVERS {
                self.beacons.clear();
            }
        }
        self.beacons.insert(server, BeaconSeen { id, at: now, average: None });
        false
    }

    /// After a beacon anomaly: names deep in their backoff are searched now and go
    /// on from [`BEACON_ANOMALY_ATTEMPT`].
    fn beacon_anomaly(&mut self, now: Instant) {
        let cids: Vec<u32> =
            self.pending.iter().filter(|(_, p)| p.attempt > BEACON_ANOMALY_ATTEMPT).map(|(&cid, _)| cid).collect();
        for cid in cids {
            if let Some(pending) = self.pending.get_mut(&cid) {
                pending.attempt = BEACON_ANOMALY_ATTEMPT;
            }
            self.reschedule(cid, now);
        }
    }

    /// Servers whose beacons are tracked now.
    pub fn tracked_servers(&self) -> usize {
        self.beacons.len()
    }

    fn handle(&mut self, now: Instant, event: DatagramEvent) {
        match event {
            DatagramEvent::Found { search_id, server, version, .. } => {
                if self.pending.contains_key(&search_id) {
                    self.forget(search_id);
                    self.events.push_back(SearchEvent::Heard(server));
                    self.events.push_back(SearchEvent::Found { cid: search_id, server, version });
                }
            }
            DatagramEvent::Beacon { server, beacon_id, .. } => {
                self.events.push_back(SearchEvent::Heard(server));
                if self.is_anomaly(now, server, beacon_id) && !self.pending.is_empty() {
                    tracing::debug!(%server, "beacon anomaly: searching unanswered names now");
                    self.beacon_anomaly(now);
                }
            }
            DatagramEvent::RepeaterConfirm { .. } => {
                if !matches!(self.repeater, Repeater::Confirmed) {
                    tracing::debug!("registered with the CA repeater");
                    self.events.push_back(SearchEvent::RepeaterConfirmed);
                }
                self.repeater = Repeater::Confirmed;
            }
            DatagramEvent::NotFound { .. } => {}
            DatagramEvent::Error { status, message } => {
                tracing::debug!(status, "search error from a server: {message}");
            }
        }
    }
}

impl DatagramEndpoint for SearchEngine {
    type Event = SearchEvent;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let SocketAddr::V4(sender) = from else { return };
        match Broadcaster::client_events(Bytes::copy_from_slice(data), sender) {
            Ok(events) => {
                for event in events {
                    self.handle(now, event);
                }
            }
            Err(err) => tracing::debug!(%sender, "bad datagram ignored: {err}"),
        }
        // A beacon anomaly may have made searches due now.
        self.send_due(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.register_with_repeater(now);
        self.send_due(now);
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Datagram> {
        self.out.pop_front()
    }

    fn poll_event(&mut self) -> Option<SearchEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let search = self.schedule.first().map(|&(at, _)| at);
        let repeater = match self.repeater {
            Repeater::Unregistered { next_try, .. } => Some(next_try),
            _ => None,
        };
        match (search, repeater) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
