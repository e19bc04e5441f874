//! [`ServerConn`]: one peer of the set server, sans-I/O, doing what ldmsd does as the
//! passive side: DIR (and its updates), LOOKUP, READ_REQ, push, SET_DELETE, and the
//! replies of a daemon whose message service is off.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};

use super::access::Credentials;
use super::registry::{ConnInbox, Entry, Note, ReadError, SetRegistry};
use crate::bus::{Link, MsgBus, MsgConn};
use crate::msg::{MsgSub, SubReply};
use crate::request::dir::dir_replies;
use crate::request::{
    self, CMD_AUTH, CMD_AUTH_MSG, CMD_MSG, CMD_MSG_SUB, CMD_MSG_SUB_REPLY, CMD_MSG_UNSUB, CMD_MSG_UNSUB_REPLY,
    CMD_QGROUP_ASK, CMD_QGROUP_DONATE, CMD_QGROUP_DONATE_BACK, CMD_QUOTA_RECONFIG, CMD_RATE_RECONFIG, LDMS_MSG_MAX,
    LOOKUP_BY_SCHEMA, LOOKUP_RE, LookupParam, LookupProfile, Message, PUSH_REPLY_F_MORE, PUSH_REPLY_MAX_DATA,
    PushReply, REQUEST_HDR_LEN, RendezvousBody, RendezvousMsg, Reply, ReplyBody, Request, RequestBody, SetInfoPair,
    Timespec, UPD_F_PUSH, UPD_F_PUSH_LAST, name_item, schema_item,
};
use crate::session::{Role, Session, SessionConfig, SessionError, SessionEvent};
use crate::zap::{self, Frame, Msg, RailConnMsg, Rendezvous, WriteResp};
use crate::{FastMap, FastSet};

/// zap status: the map key names no region (`ZAP_ERR_REMOTE_MAP`).
pub const ZAP_ERR_REMOTE_MAP: u16 = 17;
/// zap status: the range is not inside the region (`ZAP_ERR_REMOTE_LEN`).
pub const ZAP_ERR_REMOTE_LEN: u16 = 18;
/// zap status: the region may not be accessed so (`ZAP_ERR_REMOTE_PERMISSION`).
pub const ZAP_ERR_REMOTE_PERMISSION: u16 = 19;

/// `ENOENT`: LOOKUP matched nothing.
pub const ENOENT: u32 = 2;
/// `EACCES`: LOOKUP of a set the peer may not read.
pub const EACCES: u32 = 13;
/// `EINVAL`: LOOKUP with a regex that does not compile.
pub const EINVAL: u32 = 22;
/// `ENOTSUP`: message-service requests while it is disabled.
pub const ENOTSUP: u32 = 95;

/// `ENOTCONN`: a message for a peer whose connection is not open.
pub const ENOTCONN: u32 = 107;
/// `EMSGSIZE`: a message longer than [`SEND_MSG_MAX`].
pub const EMSGSIZE: u32 = 90;
/// `ENOBUFS`: the connection's outbound queue is at [`ServerConfig::max_queued`].
pub const ENOBUFS: u32 = 105;

/// The longest application message (SEND_MSG) one SENDRECV frame carries: the frame's
/// payload less the request header and the 4-byte `msg_len`.
pub const SEND_MSG_MAX: usize = crate::zap::MAX_SENDRECV_DATA - REQUEST_HDR_LEN - 4;

/// Why a message for a peer (SEND_MSG) was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is not open (handshake not finished, or closed).
    #[error("not connected")]
    NotConnected,
    /// The message does not fit one frame.
    #[error("message of {len} bytes, longer than {max}")]
    TooLong {
        /// The message's length.
        len: usize,
        /// [`SEND_MSG_MAX`].
        max: usize,
    },
    /// The connection's outbound queue is full (the peer reads slowly).
    #[error("{queued} bytes queued for the peer, the limit is {limit}")]
    QueueFull {
        /// Bytes queued (or about to be).
        queued: usize,
        /// [`ServerConfig::max_queued`].
        limit: usize,
    },
}

impl SendError {
    /// The errno `ldms_xprt_send` would return for it.
    pub fn errno(&self) -> u32 {
        match self {
            SendError::NotConnected => ENOTCONN,
            SendError::TooLong { .. } => EMSGSIZE,
            SendError::QueueFull { .. } => ENOBUFS,
        }
    }
}

/// The text ldmsd puts in MSG_SUB_REPLY and MSG_UNSUB_REPLY while its message service is off.
const MSG_DISABLED: &str = "LDMS Message Service disabled";
/// Largest compiled LOOKUP regex (bounds what one peer can make the server allocate).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Answers (READ_RESP above all) queued at most before the connection takes no more
/// requests (at most [`ServerConfig::max_queued`]): the driver's send buffer's worth, so
/// one buffer fills while the other is written. The socket sets the pace: answering a
/// peer's whole window of READ_REQs ahead of it only grew the outbound buffer (256 reads
/// of a 4 KiB set: a megabyte, regrown after every drain), which the allocator then kept
/// committed after the burst.
const READ_AHEAD: usize = 256 * 1024;

/// Settings of the set server and each of its connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The zap session: this side's rail connect message, accepted auth names, the
    /// handshake deadline (a silent peer is closed after it), frame limits.
    pub session: SessionConfig,
    /// Outbound bytes a connection may queue. Beyond it the connection reads no more
    /// input (READ_REQs wait) and pushes to it are coalesced.
    pub max_queued: usize,
    /// The peer's identity for access checks (auth `none`: root).
    pub credentials: Credentials,
    /// The clock for the lookup profiling timestamps and SET_DELETE_REPLY.
    pub wall_clock: fn() -> SystemTime,
    /// Close a connection whose peer read nothing of what waits for this long (TCP).
    pub stall_timeout: Option<Duration>,
    /// Connections accepted at most at once (TCP); further ones are closed at once.
    pub max_connections: usize,
    /// The message bus (`msg_enable`); `None`: the message service is off, and its
    /// requests are answered ENOTSUP as ldmsd does.
    pub bus: Option<Arc<MsgBus>>,
    /// Close a subscriber that holds messages waiting for its credit (SEND_QUOTA) this
    /// long: it would hold up every publisher of what it subscribed to.
    pub credit_timeout: Duration,
    /// Largest message (whole, header included) a peer may publish; more closes it.
    pub max_msg: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session: SessionConfig::default(),
            max_queued: 8 << 20,
            credentials: Credentials::root(),
            wall_clock: SystemTime::now,
            stall_timeout: Some(Duration::from_secs(60)),
            max_connections: 4096,
            bus: None,
            credit_timeout: Duration::from_secs(60),
            max_msg: 16 << 20,
        }
    }
}

/// What a [`ServerConn`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The zap handshake finished.
    Connected {
        /// The peer's rail connect message.
        peer: RailConnMsg,
    },
    /// The peer told this side that a set it owns is gone (SET_DELETE request); answered.
    PeerSetDeleted {
        /// The instance name.
        name: String,
    },
    /// The peer acknowledged this side's SET_DELETE.
    SetDeleteAcked {
        /// The instance name.
        name: String,
    },
    /// An application message from the peer (`ldms_xprt_send`, SEND_MSG).
    Message {
        /// The message bytes.
        data: Bytes,
    },
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// READ_REQs answered with data.
    pub reads: u64,
    /// READ_REQs answered with an error status.
    pub read_errors: u64,
    /// Pushes sent (PUSH_REPLY sequences, not frames).
    pub pushes: u64,
    /// Pushes replaced by a newer one before they were sent (slow peer).
    pub pushes_coalesced: u64,
    /// LOOKUP rendezvous sent.
    pub lookups: u64,
}

struct PushReg {
    remote_set_id: u64,
    last_meta_gn: Option<u64>,
}

/// One peer of the set server (a `StreamEndpoint` for pvloom-core's driver).
pub struct ServerConn {
    session: Session,
    registry: Arc<SetRegistry>,
    inbox: Arc<ConnInbox>,
    config: ServerConfig,
    dir_xid: Option<u64>,
    pushes: FastMap<u64, PushReg>,
    notify: FastSet<u64>,
    deletes: FastMap<u64, String>,
    next_delete_xid: u64,
    events: VecDeque<ServerEvent>,
    close: Option<CloseReason>,
    closed: bool,
    /// Decoded frames wait in the session because the outbound queue was full.
    backlog: bool,
    stats: ConnStats,
    /// Map keys this peer read, with their sets.
    maps: FastMap<u32, Arc<Entry>>,
    /// `session.queued()` as of the last call, for other threads ([`ServerConn::queue_gauge`]).
    gauge: Arc<AtomicUsize>,
    /// The message service's state on this connection (with a bus).
    msg: Option<MsgConn>,
    now: Instant,
    /// The wall clock as first read since `now` was set: one read per input burst,
    /// not one per message.
    wall: Option<SystemTime>,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn").field("conn", &self.inbox.id()).field("stats", &self.stats).finish()
    }
}

fn timespec(t: SystemTime) -> Timespec {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec { sec: d.as_secs() as i64, nsec: i64::from(d.subsec_nanos()) }
}

impl ServerConn {
    /// A connection accepted at `now`, serving `registry`'s sets.
    pub fn new(registry: Arc<SetRegistry>, config: ServerConfig, now: Instant) -> ServerConn {
        let mut session = config.session.clone();
        if let Some(bus) = &config.bus {
            // As ldmsd builds its rail connect message at accept time: the service's state
            // now (`msg_enable` / `msg_disable`), which a peer's publish checks first.
            session.conn_msg.msg_enabled = u32::from(bus.is_enabled());
        }
        ServerConn {
            session: Session::new(Role::Passive, session, now),
            registry,
            inbox: ConnInbox::new(),
            dir_xid: None,
            pushes: FastMap::default(),
            notify: FastSet::default(),
            deletes: FastMap::default(),
            next_delete_xid: 1,
            events: VecDeque::new(),
            close: None,
            closed: false,
            backlog: false,
            maps: FastMap::default(),
            stats: ConnStats::default(),
            gauge: Arc::new(AtomicUsize::new(0)),
            msg: config
                .bus
                .clone()
                .map(|bus| MsgConn::new(bus, Link::new(config.credentials.clone()), config.max_msg, true)),
            now,
            wall: None,
            config,
        }
    }

    /// The connection's side of the message bus (with one).
    pub fn link(&self) -> Option<&Arc<Link>> {
        self.msg.as_ref().map(MsgConn::link)
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnStats {
        ConnStats { pushes_coalesced: self.inbox.coalesced(), ..self.stats }
    }

    /// Bytes queued for the peer.
    pub fn queued(&self) -> usize {
        self.session.queued()
    }

    /// [`queued`](Self::queued) as of the endpoint's last call (input, timeout, transmit,
    /// [`send_msg`](Self::send_msg)), readable from any thread: how a handle elsewhere
    /// bounds what it hands to the connection.
    pub fn queue_gauge(&self) -> Arc<AtomicUsize> {
        self.gauge.clone()
    }

    /// True once the handshake finished and until the connection closes.
    pub fn is_open(&self) -> bool {
        self.live() && self.session.is_open()
    }

    /// Queues an application message for the peer (SEND_MSG, as `ldms_xprt_send`): the
    /// peer gets an `LDMS_XPRT_EVENT_RECV` with `data`.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] before the handshake or after close,
    /// [`SendError::TooLong`] beyond [`SEND_MSG_MAX`], [`SendError::QueueFull`] while
    /// [`ServerConfig::max_queued`] bytes wait for the peer.
    pub fn send_msg(&mut self, data: Bytes) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::NotConnected);
        }
        if data.len() > SEND_MSG_MAX {
            return Err(SendError::TooLong { len: data.len(), max: SEND_MSG_MAX });
        }
        if self.full() {
            return Err(SendError::QueueFull { queued: self.session.queued(), limit: self.config.max_queued });
        }
        self.send_request(&Request::new(0, RequestBody::Send { msg: data }));
        self.update_gauge();
        Ok(())
    }

    fn update_gauge(&self) {
        self.gauge.store(self.session.queued(), Ordering::Release);
    }

    /// A process-unique id of this connection.
    pub fn id(&self) -> u64 {
        self.inbox.id()
    }

    /// Called from any thread after registry notifications were queued for this
    /// connection; the driver must then pump it (TCP: an `Address::exec`).
    pub fn set_waker(&self, waker: impl Fn() + Send + Sync + 'static) {
        let waker = Arc::new(waker);
        if let Some(m) = &self.msg {
            let w = waker.clone();
            m.link().set_waker(move || w());
        }
        self.inbox.set_waker(Box::new(move || waker()));
    }

    /// Closes the connection with `reason` (e.g. server shutdown).
    pub fn close(&mut self, reason: CloseReason) {
        if self.close.is_none() && !self.closed {
            self.close = Some(reason);
        }
    }

    fn fail(&mut self, why: String) {
        if self.close.is_none() && !self.closed {
            tracing::warn!(conn = self.inbox.id(), "closing LDMS peer: {why}");
            self.close = Some(CloseReason::Protocol(why));
        }
    }

    fn full(&self) -> bool {
        self.session.queued() >= self.config.max_queued
    }

    /// Enough answers wait for the socket: take no more requests until they drain.
    fn busy(&self) -> bool {
        self.session.queued() >= self.config.max_queued.min(READ_AHEAD)
    }

    /// Too many of this peer's messages are still held in the bus: read no more.
    fn held_up(&self) -> bool {
        self.msg.as_ref().is_some_and(MsgConn::held_up)
    }

    /// The wall clock for this call (read once per call of the driver).
    fn wall(&mut self) -> SystemTime {
        *self.wall.get_or_insert_with(self.config.wall_clock)
    }

    fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.wall = None;
    }

    fn pump_msgs(&mut self) {
        if self.msg.is_some() {
            let wall = self.wall();
            if let Some(m) = self.msg.as_mut() {
                m.pump(&mut self.session, self.config.max_queued, self.now, wall);
            }
        }
    }

    fn credit_deadline(&self) -> Option<Instant> {
        self.msg.as_ref()?.credit_deadline(self.config.credit_timeout)
    }

    /// A MSG part: collect it; a whole message goes to the bus.
    fn on_msg_part(&mut self, body: &[u8]) {
        let wall = self.wall();
        let Some(m) = self.msg.as_mut() else { return };
        if let Err(why) = m.on_part(&mut self.session, body, self.now, wall) {
            self.fail(why);
        }
    }

    /// MSG_SUB / MSG_UNSUB with the bus on.
    fn on_msg_sub(&mut self, xid: u64, unsub: bool, body: &Bytes) {
        let Some(m) = self.msg.as_ref() else { return };
        let (bus, link) = (m.bus(), m.link());
        let sub = match MsgSub::decode(body) {
            Ok(s) => s,
            Err(e) => return self.fail(format!("bad MSG_SUB: {e}")),
        };
        let pattern = String::from_utf8_lossy(&sub.pattern).into_owned();
        let result = if !bus.is_enabled() {
            Err(crate::bus::BusError::Disabled)
        } else if unsub {
            bus.unsubscribe_link(link.id(), &pattern, sub.is_regex)
        } else {
            bus.subscribe_link(link, &pattern, sub.is_regex, sub.rate)
        };
        let (rc, text) = match result {
            Ok(()) => (0, "OK".to_string()),
            Err(e) => (e.errno() as u32, e.to_string()),
        };
        let reply = SubReply { text: Bytes::from(text) }.to_reply(xid, rc, unsub);
        self.send_reply(&reply);
    }

    fn live(&self) -> bool {
        self.close.is_none() && !self.closed
    }

    /// Everything that can move: registry notes, then held frames, while there is room.
    fn pump(&mut self) {
        if self.live() {
            self.pump_msgs();
        }
        while self.live() && self.session.is_open() && !self.full() {
            let Some(note) = self.inbox.take() else { break };
            self.on_note(note);
        }
        self.backlog = false;
        while self.live() {
            if self.busy() {
                self.backlog = true;
                break;
            }
            let Some(ev) = self.session.poll_event() else { break };
            match ev {
                SessionEvent::Connected { peer } => {
                    if let Some(m) = self.msg.as_mut() {
                        m.set_peer_quota(peer.recv_quota);
                    }
                    self.events.push_back(ServerEvent::Connected { peer });
                }
                SessionEvent::Rejected { .. } => {}
                SessionEvent::Frame(f) => self.on_frame(f),
            }
        }
        if self.live()
            && let Some(e) = self.session.poll_error()
        {
            self.close = Some(match e {
                SessionError::HandshakeTimeout(_) => CloseReason::TimedOut(e.to_string()),
                e => {
                    tracing::warn!(conn = self.inbox.id(), "closing LDMS peer: {e}");
                    CloseReason::Protocol(e.to_string())
                }
            });
        }
    }

    fn send_reply(&mut self, reply: &Reply) {
        let mut b = BytesMut::with_capacity(reply.encoded_len());
        reply.encode(&mut b);
        self.session.send(Msg::SendRecv(b.freeze()));
    }

    fn send_request(&mut self, req: &Request) {
        let mut b = BytesMut::with_capacity(req.encoded_len());
        req.encode(&mut b);
        self.session.send(Msg::SendRecv(b.freeze()));
    }

    fn on_frame(&mut self, f: Frame) {
        if let Msg::SendRecv(data) = &f.msg
            && self.msg.is_some()
            && let Some(body) = request::msg_body(data)
        {
            // A message part, the hot case: read in place, no Request built.
            return self.on_msg_part(body);
        }
        match f.msg {
            Msg::SendRecv(data) => match request::decode(&data) {
                Ok(Message::Request(req)) => self.on_request(req),
                Ok(Message::Reply(rep)) => self.on_reply(rep),
                Err(e) => self.fail(format!("bad LDMS message: {e}")),
            },
            Msg::Rendezvous(r) => match RendezvousMsg::decode(&r.msg) {
                Ok(RendezvousMsg { body: RendezvousBody::Push(p), .. }) => self.register_push(p),
                Ok(_) => self.fail("LOOKUP rendezvous from a client".into()),
                Err(e) => self.fail(format!("bad rendezvous: {e}")),
            },
            Msg::ReadReq(rq) => self.read(f.xid, f.ctxt, rq.map_key, rq.src_ptr, rq.len),
            Msg::WriteReq(w) => {
                // Served sets are read-only to peers; zap_sock checks the map's access.
                let status = match self.registry.by_key(w.map_key) {
                    Some(_) => ZAP_ERR_REMOTE_PERMISSION,
                    None => ZAP_ERR_REMOTE_MAP,
                };
                self.session.reply(f.xid, f.ctxt, Msg::WriteResp(WriteResp { status, pad: [0; 2] }));
            }
            Msg::ReadResp(_) | Msg::WriteResp(_) => self.fail("response to a request never sent".into()),
            other => self.fail(format!("unexpected {:?} frame", other.msg_type())),
        }
    }

    fn read(&mut self, xid: u32, ctxt: u64, key: u32, addr: u64, len: u32) {
        // A peer reads the few maps it looked up over and over: keep them at hand rather
        // than in the registry's shared table.
        let entry = match self.maps.get(&key) {
            Some(e) => Some(e.clone()),
            None => self.registry.by_key(key).inspect(|e| {
                self.maps.insert(key, e.clone());
            }),
        };
        let session = &mut self.session;
        let result = match entry {
            Some(e) => e.read_with(addr, len, &self.config.credentials, |data| session.reply_read(xid, ctxt, 0, data)),
            None => Err(ReadError::NoMap),
        };
        match result {
            Ok(()) => self.stats.reads += 1,
            Err(e) => {
                self.stats.read_errors += 1;
                tracing::debug!(conn = self.inbox.id(), key, addr, len, "READ_REQ refused: {e:?}");
                let s = match e {
                    ReadError::NoMap => {
                        self.maps.remove(&key);
                        ZAP_ERR_REMOTE_MAP
                    }
                    ReadError::Range => ZAP_ERR_REMOTE_LEN,
                    ReadError::Access => ZAP_ERR_REMOTE_PERMISSION,
                };
                self.session.reply_read(xid, ctxt, s, &[]);
            }
        }
    }

    fn on_request(&mut self, req: Request) {
        let xid = req.xid;
        match req.body {
            RequestBody::Dir { flags } => self.dir(xid, flags),
            RequestBody::DirCancel => {
                self.dir_xid = None;
                self.registry.unwatch_dir(self.inbox.id());
                self.send_reply(&Reply::new(xid, 0, ReplyBody::DirCancel));
            }
            RequestBody::Lookup { flags, path } => self.lookup(xid, flags, &path),
            // ldmsd keeps the registration; its core sends events only when the
            // application calls ldms_notify, which this server does not offer yet.
            RequestBody::ReqNotify { set_id, .. } => {
                if self.registry.by_id(set_id).is_some() {
                    self.notify.insert(set_id);
                }
            }
            RequestBody::CancelNotify { set_id } => {
                self.notify.remove(&set_id);
            }
            RequestBody::CancelPush { set_id } => self.cancel_push(set_id),
            RequestBody::SetDelete { inst_name } => {
                let name = String::from_utf8_lossy(&inst_name).into_owned();
                let recv_ts = timespec((self.config.wall_clock)());
                self.send_reply(&Reply::new(xid, 0, ReplyBody::SetDelete { recv_ts }));
                self.events.push_back(ServerEvent::PeerSetDeleted { name });
            }
            RequestBody::SendQuota { quota, .. } => {
                if let Some(m) = self.msg.as_mut() {
                    m.on_send_quota(quota);
                }
            }
            RequestBody::Send { msg } => self.events.push_back(ServerEvent::Message { data: msg }),
            RequestBody::Other { cmd, body } => self.other_request(xid, cmd, &body),
        }
    }

    fn other_request(&mut self, xid: u64, cmd: u32, body: &Bytes) {
        match cmd {
            CMD_MSG_SUB | CMD_MSG_UNSUB if self.msg.is_some() => self.on_msg_sub(xid, cmd == CMD_MSG_UNSUB, body),
            CMD_MSG if self.msg.is_some() => self.on_msg_part(body),
            CMD_MSG_SUB | CMD_MSG_UNSUB => {
                let reply_cmd = if cmd == CMD_MSG_SUB { CMD_MSG_SUB_REPLY } else { CMD_MSG_UNSUB_REPLY };
                let mut b = BytesMut::new();
                b.put_u32(MSG_DISABLED.len() as u32 + 1);
                b.put_slice(MSG_DISABLED.as_bytes());
                b.put_u8(0);
                self.send_reply(&Reply::new(xid, ENOTSUP, ReplyBody::Other { cmd: reply_cmd, body: b.freeze() }));
            }
            CMD_MSG => {
                // Part header: 20-byte source address, msg_gn, then a host-order bitfield
                // (bit 0 more, bit 1 first). ldmsd with the service off returns the
                // credit of a message's first part with rc ENOTSUP.
                if body.len() < 32 {
                    return self.fail(format!("MSG of {} bytes, shorter than its part header", body.len()));
                }
                let bits = u32::from_le_bytes([body[28], body[29], body[30], body[31]]);
                if bits & 2 != 0 {
                    self.send_request(&Request::new(0, RequestBody::SendQuota { quota: 0, rc: ENOTSUP as i32 }));
                }
            }
            CMD_QGROUP_ASK | CMD_QGROUP_DONATE | CMD_QGROUP_DONATE_BACK | CMD_QUOTA_RECONFIG | CMD_RATE_RECONFIG => {
                tracing::trace!(conn = self.inbox.id(), cmd, "quota request ignored");
            }
            // Auth `none` has no auth messages: ldmsd ends such a connection.
            CMD_AUTH_MSG | CMD_AUTH => self.fail(format!("auth request {cmd} under auth none")),
            _ => self.fail(format!("unknown LDMS request {cmd:#x}")),
        }
    }

    fn on_reply(&mut self, rep: Reply) {
        match rep.body {
            ReplyBody::SetDelete { .. } => match self.deletes.remove(&rep.xid) {
                Some(name) => self.events.push_back(ServerEvent::SetDeleteAcked { name }),
                None => tracing::debug!(conn = self.inbox.id(), "SET_DELETE_REPLY for no request"),
            },
            // ldmsd looks replies up by their xid; one it never asked for is dropped here.
            other => tracing::debug!(conn = self.inbox.id(), cmd = other.cmd(), "unsolicited reply ignored"),
        }
    }

    fn dir(&mut self, xid: u64, flags: u32) {
        if flags != 0 {
            self.dir_xid = Some(xid);
            self.registry.watch_dir(&self.inbox);
        } else {
            self.dir_xid = None;
            self.registry.unwatch_dir(self.inbox.id());
        }
        // ldmsd lists sets in the reverse of its set tree's order. It would also put a
        // stray comma first when the first set was not readable; that bug is not kept.
        let creds = &self.config.credentials;
        let entries: Vec<_> = self
            .registry
            .entries()
            .iter()
            .rev()
            .filter_map(|e| {
                let (d, (uid, gid, perm)) = e.dir_entry();
                creds.may_read(uid, gid, perm).then_some(d)
            })
            .collect();
        let replies = match dir_replies(xid, &entries, LDMS_MSG_MAX) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("directory not sent: {e}");
                let fitting: Vec<_> = entries
                    .into_iter()
                    .filter(|d| dir_replies(0, std::slice::from_ref(d), LDMS_MSG_MAX).is_ok())
                    .collect();
                dir_replies(xid, &fitting, LDMS_MSG_MAX).unwrap_or_default()
            }
        };
        for r in &replies {
            self.send_reply(r);
        }
    }

    fn lookup(&mut self, xid: u64, flags: u32, path: &[u8]) {
        let failed = |me: &mut Self, rc: u32| me.send_reply(&Reply::new(xid, rc, ReplyBody::Lookup));
        let matched: Vec<Arc<Entry>> = if flags & LOOKUP_RE != 0 {
            // ldmsd compiles with POSIX regcomp(REG_EXTENDED | REG_NOSUB) and searches
            // unanchored, as `is_match` does. The Rust dialect accepts more (\d, (?i),
            // lazy repetition) and refuses back-references, which glibc allows; plain
            // ERE patterns (anchors, classes, [[:alpha:]], alternation) mean the same.
            let re = std::str::from_utf8(path)
                .ok()
                .and_then(|p| regex::RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build().ok());
            let Some(re) = re else {
                tracing::info!(conn = self.inbox.id(), "LOOKUP regex does not compile");
                return failed(self, EINVAL);
            };
            let by_schema = flags & LOOKUP_BY_SCHEMA != 0;
            self.registry
                .entries()
                .into_iter()
                .filter(|e| re.is_match(if by_schema { &e.schema } else { &e.name }))
                .collect()
        } else if flags & LOOKUP_BY_SCHEMA != 0 {
            self.registry.entries().into_iter().filter(|e| e.schema.as_bytes() == path).collect()
        } else {
            let Some(e) = std::str::from_utf8(path).ok().and_then(|p| self.registry.by_name(p)) else {
                return failed(self, ENOENT);
            };
            // ldmsd shares a set looked up by name without checking access (the read
            // then succeeds too); this server refuses it.
            let v = e.view();
            if !self.config.credentials.may_read(v.uid, v.gid, v.perm) {
                return failed(self, EACCES);
            }
            vec![e]
        };
        // Pattern and schema lookups skip unreadable sets. ldmsd decides `more` before
        // that check, so a last set it skips leaves the peer waiting; here `more` counts
        // only the sets sent.
        let creds = self.config.credentials.clone();
        let sets: Vec<_> = matched
            .into_iter()
            .map(|e| {
                let v = e.view();
                (e, v)
            })
            .filter(|(_, v)| creds.may_read(v.uid, v.gid, v.perm))
            .collect();
        if sets.is_empty() {
            return failed(self, ENOENT);
        }
        let recv = timespec((self.config.wall_clock)());
        let n = sets.len();
        for (i, (e, v)) in sets.into_iter().enumerate() {
            let param = LookupParam {
                set_id: e.set_id,
                more: u32::from(i + 1 < n),
                meta_len: v.meta_sz,
                data_len: v.data_sz,
                card: v.card,
                schema_len: 0,
                array_card: v.array_card,
                schema: schema_item(e.schema.as_bytes()),
                instance: name_item(e.name.as_bytes()),
                info: v.info.iter().map(|(k, val)| SetInfoPair::new(k.as_bytes(), val.as_bytes())).collect(),
                profile: Some(LookupProfile { req_recv: recv, share: timespec((self.config.wall_clock)()) }),
            };
            let msg = RendezvousMsg { xid, body: RendezvousBody::Lookup(param) };
            let mut b = BytesMut::with_capacity(msg.encoded_len());
            if let Err(err) = msg.encode(&mut b) {
                tracing::error!(set = %e.name, "lookup reply not encodable: {err}");
                continue;
            }
            self.session.send(Msg::Rendezvous(Rendezvous {
                map_key: e.map_key,
                access: zap::ACCESS_READ | zap::ACCESS_WRITE,
                addr: e.base,
                len: v.meta_sz.saturating_add(v.data_sz),
                msg: b.freeze(),
            }));
            self.registry.add_looker(&e, &self.inbox);
            self.stats.lookups += 1;
        }
    }

    fn register_push(&mut self, p: request::PushParam) {
        // ldmsd ignores a registration for a set it does not have.
        let Some(e) = self.registry.by_id(p.lookup_set_id) else { return };
        let v = e.view();
        if !self.config.credentials.may_read(v.uid, v.gid, v.perm) {
            tracing::info!(conn = self.inbox.id(), set = %e.name, "push registration refused: no read access");
            return;
        }
        if self.registry.add_pusher(&e, &self.inbox, p.flags) {
            let reg = self.pushes.entry(p.lookup_set_id).or_insert(PushReg { remote_set_id: 0, last_meta_gn: None });
            reg.remote_set_id = p.push_set_id;
        }
    }

    fn cancel_push(&mut self, set_id: u64) {
        let Some(reg) = self.pushes.remove(&set_id) else { return };
        if let Some(e) = self.registry.by_id(set_id) {
            self.registry.remove_pusher(&e, self.inbox.id());
        }
        let body = PushReply {
            set_id: reg.remote_set_id,
            flags: UPD_F_PUSH | UPD_F_PUSH_LAST,
            data_off: 0,
            data: Bytes::new(),
        };
        self.send_reply(&Reply::new(0, 0, ReplyBody::Push(body)));
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Push { set_id, image, meta_gn, meta_sz } => {
                let Some(reg) = self.pushes.get_mut(&set_id) else { return };
                let off = if reg.last_meta_gn == Some(meta_gn) { meta_sz as usize } else { 0 };
                reg.last_meta_gn = Some(meta_gn);
                let remote = reg.remote_set_id;
                let mut at = off.min(image.len());
                loop {
                    let n = (image.len() - at).min(PUSH_REPLY_MAX_DATA);
                    let more = at + n < image.len();
                    let flags = UPD_F_PUSH | if more { PUSH_REPLY_F_MORE } else { 0 };
                    let data = image.slice(at..at + n);
                    let body = PushReply { set_id: remote, flags, data_off: at as u32, data };
                    self.send_reply(&Reply::new(0, 0, ReplyBody::Push(body)));
                    at += n;
                    if !more {
                        break;
                    }
                }
                self.stats.pushes += 1;
            }
            Note::Dir { dir_type, json, owner: (uid, gid, perm) } => {
                let Some(xid) = self.dir_xid else { return };
                if !self.config.credentials.may_read(uid, gid, perm) {
                    return;
                }
                let body = ReplyBody::Dir { update: true, dir_type, more: 0, json_data_len: json.len() as u32, json };
                self.send_reply(&Reply::new(xid, 0, body));
            }
            Note::Deleted { set_id, name } => {
                self.pushes.remove(&set_id);
                self.notify.remove(&set_id);
                let xid = self.next_delete_xid;
                self.next_delete_xid += 1;
                self.deletes.insert(xid, name.clone());
                self.send_request(&Request::new(xid, RequestBody::SetDelete { inst_name: Bytes::from(name) }));
            }
        }
    }
}

impl ServerConn {
    /// The connection is gone: its subscriptions end, what waited for it is dropped (its
    /// senders get their credit back) and collected parts are freed.
    fn forget_msgs(&mut self) {
        if let Some(m) = self.msg.as_mut() {
            m.forget();
        }
    }
}

impl StreamEndpoint for ServerConn {
    type Event = ServerEvent;

    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.set_now(now);
        if !self.live() {
            return;
        }
        self.session.handle_input(now, data);
        self.pump();
        self.update_gauge();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        if let Some(t) = self.credit_deadline()
            && now >= t
        {
            let why = format!("the subscriber returned no credit for {:?}", self.config.credit_timeout);
            self.fail(why);
        }
        self.session.handle_timeout(now);
        self.pump();
        self.update_gauge();
    }

    fn poll_transmit(&mut self, now: Instant, room: usize, out: &mut BytesMut) {
        self.set_now(now);
        if self.live() {
            self.pump();
        }
        self.session.poll_transmit(room, out);
        if self.live() {
            self.pump();
        }
        self.update_gauge();
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.session.poll_timeout(), self.credit_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take().inspect(|_| self.closed = true)
    }

    fn wants_input(&self) -> bool {
        self.live() && !self.backlog && !self.busy() && !self.held_up()
    }

    fn handle_closed(&mut self, _now: Instant, reason: &CloseReason) {
        tracing::debug!(conn = self.inbox.id(), "LDMS peer gone: {reason}");
        self.closed = true;
        self.registry.forget_conn(self.inbox.id());
        self.inbox.clear();
        self.forget_msgs();
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        self.registry.forget_conn(self.inbox.id());
        self.inbox.clear();
        self.forget_msgs();
    }
}
