//! The message header: 27 bytes, big-endian,
//! `identity[16] | serial u32 | data_len u32 | header_len u16 | type u8`.
//! (data_len comes before header_len on the wire, though the header bytes are sent
//! before the data bytes.)

use crate::error::ProtocolError;
use crate::identity::{IDENTITY_LEN, Identity};

/// Length of a message header on the wire (`CH_SR_WIRE_MESSAGE_SIZE`).
pub const HEADER_LEN: usize = IDENTITY_LEN + 4 + 4 + 2 + 1;

/// The type bits (`ch_msg_types_t`).
pub mod kind {
    /// The sender wants an ACK once the receiver released the message (sync mode).
    pub const REQ_ACK: u8 = 1 << 0;
    /// Acknowledges the message with the same identity.
    pub const ACK: u8 = 1 << 1;
    /// Keeps the connection alive (the receiver's GC sees activity); no payload.
    pub const NOOP: u8 = 1 << 2;
}

/// What a header announces, as the receiver must treat it. libchirp tests NOOP
/// before ACK and ignores bits it does not know; so does this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgKind {
    /// A NOOP.
    Noop,
    /// An ACK for the message with the header's identity.
    Ack,
    /// A message for the application; `wants_ack` when REQ_ACK is set.
    Data {
        /// REQ_ACK was set.
        wants_ack: bool,
    },
}

/// One decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    /// The message's identity (kept by replies).
    pub identity: Identity,
    /// The sender's per-remote counter.
    pub serial: u32,
    /// Bytes of data after the header bytes.
    pub data_len: u32,
    /// Bytes of upper-layer header.
    pub header_len: u16,
    /// The type bits, as sent.
    pub kind: u8,
}

impl WireHeader {
    /// The 27 wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..16].copy_from_slice(&self.identity.0);
        out[16..20].copy_from_slice(&self.serial.to_be_bytes());
        out[20..24].copy_from_slice(&self.data_len.to_be_bytes());
        out[24..26].copy_from_slice(&self.header_len.to_be_bytes());
        out[26] = self.kind;
        out
    }

    /// Decode the first [`HEADER_LEN`] bytes; `None` when fewer are given. Says
    /// nothing about validity: see [`validate`](Self::validate).
    pub fn decode(bytes: &[u8]) -> Option<WireHeader> {
        let bytes: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let mut identity = [0u8; IDENTITY_LEN];
        identity.copy_from_slice(&bytes[..16]);
        Some(WireHeader {
            identity: Identity(identity),
            serial: u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            data_len: u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
            header_len: u16::from_be_bytes([bytes[24], bytes[25]]),
            kind: bytes[26],
        })
    }

    /// header_len + data_len: the bytes that follow this header.
    pub fn body_len(&self) -> u64 {
        u64::from(self.header_len) + u64::from(self.data_len)
    }

    /// The receiver's rules (libchirp's `_ch_rd_verify_msg`), in its order: the
    /// size limit first, then an ACK or NOOP must have no header, no data and no
    /// REQ_ACK. Returns how to treat the message.
    ///
    /// # Errors
    /// The rule broken; the connection must close.
    pub fn validate(&self, max_msg_size: u32) -> Result<MsgKind, ProtocolError> {
        if self.body_len() > u64::from(max_msg_size) {
            return Err(ProtocolError::TooLarge { size: self.body_len(), limit: max_msg_size });
        }
        let control = self.kind & (kind::ACK | kind::NOOP) != 0;
        if control {
            if self.header_len != 0 || self.data_len != 0 {
                return Err(ProtocolError::ControlWithPayload { header_len: self.header_len, data_len: self.data_len });
            }
            if self.kind & kind::REQ_ACK != 0 {
                return Err(ProtocolError::ControlRequestsAck { kind: self.kind });
            }
        }
        Ok(if self.kind & kind::NOOP != 0 {
            MsgKind::Noop
        } else if self.kind & kind::ACK != 0 {
            MsgKind::Ack
        } else {
            MsgKind::Data { wants_ack: self.kind & kind::REQ_ACK != 0 }
        })
    }
}
