//! The 16-byte message header, its 24-byte extended form, and raw frames.

use bytes::{BufMut, Bytes};

use crate::proto::constants::{EXTENDED_HEADER_SIZE, EXTENDED_MARKER, HEADER_SIZE};

/// Rounds `len` up to the 8-byte message alignment.
pub const fn align8(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// [`align8`] for sizes computed from untrusted 32-bit counts.
pub const fn align8_u64(len: u64) -> u64 {
    len.div_ceil(8) * 8
}

/// A message header with the extended form already folded in: sizes and
/// counts are always 32-bit here, whichever form was on the wire.
///
/// Field names are the generic ones of the spec; each command gives
/// `data_type`, `data_count`, `param1` and `param2` its own meaning
/// (see [`Command`](crate::proto::Command)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// Command code (`m_cmmd`).
    pub command: u16,
    /// Payload size in bytes, padding included (`m_postsize`).
    pub payload_size: u32,
    /// Data type or command-specific 16-bit field (`m_dataType`).
    pub data_type: u16,
    /// Element count or command-specific field (`m_count`).
    pub data_count: u32,
    /// First parameter (`m_cid`).
    pub param1: u32,
    /// Second parameter (`m_available`).
    pub param2: u32,
}

/// Result of looking at the start of a buffer for a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderParse {
    /// A whole header: the header and how many bytes it occupied (16 or 24).
    Complete(Header, usize),
    /// More bytes are needed before the header can be read.
    Incomplete {
        /// How many more bytes at least.
        needed: usize,
    },
}

impl Header {
    /// True when the sizes do not fit the 16-bit fields, so the 24-byte form is needed.
    pub const fn needs_extended_form(&self) -> bool {
        self.payload_size >= EXTENDED_MARKER as u32 || self.data_count >= EXTENDED_MARKER as u32
    }

    /// Bytes this header occupies on the wire.
    pub const fn encoded_len(&self) -> usize {
        if self.needs_extended_form() { EXTENDED_HEADER_SIZE } else { HEADER_SIZE }
    }

    /// Writes the header in big-endian order, choosing the extended form when needed.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.command);
        if self.needs_extended_form() {
            buf.put_u16(EXTENDED_MARKER);
            buf.put_u16(self.data_type);
            buf.put_u16(0);
            buf.put_u32(self.param1);
            buf.put_u32(self.param2);
            buf.put_u32(self.payload_size);
            buf.put_u32(self.data_count);
        } else {
            // Both fit 16 bits: needs_extended_form() was false.
            buf.put_u16(self.payload_size as u16);
            buf.put_u16(self.data_type);
            buf.put_u16(self.data_count as u16);
            buf.put_u32(self.param1);
            buf.put_u32(self.param2);
        }
    }

    /// Reads a header from the start of `bytes` without consuming anything.
    pub fn parse(bytes: &[u8]) -> HeaderParse {
        let Some(fixed) = bytes.first_chunk::<HEADER_SIZE>() else {
            return HeaderParse::Incomplete { needed: HEADER_SIZE - bytes.len() };
        };
        let u16_at = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
        let u32_at = |at: usize| u32::from_be_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
        let mut header = Header {
            command: u16_at(0),
            payload_size: u32::from(u16_at(2)),
            data_type: u16_at(4),
            data_count: u32::from(u16_at(6)),
            param1: u32_at(8),
            param2: u32_at(12),
        };
        let is_extended = header.payload_size == u32::from(EXTENDED_MARKER) && header.data_count == 0;
        if !is_extended {
            return HeaderParse::Complete(header, HEADER_SIZE);
        }
        let Some(extended) = bytes.first_chunk::<EXTENDED_HEADER_SIZE>() else {
            return HeaderParse::Incomplete { needed: EXTENDED_HEADER_SIZE - bytes.len() };
        };
        header.payload_size = u32::from_be_bytes([extended[16], extended[17], extended[18], extended[19]]);
        header.data_count = u32::from_be_bytes([extended[20], extended[21], extended[22], extended[23]]);
        HeaderParse::Complete(header, EXTENDED_HEADER_SIZE)
    }
}

/// One undecoded message: its header and its payload (padding included).
///
/// The payload shares the receive buffer: making a frame copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header, extended form folded in.
    pub header: Header,
    /// The payload bytes, `header.payload_size` long.
    pub payload: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(header: &Header) -> Vec<u8> {
        let mut out = Vec::new();
        header.encode(&mut out);
        out
    }

    #[test]
    fn standard_header_layout() {
        let header = Header { command: 15, payload_size: 0, data_type: 22, data_count: 5, param1: 22, param2: 56 };
        let bytes = encoded(&header);
        assert_eq!(bytes, [0, 0x0f, 0, 0, 0, 0x16, 0, 5, 0, 0, 0, 0x16, 0, 0, 0, 0x38]);
        assert_eq!(Header::parse(&bytes), HeaderParse::Complete(header, 16));
    }

    #[test]
    fn extended_header_round_trip() {
        let header =
            Header { command: 1, payload_size: 8_000_000, data_type: 6, data_count: 1_000_000, param1: 1, param2: 7 };
        let bytes = encoded(&header);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[2..4], &[0xff, 0xff]);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(Header::parse(&bytes), HeaderParse::Complete(header, 24));
        assert_eq!(Header::parse(&bytes[..20]), HeaderParse::Incomplete { needed: 4 });
    }

    #[test]
    fn count_alone_forces_the_extended_form() {
        let header = Header { command: 15, data_count: 0xFFFF, ..Header::default() };
        assert_eq!(header.encoded_len(), 24);
        let bytes = encoded(&header);
        assert_eq!(Header::parse(&bytes), HeaderParse::Complete(header, 24));
    }

    #[test]
    fn short_input_reports_the_missing_bytes() {
        assert_eq!(Header::parse(&[0; 5]), HeaderParse::Incomplete { needed: 11 });
    }

    #[test]
    fn alignment() {
        assert_eq!(align8(0), 0);
        assert_eq!(align8(1), 8);
        assert_eq!(align8(8), 8);
        assert_eq!(align8_u64(17), 24);
    }
}
