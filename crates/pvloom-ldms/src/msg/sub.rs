//! MSG_SUB / MSG_UNSUB parameters (`struct ldms_msg_sub_param`) and their replies.

use bytes::{BufMut, Bytes, BytesMut};

use super::MsgError;
use crate::request::{
    CMD_MSG_SUB, CMD_MSG_SUB_REPLY, CMD_MSG_UNSUB, CMD_MSG_UNSUB_REPLY, Reply, ReplyBody, Request, RequestBody,
};

/// Fixed part of the sub parameters: the bitfield (4) and the rate (8).
pub const SUB_HDR_LEN: usize = 12;

/// The parameters of MSG_SUB (12) and MSG_UNSUB (13).
///
/// On the wire, a host-order u32 holds `is_regex` in bit 0 and a 31-bit `match_len`
/// above it. ldmsd stores `htobe32(match_len)` (the length counts the NUL) in those 31
/// bits, which drops its top bit, so `"foo"` is sent as `00 00 00 08` and the regex
/// `"bar.*"` as `01 00 00 0c`. The receiver takes the match from the NUL-terminated
/// bytes, not from that field; [`MsgSub::match_len_field`] is what ldmsd puts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgSub {
    /// `pattern` is a regular expression rather than an exact name.
    pub is_regex: bool,
    /// The name or regex, without the NUL the wire adds.
    pub pattern: Bytes,
    /// Rate limit in bytes per second (also used as the quota); -1 is unlimited.
    pub rate: i64,
}

impl MsgSub {
    /// The 31-bit `match_len` field ldmsd stores for a match of `len` bytes (with NUL).
    pub fn match_len_field(len: u32) -> u32 {
        len.to_be() & 0x7fff_ffff
    }

    /// Decodes an MSG_SUB / MSG_UNSUB body (everything after the request header). The
    /// match is the rest of the body and must end in its only NUL; the length field
    /// must be what ldmsd stores for it.
    pub fn decode(body: &Bytes) -> Result<MsgSub, MsgError> {
        if body.len() < SUB_HDR_LEN {
            return Err(MsgError::Truncated { what: "MSG_SUB param", need: SUB_HDR_LEN, have: body.len() });
        }
        let bits = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let mut r = [0; 8];
        r.copy_from_slice(&body[4..12]);
        let m = body.slice(SUB_HDR_LEN..);
        let nul = m.iter().position(|&c| c == 0).ok_or(MsgError::MissingNul("MSG_SUB match"))?;
        if nul + 1 != m.len() {
            return Err(MsgError::InteriorNul("MSG_SUB match"));
        }
        let expected = Self::match_len_field(u32::try_from(m.len()).map_err(|_| MsgError::TooLarge(m.len()))?);
        if bits >> 1 != expected {
            return Err(MsgError::MatchLen { field: bits >> 1, expected });
        }
        Ok(MsgSub { is_regex: bits & 1 != 0, pattern: m.slice(..nul), rate: i64::from_be_bytes(r) })
    }

    /// Length of the encoded body.
    pub fn encoded_len(&self) -> usize {
        SUB_HDR_LEN + self.pattern.len() + 1
    }

    /// Appends the encoded body, as ldmsd lays it out.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), MsgError> {
        if self.pattern.contains(&0) {
            return Err(MsgError::InteriorNul("MSG_SUB match"));
        }
        let len = u32::try_from(self.pattern.len() + 1).map_err(|_| MsgError::TooLarge(self.pattern.len()))?;
        dst.reserve(self.encoded_len());
        dst.put_u32_le((Self::match_len_field(len) << 1) | u32::from(self.is_regex));
        dst.put_i64(self.rate);
        dst.put_slice(&self.pattern);
        dst.put_u8(0);
        Ok(())
    }

    /// The MSG_SUB (or, with `unsubscribe`, MSG_UNSUB) request; fails as
    /// [`MsgSub::encode`] does.
    pub fn to_request(&self, xid: u64, unsubscribe: bool) -> Result<Request, MsgError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        let cmd = if unsubscribe { CMD_MSG_UNSUB } else { CMD_MSG_SUB };
        Ok(Request::new(xid, RequestBody::Other { cmd, body: b.freeze() }))
    }
}

/// The body of MSG_SUB_REPLY (0x10b) and MSG_UNSUB_REPLY (0x10c): `msg_len` (BE, counts
/// the NUL) and a NUL-terminated text, `"OK"` on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubReply {
    /// The text, without its NUL.
    pub text: Bytes,
}

impl SubReply {
    /// Decodes a reply body (everything after the reply header's rc).
    pub fn decode(body: &Bytes) -> Result<SubReply, MsgError> {
        if body.len() < 4 {
            return Err(MsgError::Truncated { what: "MSG_SUB reply", need: 4, have: body.len() });
        }
        let msg_len = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let t = body.slice(4..);
        if usize::try_from(msg_len).ok() != Some(t.len()) {
            return Err(MsgError::ReplyLen { msg_len, actual: t.len() });
        }
        match t.last() {
            Some(0) => Ok(SubReply { text: t.slice(..t.len() - 1) }),
            _ => Err(MsgError::MissingNul("MSG_SUB reply text")),
        }
    }

    /// Appends the encoded body.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_i32((self.text.len() + 1) as i32);
        dst.put_slice(&self.text);
        dst.put_u8(0);
    }

    /// The MSG_SUB_REPLY (or, with `unsub`, MSG_UNSUB_REPLY).
    pub fn to_reply(&self, xid: u64, rc: u32, unsub: bool) -> Reply {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        let cmd = if unsub { CMD_MSG_UNSUB_REPLY } else { CMD_MSG_SUB_REPLY };
        Reply::new(xid, rc, ReplyBody::Other { cmd, body: b.freeze() })
    }
}
