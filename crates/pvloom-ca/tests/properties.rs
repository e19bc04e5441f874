//! Property tests: hostile bytes never panic the decoders, valid messages
//! round-trip, and the circuit rules refuse what they must without side effects.

use std::net::Ipv4Addr;

use bytes::Bytes;
use proptest::prelude::*;
use pvloom_ca::proto::constants::{DBE_VALUE, ECA_NORMAL};
use pvloom_ca::proto::{
    AccessRights, Alarm, CaString, Circuit, CircuitError, Command, ControlLimits, DbrData, DbrType, DecoderConfig,
    EpicsTime, FrameDecoder, GraphicInfo, Header, Metadata, NativeType, Role, Transport, Value, decode_datagram,
};

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9:_.-]{0,60}"
}

fn dbr_type() -> impl Strategy<Value = DbrType> {
    (0u16..=38).prop_map(|code| DbrType::from_code(code).unwrap())
}

fn ca_text(max: usize) -> impl Strategy<Value = CaString> {
    prop::collection::vec(1u8..=255, 0..max).prop_map(CaString::new)
}

fn value(native: NativeType) -> BoxedStrategy<Value> {
    let len = 0..20usize;
    match native {
        NativeType::String => prop::collection::vec(ca_text(40), len).prop_map(Value::String).boxed(),
        NativeType::Short => prop::collection::vec(any::<i16>(), len).prop_map(Value::Short).boxed(),
        NativeType::Float => prop::collection::vec(-1e30f32..1e30, len).prop_map(Value::Float).boxed(),
        NativeType::Enum => prop::collection::vec(any::<u16>(), len).prop_map(Value::Enum).boxed(),
        NativeType::Char => prop::collection::vec(any::<u8>(), len).prop_map(Value::Char).boxed(),
        NativeType::Long => prop::collection::vec(any::<i32>(), len).prop_map(Value::Long).boxed(),
        NativeType::Double => prop::collection::vec(-1e300f64..1e300, len).prop_map(Value::Double).boxed(),
    }
}

/// A limit exactly representable in the channel's element type.
fn limit(native: NativeType) -> BoxedStrategy<f64> {
    match native {
        NativeType::Char => any::<u8>().prop_map(f64::from).boxed(),
        NativeType::Short => any::<i16>().prop_map(f64::from).boxed(),
        NativeType::Long => any::<i32>().prop_map(f64::from).boxed(),
        NativeType::Float => (-1e30f32..1e30).prop_map(f64::from).boxed(),
        _ => (-1e300f64..1e300).boxed(),
    }
}

fn metadata(data_type: DbrType) -> BoxedStrategy<Metadata> {
    let alarm = (any::<u16>(), any::<u16>()).prop_map(|(status, severity)| Alarm { status, severity });
    let native = data_type.native();
    let candidates: Vec<BoxedStrategy<Metadata>> = vec![
        Just(Metadata::None).boxed(),
        alarm.clone().prop_map(Metadata::Status).boxed(),
        (alarm.clone(), any::<u32>(), any::<u32>())
            .prop_map(|(alarm, secs, nanos)| Metadata::Time { alarm, stamp: EpicsTime::new(secs, nanos) })
            .boxed(),
        (alarm.clone(), prop::collection::vec(ca_text(26), 0..=16))
            .prop_map(|(alarm, strings)| Metadata::Enum { alarm, strings })
            .boxed(),
        (alarm.clone(), any::<u16>(), any::<u16>())
            .prop_map(|(alarm, ackt, acks)| Metadata::StatusAck { alarm, ackt, acks })
            .boxed(),
        (alarm.clone(), ca_text(8), any::<i16>(), prop::collection::vec(limit(native), 8))
            .prop_map(move |(alarm, units, precision, limits)| {
                let precise = matches!(native, NativeType::Float | NativeType::Double);
                let info = GraphicInfo {
                    units,
                    precision: if precise { precision } else { 0 },
                    upper_disp_limit: limits[0],
                    lower_disp_limit: limits[1],
                    upper_alarm_limit: limits[2],
                    upper_warning_limit: limits[3],
                    lower_warning_limit: limits[4],
                    lower_alarm_limit: limits[5],
                };
                let control = ControlLimits { upper_ctrl_limit: limits[6], lower_ctrl_limit: limits[7] };
                if data_type.class() == pvloom_ca::proto::DbrClass::Control {
                    Metadata::Control { alarm, info, control }
                } else {
                    Metadata::Graphic { alarm, info }
                }
            })
            .boxed(),
    ];
    // Keep the one variant this type carries.
    prop::strategy::Union::new(candidates).prop_filter("metadata must fit the type", move |m| m.fits(data_type)).boxed()
}

fn dbr_data() -> impl Strategy<Value = (DbrType, DbrData)> {
    dbr_type().prop_flat_map(|data_type| {
        (metadata(data_type), value(data_type.native()))
            .prop_map(move |(metadata, value)| (data_type, DbrData::new(metadata, value)))
    })
}

/// Valid commands with the receiver role and transport they travel to.
fn command() -> impl Strategy<Value = (Command, Role, Transport)> {
    use Role::{Client, Server};
    use Transport::{Tcp, Udp};
    let ids = (any::<u32>(), any::<u32>());
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(priority, version)| (
            Command::VersionRequest { priority, version },
            Server,
            Tcp
        )),
        any::<u16>().prop_map(|version| (Command::VersionResponse { version }, Client, Tcp)),
        (any::<u16>(), any::<Option<u32>>(), role()).prop_map(|(version, sequence, role)| (
            Command::DatagramVersion { version, sequence },
            role,
            Udp
        )),
        (name(), any::<bool>(), any::<u16>(), any::<u32>()).prop_map(|(name, do_reply, version, search_id)| (
            Command::SearchRequest { name, do_reply, version, search_id },
            Server,
            Udp
        )),
        (any::<u16>(), any::<u32>(), any::<u32>(), any::<u16>()).prop_map(|(port, address, search_id, version)| (
            Command::SearchResponse {
                port,
                server_address: (address != u32::MAX).then(|| Ipv4Addr::from(address)),
                search_id,
                version: Some(version),
            },
            Client,
            Udp
        )),
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>(), role()).prop_map(
            |(version, server_port, beacon_id, address, role)| (
                Command::Beacon {
                    version,
                    server_port,
                    beacon_id,
                    address: (address != 0).then(|| Ipv4Addr::from(address)),
                },
                role,
                Udp
            )
        ),
        (dbr_type(), any::<u32>(), ids, any::<u16>()).prop_map(
            |(data_type, data_count, (sid, subscription_id), mask)| (
                Command::event_add_request(sid, subscription_id, data_type, data_count, mask),
                Server,
                Tcp
            )
        ),
        (dbr_data(), ids).prop_filter_map(
            "empty updates read as cancel confirmations",
            |((data_type, data), (status, subscription_id))| {
                let command = Command::event_add_response(subscription_id, status, data_type, &data).ok()?;
                let Command::EventAddResponse { data: ref bytes, .. } = command else {
                    return None;
                };
                (!bytes.is_empty()).then_some((command, Client, Tcp))
            }
        ),
        (dbr_data(), ids).prop_filter_map("encodable", |((data_type, data), (sid, ioid))| Some((
            Command::write_notify_request(sid, ioid, data_type, &data).ok()?,
            Server,
            Tcp
        ))),
        (dbr_data(), ids).prop_filter_map("encodable", |((data_type, data), (status, ioid))| Some((
            Command::read_notify_response(ioid, status, data_type, &data).ok()?,
            Client,
            Tcp
        ))),
        (dbr_type(), any::<u32>(), ids).prop_map(|(data_type, count, (sid, ioid))| (
            Command::read_notify_request(sid, ioid, data_type, count),
            Server,
            Tcp
        )),
        (any::<u32>(), any::<u16>(), name()).prop_map(|(cid, version, name)| (
            Command::CreateChanRequest { cid, version, name },
            Server,
            Tcp
        )),
        (dbr_type(), any::<u32>(), ids).prop_map(|(data_type, data_count, (cid, sid))| (
            Command::CreateChanResponse { data_type, data_count, cid, sid },
            Client,
            Tcp
        )),
        (any::<u32>(), any::<u32>()).prop_map(|(cid, rights)| (
            Command::AccessRightsResponse { cid, access_rights: AccessRights(rights) },
            Client,
            Tcp
        )),
        (ids, any::<u32>(), "[ -~]{0,100}").prop_map(|((cid, status), param, message)| (
            Command::ErrorResponse {
                cid,
                status,
                original_request: Header { command: 15, data_count: param, param1: param, ..Header::default() },
                message,
            },
            Client,
            Tcp
        )),
        ids.prop_map(|(sid, cid)| (Command::ClearChannelRequest { sid, cid }, Server, Tcp)),
        name().prop_map(|name| (Command::HostNameRequest { name }, Server, Tcp)),
        any::<u32>().prop_map(|cid| (Command::ServerDisconnResponse { cid }, Client, Tcp)),
    ]
}

fn hostile_config() -> DecoderConfig {
    DecoderConfig { max_payload: 1 << 16, require_alignment: false }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_the_stream_decoder(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
        role in role(),
        strict in any::<bool>(),
    ) {
        let config = if strict { DecoderConfig::default() } else { hostile_config() };
        let mut decoder = FrameDecoder::new(config);
        for chunk in chunks {
            decoder.push(&chunk);
            loop {
                match decoder.next_command(role) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) if error.is_fatal() => break,
                    Err(_) => {}
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_the_datagram_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        role in role(),
    ) {
        let _ = decode_datagram(Bytes::from(bytes), role);
    }

    /// Headers with plausible command codes reach the per-command decoders.
    #[test]
    fn random_payloads_behind_valid_headers_never_panic(
        command in 0u16..30,
        data_type in 0u16..45,
        data_count in prop_oneof![0u32..64, any::<u32>()],
        params in (any::<u32>(), any::<u32>()),
        payload in prop::collection::vec(any::<u8>(), 0..600),
        role in role(),
    ) {
        let mut payload = payload;
        payload.resize(payload.len().div_ceil(8) * 8, 0);
        let header = Header {
            command,
            payload_size: payload.len() as u32,
            data_type,
            data_count,
            param1: params.0,
            param2: params.1,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        bytes.extend_from_slice(&payload);
        let mut decoder = FrameDecoder::default();
        decoder.push(&bytes);
        if let Ok(Some(command)) = decoder.next_command(role) {
            let _ = command.data();
            let _ = command.to_bytes();
        }
        let mut circuit = Circuit::new(role);
        circuit.recv(&bytes);
        let _ = circuit.poll_event();
    }

    #[test]
    fn valid_commands_round_trip((command, role, transport) in command()) {
        let bytes = command.to_bytes().unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        let decoded = match transport {
            Transport::Udp => {
                let mut all = decode_datagram(bytes, role).unwrap();
                prop_assert_eq!(all.len(), 1);
                all.remove(0)
            }
            Transport::Tcp => {
                let mut decoder = FrameDecoder::default();
                decoder.push(&bytes);
                let decoded = decoder.next_command(role).unwrap().unwrap();
                prop_assert_eq!(decoder.buffered(), 0);
                decoded
            }
        };
        prop_assert_eq!(&decoded, &command);
        if let (Some(original), Some(back)) = (command.data(), decoded.data()) {
            prop_assert_eq!(original.unwrap(), back.unwrap());
        }
    }

    #[test]
    fn dbr_payloads_round_trip((data_type, data) in dbr_data()) {
        let bytes = data.encode(data_type).unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        let decoded = DbrData::decode(data_type, data.count().unwrap(), &bytes).unwrap();
        prop_assert_eq!(decoded, data);
    }

    /// Whatever a client tries to send, refused commands leave no trace and
    /// nothing panics.
    #[test]
    fn refused_sends_change_nothing(
        script in prop::collection::vec((0u8..9, 0u32..4, 0u32..4), 1..40),
    ) {
        let mut client = Circuit::new(Role::Client);
        let mut peer_version_seen = false;
        for (kind, a, b) in script {
            let command = match kind {
                0 => Command::VersionRequest { priority: 0, version: 13 },
                1 => Command::CreateChanRequest { cid: a, version: 13, name: "PV".into() },
                2 => Command::read_notify_request(a, b, DbrType::Double, 1),
                3 => Command::event_add_request(a, b, DbrType::Double, 1, DBE_VALUE),
                4 => Command::EventCancelRequest { data_type: DbrType::Double, data_count: 1, sid: a, subscription_id: b },
                5 => Command::ClearChannelRequest { sid: a, cid: b },
                6 => Command::EchoRequest,
                7 => Command::EchoResponse,
                _ => Command::read_notify_response(a, ECA_NORMAL, DbrType::Double, &DbrData::plain(Value::Double(vec![1.0]))).unwrap(),
            };
            // Feed server replies so channels can connect.
            if kind == 1 && a % 2 == 0 && client.channel(a).is_none() {
                if client.send(std::slice::from_ref(&command)).is_ok() {
                    if !peer_version_seen {
                        client.recv(&Command::VersionResponse { version: 13 }.to_bytes().unwrap());
                        client.poll_event().unwrap();
                        peer_version_seen = true;
                    }
                    client.recv(&Command::CreateChanResponse { data_type: DbrType::Double, data_count: 1, cid: a, sid: a }.to_bytes().unwrap());
                    let _ = client.poll_event();
                }
                continue;
            }
            let before = format!("{:?}", client.book());
            match client.send(std::slice::from_ref(&command)) {
                Ok(bytes) => prop_assert!(!bytes.is_empty()),
                Err(error) => {
                    prop_assert!(matches!(error.error, CircuitError::Local(_)));
                    prop_assert!(error.accepted.is_empty());
                    prop_assert_eq!(before, format!("{:?}", client.book()));
                }
            }
        }
    }

    /// Replies naming ids the client never issued are always refused.
    #[test]
    fn replies_for_unissued_ids_are_refused(ioid in any::<u32>(), subscription_id in any::<u32>()) {
        let mut client = Circuit::new(Role::Client);
        client.send(&[Command::VersionRequest { priority: 0, version: 13 }]).unwrap();
        client.recv(&Command::VersionResponse { version: 13 }.to_bytes().unwrap());
        client.poll_event().unwrap();
        let data = DbrData::plain(Value::Long(vec![1]));
        let replies = [
            Command::read_notify_response(ioid, ECA_NORMAL, DbrType::Long, &data).unwrap(),
            Command::event_add_response(subscription_id, ECA_NORMAL, DbrType::Long, &data).unwrap(),
            Command::WriteNotifyResponse { data_type: DbrType::Long, data_count: 1, status: ECA_NORMAL, ioid },
        ];
        for reply in replies {
            client.recv(&reply.to_bytes().unwrap());
            let refused = matches!(client.poll_event(), Err(CircuitError::Remote { .. }));
            prop_assert!(refused);
        }
    }
}

/// Tags for the payload property: every attached tag is distinct.
struct Tagged;
impl pvloom_ca::proto::state::BookPayloads for Tagged {
    type Channel = u32;
    type Io = u32;
    type Sub = u32;
}

proptest! {
    /// Whatever the client sends and the server answers (legal or not), every payload
    /// attached to the book comes back exactly once: released by the reply or the
    /// command that ended its entry, taken by its owner, or handed back at disconnection.
    #[test]
    fn every_attached_payload_comes_back_exactly_once(
        steps in prop::collection::vec((0u8..12, 0u32..3, 0u32..4), 0..80),
    ) {
        use pvloom_ca::proto::CircuitConfig;
        use pvloom_ca::proto::constants::ECA_GETFAIL;
        use pvloom_ca::proto::state::{IoKind, Released};

        let mut client = Circuit::<Tagged>::with_payloads(Role::Client, CircuitConfig::default());
        client.send(&[Command::VersionRequest { priority: 0, version: 13 }]).unwrap();
        client.recv(&Command::VersionResponse { version: 13 }.to_bytes().unwrap());
        client.poll_event().unwrap();
        let (mut attached, mut returned) = (Vec::new(), Vec::new());
        let mut tag = 0u32;
        let collect = |released: Released<Tagged>, returned: &mut Vec<u32>| {
            returned.extend(released.channels.into_iter().map(|(_, t)| t));
            returned.extend(released.ios.into_iter().map(|(_, _, t)| t));
            returned.extend(released.subscriptions.into_iter().map(|(_, t)| t));
        };
        let value = DbrData::plain(Value::Double(vec![1.0]));
        for (step, a, b) in steps {
            let sid = a + 100;
            tag += 1;
            // Requests, with a payload attached to what each one created.
            let sent = match step {
                0 => Some(Command::CreateChanRequest { cid: a, version: 13, name: "PV".into() }),
                1 => Some(Command::read_notify_request(sid, b, DbrType::Double, 1)),
                2 => Some(Command::event_add_request(sid, b, DbrType::Double, 1, DBE_VALUE)),
                3 => Some(Command::EventCancelRequest { data_type: DbrType::Double, data_count: 1, sid, subscription_id: b }),
                4 => Some(Command::ClearChannelRequest { sid, cid: a }),
                _ => None,
            };
            if let Some(command) = sent {
                if client.send(std::slice::from_ref(&command)).is_ok() {
                    let book = client.book_mut();
                    let fresh = match step {
                        0 => book.attach_channel(a, tag).is_ok(),
                        1 => book.attach_io(IoKind::ReadNotify, b, tag).is_ok(),
                        2 => book.attach_subscription(b, tag).is_ok(),
                        _ => false,
                    };
                    if fresh {
                        attached.push(tag);
                    }
                }
                continue;
            }
            // The owner taking payloads back.
            if step == 5 {
                let book = client.book_mut();
                returned.extend(book.take_io_payload(IoKind::ReadNotify, b));
                returned.extend(book.take_subscription_payload(b));
                continue;
            }
            // Replies, legal or not.
            let header = Header { command: 15, payload_size: 0, data_type: 6, data_count: 1, param1: sid, param2: b };
            let reply = match step {
                6 => Command::CreateChanResponse { data_type: DbrType::Double, data_count: 1, cid: a, sid },
                7 => Command::read_notify_response(b, ECA_NORMAL, DbrType::Double, &value).unwrap(),
                8 => Command::EventCancelResponse { data_type: DbrType::Double, data_count: 1, sid, subscription_id: b },
                9 => Command::ClearChannelResponse { sid, cid: a },
                10 => Command::ServerDisconnResponse { cid: a },
                _ => Command::ErrorResponse { cid: a, status: ECA_GETFAIL, original_request: header, message: String::new() },
            };
            client.recv(&reply.to_bytes().unwrap());
            while let Ok(Some(event)) = client.poll_event() {
                collect(event.released, &mut returned);
            }
        }
        collect(client.disconnect_released(), &mut returned);
        returned.sort_unstable();
        prop_assert_eq!(attached, returned);
    }
}
