//! Protocol timing on virtual time: the client's circuit against a scripted server
//! (echo keepalive, operation deadlines, events off/on, back-pressure, handshake),
//! and the client's search engine against the server's real search responder on an
//! in-memory network (backoff, beacon anomaly, reconnect backoff, repeater). No
//! sockets, no sleeps: hours of protocol time run in milliseconds.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use pvloom_ca::client::endpoint::{ClientCircuit, ClientCircuitConfig, ClientEvent, OpFailure, Payloads};
use pvloom_ca::client::search_engine::{SearchConfig, SearchEngine, SearchEvent, search_delay};
use pvloom_ca::proto::command::AccessRights;
use pvloom_ca::proto::constants::ECA_NORMAL;
use pvloom_ca::proto::{Circuit, Command, DbrData, DbrType, Role, Value};
use pvloom_ca::server::SearchResponder;
use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::{CloseReason, DatagramEndpoint, StreamEndpoint};
use pvloom_core::harness::{DatagramNet, Side, StreamPair};

/// Test payloads: plain tags.
#[derive(Debug)]
struct Tags;
impl Payloads for Tags {
    type Channel = u32;
    type Read = u32;
    type Write = u32;
    type Sub = u32;
}

/// A scripted CA server (h2-support style): answers what it is told to answer.
struct ScriptedServer {
    proto: Circuit,
    out: BytesMut,
    seen: Vec<Command>,
    answer_echo: bool,
    answer_reads: bool,
    events_on: bool,
    subscriptions: Vec<u32>,
    held: VecDeque<Command>,
    close: Option<CloseReason>,
    echoes_at: Vec<Instant>,
    now: Option<Instant>,
}

impl ScriptedServer {
    fn new() -> Self {
        ScriptedServer {
            proto: Circuit::new(Role::Server),
            out: BytesMut::new(),
            seen: Vec::new(),
            answer_echo: true,
            answer_reads: true,
            events_on: true,
            subscriptions: Vec::new(),
            held: VecDeque::new(),
            close: None,
            echoes_at: Vec::new(),
            now: None,
        }
    }

    fn send(&mut self, command: &Command) {
        self.proto.send_into(command, &mut self.out).expect("the scripted reply is legal");
    }

    /// Post a new value to every subscriber (held while the client asked EVENTS_OFF).
    fn post(&mut self, value: f64) {
        for id in self.subscriptions.clone() {
            let data = DbrData::plain(Value::Double(vec![value]));
            let update = Command::event_add_response(id, ECA_NORMAL, DbrType::Double, &data).unwrap();
            if self.events_on {
                self.send(&update);
            } else {
                // As rsrv: one pending update per subscription, the newest.
                self.held.retain(
                    |c| !matches!(c, Command::EventAddResponse { subscription_id, .. } if *subscription_id == id),
                );
                self.held.push_back(update);
            }
        }
    }

    fn handle(&mut self, command: Command) {
        self.seen.push(command.clone());
        match command {
            Command::CreateChanRequest { cid, .. } => {
                self.send(&Command::AccessRightsResponse { cid, access_rights: AccessRights(3) });
                self.send(&Command::CreateChanResponse {
                    data_type: DbrType::Double,
                    data_count: 1,
                    cid,
                    sid: cid + 100,
                });
            }
            Command::ReadNotifyRequest { ioid, data_type, .. } if self.answer_reads => {
                let data = DbrData::plain(Value::Double(vec![4.5]));
                self.send(&Command::read_notify_response(ioid, ECA_NORMAL, data_type, &data).unwrap());
            }
            Command::WriteNotifyRequest { data_type, data_count, ioid, .. } => {
                self.send(&Command::WriteNotifyResponse { data_type, data_count, status: ECA_NORMAL, ioid });
            }
            Command::EventAddRequest { subscription_id, .. } => {
                self.subscriptions.push(subscription_id);
                let data = DbrData::plain(Value::Double(vec![0.0]));
                self.send(&Command::event_add_response(subscription_id, ECA_NORMAL, DbrType::Double, &data).unwrap());
            }
            Command::EventsOffRequest => self.events_on = false,
            Command::EventsOnRequest => {
                self.events_on = true;
                while let Some(update) = self.held.pop_front() {
                    self.send(&update);
                }
            }
            Command::EchoRequest => {
                self.echoes_at.extend(self.now);
                if self.answer_echo {
                    self.send(&Command::EchoResponse);
                }
            }
            _ => {}
        }
    }
}

impl StreamEndpoint for ScriptedServer {
    type Event = ();

    fn handle_connected(&mut self, _now: Instant) {
        self.send(&Command::VersionResponse { version: 13 });
    }

    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.now = Some(now);
        self.proto.recv(data);
        while let Some(event) = self.proto.poll_event().expect("the client speaks valid CA") {
            self.handle(event.command);
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, _now: Instant, room: usize, out: &mut BytesMut) {
        let take = room.min(self.out.len());
        out.extend_from_slice(&self.out.split_to(take));
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

const ECHO_AFTER: Duration = Duration::from_secs(30);
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

fn pair_with(server: ScriptedServer, config: ClientCircuitConfig) -> StreamPair<ClientCircuit<Tags>, ScriptedServer> {
    let client = ClientCircuit::new(Instant::now(), config);
    StreamPair::new(client, server)
}

fn config() -> ClientCircuitConfig {
    ClientCircuitConfig {
        host_name: "test-host".into(),
        client_name: "tester".into(),
        echo_after: ECHO_AFTER,
        echo_timeout: ECHO_TIMEOUT,
        ..ClientCircuitConfig::default()
    }
}

/// A pair with channel 1 ("PV:1") connected.
fn connected(server: ScriptedServer) -> StreamPair<ClientCircuit<Tags>, ScriptedServer> {
    let mut pair = pair_with(server, config());
    pair.client.create_channel(1, "PV:1", 1);
    pair.drive();
    assert!(
        pair.client_events.iter().any(|e| matches!(e, ClientEvent::ChannelCreated { channel: 1, .. })),
        "the channel connects"
    );
    pair.client_events.clear();
    pair
}

#[test]
fn handshake_comes_from_the_config() {
    let config = ClientCircuitConfig { version: 11, priority: 7, ..config() };
    let pair = pair_with(ScriptedServer::new(), config);
    let seen = &pair.server.seen;
    assert_eq!(seen[0], Command::VersionRequest { priority: 7, version: 11 });
    assert_eq!(seen[1], Command::HostNameRequest { name: "test-host".into() });
    assert_eq!(seen[2], Command::ClientNameRequest { name: "tester".into() });
}

#[test]
fn an_unanswered_echo_closes_the_circuit_at_its_deadline() {
    let mut server = ScriptedServer::new();
    server.answer_echo = false;
    let mut pair = connected(server);
    let start = pair.now();
    pair.client.read(1, DbrType::Double, 1, true, start + Duration::from_secs(3600), 9);
    pair.server.answer_reads = false;
    pair.drive();

    let echo_at = pair.advance_to_next_timeout().expect("the keepalive is armed");
    assert_eq!(echo_at, start + ECHO_AFTER, "echo after EPICS_CA_CONN_TMO of silence");
    assert_eq!(pair.server.echoes_at, vec![start + ECHO_AFTER]);
    assert!(pair.closed().is_none());

    let closed_at = pair.advance_to_next_timeout().expect("the echo deadline is armed");
    assert_eq!(closed_at, start + ECHO_AFTER + ECHO_TIMEOUT);
    let (side, reason) = pair.closed().expect("closed").clone();
    assert_eq!(side, Side::Client);
    assert!(matches!(reason, CloseReason::TimedOut(ref why) if why.contains("echo")), "{reason}");
    let events: Vec<_> = pair.client_events.drain(..).collect();
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Closed(_))));
    assert!(events.iter().any(|e| matches!(e, ClientEvent::ReadDone { op: 9, result: Err(OpFailure::Disconnected) })));
    assert!(events.iter().any(|e| matches!(e, ClientEvent::ChannelLost { channel: 1 })));
    assert_eq!(pair.client.poll_timeout(), None, "a closed circuit arms nothing");
}

#[test]
fn answered_echoes_keep_a_quiet_circuit_open_for_hours() {
    let mut pair = connected(ScriptedServer::new());
    let start = pair.now();
    pair.advance(Duration::from_secs(3 * 3600));
    assert!(pair.closed().is_none());
    let echoes = pair.server.echoes_at.len();
    assert_eq!(echoes, (3 * 3600 / ECHO_AFTER.as_secs()) as usize, "one echo per quiet period");
    assert_eq!(pair.server.echoes_at[0], start + ECHO_AFTER);
}

#[test]
fn traffic_postpones_the_echo() {
    let mut pair = connected(ScriptedServer::new());
    let start = pair.now();
    pair.advance(Duration::from_secs(20));
    pair.server.post(1.0);
    pair.client.subscribe(1, 77, DbrType::Double, 1, 1, 77);
    pair.drive();
    let heard = pair.now();
    assert_eq!(pair.client.poll_timeout(), Some(heard + ECHO_AFTER));
    pair.advance(Duration::from_secs(29));
    assert!(pair.server.echoes_at.is_empty(), "no echo within 30 s of the last reply");
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.server.echoes_at, vec![start + Duration::from_secs(50)]);
}

#[test]
fn a_read_times_out_at_its_deadline_and_its_deadline_goes_with_it() {
    let mut server = ScriptedServer::new();
    server.answer_reads = false;
    let mut pair = connected(server);
    let start = pair.now();
    let keepalive = pair.client.poll_timeout().unwrap();
    pair.client.read(1, DbrType::Double, 1, true, start + Duration::from_secs(2), 5);
    pair.drive();
    assert_eq!(pair.client.poll_timeout(), Some(start + Duration::from_secs(2)), "the op's deadline is armed");
    assert_eq!(pair.client.ops_in_flight(), 1);

    pair.advance(Duration::from_millis(1999));
    assert!(pair.client_events.is_empty(), "not a moment early");
    pair.advance(Duration::from_millis(1));
    let events: Vec<_> = pair.client_events.drain(..).collect();
    assert!(matches!(events[..], [ClientEvent::ReadDone { op: 5, result: Err(OpFailure::TimedOut) }]), "{events:?}");
    assert_eq!(pair.client.ops_in_flight(), 0);
    assert_eq!(pair.client.poll_timeout(), Some(keepalive), "back to the keepalive alone");
}

#[test]
fn answered_reads_and_writes_leave_no_deadline_behind() {
    let mut pair = connected(ScriptedServer::new());
    let deadline = pair.now() + Duration::from_secs(2);
    for op in 0..1000 {
        pair.client.read(1, DbrType::Double, 1, true, deadline, op);
        let value = DbrData::plain(Value::Double(vec![f64::from(op)]));
        pair.client.write(1, DbrType::Double, &value, true, deadline, op);
    }
    pair.drive();
    let reads = pair.client_events.iter().filter(|e| matches!(e, ClientEvent::ReadDone { result: Ok(_), .. })).count();
    let writes =
        pair.client_events.iter().filter(|e| matches!(e, ClientEvent::WriteDone { result: Ok(()), .. })).count();
    assert_eq!((reads, writes), (1000, 1000));
    assert_eq!(pair.client.ops_in_flight(), 0);
    assert!(pair.client.poll_timeout().unwrap() > deadline, "only the keepalive is left");
    let value = pair.client_events.iter().find_map(|e| match e {
        ClientEvent::ReadDone { result: Ok(response), .. } => Some(response.as_f64s()),
        _ => None,
    });
    assert_eq!(value, Some(Some(vec![4.5])));
}

#[test]
fn a_plain_write_is_done_once_queued_and_a_missing_channel_fails_at_once() {
    let mut pair = connected(ScriptedServer::new());
    let deadline = pair.now() + Duration::from_secs(2);
    let value = DbrData::plain(Value::Double(vec![1.0]));
    pair.client.write(1, DbrType::Double, &value, false, deadline, 1);
    pair.client.read(42, DbrType::Double, 1, true, deadline, 2);
    pair.drive();
    let events: Vec<_> = pair.client_events.drain(..).collect();
    assert!(events.iter().any(|e| matches!(e, ClientEvent::WriteDone { op: 1, result: Ok(()) })));
    assert!(events.iter().any(|e| matches!(e, ClientEvent::ReadDone { op: 2, result: Err(OpFailure::Disconnected) })));
    assert!(pair.server.seen.iter().any(|c| matches!(c, Command::WriteRequest { .. })));
}

#[test]
fn events_off_holds_updates_and_events_on_delivers_the_newest() {
    let mut pair = connected(ScriptedServer::new());
    pair.client.subscribe(1, 11, DbrType::Double, 1, 1, 11);
    pair.drive();
    pair.server.post(1.0);
    pair.server.post(2.0);
    pair.drive();
    let updates = |pair: &mut StreamPair<ClientCircuit<Tags>, ScriptedServer>| -> Vec<f64> {
        pair.client_events
            .drain(..)
            .filter_map(|e| match e {
                ClientEvent::Update { sub: 11, response } => response.as_f64s().map(|v| v[0]),
                _ => None,
            })
            .collect()
    };
    assert_eq!(updates(&mut pair), vec![0.0, 1.0, 2.0]);

    pair.client.set_events(false);
    pair.drive();
    for value in 3..10 {
        pair.server.post(f64::from(value));
    }
    pair.drive();
    assert!(updates(&mut pair).is_empty(), "held while off");

    pair.client.set_events(true);
    pair.drive();
    assert_eq!(updates(&mut pair), vec![9.0], "the newest value arrives once on");

    pair.client.unsubscribe(11);
    pair.drive();
    pair.server.subscriptions.clear();
    assert!(pair.server.seen.iter().any(|c| matches!(c, Command::EventCancelRequest { subscription_id: 11, .. })));
    assert!(!pair.client.has_subscription(11));
}

#[test]
fn a_server_that_stops_reading_gets_refusals_not_client_memory() {
    let config = ClientCircuitConfig { max_unsent: 64 * 1024, ..config() };
    let mut pair = pair_with(ScriptedServer::new(), config);
    pair.client.create_channel(1, "PV:1", 1);
    pair.drive();
    pair.server_reads = false;
    pair.window = 16 * 1024;
    let deadline = pair.now() + Duration::from_secs(5);
    for op in 0..20_000 {
        pair.client.read(1, DbrType::Double, 1, true, deadline, op);
    }
    pair.drive();
    let refused = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::ReadDone { result: Err(OpFailure::Refused(_)), .. }))
        .count();
    assert!(refused > 10_000, "most reads refused once 64 KiB wait unsent: {refused}");
    assert!(pair.client.unsent() <= 64 * 1024 + 64, "unsent bytes stay bounded: {}", pair.client.unsent());
    // The server reads again: what was accepted is answered, nothing is lost.
    pair.server_reads = true;
    pair.drive();
    let answered =
        pair.client_events.iter().filter(|e| matches!(e, ClientEvent::ReadDone { result: Ok(_), .. })).count();
    assert_eq!(answered + refused, 20_000);
}

#[test]
fn garbage_from_the_server_closes_the_circuit_and_fails_what_is_in_flight() {
    let mut server = ScriptedServer::new();
    server.answer_reads = false;
    let mut pair = connected(server);
    pair.client.read(1, DbrType::Double, 1, true, pair.now() + Duration::from_secs(1), 3);
    pair.drive();
    pair.inject_to_client(&[0xff; 64]);
    let (side, reason) = pair.closed().expect("closed").clone();
    assert_eq!(side, Side::Client);
    assert!(matches!(reason, CloseReason::Protocol(_)), "{reason}");
    assert!(pair.client_events.iter().any(|e| matches!(e, ClientEvent::ReadDone { op: 3, result: Err(_) })));
    assert!(pair.client_events.iter().any(|e| matches!(e, ClientEvent::ChannelLost { channel: 1 })));
}

#[test]
fn a_channel_the_server_drops_is_lost_and_its_read_still_fails_at_its_deadline() {
    let mut server = ScriptedServer::new();
    server.answer_reads = false;
    let mut pair = connected(server);
    let start = pair.now();
    assert!(pair.client.subscribe(1, 77, DbrType::Double, 1, 1, 9));
    pair.client.read(1, DbrType::Double, 1, true, start + Duration::from_secs(2), 5);
    pair.drive();
    assert!(pair.client.has_subscription(77));
    assert_eq!(pair.client.channel(1), Some(&1));
    pair.client_events.clear();

    pair.server.send(&Command::ServerDisconnResponse { cid: 1 });
    pair.drive();
    let events: Vec<_> = pair.client_events.drain(..).collect();
    assert!(matches!(events[..], [ClientEvent::Heard, ClientEvent::ChannelLost { channel: 1 }]), "{events:?}");
    assert!(!pair.client.has_subscription(77), "the subscription went with the channel");
    assert_eq!(pair.client.channel(1), None);
    assert_eq!(pair.client.ops_in_flight(), 1, "the read waits for its deadline");
    assert_eq!(pair.client.poll_timeout(), Some(start + Duration::from_secs(2)));

    pair.advance(Duration::from_secs(2));
    let events: Vec<_> = pair.client_events.drain(..).collect();
    assert!(matches!(events[..], [ClientEvent::ReadDone { op: 5, result: Err(OpFailure::TimedOut) }]), "{events:?}");
    assert_eq!(pair.client.ops_in_flight(), 0);
}

#[test]
fn a_cleared_channel_reports_nothing_more_and_its_ids_are_free_again() {
    let mut pair = connected(ScriptedServer::new());
    assert!(pair.client.subscribe(1, 77, DbrType::Double, 1, 1, 9));
    pair.drive();
    assert!(pair.client_events.iter().any(|e| matches!(e, ClientEvent::Update { sub: 9, .. })));
    pair.client.clear_channel(1);
    assert!(!pair.client.has_subscription(77));
    assert_eq!(pair.client.channel(1), None);
    pair.client_events.clear();
    // An update the server sends before it sees the clear is not delivered.
    pair.server.post(1.0);
    pair.drive();
    assert!(pair.client_events.iter().all(|e| matches!(e, ClientEvent::Heard)), "{:?}", pair.client_events);
    // The server confirms; the cid can be used again.
    pair.server.send(&Command::ClearChannelResponse { sid: 101, cid: 1 });
    pair.drive();
    pair.client.create_channel(1, "PV:1", 2);
    pair.drive();
    assert!(pair.client_events.iter().any(|e| matches!(e, ClientEvent::ChannelCreated { channel: 2, .. })));
}

// ---- the search engine against the server's search responder ----

fn client_addr() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 40_000))
}

fn server_addr(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), port))
}

const MAX_PERIOD: Duration = Duration::from_secs(60);

fn engine(now: Instant) -> SearchEngine {
    SearchEngine::new(
        now,
        SearchConfig {
            destinations: vec![SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 5064)],
            max_period: MAX_PERIOD,
            repeater_port: None,
        },
    )
}

fn responder(now: Instant, tcp_port: u16, names: &'static [&'static str], beacons_to: Option<u16>) -> SearchResponder {
    let destinations =
        beacons_to.map(|port| vec![SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), port)]).unwrap_or_default();
    SearchResponder::new(now, tcp_port, destinations, Duration::from_secs(15), Box::new(move |n| names.contains(&n)))
}

fn searches_sent(net: &DatagramNet) -> Vec<Instant> {
    net.log.iter().filter(|(_, from, _, _)| *from == client_addr()).map(|(at, ..)| *at).collect()
}

#[test]
fn search_backoff_doubles_from_32_ms_to_the_cap_and_never_stops() {
    let mut net = DatagramNet::new();
    let start = net.now();
    net.add(client_addr(), engine(start));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 1, "NOBODY:HAS:IT".into(), 0);
    net.advance(Duration::from_secs(3600));
    let sent = searches_sent(&net);
    assert_eq!(sent[0], start, "the first search goes out at once");
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
    for (attempt, gap) in gaps.iter().enumerate().take(10) {
        assert_eq!(*gap, search_delay(attempt as u32 + 1, MAX_PERIOD), "gap {attempt}");
    }
    assert_eq!(*gaps.last().unwrap(), MAX_PERIOD, "capped at EPICS_CA_MAX_SEARCH_PERIOD");
    assert!(sent.len() > 55 && sent.len() < 75, "about one a minute once capped: {}", sent.len());
    assert_eq!(net.endpoint::<SearchEngine>(client_addr()).unanswered(), 1, "still searching");
}

#[test]
fn a_found_name_is_searched_no_more() {
    let mut net = DatagramNet::new();
    let start = net.now();
    net.add(client_addr(), engine(start));
    net.add(server_addr(5064), responder(start, 5099, &["PV:A"], None));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 7, "PV:A".into(), 0);
    net.advance(Duration::from_millis(1));
    let events = net.take_events::<SearchEngine>(client_addr());
    let found = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 5099);
    assert!(events.contains(&SearchEvent::Found { cid: 7, server: found, version: Some(13) }), "{events:?}");
    net.advance(Duration::from_secs(600));
    assert_eq!(searches_sent(&net).len(), 1, "one search was enough");
    assert_eq!(net.next_timeout(), None, "nothing armed: an idle client wakes for nothing");
}

#[test]
fn a_new_server_s_beacon_makes_unanswered_names_search_at_once() {
    let mut net = DatagramNet::new();
    let start = net.now();
    net.add(client_addr(), engine(start));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 3, "PV:LATE".into(), 0);
    net.advance(Duration::from_secs(120));
    let next = net.endpoint::<SearchEngine>(client_addr()).next_search(3).unwrap();
    let last = *searches_sent(&net).last().unwrap();
    assert!(next - last >= Duration::from_secs(30), "deep in the backoff: {:?}", next - last);
    // Come up where the next scheduled search is far away.
    net.advance(next - net.now() + Duration::from_millis(1));
    let next = net.endpoint::<SearchEngine>(client_addr()).next_search(3).unwrap();
    assert!(next - net.now() > Duration::from_secs(30));

    // The server comes up: its first beacon (20 ms into its ramp) reaches the client.
    let up = net.now();
    net.add(server_addr(5064), responder(up, 5100, &["PV:LATE"], Some(40_000)));
    net.advance(Duration::from_millis(25));
    let events = net.take_events::<SearchEngine>(client_addr());
    assert!(events.iter().any(|e| matches!(e, SearchEvent::Found { cid: 3, .. })), "{events:?}");
    let found_at = *searches_sent(&net).last().unwrap();
    assert_eq!(found_at, up + Duration::from_millis(20), "searched the moment the beacon arrived");
}

#[test]
fn regular_beacons_are_no_anomaly_and_a_restart_is() {
    let mut net = DatagramNet::new();
    let start = net.now();
    net.add(client_addr(), engine(start));
    net.add(server_addr(5064), responder(start, 5101, &[], Some(40_000)));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 4, "PV:ELSEWHERE".into(), 0);
    net.advance(Duration::from_secs(600));
    let before = searches_sent(&net).len();
    // A steady server's beacons change nothing: the backoff goes on.
    net.advance(Duration::from_secs(120));
    assert!(searches_sent(&net).len() - before <= 3, "no extra searches for steady beacons");

    // The server restarts: beacon ids start again and the ramp is fast.
    net.remove(server_addr(5064));
    let restart = net.now();
    net.add(server_addr(5064), responder(restart, 5101, &[], Some(40_000)));
    let before = searches_sent(&net).len();
    net.advance(Duration::from_millis(21));
    assert_eq!(searches_sent(&net).len(), before + 1, "the restart's first beacon triggers a search");
    assert_eq!(*searches_sent(&net).last().unwrap(), restart + Duration::from_millis(20));
}

#[test]
fn a_name_whose_connections_keep_failing_waits_its_backoff() {
    let mut net = DatagramNet::new();
    let start = net.now();
    net.add(client_addr(), engine(start));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 5, "PV:FLAKY".into(), 3);
    let first = net.endpoint::<SearchEngine>(client_addr()).next_search(5).unwrap();
    assert_eq!(first, start + search_delay(6, MAX_PERIOD), "three quick failures: wait about 2 s");
    net.advance(first - start - Duration::from_millis(1));
    assert!(searches_sent(&net).is_empty());
    net.advance(Duration::from_millis(1));
    assert_eq!(searches_sent(&net), vec![first]);
}

#[test]
fn the_engine_registers_with_the_repeater_and_asks_for_one_when_none_answers() {
    let mut net = DatagramNet::new();
    let start = net.now();
    let config = SearchConfig { destinations: vec![], max_period: MAX_PERIOD, repeater_port: Some(5065) };
    net.add(client_addr(), SearchEngine::new(start, config));
    net.advance(Duration::from_millis(1100));
    let events = net.take_events::<SearchEngine>(client_addr());
    assert_eq!(events.iter().filter(|e| **e == SearchEvent::StartRepeater).count(), 1, "{events:?}");
    let registrations = net.log.iter().filter(|(_, _, to, _)| to.port() == 5065).count();
    assert_eq!(registrations, 3, "tries at 0, 0.5 and 1.0 s");
    assert_eq!(net.lost, 3, "nobody listened");
}

/// A hand-made beacon from `server_port`'s server with counter `id`.
fn beacon(id: u32, server_port: u16) -> Vec<u8> {
    let command = Command::Beacon { version: 13, server_port, beacon_id: id, address: Some(Ipv4Addr::LOCALHOST) };
    command.to_bytes().unwrap().to_vec()
}

#[test]
fn duplicated_and_lost_beacons_are_no_anomaly_but_a_faster_ramp_is() {
    let mut net = DatagramNet::new();
    let start = net.now();
    let server = server_addr(5064);
    net.add(client_addr(), engine(start));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 1, "PV:X".into(), 0);
    // A steady server, 15 s apart, while the name goes deep into its backoff.
    for id in 0..20u32 {
        net.advance(Duration::from_secs(15));
        net.inject(server, client_addr(), &beacon(id, 5070));
    }
    let searches = searches_sent(&net).len();
    // The same beacon again (a redundant route), then one lost (the counter jumps by 2).
    net.inject(server, client_addr(), &beacon(19, 5070));
    net.advance(Duration::from_secs(15));
    net.inject(server, client_addr(), &beacon(21, 5070));
    assert!(searches_sent(&net).len() <= searches + 1, "no burst for a duplicate or a lost beacon");
    let searches = searches_sent(&net).len();
    // The server restarts: its ramp comes much faster than the average period.
    net.advance(Duration::from_millis(100));
    net.inject(server, client_addr(), &beacon(0, 5070));
    net.advance(Duration::from_millis(20));
    net.inject(server, client_addr(), &beacon(1, 5070));
    assert_eq!(searches_sent(&net).len(), searches, "one period of the ramp is not known yet");
    net.advance(Duration::from_millis(40));
    net.inject(server, client_addr(), &beacon(2, 5070));
    let now = net.now();
    assert_eq!(searches_sent(&net).len(), searches + 1, "searched at once");
    assert_eq!(*searches_sent(&net).last().unwrap(), now);
    let next = net.endpoint::<SearchEngine>(client_addr()).next_search(1).unwrap();
    assert_eq!(next, now + search_delay(7, MAX_PERIOD), "the backoff resumes from 2 s, not 32 ms");
}

#[test]
fn a_server_already_running_at_start_is_no_anomaly() {
    let mut net = DatagramNet::new();
    let start = net.now();
    let server = server_addr(5064);
    net.add(client_addr(), engine(start));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 1, "PV:Y".into(), 0);
    net.advance(Duration::from_millis(500));
    net.inject(server, client_addr(), &beacon(40, 5071));
    let before = searches_sent(&net).len();
    let next = net.endpoint::<SearchEngine>(client_addr()).next_search(1).unwrap();
    net.advance(Duration::from_secs(15));
    net.inject(server, client_addr(), &beacon(41, 5071));
    let scheduled = searches_sent(&net).iter().filter(|at| **at >= next).count();
    assert_eq!(searches_sent(&net).len() - before, scheduled, "only the scheduled searches, no burst");
    assert!(scheduled <= 5, "the backoff's own searches in 15 s: {scheduled}");
}

#[test]
fn a_zero_search_period_cap_cannot_spin() {
    let start = Instant::now();
    let config = SearchConfig {
        destinations: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5064)],
        max_period: Duration::ZERO,
        repeater_port: None,
    };
    let mut net = DatagramNet::new();
    net.add(client_addr(), SearchEngine::new(start, config));
    net.endpoint::<SearchEngine>(client_addr()).add(start, 1, "PV:Z".into(), 0);
    net.advance(Duration::from_secs(1));
    let sent = searches_sent(&net).len();
    assert!((20..=40).contains(&sent), "one search per 32 ms at most: {sent}");
}

#[test]
fn the_beacon_ramp_starts_at_once_doubles_and_never_doubles_up_after_a_stall() {
    let start = Instant::now();
    let mut responder = responder(start, 5102, &[], Some(40_000));
    let mut sent = Vec::new();
    let mut now = start;
    while now < start + Duration::from_secs(40) {
        let at = responder.poll_timeout().unwrap();
        now = at;
        responder.handle_timeout(now);
        while responder.poll_transmit(now).is_some() {
            sent.push(now - start);
        }
    }
    let ms: Vec<u128> = sent.iter().take(6).map(Duration::as_millis).collect();
    assert_eq!(ms, vec![0, 20, 60, 140, 300, 620], "rsrv's ramp");
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(*gaps.last().unwrap(), Duration::from_secs(15), "then the beacon period");

    // A stall: the timer fires 10 s late; the next beacon keeps one interval's gap.
    let due = responder.poll_timeout().unwrap();
    let late = due + Duration::from_secs(10);
    responder.handle_timeout(late);
    assert!(responder.poll_transmit(late).is_some());
    assert_eq!(responder.poll_timeout(), Some(late + Duration::from_secs(15)));
}
