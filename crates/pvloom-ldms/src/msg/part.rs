//! The MSG part header (`struct ldms_msg_part_param`) and the source address.

use bytes::{BufMut, Bytes, BytesMut};

use super::MsgError;
use crate::request::{CMD_MSG, LDMS_MSG_MAX, REQUEST_HDR_LEN, Request, RequestBody};

/// Size of the part header after the request header: source address (20), `msg_gn` (8),
/// the `more`/`first` bitfield (4).
pub const PART_HDR_LEN: usize = 32;

/// Most part bytes pvloom puts in one MSG so that the request fits [`LDMS_MSG_MAX`].
/// (ldmsd fills parts up to its rail's `max_msg`, 20 bytes more.)
pub const PART_PAYLOAD_MAX: usize = LDMS_MSG_MAX - REQUEST_HDR_LEN - PART_HDR_LEN;

/// Bit 0 of the part bitfield (host order): more parts follow.
const F_MORE: u32 = 1;
/// Bit 1: this is the message's first part.
const F_FIRST: u32 = 2;

/// A message's source (`struct ldms_addr`, 20 bytes): all zero when the publisher is
/// local or the peer is on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct LdmsAddr {
    /// Address family (`AF_INET` 2, `AF_INET6` 10, or 0); big-endian on the wire.
    pub family: u16,
    /// Port; big-endian on the wire.
    pub port: u16,
    /// Address: bytes 0..4 for IPv4, all 16 for IPv6, in network order.
    pub addr: [u8; 16],
}

impl LdmsAddr {
    /// Encoded size.
    pub const LEN: usize = 20;

    /// Decodes the 20 bytes at the start of `b` (the caller checks the length).
    pub(crate) fn from_slice(b: &[u8]) -> LdmsAddr {
        let mut addr = [0; 16];
        addr.copy_from_slice(&b[4..20]);
        LdmsAddr { family: u16::from_be_bytes([b[0], b[1]]), port: u16::from_be_bytes([b[2], b[3]]), addr }
    }

    /// Appends the 20 encoded bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u16(self.family);
        dst.put_u16(self.port);
        dst.put_slice(&self.addr);
    }
}

/// One MSG (cmd 11) request body: the part header and the part's bytes. The first part
/// of a message begins with the 384-byte [`super::MsgHeader`]; the parts' bytes
/// concatenated are the whole [`super::Msg`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgPart {
    /// Source of the message (with `msg_gn`, the reassembly key).
    pub src: LdmsAddr,
    /// The publisher's message number (a per-process counter from 0).
    pub msg_gn: u64,
    /// More parts follow.
    pub more: bool,
    /// This is the first part.
    pub first: bool,
    /// The bitfield's other 30 bits as sent, in place (bits 2..32). ldmsd never
    /// initialises them (its request buffer comes from `malloc`), nothing reads them, and
    /// pvloom sends 0; kept so that a decoded part re-encodes to its bytes.
    pub reserved: u32,
    /// The part's bytes.
    pub payload: Bytes,
}

/// A part borrowed from the frame it came in: what the reassembler reads, which copies
/// the bytes it keeps (so a part costs no reference-count traffic on the read buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRef<'a> {
    /// Source of the message.
    pub src: LdmsAddr,
    /// The publisher's message number.
    pub msg_gn: u64,
    /// More parts follow.
    pub more: bool,
    /// This is the first part.
    pub first: bool,
    /// The part's bytes.
    pub payload: &'a [u8],
}

impl<'a> PartRef<'a> {
    /// Decodes an MSG body (everything after the request header).
    pub fn decode(body: &'a [u8]) -> Result<PartRef<'a>, MsgError> {
        if body.len() < PART_HDR_LEN {
            return Err(MsgError::Truncated { what: "MSG part header", need: PART_HDR_LEN, have: body.len() });
        }
        let mut gn = [0; 8];
        gn.copy_from_slice(&body[20..28]);
        let bits = u32::from_le_bytes([body[28], body[29], body[30], body[31]]);
        Ok(PartRef {
            src: LdmsAddr::from_slice(&body[..20]),
            msg_gn: u64::from_be_bytes(gn),
            more: bits & F_MORE != 0,
            first: bits & F_FIRST != 0,
            payload: &body[PART_HDR_LEN..],
        })
    }
}

impl MsgPart {
    /// This part, borrowed.
    pub fn as_ref(&self) -> PartRef<'_> {
        PartRef { src: self.src, msg_gn: self.msg_gn, more: self.more, first: self.first, payload: &self.payload }
    }

    /// Decodes an MSG body (everything after the request header).
    pub fn decode(body: &Bytes) -> Result<MsgPart, MsgError> {
        if body.len() < PART_HDR_LEN {
            return Err(MsgError::Truncated { what: "MSG part header", need: PART_HDR_LEN, have: body.len() });
        }
        let src = LdmsAddr::from_slice(&body[..20]);
        let mut gn = [0; 8];
        gn.copy_from_slice(&body[20..28]);
        let bits = u32::from_le_bytes([body[28], body[29], body[30], body[31]]);
        Ok(MsgPart {
            src,
            msg_gn: u64::from_be_bytes(gn),
            more: bits & F_MORE != 0,
            first: bits & F_FIRST != 0,
            reserved: bits & !(F_MORE | F_FIRST),
            payload: body.slice(PART_HDR_LEN..),
        })
    }

    /// Length of the encoded body.
    pub fn encoded_len(&self) -> usize {
        PART_HDR_LEN + self.payload.len()
    }

    /// Appends the encoded body.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        self.src.encode(dst);
        dst.put_u64(self.msg_gn);
        let bits = if self.more { F_MORE } else { 0 }
            | if self.first { F_FIRST } else { 0 }
            | (self.reserved & !(F_MORE | F_FIRST));
        dst.put_u32_le(bits);
        dst.put_slice(&self.payload);
    }

    /// The MSG request carrying this part (xid 0, as ldmsd sends it).
    pub fn to_request(&self) -> Request {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        Request::new(0, RequestBody::Other { cmd: CMD_MSG, body: b.freeze() })
    }
}
