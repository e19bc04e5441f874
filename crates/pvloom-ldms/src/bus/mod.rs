//! The message bus of one process (the role of ldms_msg.c): what publishers put in, and
//! who gets it.
//!
//! - Subscribers are local [`MsgClient`]s (a callback or a queue) and remote peers that
//!   sent MSG_SUB on a connection ([`Link`]); each matches names exactly or by regex
//!   (unanchored, as `regexec`), and may ask for a byte rate beyond which its messages
//!   are dropped and counted.
//! - A message is an [`Arc<BusMsg>`]: encoded for the wire once, shared by every
//!   connection it goes to. A message that came from a connection carries that
//!   connection's credit, returned (SEND_QUOTA) when the last reference drops — when
//!   every subscriber connection has written it out and every local callback returned.
//!   A connection stops reading while its peer's messages held in the bus exceed
//!   [`BusConfig::link_in_flight`]: a slow subscriber slows its publishers, and nothing is
//!   dropped unless a subscriber asked for a rate.
//! - Deliveries are checked against the subscriber's credentials and the message's
//!   uid/gid/perm, as ldmsd does.
//! - Counters per channel (name), per source and per client ([`BusStats`]).

mod client;
mod conn;
mod link;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};

pub use client::{MsgClient, MsgData};
pub use conn::{MsgConn, PartOutcome};
pub(crate) use link::{Credit, CreditShare};
pub use link::{Link, Taken};
pub use stats::{BusStats, ChannelStats, ClientStats, Counter, PairStats};

use crate::msg::{Hop, LdmsAddr, MAX_HOPS, MSG_HDR_LEN, MsgHeader, MsgType, PART_HDR_LEN, PART_PAYLOAD_MAX, tag_hash};
use crate::request::{CMD_MSG, REQUEST_HDR_LEN, Timespec};
use crate::server::Credentials;
use stats::StatsTable;

/// `EPERM`: a publisher claimed an identity that is not its own.
pub const EPERM: i32 = 1;
/// `ENOENT`: no such subscription.
pub const ENOENT: i32 = 2;
/// `EINVAL`: a regex that does not compile, a name with a NUL.
pub const EINVAL: i32 = 22;
/// `ENOTSUP`: the bus is disabled.
pub const ENOTSUP: i32 = 95;
/// `EMSGSIZE`: a message beyond [`BusConfig::max_msg`].
pub const EMSGSIZE: i32 = 90;
/// `ENOSPC`: too many subscriptions on one connection.
pub const ENOSPC: i32 = 28;
/// `EAGAIN`: no room for a publish in time.
pub const EAGAIN: i32 = 11;

/// Why the bus refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The message service is off (ldmsd without `msg_enable`).
    #[error("LDMS Message Service disabled")]
    Disabled,
    /// The message is longer than the bus accepts.
    #[error("message of {len} bytes, longer than {max}")]
    TooLarge {
        /// Length, header included.
        len: usize,
        /// [`BusConfig::max_msg`].
        max: usize,
    },
    /// The name holds a NUL, or is empty.
    #[error("bad message name: {0}")]
    BadName(String),
    /// The subscription's regex does not compile.
    #[error("bad regex {pattern:?}: {why}")]
    BadRegex {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        why: String,
    },
    /// A publisher that is not root claimed another uid or gid.
    #[error("uid {claimed_uid}/gid {claimed_gid} claimed by {uid}/{gid}")]
    Impersonation {
        /// The claimed uid.
        claimed_uid: u32,
        /// The claimed gid.
        claimed_gid: u32,
        /// The publisher's uid.
        uid: u32,
        /// The publisher's gid.
        gid: u32,
    },
    /// The connection has [`BusConfig::max_subs_per_link`] subscriptions already.
    #[error("{0} subscriptions already on this connection")]
    TooManySubscriptions(usize),
    /// No such subscription.
    #[error("no subscription {0:?}")]
    NoSubscription(String),
}

impl BusError {
    /// The errno ldmsd answers with.
    pub fn errno(&self) -> i32 {
        match self {
            BusError::Disabled => ENOTSUP,
            BusError::TooLarge { .. } => EMSGSIZE,
            BusError::BadName(_) | BusError::BadRegex { .. } => EINVAL,
            BusError::Impersonation { .. } => EPERM,
            BusError::TooManySubscriptions(_) => ENOSPC,
            BusError::NoSubscription(_) => ENOENT,
        }
    }
}

/// Settings of a bus.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Largest message, header included (a bigger one is refused at the publisher).
    pub max_msg: usize,
    /// Most subscriptions one connection may hold (a flood of MSG_SUB gets ENOSPC).
    pub max_subs_per_link: usize,
    /// Bytes of one connection's messages the bus may hold before that connection's
    /// input pauses.
    pub link_in_flight: usize,
    /// Wall clock for hop timestamps and counters.
    pub wall_clock: fn() -> SystemTime,
}

impl Default for BusConfig {
    /// 16 MiB messages, 1024 subscriptions per connection, 8 MiB in flight per connection.
    fn default() -> Self {
        BusConfig { max_msg: 16 << 20, max_subs_per_link: 1024, link_in_flight: 8 << 20, wall_clock: SystemTime::now }
    }
}

/// A message on the bus. Immutable; shared by everyone it is delivered to.
pub struct BusMsg {
    /// The header as received (or as published here).
    pub header: MsgHeader,
    /// The name (tag).
    pub name: Bytes,
    /// The data.
    pub data: Bytes,
    /// When it came in from a connection (forwarding it counts one more hop).
    received: Option<Timespec>,
    wire: OnceLock<Arc<[Bytes]>>,
}

/// A message routed to one subscriber, with a share of its sender's credit: the credit
/// goes back when every share is gone — every connection wrote the message out, every
/// callback returned, every queued copy was taken. The message itself may be kept
/// longer without holding the sender up.
pub struct Routed {
    /// The message.
    pub msg: Arc<BusMsg>,
    // Read by nobody: dropping it is what returns the credit.
    _token: CreditShare,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.msg.fmt(f)
    }
}

impl Routed {
    /// A message with no credit attached (published in this process).
    pub fn local(msg: Arc<BusMsg>) -> Routed {
        Routed { msg, _token: CreditShare::None }
    }

    /// Its length (`msg_len`).
    pub fn msg_len(&self) -> usize {
        self.msg.msg_len()
    }
}

impl std::fmt::Debug for BusMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusMsg")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("len", &self.data.len())
            .field("msg_gn", &self.header.msg_gn)
            .finish()
    }
}

/// Bytes counted per queued or held message beyond its msg_len (against
/// [`BusConfig::link_in_flight`] and the publisher's queue limit): the wire header and
/// the allocations.
const HELD_OVERHEAD: usize = MSG_HDR_LEN + 128;

/// What a message of `msg_len` bytes costs while held (its frame holds the header too).
pub(crate) fn held_size(msg_len: usize) -> usize {
    msg_len + HELD_OVERHEAD
}

pub(crate) fn timespec(t: SystemTime) -> Timespec {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec { sec: d.as_secs() as i64, nsec: i64::from(d.subsec_nanos()) }
}

impl BusMsg {
    /// A message as published in this process (hop 0 stamped `now`).
    pub fn local(
        name: Bytes,
        msg_type: MsgType,
        data: Bytes,
        (uid, gid, perm): (u32, u32, u32),
        msg_gn: u64,
        now: Timespec,
    ) -> BusMsg {
        let header = MsgHeader {
            src: LdmsAddr::default(),
            msg_gn,
            msg_type,
            uid,
            gid,
            perm,
            tag_hash: tag_hash(&name),
            hop_cnt: 0,
            hops: [Hop { recv: now, send: now }].into_iter().collect(),
        };
        BusMsg { header, name, data, received: None, wire: OnceLock::new() }
    }

    /// A message that arrived from a connection at `received`.
    pub(crate) fn received(msg: crate::msg::Msg, received: Timespec) -> BusMsg {
        BusMsg { header: msg.header, name: msg.name, data: msg.data, received: Some(received), wire: OnceLock::new() }
    }

    /// `msg_len`: name with its NUL plus data.
    pub fn msg_len(&self) -> usize {
        self.name.len() + 1 + self.data.len()
    }

    /// What the message is counted as while it is queued or held: `msg_len` plus its
    /// header and bookkeeping (counting msg_len alone let a queue of 64-byte messages
    /// take ~20 times its limit in memory).
    pub(crate) fn held_size(&self) -> usize {
        held_size(self.msg_len())
    }

    /// The header this process sends it on with: one more hop, stamped, when it came
    /// from a connection.
    pub fn forward_header(&self, now: Timespec) -> MsgHeader {
        let mut h = self.header.clone();
        if let Some(recv) = self.received {
            h.hop_cnt = h.hop_cnt.saturating_add(1);
            h.hops.truncate(MsgHeader::used_hops(self.header.hop_cnt));
            if h.hops.len() < MAX_HOPS {
                h.hops.push(Hop { recv, send: now });
            }
        }
        h
    }

    /// The length of the one MSG request that carries it, if it fits in one part.
    pub(crate) fn single_part_len(&self) -> Option<usize> {
        let total = MSG_HDR_LEN + self.msg_len();
        (total <= PART_PAYLOAD_MAX).then_some(REQUEST_HDR_LEN + PART_HDR_LEN + total)
    }

    /// Appends the one MSG request of a message that fits in one part
    /// ([`single_part_len`](Self::single_part_len) bytes), stamped `now`.
    pub(crate) fn encode_single(&self, now: Timespec, len: usize, dst: &mut BytesMut) {
        let header = &self.header;
        part_head(dst, header, len, true, false);
        match self.received {
            Some(recv) => header.encode_forwarded(self.msg_len() as u32, Hop { recv, send: now }, dst),
            None => header.encode(self.msg_len() as u32, dst),
        }
        dst.put_slice(&self.name);
        dst.put_u8(0);
        dst.put_slice(&self.data);
    }

    /// The MSG requests (SENDRECV data) that carry it, one per part; made once.
    pub fn wire(&self, now: Timespec) -> &Arc<[Bytes]> {
        self.wire.get_or_init(|| encode_parts(&self.forward_header(now), &self.name, &self.data))
    }
}

/// The MSG requests for a message: request header (xid 0), part header, the part.
pub fn encode_parts(header: &MsgHeader, name: &[u8], data: &[u8]) -> Arc<[Bytes]> {
    let msg_len = (name.len() + 1 + data.len()) as u32;
    let total = MSG_HDR_LEN + msg_len as usize;
    if total <= PART_PAYLOAD_MAX {
        // One part (nearly every message): encoded in place, not copied from a whole.
        let mut b = BytesMut::with_capacity(REQUEST_HDR_LEN + PART_HDR_LEN + total);
        part_head(&mut b, header, REQUEST_HDR_LEN + PART_HDR_LEN + total, true, false);
        header.encode(msg_len, &mut b);
        b.put_slice(name);
        b.put_u8(0);
        b.put_slice(data);
        return Arc::from([b.freeze()]);
    }
    let mut whole = BytesMut::with_capacity(total);
    header.encode(msg_len, &mut whole);
    whole.put_slice(name);
    whole.put_u8(0);
    whole.put_slice(data);
    let n = total.div_ceil(PART_PAYLOAD_MAX);
    (0..n)
        .map(|i| {
            let chunk = &whole[i * PART_PAYLOAD_MAX..((i + 1) * PART_PAYLOAD_MAX).min(total)];
            let len = REQUEST_HDR_LEN + PART_HDR_LEN + chunk.len();
            let mut b = BytesMut::with_capacity(len);
            part_head(&mut b, header, len, i == 0, i + 1 < n);
            b.put_slice(chunk);
            b.freeze()
        })
        .collect()
}

/// A MSG request's header (xid 0) and part header, for a request of `len` bytes.
fn part_head(b: &mut BytesMut, header: &MsgHeader, len: usize, first: bool, more: bool) {
    // One append of the 48 bytes (see `MsgHeader::encode_hops`).
    let mut h = [0u8; REQUEST_HDR_LEN + PART_HDR_LEN];
    // 0..8: xid 0.
    h[8..12].copy_from_slice(&CMD_MSG.to_be_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_be_bytes());
    h[16..18].copy_from_slice(&header.src.family.to_be_bytes());
    h[18..20].copy_from_slice(&header.src.port.to_be_bytes());
    h[20..36].copy_from_slice(&header.src.addr);
    h[36..44].copy_from_slice(&header.msg_gn.to_be_bytes());
    h[44..48].copy_from_slice(&(u32::from(more) | (u32::from(first) << 1)).to_le_bytes());
    b.put_slice(&h);
}

/// How a subscription matches names.
#[derive(Debug)]
enum Matcher {
    Exact(Bytes),
    Regex(regex::bytes::Regex),
}

impl Matcher {
    fn new(pattern: &str, is_regex: bool) -> Result<Matcher, BusError> {
        if !is_regex {
            return Ok(Matcher::Exact(Bytes::copy_from_slice(pattern.as_bytes())));
        }
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(Matcher::Regex)
            .map_err(|e| BusError::BadRegex { pattern: pattern.to_string(), why: e.to_string() })
    }

    fn matches(&self, name: &[u8]) -> bool {
        match self {
            Matcher::Exact(n) => n.as_ref() == name,
            Matcher::Regex(r) => r.is_match(name),
        }
    }
}

/// A byte-rate limit (token bucket holding one second's worth).
#[derive(Debug)]
struct Rate {
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn admit(&mut self, bytes: usize, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.per_sec);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

enum Target {
    Link(std::sync::Weak<Link>),
    Local(std::sync::Weak<client::LocalClient>),
}

/// Where one routed message goes.
enum Dest {
    Link(Arc<Link>),
    Local(Arc<client::LocalClient>),
}

impl Dest {
    fn deliver(self, msg: &Arc<BusMsg>, token: CreditShare) {
        match self {
            Dest::Link(link) => link.post(Routed { msg: msg.clone(), _token: token }),
            Dest::Local(c) => c.deliver(msg, token),
        }
    }
}

/// One subscription on the bus.
struct Subscription {
    id: u64,
    owner: u64,
    pattern: String,
    is_regex: bool,
    matcher: Matcher,
    target: Target,
    rate: Option<Mutex<Rate>>,
    counters: stats::ClientCounters,
}

/// The message bus. Cheap to share (`Arc`); every method may be called from any thread.
pub struct MsgBus {
    config: BusConfig,
    enabled: AtomicBool,
    subs: RwLock<Arc<[Arc<Subscription>]>>,
    next_id: AtomicU64,
    next_gn: AtomicU64,
    stats: Mutex<StatsTable>,
}

impl std::fmt::Debug for MsgBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgBus")
            .field("enabled", &self.is_enabled())
            .field("subscriptions", &self.subs.read().len())
            .finish()
    }
}

/// Who published a message on a connection, for the impersonation check.
pub fn check_identity(who: &Credentials, uid: u32, gid: u32) -> Result<(), BusError> {
    if who.uid == 0 || (who.uid == uid && who.gid == gid) {
        Ok(())
    } else {
        Err(BusError::Impersonation { claimed_uid: uid, claimed_gid: gid, uid: who.uid, gid: who.gid })
    }
}

impl MsgBus {
    /// An enabled bus.
    pub fn new(config: BusConfig) -> Arc<MsgBus> {
        Arc::new(MsgBus {
            config,
            enabled: AtomicBool::new(true),
            subs: RwLock::new(Arc::from(Vec::new())),
            next_id: AtomicU64::new(1),
            next_gn: AtomicU64::new(0),
            stats: Mutex::new(StatsTable::default()),
        })
    }

    /// The process's own bus (`ldms.msg_publish`, and connections given no other).
    pub fn global() -> &'static Arc<MsgBus> {
        static GLOBAL: OnceLock<Arc<MsgBus>> = OnceLock::new();
        GLOBAL.get_or_init(|| MsgBus::new(BusConfig::default()))
    }

    /// The settings.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Turn the service on or off (`msg_enable` / `msg_disable`).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    /// Whether the service is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// The next message number of this process's publishers.
    pub fn next_msg_gn(&self) -> u64 {
        self.next_gn.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks a message before it is sent or routed.
    pub fn check(&self, name: &[u8], data_len: usize) -> Result<(), BusError> {
        if name.is_empty() || name.contains(&0) {
            return Err(BusError::BadName(String::from_utf8_lossy(name).into_owned()));
        }
        let len = MSG_HDR_LEN + name.len() + 1 + data_len;
        if len > self.config.max_msg {
            return Err(BusError::TooLarge { len, max: self.config.max_msg });
        }
        Ok(())
    }

    /// Publish in this process (`ldms_msg_publish` with no transport): local clients and
    /// remote subscribers get it. Returns how many got it.
    ///
    /// # Errors
    /// [`BusError::Disabled`], [`BusError::BadName`], [`BusError::TooLarge`].
    pub fn publish(
        &self,
        name: &str,
        msg_type: MsgType,
        data: impl Into<Bytes>,
        owner: (u32, u32, u32),
    ) -> Result<usize, BusError> {
        if !self.is_enabled() {
            return Err(BusError::Disabled);
        }
        let data = data.into();
        self.check(name.as_bytes(), data.len())?;
        let wall = (self.config.wall_clock)();
        let msg = BusMsg::local(
            Bytes::copy_from_slice(name.as_bytes()),
            msg_type,
            data,
            owner,
            self.next_msg_gn(),
            timespec(wall),
        );
        Ok(self.route_with(Arc::new(msg), None, None, Instant::now(), wall))
    }

    /// Hands `msg` to every subscriber whose pattern matches, whose rate admits it and
    /// who may read it; `from` (a link id) is never sent its own messages back. Returns
    /// the deliveries made.
    pub fn route(&self, msg: Arc<BusMsg>, from: Option<u64>, now: Instant) -> usize {
        self.route_with(msg, None, from, now, (self.config.wall_clock)())
    }

    /// As [`route`](Self::route), the message carrying its sender's credit.
    pub(crate) fn route_with(
        &self,
        msg: Arc<BusMsg>,
        credit: Option<Credit>,
        from: Option<u64>,
        now: Instant,
        wall: SystemTime,
    ) -> usize {
        let subs = self.subs.read().clone();
        let wall = stats::secs(wall);
        let len = msg.msg_len();
        // ldmsd's counters count the data only (its `data_len`), not the name.
        let counted = msg.data.len();
        // The connections already given this message (usually few: inline).
        let mut sent_to = arrayvec::ArrayVec::<u64, 8>::new();
        let mut sent_to_more: Vec<u64> = Vec::new();
        // The first delivery waits until the last is known: when it is the only one it
        // takes the whole credit, and no shared count is made.
        let mut first: Option<Dest> = None;
        let mut credit = credit;
        let mut shared: Option<Arc<Credit>> = None;
        let mut n = 0;
        for s in subs.iter() {
            if !s.matcher.matches(&msg.name) {
                continue;
            }
            let h = &msg.header;
            let dest = match &s.target {
                Target::Link(w) => {
                    if from == Some(s.owner) || sent_to.contains(&s.owner) || sent_to_more.contains(&s.owner) {
                        continue;
                    }
                    let Some(link) = w.upgrade() else { continue };
                    if !link.credentials().may_read(h.uid, h.gid, h.perm) {
                        continue;
                    }
                    if !admit(s, &msg.name, len, counted, now, wall) {
                        continue;
                    }
                    if let Err(e) = sent_to.try_push(s.owner) {
                        sent_to_more.push(e.element());
                    }
                    Dest::Link(link)
                }
                Target::Local(w) => {
                    let Some(c) = w.upgrade() else { continue };
                    if !c.credentials.may_read(h.uid, h.gid, h.perm) || !admit(s, &msg.name, len, counted, now, wall) {
                        continue;
                    }
                    Dest::Local(c)
                }
            };
            s.counters.count(&msg.name, counted, wall);
            n += 1;
            if first.is_none() {
                first = Some(dest);
                continue;
            }
            if shared.is_none() {
                shared = credit.take().map(Arc::new);
            }
            dest.deliver(&msg, shared.clone().map_or(CreditShare::None, |c| CreditShare::Shared { _credit: c }));
        }
        if let Some(dest) = first {
            let token = match (shared, credit) {
                (Some(c), _) => CreditShare::Shared { _credit: c },
                (None, Some(c)) => CreditShare::Sole { _credit: c },
                (None, None) => CreditShare::None,
            };
            dest.deliver(&msg, token);
        }
        self.stats.lock().record(&msg, counted, wall);
        n
    }

    fn add(&self, sub: Subscription) -> u64 {
        let id = sub.id;
        let mut w = self.subs.write();
        let mut v: Vec<_> = w.iter().cloned().collect();
        v.retain(|s| match &s.target {
            Target::Link(l) => l.strong_count() > 0,
            Target::Local(c) => c.strong_count() > 0,
        });
        v.push(Arc::new(sub));
        *w = Arc::from(v);
        id
    }

    fn new_sub(
        &self,
        owner: u64,
        pattern: &str,
        is_regex: bool,
        rate: i64,
        target: Target,
    ) -> Result<Subscription, BusError> {
        let rate =
            (rate > 0).then(|| Mutex::new(Rate { per_sec: rate as f64, tokens: rate as f64, at: Instant::now() }));
        let matcher = Matcher::new(pattern, is_regex)?;
        let counters = stats::ClientCounters::default();
        // As ldmsd binds a new client: to its channel, or to every channel its regex
        // matches so far (by name).
        if is_regex {
            let table = self.stats.lock();
            let mut names: Vec<&Bytes> = table.channel_names().filter(|n| matcher.matches(n)).collect();
            names.sort();
            names.into_iter().for_each(|n| counters.bind(n));
        } else {
            counters.bind(&Bytes::copy_from_slice(pattern.as_bytes()));
        }
        Ok(Subscription {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            owner,
            pattern: pattern.to_string(),
            is_regex,
            matcher,
            target,
            rate,
            counters,
        })
    }

    /// A remote peer's MSG_SUB on `link`; `rate` bytes per second (≤ 0: unlimited).
    /// Subscribing twice to the same pattern is one subscription.
    ///
    /// # Errors
    /// [`BusError::BadRegex`], [`BusError::TooManySubscriptions`].
    pub fn subscribe_link(&self, link: &Arc<Link>, pattern: &str, is_regex: bool, rate: i64) -> Result<(), BusError> {
        {
            let subs = self.subs.read();
            let mine = subs.iter().filter(|s| s.owner == link.id() && matches!(s.target, Target::Link(_)));
            let mut count = 0;
            for s in mine {
                if s.pattern == pattern && s.is_regex == is_regex {
                    return Ok(());
                }
                count += 1;
            }
            if count >= self.config.max_subs_per_link {
                return Err(BusError::TooManySubscriptions(count));
            }
        }
        let sub = self.new_sub(link.id(), pattern, is_regex, rate, Target::Link(Arc::downgrade(link)))?;
        self.add(sub);
        Ok(())
    }

    /// A remote peer's MSG_UNSUB.
    ///
    /// # Errors
    /// [`BusError::NoSubscription`].
    pub fn unsubscribe_link(&self, link: u64, pattern: &str, is_regex: bool) -> Result<(), BusError> {
        let mut w = self.subs.write();
        let before = w.len();
        let v: Vec<_> = w
            .iter()
            .filter(|s| !(s.owner == link && s.pattern == pattern && s.is_regex == is_regex))
            .cloned()
            .collect();
        if v.len() == before {
            return Err(BusError::NoSubscription(pattern.to_string()));
        }
        *w = Arc::from(v);
        Ok(())
    }

    /// Drops every subscription of a closed connection.
    pub fn forget_link(&self, link: u64) {
        let mut w = self.subs.write();
        if w.iter().any(|s| s.owner == link) {
            let v: Vec<_> = w.iter().filter(|s| s.owner != link).cloned().collect();
            *w = Arc::from(v);
        }
    }

    fn remove_sub(&self, id: u64) {
        let mut w = self.subs.write();
        let v: Vec<_> = w.iter().filter(|s| s.id != id).cloned().collect();
        *w = Arc::from(v);
    }

    /// The counters: per channel (with per-source), and per client.
    pub fn stats(&self) -> BusStats {
        let subs = self.subs.read().clone();
        let clients = subs
            .iter()
            .map(|s| {
                let (tx, dropped, channels) = s.counters.snapshot();
                ClientStats {
                    id: s.id,
                    pattern: s.pattern.clone(),
                    is_regex: s.is_regex,
                    remote: matches!(s.target, Target::Link(_)),
                    link: matches!(s.target, Target::Link(_)).then_some(s.owner),
                    peer: match &s.target {
                        Target::Link(w) => w.upgrade().and_then(|l| l.peer_addr()),
                        Target::Local(_) => None,
                    },
                    tx,
                    drops: dropped.count,
                    dropped,
                    channels,
                }
            })
            .collect();
        self.stats.lock().snapshot(clients)
    }

    /// Zeroes the channel counters (`msg_stats reset=true`).
    pub fn reset_stats(&self) {
        self.stats.lock().reset();
    }

    /// Zeroes every client's counters, totals and per channel (`msg_client_stats
    /// reset=true`).
    pub fn reset_client_stats(&self) {
        self.subs.read().iter().for_each(|s| s.counters.reset());
    }
}

/// `len` is what the rate limit charges (the whole message), `counted` what the drop
/// counters add.
fn admit(s: &Subscription, channel: &Bytes, len: usize, counted: usize, now: Instant, wall: f64) -> bool {
    match &s.rate {
        Some(r) if !r.lock().admit(len, now) => {
            s.counters.drop_one(channel, counted, wall);
            false
        }
        _ => true,
    }
}
