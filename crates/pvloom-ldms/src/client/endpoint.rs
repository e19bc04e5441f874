//! [`ClientConn`]: one LDMS client connection, sans-I/O.
//!
//! A [`Session`] in [`Role::Active`] carries the zap handshake; above it this endpoint runs
//! the LDMS operations: DIR (with parts and notify updates), LOOKUP (each RENDEZVOUS
//! answered by a READ_REQ of the metadata), updates (reads of the set image, re-reading
//! the metadata when its generation moved), push registration and the server's
//! SET_DELETE. Every operation has a deadline compared with the `now` it is given.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use pvloom_core::{CloseReason, StreamEndpoint};

use super::op_table::OpTable;
use super::types::{ClientEvent, DirPart, LookupResult, MsgSubStatus, OpError, OpId, SetId, SetSnapshot};
use crate::bus::{Link, MsgBus, MsgConn};
use crate::msg::{MsgSub, SubReply};
use crate::request::dir::parse_dir;
use crate::request::{
    self, LookupParam, Message, PushParam, PushReply, RendezvousBody, RendezvousMsg, Reply, ReplyBody, Request,
    RequestBody, Timespec,
};
use crate::server::Credentials;
use crate::session::{Role, Session, SessionConfig, SessionError, SessionEvent};
use crate::set::{DataHeader, SetMeta};
use crate::zap::{ACCESS_READ, ACCESS_WRITE, Frame, Msg, ReadReq, ReadResp, Rendezvous};
use crate::{FastMap, FastSet};

/// Settings of a client connection.
#[derive(Debug, Clone)]
pub struct ClientConnConfig {
    /// The zap session (rail connect message, handshake timeout, limits).
    pub session: SessionConfig,
    /// Deadline of an operation given no timeout of its own.
    pub op_timeout: Duration,
    /// Wall-clock time for SET_DELETE_REPLY's receive stamp (an endpoint reads no clock
    /// of its own; tests fix it).
    pub wall_clock: fn() -> Duration,
    /// Where messages the peer forwards go (`None`: [`MsgBus::global`], the process's).
    pub bus: Option<Arc<MsgBus>>,
    /// Largest message accepted from the peer, header included.
    pub max_msg: usize,
    /// Close when messages waited this long for the peer's credit.
    pub credit_timeout: Duration,
}

fn system_wall_clock() -> Duration {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

impl Default for ClientConnConfig {
    fn default() -> Self {
        ClientConnConfig {
            session: SessionConfig::default(),
            op_timeout: Duration::from_secs(10),
            wall_clock: system_wall_clock,
            bus: None,
            max_msg: 16 << 20,
            credit_timeout: Duration::from_secs(60),
        }
    }
}

/// A looked-up set: where it lives on the owner, its metadata, its last good image.
#[derive(Debug)]
struct RemoteSet {
    name: String,
    owner_id: u64,
    map_key: u32,
    addr: u64,
    map_len: u32,
    meta: Arc<SetMeta>,
    last: Option<Arc<SetSnapshot>>,
    push: Option<PushState>,
    updating: bool,
}

#[derive(Debug, Default)]
struct PushState {
    /// A push being reassembled: its data_off and the bytes so far.
    partial: Option<(u32, BytesMut)>,
    cancelled: bool,
}

#[derive(Debug)]
enum Op {
    Dir { notify: bool, done: bool },
    Lookup { reads: usize, last_seen: bool },
    Update { set: SetId, meta_refetches: u8 },
    DirCancel,
    MsgSub { pattern: String, is_regex: bool, unsub: bool },
}

#[derive(Debug)]
struct Pending {
    op: Op,
    timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
enum ReadKind {
    /// A lookup's metadata read (the set is created once it decodes).
    LookupMeta { op: OpId, more: bool },
    /// Metadata and data from offset 0.
    Whole { op: OpId },
    /// Metadata only (its generation moved); the data follows.
    Meta { op: OpId },
    /// Data only, at meta_sz.
    Data { op: OpId },
}

#[derive(Debug)]
struct PendingRead {
    kind: ReadKind,
    /// For lookups, the set not yet created.
    lookup: Option<Box<(LookupParam, Rendezvous)>>,
    set: SetId,
}

/// One LDMS client connection (sans-I/O).
pub struct ClientConn {
    session: Session,
    config: ClientConnConfig,
    events: VecDeque<ClientEvent>,
    ops: OpTable<Pending>,
    reads: FastMap<u64, PendingRead>,
    sets: FastMap<SetId, RemoteSet>,
    /// Ops that timed out: their late answers are dropped, not a protocol error.
    stale: FastSet<u64>,
    next_id: u64,
    close: Option<CloseReason>,
    connected: bool,
    closed: bool,
    msg: MsgConn,
    now: Instant,
    /// The wall clock as first read since `now` was set: one read per input burst,
    /// not one per message.
    wall: Option<SystemTime>,
    /// A close that waits for published messages to go out: why, and until when.
    closing: Option<(String, Instant)>,
    /// The most room the driver has offered `poll_transmit`: its whole send buffer, so
    /// an offer of this much means that buffer is empty (a lingering close ends only
    /// then: what the driver still holds at the close gets one write and no more).
    full_room: usize,
    /// The room of the latest offer.
    last_room: usize,
}

impl std::fmt::Debug for ClientConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConn")
            .field("connected", &self.connected)
            .field("ops", &self.ops.len())
            .field("sets", &self.sets.len())
            .finish()
    }
}

/// Bytes of published messages the session may hold before they wait in the link.
const MSG_MAX_QUEUED: usize = 4 << 20;

/// Fake region addresses the client gives the owner for its push copy of a set.
const PUSH_REGION_BASE: u64 = 0x7e00_0000_0000;

impl ClientConn {
    /// A connection beginning at `now`; its CONNECT is queued at once.
    pub fn new(now: Instant, config: ClientConnConfig) -> ClientConn {
        Self::with_link(now, config, Link::new(Credentials::root()))
    }

    /// As [`new`](Self::new), publishing what is posted on `link`.
    pub fn with_link(now: Instant, config: ClientConnConfig, link: Arc<Link>) -> ClientConn {
        ClientConn {
            session: Session::new(Role::Active, config.session.clone(), now),
            config: config.clone(),
            events: VecDeque::new(),
            ops: OpTable::default(),
            reads: FastMap::default(),
            sets: FastMap::default(),
            stale: FastSet::default(),
            next_id: 0x1000,
            close: None,
            connected: false,
            closed: false,
            msg: MsgConn::new(
                config.bus.clone().unwrap_or_else(|| MsgBus::global().clone()),
                link,
                config.max_msg,
                false,
            ),
            now,
            wall: None,
            closing: None,
            full_room: 0,
            last_room: 0,
        }
    }

    /// True once the handshake finished and until the connection ends.
    pub fn is_connected(&self) -> bool {
        self.is_open() && self.closing.is_none()
    }

    /// Connected and not closed: still sending, if perhaps closing.
    fn is_open(&self) -> bool {
        self.connected && !self.closed && self.close.is_none()
    }

    /// Operations in flight.
    pub fn pending_ops(&self) -> usize {
        self.ops.len()
    }

    /// The metadata of a looked-up set.
    pub fn set_meta(&self, set: SetId) -> Option<Arc<SetMeta>> {
        self.sets.get(&set).map(|s| s.meta.clone())
    }

    /// The last good snapshot of a set.
    pub fn set_snapshot(&self, set: SetId) -> Option<Arc<SetSnapshot>> {
        self.sets.get(&set).and_then(|s| s.last.clone())
    }

    /// The instance name of a set.
    pub fn set_name(&self, set: SetId) -> Option<&str> {
        self.sets.get(&set).map(|s| s.name.as_str())
    }

    /// Forget a set locally (`ldms_set_delete`); nothing goes on the wire.
    pub fn forget(&mut self, set: SetId) {
        self.sets.remove(&set);
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn check_open(&self) -> Result<(), OpError> {
        if self.is_connected() { Ok(()) } else { Err(OpError::NotConnected) }
    }

    fn send_request(&mut self, xid: u64, body: RequestBody) {
        let mut b = BytesMut::new();
        Request::new(xid, body).encode(&mut b);
        self.session.send(Msg::SendRecv(b.freeze()));
    }

    fn add_op(&mut self, now: Instant, id: OpId, op: Op, timeout: Option<Duration>) {
        let timeout = timeout.unwrap_or(self.config.op_timeout);
        self.ops.insert(id, Pending { op, timeout }, now.checked_add(timeout));
    }

    /// Ask for the directory; `flags` may hold [`DIR_F_NOTIFY`](request::DIR_F_NOTIFY).
    /// Each part comes as a [`ClientEvent::Dir`]; with notify, changes follow as
    /// [`ClientEvent::DirUpdate`] until [`dir_cancel`](Self::dir_cancel).
    ///
    /// # Errors
    /// [`OpError::NotConnected`].
    pub fn dir(&mut self, now: Instant, flags: u32, timeout: Option<Duration>) -> Result<OpId, OpError> {
        self.check_open()?;
        let op = OpId(self.id());
        self.send_request(op.0, RequestBody::Dir { flags });
        self.add_op(now, op, Op::Dir { notify: flags & request::DIR_F_NOTIFY != 0, done: false }, timeout);
        Ok(op)
    }

    /// Stop directory updates (DIR_CANCEL).
    ///
    /// # Errors
    /// [`OpError::NotConnected`].
    pub fn dir_cancel(&mut self, now: Instant) -> Result<OpId, OpError> {
        self.check_open()?;
        let op = OpId(self.id());
        self.send_request(op.0, RequestBody::DirCancel);
        self.add_op(now, op, Op::DirCancel, None);
        Ok(op)
    }

    /// Look sets up: `flags` [`LOOKUP_BY_INSTANCE`](request::LOOKUP_BY_INSTANCE),
    /// [`LOOKUP_BY_SCHEMA`](request::LOOKUP_BY_SCHEMA) or [`LOOKUP_RE`](request::LOOKUP_RE).
    /// Each set comes as a [`ClientEvent::Lookup`] once its metadata was read.
    ///
    /// # Errors
    /// [`OpError::NotConnected`].
    pub fn lookup(&mut self, now: Instant, path: &str, flags: u32, timeout: Option<Duration>) -> Result<OpId, OpError> {
        self.check_open()?;
        let op = OpId(self.id());
        self.send_request(op.0, RequestBody::Lookup { flags, path: Bytes::copy_from_slice(path.as_bytes()) });
        self.add_op(now, op, Op::Lookup { reads: 0, last_seen: false }, timeout);
        Ok(op)
    }

    /// Read the set's current contents: the first update reads metadata and data, later
    /// ones the data only. Ends with a [`ClientEvent::Update`].
    ///
    /// # Errors
    /// [`OpError::NotConnected`], [`OpError::UnknownSet`], [`OpError::Busy`].
    pub fn update(&mut self, now: Instant, set: SetId, timeout: Option<Duration>) -> Result<OpId, OpError> {
        self.check_open()?;
        let rs = self.sets.get_mut(&set).ok_or(OpError::UnknownSet)?;
        if rs.updating {
            return Err(OpError::Busy("update"));
        }
        rs.updating = true;
        let whole = rs.last.is_none();
        let op = OpId(self.id());
        self.add_op(now, op, Op::Update { set, meta_refetches: 0 }, timeout);
        let kind = if whole { ReadKind::Whole { op } } else { ReadKind::Data { op } };
        self.read(set, kind);
        Ok(op)
    }

    /// Queue the READ_REQ of `kind` for a known set.
    fn read(&mut self, set: SetId, kind: ReadKind) {
        let Some(rs) = self.sets.get(&set) else { return };
        let (ms, ds) = (rs.meta.meta_sz, rs.meta.data_sz);
        let (off, len) = match kind {
            ReadKind::Whole { .. } => (0, ms.saturating_add(ds)),
            ReadKind::Meta { .. } | ReadKind::LookupMeta { .. } => (0, ms),
            ReadKind::Data { .. } => (ms, ds),
        };
        let req = ReadReq { map_key: rs.map_key, src_ptr: rs.addr.wrapping_add(u64::from(off)), len };
        let ctxt = self.id();
        self.reads.insert(ctxt, PendingRead { kind, lookup: None, set });
        self.session.send_with_ctxt(Msg::ReadReq(req), ctxt);
    }

    /// Register for pushes of `set`: `flags`
    /// [`XPRT_PUSH_F_CHANGE`](request::XPRT_PUSH_F_CHANGE) pushes on every change.
    /// Pushes come as [`ClientEvent::Push`].
    ///
    /// # Errors
    /// [`OpError::NotConnected`], [`OpError::UnknownSet`], [`OpError::Busy`].
    pub fn register_push(&mut self, set: SetId, flags: u32) -> Result<(), OpError> {
        self.check_open()?;
        let rs = self.sets.get_mut(&set).ok_or(OpError::UnknownSet)?;
        if rs.push.is_some() {
            return Err(OpError::Busy("push registration"));
        }
        rs.push = Some(PushState::default());
        let mut wire_flags = request::RBD_F_PUSH;
        if flags & request::XPRT_PUSH_F_CHANGE != 0 {
            wire_flags |= request::RBD_F_PUSH_CHANGE;
        }
        let param = PushParam { lookup_set_id: rs.owner_id, push_set_id: set.0, flags: wire_flags };
        let mut msg = BytesMut::new();
        // A push message has no variable part, so it always encodes.
        let _ = RendezvousMsg { xid: 0, body: RendezvousBody::Push(param) }.encode(&mut msg);
        let rdv = Rendezvous {
            map_key: set.0 as u32,
            access: ACCESS_READ | ACCESS_WRITE,
            addr: PUSH_REGION_BASE + (set.0 << 24),
            len: rs.map_len,
            msg: msg.freeze(),
        };
        self.session.send(Msg::Rendezvous(rdv));
        Ok(())
    }

    /// Cancel pushes of `set` (CANCEL_PUSH); the owner answers with a last push.
    ///
    /// # Errors
    /// [`OpError::NotConnected`], [`OpError::UnknownSet`] (also when not registered).
    pub fn cancel_push(&mut self, set: SetId) -> Result<(), OpError> {
        self.check_open()?;
        let rs = self.sets.get_mut(&set).ok_or(OpError::UnknownSet)?;
        let push = rs.push.as_mut().ok_or(OpError::UnknownSet)?;
        push.cancelled = true;
        let owner_id = rs.owner_id;
        self.send_request(0, RequestBody::CancelPush { set_id: owner_id });
        Ok(())
    }

    /// Send an application message (SEND_MSG); the peer sees a RECV event.
    ///
    /// # Errors
    /// [`OpError::NotConnected`].
    pub fn send(&mut self, data: &[u8]) -> Result<(), OpError> {
        self.check_open()?;
        self.send_request(0, RequestBody::Send { msg: Bytes::copy_from_slice(data) });
        Ok(())
    }

    /// The connection's side of the message bus: post a message on it to publish.
    pub fn link(&self) -> &Arc<Link> {
        self.msg.link()
    }

    /// The bus messages from the peer go to.
    pub fn bus(&self) -> &Arc<MsgBus> {
        self.msg.bus()
    }

    /// True while published messages wait (for room or the peer's credit).
    pub fn msgs_pending(&self) -> bool {
        self.msg.has_pending()
    }

    /// Ask the peer to forward messages whose name is `pattern` (or matches it, with
    /// `is_regex`), at most `rate` bytes per second (≤ 0: unlimited); with `unsub`,
    /// stop. The answer comes as a [`ClientEvent::MsgSubStatus`].
    ///
    /// # Errors
    /// [`OpError::NotConnected`]; a pattern with a NUL is `OpError::Remote(EINVAL)`.
    pub fn msg_subscribe(
        &mut self,
        now: Instant,
        pattern: &str,
        is_regex: bool,
        rate: i64,
        unsub: bool,
        timeout: Option<Duration>,
    ) -> Result<OpId, OpError> {
        self.check_open()?;
        let sub = MsgSub { is_regex, pattern: Bytes::copy_from_slice(pattern.as_bytes()), rate };
        let op = OpId(self.id());
        let req = sub.to_request(op.0, unsub).map_err(|_| OpError::Remote(super::types::EINVAL))?;
        let mut b = BytesMut::new();
        req.encode(&mut b);
        self.session.send(Msg::SendRecv(b.freeze()));
        self.add_op(now, op, Op::MsgSub { pattern: pattern.to_string(), is_regex, unsub }, timeout);
        Ok(op)
    }

    /// The wall clock for this call (read once per call of the driver).
    fn wall(&mut self) -> SystemTime {
        let clock = self.config.wall_clock;
        *self.wall.get_or_insert_with(|| SystemTime::UNIX_EPOCH + clock())
    }

    fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.wall = None;
    }

    fn pump_msgs(&mut self) {
        if self.is_open() {
            let wall = self.wall();
            self.msg.pump(&mut self.session, MSG_MAX_QUEUED, self.now, wall);
        }
    }

    /// Close the connection from this side. What was published goes out first: the
    /// connection stays open, taking no new work, until every message is out and the
    /// peer has returned its credit, or for at most `op_timeout` (then what is left is
    /// dropped, and said so in the log).
    pub fn close(&mut self, why: &str) {
        if self.close.is_some() || self.closed || self.closing.is_some() {
            return;
        }
        self.pump_msgs();
        match self.now.checked_add(self.config.op_timeout) {
            Some(until) if self.is_connected() => {
                self.closing = Some((why.to_string(), until));
                self.finish_closing();
            }
            _ => self.close = Some(CloseReason::Local(why.to_string())),
        }
    }

    /// Ends a lingering close once every published message went out (or its time is up).
    fn finish_closing(&mut self) {
        let Some((_, until)) = &self.closing else { return };
        // Out of the driver's buffer is not enough: the peer stops reading while it holds
        // too much of ours, and what it has not read is lost with the connection. Its
        // credit for every message says it has read them all.
        let drained = !self.msg.has_pending()
            && self.session.queued() == 0
            && self.last_room >= self.full_room
            && !self.msg.awaiting_credit();
        if !drained && self.now < *until && self.is_open() {
            return;
        }
        let Some((why, _)) = self.closing.take() else { return };
        if !drained && self.is_open() {
            tracing::warn!(
                "LDMS client closes with published messages unsent or unconfirmed: the peer returned no credit for them within {:?}",
                self.config.op_timeout
            );
        }
        if self.close.is_none() {
            self.close = Some(CloseReason::Local(why));
        }
    }

    fn protocol_error(&mut self, why: String) {
        if self.close.is_none() {
            tracing::warn!("LDMS client closes the connection: {why}");
            self.close = Some(CloseReason::Protocol(why));
        }
    }

    fn on_session_events(&mut self, now: Instant) {
        while let Some(ev) = self.session.poll_event() {
            if self.close.is_some() {
                break;
            }
            match ev {
                SessionEvent::Connected { peer } => {
                    self.connected = true;
                    self.msg.set_peer_quota(peer.recv_quota);
                    self.events.push_back(ClientEvent::Connected { peer });
                }
                SessionEvent::Rejected { reason } => self.events.push_back(ClientEvent::Rejected { reason }),
                SessionEvent::Frame(f) => self.on_frame(now, f),
            }
        }
        if let Some(e) = self.session.poll_error()
            && self.close.is_none()
        {
            self.close = Some(match e {
                SessionError::HandshakeTimeout(_) => CloseReason::TimedOut(e.to_string()),
                SessionError::Rejected(_) => CloseReason::Local(e.to_string()),
                _ => CloseReason::Protocol(e.to_string()),
            });
        }
    }

    fn on_msg_part(&mut self, body: &[u8]) {
        let wall = self.wall();
        if let Err(why) = self.msg.on_part(&mut self.session, body, self.now, wall) {
            self.protocol_error(why);
        }
    }

    fn on_frame(&mut self, now: Instant, f: Frame) {
        if let Msg::SendRecv(data) = &f.msg
            && let Some(body) = request::msg_body(data)
        {
            // A message part, the hot case: read in place, no Request built.
            return self.on_msg_part(body);
        }
        match f.msg {
            Msg::SendRecv(data) => match request::decode(&data) {
                Ok(Message::Reply(r)) => self.on_reply(r),
                Ok(Message::Request(q)) => self.on_request(q),
                Err(e) => self.protocol_error(format!("bad LDMS message: {e}")),
            },
            Msg::Rendezvous(r) => match RendezvousMsg::decode(&r.msg) {
                Ok(RendezvousMsg { xid, body: RendezvousBody::Lookup(l) }) => self.on_lookup_rendezvous(xid, l, r),
                Ok(_) => self.protocol_error("a push registration from the server".into()),
                Err(e) => self.protocol_error(format!("bad rendezvous message: {e}")),
            },
            Msg::ReadResp(r) => self.on_read_resp(now, f.ctxt, r),
            other => self.protocol_error(format!("unexpected {:?} frame", other.msg_type())),
        }
    }

    fn on_request(&mut self, q: Request) {
        match q.body {
            RequestBody::SetDelete { inst_name } => {
                let name = String::from_utf8_lossy(&inst_name).into_owned();
                let set = self.sets.iter().find(|(_, s)| s.name == name).map(|(id, _)| *id);
                if let Some(id) = set {
                    self.sets.remove(&id);
                }
                let t = (self.config.wall_clock)();
                let recv_ts = Timespec { sec: t.as_secs() as i64, nsec: i64::from(t.subsec_nanos()) };
                let mut b = BytesMut::new();
                Reply::new(q.xid, 0, ReplyBody::SetDelete { recv_ts }).encode(&mut b);
                self.session.send(Msg::SendRecv(b.freeze()));
                self.events.push_back(ClientEvent::SetDelete { set, name });
            }
            RequestBody::SendQuota { quota, rc } => {
                self.msg.on_send_quota(quota);
                if rc != 0 && quota == 0 {
                    self.msg.forget_unreturned();
                }
                self.events.push_back(ClientEvent::SendQuota { quota, rc });
            }
            RequestBody::Other { cmd: request::CMD_MSG, body } => self.on_msg_part(&body),
            RequestBody::Send { msg } => self.events.push_back(ClientEvent::Recv { data: msg }),
            other => self.protocol_error(format!("unexpected request command {:#x}", other.cmd())),
        }
    }

    /// A reply whose xid names no pending operation: dropped if the op timed out.
    fn unknown_xid(&mut self, what: &str, xid: u64) {
        if self.stale.contains(&xid) {
            tracing::debug!("late {what} for a timed-out operation dropped");
        } else {
            self.protocol_error(format!("{what} for unknown xid {xid:#x}"));
        }
    }

    fn on_reply(&mut self, r: Reply) {
        let op = OpId(r.xid);
        match r.body {
            ReplyBody::Dir { update, dir_type, more, json, .. } => {
                let Some(p) = self.ops.get_mut(&op) else { return self.unknown_xid("DIR reply", r.xid) };
                let Op::Dir { notify, done } = &mut p.op else {
                    return self.protocol_error("DIR reply to a non-DIR request".into());
                };
                let notify = *notify;
                if r.rc != 0 {
                    self.ops.remove(&op);
                    let e = OpError::Remote(r.rc as i32);
                    return self.events.push_back(ClientEvent::Dir { op, result: Err(e) });
                }
                let entries = match parse_dir(&json) {
                    Ok(e) => e,
                    Err(e) => return self.protocol_error(format!("bad directory JSON: {e}")),
                };
                if update {
                    if !*done {
                        return self.protocol_error("DIR_UPDATE_REPLY before the directory".into());
                    }
                    self.events.push_back(ClientEvent::DirUpdate { op, kind: dir_type, entries });
                    return;
                }
                if *done {
                    return self.protocol_error("DIR_REPLY after the last part".into());
                }
                if more == 0 {
                    *done = true;
                    if notify {
                        self.ops.clear_deadline(&op);
                    } else {
                        self.ops.remove(&op);
                    }
                }
                self.events.push_back(ClientEvent::Dir { op, result: Ok(DirPart { entries, more: more != 0 }) });
            }
            ReplyBody::DirCancel => {
                if self.ops.remove(&op).is_none() {
                    return self.unknown_xid("DIR_CANCEL reply", r.xid);
                }
                self.ops.retain(|_, p| !matches!(p.op, Op::Dir { notify: true, done: true }));
            }
            ReplyBody::Lookup => match self.ops.get(&op) {
                Some(Pending { op: Op::Lookup { .. }, .. }) => {
                    self.ops.remove(&op);
                    let rc = if r.rc == 0 { super::types::ENOENT } else { r.rc as i32 };
                    self.events.push_back(ClientEvent::Lookup { op, result: Err(OpError::Remote(rc)) });
                }
                Some(_) => self.protocol_error("LOOKUP_REPLY to a non-LOOKUP request".into()),
                None => self.unknown_xid("LOOKUP_REPLY", r.xid),
            },
            ReplyBody::Push(p) => self.on_push(p),
            ReplyBody::Other { cmd, body }
                if cmd == request::CMD_MSG_SUB_REPLY || cmd == request::CMD_MSG_UNSUB_REPLY =>
            {
                let Some(Pending { op: Op::MsgSub { .. }, .. }) = self.ops.get(&op) else {
                    return self.unknown_xid("MSG_SUB reply", r.xid);
                };
                let Some(Pending { op: Op::MsgSub { pattern, is_regex, unsub }, .. }) = self.ops.remove(&op) else {
                    return;
                };
                let text = match SubReply::decode(&body) {
                    Ok(t) => String::from_utf8_lossy(&t.text).into_owned(),
                    Err(e) => return self.protocol_error(format!("bad MSG_SUB reply: {e}")),
                };
                let status = MsgSubStatus { pattern, is_regex, unsubscribe: unsub, status: r.rc as i32, text };
                self.events.push_back(ClientEvent::MsgSubStatus { op, status });
            }
            other => self.protocol_error(format!("unexpected reply command {:#x}", other.cmd())),
        }
    }

    fn on_lookup_rendezvous(&mut self, xid: u64, l: LookupParam, r: Rendezvous) {
        let op = OpId(xid);
        let more = l.more != 0;
        let Some(p) = self.ops.get_mut(&op) else { return self.unknown_xid("lookup rendezvous", xid) };
        let Op::Lookup { reads, last_seen } = &mut p.op else {
            return self.protocol_error("lookup rendezvous for a non-LOOKUP request".into());
        };
        if *last_seen {
            return self.protocol_error("lookup rendezvous after the last one".into());
        }
        *reads += 1;
        *last_seen = !more;
        let req = ReadReq { map_key: r.map_key, src_ptr: r.addr, len: l.meta_len };
        let ctxt = self.id();
        let set = SetId(self.id());
        self.reads
            .insert(ctxt, PendingRead { kind: ReadKind::LookupMeta { op, more }, lookup: Some(Box::new((l, r))), set });
        self.session.send_with_ctxt(Msg::ReadReq(req), ctxt);
    }

    fn on_read_resp(&mut self, now: Instant, ctxt: u64, r: ReadResp) {
        let Some(pr) = self.reads.remove(&ctxt) else { return self.unknown_xid("READ_RESP", ctxt) };
        let op = match pr.kind {
            ReadKind::LookupMeta { op, .. }
            | ReadKind::Whole { op }
            | ReadKind::Meta { op }
            | ReadKind::Data { op } => op,
        };
        if !self.ops.contains_key(&op) {
            // The operation timed out or the set went away meanwhile.
            return;
        }
        if let ReadKind::LookupMeta { more, .. } = pr.kind {
            return self.on_lookup_meta(op, more, pr, r);
        }
        let result =
            if r.status != 0 { Err(OpError::ReadFailed(r.status)) } else { self.apply_read(pr.set, pr.kind, &r.data) };
        match result {
            Ok(Some(snap)) => self.finish_update(op, pr.set, Ok(snap)),
            Ok(None) => {
                // The metadata moved: read it again, then the data.
                let Some(Pending { op: Op::Update { meta_refetches, .. }, .. }) = self.ops.get_mut(&op) else { return };
                *meta_refetches += 1;
                if *meta_refetches > 3 {
                    let e = OpError::BadImage("metadata keeps changing".into());
                    return self.finish_update(op, pr.set, Err(e));
                }
                let next = match pr.kind {
                    ReadKind::Meta { .. } => ReadKind::Data { op },
                    _ => ReadKind::Meta { op },
                };
                let _ = now;
                self.read(pr.set, next);
            }
            Err(e) => self.finish_update(op, pr.set, Err(e)),
        }
    }

    /// Apply a read to the set: `Some(snapshot)` when the update is complete, `None` when
    /// another read is needed.
    fn apply_read(&mut self, set: SetId, kind: ReadKind, data: &Bytes) -> Result<Option<Arc<SetSnapshot>>, OpError> {
        let rs = self.sets.get_mut(&set).ok_or(OpError::UnknownSet)?;
        let bad = |e: crate::set::SetError| OpError::BadImage(e.to_string());
        match kind {
            ReadKind::Whole { .. } => {
                let (meta, bytes) = split_image(data).map_err(bad)?;
                let stale = DataHeader::decode(&meta, &bytes).map_err(bad)?.meta_gn != meta.meta_gn;
                rs.meta = meta;
                if stale {
                    return Ok(None);
                }
                snapshot(rs, bytes).map(Some)
            }
            ReadKind::Meta { .. } | ReadKind::LookupMeta { .. } => {
                let meta = SetMeta::decode(data).map_err(bad)?;
                rs.meta = Arc::new(meta);
                Ok(None)
            }
            ReadKind::Data { .. } => {
                if DataHeader::decode(&rs.meta, data).map_err(bad)?.meta_gn != rs.meta.meta_gn {
                    return Ok(None);
                }
                snapshot(rs, data.clone()).map(Some)
            }
        }
    }

    fn finish_update(&mut self, op: OpId, set: SetId, result: Result<Arc<SetSnapshot>, OpError>) {
        self.ops.remove(&op);
        if let Some(rs) = self.sets.get_mut(&set) {
            rs.updating = false;
        }
        self.events.push_back(ClientEvent::Update { op, set, result });
    }

    fn on_lookup_meta(&mut self, op: OpId, more: bool, pr: PendingRead, r: ReadResp) {
        let Some((l, rdv)) = pr.lookup.map(|b| *b) else { return };
        let meta = if r.status != 0 {
            Err(OpError::ReadFailed(r.status))
        } else {
            SetMeta::decode(&r.data).map_err(|e| OpError::BadImage(e.to_string()))
        };
        let Some(Pending { op: Op::Lookup { reads, last_seen }, .. }) = self.ops.get_mut(&op) else { return };
        *reads -= 1;
        let finished = *reads == 0 && *last_seen;
        if finished {
            self.ops.remove(&op);
        }
        let result = meta.map(|meta| {
            let meta = Arc::new(meta);
            let info = l
                .info
                .iter()
                .map(|p| {
                    (String::from_utf8_lossy(p.key()).into_owned(), String::from_utf8_lossy(p.value()).into_owned())
                })
                .collect();
            let name = String::from_utf8_lossy(l.instance_name()).into_owned();
            self.sets.insert(
                pr.set,
                RemoteSet {
                    name: name.clone(),
                    owner_id: l.set_id,
                    map_key: rdv.map_key,
                    addr: rdv.addr,
                    map_len: rdv.len,
                    meta: meta.clone(),
                    last: None,
                    push: None,
                    updating: false,
                },
            );
            LookupResult {
                set: pr.set,
                name,
                schema: String::from_utf8_lossy(l.schema_name()).into_owned(),
                info,
                meta,
                more: more || !finished,
            }
        });
        self.events.push_back(ClientEvent::Lookup { op, result });
    }

    fn on_push(&mut self, p: PushReply) {
        let set = SetId(p.set_id);
        let Some(rs) = self.sets.get_mut(&set) else {
            // A push for a set forgotten or deleted here: nothing to update.
            tracing::debug!("push for unknown set id {:#x} dropped", p.set_id);
            return;
        };
        let Some(push) = rs.push.as_mut() else {
            let why = format!("push for set {:?} that is not registered", rs.name);
            return self.protocol_error(why);
        };
        let more = p.flags & request::PUSH_REPLY_F_MORE != 0;
        let (off, buf) = push.partial.get_or_insert_with(|| (p.data_off, BytesMut::new()));
        let (off, _) = (*off, ());
        buf.extend_from_slice(&p.data);
        if more {
            return;
        }
        let (_, buf) = push.partial.take().unwrap_or_default();
        let flags = p.flags & !request::PUSH_REPLY_F_MORE;
        let last = flags & request::UPD_F_PUSH_LAST != 0;
        if last {
            rs.push = None;
        }
        let data = buf.freeze();
        let result = if data.is_empty() {
            rs.last.clone().ok_or(OpError::BadImage("empty push before any data".into()))
        } else {
            push_snapshot(rs, off, &data)
        };
        self.events.push_back(ClientEvent::Push { set, flags, result });
    }

    fn expire(&mut self, now: Instant) {
        let due = self.ops.take_expired(now);
        if due.is_empty() {
            return;
        }
        for (op, p) in due {
            self.stale.insert(op.0);
            let e = OpError::TimedOut(p.timeout);
            tracing::debug!("LDMS operation {op:?} timed out");
            self.fail_op(op, p, e);
        }
        // Reads of expired ops are dropped with them.
        let ops = &self.ops;
        let stale = &mut self.stale;
        self.reads.retain(|ctxt, r| {
            let op = match r.kind {
                ReadKind::LookupMeta { op, .. }
                | ReadKind::Whole { op }
                | ReadKind::Meta { op }
                | ReadKind::Data { op } => op,
            };
            let keep = ops.contains_key(&op);
            if !keep {
                stale.insert(*ctxt);
            }
            keep
        });
    }

    fn fail_op(&mut self, op: OpId, p: Pending, e: OpError) {
        match p.op {
            Op::Dir { .. } => self.events.push_back(ClientEvent::Dir { op, result: Err(e) }),
            Op::Lookup { .. } => self.events.push_back(ClientEvent::Lookup { op, result: Err(e) }),
            Op::Update { set, .. } => {
                if let Some(rs) = self.sets.get_mut(&set) {
                    rs.updating = false;
                }
                self.events.push_back(ClientEvent::Update { op, set, result: Err(e) });
            }
            Op::DirCancel => {}
            Op::MsgSub { pattern, is_regex, unsub } => {
                let status =
                    MsgSubStatus { pattern, is_regex, unsubscribe: unsub, status: e.errno(), text: e.to_string() };
                self.events.push_back(ClientEvent::MsgSubStatus { op, status });
            }
        }
    }
}

fn snapshot(rs: &mut RemoteSet, bytes: Bytes) -> Result<Arc<SetSnapshot>, OpError> {
    // A copy of its own: a slice would keep the whole receive buffer it came in alive for
    // as long as the set's last snapshot lives, so with many sets every buffer stayed
    // pinned by some set and each read took fresh pages.
    let bytes = Bytes::copy_from_slice(&bytes);
    let prev = rs.last.as_ref().map(|s| s.data_gn());
    let snap = SetSnapshot::new(rs.meta.clone(), bytes, prev).map_err(|e| OpError::BadImage(e.to_string()))?;
    let snap = Arc::new(snap);
    rs.last = Some(snap.clone());
    Ok(snap)
}

/// A read at offset 0 of meta and data: the decoded meta and the data section's bytes
/// (values are decoded when a reader asks for them).
fn split_image(data: &Bytes) -> Result<(Arc<SetMeta>, Bytes), crate::set::SetError> {
    let meta = SetMeta::decode(data)?;
    let ms = meta.meta_sz as usize;
    let end = ms.checked_add(meta.data_sz as usize).filter(|&e| e <= data.len()).ok_or_else(|| {
        crate::set::SetError::BadSize(format!("image of {} bytes, meta_sz + data_sz is larger", data.len()))
    })?;
    Ok((Arc::new(meta), data.slice(ms..end)))
}

fn push_snapshot(rs: &mut RemoteSet, off: u32, data: &Bytes) -> Result<Arc<SetSnapshot>, OpError> {
    let bad = |e: crate::set::SetError| OpError::BadImage(e.to_string());
    if off == 0 {
        let (meta, bytes) = split_image(data).map_err(bad)?;
        rs.meta = meta;
        snapshot(rs, bytes)
    } else if off == rs.meta.meta_sz {
        if DataHeader::decode(&rs.meta, data).map_err(bad)?.meta_gn != rs.meta.meta_gn {
            return Err(OpError::BadImage("pushed data belongs to newer metadata".into()));
        }
        snapshot(rs, data.clone())
    } else {
        Err(OpError::BadImage(format!("push at offset {off}, neither 0 nor meta_sz {}", rs.meta.meta_sz)))
    }
}

impl StreamEndpoint for ClientConn {
    type Event = ClientEvent;

    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.set_now(now);
        if self.closed || self.close.is_some() {
            return;
        }
        self.session.handle_input(now, data);
        self.on_session_events(now);
        self.pump_msgs();
        self.finish_closing();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        if self.closed {
            return;
        }
        self.session.handle_timeout(now);
        self.on_session_events(now);
        self.expire(now);
        if let Some(t) = self.msg.credit_deadline(self.config.credit_timeout)
            && now >= t
        {
            let why = format!("the peer returned no message credit for {:?}", self.config.credit_timeout);
            self.protocol_error(why);
        }
        self.finish_closing();
    }

    fn poll_transmit(&mut self, now: Instant, room: usize, out: &mut BytesMut) {
        self.set_now(now);
        self.full_room = self.full_room.max(room);
        if !self.closed && self.close.is_none() {
            self.pump_msgs();
        }
        let before = out.len();
        self.session.poll_transmit(room, out);
        // Bytes added now leave the driver's buffer not empty.
        self.last_room = if out.len() == before { room } else { 0 };
        if !self.closed && self.close.is_none() {
            self.pump_msgs();
        }
        self.finish_closing();
    }

    fn wants_input(&self) -> bool {
        !self.msg.held_up()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.ops
            .next_deadline()
            .into_iter()
            .chain(self.session.poll_timeout())
            .chain(self.msg.credit_deadline(self.config.credit_timeout))
            .chain(self.closing.as_ref().map(|(_, until)| *until))
            .min()
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.clone()
    }

    fn handle_closed(&mut self, _now: Instant, reason: &CloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.msg.forget();
        let why = reason.to_string();
        for (op, p) in self.ops.drain_in_order() {
            self.fail_op(op, p, OpError::Disconnected(why.clone()));
        }
        self.reads.clear();
        let pushes: Vec<SetId> = self.sets.iter().filter(|(_, s)| s.push.is_some()).map(|(id, _)| *id).collect();
        for set in pushes {
            let e = OpError::Disconnected(why.clone());
            let flags = request::UPD_F_PUSH | request::UPD_F_PUSH_LAST | (e.errno() as u32 & request::UPD_ERROR_MASK);
            self.events.push_back(ClientEvent::Push { set, flags, result: Err(e) });
        }
        self.events.push_back(ClientEvent::Closed { reason: reason.clone(), was_connected: self.connected });
    }
}
