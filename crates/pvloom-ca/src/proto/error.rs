//! Error types of the protocol core, one per layer.
//!
//! * [`DbrError`]: a DBR payload does not match its type/count.
//! * [`FrameError`]: the byte stream cannot be split into messages; fatal for a circuit.
//! * [`DecodeError`]: one message cannot be understood (framing stays intact).
//! * [`EncodeError`]: a command cannot be put on the wire.
//! * [`StateError`]: a command is legal on the wire but not in the current state.
//! * [`CircuitError`]: what [`Circuit`](crate::proto::Circuit) reports.

use bytes::Bytes;

use crate::proto::command::{Role, Transport};
use crate::proto::dbr::{DbrType, NativeType};
use crate::proto::header::Header;
use crate::proto::state::ChannelState;

/// A DBR payload, or a value meant to become one, is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbrError {
    /// The data type code is not one of the 39 DBR types.
    #[error("unknown DBR type code {0}")]
    UnknownType(u16),
    /// The payload is shorter than the type and element count require.
    #[error("{data_type} with {count} elements needs {needed} bytes but the payload has {actual}")]
    PayloadTooShort {
        /// Declared type.
        data_type: DbrType,
        /// Declared element count.
        count: u32,
        /// Bytes the type and count require.
        needed: u64,
        /// Bytes present.
        actual: usize,
    },
    /// A string value has no NUL within its fixed width.
    #[error("{field} string is not NUL-terminated")]
    StringNotTerminated {
        /// Which field.
        field: &'static str,
    },
    /// A string is too long for its fixed-width field (room must remain for the NUL).
    #[error("{field} string of {len} bytes does not fit (at most {max} bytes)")]
    StringTooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The longest string the field holds.
        max: usize,
    },
    /// A string to encode contains a NUL byte, which would truncate it on the wire.
    #[error("{field} string contains a NUL byte")]
    NulInString {
        /// Which field.
        field: &'static str,
    },
    /// The metadata variant does not belong to the requested type.
    #[error("{data_type} cannot carry {metadata} metadata")]
    MetadataMismatch {
        /// Requested type.
        data_type: DbrType,
        /// The variant given.
        metadata: &'static str,
    },
    /// The value's element type is not the requested type's native type.
    #[error("{data_type} cannot carry {value:?} values")]
    ValueTypeMismatch {
        /// Requested type.
        data_type: DbrType,
        /// The value's element type.
        value: NativeType,
    },
    /// GR/CTRL_ENUM metadata declares a number of strings outside 0..=16.
    #[error("enum metadata declares {0} strings (at most 16)")]
    InvalidEnumStringCount(i32),
    /// The value has more elements than a 32-bit count can express.
    #[error("{0} elements do not fit a 32-bit element count")]
    TooManyElements(usize),
}

/// The byte stream cannot be split into messages. A TCP circuit that hits
/// one of these has lost framing and must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A header announces a payload larger than the configured maximum
    /// (EPICS_CA_MAX_ARRAY_BYTES); reported before any payload is buffered.
    #[error("command {command} announces a {size}-byte payload; the limit is {max}")]
    PayloadTooLarge {
        /// Command code of the offending header.
        command: u16,
        /// Announced payload size.
        size: u32,
        /// Configured limit.
        max: u32,
    },
    /// A payload size that is not a multiple of 8, which every EPICS peer pads to.
    #[error("command {command} announces a {size}-byte payload, not a multiple of 8")]
    MisalignedPayload {
        /// Command code of the offending header.
        command: u16,
        /// Announced payload size.
        size: u32,
    },
    /// A datagram ends inside a header.
    #[error("datagram ends {available} bytes into a message header")]
    TruncatedHeader {
        /// Bytes left in the datagram.
        available: usize,
    },
    /// A datagram ends before the payload its header announces.
    #[error("command {command} announces {needed} payload bytes but the datagram holds {available}")]
    TruncatedPayload {
        /// Command code.
        command: u16,
        /// Announced payload size.
        needed: u32,
        /// Bytes left in the datagram.
        available: usize,
    },
}

/// One message cannot be understood. Unless it wraps a [`FrameError`], the
/// stream is still in sync and later messages can be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The stream or datagram lost framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The command code is not defined by the protocol.
    #[error("unknown command code {command}")]
    UnknownCommand {
        /// The code received.
        command: u16,
    },
    /// The command exists but cannot travel to `role` over `transport`
    /// (e.g. a client receiving CREATE_CHAN requests).
    #[error("command {command} cannot be received by a {role:?} over {transport:?}")]
    WrongDirection {
        /// The code received.
        command: u16,
        /// Who received it.
        role: Role,
        /// How it arrived.
        transport: Transport,
    },
    /// The payload is shorter than the command's fixed layout.
    #[error("command {command} needs at least {needed} payload bytes, got {actual}")]
    PayloadTooShort {
        /// The code received.
        command: u16,
        /// Minimum size of the layout.
        needed: usize,
        /// Size received.
        actual: usize,
    },
    /// A name string (PV, host, client) has no terminating NUL.
    #[error("command {command} carries a string without a NUL terminator")]
    StringNotTerminated {
        /// The code received.
        command: u16,
    },
    /// A name string is not UTF-8.
    #[error("command {command} carries a name that is not UTF-8")]
    InvalidUtf8 {
        /// The code received.
        command: u16,
    },
    /// The DBR payload or type is malformed.
    #[error("command {command}: {source}")]
    Dbr {
        /// The code received.
        command: u16,
        /// What is wrong with the payload.
        source: DbrError,
    },
}

impl DecodeError {
    /// True when framing is lost and the circuit cannot continue.
    pub fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::Frame(_))
    }
}

/// A command cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The DBR payload or value does not fit its declared type.
    #[error(transparent)]
    Dbr(#[from] DbrError),
    /// A name contains a NUL byte.
    #[error("{field} contains a NUL byte")]
    NulInName {
        /// Which name.
        field: &'static str,
    },
    /// A single message does not fit the datagram size limit.
    #[error("a {size}-byte datagram exceeds the {max}-byte limit")]
    DoesNotFitDatagram {
        /// Bytes needed (lead VERSION plus the message).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The payload would exceed the 32-bit size field.
    #[error("payload of {0} bytes exceeds the protocol's 32-bit size field")]
    PayloadTooLarge(u64),
}

/// A command is well formed but illegal in the circuit's or channel's state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// The peer speaks a minor protocol version older than any supported.
    #[error("peer speaks CA protocol 4.{version}, older than the oldest supported (4.4)")]
    UnsupportedVersion {
        /// The version the peer announced.
        version: u16,
    },
    /// The command may not be sent by this side of a circuit.
    #[error("a {role:?} may not send {command}")]
    WrongSender {
        /// Command name.
        command: &'static str,
        /// The side that tried.
        role: Role,
    },
    /// The command does not belong on a TCP circuit.
    #[error("{command} is not a virtual circuit command")]
    NotACircuitCommand {
        /// Command name.
        command: &'static str,
    },
    /// VERSION must open a circuit in each direction.
    #[error("{command} sent before VERSION")]
    VersionNotFirst {
        /// Command name.
        command: &'static str,
    },
    /// SEARCH over TCP needs a peer at minor version 12 or later.
    #[error("SEARCH over TCP needs peer version >= 12, peer has {peer_version:?}")]
    TcpSearchUnsupported {
        /// The peer's minor version, if known.
        peer_version: Option<u16>,
    },
    /// The circuit was closed or failed.
    #[error("the circuit is closed")]
    CircuitClosed,
    /// No channel with this client id.
    #[error("no channel with cid {0}")]
    UnknownCid(u32),
    /// A channel with this client id already exists.
    #[error("cid {0} is already in use")]
    DuplicateCid(u32),
    /// No channel with this server id.
    #[error("no channel with sid {0}")]
    UnknownSid(u32),
    /// A channel with this server id already exists.
    #[error("sid {0} is already in use")]
    DuplicateSid(u32),
    /// The channel exists but its state forbids the command.
    #[error("{command} is not allowed on channel cid {cid} in state {state:?}")]
    ChannelState {
        /// Command name.
        command: &'static str,
        /// The channel.
        cid: u32,
        /// Its state.
        state: ChannelState,
    },
    /// A reply names an I/O id that has no request outstanding.
    #[error("{command} for ioid {ioid} that has no outstanding request")]
    UnknownIoid {
        /// Command name.
        command: &'static str,
        /// The id.
        ioid: u32,
    },
    /// A request reuses an I/O id that is still outstanding.
    #[error("ioid {ioid} is already outstanding for {command}")]
    DuplicateIoid {
        /// Command name.
        command: &'static str,
        /// The id.
        ioid: u32,
    },
    /// No subscription with this id.
    #[error("no subscription with id {0}")]
    UnknownSubscription(u32),
    /// A subscription with this id already exists.
    #[error("subscription id {0} is already in use")]
    DuplicateSubscription(u32),
    /// A subscription message disagrees with the EVENT_ADD that created it.
    #[error("subscription {subscription_id}: {field} differs from the EVENT_ADD request")]
    SubscriptionMismatch {
        /// The subscription.
        subscription_id: u32,
        /// Which field.
        field: &'static str,
    },
    /// A get/put reply disagrees with its request.
    #[error("ioid {ioid}: {field} differs from the request")]
    IoMismatch {
        /// The operation.
        ioid: u32,
        /// Which field.
        field: &'static str,
    },
    /// EVENT_CANCEL was already sent for this subscription.
    #[error("subscription {0} is already being cancelled")]
    CancelPending(u32),
    /// A reply carries more elements than requested (or than the channel has).
    #[error("{command} carries {count} elements; at most {limit} allowed")]
    CountTooLarge {
        /// Command name.
        command: &'static str,
        /// Elements in the reply.
        count: u32,
        /// Largest legal count.
        limit: u32,
    },
    /// A subscription update with an empty payload before any EVENT_CANCEL:
    /// peers would read it as the cancel confirmation.
    #[error("empty EVENT_ADD reply for subscription {0} before it was cancelled")]
    EmptyEventBeforeCancel(u32),
}

/// What a [`Circuit`](crate::proto::Circuit) reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CircuitError {
    /// Bytes from the peer cannot be decoded. `header` is set when framing
    /// held, so a server can answer with CA_PROTO_ERROR.
    #[error("decoding a message from the peer failed: {source}")]
    Decode {
        /// Header of the offending message, when known.
        header: Option<Header>,
        /// The failure.
        source: DecodeError,
    },
    /// The peer sent a command its state forbids; the command is dropped.
    #[error("the peer violated the protocol: {source}")]
    Remote {
        /// Header of the offending message.
        header: Header,
        /// The violated rule.
        source: StateError,
    },
    /// We tried to send a command our state forbids; nothing was sent.
    #[error("refused to send: {0}")]
    Local(StateError),
    /// We tried to send a command that cannot be encoded; nothing was sent.
    #[error("refused to send: {0}")]
    Encode(#[from] EncodeError),
}

impl CircuitError {
    /// True when the circuit cannot continue and must be closed.
    pub fn is_fatal(&self) -> bool {
        match self {
            CircuitError::Decode { source, .. } => source.is_fatal(),
            _ => false,
        }
    }
}

/// [`Circuit::send`](crate::proto::Circuit::send) stopped at a refused command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("command {index} of the batch was refused: {error}")]
pub struct SendError {
    /// Index of the refused command in the batch.
    pub index: usize,
    /// Encoded bytes of the commands before it, which were accepted and
    /// whose state changes took effect; they still need sending.
    pub accepted: Bytes,
    /// Why the command was refused.
    pub error: CircuitError,
}
