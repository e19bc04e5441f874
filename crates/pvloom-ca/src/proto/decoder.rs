//! Splitting byte streams and datagrams into frames.
//!
//! The TCP decoder consumes its buffer with `BytesMut::advance`/`split_to`,
//! both O(1), and hands payloads out as views of the buffer, so decoding N
//! queued messages costs O(N) and copies no payload bytes.

use bytes::{Buf, Bytes, BytesMut};

use crate::proto::command::{Command, Role, Transport};
use crate::proto::error::{DecodeError, FrameError};
use crate::proto::header::{Frame, Header, HeaderParse};

/// Default payload limit: 16 MiB, room for a two-million-element DOUBLE
/// waveform. EPICS base's own default (EPICS_CA_MAX_ARRAY_BYTES) is 16 KiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// Limits applied while framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest payload accepted (the EPICS_CA_MAX_ARRAY_BYTES equivalent).
    /// A header announcing more fails before its payload is buffered.
    pub max_payload: u32,
    /// Refuse payload sizes that are not multiples of 8. Every EPICS
    /// implementation pads, so a misaligned size signals garbage.
    pub require_alignment: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig { max_payload: DEFAULT_MAX_PAYLOAD, require_alignment: true }
    }
}

impl DecoderConfig {
    fn check(&self, header: &Header) -> Result<(), FrameError> {
        if header.payload_size > self.max_payload {
            return Err(FrameError::PayloadTooLarge {
                command: header.command,
                size: header.payload_size,
                max: self.max_payload,
            });
        }
        if self.require_alignment && !header.payload_size.is_multiple_of(8) {
            return Err(FrameError::MisalignedPayload { command: header.command, size: header.payload_size });
        }
        Ok(())
    }
}

/// Incremental framer for one TCP byte stream.
///
/// Feed it with [`push`](Self::push) (or read straight into
/// [`buffer_mut`](Self::buffer_mut)), then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`;
/// [`bytes_needed`](Self::bytes_needed) then tells how much more must arrive.
/// After an error the stream is out of sync and every later call repeats it.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    config: DecoderConfig,
    /// Header already validated and consumed, waiting for its payload.
    pending: Option<Header>,
    needed: usize,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

impl FrameDecoder {
    /// A decoder with the given limits.
    pub fn new(config: DecoderConfig) -> Self {
        FrameDecoder {
            buffer: BytesMut::new(),
            config,
            pending: None,
            needed: crate::proto::constants::HEADER_SIZE,
            failed: None,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> DecoderConfig {
        self.config
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The receive buffer, for reading from a socket without an extra copy.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// Bytes buffered but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Minimum number of further bytes before the next frame can complete
    /// (0 when one is ready).
    pub fn bytes_needed(&self) -> usize {
        self.needed
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let header = match self.pending.take() {
            Some(header) => header,
            None => match Header::parse(&self.buffer) {
                HeaderParse::Incomplete { needed } => {
                    self.needed = needed;
                    return Ok(None);
                }
                HeaderParse::Complete(header, header_len) => {
                    if let Err(error) = self.config.check(&header) {
                        self.failed = Some(error.clone());
                        return Err(error);
                    }
                    self.buffer.advance(header_len);
                    header
                }
            },
        };
        // payload_size <= max_payload (a u32) was checked, so this fits usize
        // on every platform with at least 32-bit pointers.
        let payload_len = header.payload_size as usize;
        if self.buffer.len() < payload_len {
            self.needed = payload_len - self.buffer.len();
            // Reserve only what the validated header announced.
            self.buffer.reserve(self.needed);
            self.pending = Some(header);
            return Ok(None);
        }
        let payload = self.buffer.split_to(payload_len).freeze();
        self.needed = match Header::parse(&self.buffer) {
            HeaderParse::Incomplete { needed } => needed,
            HeaderParse::Complete(..) => 0,
        };
        Ok(Some(Frame { header, payload }))
    }

    /// The next frame decoded as a command received by `role` over TCP.
    ///
    /// A [`DecodeError`] that is not fatal leaves the stream in sync: the
    /// offending message was consumed and the next call continues after it.
    pub fn next_command(&mut self, role: Role) -> Result<Option<Command>, DecodeError> {
        match self.next_frame()? {
            None => Ok(None),
            Some(frame) => Command::decode(&frame, role, Transport::Tcp).map(Some),
        }
    }
}

/// Iterator over the frames of one datagram, sharing the datagram's memory.
///
/// Stops after the first framing error.
#[derive(Debug, Clone)]
pub struct DatagramFrames {
    rest: Bytes,
    failed: bool,
}

impl DatagramFrames {
    /// Frames of `datagram`.
    pub fn new(datagram: Bytes) -> Self {
        DatagramFrames { rest: datagram, failed: false }
    }
}

impl Iterator for DatagramFrames {
    type Item = Result<Frame, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let outcome = match Header::parse(&self.rest) {
            HeaderParse::Incomplete { .. } => Err(FrameError::TruncatedHeader { available: self.rest.len() }),
            HeaderParse::Complete(header, header_len) => {
                let available = self.rest.len() - header_len;
                if header.payload_size as usize > available {
                    Err(FrameError::TruncatedPayload {
                        command: header.command,
                        needed: header.payload_size,
                        available,
                    })
                } else {
                    self.rest.advance(header_len);
                    let payload = self.rest.split_to(header.payload_size as usize);
                    Ok(Frame { header, payload })
                }
            }
        };
        self.failed = outcome.is_err();
        Some(outcome)
    }
}

/// Decodes every message of one datagram received by `role`.
///
/// The whole datagram is refused on the first bad message, as libca does.
pub fn decode_datagram(datagram: Bytes, role: Role) -> Result<Vec<Command>, DecodeError> {
    DatagramFrames::new(datagram).map(|frame| Command::decode(&frame?, role, Transport::Udp)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dbr::{DbrData, DbrType, Value};

    fn echo_bytes() -> Vec<u8> {
        Command::EchoRequest.to_bytes().unwrap().to_vec()
    }

    #[test]
    fn frames_arrive_byte_by_byte() {
        let message = Command::CreateChanRequest { cid: 1, version: 13, name: "XXX".into() }.to_bytes().unwrap();
        let mut decoder = FrameDecoder::default();
        for (index, byte) in message.iter().enumerate() {
            assert_eq!(decoder.next_frame().unwrap(), None);
            assert!(decoder.bytes_needed() > 0);
            assert!(decoder.bytes_needed() <= message.len() - index);
            decoder.push(&[*byte]);
        }
        let command = decoder.next_command(Role::Server).unwrap().unwrap();
        assert!(matches!(command, Command::CreateChanRequest { cid: 1, .. }));
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(decoder.bytes_needed(), 16);
    }

    #[test]
    fn oversized_payload_is_refused_before_buffering() {
        let mut decoder = FrameDecoder::new(DecoderConfig { max_payload: 1024, require_alignment: true });
        let header = Header { command: 15, payload_size: 4096, data_type: 6, data_count: 512, param1: 1, param2: 1 };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        decoder.push(&bytes);
        let error = decoder.next_frame().unwrap_err();
        assert_eq!(error, FrameError::PayloadTooLarge { command: 15, size: 4096, max: 1024 });
        assert!(decoder.buffered() < 64);
        // The stream stays poisoned.
        decoder.push(&echo_bytes());
        assert_eq!(decoder.next_frame().unwrap_err(), error);
    }

    #[test]
    fn misaligned_payload_is_refused() {
        let header = Header { command: 20, payload_size: 5, ..Header::default() };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        bytes.extend_from_slice(b"abcd\0");
        let mut decoder = FrameDecoder::default();
        decoder.push(&bytes);
        assert!(matches!(decoder.next_frame(), Err(FrameError::MisalignedPayload { size: 5, .. })));
        let mut lenient = FrameDecoder::new(DecoderConfig { require_alignment: false, ..DecoderConfig::default() });
        lenient.push(&bytes);
        assert!(lenient.next_frame().unwrap().is_some());
    }

    #[test]
    fn bad_message_does_not_lose_sync() {
        let mut bytes = Vec::new();
        Header { command: 99, ..Header::default() }.encode(&mut bytes);
        bytes.extend_from_slice(&echo_bytes());
        let mut decoder = FrameDecoder::default();
        decoder.push(&bytes);
        assert_eq!(decoder.next_command(Role::Server), Err(DecodeError::UnknownCommand { command: 99 }));
        assert_eq!(decoder.next_command(Role::Server).unwrap(), Some(Command::EchoRequest));
    }

    #[test]
    fn payloads_share_the_receive_buffer() {
        let reply = Command::read_notify_response(
            7,
            crate::proto::constants::ECA_NORMAL,
            DbrType::Double,
            &DbrData::plain(Value::Double(vec![1.0, 2.0, 3.0])),
        )
        .unwrap()
        .to_bytes()
        .unwrap();
        let mut decoder = FrameDecoder::default();
        for _ in 0..3 {
            decoder.push(&reply);
        }
        let buffer_start = decoder.buffer_mut().as_ptr() as usize;
        let buffer_end = buffer_start + decoder.buffered();
        for _ in 0..3 {
            let frame = decoder.next_frame().unwrap().unwrap();
            let at = frame.payload.as_ptr() as usize;
            assert!(at >= buffer_start && at + frame.payload.len() <= buffer_end);
        }
    }

    #[test]
    fn datagram_with_truncated_payload() {
        let mut bytes = Command::SearchRequest { name: "PV:NAME".into(), do_reply: false, version: 13, search_id: 4 }
            .to_bytes()
            .unwrap()
            .to_vec();
        bytes.truncate(bytes.len() - 3);
        assert_eq!(
            decode_datagram(Bytes::from(bytes), Role::Server),
            Err(DecodeError::Frame(FrameError::TruncatedPayload { command: 6, needed: 8, available: 5 }))
        );
        assert_eq!(
            decode_datagram(Bytes::from_static(&[0, 6, 0]), Role::Server),
            Err(DecodeError::Frame(FrameError::TruncatedHeader { available: 3 }))
        );
    }
}
