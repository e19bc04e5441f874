//! One connection's input cut into frames: first the peer's handshake, then message
//! headers, each followed by its header and data bytes.
//!
//! Buffering is bounded by construction: a message's body is taken only once a slot
//! is free for it (otherwise the decoder reports [`Step::NeedSlot`] and the caller
//! stops reading the socket), its size is checked against MAX_MSG_SIZE before a
//! byte of it is kept, and its buffer grows with what actually arrived rather than
//! with what the header announced. What waits in the decoder is then at most one
//! partial message plus the input of the read that filled the last slot.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, MsgKind, WireHeader};

/// The most of a body reserved ahead of its bytes: a header announcing 100 MiB
/// must not cost 100 MiB before the peer sends them.
const RESERVE_AHEAD: usize = 64 * 1024;

/// A complete frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The peer's handshake.
    Handshake(Handshake),
    /// A NOOP (activity, nothing else).
    Noop(WireHeader),
    /// An ACK for the message with this header's identity.
    Ack(WireHeader),
    /// A message for the application.
    Message {
        /// Its wire header.
        header: WireHeader,
        /// REQ_ACK was set: ACK it when the application releases it.
        wants_ack: bool,
        /// The upper-layer header bytes.
        upper: Bytes,
        /// The data bytes.
        data: Bytes,
    },
}

/// What [`Decoder::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A frame.
    Frame(Frame),
    /// A message header arrived but no slot is free: stop reading until one is.
    NeedSlot,
    /// Not enough bytes yet.
    NeedMore,
}

enum Stage {
    Handshake,
    Header,
    Body { header: WireHeader, wants_ack: bool, body: BytesMut },
    Failed,
}

/// The frame decoder of one connection.
pub struct Decoder {
    stage: Stage,
    input: BytesMut,
    max_msg_size: u32,
}

impl Decoder {
    /// A decoder expecting the peer's handshake first; messages whose header and
    /// data together exceed `max_msg_size` are a protocol error.
    pub fn new(max_msg_size: u32) -> Self {
        Decoder { stage: Stage::Handshake, input: BytesMut::new(), max_msg_size }
    }

    /// Append received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !matches!(self.stage, Stage::Failed) {
            self.input.extend_from_slice(data);
        }
    }

    /// Bytes held: unparsed input plus the partial body.
    pub fn buffered(&self) -> usize {
        let body = match &self.stage {
            Stage::Body { body, .. } => body.len(),
            _ => 0,
        };
        self.input.len() + body
    }

    /// True once the peer's handshake was decoded.
    pub fn past_handshake(&self) -> bool {
        !matches!(self.stage, Stage::Handshake)
    }

    /// The next frame; `slot_free` says whether a message for the application may be
    /// started now.
    ///
    /// # Errors
    /// A rule of [`WireHeader::validate`] was broken; the decoder then stays failed
    /// (every later call repeats nothing and returns `NeedMore`).
    pub fn next(&mut self, slot_free: bool) -> Result<Step, ProtocolError> {
        match &mut self.stage {
            Stage::Failed => Ok(Step::NeedMore),
            Stage::Handshake => match Handshake::decode(&self.input) {
                Some(handshake) => {
                    self.input.advance(HANDSHAKE_LEN);
                    self.stage = Stage::Header;
                    Ok(Step::Frame(Frame::Handshake(handshake)))
                }
                None => Ok(Step::NeedMore),
            },
            Stage::Header => {
                let Some(header) = WireHeader::decode(&self.input) else {
                    return Ok(Step::NeedMore);
                };
                let kind = match header.validate(self.max_msg_size) {
                    Ok(kind) => kind,
                    Err(error) => {
                        self.stage = Stage::Failed;
                        self.input = BytesMut::new();
                        return Err(error);
                    }
                };
                let wants_ack = match kind {
                    MsgKind::Noop => {
                        self.input.advance(HEADER_LEN);
                        return Ok(Step::Frame(Frame::Noop(header)));
                    }
                    MsgKind::Ack => {
                        self.input.advance(HEADER_LEN);
                        return Ok(Step::Frame(Frame::Ack(header)));
                    }
                    MsgKind::Data { wants_ack } => wants_ack,
                };
                if !slot_free {
                    // The header stays in the input and is decoded again once a slot
                    // is free: 27 bytes, cheaper than another state.
                    return Ok(Step::NeedSlot);
                }
                self.input.advance(HEADER_LEN);
                // Fits in usize: validate bounded it by a u32.
                let body_len = header.body_len() as usize;
                let body = if self.input.len() >= body_len {
                    // The common case: the whole message came in one read; no copy.
                    self.input.split_to(body_len)
                } else {
                    let mut body = BytesMut::with_capacity(body_len.min(RESERVE_AHEAD));
                    body.extend_from_slice(&self.input);
                    self.input.clear();
                    body
                };
                self.stage = Stage::Body { header, wants_ack, body };
                self.finish_body()
            }
            Stage::Body { header, body, .. } => {
                let missing = header.body_len() as usize - body.len();
                let take = missing.min(self.input.len());
                body.extend_from_slice(&self.input[..take]);
                self.input.advance(take);
                self.finish_body()
            }
        }
    }

    fn finish_body(&mut self) -> Result<Step, ProtocolError> {
        let Stage::Body { header, body, .. } = &self.stage else {
            return Ok(Step::NeedMore);
        };
        if body.len() < header.body_len() as usize {
            return Ok(Step::NeedMore);
        }
        let Stage::Body { header, wants_ack, mut body } = std::mem::replace(&mut self.stage, Stage::Header) else {
            return Ok(Step::NeedMore);
        };
        let upper = body.split_to(usize::from(header.header_len)).freeze();
        let data = body.freeze();
        Ok(Step::Frame(Frame::Message { header, wants_ack, upper, data }))
    }
}
