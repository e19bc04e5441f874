//! Byte-exact vectors from the CA protocol specification's example
//! conversation, and an encode → decode round trip of every command.

use std::net::Ipv4Addr;

use bytes::Bytes;
use pvloom_ca::proto::constants::{ECA_BADTYPE, ECA_NORMAL};
use pvloom_ca::proto::{
    AccessRights, Command, DbrData, DbrType, DecodeError, Frame, FrameDecoder, Header, Role, Transport, Value,
    decode_datagram,
};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|byte| u8::from_str_radix(byte, 16).unwrap()).collect()
}

fn encoded(command: &Command) -> Vec<u8> {
    command.to_bytes().unwrap().to_vec()
}

/// Decodes exactly one TCP message received by `role`.
fn decode_tcp(bytes: &[u8], role: Role) -> Command {
    let mut decoder = FrameDecoder::default();
    decoder.push(bytes);
    let command = decoder.next_command(role).unwrap().unwrap();
    assert_eq!(decoder.buffered(), 0, "trailing bytes");
    command
}

#[test]
fn version_request() {
    let bytes = hex("00 00 00 00 00 00 00 0b 00 00 00 00 00 00 00 00");
    let command = Command::VersionRequest { priority: 0, version: 11 };
    assert_eq!(encoded(&command), bytes);
    assert_eq!(decode_tcp(&bytes, Role::Server), command);
}

#[test]
fn client_and_host_name() {
    let client = hex("00 14 00 08 00 00 00 00 00 00 00 00 00 00 00 00 61 70 75 63 65 6c 6a 00");
    let command = Command::ClientNameRequest { name: "apucelj".into() };
    assert_eq!(encoded(&command), client);
    assert_eq!(decode_tcp(&client, Role::Server), command);

    let host = hex("00 15 00 08 00 00 00 00 00 00 00 00 00 00 00 00 63 73 6c 30 36 00 00 00");
    let command = Command::HostNameRequest { name: "csl06".into() };
    assert_eq!(encoded(&command), host);
    assert_eq!(decode_tcp(&host, Role::Server), command);
}

#[test]
fn create_chan_request() {
    let bytes = hex("00 12 00 18 00 00 00 00 00 00 00 01 00 00 00 0b
         61 70 75 63 65 6c 6a 3a 61 69 45 78 61 6d 70 6c 65 31 00 00 00 00 00 00");
    let command = Command::CreateChanRequest { cid: 1, version: 11, name: "apucelj:aiExample1".into() };
    assert_eq!(encoded(&command), bytes);
    assert_eq!(decode_tcp(&bytes, Role::Server), command);
}

#[test]
fn create_chan_request_for_a_short_name_is_padded_to_8() {
    let command = Command::CreateChanRequest { cid: 7, version: 13, name: "XXX".into() };
    let bytes = hex("00 12 00 08 00 00 00 00 00 00 00 07 00 00 00 0d
         58 58 58 00 00 00 00 00");
    assert_eq!(encoded(&command), bytes);
}

#[test]
fn access_rights_and_create_chan_response() {
    let rights = hex("00 16 00 00 00 00 00 00 00 00 00 01 00 00 00 03");
    let command = Command::AccessRightsResponse { cid: 1, access_rights: AccessRights::READ_WRITE };
    assert_eq!(encoded(&command), rights);
    assert_eq!(decode_tcp(&rights, Role::Client), command);

    let created = hex("00 12 00 00 00 06 00 01 00 00 00 01 00 00 00 04");
    let command = Command::CreateChanResponse { data_type: DbrType::Double, data_count: 1, cid: 1, sid: 4 };
    assert_eq!(encoded(&command), created);
    assert_eq!(decode_tcp(&created, Role::Client), command);
}

#[test]
fn read_notify_request_and_replies() {
    let request = hex("00 0f 00 00 00 16 00 01 00 00 00 04 00 00 00 02");
    let command = Command::read_notify_request(4, 2, DbrType::GrShort, 1);
    assert_eq!(encoded(&command), request);
    assert_eq!(decode_tcp(&request, Role::Server), command);

    // A DBR_STRING reply shortened to the string, with junk in the padding.
    let string_reply = hex("00 0f 00 08 00 00 00 01 00 00 00 01 00 00 00 01 30 00 00 00 00 06 00 01");
    let command = decode_tcp(&string_reply, Role::Client);
    let Command::ReadNotifyResponse { status, ioid, .. } = &command else {
        panic!("{command:?}");
    };
    assert_eq!((*status, *ioid), (ECA_NORMAL, 1));
    assert_eq!(command.data().unwrap().unwrap().value, Value::String(vec!["0".into()]));

    let gr_reply = hex("00 0f 00 20 00 16 00 01 00 00 00 01 00 00 00 02
         00 05 00 02 43 6f 75 6e 74 73 00 00 00 0a 00 00
         00 08 00 06 00 04 00 02 00 00 00 00 00 00 00 00");
    let command = decode_tcp(&gr_reply, Role::Client);
    let data = command.data().unwrap().unwrap();
    assert_eq!(data.metadata.graphic().unwrap().units, "Counts");
    // Encoding the decoded reply reproduces the bytes.
    assert_eq!(encoded(&command), gr_reply);
}

#[test]
fn time_double_read_reply_with_known_timestamp() {
    use pvloom_ca::proto::{Alarm, EpicsTime, Metadata};
    use std::time::{Duration, UNIX_EPOCH};

    // 2024-01-01T00:00:00.25Z
    let when = UNIX_EPOCH + Duration::new(1_704_067_200, 250_000_000);
    let stamp = EpicsTime::from_system_time(when).unwrap();
    assert_eq!(stamp.secs, 1_704_067_200 - 631_152_000);
    let data =
        DbrData::new(Metadata::Time { alarm: Alarm { status: 0, severity: 0 }, stamp }, Value::Double(vec![2.5]));
    let command = Command::read_notify_response(9, ECA_NORMAL, DbrType::TimeDouble, &data).unwrap();
    let bytes = hex("00 0f 00 18 00 14 00 01 00 00 00 01 00 00 00 09
         00 00 00 00 3f f3 63 00 0e e6 b2 80 00 00 00 00
         40 04 00 00 00 00 00 00");
    assert_eq!(encoded(&command), bytes);
    let decoded = decode_tcp(&bytes, Role::Client);
    let back = decoded.data().unwrap().unwrap();
    assert_eq!(back, data);
    assert_eq!(back.metadata.timestamp().unwrap().to_system_time(), when);
}

#[test]
fn clear_channel_both_ways() {
    let bytes = hex("00 0c 00 00 00 00 00 00 00 00 00 04 00 00 00 01");
    assert_eq!(decode_tcp(&bytes, Role::Server), Command::ClearChannelRequest { sid: 4, cid: 1 });
    assert_eq!(decode_tcp(&bytes, Role::Client), Command::ClearChannelResponse { sid: 4, cid: 1 });
}

#[test]
fn empty_event_add_reply_is_a_cancel_confirmation() {
    let bytes = hex("00 01 00 00 00 06 00 01 00 00 00 04 00 00 00 09");
    assert_eq!(
        decode_tcp(&bytes, Role::Client),
        Command::EventCancelResponse { data_type: DbrType::Double, data_count: 1, sid: 4, subscription_id: 9 }
    );
}

#[test]
fn extended_header_for_a_million_doubles() {
    let values: Vec<f64> = (0..1_000_000).map(|i| f64::from(i) * 0.5).collect();
    let data = DbrData::plain(Value::Double(values));
    let command = Command::event_add_response(3, ECA_NORMAL, DbrType::Double, &data).unwrap();
    let bytes = command.to_bytes().unwrap();
    assert_eq!(bytes.len(), 24 + 8_000_000);
    assert_eq!(&bytes[2..4], &[0xff, 0xff]);
    assert_eq!(&bytes[6..8], &[0, 0]);
    assert_eq!(&bytes[16..20], &8_000_000u32.to_be_bytes());
    assert_eq!(&bytes[20..24], &1_000_000u32.to_be_bytes());
    let decoded = decode_tcp(&bytes, Role::Client);
    assert_eq!(decoded.data().unwrap().unwrap(), data);
}

#[test]
fn udp_version_carries_a_sequence_number() {
    let command = Command::DatagramVersion { version: 13, sequence: Some(0x0102_0304) };
    let bytes = hex("00 00 00 00 00 01 00 0d 01 02 03 04 00 00 00 00");
    assert_eq!(encoded(&command), bytes);
    assert_eq!(decode_datagram(Bytes::from(bytes), Role::Server).unwrap(), vec![command]);
}

#[test]
fn search_request_and_udp_reply() {
    let request = Command::SearchRequest { name: "XXX".into(), do_reply: false, version: 13, search_id: 5 };
    assert_eq!(encoded(&request), hex("00 06 00 08 00 05 00 0d 00 00 00 05 00 00 00 05 58 58 58 00 00 00 00 00"));
    let reply = hex("00 06 00 08 13 c8 00 00 ff ff ff ff 00 00 00 05 00 0d 00 00 00 00 00 00");
    assert_eq!(
        decode_datagram(Bytes::from(reply), Role::Client).unwrap(),
        vec![Command::SearchResponse { port: 5064, server_address: None, search_id: 5, version: Some(13) }]
    );
}

#[test]
fn error_response_carries_the_original_header() {
    let original = Header { command: 15, payload_size: 0, data_type: 99, data_count: 1, param1: 4, param2: 8 };
    let command =
        Command::ErrorResponse { cid: 1, status: ECA_BADTYPE, original_request: original, message: "bad type".into() };
    let bytes = encoded(&command);
    assert_eq!(bytes.len(), 16 + 32);
    assert_eq!(decode_tcp(&bytes, Role::Client), command);
}

#[test]
fn bad_type_in_a_request_is_a_specific_error() {
    let bytes = hex("00 0f 00 00 00 63 00 01 00 00 00 04 00 00 00 02");
    let mut decoder = FrameDecoder::default();
    decoder.push(&bytes);
    assert!(matches!(decoder.next_command(Role::Server), Err(DecodeError::Dbr { command: 15, .. })));
}

#[test]
fn direction_matters() {
    let rights = Command::AccessRightsResponse { cid: 1, access_rights: AccessRights::READ };
    let mut decoder = FrameDecoder::default();
    decoder.push(&encoded(&rights));
    assert!(matches!(decoder.next_command(Role::Server), Err(DecodeError::WrongDirection { command: 22, .. })));
}

#[test]
fn name_without_nul_is_refused() {
    let mut bytes = hex("00 12 00 08 00 00 00 00 00 00 00 01 00 00 00 0d");
    bytes.extend_from_slice(b"ABCDEFGH");
    let mut decoder = FrameDecoder::default();
    decoder.push(&bytes);
    assert_eq!(decoder.next_command(Role::Server), Err(DecodeError::StringNotTerminated { command: 18 }));
}

/// Every command, paired with who receives it and how.
fn all_commands() -> Vec<(Command, Role, Transport)> {
    use Role::*;
    use Transport::*;
    let double = DbrData::plain(Value::Double(vec![1.0, 2.0]));
    let data = double.encode(DbrType::Double).unwrap();
    vec![
        (Command::VersionRequest { priority: 80, version: 13 }, Server, Tcp),
        (Command::VersionResponse { version: 13 }, Client, Tcp),
        (Command::DatagramVersion { version: 13, sequence: None }, Client, Udp),
        (Command::SearchRequest { name: "A:B".into(), do_reply: true, version: 13, search_id: 1 }, Server, Tcp),
        (Command::SearchResponse { port: 5064, server_address: None, search_id: 1, version: None }, Client, Tcp),
        (Command::NotFoundResponse { do_reply: true, version: 13, search_id: 1 }, Client, Udp),
        (Command::EchoRequest, Server, Tcp),
        (Command::EchoResponse, Client, Tcp),
        (
            Command::Beacon {
                version: 13,
                server_port: 5064,
                beacon_id: 77,
                address: Some(Ipv4Addr::new(10, 0, 0, 1)),
            },
            Client,
            Udp,
        ),
        (Command::RepeaterRegisterRequest { client_address: Ipv4Addr::LOCALHOST }, Server, Udp),
        (Command::RepeaterConfirmResponse { repeater_address: Ipv4Addr::LOCALHOST }, Client, Udp),
        (
            Command::EventAddRequest {
                data_type: DbrType::TimeDouble,
                data_count: 0,
                sid: 4,
                subscription_id: 2,
                mask: 5,
                low: 0.0,
                high: 0.0,
                to: 0.0,
            },
            Server,
            Tcp,
        ),
        (
            Command::EventAddResponse {
                data_type: DbrType::Double,
                data_count: 2,
                status: ECA_NORMAL,
                subscription_id: 2,
                data: data.clone(),
            },
            Client,
            Tcp,
        ),
        (
            Command::EventCancelRequest { data_type: DbrType::Double, data_count: 2, sid: 4, subscription_id: 2 },
            Server,
            Tcp,
        ),
        (
            Command::EventCancelResponse { data_type: DbrType::Double, data_count: 2, sid: 4, subscription_id: 2 },
            Client,
            Tcp,
        ),
        (Command::ReadRequest { data_type: DbrType::Double, data_count: 2, sid: 4, ioid: 3 }, Server, Tcp),
        (
            Command::ReadResponse { data_type: DbrType::Double, data_count: 2, cid: 1, ioid: 3, data: data.clone() },
            Client,
            Tcp,
        ),
        (
            Command::WriteRequest { data_type: DbrType::Double, data_count: 2, sid: 4, ioid: 3, data: data.clone() },
            Server,
            Tcp,
        ),
        (Command::EventsOffRequest, Server, Tcp),
        (Command::EventsOnRequest, Server, Tcp),
        (Command::ReadSyncRequest, Server, Tcp),
        (
            Command::ErrorResponse {
                cid: 0xFFFF_FFFF,
                status: ECA_BADTYPE,
                original_request: Header { command: 1, payload_size: 16, ..Header::default() },
                message: String::new(),
            },
            Client,
            Udp,
        ),
        (Command::ClearChannelRequest { sid: 4, cid: 1 }, Server, Tcp),
        (Command::ClearChannelResponse { sid: 4, cid: 1 }, Client, Tcp),
        (Command::read_notify_request(4, 3, DbrType::CtrlLong, 0), Server, Tcp),
        (
            Command::ReadNotifyResponse {
                data_type: DbrType::Double,
                data_count: 2,
                status: ECA_NORMAL,
                ioid: 3,
                data: data.clone(),
            },
            Client,
            Tcp,
        ),
        (Command::CreateChanRequest { cid: 1, version: 13, name: "A:B".into() }, Server, Tcp),
        (Command::CreateChanResponse { data_type: DbrType::Double, data_count: 2, cid: 1, sid: 4 }, Client, Tcp),
        (Command::write_notify_request(4, 3, DbrType::Double, &double).unwrap(), Server, Tcp),
        (
            Command::WriteNotifyResponse { data_type: DbrType::Double, data_count: 2, status: ECA_NORMAL, ioid: 3 },
            Client,
            Tcp,
        ),
        (Command::ClientNameRequest { name: "operator".into() }, Server, Tcp),
        (Command::HostNameRequest { name: "console-7".into() }, Server, Tcp),
        (Command::AccessRightsResponse { cid: 1, access_rights: AccessRights::READ }, Client, Tcp),
        (Command::CreateChFailResponse { cid: 1 }, Client, Tcp),
        (Command::ServerDisconnResponse { cid: 1 }, Client, Tcp),
        (Command::Obsolete { header: Header { command: 5, ..Header::default() }, payload: Bytes::new() }, Server, Tcp),
    ]
}

#[test]
fn every_command_round_trips() {
    for (command, role, transport) in all_commands() {
        let bytes = command.to_bytes().unwrap();
        assert_eq!(bytes.len() % 8, 0, "{command:?}");
        let decoded = match transport {
            Transport::Tcp => decode_tcp(&bytes, role),
            Transport::Udp => {
                let mut all = decode_datagram(bytes.clone(), role).unwrap();
                assert_eq!(all.len(), 1);
                all.remove(0)
            }
        };
        assert_eq!(decoded, command);
        // The frame-level decoder agrees with the datagram one for TCP traffic too.
        let frame = Frame {
            header: match Header::parse(&bytes) {
                pvloom_ca::proto::header::HeaderParse::Complete(header, _) => header,
                other => panic!("{other:?}"),
            },
            payload: bytes.slice(16..),
        };
        assert_eq!(Command::decode(&frame, role, transport).unwrap(), command);
    }
}
