//! The LDMSD request protocol (sans-I/O): the configuration requests `ldmsctl` and
//! `ldmsd_controller` send to an ldmsd, and its responses, each record one SEND_MSG
//! (`ldms_xprt_send`) payload.
//!
//! Layout (`ldmsd_request.h`, commit 279bd1b8; every integer big-endian, as ldmsd
//! `htonl`s them):
//!
//! - a record: a 24-byte header — `marker` (0xffffffff), `type` (1 request, 2 response),
//!   `flags` (SOM 1 on the first record of a message, EOM 2 on the last), `msg_no` (the
//!   client's number for the message, echoed by the response), `req_id` in a request or
//!   `rsp_err` (an errno) in a response, `rec_len` (bytes of the record, header included)
//!   — then `rec_len - 24` bytes of the message body;
//! - a message body: the bodies of its records concatenated (a record may end inside an
//!   attribute), a list of attributes `discrim=1, attr_id, attr_len, value[attr_len]`
//!   ended by a lone `discrim=0`.
//!
//! String values carry their NUL in `attr_len`; ldmsd refuses a request whose non-empty
//! value does not end with one, but its own error replies may lack it, so [`Attr`] keeps
//! the bytes as they are and [`Attr::str_value`] strips one NUL.
//!
//! [`Reassembler`] gathers one connection's records into messages with bounds on the
//! message size and on the messages in progress; [`Message::encode_records`] splits a
//! message into records no longer than a transport's maximum, the way ldmsd fills its
//! reply buffer (full records, then the rest).

mod ids;

use std::collections::HashMap;

pub use ids::{attr_id, attr_name, request_id, request_name};

/// The header's `marker`.
pub const RECORD_MARKER: u32 = 0xffff_ffff;
/// Bytes of a record header.
pub const HDR_LEN: usize = 24;
/// Bytes of an attribute's `discrim, attr_id, attr_len`.
pub const ATTR_HDR_LEN: usize = 12;
/// `flags`: the first record of a message.
pub const FLAG_SOM: u32 = 1;
/// `flags`: the last record of a message.
pub const FLAG_EOM: u32 = 2;
/// `type` of a request (`LDMSD_REQ_TYPE_CONFIG_CMD`).
pub const TYPE_REQUEST: u32 = 1;
/// `type` of a response (`LDMSD_REQ_TYPE_CONFIG_RESP`).
pub const TYPE_RESPONSE: u32 = 2;

/// Attribute ids this crate's users need by name (`enum ldmsd_request_attr`).
pub mod attr {
    /// `name`.
    pub const NAME: u32 = 1;
    /// `interval`, `reconnect`, `flush`, `interval_us`.
    pub const INTERVAL: u32 = 2;
    /// `regex`.
    pub const REGEX: u32 = 4;
    /// `producer`.
    pub const PRODUCER: u32 = 6;
    /// `instance`.
    pub const INSTANCE: u32 = 7;
    /// `schema`.
    pub const SCHEMA: u32 = 14;
    /// The text of a response, or `config`'s and `env`'s `k=v ...` list.
    pub const STRING: u32 = 16;
    /// A response's record-length advice (`E2BIG`): a host-order `u32`.
    pub const REC_LEN: u32 = 25;
    /// A JSON response.
    pub const JSON: u32 = 26;
    /// `stream`.
    pub const STREAM: u32 = 34;
    /// `reset`.
    pub const RESET: u32 = 36;
}

/// Request ids pvloom answers by number (`enum ldmsd_request`).
pub mod req {
    /// `greeting`.
    pub const GREETING: u32 = 0x2;
    /// The configuration counter ldmsd_controller asks for right after connecting.
    pub const CFG_CNTR: u32 = 0x3;
    /// `prdcr_status`.
    pub const PRDCR_STATUS: u32 = 0x104;
    /// `prdcr_set_status`.
    pub const PRDCR_SET_STATUS: u32 = 0x107;
    /// `strgp_status`.
    pub const STRGP_STATUS: u32 = 0x204;
    /// `updtr_status`.
    pub const UPDTR_STATUS: u32 = 0x304;
    /// `plugn_status`.
    pub const PLUGN_STATUS: u32 = 0x504;
    /// `config`.
    pub const PLUGN_CONFIG: u32 = 0x507;
    /// `plugn_sets`.
    pub const PLUGN_SETS: u32 = 0x509;
    /// `daemon_status` (`daemon`).
    pub const DAEMON_STATUS: u32 = 0x603;
    /// `version`.
    pub const VERSION: u32 = 0x604;
    /// `env`.
    pub const ENV: u32 = 0x605;
    /// `thread_stats`.
    pub const THREAD_STATS: u32 = 0x60d;
    /// `prdcr_stats`.
    pub const PRDCR_STATS: u32 = 0x60e;
    /// `msg_stats`.
    pub const MSG_STATS: u32 = 0xc00;
    /// `msg_client_stats`.
    pub const MSG_CLIENT_STATS: u32 = 0xc01;
}

/// Why bytes are not a record or a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header.
    #[error("record of {0} bytes is shorter than its 24-byte header")]
    ShortHeader(usize),
    /// `marker` is not 0xffffffff.
    #[error("record marker {0:#x} is not 0xffffffff")]
    BadMarker(u32),
    /// `rec_len` smaller than the header.
    #[error("rec_len {0} is smaller than the 24-byte header")]
    RecLenTooSmall(u32),
    /// `rec_len` beyond the bytes received.
    #[error("rec_len {rec_len} exceeds the {got} bytes received")]
    Truncated {
        /// The header's `rec_len`.
        rec_len: u32,
        /// Bytes received.
        got: usize,
    },
    /// The body ends inside an attribute or before its terminator.
    #[error("message body ends inside an attribute at offset {0}")]
    BodyTruncated(usize),
    /// Bytes after the terminating `discrim=0`.
    #[error("{0} bytes after the terminating attribute")]
    TrailingBytes(usize),
    /// A `discrim` other than 0 or 1.
    #[error("attribute discriminator {0} at offset {1} is neither 0 nor 1")]
    BadDiscrim(u32, usize),
}

/// Why a record cannot join a message ([`Reassembler::push`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// A SOM record for a message number already in progress (ldmsd: `EADDRINUSE`).
    #[error("duplicate message number {0}")]
    Duplicate(u32),
    /// A record without SOM for a message that is not in progress (ldmsd: `ENOENT`).
    #[error("the message no {0} was not found")]
    NotFound(u32),
    /// The message would exceed [`ReassemblyLimits::max_message`]; it is dropped.
    #[error("message {msg_no} exceeds {max} bytes")]
    TooLarge {
        /// The message number.
        msg_no: u32,
        /// The limit.
        max: usize,
    },
    /// [`ReassemblyLimits::max_in_progress`] messages are already in progress.
    #[error("{0} messages are already being reassembled")]
    TooManyInProgress(usize),
    /// The whole message's body did not decode.
    #[error("message {msg_no}: {err}")]
    Body {
        /// The message number.
        msg_no: u32,
        /// Why.
        err: DecodeError,
    },
}

/// A record header, fields as on the wire (host order here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// [`RECORD_MARKER`] in every valid record.
    pub marker: u32,
    /// [`TYPE_REQUEST`] or [`TYPE_RESPONSE`] (other values are kept as they are).
    pub kind: u32,
    /// [`FLAG_SOM`], [`FLAG_EOM`].
    pub flags: u32,
    /// The message number.
    pub msg_no: u32,
    /// `req_id` (request) or `rsp_err` (response).
    pub code: u32,
    /// Bytes of the record, header included.
    pub rec_len: u32,
}

impl RecordHeader {
    /// Reads the header fields without judging them (ldmsd answers a wrong marker with
    /// an error reply, so the caller needs `msg_no` and `type` even then).
    ///
    /// # Errors
    /// [`DecodeError::ShortHeader`].
    pub fn peek(buf: &[u8]) -> Result<RecordHeader, DecodeError> {
        let h = buf.get(..HDR_LEN).ok_or(DecodeError::ShortHeader(buf.len()))?;
        let w = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Ok(RecordHeader { marker: w(0), kind: w(4), flags: w(8), msg_no: w(12), code: w(16), rec_len: w(20) })
    }

    /// Appends the 24 header bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.marker, self.kind, self.flags, self.msg_no, self.code, self.rec_len] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// True if this is the first record of a message.
    pub fn is_som(&self) -> bool {
        self.flags & FLAG_SOM != 0
    }

    /// True if this is the last record of a message.
    pub fn is_eom(&self) -> bool {
        self.flags & FLAG_EOM != 0
    }
}

/// One record: its header and its part of the message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The header.
    pub header: RecordHeader,
    /// `rec_len - 24` bytes of body.
    pub body: &'a [u8],
}

impl<'a> Record<'a> {
    /// Decodes one record from a SEND_MSG payload. Bytes after `rec_len` are ignored, as
    /// ldmsd copies only `rec_len` bytes.
    ///
    /// # Errors
    /// A short header, a wrong marker, or a `rec_len` outside `24..=buf.len()`.
    pub fn decode(buf: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        let header = RecordHeader::peek(buf)?;
        if header.marker != RECORD_MARKER {
            return Err(DecodeError::BadMarker(header.marker));
        }
        let len = header.rec_len as usize;
        if len < HDR_LEN {
            return Err(DecodeError::RecLenTooSmall(header.rec_len));
        }
        let body = buf.get(HDR_LEN..len).ok_or(DecodeError::Truncated { rec_len: header.rec_len, got: buf.len() })?;
        Ok(Record { header, body })
    }

    /// The record's bytes (its header as it is, `rec_len` included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HDR_LEN + self.body.len());
        self.header.encode(&mut out);
        out.extend_from_slice(self.body);
        out
    }
}

/// One attribute (`discrim=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// `attr_id` (see [`attr_name`]).
    pub id: u32,
    /// `attr_len` bytes of value, a string's NUL included.
    pub value: Vec<u8>,
}

impl Attr {
    /// A string attribute: `value` and its NUL.
    pub fn string(id: u32, value: &str) -> Attr {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        Attr { id, value: v }
    }

    /// A keyword: no value (`attr_len` 0).
    pub fn keyword(id: u32) -> Attr {
        Attr { id, value: Vec::new() }
    }

    /// The value as text: one trailing NUL removed, invalid UTF-8 replaced.
    pub fn str_value(&self) -> String {
        let v = self.value.strip_suffix(&[0]).unwrap_or(&self.value);
        String::from_utf8_lossy(v).into_owned()
    }

    /// True if a non-empty value ends with NUL (ldmsd refuses a request otherwise).
    pub fn nul_terminated(&self) -> bool {
        self.value.is_empty() || self.value.last() == Some(&0)
    }
}

/// A whole request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// [`TYPE_REQUEST`] or [`TYPE_RESPONSE`].
    pub kind: u32,
    /// The message number.
    pub msg_no: u32,
    /// `req_id` (request) or `rsp_err` (response).
    pub code: u32,
    /// The attributes in order.
    pub attrs: Vec<Attr>,
}

impl Message {
    /// A request.
    pub fn request(msg_no: u32, req_id: u32, attrs: Vec<Attr>) -> Message {
        Message { kind: TYPE_REQUEST, msg_no, code: req_id, attrs }
    }

    /// A response to `msg_no` with `rsp_err` and, unless `text` is empty, a STRING
    /// attribute (what ldmsd's `ldmsd_send_req_response` sends).
    pub fn response_text(msg_no: u32, rsp_err: u32, text: &str) -> Message {
        let attrs = if text.is_empty() { Vec::new() } else { vec![Attr::string(attr::STRING, text)] };
        Message { kind: TYPE_RESPONSE, msg_no, code: rsp_err, attrs }
    }

    /// A JSON response (`rsp_err` 0, one JSON attribute with its NUL).
    pub fn response_json(msg_no: u32, json: &str) -> Message {
        Message { kind: TYPE_RESPONSE, msg_no, code: 0, attrs: vec![Attr::string(attr::JSON, json)] }
    }

    /// The first attribute with `id`.
    pub fn attr(&self, id: u32) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.id == id)
    }

    /// Decodes a message body (the records' bodies concatenated).
    ///
    /// # Errors
    /// The body ends inside an attribute or before the terminator, a discriminator is
    /// neither 0 nor 1, or bytes follow the terminator.
    pub fn decode_body(body: &[u8]) -> Result<Vec<Attr>, DecodeError> {
        let mut attrs = Vec::new();
        let mut off = 0usize;
        loop {
            let word = |at: usize| -> Result<u32, DecodeError> {
                let b = body.get(at..at + 4).ok_or(DecodeError::BodyTruncated(at))?;
                Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match word(off)? {
                0 => break,
                1 => {}
                d => return Err(DecodeError::BadDiscrim(d, off)),
            }
            let id = word(off + 4)?;
            let len = word(off + 8)? as usize;
            let start = off + ATTR_HDR_LEN;
            let end = start.checked_add(len).ok_or(DecodeError::BodyTruncated(start))?;
            let value = body.get(start..end).ok_or(DecodeError::BodyTruncated(start))?;
            attrs.push(Attr { id, value: value.to_vec() });
            off = end;
        }
        let rest = body.len() - (off + 4);
        if rest != 0 {
            return Err(DecodeError::TrailingBytes(rest));
        }
        Ok(attrs)
    }

    /// The message body: the attributes and the terminator.
    pub fn encode_body(&self) -> Vec<u8> {
        let len: usize = self.attrs.iter().map(|a| ATTR_HDR_LEN + a.value.len()).sum::<usize>() + 4;
        let mut out = Vec::with_capacity(len);
        for a in &self.attrs {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&a.id.to_be_bytes());
            // Values longer than u32 cannot be described by the header; no caller builds one.
            out.extend_from_slice(&u32::try_from(a.value.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(&a.value);
        }
        out.extend_from_slice(&0u32.to_be_bytes());
        out
    }

    /// Decodes a message that fits one record (SOM and EOM both set).
    ///
    /// # Errors
    /// The record or its body does not decode, or the record is not a whole message.
    pub fn decode_single(buf: &[u8]) -> Result<Message, ReassemblyError> {
        let mut r = Reassembler::new(ReassemblyLimits { max_message: buf.len(), max_in_progress: 1 });
        let rec = Record::decode(buf).map_err(|err| ReassemblyError::Body { msg_no: 0, err })?;
        let msg_no = rec.header.msg_no;
        r.push(&rec)?.ok_or(ReassemblyError::Body { msg_no, err: DecodeError::BodyTruncated(rec.body.len()) })
    }

    /// The records carrying this message, each at most `max_record` bytes (at least
    /// [`HDR_LEN`] + 1): full records, then the rest, SOM on the first and EOM on the
    /// last, as ldmsd's reply buffer sends them.
    pub fn encode_records(&self, max_record: usize) -> Vec<Vec<u8>> {
        let body = self.encode_body();
        let chunk = max_record.saturating_sub(HDR_LEN).max(1);
        let n = body.len().div_ceil(chunk);
        body.chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let mut flags = 0;
                if i == 0 {
                    flags |= FLAG_SOM;
                }
                if i + 1 == n {
                    flags |= FLAG_EOM;
                }
                let header = RecordHeader {
                    marker: RECORD_MARKER,
                    kind: self.kind,
                    flags,
                    msg_no: self.msg_no,
                    code: self.code,
                    // A chunk is at most max_record - 24 bytes; a max_record beyond u32 is
                    // clamped by the caller's transport long before.
                    rec_len: u32::try_from(HDR_LEN + part.len()).unwrap_or(u32::MAX),
                };
                Record { header, body: part }.encode()
            })
            .collect()
    }
}

/// Bounds of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Bytes of one message body.
    pub max_message: usize,
    /// Messages of one connection being reassembled at once.
    pub max_in_progress: usize,
}

impl Default for ReassemblyLimits {
    /// 1 MiB messages (a configuration line is far shorter), 16 at a time.
    fn default() -> Self {
        ReassemblyLimits { max_message: 1 << 20, max_in_progress: 16 }
    }
}

struct Partial {
    kind: u32,
    code: u32,
    body: Vec<u8>,
}

/// Gathers one connection's records into messages, by message number.
pub struct Reassembler {
    limits: ReassemblyLimits,
    partial: HashMap<u32, Partial>,
    buffered: usize,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(limits: ReassemblyLimits) -> Reassembler {
        Reassembler { limits, partial: HashMap::new(), buffered: 0 }
    }

    /// Messages in progress.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }

    /// Body bytes held for messages in progress (at most `max_message × max_in_progress`).
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Adds one record; a whole message when this was its last record. The first
    /// record's type and code stand for the message, as in ldmsd.
    ///
    /// # Errors
    /// A duplicate SOM (the message in progress is kept, as ldmsd keeps it), a record
    /// of no message in progress, a message over the size bound (dropped), too many
    /// messages in progress, or a whole body that does not decode.
    pub fn push(&mut self, rec: &Record<'_>) -> Result<Option<Message>, ReassemblyError> {
        let h = rec.header;
        let max = self.limits.max_message;
        if h.is_som() {
            if self.partial.contains_key(&h.msg_no) {
                return Err(ReassemblyError::Duplicate(h.msg_no));
            }
            if rec.body.len() > max {
                return Err(ReassemblyError::TooLarge { msg_no: h.msg_no, max });
            }
            if h.is_eom() {
                let attrs =
                    Message::decode_body(rec.body).map_err(|err| ReassemblyError::Body { msg_no: h.msg_no, err })?;
                return Ok(Some(Message { kind: h.kind, msg_no: h.msg_no, code: h.code, attrs }));
            }
            if self.partial.len() >= self.limits.max_in_progress {
                return Err(ReassemblyError::TooManyInProgress(self.partial.len()));
            }
            self.buffered += rec.body.len();
            self.partial.insert(h.msg_no, Partial { kind: h.kind, code: h.code, body: rec.body.to_vec() });
            return Ok(None);
        }
        let Some(p) = self.partial.get_mut(&h.msg_no) else { return Err(ReassemblyError::NotFound(h.msg_no)) };
        if p.body.len() + rec.body.len() > max {
            self.buffered -= p.body.len();
            self.partial.remove(&h.msg_no);
            return Err(ReassemblyError::TooLarge { msg_no: h.msg_no, max });
        }
        p.body.extend_from_slice(rec.body);
        self.buffered += rec.body.len();
        if !h.is_eom() {
            return Ok(None);
        }
        let Some(p) = self.partial.remove(&h.msg_no) else { return Err(ReassemblyError::NotFound(h.msg_no)) };
        self.buffered -= p.body.len();
        let attrs = Message::decode_body(&p.body).map_err(|err| ReassemblyError::Body { msg_no: h.msg_no, err })?;
        Ok(Some(Message { kind: p.kind, msg_no: h.msg_no, code: p.code, attrs }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_record_request_round_trip() {
        let m = Message::request(7, 0x100, vec![Attr::string(attr::NAME, "p1"), Attr::keyword(24)]);
        let recs = m.encode_records(4096);
        assert_eq!(recs.len(), 1);
        let r = Record::decode(&recs[0]).unwrap();
        assert_eq!(r.header.flags, FLAG_SOM | FLAG_EOM);
        assert_eq!(r.header.rec_len as usize, recs[0].len());
        assert_eq!(Message::decode_single(&recs[0]).unwrap(), m);
        // Network byte order: the marker, then type 1.
        assert_eq!(&recs[0][..8], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
    }

    #[test]
    fn split_records_reassemble() {
        let m = Message::response_json(3, &"x".repeat(100));
        let recs = m.encode_records(HDR_LEN + 10);
        assert!(recs.len() > 5);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut got = None;
        for (i, b) in recs.iter().enumerate() {
            let rec = Record::decode(b).unwrap();
            assert_eq!(rec.header.is_som(), i == 0);
            assert_eq!(rec.header.is_eom(), i + 1 == recs.len());
            got = r.push(&rec).unwrap();
        }
        assert_eq!(got, Some(m));
        assert_eq!((r.in_progress(), r.buffered()), (0, 0));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(Record::decode(&[0; 10]), Err(DecodeError::ShortHeader(10)));
        let mut b = Message::request(1, 2, vec![]).encode_records(100).remove(0);
        b[0] = 0;
        assert!(matches!(Record::decode(&b), Err(DecodeError::BadMarker(_))));
        assert_eq!(Message::decode_body(&[0, 0, 0, 1, 0, 0, 0, 1]), Err(DecodeError::BodyTruncated(8)));
        assert_eq!(Message::decode_body(&[0, 0, 0, 0, 9]), Err(DecodeError::TrailingBytes(1)));
        assert!(matches!(Message::decode_body(&[0, 0, 0, 5]), Err(DecodeError::BadDiscrim(5, 0))));
        // attr_len near u32::MAX must not overflow or allocate.
        let huge = [0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(Message::decode_body(&huge), Err(DecodeError::BodyTruncated(_))));
    }

    #[test]
    fn reassembly_is_bounded() {
        let limits = ReassemblyLimits { max_message: 64, max_in_progress: 2 };
        let mut r = Reassembler::new(limits);
        let rec = |msg_no, flags, body: &'static [u8]| Record {
            header: RecordHeader {
                marker: RECORD_MARKER,
                kind: TYPE_REQUEST,
                flags,
                msg_no,
                code: 1,
                rec_len: (HDR_LEN + body.len()) as u32,
            },
            body,
        };
        assert_eq!(r.push(&rec(1, FLAG_SOM, &[1; 40])), Ok(None));
        assert_eq!(r.push(&rec(1, FLAG_SOM, &[1; 4])), Err(ReassemblyError::Duplicate(1)));
        assert_eq!(r.push(&rec(9, 0, &[1; 4])), Err(ReassemblyError::NotFound(9)));
        assert_eq!(r.push(&rec(2, FLAG_SOM, &[1; 4])), Ok(None));
        assert_eq!(r.push(&rec(3, FLAG_SOM, &[1; 4])), Err(ReassemblyError::TooManyInProgress(2)));
        assert_eq!(r.push(&rec(1, 0, &[1; 40])), Err(ReassemblyError::TooLarge { msg_no: 1, max: 64 }));
        assert_eq!((r.in_progress(), r.buffered()), (1, 4));
    }
}
