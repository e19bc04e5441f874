//! A client and a server circuit talking to each other, and the rules they enforce.

use pvloom_ca::proto::constants::{DBE_VALUE, ECA_NORDACCESS, ECA_NORMAL};
use pvloom_ca::proto::state::IoKind;
use pvloom_ca::proto::{
    AccessRights, ChannelState, Circuit, CircuitError, CircuitState, Command, DbrData, DbrType, Event, Header, Role,
    StateError, Value,
};

/// Sends `commands` from `from` and returns what `to` makes of them.
fn exchange(from: &mut Circuit, to: &mut Circuit, commands: &[Command]) -> Vec<Event> {
    let bytes = from.send(commands).unwrap();
    to.recv(&bytes);
    let mut events = Vec::new();
    while let Some(event) = to.poll_event().unwrap() {
        events.push(event);
    }
    events
}

fn refused_locally(result: Result<bytes::Bytes, pvloom_ca::proto::SendError>) -> StateError {
    match result {
        Err(error) => match error.error {
            CircuitError::Local(state) => state,
            other => panic!("expected a local refusal, got {other:?}"),
        },
        Ok(_) => panic!("expected a refusal"),
    }
}

/// Client and server with a connected channel cid 1 / sid 40 (DOUBLE, 3 elements).
fn connected_pair() -> (Circuit, Circuit) {
    let mut client = Circuit::new(Role::Client);
    let mut server = Circuit::new(Role::Server);
    // RSRV sends its VERSION as soon as the connection opens.
    exchange(&mut server, &mut client, &[Command::VersionResponse { version: 13 }]);
    let events = exchange(
        &mut client,
        &mut server,
        &[
            Command::VersionRequest { priority: 0, version: 13 },
            Command::HostNameRequest { name: "host".into() },
            Command::ClientNameRequest { name: "user".into() },
            Command::CreateChanRequest { cid: 1, version: 13, name: "PV:A".into() },
        ],
    );
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].channel_state, Some(ChannelState::AwaitCreateChanResponse));
    let events = exchange(
        &mut server,
        &mut client,
        &[
            Command::AccessRightsResponse { cid: 1, access_rights: AccessRights::READ_WRITE },
            Command::CreateChanResponse { data_type: DbrType::Double, data_count: 3, cid: 1, sid: 40 },
        ],
    );
    assert_eq!(events[1].channel_state, Some(ChannelState::Connected));
    assert_eq!(client.state(), CircuitState::Connected);
    assert_eq!(server.state(), CircuitState::Connected);
    let channel = client.channel(1).unwrap();
    assert_eq!(channel.sid, Some(40));
    assert!(channel.access_rights.can_write());
    (client, server)
}

fn doubles(values: &[f64]) -> DbrData {
    DbrData::plain(Value::Double(values.to_vec()))
}

#[test]
fn read_notify_round_trip() {
    let (mut client, mut server) = connected_pair();
    let events = exchange(&mut client, &mut server, &[Command::read_notify_request(40, 7, DbrType::Double, 0)]);
    assert_eq!(events[0].cid, Some(1));
    assert!(server.pending_io(IoKind::ReadNotify, 7).is_some());

    let reply = Command::read_notify_response(7, ECA_NORMAL, DbrType::Double, &doubles(&[1.0, 2.0, 3.0])).unwrap();
    let events = exchange(&mut server, &mut client, &[reply]);
    assert_eq!(events[0].cid, Some(1));
    let data = events[0].command.data().unwrap().unwrap();
    assert_eq!(data.value, Value::Double(vec![1.0, 2.0, 3.0]));
    assert!(client.pending_io(IoKind::ReadNotify, 7).is_none());

    // A second reply for the same ioid was never asked for.
    let again = Command::read_notify_response(7, ECA_NORMAL, DbrType::Double, &doubles(&[1.0])).unwrap();
    assert_eq!(
        refused_locally(server.send(std::slice::from_ref(&again))),
        StateError::UnknownIoid { command: "ReadNotifyResponse", ioid: 7 }
    );
    // The same bytes arriving at the client are refused too, without killing it.
    client.recv(&again.to_bytes().unwrap());
    let error = client.poll_event().unwrap_err();
    assert!(matches!(error, CircuitError::Remote { source: StateError::UnknownIoid { ioid: 7, .. }, .. }));
    assert!(!error.is_fatal());
    assert_eq!(client.state(), CircuitState::Connected);
}

#[test]
fn reply_larger_than_the_channel_is_refused() {
    let (mut client, mut server) = connected_pair();
    exchange(&mut client, &mut server, &[Command::read_notify_request(40, 1, DbrType::Double, 2)]);
    let reply = Command::read_notify_response(1, ECA_NORMAL, DbrType::Double, &doubles(&[1.0; 3])).unwrap();
    assert!(matches!(refused_locally(server.send(&[reply])), StateError::CountTooLarge { count: 3, limit: 2, .. }));
}

#[test]
fn write_notify_and_duplicate_ioids() {
    let (mut client, mut server) = connected_pair();
    let write = Command::write_notify_request(40, 9, DbrType::Double, &doubles(&[4.0])).unwrap();
    exchange(&mut client, &mut server, std::slice::from_ref(&write));
    assert_eq!(
        refused_locally(client.send(&[write])),
        StateError::DuplicateIoid { command: "WriteNotifyRequest", ioid: 9 }
    );
    let events = exchange(
        &mut server,
        &mut client,
        &[Command::WriteNotifyResponse { data_type: DbrType::Double, data_count: 1, status: ECA_NORMAL, ioid: 9 }],
    );
    assert_eq!(events[0].cid, Some(1));
}

#[test]
fn subscription_life_cycle() {
    let (mut client, mut server) = connected_pair();
    let add = Command::event_add_request(40, 5, DbrType::TimeDouble, 0, DBE_VALUE);
    exchange(&mut client, &mut server, std::slice::from_ref(&add));
    assert_eq!(refused_locally(client.send(&[add])), StateError::DuplicateSubscription(5));

    let update = DbrData::new(
        pvloom_ca::proto::Metadata::Time { alarm: Default::default(), stamp: Default::default() },
        Value::Double(vec![1.0, 2.0]),
    );
    let reply = Command::event_add_response(5, ECA_NORMAL, DbrType::TimeDouble, &update).unwrap();
    let events = exchange(&mut server, &mut client, &[reply.clone(), reply.clone()]);
    assert_eq!(events.len(), 2);

    // Updates of another type than subscribed are refused.
    let wrong = Command::event_add_response(5, ECA_NORMAL, DbrType::Double, &doubles(&[1.0])).unwrap();
    assert!(matches!(
        refused_locally(server.send(&[wrong])),
        StateError::SubscriptionMismatch { field: "data_type", .. }
    ));

    // The server may not confirm a cancel nobody asked for.
    let confirm =
        Command::EventCancelResponse { data_type: DbrType::TimeDouble, data_count: 0, sid: 40, subscription_id: 5 };
    assert_eq!(refused_locally(server.send(std::slice::from_ref(&confirm))), StateError::EmptyEventBeforeCancel(5));

    let cancel =
        Command::EventCancelRequest { data_type: DbrType::TimeDouble, data_count: 0, sid: 40, subscription_id: 5 };
    exchange(&mut client, &mut server, std::slice::from_ref(&cancel));
    assert_eq!(refused_locally(client.send(&[cancel])), StateError::CancelPending(5));
    // Updates already in flight when the cancel was sent are dropped quietly (as
    // libca does); the confirmation arrives.
    let events = exchange(&mut server, &mut client, &[reply.clone(), confirm]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0].command, Command::EventCancelResponse { .. }));
    // Even after the confirmation a straggler is absorbed, not a protocol error.
    client.recv(&reply.to_bytes().unwrap());
    assert_eq!(client.poll_event().unwrap(), None);
    assert!(client.subscription(5).is_none());
    assert!(server.subscription(5).is_none());
}

#[test]
fn empty_update_without_cancel_is_a_zero_length_array() {
    let (mut client, mut server) = connected_pair();
    exchange(&mut client, &mut server, &[Command::event_add_request(40, 8, DbrType::Double, 0, DBE_VALUE)]);
    // Bytes a 4.13 server sends for an empty plain-type update.
    let mut bytes = Vec::new();
    Header { command: 1, payload_size: 0, data_type: 6, data_count: 0, param1: ECA_NORMAL, param2: 8 }
        .encode(&mut bytes);
    client.recv(&bytes);
    let event = client.poll_event().unwrap().unwrap();
    assert_eq!(
        event.command,
        Command::EventAddResponse {
            data_type: DbrType::Double,
            data_count: 0,
            status: ECA_NORMAL,
            subscription_id: 8,
            data: bytes::Bytes::new(),
        }
    );
    assert!(client.subscription(8).is_some());
}

#[test]
fn clear_channel_and_late_cancel_confirmations() {
    let (mut client, mut server) = connected_pair();
    exchange(
        &mut client,
        &mut server,
        &[
            Command::event_add_request(40, 3, DbrType::Double, 1, DBE_VALUE),
            Command::read_notify_request(40, 4, DbrType::Double, 1),
            Command::ClearChannelRequest { sid: 40, cid: 1 },
        ],
    );
    assert_eq!(client.channel(1).unwrap().state, ChannelState::MustClose);
    // No more requests on a closing channel.
    assert!(matches!(
        refused_locally(client.send(&[Command::read_notify_request(40, 5, DbrType::Double, 1)])),
        StateError::ChannelState { state: ChannelState::MustClose, .. }
    ));
    // The in-flight read still completes.
    exchange(
        &mut server,
        &mut client,
        &[Command::read_notify_response(4, ECA_NORDACCESS, DbrType::Double, &doubles(&[0.0])).unwrap()],
    );
    let events = exchange(&mut server, &mut client, &[Command::ClearChannelResponse { sid: 40, cid: 1 }]);
    assert_eq!(events[0].channel_state, Some(ChannelState::Closed));
    assert!(client.channel(1).is_none());

    // RSRV may confirm the subscription's cancel after the clear: absorbed.
    let late = Command::EventCancelResponse { data_type: DbrType::Double, data_count: 1, sid: 40, subscription_id: 3 };
    client.recv(&late.to_bytes().unwrap());
    assert_eq!(client.poll_event().unwrap(), None);
    // But only once, and never for ids that did not exist.
    client.recv(&late.to_bytes().unwrap());
    assert!(matches!(
        client.poll_event(),
        Err(CircuitError::Remote { source: StateError::UnknownSubscription(3), .. })
    ));
    // The cid can be reused.
    exchange(&mut client, &mut server, &[Command::CreateChanRequest { cid: 1, version: 13, name: "PV:B".into() }]);
}

#[test]
fn create_failure_and_server_disconnect() {
    let (mut client, mut server) = connected_pair();
    exchange(&mut client, &mut server, &[Command::CreateChanRequest { cid: 2, version: 13, name: "NOPE".into() }]);
    let events = exchange(&mut server, &mut client, &[Command::CreateChFailResponse { cid: 2 }]);
    assert_eq!(events[0].channel_state, Some(ChannelState::Failed));
    assert!(client.channel(2).is_none());

    let events = exchange(&mut server, &mut client, &[Command::ServerDisconnResponse { cid: 1 }]);
    assert_eq!(events[0].channel_state, Some(ChannelState::Closed));
    assert!(matches!(
        refused_locally(client.send(&[Command::read_notify_request(40, 1, DbrType::Double, 1)])),
        StateError::UnknownSid(40)
    ));
}

#[test]
fn error_response_settles_the_failed_request() {
    let (mut client, mut server) = connected_pair();
    let request = Command::read_notify_request(40, 11, DbrType::Double, 1);
    exchange(&mut client, &mut server, std::slice::from_ref(&request));
    let mut original = Vec::new();
    let header = {
        let bytes = request.to_bytes().unwrap();
        original.extend_from_slice(&bytes);
        match Header::parse(&original) {
            pvloom_ca::proto::header::HeaderParse::Complete(header, _) => header,
            other => panic!("{other:?}"),
        }
    };
    let events = exchange(
        &mut server,
        &mut client,
        &[Command::ErrorResponse {
            cid: 1,
            status: pvloom_ca::proto::constants::ECA_BADCOUNT,
            original_request: header,
            message: "PV:A".into(),
        }],
    );
    assert_eq!(events[0].cid, Some(1));
    assert!(client.pending_io(IoKind::ReadNotify, 11).is_none());
}

#[test]
fn illegal_sequences_are_refused() {
    let mut client = Circuit::new(Role::Client);
    // Nothing before VERSION.
    assert_eq!(
        refused_locally(client.send(&[Command::EchoRequest])),
        StateError::VersionNotFirst { command: "EchoRequest" }
    );
    // A client cannot send responses.
    client.send(&[Command::VersionRequest { priority: 0, version: 13 }]).unwrap();
    assert!(matches!(refused_locally(client.send(&[Command::EchoResponse])), StateError::WrongSender { .. }));
    // Operations need a connected channel.
    assert_eq!(
        refused_locally(client.send(&[Command::read_notify_request(1, 1, DbrType::Double, 1)])),
        StateError::UnknownSid(1)
    );
    // TCP search needs to know the server speaks 4.12+.
    assert!(matches!(
        refused_locally(client.send(&[Command::SearchRequest {
            name: "X".into(),
            do_reply: true,
            version: 13,
            search_id: 1,
        }])),
        StateError::TcpSearchUnsupported { peer_version: None }
    ));
    // Datagram-only commands do not belong on a circuit.
    assert!(matches!(
        refused_locally(client.send(&[Command::DatagramVersion { version: 13, sequence: None }])),
        StateError::NotACircuitCommand { .. }
    ));

    // Server side: a client must open with VERSION.
    let mut server = Circuit::new(Role::Server);
    server.recv(&Command::EchoRequest.to_bytes().unwrap());
    assert!(matches!(
        server.poll_event(),
        Err(CircuitError::Remote { source: StateError::VersionNotFirst { .. }, .. })
    ));
    // Replies for channels it never created are refused.
    let mut client = Circuit::new(Role::Client);
    client.recv(&Command::VersionResponse { version: 13 }.to_bytes().unwrap());
    client.poll_event().unwrap();
    client.recv(
        &Command::CreateChanResponse { data_type: DbrType::Long, data_count: 1, cid: 99, sid: 1 }.to_bytes().unwrap(),
    );
    assert!(matches!(client.poll_event(), Err(CircuitError::Remote { source: StateError::UnknownCid(99), .. })));
}

#[test]
fn send_reports_the_accepted_prefix() {
    let mut client = Circuit::new(Role::Client);
    let error =
        client.send(&[Command::VersionRequest { priority: 0, version: 13 }, Command::EchoResponse]).unwrap_err();
    assert_eq!(error.index, 1);
    assert_eq!(error.accepted.len(), 16);
    assert_eq!(client.state(), CircuitState::AwaitVersion);
}

#[test]
fn framing_errors_close_the_circuit() {
    let mut client = Circuit::new(Role::Client);
    client.send(&[Command::VersionRequest { priority: 0, version: 13 }]).unwrap();
    let mut bytes = Vec::new();
    Header { command: 15, payload_size: 3, ..Header::default() }.encode(&mut bytes);
    client.recv(&bytes);
    let error = client.poll_event().unwrap_err();
    assert!(error.is_fatal());
    assert_eq!(client.state(), CircuitState::Closed);
    assert!(client.send(&[Command::EchoRequest]).is_err());
}

#[test]
fn disconnect_closes_every_channel() {
    let (mut client, _server) = connected_pair();
    assert_eq!(client.disconnect(), vec![1]);
    assert!(client.channel(1).is_none());
    assert_eq!(client.state(), CircuitState::Closed);
}
