//! Counters of the bus: per channel (message name) with per source, and per client.

use crate::FastMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;

use super::BusMsg;
use crate::msg::LdmsAddr;

/// Messages and bytes, and when the first and the last came (seconds since the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counter {
    /// Messages.
    pub count: u64,
    /// Bytes of data (as ldmsd counts them: the name is not counted).
    pub bytes: u64,
    /// The first message's time (0 before any).
    pub first_ts: f64,
    /// The last message's time.
    pub last_ts: f64,
}

/// Seconds since the epoch, as the counters keep them (taken once per message).
pub(super) fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Counter {
    fn add(&mut self, bytes: usize, t: f64) {
        if self.count == 0 {
            self.first_ts = t;
        }
        self.count += 1;
        self.bytes += bytes as u64;
        self.last_ts = t;
    }
}

/// One channel's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelStats {
    /// The name.
    pub name: String,
    /// Every message published or received under it.
    pub rx: Counter,
    /// The same, per source address (`"family:addr:port"`, `"local"` for this process).
    pub sources: Vec<(String, Counter)>,
}

/// One (channel, client) pair's counters: what one subscription got, and lost to its
/// rate limit, of one channel (ldmsd keeps these beside the client's totals).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairStats {
    /// The channel.
    pub channel: String,
    /// Messages of the channel delivered to the client.
    pub tx: Counter,
    /// Messages of the channel the client's rate limit dropped.
    pub drops: Counter,
}

/// One subscription's counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientStats {
    /// Its id on the bus.
    pub id: u64,
    /// The name or regex.
    pub pattern: String,
    /// Whether `pattern` is a regex.
    pub is_regex: bool,
    /// True for a remote peer's subscription (MSG_SUB), false for a local client.
    pub remote: bool,
    /// The connection it belongs to (remote).
    pub link: Option<u64>,
    /// That connection's peer address, when known.
    pub peer: Option<std::net::SocketAddr>,
    /// Messages delivered to it.
    pub tx: Counter,
    /// Messages it did not get because of its rate limit (a local client's also those
    /// its full queue refused).
    pub drops: u64,
    /// The rate limit's drops with their bytes and times.
    pub dropped: Counter,
    /// Per channel it matched, in the order it first matched them: an exact
    /// subscription has its one channel from the start; a regex one the channels that
    /// existed when it subscribed and those it matched since.
    pub channels: Vec<PairStats>,
}

/// A snapshot of every counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BusStats {
    /// Per channel, by name.
    pub channels: Vec<ChannelStats>,
    /// Per client.
    pub clients: Vec<ClientStats>,
}

impl BusStats {
    /// As JSON (`pvloom ldms msg-stats`, the `msg_stats` request), with ldmsd's key
    /// names: channels `{msg_tag, rx, sources}`, counters `{count, bytes, first_ts,
    /// last_ts}`, clients `{match, dest, is_regex, tx, drops}`.
    pub fn to_json(&self) -> serde_json::Value {
        let channels: Vec<_> = self
            .channels
            .iter()
            .map(|c| {
                let sources: serde_json::Map<String, serde_json::Value> =
                    c.sources.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
                serde_json::json!({"msg_tag": c.name, "rx": c.rx, "sources": sources})
            })
            .collect();
        // ldmsd's keys (msg_tag, match, dest, tx, drops), with pvloom's own beside them.
        let clients: Vec<_> = self
            .clients
            .iter()
            .map(|c| {
                let mut v = serde_json::json!(c);
                v["match"] = serde_json::json!(c.pattern);
                v["dest"] = serde_json::json!(c.link.map_or_else(|| "local".to_string(), |l| format!("link {l}")));
                v
            })
            .collect();
        serde_json::json!({"channels": channels, "clients": clients})
    }
}

#[derive(Default)]
struct Channel {
    rx: Counter,
    sources: FastMap<(LdmsAddr, bool), Counter>,
}

impl Channel {
    fn add(&mut self, m: &BusMsg, len: usize, at: f64) {
        self.rx.add(len, at);
        let src = (m.header.src, m.received.is_some());
        if let Some(c) = self.sources.get_mut(&src) {
            c.add(len, at);
        } else if self.sources.len() < MAX_SOURCES {
            self.sources.entry(src).or_default().add(len, at);
        }
    }
}

/// The channel table behind the bus's lock.
#[derive(Default)]
pub(super) struct StatsTable {
    channels: FastMap<Bytes, Channel>,
}

/// Bounds the table: a peer publishing endless distinct names cannot grow it forever.
const MAX_CHANNELS: usize = 65_536;
const MAX_SOURCES: usize = 1024;

fn source_name((s, received): (LdmsAddr, bool)) -> String {
    if s == LdmsAddr::default() {
        return if received { "remote".into() } else { "local".into() };
    }
    match s.family {
        2 => format!("{}.{}.{}.{}:{}", s.addr[0], s.addr[1], s.addr[2], s.addr[3], s.port),
        10 => format!("[{}]:{}", std::net::Ipv6Addr::from(s.addr), s.port),
        f => format!("family{f}:{}", s.port),
    }
}

impl StatsTable {
    pub(super) fn record(&mut self, m: &BusMsg, len: usize, at: f64) {
        if let Some(ch) = self.channels.get_mut(&m.name) {
            return ch.add(m, len, at);
        }
        if self.channels.len() < MAX_CHANNELS {
            self.channels.entry(m.name.clone()).or_default().add(m, len, at);
        }
    }

    pub(super) fn reset(&mut self) {
        self.channels.clear();
    }

    /// The names of the channels counted so far.
    pub(super) fn channel_names(&self) -> impl Iterator<Item = &Bytes> {
        self.channels.keys()
    }

    pub(super) fn snapshot(&self, clients: Vec<ClientStats>) -> BusStats {
        let mut channels: Vec<_> = self
            .channels
            .iter()
            .map(|(k, v)| {
                let mut sources: Vec<_> = v.sources.iter().map(|(k, c)| (source_name(*k), *c)).collect();
                sources.sort_by(|a, b| a.0.cmp(&b.0));
                ChannelStats { name: String::from_utf8_lossy(k).into_owned(), rx: v.rx, sources }
            })
            .collect();
        channels.sort_by(|a, b| a.name.cmp(&b.name));
        BusStats { channels, clients }
    }
}

/// A subscription's counters, updated without the bus's lock.
#[derive(Default)]
pub(super) struct ClientCounters {
    tally: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    tx: Counter,
    drops: Counter,
    /// Pairs in binding order, found by channel through `index`.
    pairs: Vec<(Bytes, Counter, Counter)>,
    index: FastMap<Bytes, usize>,
}

/// Bounds one client's pairs: a regex subscriber of endless distinct names keeps its
/// totals but stops growing its table.
const MAX_PAIRS: usize = MAX_CHANNELS;

impl Tally {
    fn pair(&mut self, channel: &Bytes) -> Option<&mut (Bytes, Counter, Counter)> {
        let i = match self.index.get(channel) {
            Some(&i) => i,
            None if self.pairs.len() < MAX_PAIRS => {
                self.pairs.push((channel.clone(), Counter::default(), Counter::default()));
                self.index.insert(channel.clone(), self.pairs.len() - 1);
                self.pairs.len() - 1
            }
            None => return None,
        };
        self.pairs.get_mut(i)
    }
}

impl ClientCounters {
    /// A delivery of `bytes` on `channel`.
    pub(super) fn count(&self, channel: &Bytes, bytes: usize, at: f64) {
        let mut t = self.tally.lock();
        t.tx.add(bytes, at);
        if let Some(p) = t.pair(channel) {
            p.1.add(bytes, at);
        }
    }

    /// A message of `channel` the rate limit refused.
    pub(super) fn drop_one(&self, channel: &Bytes, bytes: usize, at: f64) {
        let mut t = self.tally.lock();
        t.drops.add(bytes, at);
        if let Some(p) = t.pair(channel) {
            p.2.add(bytes, at);
        }
    }

    /// The client matches `channel`, delivered to or not.
    pub(super) fn bind(&self, channel: &Bytes) {
        self.tally.lock().pair(channel);
    }

    /// (tx, drops, pairs).
    pub(super) fn snapshot(&self) -> (Counter, Counter, Vec<PairStats>) {
        let t = self.tally.lock();
        let pairs = t
            .pairs
            .iter()
            .map(|(ch, tx, drops)| PairStats {
                channel: String::from_utf8_lossy(ch).into_owned(),
                tx: *tx,
                drops: *drops,
            })
            .collect();
        (t.tx, t.drops, pairs)
    }

    /// Zeroes every counter; the pairs stay bound (as ldmsd's reset keeps them).
    pub(super) fn reset(&self) {
        let mut t = self.tally.lock();
        t.tx = Counter::default();
        t.drops = Counter::default();
        for p in &mut t.pairs {
            p.1 = Counter::default();
            p.2 = Counter::default();
        }
    }
}
