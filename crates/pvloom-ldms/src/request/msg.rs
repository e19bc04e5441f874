//! Requests and replies: the LDMS messages carried as SENDRECV data.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{Reader, RequestError, len32, take_cstr};
use super::*;

/// A `struct timespec` as ldmsd puts it on the wire: two 64-bit fields, seconds and
/// nanoseconds (their byte order depends on the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

/// An LDMS request: the header's xid and the command with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Opaque to the receiver (a pointer on the requester) and echoed by the reply; 0 in
    /// unsolicited messages.
    pub xid: u64,
    /// The command and its parameters.
    pub body: RequestBody,
}

/// A request's command and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// DIR (0): `flags` ([`DIR_F_NOTIFY`] or 0).
    Dir {
        /// Directory flags.
        flags: u32,
    },
    /// DIR_CANCEL (1), no parameters.
    DirCancel,
    /// LOOKUP (2).
    Lookup {
        /// [`LOOKUP_BY_INSTANCE`], [`LOOKUP_BY_SCHEMA`], optionally with [`LOOKUP_RE`].
        flags: u32,
        /// Instance name, schema name or regex, without the NUL the wire adds.
        path: Bytes,
    },
    /// REQ_NOTIFY (3).
    ReqNotify {
        /// The owner's set id (host order).
        set_id: u64,
        /// Events wanted.
        flags: u32,
    },
    /// CANCEL_NOTIFY (4).
    CancelNotify {
        /// The owner's set id (host order).
        set_id: u64,
    },
    /// CANCEL_PUSH (7).
    CancelPush {
        /// The owner's set id (host order).
        set_id: u64,
    },
    /// SET_DELETE (9), sent by a set's owner to each peer that looked it up.
    SetDelete {
        /// The instance name, without the NUL the wire adds.
        inst_name: Bytes,
    },
    /// SEND_QUOTA (10): returns send credit.
    SendQuota {
        /// Credit returned, in bytes.
        quota: u32,
        /// Status.
        rc: i32,
    },
    /// SEND_MSG (5): an application message.
    Send {
        /// The message.
        msg: Bytes,
    },
    /// Any other command (message service, auth, quota groups, transport-private); the
    /// parameters are kept as they came. `cmd` is never one of the commands above (such a
    /// value would decode as that command).
    Other {
        /// The command number.
        cmd: u32,
        /// Everything after the header.
        body: Bytes,
    },
}

impl RequestBody {
    /// The command number.
    pub fn cmd(&self) -> u32 {
        match self {
            RequestBody::Dir { .. } => CMD_DIR,
            RequestBody::DirCancel => CMD_DIR_CANCEL,
            RequestBody::Lookup { .. } => CMD_LOOKUP,
            RequestBody::ReqNotify { .. } => CMD_REQ_NOTIFY,
            RequestBody::CancelNotify { .. } => CMD_CANCEL_NOTIFY,
            RequestBody::CancelPush { .. } => CMD_CANCEL_PUSH,
            RequestBody::SetDelete { .. } => CMD_SET_DELETE,
            RequestBody::SendQuota { .. } => CMD_SEND_QUOTA,
            RequestBody::Send { .. } => CMD_SEND_MSG,
            RequestBody::Other { cmd, .. } => *cmd,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            RequestBody::Dir { .. } => 4,
            RequestBody::DirCancel => 0,
            RequestBody::Lookup { path, .. } => 8 + path.len() + 1,
            RequestBody::ReqNotify { .. } => 12,
            RequestBody::CancelNotify { .. } | RequestBody::CancelPush { .. } => 8,
            RequestBody::SetDelete { inst_name } => 4 + inst_name.len() + 1,
            RequestBody::SendQuota { .. } => 8,
            RequestBody::Send { msg } => 4 + msg.len(),
            RequestBody::Other { body, .. } => body.len(),
        }
    }
}

impl Request {
    /// A request.
    pub fn new(xid: u64, body: RequestBody) -> Self {
        Request { xid, body }
    }

    /// Length of the encoded request (the header's `len`).
    pub fn encoded_len(&self) -> usize {
        REQUEST_HDR_LEN + self.body.body_len()
    }

    /// Appends the encoded request.
    ///
    /// # Panics
    /// If the request would be longer than `u32::MAX` bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_header(dst, self.xid, self.body.cmd(), self.encoded_len());
        match &self.body {
            RequestBody::Dir { flags } => dst.put_u32(*flags),
            RequestBody::DirCancel => {}
            RequestBody::Lookup { flags, path } => {
                dst.put_u32(*flags);
                put_cstr(dst, path);
            }
            RequestBody::ReqNotify { set_id, flags } => {
                dst.put_u64_le(*set_id);
                dst.put_u32(*flags);
            }
            RequestBody::CancelNotify { set_id } | RequestBody::CancelPush { set_id } => dst.put_u64_le(*set_id),
            RequestBody::SetDelete { inst_name } => put_cstr(dst, inst_name),
            RequestBody::SendQuota { quota, rc } => {
                dst.put_u32(*quota);
                dst.put_i32(*rc);
            }
            RequestBody::Send { msg } => {
                dst.put_u32(len32(msg.len()));
                dst.put_slice(msg);
            }
            RequestBody::Other { body, .. } => dst.put_slice(body),
        }
    }

    /// Decodes a request from SENDRECV data (the command is not checked to be a request
    /// number; see [`decode`]).
    pub fn decode(data: &Bytes) -> Result<Request, RequestError> {
        let mut r = Reader::new(data.clone());
        let xid = r.le64("request header")?;
        let cmd = r.be32("request header")?;
        check_len(&mut r, data.len())?;
        let body = match cmd {
            CMD_DIR => RequestBody::Dir { flags: r.be32("DIR flags")? },
            CMD_DIR_CANCEL => RequestBody::DirCancel,
            CMD_LOOKUP => {
                let flags = r.be32("LOOKUP flags")?;
                let n = r.be32("LOOKUP path_len")? as usize;
                RequestBody::Lookup { flags, path: take_cstr(&mut r, n, "LOOKUP path")? }
            }
            CMD_REQ_NOTIFY => {
                RequestBody::ReqNotify { set_id: r.le64("REQ_NOTIFY set_id")?, flags: r.be32("REQ_NOTIFY flags")? }
            }
            CMD_CANCEL_NOTIFY => RequestBody::CancelNotify { set_id: r.le64("CANCEL_NOTIFY set_id")? },
            CMD_CANCEL_PUSH => RequestBody::CancelPush { set_id: r.le64("CANCEL_PUSH set_id")? },
            CMD_SET_DELETE => {
                let n = r.be32("SET_DELETE inst_name_len")? as usize;
                RequestBody::SetDelete { inst_name: take_cstr(&mut r, n, "SET_DELETE inst_name")? }
            }
            CMD_SEND_QUOTA => {
                let quota = r.be32("SEND_QUOTA quota")?;
                RequestBody::SendQuota { quota, rc: r.be32("SEND_QUOTA rc")? as i32 }
            }
            CMD_SEND_MSG => {
                let n = r.be32("SEND msg_len")? as usize;
                RequestBody::Send { msg: r.take(n, "SEND msg")? }
            }
            _ => RequestBody::Other { cmd, body: r.rest() },
        };
        r.finish(cmd)?;
        Ok(Request { xid, body })
    }
}

/// A REQ_NOTIFY_REPLY's event (`struct ldms_notify_event_s`, laid out naturally: 16 bytes
/// then the user data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyEvent {
    /// [`NOTIFY_SET_MODIFIED`] or [`NOTIFY_USER_DATA`].
    pub event_type: u32,
    /// The alignment gap after the type; ldmsd leaves it uninitialised.
    pub pad: [u8; 4],
    /// The upper half of the 64-bit length field. ldmsd stores a 32-bit `htonl` value in
    /// it, so this is zero from a little-endian sender.
    pub len_hi: [u8; 4],
    /// User data ([`NOTIFY_USER_DATA`]).
    pub data: Bytes,
}

/// Fixed part of a notify event.
const NOTIFY_EVENT_LEN: usize = 16;

/// A PUSH_REPLY body: a chunk of a set image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReply {
    /// The receiver's set id, from its push registration (host order).
    pub set_id: u64,
    /// [`UPD_F_PUSH`], [`UPD_F_PUSH_LAST`], [`PUSH_REPLY_F_MORE`].
    pub flags: u32,
    /// Offset of `data` in the set image (0: meta and data; `meta_sz`: data only).
    pub data_off: u32,
    /// The bytes of the set image at `data_off`.
    pub data: Bytes,
}

/// An LDMS reply: the header's xid and rc, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request's xid, echoed (0 for pushes).
    pub xid: u64,
    /// Status: 0 or an errno value.
    pub rc: u32,
    /// The command and its body.
    pub body: ReplyBody,
}

/// A reply's command and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// DIR_REPLY (0x101) or DIR_UPDATE_REPLY (0x103): `update` tells which.
    Dir {
        /// Whether this is a DIR_UPDATE_REPLY.
        update: bool,
        /// [`DIR_LIST`], [`DIR_DEL`], [`DIR_ADD`] or [`DIR_UPD`].
        dir_type: u32,
        /// Nonzero on all but the last part of a DIR_REPLY.
        more: u32,
        /// The sender's JSON length field, kept as sent. Receivers take the length from
        /// the header instead: ldmsd counts a NUL in DIR_UPDATE_REPLY that DIR_REPLY does
        /// not carry. [`dir::dir_reply`] and [`dir::dir_update_reply`] fill it as ldmsd does.
        json_data_len: u32,
        /// Everything after the fixed fields: the JSON document, with DIR_UPDATE_REPLY's
        /// trailing NUL ([`dir::json_text`] strips it).
        json: Bytes,
    },
    /// DIR_CANCEL_REPLY (0x102), no body.
    DirCancel,
    /// LOOKUP_REPLY (0x104), no body: a lookup that matched nothing (rc ENOENT).
    Lookup,
    /// REQ_NOTIFY_REPLY (0x105).
    ReqNotify(NotifyEvent),
    /// PUSH_REPLY (0x108).
    Push(PushReply),
    /// SET_DELETE_REPLY (0x10a): when the peer received the SET_DELETE (big-endian).
    SetDelete {
        /// Receive time.
        recv_ts: Timespec,
    },
    /// Any other reply; the body is kept as it came. `cmd` is a reply number other than
    /// those above.
    Other {
        /// The command number.
        cmd: u32,
        /// Everything after the header.
        body: Bytes,
    },
}

impl ReplyBody {
    /// The command number.
    pub fn cmd(&self) -> u32 {
        match self {
            ReplyBody::Dir { update: false, .. } => CMD_DIR_REPLY,
            ReplyBody::Dir { update: true, .. } => CMD_DIR_UPDATE_REPLY,
            ReplyBody::DirCancel => CMD_DIR_CANCEL_REPLY,
            ReplyBody::Lookup => CMD_LOOKUP_REPLY,
            ReplyBody::ReqNotify(_) => CMD_REQ_NOTIFY_REPLY,
            ReplyBody::Push(_) => CMD_PUSH_REPLY,
            ReplyBody::SetDelete { .. } => CMD_SET_DELETE_REPLY,
            ReplyBody::Other { cmd, .. } => *cmd,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            ReplyBody::Dir { json, .. } => 12 + json.len(),
            ReplyBody::DirCancel | ReplyBody::Lookup => 0,
            ReplyBody::ReqNotify(e) => NOTIFY_EVENT_LEN + e.data.len(),
            ReplyBody::Push(p) => 20 + p.data.len(),
            ReplyBody::SetDelete { .. } => 16,
            ReplyBody::Other { body, .. } => body.len(),
        }
    }
}

impl Reply {
    /// A reply.
    pub fn new(xid: u64, rc: u32, body: ReplyBody) -> Self {
        Reply { xid, rc, body }
    }

    /// Length of the encoded reply (the header's `len`).
    pub fn encoded_len(&self) -> usize {
        REPLY_HDR_LEN + self.body.body_len()
    }

    /// Appends the encoded reply.
    ///
    /// # Panics
    /// If the reply would be longer than `u32::MAX` bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        put_header(dst, self.xid, self.body.cmd(), self.encoded_len());
        dst.put_u32(self.rc);
        match &self.body {
            ReplyBody::Dir { dir_type, more, json_data_len, json, .. } => {
                dst.put_u32(*dir_type);
                dst.put_u32(*more);
                dst.put_u32(*json_data_len);
                dst.put_slice(json);
            }
            ReplyBody::DirCancel | ReplyBody::Lookup => {}
            ReplyBody::ReqNotify(e) => {
                dst.put_u32(e.event_type);
                dst.put_slice(&e.pad);
                dst.put_u32(len32(NOTIFY_EVENT_LEN + e.data.len()));
                dst.put_slice(&e.len_hi);
                dst.put_slice(&e.data);
            }
            ReplyBody::Push(p) => {
                dst.put_u64_le(p.set_id);
                dst.put_u32(p.flags);
                dst.put_u32(p.data_off);
                dst.put_u32(len32(p.data.len()));
                dst.put_slice(&p.data);
            }
            ReplyBody::SetDelete { recv_ts } => {
                dst.put_i64(recv_ts.sec);
                dst.put_i64(recv_ts.nsec);
            }
            ReplyBody::Other { body, .. } => dst.put_slice(body),
        }
    }

    /// Decodes a reply from SENDRECV data (the command is not checked to be a reply
    /// number; see [`decode`]).
    pub fn decode(data: &Bytes) -> Result<Reply, RequestError> {
        let mut r = Reader::new(data.clone());
        let xid = r.le64("reply header")?;
        let cmd = r.be32("reply header")?;
        check_len(&mut r, data.len())?;
        let rc = r.be32("reply header")?;
        let body = match cmd {
            CMD_DIR_REPLY | CMD_DIR_UPDATE_REPLY => ReplyBody::Dir {
                update: cmd == CMD_DIR_UPDATE_REPLY,
                dir_type: r.be32("dir reply type")?,
                more: r.be32("dir reply more")?,
                json_data_len: r.be32("dir reply json_data_len")?,
                json: r.rest(),
            },
            CMD_DIR_CANCEL_REPLY => ReplyBody::DirCancel,
            CMD_LOOKUP_REPLY => ReplyBody::Lookup,
            CMD_REQ_NOTIFY_REPLY => {
                let event_type = r.be32("notify event type")?;
                let pad = r.array("notify event")?;
                let len = r.be32("notify event len")?;
                let len_hi = r.array("notify event len")?;
                let data = r.rest();
                if len as usize != NOTIFY_EVENT_LEN + data.len() {
                    return Err(RequestError::NotifyLen { len, actual: NOTIFY_EVENT_LEN + data.len() });
                }
                ReplyBody::ReqNotify(NotifyEvent { event_type, pad, len_hi, data })
            }
            CMD_PUSH_REPLY => {
                let set_id = r.le64("PUSH_REPLY set_id")?;
                let flags = r.be32("PUSH_REPLY flags")?;
                let data_off = r.be32("PUSH_REPLY data_off")?;
                let n = r.be32("PUSH_REPLY data_len")? as usize;
                ReplyBody::Push(PushReply { set_id, flags, data_off, data: r.take(n, "PUSH_REPLY data")? })
            }
            CMD_SET_DELETE_REPLY => {
                let sec = r.be64("SET_DELETE_REPLY recv_ts")? as i64;
                let nsec = r.be64("SET_DELETE_REPLY recv_ts")? as i64;
                ReplyBody::SetDelete { recv_ts: Timespec { sec, nsec } }
            }
            _ => ReplyBody::Other { cmd, body: r.rest() },
        };
        r.finish(cmd)?;
        Ok(Reply { xid, rc, body })
    }
}

/// An LDMS message carried as SENDRECV data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request (command below 0x100, or transport-private).
    Request(Request),
    /// A reply (command `0x100..0x80000000`).
    Reply(Reply),
}

impl Message {
    /// Length of the encoded message.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Request(q) => q.encoded_len(),
            Message::Reply(p) => p.encoded_len(),
        }
    }
}

/// The body of SENDRECV data that is a well-formed MSG request (command and header
/// length checked), borrowed: the message path's hot case, read without building a
/// [`Request`]. Anything else is `None` and goes through [`decode`].
pub fn msg_body(data: &[u8]) -> Option<&[u8]> {
    if data.len() < REQUEST_HDR_LEN {
        return None;
    }
    let be = |o: usize| u32::from_be_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    (be(8) == CMD_MSG && be(12) as usize == data.len()).then(|| &data[REQUEST_HDR_LEN..])
}

/// Decodes SENDRECV data into a request or a reply, by its command number.
pub fn decode(data: &Bytes) -> Result<Message, RequestError> {
    if data.len() < REQUEST_HDR_LEN {
        return Err(RequestError::Truncated { what: "LDMS header", need: REQUEST_HDR_LEN, have: data.len() });
    }
    let cmd = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    if is_reply_cmd(cmd) {
        Reply::decode(data).map(Message::Reply)
    } else {
        Request::decode(data).map(Message::Request)
    }
}

/// Appends the encoded message (the SENDRECV data).
///
/// # Panics
/// If the message would be longer than `u32::MAX` bytes.
pub fn encode(msg: &Message, dst: &mut BytesMut) {
    match msg {
        Message::Request(q) => q.encode(dst),
        Message::Reply(p) => p.encode(dst),
    }
}

/// Reserves room for a `len`-byte message and appends the header fields common to
/// requests and replies.
fn put_header(dst: &mut BytesMut, xid: u64, cmd: u32, len: usize) {
    dst.reserve(len);
    dst.put_u64_le(xid);
    dst.put_u32(cmd);
    dst.put_u32(len32(len));
}

/// Reads the header's `len` and checks it against the message length.
fn check_len(r: &mut Reader, actual: usize) -> Result<(), RequestError> {
    let len = r.be32("LDMS header len")?;
    if len as usize != actual {
        return Err(RequestError::HeaderLen { len, actual });
    }
    Ok(())
}

/// A length-prefixed, NUL-terminated string field (the length counts the NUL).
fn put_cstr(dst: &mut BytesMut, s: &[u8]) {
    dst.put_u32(len32(s.len() + 1));
    dst.put_slice(s);
    dst.put_u8(0);
}
