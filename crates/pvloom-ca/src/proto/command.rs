//! Every CA command as a Rust value, and its mapping to and from frames.
//!
//! Header fields mean different things per command and per direction, so a
//! command is decoded knowing who receives it ([`Role`]) and how it arrived
//! ([`Transport`]). Requests travel client → server, responses server →
//! client; beacons and repeater messages go either way over UDP.

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::constants::{
    ACCESS_RIGHT_READ, ACCESS_RIGHT_WRITE, DO_REPLY, DONT_REPLY, SEARCH_REPLY_USE_SENDER, SEQUENCE_NUMBER_IS_VALID,
};
use crate::proto::dbr::{DbrData, DbrType, NativeType, minimum_payload};
use crate::proto::error::{DbrError, DecodeError, EncodeError};
use crate::proto::header::{Frame, Header, HeaderParse, align8};

/// Which side of the protocol this endpoint plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends requests, receives responses.
    Client,
    /// Receives requests, sends responses (repeaters decode as servers too).
    Server,
}

impl Role {
    /// The other side.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A virtual circuit.
    Tcp,
    /// A datagram (search, beacon, repeater).
    Udp,
}

/// Command codes (`m_cmmd`).
pub mod code {
    /// CA_PROTO_VERSION.
    pub const VERSION: u16 = 0;
    /// CA_PROTO_EVENT_ADD.
    pub const EVENT_ADD: u16 = 1;
    /// CA_PROTO_EVENT_CANCEL.
    pub const EVENT_CANCEL: u16 = 2;
    /// CA_PROTO_READ (obsolete since 3.13, still served by RSRV).
    pub const READ: u16 = 3;
    /// CA_PROTO_WRITE.
    pub const WRITE: u16 = 4;
    /// CA_PROTO_SNAPSHOT (obsolete).
    pub const SNAPSHOT: u16 = 5;
    /// CA_PROTO_SEARCH.
    pub const SEARCH: u16 = 6;
    /// CA_PROTO_BUILD (obsolete).
    pub const BUILD: u16 = 7;
    /// CA_PROTO_EVENTS_OFF.
    pub const EVENTS_OFF: u16 = 8;
    /// CA_PROTO_EVENTS_ON.
    pub const EVENTS_ON: u16 = 9;
    /// CA_PROTO_READ_SYNC (obsolete).
    pub const READ_SYNC: u16 = 10;
    /// CA_PROTO_ERROR.
    pub const ERROR: u16 = 11;
    /// CA_PROTO_CLEAR_CHANNEL.
    pub const CLEAR_CHANNEL: u16 = 12;
    /// CA_PROTO_RSRV_IS_UP (beacon).
    pub const RSRV_IS_UP: u16 = 13;
    /// CA_PROTO_NOT_FOUND.
    pub const NOT_FOUND: u16 = 14;
    /// CA_PROTO_READ_NOTIFY.
    pub const READ_NOTIFY: u16 = 15;
    /// CA_PROTO_READ_BUILD (obsolete).
    pub const READ_BUILD: u16 = 16;
    /// REPEATER_CONFIRM.
    pub const REPEATER_CONFIRM: u16 = 17;
    /// CA_PROTO_CREATE_CHAN.
    pub const CREATE_CHAN: u16 = 18;
    /// CA_PROTO_WRITE_NOTIFY.
    pub const WRITE_NOTIFY: u16 = 19;
    /// CA_PROTO_CLIENT_NAME.
    pub const CLIENT_NAME: u16 = 20;
    /// CA_PROTO_HOST_NAME.
    pub const HOST_NAME: u16 = 21;
    /// CA_PROTO_ACCESS_RIGHTS.
    pub const ACCESS_RIGHTS: u16 = 22;
    /// CA_PROTO_ECHO.
    pub const ECHO: u16 = 23;
    /// REPEATER_REGISTER.
    pub const REPEATER_REGISTER: u16 = 24;
    /// CA_PROTO_SIGNAL (obsolete).
    pub const SIGNAL: u16 = 25;
    /// CA_PROTO_CREATE_CH_FAIL.
    pub const CREATE_CH_FAIL: u16 = 26;
    /// CA_PROTO_SERVER_DISCONN.
    pub const SERVER_DISCONN: u16 = 27;
}

/// Access rights of a channel as sent in CA_PROTO_ACCESS_RIGHTS.
///
/// Undefined bits are kept (so messages round-trip) but ignored by the accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccessRights(pub u32);

impl AccessRights {
    /// No access.
    pub const NONE: AccessRights = AccessRights(0);
    /// Read only.
    pub const READ: AccessRights = AccessRights(ACCESS_RIGHT_READ);
    /// Write only.
    pub const WRITE: AccessRights = AccessRights(ACCESS_RIGHT_WRITE);
    /// Read and write.
    pub const READ_WRITE: AccessRights = AccessRights(ACCESS_RIGHT_READ | ACCESS_RIGHT_WRITE);

    /// True when reads are allowed.
    pub fn can_read(self) -> bool {
        self.0 & ACCESS_RIGHT_READ != 0
    }

    /// True when writes are allowed.
    pub fn can_write(self) -> bool {
        self.0 & ACCESS_RIGHT_WRITE != 0
    }
}

/// A CA message with its fields named by meaning.
///
/// Variants ending in `Request` travel client → server, those ending in
/// `Response` server → client. Payload-carrying variants keep the DBR bytes
/// as [`Bytes`] shared with the receive buffer; decode them with
/// [`Command::data`].
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// VERSION on a circuit, client → server: opens the circuit.
    VersionRequest {
        /// Circuit dispatch priority, 0..=99.
        priority: u16,
        /// Client minor protocol version.
        version: u16,
    },
    /// VERSION on a circuit, server → client.
    VersionResponse {
        /// Server minor protocol version (0 from servers older than 4.11).
        version: u16,
    },
    /// VERSION in a datagram, either direction: heads every search datagram
    /// and every search reply datagram.
    DatagramVersion {
        /// Minor protocol version of the sender.
        version: u16,
        /// Datagram sequence number, when the sender marks it valid; servers
        /// echo the client's so it can match replies to search rounds.
        sequence: Option<u32>,
    },
    /// SEARCH request, UDP or (peer version ≥ 12) TCP.
    SearchRequest {
        /// PV name.
        name: String,
        /// Ask the server to answer NOT_FOUND when it lacks the PV.
        do_reply: bool,
        /// Client minor protocol version.
        version: u16,
        /// Client-chosen id echoed in the reply (usually the channel's cid).
        search_id: u32,
    },
    /// SEARCH reply: the PV lives at `server_address:port`.
    SearchResponse {
        /// TCP port of the server.
        port: u16,
        /// Server address, `None` meaning "the address the reply came from"
        /// (0xFFFFFFFF on the wire, what RSRV always sends).
        server_address: Option<Ipv4Addr>,
        /// The request's search id.
        search_id: u32,
        /// Server minor version, carried in the payload of UDP replies only.
        version: Option<u16>,
    },
    /// NOT_FOUND reply to a SEARCH that asked for one.
    NotFoundResponse {
        /// The request's reply flag.
        do_reply: bool,
        /// The request's version field.
        version: u16,
        /// The request's search id.
        search_id: u32,
    },
    /// ECHO, client → server: a liveness probe.
    EchoRequest,
    /// ECHO, server → client: the answer to a probe.
    EchoResponse,
    /// RSRV_IS_UP: a server beacon.
    Beacon {
        /// Server minor protocol version.
        version: u16,
        /// TCP port of the server.
        server_port: u16,
        /// Counter incremented with every beacon.
        beacon_id: u32,
        /// Server address; `None` (0 on the wire) lets the receiver use the sender's.
        address: Option<Ipv4Addr>,
    },
    /// REPEATER_REGISTER: a client asks the local repeater for beacons.
    RepeaterRegisterRequest {
        /// Address the client listens on.
        client_address: Ipv4Addr,
    },
    /// REPEATER_CONFIRM: the repeater accepted a registration.
    RepeaterConfirmResponse {
        /// Address the repeater registered the client under.
        repeater_address: Ipv4Addr,
    },
    /// EVENT_ADD request: subscribe to a channel.
    EventAddRequest {
        /// Type of the updates.
        data_type: DbrType,
        /// Elements per update; 0 asks for all available (4.13).
        data_count: u32,
        /// Channel.
        sid: u32,
        /// Client-chosen subscription id.
        subscription_id: u32,
        /// Which events to report ([`DBE_VALUE`](crate::proto::constants::DBE_VALUE) | ...).
        mask: u16,
        /// Legacy deadband field, normally 0.
        low: f32,
        /// Legacy deadband field, normally 0.
        high: f32,
        /// Legacy deadband field, normally 0.
        to: f32,
    },
    /// EVENT_ADD reply: one subscription update.
    EventAddResponse {
        /// Type of `data`.
        data_type: DbrType,
        /// Elements in `data`.
        data_count: u32,
        /// ECA status of the update (ECA_NORMAL, or e.g. ECA_NORDACCESS with zeroed data).
        status: u32,
        /// The subscription.
        subscription_id: u32,
        /// DBR payload.
        data: Bytes,
    },
    /// EVENT_CANCEL request: end a subscription.
    EventCancelRequest {
        /// The EVENT_ADD's data type.
        data_type: DbrType,
        /// The EVENT_ADD's count.
        data_count: u32,
        /// Channel.
        sid: u32,
        /// The subscription.
        subscription_id: u32,
    },
    /// The final, empty EVENT_ADD reply that confirms a cancel.
    /// On the wire it is an EVENT_ADD (code 1) with no payload.
    EventCancelResponse {
        /// The EVENT_ADD's data type.
        data_type: DbrType,
        /// The EVENT_ADD's count (RSRV echoes it; the spec says 0).
        data_count: u32,
        /// Channel.
        sid: u32,
        /// The subscription.
        subscription_id: u32,
    },
    /// READ request (obsolete; RSRV still answers it).
    ReadRequest {
        /// Requested type.
        data_type: DbrType,
        /// Requested count.
        data_count: u32,
        /// Channel.
        sid: u32,
        /// Client-chosen operation id.
        ioid: u32,
    },
    /// READ reply.
    ReadResponse {
        /// Type of `data`.
        data_type: DbrType,
        /// Elements in `data`.
        data_count: u32,
        /// Channel; RSRV puts the client id here although the spec says SID.
        cid: u32,
        /// The request's ioid.
        ioid: u32,
        /// DBR payload.
        data: Bytes,
    },
    /// WRITE request: put without completion notice.
    WriteRequest {
        /// Type of `data`.
        data_type: DbrType,
        /// Elements in `data`.
        data_count: u32,
        /// Channel.
        sid: u32,
        /// Client-chosen operation id (reported back only in errors).
        ioid: u32,
        /// DBR payload.
        data: Bytes,
    },
    /// EVENTS_OFF: pause subscription updates on this circuit.
    EventsOffRequest,
    /// EVENTS_ON: resume subscription updates on this circuit.
    EventsOnRequest,
    /// READ_SYNC (obsolete).
    ReadSyncRequest,
    /// ERROR: a request failed.
    ErrorResponse {
        /// Channel of the failed request, 0xFFFFFFFF when unknown.
        cid: u32,
        /// ECA status code.
        status: u32,
        /// Header of the request that failed.
        original_request: Header,
        /// Human-readable context from the server.
        message: String,
    },
    /// CLEAR_CHANNEL request.
    ClearChannelRequest {
        /// Channel's server id.
        sid: u32,
        /// Channel's client id.
        cid: u32,
    },
    /// CLEAR_CHANNEL reply.
    ClearChannelResponse {
        /// Channel's server id.
        sid: u32,
        /// Channel's client id.
        cid: u32,
    },
    /// READ_NOTIFY request: a get.
    ReadNotifyRequest {
        /// Requested type.
        data_type: DbrType,
        /// Requested count; 0 asks for all available (4.13).
        data_count: u32,
        /// Channel.
        sid: u32,
        /// Client-chosen operation id.
        ioid: u32,
    },
    /// READ_NOTIFY reply.
    ReadNotifyResponse {
        /// Type of `data`.
        data_type: DbrType,
        /// Elements in `data`.
        data_count: u32,
        /// ECA status (on failure the data is zeroed).
        status: u32,
        /// The request's ioid.
        ioid: u32,
        /// DBR payload.
        data: Bytes,
    },
    /// CREATE_CHAN request.
    CreateChanRequest {
        /// Client-chosen channel id.
        cid: u32,
        /// Client minor protocol version.
        version: u16,
        /// PV name.
        name: String,
    },
    /// CREATE_CHAN reply: the channel exists.
    CreateChanResponse {
        /// Native type of the channel.
        data_type: DbrType,
        /// Element count of the channel.
        data_count: u32,
        /// The request's cid.
        cid: u32,
        /// Server-chosen channel id.
        sid: u32,
    },
    /// WRITE_NOTIFY request: a put with completion notice.
    WriteNotifyRequest {
        /// Type of `data`.
        data_type: DbrType,
        /// Elements in `data`.
        data_count: u32,
        /// Channel.
        sid: u32,
        /// Client-chosen operation id.
        ioid: u32,
        /// DBR payload.
        data: Bytes,
    },
    /// WRITE_NOTIFY reply: the put completed (or failed, per `status`).
    WriteNotifyResponse {
        /// The request's type.
        data_type: DbrType,
        /// The request's count.
        data_count: u32,
        /// ECA status.
        status: u32,
        /// The request's ioid.
        ioid: u32,
    },
    /// CLIENT_NAME: the user name, used for access security.
    ClientNameRequest {
        /// User name.
        name: String,
    },
    /// HOST_NAME: the client's host name, used for access security.
    HostNameRequest {
        /// Host name.
        name: String,
    },
    /// ACCESS_RIGHTS: the client's rights on a channel (sent at creation and on change).
    AccessRightsResponse {
        /// Channel's client id.
        cid: u32,
        /// Rights.
        access_rights: AccessRights,
    },
    /// CREATE_CH_FAIL: the server cannot provide the PV after all.
    CreateChFailResponse {
        /// The request's cid.
        cid: u32,
    },
    /// SERVER_DISCONN: the server dropped the channel.
    ServerDisconnResponse {
        /// Channel's client id.
        cid: u32,
    },
    /// An obsolete command (SNAPSHOT, BUILD, READ_BUILD, SIGNAL) nobody should
    /// send; decoded so that receivers can ignore it safely.
    Obsolete {
        /// The raw header.
        header: Header,
        /// The raw payload.
        payload: Bytes,
    },
}

fn ipv4(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw)
}

fn do_reply_flag(do_reply: bool) -> u16 {
    if do_reply { DO_REPLY } else { DONT_REPLY }
}

/// `value` encoded as `data_type`; an empty value (a dynamic-size reply for an array
/// with no elements now) still carries one zeroed element, as rsrv sends
/// `dbr_size_n(type, 0)` bytes with a count of 0.
fn encode_at_least_one(data_type: DbrType, value: &DbrData) -> Result<Bytes, DbrError> {
    let encoded = value.encode(data_type)?;
    let room = usize::try_from(data_type.padded_payload_size(1)).unwrap_or(usize::MAX);
    if !value.value.is_empty() || encoded.len() >= room {
        return Ok(encoded);
    }
    let mut padded = BytesMut::from(&encoded[..]);
    padded.resize(room, 0);
    Ok(padded.freeze())
}

impl Command {
    /// The command code on the wire.
    pub fn code(&self) -> u16 {
        use Command::*;
        match self {
            VersionRequest { .. } | VersionResponse { .. } | DatagramVersion { .. } => code::VERSION,
            SearchRequest { .. } | SearchResponse { .. } => code::SEARCH,
            NotFoundResponse { .. } => code::NOT_FOUND,
            EchoRequest | EchoResponse => code::ECHO,
            Beacon { .. } => code::RSRV_IS_UP,
            RepeaterRegisterRequest { .. } => code::REPEATER_REGISTER,
            RepeaterConfirmResponse { .. } => code::REPEATER_CONFIRM,
            EventAddRequest { .. } | EventAddResponse { .. } | EventCancelResponse { .. } => code::EVENT_ADD,
            EventCancelRequest { .. } => code::EVENT_CANCEL,
            ReadRequest { .. } | ReadResponse { .. } => code::READ,
            WriteRequest { .. } => code::WRITE,
            EventsOffRequest => code::EVENTS_OFF,
            EventsOnRequest => code::EVENTS_ON,
            ReadSyncRequest => code::READ_SYNC,
            ErrorResponse { .. } => code::ERROR,
            ClearChannelRequest { .. } | ClearChannelResponse { .. } => code::CLEAR_CHANNEL,
            ReadNotifyRequest { .. } | ReadNotifyResponse { .. } => code::READ_NOTIFY,
            CreateChanRequest { .. } | CreateChanResponse { .. } => code::CREATE_CHAN,
            WriteNotifyRequest { .. } | WriteNotifyResponse { .. } => code::WRITE_NOTIFY,
            ClientNameRequest { .. } => code::CLIENT_NAME,
            HostNameRequest { .. } => code::HOST_NAME,
            AccessRightsResponse { .. } => code::ACCESS_RIGHTS,
            CreateChFailResponse { .. } => code::CREATE_CH_FAIL,
            ServerDisconnResponse { .. } => code::SERVER_DISCONN,
            Obsolete { header, .. } => header.command,
        }
    }

    /// The variant's name, for diagnostics.
    pub fn name(&self) -> &'static str {
        use Command::*;
        match self {
            VersionRequest { .. } => "VersionRequest",
            VersionResponse { .. } => "VersionResponse",
            DatagramVersion { .. } => "DatagramVersion",
            SearchRequest { .. } => "SearchRequest",
            SearchResponse { .. } => "SearchResponse",
            NotFoundResponse { .. } => "NotFoundResponse",
            EchoRequest => "EchoRequest",
            EchoResponse => "EchoResponse",
            Beacon { .. } => "Beacon",
            RepeaterRegisterRequest { .. } => "RepeaterRegisterRequest",
            RepeaterConfirmResponse { .. } => "RepeaterConfirmResponse",
            EventAddRequest { .. } => "EventAddRequest",
            EventAddResponse { .. } => "EventAddResponse",
            EventCancelRequest { .. } => "EventCancelRequest",
            EventCancelResponse { .. } => "EventCancelResponse",
            ReadRequest { .. } => "ReadRequest",
            ReadResponse { .. } => "ReadResponse",
            WriteRequest { .. } => "WriteRequest",
            EventsOffRequest => "EventsOffRequest",
            EventsOnRequest => "EventsOnRequest",
            ReadSyncRequest => "ReadSyncRequest",
            ErrorResponse { .. } => "ErrorResponse",
            ClearChannelRequest { .. } => "ClearChannelRequest",
            ClearChannelResponse { .. } => "ClearChannelResponse",
            ReadNotifyRequest { .. } => "ReadNotifyRequest",
            ReadNotifyResponse { .. } => "ReadNotifyResponse",
            CreateChanRequest { .. } => "CreateChanRequest",
            CreateChanResponse { .. } => "CreateChanResponse",
            WriteNotifyRequest { .. } => "WriteNotifyRequest",
            WriteNotifyResponse { .. } => "WriteNotifyResponse",
            ClientNameRequest { .. } => "ClientNameRequest",
            HostNameRequest { .. } => "HostNameRequest",
            AccessRightsResponse { .. } => "AccessRightsResponse",
            CreateChFailResponse { .. } => "CreateChFailResponse",
            ServerDisconnResponse { .. } => "ServerDisconnResponse",
            Obsolete { .. } => "Obsolete",
        }
    }

    /// Which side sends this command; `None` when either may (datagram
    /// VERSION, beacons, repeater traffic, obsolete commands).
    pub fn sender(&self) -> Option<Role> {
        use Command::*;
        match self {
            DatagramVersion { .. }
            | Beacon { .. }
            | RepeaterRegisterRequest { .. }
            | RepeaterConfirmResponse { .. }
            | Obsolete { .. } => None,
            VersionRequest { .. }
            | SearchRequest { .. }
            | EchoRequest
            | EventAddRequest { .. }
            | EventCancelRequest { .. }
            | ReadRequest { .. }
            | WriteRequest { .. }
            | EventsOffRequest
            | EventsOnRequest
            | ReadSyncRequest
            | ClearChannelRequest { .. }
            | ReadNotifyRequest { .. }
            | CreateChanRequest { .. }
            | WriteNotifyRequest { .. }
            | ClientNameRequest { .. }
            | HostNameRequest { .. } => Some(Role::Client),
            _ => Some(Role::Server),
        }
    }

    /// The DBR payload of data-carrying commands, decoded.
    pub fn data(&self) -> Option<Result<DbrData, DbrError>> {
        let (data_type, data_count, data) = self.raw_data()?;
        Some(DbrData::decode(data_type, data_count, data))
    }

    /// Type, count and raw payload of data-carrying commands.
    pub fn raw_data(&self) -> Option<(DbrType, u32, &Bytes)> {
        use Command::*;
        match self {
            EventAddResponse { data_type, data_count, data, .. }
            | ReadResponse { data_type, data_count, data, .. }
            | WriteRequest { data_type, data_count, data, .. }
            | ReadNotifyResponse { data_type, data_count, data, .. }
            | WriteNotifyRequest { data_type, data_count, data, .. } => Some((*data_type, *data_count, data)),
            _ => None,
        }
    }

    /// A get: READ_NOTIFY for `data_count` elements of `data_type`.
    pub fn read_notify_request(sid: u32, ioid: u32, data_type: DbrType, data_count: u32) -> Self {
        Command::ReadNotifyRequest { data_type, data_count, sid, ioid }
    }

    /// A put with completion notice, encoding `value` as `data_type`.
    pub fn write_notify_request(sid: u32, ioid: u32, data_type: DbrType, value: &DbrData) -> Result<Self, EncodeError> {
        Ok(Command::WriteNotifyRequest {
            data_type,
            data_count: value.count()?,
            sid,
            ioid,
            data: value.encode(data_type)?,
        })
    }

    /// A put without completion notice, encoding `value` as `data_type`.
    pub fn write_request(sid: u32, ioid: u32, data_type: DbrType, value: &DbrData) -> Result<Self, EncodeError> {
        Ok(Command::WriteRequest { data_type, data_count: value.count()?, sid, ioid, data: value.encode(data_type)? })
    }

    /// A subscription request with the legacy deadband fields zeroed.
    pub fn event_add_request(sid: u32, subscription_id: u32, data_type: DbrType, data_count: u32, mask: u16) -> Self {
        Command::EventAddRequest { data_type, data_count, sid, subscription_id, mask, low: 0.0, high: 0.0, to: 0.0 }
    }

    /// A get reply carrying `value` encoded as `data_type`.
    pub fn read_notify_response(
        ioid: u32,
        status: u32,
        data_type: DbrType,
        value: &DbrData,
    ) -> Result<Self, EncodeError> {
        Ok(Command::ReadNotifyResponse {
            data_type,
            data_count: value.count()?,
            status,
            ioid,
            data: encode_at_least_one(data_type, value)?,
        })
    }

    /// A subscription update carrying `value` encoded as `data_type`.
    pub fn event_add_response(
        subscription_id: u32,
        status: u32,
        data_type: DbrType,
        value: &DbrData,
    ) -> Result<Self, EncodeError> {
        Ok(Command::EventAddResponse {
            data_type,
            data_count: value.count()?,
            status,
            subscription_id,
            data: encode_at_least_one(data_type, value)?,
        })
    }

    /// Appends the encoded message (header, payload, padding) to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let (mut header, payload) = self.to_parts()?;
        let padded = align8(payload.len());
        header.payload_size = u32::try_from(padded).map_err(|_| EncodeError::PayloadTooLarge(padded as u64))?;
        buf.reserve(header.encoded_len() + padded);
        header.encode(buf);
        buf.put_slice(&payload);
        buf.put_bytes(0, padded - payload.len());
        Ok(())
    }

    /// The encoded message as its own buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Header (payload size not yet set) and unpadded payload.
    fn to_parts(&self) -> Result<(Header, Bytes), EncodeError> {
        use Command::*;
        let header = |data_type: u16, data_count: u32, param1: u32, param2: u32| Header {
            command: self.code(),
            payload_size: 0,
            data_type,
            data_count,
            param1,
            param2,
        };
        let empty = Bytes::new();
        Ok(match self {
            VersionRequest { priority, version } => (header(*priority, u32::from(*version), 0, 0), empty),
            VersionResponse { version } => (header(0, u32::from(*version), 0, 0), empty),
            DatagramVersion { version, sequence } => {
                let flags = if sequence.is_some() { SEQUENCE_NUMBER_IS_VALID } else { 0 };
                (header(flags, u32::from(*version), sequence.unwrap_or(0), 0), empty)
            }
            SearchRequest { name, do_reply, version, search_id } => (
                header(do_reply_flag(*do_reply), u32::from(*version), *search_id, *search_id),
                name_payload(name, "PV name")?,
            ),
            SearchResponse { port, server_address, search_id, version } => {
                let address = server_address.map_or(SEARCH_REPLY_USE_SENDER, u32::from);
                let payload = match version {
                    Some(version) => Bytes::copy_from_slice(&version.to_be_bytes()),
                    None => empty,
                };
                (header(*port, 0, address, *search_id), payload)
            }
            NotFoundResponse { do_reply, version, search_id } => {
                (header(do_reply_flag(*do_reply), u32::from(*version), *search_id, *search_id), empty)
            }
            EchoRequest | EchoResponse | EventsOffRequest | EventsOnRequest | ReadSyncRequest => {
                (header(0, 0, 0, 0), empty)
            }
            Beacon { version, server_port, beacon_id, address } => {
                (header(*version, u32::from(*server_port), *beacon_id, address.map_or(0, u32::from)), empty)
            }
            RepeaterRegisterRequest { client_address } => (header(0, 0, 0, u32::from(*client_address)), empty),
            RepeaterConfirmResponse { repeater_address } => (header(0, 0, 0, u32::from(*repeater_address)), empty),
            EventAddRequest { data_type, data_count, sid, subscription_id, mask, low, high, to } => {
                let mut payload = BytesMut::with_capacity(16);
                payload.put_f32(*low);
                payload.put_f32(*high);
                payload.put_f32(*to);
                payload.put_u16(*mask);
                payload.put_u16(0);
                (header(data_type.code(), *data_count, *sid, *subscription_id), payload.freeze())
            }
            EventAddResponse { data_type, data_count, status, subscription_id, data } => {
                check_data(*data_type, *data_count, data)?;
                (header(data_type.code(), *data_count, *status, *subscription_id), data.clone())
            }
            EventCancelRequest { data_type, data_count, sid, subscription_id }
            | EventCancelResponse { data_type, data_count, sid, subscription_id } => {
                (header(data_type.code(), *data_count, *sid, *subscription_id), empty)
            }
            ReadRequest { data_type, data_count, sid, ioid }
            | ReadNotifyRequest { data_type, data_count, sid, ioid } => {
                (header(data_type.code(), *data_count, *sid, *ioid), empty)
            }
            ReadResponse { data_type, data_count, cid: param1, ioid, data }
            | ReadNotifyResponse { data_type, data_count, status: param1, ioid, data }
            | WriteRequest { data_type, data_count, sid: param1, ioid, data }
            | WriteNotifyRequest { data_type, data_count, sid: param1, ioid, data } => {
                check_data(*data_type, *data_count, data)?;
                (header(data_type.code(), *data_count, *param1, *ioid), data.clone())
            }
            ErrorResponse { cid, status, original_request, message } => {
                let mut payload = BytesMut::with_capacity(original_request.encoded_len() + message.len() + 1);
                original_request.encode(&mut payload);
                payload.put_slice(message.as_bytes());
                payload.put_u8(0);
                (header(0, 0, *cid, *status), payload.freeze())
            }
            ClearChannelRequest { sid, cid } | ClearChannelResponse { sid, cid } => (header(0, 0, *sid, *cid), empty),
            CreateChanRequest { cid, version, name } => {
                (header(0, 0, *cid, u32::from(*version)), name_payload(name, "PV name")?)
            }
            CreateChanResponse { data_type, data_count, cid, sid } => {
                (header(data_type.code(), *data_count, *cid, *sid), empty)
            }
            WriteNotifyResponse { data_type, data_count, status, ioid } => {
                (header(data_type.code(), *data_count, *status, *ioid), empty)
            }
            ClientNameRequest { name } => (header(0, 0, 0, 0), name_payload(name, "client name")?),
            HostNameRequest { name } => (header(0, 0, 0, 0), name_payload(name, "host name")?),
            AccessRightsResponse { cid, access_rights } => (header(0, 0, *cid, access_rights.0), empty),
            CreateChFailResponse { cid } | ServerDisconnResponse { cid } => (header(0, 0, *cid, 0), empty),
            Obsolete { header, payload } => (*header, payload.clone()),
        })
    }

    /// Interprets a frame received by `role` over `transport`.
    pub fn decode(frame: &Frame, role: Role, transport: Transport) -> Result<Self, DecodeError> {
        use Command::*;
        let h = &frame.header;
        let payload = &frame.payload;
        let command = h.command;
        let wrong_direction = || DecodeError::WrongDirection { command, role, transport };
        let data_type = || DbrType::from_code(h.data_type).map_err(|source| DecodeError::Dbr { command, source });
        let with_data = || -> Result<(DbrType, u32, Bytes), DecodeError> {
            let data_type = data_type()?;
            let count =
                if role == Role::Client { lenient_count(data_type, h.data_count, payload) } else { h.data_count };
            check_data(data_type, count, payload).map_err(|source| DecodeError::Dbr { command, source })?;
            Ok((data_type, count, payload.clone()))
        };
        let version16 = h.data_count as u16;
        let tcp = transport == Transport::Tcp;
        let from_client = role == Role::Server;

        Ok(match command {
            code::VERSION if !tcp => DatagramVersion {
                version: version16,
                sequence: (h.data_type & SEQUENCE_NUMBER_IS_VALID != 0).then_some(h.param1),
            },
            code::VERSION if from_client => VersionRequest { priority: h.data_type, version: version16 },
            code::VERSION => VersionResponse { version: version16 },
            code::SEARCH if from_client => SearchRequest {
                name: decode_name(command, payload)?,
                do_reply: h.data_type == DO_REPLY,
                version: version16,
                search_id: h.param2,
            },
            code::SEARCH => SearchResponse {
                port: h.data_type,
                server_address: (h.param1 != SEARCH_REPLY_USE_SENDER).then(|| ipv4(h.param1)),
                search_id: h.param2,
                version: payload.first_chunk::<2>().map(|bytes| u16::from_be_bytes(*bytes)),
            },
            code::NOT_FOUND if !from_client => {
                NotFoundResponse { do_reply: h.data_type == DO_REPLY, version: version16, search_id: h.param2 }
            }
            code::ECHO if from_client => EchoRequest,
            code::ECHO => EchoResponse,
            code::RSRV_IS_UP if !tcp => Beacon {
                version: h.data_type,
                server_port: h.data_count as u16,
                beacon_id: h.param1,
                address: (h.param2 != 0).then(|| ipv4(h.param2)),
            },
            code::REPEATER_REGISTER if !tcp => RepeaterRegisterRequest { client_address: ipv4(h.param2) },
            code::REPEATER_CONFIRM if !tcp => RepeaterConfirmResponse { repeater_address: ipv4(h.param2) },
            code::SNAPSHOT | code::BUILD | code::READ_BUILD | code::SIGNAL => {
                Obsolete { header: *h, payload: payload.clone() }
            }
            code::ERROR if !from_client => decode_error_response(h, payload)?,
            _ if !tcp => return Err(wrong_direction()),

            code::EVENT_ADD if from_client => {
                let fields = payload.first_chunk::<16>().ok_or(DecodeError::PayloadTooShort {
                    command,
                    needed: 16,
                    actual: payload.len(),
                })?;
                let f32_at =
                    |at: usize| f32::from_be_bytes([fields[at], fields[at + 1], fields[at + 2], fields[at + 3]]);
                EventAddRequest {
                    data_type: data_type()?,
                    data_count: h.data_count,
                    sid: h.param1,
                    subscription_id: h.param2,
                    mask: u16::from_be_bytes([fields[12], fields[13]]),
                    low: f32_at(0),
                    high: f32_at(4),
                    to: f32_at(8),
                }
            }
            code::EVENT_ADD if payload.is_empty() => EventCancelResponse {
                data_type: data_type()?,
                data_count: h.data_count,
                sid: h.param1,
                subscription_id: h.param2,
            },
            code::EVENT_ADD => {
                let (data_type, count, data) = with_data()?;
                EventAddResponse { data_type, data_count: count, status: h.param1, subscription_id: h.param2, data }
            }
            code::EVENT_CANCEL if from_client => EventCancelRequest {
                data_type: data_type()?,
                data_count: h.data_count,
                sid: h.param1,
                subscription_id: h.param2,
            },
            code::READ if from_client => {
                ReadRequest { data_type: data_type()?, data_count: h.data_count, sid: h.param1, ioid: h.param2 }
            }
            code::READ => {
                let (data_type, count, data) = with_data()?;
                ReadResponse { data_type, data_count: count, cid: h.param1, ioid: h.param2, data }
            }
            code::WRITE if from_client => {
                let (data_type, count, data) = with_data()?;
                WriteRequest { data_type, data_count: count, sid: h.param1, ioid: h.param2, data }
            }
            code::EVENTS_OFF if from_client => EventsOffRequest,
            code::EVENTS_ON if from_client => EventsOnRequest,
            code::READ_SYNC if from_client => ReadSyncRequest,
            code::CLEAR_CHANNEL if from_client => ClearChannelRequest { sid: h.param1, cid: h.param2 },
            code::CLEAR_CHANNEL => ClearChannelResponse { sid: h.param1, cid: h.param2 },
            code::READ_NOTIFY if from_client => {
                ReadNotifyRequest { data_type: data_type()?, data_count: h.data_count, sid: h.param1, ioid: h.param2 }
            }
            code::READ_NOTIFY => {
                let (data_type, count, data) = with_data()?;
                ReadNotifyResponse { data_type, data_count: count, status: h.param1, ioid: h.param2, data }
            }
            code::CREATE_CHAN if from_client => {
                CreateChanRequest { cid: h.param1, version: h.param2 as u16, name: decode_name(command, payload)? }
            }
            code::CREATE_CHAN => {
                CreateChanResponse { data_type: data_type()?, data_count: h.data_count, cid: h.param1, sid: h.param2 }
            }
            code::WRITE_NOTIFY if from_client => {
                let (data_type, count, data) = with_data()?;
                WriteNotifyRequest { data_type, data_count: count, sid: h.param1, ioid: h.param2, data }
            }
            code::WRITE_NOTIFY => WriteNotifyResponse {
                data_type: data_type()?,
                data_count: h.data_count,
                status: h.param1,
                ioid: h.param2,
            },
            code::CLIENT_NAME if from_client => ClientNameRequest { name: decode_name(command, payload)? },
            code::HOST_NAME if from_client => HostNameRequest { name: decode_name(command, payload)? },
            code::ACCESS_RIGHTS if !from_client => {
                AccessRightsResponse { cid: h.param1, access_rights: AccessRights(h.param2) }
            }
            code::CREATE_CH_FAIL if !from_client => CreateChFailResponse { cid: h.param1 },
            code::SERVER_DISCONN if !from_client => ServerDisconnResponse { cid: h.param1 },
            _ if command <= code::SERVER_DISCONN => return Err(wrong_direction()),
            _ => return Err(DecodeError::UnknownCommand { command }),
        })
    }
}

/// The element count a server's reply really carries. caproto announces the
/// requested count but sends only the elements it has (a 6-byte CHAR array asked for
/// as 64 elements); accepting the elements present is what libca effectively does.
/// A payload too short even for the metadata still fails in `check_data`.
fn lenient_count(data_type: DbrType, announced: u32, payload: &[u8]) -> u32 {
    if (payload.len() as u64) >= minimum_payload(data_type, announced) {
        return announced;
    }
    let Some(values) = payload.len().checked_sub(data_type.value_offset()) else { return announced };
    let fit = (values / data_type.element_size().max(1)) as u32;
    if data_type.native() == NativeType::String { fit.max(1).min(announced) } else { fit.min(announced) }
}

/// Verifies a DBR payload is long enough for its declared type and count.
fn check_data(data_type: DbrType, data_count: u32, data: &[u8]) -> Result<(), DbrError> {
    if (data.len() as u64) < minimum_payload(data_type, data_count) {
        return Err(DbrError::PayloadTooShort {
            data_type,
            count: data_count,
            needed: data_type.payload_size(data_count),
            actual: data.len(),
        });
    }
    Ok(())
}

/// A name as a NUL-terminated payload (padding is added by `encode`).
fn name_payload(name: &str, field: &'static str) -> Result<Bytes, EncodeError> {
    if name.as_bytes().contains(&0) {
        return Err(EncodeError::NulInName { field });
    }
    let mut payload = BytesMut::with_capacity(name.len() + 1);
    payload.put_slice(name.as_bytes());
    payload.put_u8(0);
    Ok(payload.freeze())
}

fn decode_name(command: u16, payload: &[u8]) -> Result<String, DecodeError> {
    let end = payload.iter().position(|&b| b == 0).ok_or(DecodeError::StringNotTerminated { command })?;
    String::from_utf8(payload[..end].to_vec()).map_err(|_| DecodeError::InvalidUtf8 { command })
}

fn decode_error_response(h: &Header, payload: &Bytes) -> Result<Command, DecodeError> {
    let command = h.command;
    let (original_request, header_len) = match Header::parse(payload) {
        HeaderParse::Complete(header, len) => (header, len),
        HeaderParse::Incomplete { .. } => {
            return Err(DecodeError::PayloadTooShort {
                command,
                needed: crate::proto::constants::HEADER_SIZE,
                actual: payload.len(),
            });
        }
    };
    let text = &payload[header_len..];
    // RSRV omits the text entirely when formatting it produced nothing.
    let message = if text.is_empty() {
        String::new()
    } else {
        let end = text.iter().position(|&b| b == 0).ok_or(DecodeError::StringNotTerminated { command })?;
        // Diagnostic text only: invalid UTF-8 is replaced rather than refused.
        String::from_utf8_lossy(&text[..end]).into_owned()
    };
    Ok(Command::ErrorResponse { cid: h.param1, status: h.param2, original_request, message })
}
