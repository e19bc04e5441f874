//! The whole message: the 384-byte header (`struct ldms_msg_full_s`), the name and the data.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::{LdmsAddr, MsgError};
use crate::request::Timespec;

/// Size of the message header at the start of the first part.
pub const MSG_HDR_LEN: usize = 384;

/// Hop entries in the header (`LDMS_MSG_MAX_PROFILE_HOPS + 1`).
pub const MAX_HOPS: usize = 9;

/// Offset of the first hop entry in the header.
const HOPS_OFF: usize = 96;
/// Size of one hop entry: two big-endian timespecs.
const HOP_LEN: usize = 32;
const _: () = assert!(HOPS_OFF + MAX_HOPS * HOP_LEN == MSG_HDR_LEN);

/// The message's data type (`ldms_msg_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `LDMS_MSG_STRING` (0).
    String,
    /// `LDMS_MSG_JSON` (1).
    Json,
    /// `LDMS_MSG_AVRO_SER` (2).
    AvroSer,
    /// Any other value, kept as sent.
    Other(u32),
}

impl MsgType {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            MsgType::String => 0,
            MsgType::Json => 1,
            MsgType::AvroSer => 2,
            MsgType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_u32(v: u32) -> MsgType {
        match v {
            0 => MsgType::String,
            1 => MsgType::Json,
            2 => MsgType::AvroSer,
            v => MsgType::Other(v),
        }
    }
}

/// The used hop entries of a header, held inline: a forwarded message's header is copied
/// once per hop, and an allocation each time showed in the profile.
pub type Hops = arrayvec::ArrayVec<Hop, MAX_HOPS>;

/// One hop's profiling timestamps (`struct ldms_msg_hop`, big-endian timespecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hop {
    /// When this hop received the message (the publish call, for the origin).
    pub recv: Timespec,
    /// When this hop sent it.
    pub send: Timespec,
}

/// The message header, without `msg_len` (which [`Msg`] derives from the name and data).
///
/// ldmsd leaves `pad0`, the 32-byte `reserve`, `pad1` and the unused hop entries
/// uninitialised; decoding ignores them ([`MsgHeader::ignored_ranges`]) and encoding
/// writes zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgHeader {
    /// Source of the message (all zero from a local publisher).
    pub src: LdmsAddr,
    /// The publisher's message number.
    pub msg_gn: u64,
    /// Data type.
    pub msg_type: MsgType,
    /// Publisher's uid.
    pub uid: u32,
    /// Publisher's gid.
    pub gid: u32,
    /// Permission bits, `0o777` style.
    pub perm: u32,
    /// [`tag_hash`] of the name; host order (little-endian) on the wire.
    pub tag_hash: u32,
    /// How many times the message was forwarded (0 from the publisher; a receiver counts
    /// one more when it passes the message on).
    pub hop_cnt: u32,
    /// The used hop entries: `hop_cnt + 1` of them (at most [`MAX_HOPS`]); entry
    /// `hop_cnt` is the sender's own. Encoding writes at most [`MAX_HOPS`].
    pub hops: Hops,
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

fn ts(b: &[u8], off: usize) -> Timespec {
    Timespec { sec: be64(b, off) as i64, nsec: be64(b, off + 8) as i64 }
}

impl MsgHeader {
    /// How many hop entries a header with `hop_cnt` uses.
    pub fn used_hops(hop_cnt: u32) -> usize {
        (hop_cnt as usize).saturating_add(1).min(MAX_HOPS)
    }

    /// The byte ranges of the header that decoding ignores (padding, `reserve`, unused
    /// hop entries); ldmsd sends garbage there.
    pub fn ignored_ranges(hop_cnt: u32) -> Vec<Range<usize>> {
        let mut v = vec![20..56, 92..96];
        let used_end = HOPS_OFF + Self::used_hops(hop_cnt) * HOP_LEN;
        if used_end < MSG_HDR_LEN {
            v.push(used_end..MSG_HDR_LEN);
        }
        v
    }

    /// Decodes a header from the first [`MSG_HDR_LEN`] bytes of `b`; returns it and the
    /// header's `msg_len`.
    pub fn decode(b: &[u8]) -> Result<(MsgHeader, u32), MsgError> {
        if b.len() < MSG_HDR_LEN {
            return Err(MsgError::Truncated { what: "message header", need: MSG_HDR_LEN, have: b.len() });
        }
        let hop_cnt = be32(b, 88);
        let hops = (0..Self::used_hops(hop_cnt))
            .map(|i| {
                let o = HOPS_OFF + i * HOP_LEN;
                Hop { recv: ts(b, o), send: ts(b, o + 16) }
            })
            .collect();
        let h = MsgHeader {
            src: LdmsAddr::from_slice(&b[..20]),
            msg_gn: be64(b, 56),
            msg_type: MsgType::from_u32(be32(b, 68)),
            uid: be32(b, 72),
            gid: be32(b, 76),
            perm: be32(b, 80),
            tag_hash: u32::from_le_bytes([b[84], b[85], b[86], b[87]]),
            hop_cnt,
            hops,
        };
        Ok((h, be32(b, 64)))
    }

    /// The `msg_len` of the header at the start of `b`, without decoding the rest.
    pub fn peek_msg_len(b: &[u8]) -> Result<u32, MsgError> {
        if b.len() < MSG_HDR_LEN {
            return Err(MsgError::Truncated { what: "message header", need: MSG_HDR_LEN, have: b.len() });
        }
        Ok(be32(b, 64))
    }

    /// Appends the 384-byte header with the given `msg_len`; the ignored areas are zero.
    pub fn encode(&self, msg_len: u32, dst: &mut BytesMut) {
        self.encode_hops(msg_len, self.hop_cnt, &self.hops, None, dst);
    }

    /// Appends the header as this process forwards the message: one hop more, `hop`
    /// appended to the used entries while there is room (without copying the header).
    pub fn encode_forwarded(&self, msg_len: u32, hop: Hop, dst: &mut BytesMut) {
        let used = &self.hops[..self.hops.len().min(Self::used_hops(self.hop_cnt))];
        let extra = (used.len() < MAX_HOPS).then_some(hop);
        self.encode_hops(msg_len, self.hop_cnt.saturating_add(1), used, extra, dst);
    }

    fn encode_hops(&self, msg_len: u32, hop_cnt: u32, hops: &[Hop], extra: Option<Hop>, dst: &mut BytesMut) {
        // Built on the stack and appended once: a put per field checks capacity for each
        // of the header's fifty-odd fields, on every message forwarded.
        let mut h = [0u8; MSG_HDR_LEN];
        h[0..2].copy_from_slice(&self.src.family.to_be_bytes());
        h[2..4].copy_from_slice(&self.src.port.to_be_bytes());
        h[4..20].copy_from_slice(&self.src.addr);
        // 20..56: zero.
        h[56..64].copy_from_slice(&self.msg_gn.to_be_bytes());
        h[64..68].copy_from_slice(&msg_len.to_be_bytes());
        h[68..72].copy_from_slice(&self.msg_type.to_u32().to_be_bytes());
        h[72..76].copy_from_slice(&self.uid.to_be_bytes());
        h[76..80].copy_from_slice(&self.gid.to_be_bytes());
        h[80..84].copy_from_slice(&self.perm.to_be_bytes());
        h[84..88].copy_from_slice(&self.tag_hash.to_le_bytes());
        h[88..92].copy_from_slice(&hop_cnt.to_be_bytes());
        // 92..96: zero.
        let hops = &hops[..hops.len().min(MAX_HOPS)];
        for (slot, hop) in h[HOPS_OFF..].chunks_exact_mut(HOP_LEN).zip(hops.iter().chain(extra.iter())) {
            for (i, t) in [hop.recv, hop.send].into_iter().enumerate() {
                slot[i * 16..i * 16 + 8].copy_from_slice(&t.sec.to_be_bytes());
                slot[i * 16 + 8..i * 16 + 16].copy_from_slice(&t.nsec.to_be_bytes());
            }
        }
        dst.put_slice(&h);
    }
}

/// The tag hash ldmsd puts in the header: 32-bit FNV-1a seeded with the FNV prime, over
/// the name's bytes taken as signed `char`s (sign-extended, as on x86_64).
pub fn tag_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x0100_0193u32, |h, &c| (h ^ (c as i8 as i32 as u32)).wrapping_mul(0x0100_0193))
}

/// A whole message: header, name (the tag) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// The header.
    pub header: MsgHeader,
    /// The name, without the NUL the wire adds.
    pub name: Bytes,
    /// The data (no terminator on the wire).
    pub data: Bytes,
}

impl Msg {
    /// The header's `msg_len`: name with its NUL plus data.
    pub fn msg_len(&self) -> usize {
        self.name.len() + 1 + self.data.len()
    }

    /// Length of the encoded message, header included.
    pub fn encoded_len(&self) -> usize {
        MSG_HDR_LEN + self.msg_len()
    }

    /// Decodes a whole message (the parts' bytes concatenated). The bytes after the
    /// header must be exactly `msg_len`, and the name ends at the first NUL among them.
    pub fn decode(b: &Bytes) -> Result<Msg, MsgError> {
        let (header, msg_len) = MsgHeader::decode(b)?;
        let rest = b.slice(MSG_HDR_LEN..);
        if msg_len as usize != rest.len() {
            return Err(MsgError::MsgLen { msg_len, actual: rest.len() });
        }
        let nul = rest.iter().position(|&c| c == 0).ok_or(MsgError::MissingNul("message name"))?;
        Ok(Msg { header, name: rest.slice(..nul), data: rest.slice(nul + 1..) })
    }

    /// As [`decode`](Self::decode), the name and data copied into one buffer of their
    /// own (a message kept by subscribers does not pin the frame it came in).
    pub fn decode_owned(b: &[u8]) -> Result<Msg, MsgError> {
        let (header, msg_len) = MsgHeader::decode(b)?;
        let rest = &b[MSG_HDR_LEN..];
        if msg_len as usize != rest.len() {
            return Err(MsgError::MsgLen { msg_len, actual: rest.len() });
        }
        let nul = rest.iter().position(|&c| c == 0).ok_or(MsgError::MissingNul("message name"))?;
        let mut own = BytesMut::with_capacity(rest.len() - 1);
        own.put_slice(&rest[..nul]);
        own.put_slice(&rest[nul + 1..]);
        let mut data = own.freeze();
        let name = data.split_to(nul);
        Ok(Msg { header, name, data })
    }

    /// Appends the encoded message.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), MsgError> {
        if self.name.contains(&0) {
            return Err(MsgError::InteriorNul("message name"));
        }
        let len = u32::try_from(self.msg_len()).map_err(|_| MsgError::TooLarge(self.msg_len()))?;
        dst.reserve(self.encoded_len());
        self.header.encode(len, dst);
        dst.put_slice(&self.name);
        dst.put_u8(0);
        dst.put_slice(&self.data);
        Ok(())
    }
}
