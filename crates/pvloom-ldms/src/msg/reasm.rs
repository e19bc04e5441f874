//! Splitting messages into parts and collecting parts back into messages.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::{LdmsAddr, MSG_HDR_LEN, Msg, MsgError, MsgHeader, MsgPart, PART_PAYLOAD_MAX, PartRef, ReassemblyError};

/// The parts a sender emits for a message: the encoded [`Msg`] (header, `name\0`, data)
/// cut into pieces of at most `max_part` bytes (capped at [`PART_PAYLOAD_MAX`], so each
/// MSG request fits a SENDRECV frame). The first part has `first` set, all but the last
/// have `more`; `src` and `msg_gn` come from the header. `max_part` must be at least
/// [`MSG_HDR_LEN`]: the first part carries the whole header, as receivers (ldmsd and
/// [`Reassembler`]) read the message length from it.
///
/// ldmsd 4.2 itself neither sends nor reassembles multi-part messages correctly (it
/// repeats the first chunk, and its reassembly key compares the part's flag bits), so a
/// message meant for ldmsd must fit one part: [`MSG_HDR_LEN`] + name + NUL + data at most
/// [`PART_PAYLOAD_MAX`].
pub fn split_message(header: &MsgHeader, name: &[u8], data: &[u8], max_part: usize) -> Result<Vec<MsgPart>, MsgError> {
    if max_part < MSG_HDR_LEN {
        return Err(MsgError::PartTooSmall(max_part));
    }
    let max = max_part.min(PART_PAYLOAD_MAX);
    let msg = Msg { header: header.clone(), name: Bytes::copy_from_slice(name), data: Bytes::copy_from_slice(data) };
    let mut b = BytesMut::new();
    msg.encode(&mut b)?;
    let all = b.freeze();
    let n = all.len().div_ceil(max);
    Ok((0..n)
        .map(|i| MsgPart {
            src: header.src,
            msg_gn: header.msg_gn,
            more: i + 1 < n,
            first: i == 0,
            reserved: 0,
            payload: all.slice(i * max..((i + 1) * max).min(all.len())),
        })
        .collect())
}

/// What a [`Reassembler`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message, header included.
    pub max_msg: usize,
    /// Most messages collected at once (single-part messages do not count).
    pub max_in_progress: usize,
    /// Most bytes reserved for messages in progress (each counts its declared length).
    pub max_buffered: usize,
}

impl Default for Limits {
    /// 16 MiB messages, 64 in progress, 64 MiB in all.
    fn default() -> Self {
        Limits { max_msg: 16 << 20, max_in_progress: 64, max_buffered: 64 << 20 }
    }
}

/// A message being collected.
#[derive(Debug)]
struct Pending {
    buf: BytesMut,
    /// Declared length, header included.
    len: usize,
}

/// Collects MSG parts into whole messages, keyed by (source, `msg_gn`).
///
/// A message's length is known from its first part's header, and is reserved against
/// [`Limits::max_buffered`] until the message completes or fails; memory grows only with
/// the bytes actually received. Any error drops the part and the message in progress
/// under its key. Parts of any size are accepted (ldmsd fills them to its own limit).
/// The completed message keeps the `src` of its own header; ldmsd instead overwrites it
/// with the part's, which it fills from the peer's address unless that is loopback.
#[derive(Debug, Default)]
pub struct Reassembler {
    limits: Limits,
    pending: HashMap<(LdmsAddr, u64), Pending>,
    reserved: usize,
}

impl Reassembler {
    /// A reassembler with these limits.
    pub fn new(limits: Limits) -> Self {
        Reassembler { limits, pending: HashMap::new(), reserved: 0 }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Messages in progress.
    pub fn in_progress(&self) -> usize {
        self.pending.len()
    }

    /// Bytes reserved for the messages in progress (their declared lengths).
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Drops the message in progress under this key; whether there was one.
    pub fn abort(&mut self, src: LdmsAddr, msg_gn: u64) -> bool {
        match self.pending.remove(&(src, msg_gn)) {
            Some(p) => {
                self.reserved -= p.len;
                true
            }
            None => false,
        }
    }

    /// Drops every message in progress (for example when the connection ends).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.reserved = 0;
    }

    /// Takes one part; returns the message it completes, if any.
    pub fn push(&mut self, part: &MsgPart) -> Result<Option<Msg>, ReassemblyError> {
        self.push_ref(part.as_ref())
    }

    /// Takes one part borrowed from its frame; the message it completes, if any, owns
    /// its bytes.
    pub fn push_ref(&mut self, part: PartRef<'_>) -> Result<Option<Msg>, ReassemblyError> {
        let key = (part.src, part.msg_gn);
        if part.first {
            // Nearly every message is one part and nothing is in progress: no lookup.
            if !self.pending.is_empty() && self.abort(part.src, part.msg_gn) {
                return Err(ReassemblyError::FirstTwice { src: part.src, msg_gn: part.msg_gn });
            }
            let msg_len = MsgHeader::peek_msg_len(part.payload)?;
            let len = MSG_HDR_LEN as u64 + u64::from(msg_len);
            if len > self.limits.max_msg as u64 {
                return Err(ReassemblyError::TooLarge { len, max: self.limits.max_msg });
            }
            let len = len as usize;
            let got = part.payload.len();
            if got > len {
                return Err(ReassemblyError::Overrun { len, got });
            }
            if !part.more {
                if got < len {
                    return Err(ReassemblyError::Short { len, got });
                }
                return Ok(Some(Msg::decode_owned(part.payload)?));
            }
            if self.pending.len() >= self.limits.max_in_progress {
                return Err(ReassemblyError::TooManyInProgress { max: self.limits.max_in_progress });
            }
            if self.reserved + len > self.limits.max_buffered {
                return Err(ReassemblyError::BufferFull { need: len, max: self.limits.max_buffered });
            }
            self.reserved += len;
            self.pending.insert(key, Pending { buf: BytesMut::from(part.payload), len });
            return Ok(None);
        }
        let Some(mut p) = self.pending.remove(&key) else {
            return Err(ReassemblyError::NoFirst { src: part.src, msg_gn: part.msg_gn });
        };
        let got = p.buf.len() + part.payload.len();
        if got > p.len {
            self.reserved -= p.len;
            return Err(ReassemblyError::Overrun { len: p.len, got });
        }
        p.buf.extend_from_slice(part.payload);
        if part.more {
            self.pending.insert(key, p);
            return Ok(None);
        }
        self.reserved -= p.len;
        if got < p.len {
            return Err(ReassemblyError::Short { len: p.len, got });
        }
        Ok(Some(Msg::decode(&p.buf.freeze())?))
    }
}
