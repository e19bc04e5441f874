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
//!
//! The circuit's book is also its owner's table: with payload types
//! ([`BookPayloads`]), each channel, outstanding I/O and subscription carries
//! one, attached right after the command that created the entry and handed back
//! in [`Event::released`] (or by [`Circuit::disconnect_released`]) when the entry ends.
//!
//! ```
//! use pvloom_ca::proto::state::{BookPayloads, IoKind};
//! use pvloom_ca::proto::{Circuit, CircuitConfig, Command, DbrData, DbrType, Role, Value};
//!
//! struct Tags;
//! impl BookPayloads for Tags {
//!     type Channel = &'static str;
//!     type Io = u32;
//!     type Sub = ();
//! }
//!
//! let mut client = Circuit::<Tags>::with_payloads(Role::Client, CircuitConfig::default());
//! let mut server = Circuit::new(Role::Server);
//! let mut wire = client.send(&[Command::VersionRequest { priority: 0, version: 13 }]).unwrap();
//! server.recv(&wire);
//! server.recv(&client.send(&[Command::CreateChanRequest { cid: 1, version: 13, name: "PV:1".into() }]).unwrap());
//! client.book_mut().attach_channel(1, "the PV's handle").unwrap();
//! while server.poll_event().unwrap().is_some() {}
//! wire = server
//!     .send(&[
//!         Command::VersionResponse { version: 13 },
//!         Command::CreateChanResponse { data_type: DbrType::Double, data_count: 1, cid: 1, sid: 7 },
//!     ])
//!     .unwrap();
//! client.recv(&wire);
//! while client.poll_event().unwrap().is_some() {}
//! assert_eq!(client.book().channel_payload(1), Some(&"the PV's handle"));
//!
//! server.recv(&client.send(&[Command::read_notify_request(7, 42, DbrType::Double, 1)]).unwrap());
//! client.book_mut().attach_io(IoKind::ReadNotify, 42, 1234).unwrap();
//! while server.poll_event().unwrap().is_some() {}
//! let data = DbrData::plain(Value::Double(vec![1.5]));
//! client.recv(&server.send(&[Command::read_notify_response(42, 1, DbrType::Double, &data).unwrap()]).unwrap());
//! let reply = client.poll_event().unwrap().unwrap();
//! assert_eq!(reply.released.ios, vec![(IoKind::ReadNotify, 42, 1234)]);
//! ```

use bytes::{Bytes, BytesMut};

use crate::proto::command::{Command, Role, Transport};
use crate::proto::constants::CA_MINOR_PROTOCOL_REVISION;
use crate::proto::decoder::{DecoderConfig, FrameDecoder};
use crate::proto::error::{CircuitError, DecodeError, SendError};
use crate::proto::state::{
    BookPayloads, Channel, ChannelState, CircuitBook, CircuitState, Direction, IoKind, PendingIo, Released,
    Subscription, Verdict,
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
pub struct Event<P: BookPayloads = ()> {
    /// The command. An empty EVENT_ADD reply that does not confirm a cancel
    /// arrives as an [`Command::EventAddResponse`] with no elements.
    pub command: Command,
    /// Client id of the channel it concerns, resolved from sid, ioid or
    /// subscription id when the command itself does not name it.
    pub cid: Option<u32>,
    /// That channel's state after the command ([`ChannelState::Closed`] or
    /// [`ChannelState::Failed`] when the command ended it).
    pub channel_state: Option<ChannelState>,
    /// The payloads of the entries the command ended (a completed I/O, a
    /// confirmed cancel, a channel with what was outstanding on it).
    pub released: Released<P>,
}

impl<P: BookPayloads> std::fmt::Debug for Event<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("command", &self.command)
            .field("cid", &self.cid)
            .field("channel_state", &self.channel_state)
            .field("released", &self.released)
            .finish()
    }
}

impl<P: BookPayloads> Clone for Event<P>
where
    P::Channel: Clone,
    P::Io: Clone,
    P::Sub: Clone,
{
    fn clone(&self) -> Self {
        Event {
            command: self.command.clone(),
            cid: self.cid,
            channel_state: self.channel_state,
            released: self.released.clone(),
        }
    }
}

impl<P: BookPayloads> PartialEq for Event<P>
where
    P::Channel: PartialEq,
    P::Io: PartialEq,
    P::Sub: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command
            && self.cid == other.cid
            && self.channel_state == other.channel_state
            && self.released == other.released
    }
}

/// One virtual circuit, client or server side, without sockets or clocks.
///
/// [`send`](Self::send) checks commands against the protocol state and
/// encodes them; the caller writes the bytes. [`recv`](Self::recv) takes bytes
/// read from the socket; [`poll_event`](Self::poll_event) decodes, checks and
/// returns what the peer said. Errors that are not
/// [fatal](CircuitError::is_fatal) leave the circuit usable.
///
/// `P` are the payloads its book's entries carry (none by default).
pub struct Circuit<P: BookPayloads = ()> {
    book: CircuitBook<P>,
    decoder: FrameDecoder,
}

impl<P: BookPayloads> std::fmt::Debug for Circuit<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit").field("book", &self.book).field("decoder", &self.decoder).finish()
    }
}

impl Circuit {
    /// A circuit with default settings (protocol 4.13, 16 MiB payload limit).
    pub fn new(role: Role) -> Self {
        Self::with_config(role, CircuitConfig::default())
    }

    /// A circuit with explicit settings.
    pub fn with_config(role: Role, config: CircuitConfig) -> Self {
        Self::with_payloads(role, config)
    }
}

impl<P: BookPayloads> Circuit<P> {
    /// A circuit with explicit settings whose entries carry payloads `P`.
    pub fn with_payloads(role: Role, config: CircuitConfig) -> Self {
        Circuit { book: CircuitBook::with_payloads(role, config.version), decoder: FrameDecoder::new(config.decoder) }
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
    pub fn book(&self) -> &CircuitBook<P> {
        &self.book
    }

    /// The book, to attach, change and take payloads (the rules stay out of reach).
    pub fn book_mut(&mut self) -> &mut CircuitBook<P> {
        &mut self.book
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
    pub fn poll_event(&mut self) -> Result<Option<Event<P>>, CircuitError> {
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(error) => {
                    // Closed; the payloads wait for `disconnect_released`.
                    self.book.fail();
                    return Err(CircuitError::Decode { header: None, source: DecodeError::Frame(error) });
                }
            };
            let header = frame.header;
            let command = Command::decode(&frame, self.role(), Transport::Tcp)
                .map_err(|source| CircuitError::Decode { header: Some(header), source })?;
            match self.book.apply(&command, Direction::Received) {
                Ok(Verdict::Deliver { rewritten, cid, channel_state, released }) => {
                    let command = rewritten.unwrap_or(command);
                    return Ok(Some(Event { command, cid, channel_state, released }));
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

    /// Records that the connection is gone and hands back every payload the
    /// book still held. Later sends are refused.
    pub fn disconnect_released(&mut self) -> Released<P> {
        self.book.disconnect_released()
    }
}
