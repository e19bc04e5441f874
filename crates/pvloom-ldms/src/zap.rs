//! The `sock` zap transport's framing, sans-I/O.
//!
//! Every frame starts with a 20-byte header:
//!
//! | off | size | field | order |
//! |---|---|---|---|
//! | 0 | 2 | message type ([`MsgType`]) | BE |
//! | 2 | 2 | reserved (0) | BE |
//! | 4 | 4 | frame length, header included | BE |
//! | 8 | 4 | xid | host |
//! | 12 | 8 | ctxt (opaque) | host |
//!
//! "Host" fields are copied from the sender's memory unconverted. They are opaque to the
//! receiver; this module reads and writes them little-endian (the byte order of every known
//! peer, x86_64 and aarch64), so whatever the sender's order, a decoded frame re-encodes to
//! the same bytes.
//!
//! [`Frame`] is one whole frame, [`FrameDecoder`] cuts a byte stream into frames without
//! copying payloads, and [`RailConnMsg`] is the LDMS rail connect message carried by
//! CONNECT and ACCEPTED.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the header every frame starts with.
pub const HEADER_LEN: usize = 20;
/// Largest frame a receiver accepts, except READ_RESP and WRITE_REQ.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Largest SENDRECV payload a sender builds (`MAX_FRAME_LEN` − 40).
pub const MAX_SENDRECV_DATA: usize = MAX_FRAME_LEN - 40;
/// Default bound on READ_RESP and WRITE_REQ frames in [`FrameDecoder`] (64 MiB).
pub const DEFAULT_MAX_BULK_LEN: usize = 64 << 20;
/// The zap version a CONNECT carries (1.3.1.0; the receiver checks major.minor).
pub const ZAP_VERSION: [u8; 4] = [1, 3, 1, 0];
/// The CONNECT signature of the sock transport.
pub const SOCK_SIGNATURE: [u8; 8] = *b"SOCKET\0\0";
/// RENDEZVOUS access bit: the peer may write.
pub const ACCESS_WRITE: u32 = 1;
/// RENDEZVOUS access bit: the peer may read.
pub const ACCESS_READ: u32 = 2;

/// Malformed input, or a decoder limit hit. Framing errors are fatal to the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZapError {
    /// Fewer bytes than a complete frame (only from [`Frame::decode`]).
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The type field holds no known message type.
    #[error("unknown zap message type {0}")]
    UnknownType(u16),
    /// The length field is shorter than the fixed part of the type.
    #[error("{msg_type:?} frame length {len} is below its minimum {min}")]
    TooShort {
        /// The message type.
        msg_type: MsgType,
        /// The frame length.
        len: usize,
        /// The fixed part of the type.
        min: usize,
    },
    /// The length field is above the limit for the type.
    #[error("{msg_type:?} frame length {len} exceeds the limit {limit}")]
    TooLong {
        /// The message type.
        msg_type: MsgType,
        /// The frame length.
        len: usize,
        /// The limit that applies.
        limit: usize,
    },
    /// A fixed-size frame has a different length.
    #[error("{msg_type:?} frame length {len}, expected {expected}")]
    WrongLength {
        /// The message type.
        msg_type: MsgType,
        /// The frame length.
        len: usize,
        /// The length of the type.
        expected: usize,
    },
    /// A `data_len` field disagrees with the frame length.
    #[error("{msg_type:?} data_len {data_len} but the frame holds {avail} data bytes")]
    DataLen {
        /// The message type.
        msg_type: MsgType,
        /// The data_len field.
        data_len: usize,
        /// Data bytes after the fixed part.
        avail: usize,
    },
    /// A rail connect message is not 64 bytes.
    #[error("rail connect message of {0} bytes, expected 64")]
    ConnMsgLen(usize),
    /// More bytes pushed than the decoder may buffer without frames being pulled.
    #[error("decoder buffer limit: {buffered} + {pushed} bytes exceed {limit}")]
    BufferFull {
        /// Bytes already buffered.
        buffered: usize,
        /// Bytes pushed.
        pushed: usize,
        /// The limit.
        limit: usize,
    },
    /// The decoder already failed; the stream cannot be resynchronised.
    #[error("the stream failed earlier and cannot be decoded further")]
    Failed,
}

/// The header's message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MsgType {
    /// Connection request (carries zap version, signature and connect data).
    Connect = 1,
    /// A regular message.
    SendRecv = 2,
    /// Shares a memory region with the peer.
    Rendezvous = 3,
    /// Reads a peer's region.
    ReadReq = 4,
    /// Data for a READ_REQ.
    ReadResp = 5,
    /// Writes a peer's region.
    WriteReq = 6,
    /// Completion of a WRITE_REQ.
    WriteResp = 7,
    /// The connection is accepted (carries accept data).
    Accepted = 8,
    /// The connection is rejected (carries reject data).
    Rejected = 9,
    /// Acknowledges ACCEPTED.
    AckAccepted = 10,
}

impl MsgType {
    /// The type for a wire value.
    pub fn from_u16(v: u16) -> Result<Self, ZapError> {
        Ok(match v {
            1 => Self::Connect,
            2 => Self::SendRecv,
            3 => Self::Rendezvous,
            4 => Self::ReadReq,
            5 => Self::ReadResp,
            6 => Self::WriteReq,
            7 => Self::WriteResp,
            8 => Self::Accepted,
            9 => Self::Rejected,
            10 => Self::AckAccepted,
            _ => return Err(ZapError::UnknownType(v)),
        })
    }

    /// Length of the fixed part (header included); the minimum frame length.
    pub fn fixed_len(self) -> usize {
        match self {
            Self::Connect => 36,
            Self::SendRecv | Self::Accepted | Self::Rejected | Self::AckAccepted => 24,
            Self::Rendezvous => 40,
            Self::ReadReq | Self::ReadResp | Self::WriteReq => 36,
            Self::WriteResp => 24,
        }
    }

    /// Whether the type is exempt from the 1 MiB frame limit.
    pub fn is_bulk(self) -> bool {
        matches!(self, Self::ReadResp | Self::WriteReq)
    }
}

/// The 20-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MsgType,
    /// Reserved, sent as 0.
    pub reserved: u16,
    /// Frame length, header included.
    pub len: u32,
    /// Transaction id (host order, opaque).
    pub xid: u32,
    /// User context (host order, opaque).
    pub ctxt: u64,
}

impl Header {
    /// Decodes a header from the first 20 bytes of `b`.
    pub fn decode(b: &[u8]) -> Result<Self, ZapError> {
        if b.len() < HEADER_LEN {
            return Err(ZapError::Truncated { need: HEADER_LEN, have: b.len() });
        }
        let msg_type = MsgType::from_u16(u16::from_be_bytes([b[0], b[1]]))?;
        let hdr = Header {
            msg_type,
            reserved: u16::from_be_bytes([b[2], b[3]]),
            len: be32(b, 4),
            xid: le32(b, 8),
            ctxt: le64(b, 12),
        };
        let len = hdr.len as usize;
        let min = msg_type.fixed_len();
        if len < min {
            return Err(ZapError::TooShort { msg_type, len, min });
        }
        Ok(hdr)
    }

    /// Appends the header.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u16(self.msg_type as u16);
        dst.put_u16(self.reserved);
        dst.put_u32(self.len);
        dst.put_u32_le(self.xid);
        dst.put_u64_le(self.ctxt);
    }
}

/// CONNECT body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Zap version, [`ZAP_VERSION`].
    pub version: [u8; 4],
    /// [`SOCK_SIGNATURE`].
    pub signature: [u8; 8],
    /// Connect data (for LDMS a [`RailConnMsg`]).
    pub data: Bytes,
}

impl Connect {
    /// A CONNECT carrying `msg`.
    pub fn new(msg: &RailConnMsg) -> Self {
        Connect { version: ZAP_VERSION, signature: SOCK_SIGNATURE, data: msg.to_bytes() }
    }

    /// Whether version major.minor and signature are what a sock receiver accepts.
    pub fn is_compatible(&self) -> bool {
        self.version[..2] == ZAP_VERSION[..2] && self.signature == SOCK_SIGNATURE
    }
}

/// RENDEZVOUS body: a region the peer may access, and the application's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// Map key (host order).
    pub map_key: u32,
    /// Access bits ([`ACCESS_READ`], [`ACCESS_WRITE`]).
    pub access: u32,
    /// Region address.
    pub addr: u64,
    /// Region length.
    pub len: u32,
    /// Application message (LDMS rendezvous message), the rest of the frame.
    pub msg: Bytes,
}

/// READ_REQ body (36-byte frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadReq {
    /// Map key from the peer's RENDEZVOUS (host order).
    pub map_key: u32,
    /// Absolute source address (region address + offset).
    pub src_ptr: u64,
    /// Bytes to read.
    pub len: u32,
}

/// READ_RESP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResp {
    /// Status (0 success).
    pub status: u16,
    /// The two padding bytes after the status, kept as received.
    pub pad: [u8; 2],
    /// Destination pointer (ldmsd sends 0).
    pub dst_ptr: u64,
    /// The data read.
    pub data: Bytes,
}

/// WRITE_REQ body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReq {
    /// Destination map key (host order).
    pub map_key: u32,
    /// Destination address.
    pub dst_ptr: u64,
    /// Data to write.
    pub data: Bytes,
}

/// WRITE_RESP body (24-byte frame: status and two padding bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResp {
    /// Status (0 success).
    pub status: u16,
    /// Padding after the status, kept as received.
    pub pad: [u8; 2],
}

/// A frame body, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// CONNECT (1).
    Connect(Connect),
    /// SENDRECV (2): `data_len` then data.
    SendRecv(Bytes),
    /// RENDEZVOUS (3).
    Rendezvous(Rendezvous),
    /// READ_REQ (4).
    ReadReq(ReadReq),
    /// READ_RESP (5).
    ReadResp(ReadResp),
    /// WRITE_REQ (6).
    WriteReq(WriteReq),
    /// WRITE_RESP (7).
    WriteResp(WriteResp),
    /// ACCEPTED (8) with accept data (for LDMS a [`RailConnMsg`]).
    Accepted(Bytes),
    /// REJECTED (9) with reject data.
    Rejected(Bytes),
    /// ACK_ACCEPTED (10); `data_len` then data (empty in practice).
    AckAccepted(Bytes),
}

impl Msg {
    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Msg::Connect(_) => MsgType::Connect,
            Msg::SendRecv(_) => MsgType::SendRecv,
            Msg::Rendezvous(_) => MsgType::Rendezvous,
            Msg::ReadReq(_) => MsgType::ReadReq,
            Msg::ReadResp(_) => MsgType::ReadResp,
            Msg::WriteReq(_) => MsgType::WriteReq,
            Msg::WriteResp(_) => MsgType::WriteResp,
            Msg::Accepted(_) => MsgType::Accepted,
            Msg::Rejected(_) => MsgType::Rejected,
            Msg::AckAccepted(_) => MsgType::AckAccepted,
        }
    }

    fn var_len(&self) -> usize {
        match self {
            Msg::Connect(c) => c.data.len(),
            Msg::SendRecv(d) | Msg::Accepted(d) | Msg::Rejected(d) | Msg::AckAccepted(d) => d.len(),
            Msg::Rendezvous(r) => r.msg.len(),
            Msg::ReadReq(_) | Msg::WriteResp(_) => 0,
            Msg::ReadResp(r) => r.data.len(),
            Msg::WriteReq(w) => w.data.len(),
        }
    }
}

/// One whole zap frame: the header's opaque fields and the typed body. The length and
/// `data_len` fields are derived from the body on encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header reserved field (0).
    pub reserved: u16,
    /// Header xid (host order).
    pub xid: u32,
    /// Header ctxt (host order).
    pub ctxt: u64,
    /// The body.
    pub msg: Msg,
}

impl Frame {
    /// A frame with reserved 0 and ctxt 0.
    pub fn new(xid: u32, msg: Msg) -> Self {
        Frame { reserved: 0, xid, ctxt: 0, msg }
    }

    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        self.msg.msg_type()
    }

    /// Length of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        self.msg_type().fixed_len() + self.msg.var_len()
    }

    /// Appends the encoded frame.
    ///
    /// # Panics
    /// If the frame would be longer than `u32::MAX` bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        let len = self.encoded_len();
        let len32 = u32::try_from(len).expect("zap frame longer than u32::MAX");
        dst.reserve(len);
        Header { msg_type: self.msg_type(), reserved: self.reserved, len: len32, xid: self.xid, ctxt: self.ctxt }
            .encode(dst);
        let dlen = |d: &Bytes| d.len() as u32; // bounded by len32 above
        match &self.msg {
            Msg::Connect(c) => {
                dst.put_slice(&c.version);
                dst.put_slice(&c.signature);
                dst.put_u32(dlen(&c.data));
                dst.put_slice(&c.data);
            }
            Msg::SendRecv(d) | Msg::Accepted(d) | Msg::Rejected(d) | Msg::AckAccepted(d) => {
                dst.put_u32(dlen(d));
                dst.put_slice(d);
            }
            Msg::Rendezvous(r) => {
                dst.put_u32_le(r.map_key);
                dst.put_u32(r.access);
                dst.put_u64(r.addr);
                dst.put_u32(r.len);
                dst.put_slice(&r.msg);
            }
            Msg::ReadReq(r) => {
                dst.put_u32_le(r.map_key);
                dst.put_u64(r.src_ptr);
                dst.put_u32(r.len);
            }
            Msg::ReadResp(r) => {
                dst.put_u16(r.status);
                dst.put_slice(&r.pad);
                dst.put_u64(r.dst_ptr);
                dst.put_u32(dlen(&r.data));
                dst.put_slice(&r.data);
            }
            Msg::WriteReq(w) => {
                dst.put_u32_le(w.map_key);
                dst.put_u64(w.dst_ptr);
                dst.put_u32(dlen(&w.data));
                dst.put_slice(&w.data);
            }
            Msg::WriteResp(w) => {
                dst.put_u16(w.status);
                dst.put_slice(&w.pad);
            }
        }
    }

    /// Appends a READ_RESP carrying `data`, byte for byte what encoding a
    /// [`Msg::ReadResp`] frame gives, without first copying `data` into a frame (a
    /// server answers reads straight from a set's image).
    ///
    /// # Panics
    /// If the frame would be longer than `u32::MAX` bytes.
    pub fn encode_read_resp(xid: u32, ctxt: u64, status: u16, data: &[u8], dst: &mut BytesMut) {
        let len = MsgType::ReadResp.fixed_len() + data.len();
        let len32 = u32::try_from(len).expect("zap frame longer than u32::MAX");
        dst.reserve(len);
        Header { msg_type: MsgType::ReadResp, reserved: 0, len: len32, xid, ctxt }.encode(dst);
        dst.put_u16(status);
        dst.put_slice(&[0; 2]);
        dst.put_u64(0);
        dst.put_u32(data.len() as u32);
        dst.put_slice(data);
    }

    /// Decodes one whole frame; `buf` must hold exactly the frame's length (the header's
    /// length field) or more, and the rest is ignored. Payloads are slices of `buf`.
    /// No size limit applies here; [`FrameDecoder`] enforces them.
    pub fn decode(buf: &Bytes) -> Result<Frame, ZapError> {
        let hdr = Header::decode(buf)?;
        let len = hdr.len as usize;
        if buf.len() < len {
            return Err(ZapError::Truncated { need: len, have: buf.len() });
        }
        Self::decode_body(hdr, buf.slice(..len))
    }

    /// Decodes the body of a frame whose header is `hdr`; `fr` is the whole frame.
    fn decode_body(hdr: Header, mut fr: Bytes) -> Result<Frame, ZapError> {
        let msg_type = hdr.msg_type;
        if msg_type == MsgType::SendRecv {
            // The hot case, taken whole: the frame's bytes become the data without a
            // second reference to the read buffer.
            let (len, fixed) = (fr.len(), msg_type.fixed_len());
            let data_len = be32(&fr, 20) as usize;
            if data_len != len - fixed {
                return Err(ZapError::DataLen { msg_type, data_len, avail: len - fixed });
            }
            fr.advance(fixed);
            return Ok(Frame { reserved: hdr.reserved, xid: hdr.xid, ctxt: hdr.ctxt, msg: Msg::SendRecv(fr) });
        }
        let len = fr.len();
        let fixed = msg_type.fixed_len();
        let exact = |expected: usize| {
            if len == expected { Ok(()) } else { Err(ZapError::WrongLength { msg_type, len, expected }) }
        };
        let data = |off: usize| -> Result<Bytes, ZapError> {
            let data_len = be32(&fr, off) as usize;
            let avail = len - fixed;
            if data_len != avail {
                return Err(ZapError::DataLen { msg_type, data_len, avail });
            }
            Ok(fr.slice(fixed..))
        };
        let msg = match msg_type {
            MsgType::Connect => {
                Msg::Connect(Connect { version: arr(&fr, 20), signature: arr(&fr, 24), data: data(32)? })
            }
            MsgType::SendRecv => Msg::SendRecv(data(20)?),
            MsgType::Accepted => Msg::Accepted(data(20)?),
            MsgType::Rejected => Msg::Rejected(data(20)?),
            MsgType::AckAccepted => Msg::AckAccepted(data(20)?),
            MsgType::Rendezvous => Msg::Rendezvous(Rendezvous {
                map_key: le32(&fr, 20),
                access: be32(&fr, 24),
                addr: be64(&fr, 28),
                len: be32(&fr, 36),
                msg: fr.slice(40..),
            }),
            MsgType::ReadReq => {
                exact(36)?;
                Msg::ReadReq(ReadReq { map_key: le32(&fr, 20), src_ptr: be64(&fr, 24), len: be32(&fr, 32) })
            }
            MsgType::ReadResp => Msg::ReadResp(ReadResp {
                status: u16::from_be_bytes(arr(&fr, 20)),
                pad: arr(&fr, 22),
                dst_ptr: be64(&fr, 24),
                data: data(32)?,
            }),
            MsgType::WriteReq => {
                Msg::WriteReq(WriteReq { map_key: le32(&fr, 20), dst_ptr: be64(&fr, 24), data: data(32)? })
            }
            MsgType::WriteResp => {
                exact(24)?;
                Msg::WriteResp(WriteResp { status: u16::from_be_bytes(arr(&fr, 20)), pad: arr(&fr, 22) })
            }
        };
        Ok(Frame { reserved: hdr.reserved, xid: hdr.xid, ctxt: hdr.ctxt, msg })
    }
}

/// Cuts a byte stream into [`Frame`]s: [`push`](Self::push) bytes as they arrive,
/// then [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
///
/// Each byte is copied once into the buffer; frames are split off its front and their
/// payloads are shared slices of it. A frame's length is checked as soon as its header is
/// in: at most [`MAX_FRAME_LEN`] bytes, or `max_bulk_len` for READ_RESP and WRITE_REQ.
/// Pushing more than `max_buffered` bytes without pulling frames fails. After any error
/// the decoder stays failed ([`ZapError::Failed`]).
///
/// ```
/// use bytes::BytesMut;
/// use pvloom_ldms::zap::{Connect, Frame, FrameDecoder, Msg, RailConnMsg};
///
/// let mut wire = BytesMut::new();
/// Frame::new(1, Msg::Connect(Connect::new(&RailConnMsg::new(4242, 1, true)))).encode(&mut wire);
/// Frame::new(2, Msg::AckAccepted(Default::default())).encode(&mut wire);
///
/// let mut dec = FrameDecoder::new();
/// let mut frames = Vec::new();
/// for piece in wire.chunks(7) {
///     dec.push(piece)?;
///     while let Some(frame) = dec.next_frame()? {
///         frames.push(frame);
///     }
/// }
/// assert_eq!(frames.len(), 2);
/// let Msg::Connect(c) = &frames[0].msg else { unreachable!() };
/// assert_eq!(RailConnMsg::decode(&c.data)?.pid, 4242);
/// # Ok::<(), pvloom_ldms::zap::ZapError>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame_len: usize,
    max_bulk_len: usize,
    max_buffered: usize,
    failed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with the ldmsd limits and a 64 MiB bound on READ_RESP/WRITE_REQ.
    pub fn new() -> Self {
        Self::with_limits(MAX_FRAME_LEN, DEFAULT_MAX_BULK_LEN)
    }

    /// A decoder with the given frame limits; it buffers at most the larger limit plus
    /// 1 MiB.
    pub fn with_limits(max_frame_len: usize, max_bulk_len: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame_len,
            max_bulk_len,
            max_buffered: max_frame_len.max(max_bulk_len).saturating_add(MAX_FRAME_LEN),
            failed: false,
        }
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether an error ended the stream.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ZapError> {
        if self.failed {
            return Err(ZapError::Failed);
        }
        if self.buf.len().saturating_add(data.len()) > self.max_buffered {
            self.failed = true;
            return Err(ZapError::BufferFull {
                buffered: self.buf.len(),
                pushed: data.len(),
                limit: self.max_buffered,
            });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ZapError> {
        if self.failed {
            return Err(ZapError::Failed);
        }
        match self.try_next() {
            Err(e) => {
                self.failed = true;
                Err(e)
            }
            ok => ok,
        }
    }

    fn try_next(&mut self) -> Result<Option<Frame>, ZapError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let hdr = Header::decode(&self.buf)?;
        let len = hdr.len as usize;
        let limit = if hdr.msg_type.is_bulk() { self.max_bulk_len } else { self.max_frame_len };
        if len > limit {
            return Err(ZapError::TooLong { msg_type: hdr.msg_type, len, limit });
        }
        if self.buf.len() < len {
            // Room for the rest of this frame, once (may reclaim the consumed front).
            self.buf.reserve(len - self.buf.len());
            return Ok(None);
        }
        let fr = self.buf.split_to(len).freeze();
        Frame::decode_body(hdr, fr).map(Some)
    }
}

/// LDMS protocol version 4.2.0.0.
pub const LDMS_VERSION: [u8; 4] = [4, 2, 0, 0];
/// Rail connect message `conn_type` of a rail.
pub const CONN_TYPE_RAIL: u32 = 1;
/// Encoded length of [`RailConnMsg`].
pub const RAIL_CONN_MSG_LEN: usize = 64;

/// The LDMS rail connect message (64 bytes, all numbers BE), the data of CONNECT and
/// ACCEPTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RailConnMsg {
    /// LDMS version, [`LDMS_VERSION`].
    pub ldms_version: [u8; 4],
    /// Authentication plugin name, NUL-padded (`"none"`).
    pub auth_name: [u8; 16],
    /// [`CONN_TYPE_RAIL`].
    pub conn_type: u32,
    /// Rate limit (`u64::MAX` = unlimited).
    pub rate_limit: u64,
    /// Receive quota (`u64::MAX` = unlimited).
    pub recv_quota: u64,
    /// Endpoints in the rail.
    pub n_eps: u32,
    /// This endpoint's index in the rail.
    pub idx: u32,
    /// The sender's process id.
    pub pid: u32,
    /// Rail generation number (incremented per connect attempt).
    pub rail_gn: u64,
    /// Whether the message service is enabled (0/1).
    pub msg_enabled: u32,
}

impl RailConnMsg {
    /// A one-endpoint rail with auth `none`, unlimited rate and quota.
    pub fn new(pid: u32, rail_gn: u64, msg_enabled: bool) -> Self {
        let mut auth_name = [0; 16];
        auth_name[..4].copy_from_slice(b"none");
        RailConnMsg {
            ldms_version: LDMS_VERSION,
            auth_name,
            conn_type: CONN_TYPE_RAIL,
            rate_limit: u64::MAX,
            recv_quota: u64::MAX,
            n_eps: 1,
            idx: 0,
            pid,
            rail_gn,
            msg_enabled: u32::from(msg_enabled),
        }
    }

    /// The auth name up to its first NUL.
    pub fn auth_name(&self) -> &[u8] {
        let end = self.auth_name.iter().position(|&b| b == 0).unwrap_or(16);
        &self.auth_name[..end]
    }

    /// Decodes the 64-byte message.
    pub fn decode(b: &[u8]) -> Result<Self, ZapError> {
        if b.len() != RAIL_CONN_MSG_LEN {
            return Err(ZapError::ConnMsgLen(b.len()));
        }
        let ldms_version = arr(b, 0);
        let auth_name = arr(b, 4);
        let mut r = &b[20..];
        Ok(RailConnMsg {
            ldms_version,
            auth_name,
            conn_type: r.get_u32(),
            rate_limit: r.get_u64(),
            recv_quota: r.get_u64(),
            n_eps: r.get_u32(),
            idx: r.get_u32(),
            pid: r.get_u32(),
            rail_gn: r.get_u64(),
            msg_enabled: r.get_u32(),
        })
    }

    /// Appends the 64-byte message.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(RAIL_CONN_MSG_LEN);
        dst.put_slice(&self.ldms_version);
        dst.put_slice(&self.auth_name);
        dst.put_u32(self.conn_type);
        dst.put_u64(self.rate_limit);
        dst.put_u64(self.recv_quota);
        dst.put_u32(self.n_eps);
        dst.put_u32(self.idx);
        dst.put_u32(self.pid);
        dst.put_u64(self.rail_gn);
        dst.put_u32(self.msg_enabled);
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(RAIL_CONN_MSG_LEN);
        self.encode(&mut b);
        b.freeze()
    }
}

// Callers check lengths first (fixed_len ≤ frame length), so these never go out of range.
fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}
fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(arr(b, off))
}
fn be64(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(arr(b, off))
}
fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(arr(b, off))
}
fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(arr(b, off))
}
