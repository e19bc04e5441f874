//! A sans-I/O virtual circuit: commands in, bytes out; bytes in, events out.
//!
//! ```
//! use pvloom_ca::proto::{Circuit, Command, DbrType, Role};
//!
//! let mut client = Circuit::new(Role::Client);
//! let mut server = Circuit::new(Role::Server);
//!
//! let hello = client
//!     .send(&[
//!         Command::VersionRequest { priority: 0, version: 13 },
//!         Command::CreateChanRequest { cid: 1, version: 13, name: "PV:1".into() },
//!     ])
//!     .unwrap();
//! server.recv(&hello);
//! while let Some(event) = server.poll_event().unwrap() {
//!     println!("server got {:?}", event.command);
//! }
//! ```

use bytes::{Bytes, BytesMut};

use crate::proto::command::{Command, Role, Transport};
use crate::proto::constants::CA_MINOR_PROTOCOL_REVISION;
use crate::proto::decoder::{DecoderConfig, FrameDecoder};
use crate::proto::error::{CircuitError, DecodeError, SendError};
use crate::proto::state::{
    Channel, ChannelState, CircuitBook, CircuitState, Direction, IoKind, PendingIo, Subscription, Verdict,
};

/// Settings of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Framing limits for received bytes.
    pub decoder: DecoderConfig,
    /// Minor protocol version this endpoint speaks.
    pub version: u16,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig { decoder: DecoderConfig::default(), version: CA_MINOR_PROTOCOL_REVISION }
    }
}

/// A command received from the peer and accepted by the circuit's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The command. An empty EVENT_ADD reply that does not confirm a cancel
    /// arrives as an [`Command::EventAddResponse`] with no elements.
    pub command: Command,
    /// Client id of the channel it concerns, resolved from sid, ioid or
    /// subscription id when the command itself does not name it.
    pub cid: Option<u32>,
    /// That channel's state after the command ([`ChannelState::Closed`] or
    /// [`ChannelState::Failed`] when the command ended it).
    pub channel_state: Option<ChannelState>,
}

/// One virtual circuit, client or server side, without sockets or clocks.
///
/// [`send`](Self::send) checks commands against the protocol state and
/// encodes them; the caller writes the bytes. [`recv`](Self::recv) takes bytes
/// read from the socket; [`poll_event`](Self::poll_event) decodes, checks and
/// returns what the peer said. Errors that are not
/// [fatal](CircuitError::is_fatal) leave the circuit usable.
#[derive(Debug)]
pub struct Circuit {
    book: CircuitBook,
    decoder: FrameDecoder,
}

impl Circuit {
    /// A circuit with default settings (protocol 4.13, 16 MiB payload limit).
    pub fn new(role: Role) -> Self {
        Self::with_config(role, CircuitConfig::default())
    }

    /// A circuit with explicit settings.
    pub fn with_config(role: Role, config: CircuitConfig) -> Self {
        Circuit { book: CircuitBook::new(role, config.version), decoder: FrameDecoder::new(config.decoder) }
    }

    /// Our side of the protocol.
    pub fn role(&self) -> Role {
        self.book.role()
    }

    /// Handshake state.
    pub fn state(&self) -> CircuitState {
        self.book.state()
    }

    /// Rules and records, for inspection.
    pub fn book(&self) -> &CircuitBook {
        &self.book
    }

    /// Minor version in effect on this circuit.
    pub fn protocol_version(&self) -> u16 {
        self.book.protocol_version()
    }

    /// A channel by client id.
    pub fn channel(&self, cid: u32) -> Option<&Channel> {
        self.book.channel(cid)
    }

    /// A channel by server id.
    pub fn channel_by_sid(&self, sid: u32) -> Option<&Channel> {
        self.book.channel_by_sid(sid)
    }

    /// An outstanding get/put.
    pub fn pending_io(&self, kind: IoKind, ioid: u32) -> Option<&PendingIo> {
        self.book.pending_io(kind, ioid)
    }

    /// A subscription by id.
    pub fn subscription(&self, subscription_id: u32) -> Option<&Subscription> {
        self.book.subscription(subscription_id)
    }

    /// Checks and encodes a batch of commands, returning the bytes to write.
    ///
    /// Stops at the first refused command; the [`SendError`] carries the
    /// bytes of the accepted commands before it, which must still be sent.
    pub fn send(&mut self, commands: &[Command]) -> Result<Bytes, SendError> {
        let mut buf = BytesMut::new();
        for (index, command) in commands.iter().enumerate() {
            if let Err(error) = self.send_into(command, &mut buf) {
                return Err(SendError { index, accepted: buf.freeze(), error });
            }
        }
        Ok(buf.freeze())
    }

    /// Checks one command and appends its encoding to `buf`; on error `buf`
    /// and the circuit are unchanged.
    pub fn send_into(&mut self, command: &Command, buf: &mut BytesMut) -> Result<(), CircuitError> {
        let mark = buf.len();
        command.encode(buf)?;
        if let Err(error) = self.book.apply(command, Direction::Sent) {
            buf.truncate(mark);
            return Err(CircuitError::Local(error));
        }
        Ok(())
    }

    /// Queues bytes read from the socket.
    pub fn recv(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// The receive buffer, to read from the socket into without a copy.
    pub fn recv_buffer(&mut self) -> &mut BytesMut {
        self.decoder.buffer_mut()
    }

    /// Minimum number of further bytes before another event can be decoded.
    pub fn bytes_needed(&self) -> usize {
        self.decoder.bytes_needed()
    }

    /// The next accepted command from the peer, `Ok(None)` when the queued
    /// bytes hold no complete message.
    ///
    /// A refused message is consumed and reported as an error; polling again
    /// continues with the next one unless the error is fatal, in which case
    /// the circuit is closed.
    pub fn poll_event(&mut self) -> Result<Option<Event>, CircuitError> {
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(error) => {
                    self.book.disconnect();
                    return Err(CircuitError::Decode { header: None, source: DecodeError::Frame(error) });
                }
            };
            let header = frame.header;
            let command = Command::decode(&frame, self.role(), Transport::Tcp)
                .map_err(|source| CircuitError::Decode { header: Some(header), source })?;
            match self.book.apply(&command, Direction::Received) {
                Ok(Verdict::Deliver { command, cid, channel_state }) => {
                    return Ok(Some(Event { command, cid, channel_state }));
                }
                Ok(Verdict::Absorb) => {
                    tracing::trace!(?header, "absorbed late cancel confirmation");
                }
                Err(source) => return Err(CircuitError::Remote { header, source }),
            }
        }
    }

    /// Records that the connection is gone; returns the cids of the channels
    /// that closed with it. Later sends are refused.
    pub fn disconnect(&mut self) -> Vec<u32> {
        self.book.disconnect()
    }
}
