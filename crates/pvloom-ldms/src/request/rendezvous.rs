//! Rendezvous messages: what LDMS puts after the zap RENDEZVOUS header.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{Reader, RequestError, len32};
use super::*;

/// The marker ldmsd 4.5.1+ puts after a LOOKUP's set_info, before two timestamps.
pub const LOOKUP_PROFILE_MARKER: &[u8; 10] = b"lu_prflng\0";
/// The zeroed bytes after the NUL of the schema-name item. The set's own copy of the
/// name holds the 32-byte schema digest and a spare byte there, and ldmsd sends the item
/// length of that copy but only the name's bytes, into a zeroed buffer.
pub const SCHEMA_ITEM_PAD: usize = 33;

/// Fixed part of a LOOKUP rendezvous parameter block, before the set_info.
const LOOKUP_FIXED: usize = 32;
/// The profiling marker and its two timestamps.
const PROFILE_LEN: usize = LOOKUP_PROFILE_MARKER.len() + 32;
/// A PUSH rendezvous parameter block.
const PUSH_LEN: usize = 20;

/// An LDMS rendezvous message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendezvousMsg {
    /// LOOKUP: the lookup request's xid, echoed. PUSH: 0.
    pub xid: u64,
    /// The command and its parameters.
    pub body: RendezvousBody,
}

/// A rendezvous message's command and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RendezvousBody {
    /// [`RENDEZVOUS_LOOKUP`]: one matching set, sent by its owner; the zap region is the set.
    Lookup(LookupParam),
    /// [`RENDEZVOUS_PUSH`]: a client registers for pushes; the zap region is its copy.
    Push(PushParam),
}

/// A LOOKUP answer: the set's sizes, names and set_info.
///
/// Names and set_info strings are kept as the raw items, NUL and padding included, so the
/// message re-encodes byte for byte; the accessors strip them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupParam {
    /// The owner's set id (host order), to name the set in CANCEL_PUSH and the like.
    pub set_id: u64,
    /// Nonzero on all but the last set that matched the lookup.
    pub more: u32,
    /// Meta section size.
    pub meta_len: u32,
    /// Data section size (one array element, heap included).
    pub data_len: u32,
    /// Number of metrics.
    pub card: u32,
    /// Unused by ldmsd (always 0).
    pub schema_len: u32,
    /// Number of data-section copies in the set array.
    pub array_card: u32,
    /// Schema-name item: the name, its NUL, then [`SCHEMA_ITEM_PAD`] zero bytes.
    pub schema: Bytes,
    /// Instance-name item: the name and its NUL.
    pub instance: Bytes,
    /// Set_info pairs (local info first, then remote info not overridden locally).
    pub info: Vec<SetInfoPair>,
    /// The profiling timestamps (absent from peers before 4.5.1).
    pub profile: Option<LookupProfile>,
}

/// One set_info key and value, each the raw item (string and NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfoPair {
    /// Key item, never empty.
    pub key: Bytes,
    /// Value item.
    pub value: Bytes,
}

impl SetInfoPair {
    /// A pair from plain strings, NUL-terminated as ldmsd sends them.
    pub fn new(key: &[u8], value: &[u8]) -> Self {
        SetInfoPair { key: name_item(key), value: name_item(value) }
    }

    /// The key up to its NUL.
    pub fn key(&self) -> &[u8] {
        cstr(&self.key)
    }

    /// The value up to its NUL.
    pub fn value(&self) -> &[u8] {
        cstr(&self.value)
    }
}

/// The owner's timestamps of a lookup: when it received the request and when it shared
/// the set (host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupProfile {
    /// Request received.
    pub req_recv: Timespec,
    /// Set shared.
    pub share: Timespec,
}

/// A push registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushParam {
    /// The owner's set id, from the lookup (host order).
    pub lookup_set_id: u64,
    /// The client's set id, to put in PUSH_REPLY (host order).
    pub push_set_id: u64,
    /// [`RBD_F_PUSH`], optionally with [`RBD_F_PUSH_CHANGE`] (BE).
    pub flags: u32,
}

/// `s` and a NUL, as ldmsd sends instance names and set_info strings.
pub fn name_item(s: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(s.len() + 1);
    b.extend_from_slice(s);
    b.push(0);
    b.into()
}

/// `s`, a NUL and [`SCHEMA_ITEM_PAD`] zeros, as ldmsd sends a schema name.
pub fn schema_item(s: &[u8]) -> Bytes {
    let mut b = vec![0; s.len() + 1 + SCHEMA_ITEM_PAD];
    b[..s.len()].copy_from_slice(s);
    b.into()
}

/// `b` up to its first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

impl LookupParam {
    /// The schema name.
    pub fn schema_name(&self) -> &[u8] {
        cstr(&self.schema)
    }

    /// The instance name.
    pub fn instance_name(&self) -> &[u8] {
        cstr(&self.instance)
    }

    fn encoded_len(&self) -> usize {
        let items: usize = self.info.iter().map(|p| 2 + p.key.len() + p.value.len()).sum();
        let profile = if self.profile.is_some() { PROFILE_LEN } else { 0 };
        LOOKUP_FIXED + 2 + self.schema.len() + self.instance.len() + items + 1 + profile
    }

    fn check(&self) -> Result<(), RequestError> {
        let items = [&self.schema, &self.instance].into_iter().chain(self.info.iter().flat_map(|p| [&p.key, &p.value]));
        for it in items {
            if it.len() > 255 {
                return Err(RequestError::ItemTooLong(it.len()));
            }
        }
        if self.info.iter().any(|p| p.key.is_empty()) {
            return Err(RequestError::EmptyInfoKey);
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, RequestError> {
        let set_id = r.le64("LOOKUP set_id")?;
        let more = r.be32("LOOKUP more")?;
        let meta_len = r.be32("LOOKUP meta_len")?;
        let data_len = r.be32("LOOKUP data_len")?;
        let card = r.be32("LOOKUP card")?;
        let schema_len = r.be32("LOOKUP schema_len")?;
        let array_card = r.be32("LOOKUP array_card")?;
        let item = |r: &mut Reader, what| -> Result<Bytes, RequestError> {
            let n = r.u8(what)? as usize;
            r.take(n, what)
        };
        let schema = item(r, "LOOKUP schema name")?;
        let instance = item(r, "LOOKUP instance name")?;
        let mut info = Vec::new();
        loop {
            let key = item(r, "LOOKUP set_info key")?;
            if key.is_empty() {
                break;
            }
            info.push(SetInfoPair { key, value: item(r, "LOOKUP set_info value")? });
        }
        let profile = match r.remaining() {
            0 => None,
            PROFILE_LEN => {
                if r.take(LOOKUP_PROFILE_MARKER.len(), "LOOKUP profile marker")? != LOOKUP_PROFILE_MARKER[..] {
                    return Err(RequestError::LookupTail(PROFILE_LEN));
                }
                let mut ts = || -> Result<Timespec, RequestError> {
                    Ok(Timespec { sec: r.le64("LOOKUP profile")? as i64, nsec: r.le64("LOOKUP profile")? as i64 })
                };
                Some(LookupProfile { req_recv: ts()?, share: ts()? })
            }
            n => return Err(RequestError::LookupTail(n)),
        };
        Ok(LookupParam {
            set_id,
            more,
            meta_len,
            data_len,
            card,
            schema_len,
            array_card,
            schema,
            instance,
            info,
            profile,
        })
    }

    fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64_le(self.set_id);
        for v in [self.more, self.meta_len, self.data_len, self.card, self.schema_len, self.array_card] {
            dst.put_u32(v);
        }
        let items = [&self.schema, &self.instance].into_iter().chain(self.info.iter().flat_map(|p| [&p.key, &p.value]));
        for it in items {
            dst.put_u8(it.len() as u8); // checked ≤ 255
            dst.put_slice(it);
        }
        dst.put_u8(0);
        if let Some(p) = &self.profile {
            dst.put_slice(LOOKUP_PROFILE_MARKER);
            for t in [p.req_recv, p.share] {
                dst.put_i64_le(t.sec);
                dst.put_i64_le(t.nsec);
            }
        }
    }
}

impl RendezvousMsg {
    /// The command number.
    pub fn cmd(&self) -> u32 {
        match self.body {
            RendezvousBody::Lookup(_) => RENDEZVOUS_LOOKUP,
            RendezvousBody::Push(_) => RENDEZVOUS_PUSH,
        }
    }

    /// Length of the encoded message (the header's `len`).
    pub fn encoded_len(&self) -> usize {
        RENDEZVOUS_HDR_LEN
            + match &self.body {
                RendezvousBody::Lookup(l) => l.encoded_len(),
                RendezvousBody::Push(_) => PUSH_LEN,
            }
    }

    /// Appends the encoded message. LOOKUP's `len` goes in host order and PUSH's in
    /// network order, as ldmsd writes them.
    ///
    /// Fails, appending nothing, if a LOOKUP name or set_info item is longer than 255
    /// bytes or a set_info key is empty.
    ///
    /// # Panics
    /// If the message would be longer than `u32::MAX` bytes.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), RequestError> {
        if let RendezvousBody::Lookup(l) = &self.body {
            l.check()?;
        }
        let len = len32(self.encoded_len());
        dst.reserve(len as usize);
        dst.put_u64_le(self.xid);
        dst.put_u32(self.cmd());
        match &self.body {
            RendezvousBody::Lookup(l) => {
                dst.put_u32_le(len);
                l.encode(dst);
            }
            RendezvousBody::Push(p) => {
                dst.put_u32(len);
                dst.put_u64_le(p.lookup_set_id);
                dst.put_u64_le(p.push_set_id);
                dst.put_u32(p.flags);
            }
        }
        Ok(())
    }

    /// Decodes the message that follows the zap RENDEZVOUS header.
    pub fn decode(msg: &Bytes) -> Result<RendezvousMsg, RequestError> {
        let mut r = Reader::new(msg.clone());
        let xid = r.le64("rendezvous header")?;
        let cmd = r.be32("rendezvous header")?;
        let len = match cmd {
            RENDEZVOUS_LOOKUP => r.le32("rendezvous header")?,
            RENDEZVOUS_PUSH => r.be32("rendezvous header")?,
            _ => return Err(RequestError::UnknownRendezvous(cmd)),
        };
        if len as usize != msg.len() {
            return Err(RequestError::HeaderLen { len, actual: msg.len() });
        }
        let body = match cmd {
            RENDEZVOUS_LOOKUP => RendezvousBody::Lookup(LookupParam::decode(&mut r)?),
            _ => RendezvousBody::Push(PushParam {
                lookup_set_id: r.le64("PUSH lookup_set_id")?,
                push_set_id: r.le64("PUSH push_set_id")?,
                flags: r.be32("PUSH flags")?,
            }),
        };
        r.finish(cmd)?;
        Ok(RendezvousMsg { xid, body })
    }
}
