//! The connection endpoint on virtual time (`pvloom_core::harness`): handshake, sync
//! and async sending, slots, every timer, protocol errors and back-pressure.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use pvloom_chirp::wire::{HEADER_LEN, Handshake, WireHeader, kind};
use pvloom_chirp::{Config, ConnEvent, Connection, Identity, Outgoing, ReleaseError, SendError, SendFailure};
use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};
use pvloom_core::harness::{Side, StreamPair};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn conn(now: Instant, port: u16, config: &Config) -> Connection {
    let local = Handshake { port, identity: Identity::random() };
    Connection::with_rng(now, local, LOCALHOST, config.limits().unwrap(), fastrand::Rng::with_seed(u64::from(port)))
}

fn pair(config: &Config) -> StreamPair<Connection, Connection> {
    let now = Instant::now();
    StreamPair::new(conn(now, 4001, config), conn(now, 4002, config))
}

fn asynchronous() -> Config {
    Config { synchronous: false, ..Config::default() }
}

fn received(events: &mut std::collections::VecDeque<ConnEvent>) -> Vec<pvloom_chirp::Received> {
    let mut out = Vec::new();
    events.retain(|e| match e {
        ConnEvent::Received(msg) => {
            out.push(msg.clone());
            false
        }
        _ => true,
    });
    out
}

fn sent_tokens(events: &std::collections::VecDeque<ConnEvent>) -> Vec<u64> {
    events.iter().filter_map(|e| if let ConnEvent::Sent { token, .. } = e { Some(*token) } else { None }).collect()
}

fn failures(events: &std::collections::VecDeque<ConnEvent>) -> Vec<(u64, SendFailure)> {
    events
        .iter()
        .filter_map(
            |e| if let ConnEvent::Failed { token, error, .. } = e { Some((*token, error.clone())) } else { None },
        )
        .collect()
}

fn send(pair: &mut StreamPair<Connection, Connection>, token: u64, data: &'static [u8]) {
    let now = pair.now();
    pair.client.send(now, token, Outgoing::new(data)).unwrap();
    pair.drive();
}

#[test]
fn both_sides_learn_each_others_port_and_identity() {
    let pair = pair(&Config::default());
    assert_eq!(pair.client.remote().unwrap().port, 4002);
    assert_eq!(pair.server.remote().unwrap().port, 4001);
    assert!(matches!(pair.client_events.front(), Some(ConnEvent::Handshake(h)) if h.port == 4002));
    assert_eq!(pair.bytes_sent, (18, 18), "each side sent its 18-byte handshake and nothing else");
}

#[test]
fn asynchronous_messages_complete_at_hand_off_and_pipeline() {
    let mut pair = pair(&asynchronous());
    for token in 1..=3 {
        send(&mut pair, token, b"hello");
    }
    assert_eq!(sent_tokens(&pair.client_events), [1, 2, 3], "completed without any release");
    let got = received(&mut pair.server_events);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| &m.data[..] == b"hello" && !m.wants_ack && m.from.port() == 4001));
    assert_eq!(pair.bytes_sent.0, 18 + 3 * (HEADER_LEN as u64 + 5));
}

#[test]
fn synchronous_send_completes_when_the_remote_releases() {
    let mut pair = pair(&Config::default());
    send(&mut pair, 1, b"one");
    send(&mut pair, 2, b"two");
    let got = received(&mut pair.server_events);
    assert_eq!(got.len(), 1, "one message in flight");
    assert!(got[0].wants_ack);
    assert!(sent_tokens(&pair.client_events).is_empty(), "not complete before the release");
    let now = pair.now();
    let released = pair.server.release(now, got[0].slot).unwrap();
    assert!(released.acked);
    assert_eq!(released.identity, got[0].identity);
    pair.drive();
    assert_eq!(sent_tokens(&pair.client_events), [1]);
    let got = received(&mut pair.server_events);
    assert_eq!(&got[0].data[..], b"two", "the next goes once the first was acknowledged");
    assert_eq!(pair.server.release(now, got[0].slot).map(|r| r.acked), Ok(true));
    pair.drive();
    assert_eq!(sent_tokens(&pair.client_events), [1, 2]);
}

#[test]
fn releasing_twice_is_refused() {
    let mut pair = pair(&asynchronous());
    send(&mut pair, 1, b"x");
    let got = received(&mut pair.server_events);
    let now = pair.now();
    assert!(pair.server.release(now, got[0].slot).is_ok());
    assert_eq!(pair.server.release(now, got[0].slot), Err(ReleaseError::NotHeld { index: 0 }));
}

#[test]
fn a_reply_keeps_the_request_identity() {
    let mut pair = pair(&asynchronous());
    send(&mut pair, 1, b"ping");
    let request = received(&mut pair.server_events).remove(0);
    let now = pair.now();
    pair.server.send(now, 9, Outgoing::reply(&request, &b"pong"[..])).unwrap();
    pair.server.release(now, request.slot).unwrap();
    pair.drive();
    let answer = received(&mut pair.client_events).remove(0);
    assert_eq!(answer.identity, request.identity);
    assert_eq!(&answer.data[..], b"pong");
    assert_ne!(answer.remote_identity, request.remote_identity);
}

#[test]
fn exhausted_slots_stop_reading_until_one_is_released() {
    let config = Config { synchronous: false, max_slots: 2, ..Config::default() };
    let mut pair = pair(&config);
    for token in 1..=5 {
        send(&mut pair, token, b"payload");
    }
    let first = received(&mut pair.server_events);
    assert_eq!(first.len(), 2, "two slots");
    assert!(!pair.server.wants_input(), "no free slot: the reader stops");
    assert!(pair.server.buffered_input() <= 5 * (HEADER_LEN + 7), "held input bounded by what was sent");
    let now = pair.now();
    pair.server.release(now, first[0].slot).unwrap();
    pair.drive();
    assert_eq!(received(&mut pair.server_events).len(), 1, "one slot freed, one more message");
    assert!(!pair.server.wants_input());
    pair.server.release(now, first[1].slot).unwrap();
    pair.drive();
    let rest = received(&mut pair.server_events);
    assert_eq!(rest.len(), 1);
    assert_eq!(pair.server.slots_held(), 2);
}

#[test]
fn acks_jump_the_queue() {
    // The server has messages queued for the client when it releases one of the
    // client's: the ACK goes before them.
    let mut pair = pair(&Config::default());
    send(&mut pair, 1, b"request");
    let request = received(&mut pair.server_events).remove(0);
    let now = pair.now();
    pair.server_reads = false;
    pair.window = 0; // the server may write nothing for now
    pair.server.send(now, 10, Outgoing::new(&b"a"[..])).unwrap();
    pair.server.release(now, request.slot).unwrap();
    let mut out = BytesMut::new();
    pair.server.poll_transmit(now, 1 << 16, &mut out);
    let first = WireHeader::decode(&out).unwrap();
    assert_eq!(first.kind, kind::ACK, "the ACK, though the message was queued first");
    assert_eq!(first.identity, request.identity);
    assert_eq!((first.header_len, first.data_len), (0, 0));
    let second = WireHeader::decode(&out[HEADER_LEN..]).unwrap();
    assert_eq!(second.kind, kind::REQ_ACK);
    assert_eq!(second.serial, first.serial.wrapping_add(1), "one serial counter for every frame");
}

#[test]
fn write_timeout_closes_and_fails_the_message() {
    let mut pair = pair(&asynchronous());
    pair.server_reads = false;
    pair.window = 40; // less than one message: the write cannot finish
    let start = pair.now();
    pair.client.send(start, 1, Outgoing::new(vec![0u8; 1000])).unwrap();
    pair.drive();
    assert_eq!(pair.client.write_deadline(), Some(start + Duration::from_secs(5)));
    pair.advance(Duration::from_millis(4999));
    assert!(pair.closed().is_none());
    pair.advance(Duration::from_millis(2));
    let (side, reason) = pair.closed().unwrap().clone();
    assert_eq!(side, Side::Client);
    assert!(matches!(reason, CloseReason::TimedOut(_)), "{reason}");
    assert_eq!(failures(&pair.client_events), [(1, SendFailure::TimedOut(Duration::from_secs(5)))]);
}

#[test]
fn a_remote_that_never_releases_times_out_in_synchronous_mode() {
    let mut pair = pair(&Config::default());
    let start = pair.now();
    send(&mut pair, 1, b"held");
    send(&mut pair, 2, b"queued");
    assert_eq!(pair.client.ack_deadline(), Some(start + Duration::from_secs(5)));
    pair.advance(Duration::from_millis(4999));
    assert!(pair.closed().is_none());
    pair.advance(Duration::from_millis(2));
    assert!(matches!(pair.closed(), Some((Side::Client, CloseReason::TimedOut(_)))));
    let failed = failures(&pair.client_events);
    assert_eq!(failed[0], (1, SendFailure::TimedOut(Duration::from_secs(5))));
    assert!(matches!(failed[1], (2, SendFailure::NotSent(_))), "queued ones may be sent again: {failed:?}");
}

#[test]
fn a_probe_precedes_a_send_after_three_quarters_of_the_reuse_time() {
    let config = asynchronous();
    let limits = config.limits().unwrap();
    assert_eq!(limits.probe_after, Duration::from_millis(22_500));
    for (idle, probe) in [(Duration::from_millis(22_500), false), (Duration::from_millis(22_501), true)] {
        let mut pair = pair(&config);
        // Slots held keep the GC away; nothing else happens.
        pair.advance(idle);
        pair.server_reads = false;
        let now = pair.now();
        pair.client.send(now, 1, Outgoing::new(&b"m"[..])).unwrap();
        let mut out = BytesMut::new();
        pair.client.poll_transmit(now, 1 << 16, &mut out);
        let first = WireHeader::decode(&out).unwrap();
        if probe {
            assert_eq!(first.kind, kind::NOOP, "idle {idle:?}: NOOP first");
            assert_eq!(first.identity, Identity::ZERO);
            assert_eq!(out.len(), 2 * HEADER_LEN + 1);
        } else {
            assert_eq!(first.kind, 0, "idle {idle:?}: no probe");
            assert_eq!(out.len(), HEADER_LEN + 1);
        }
    }
}

#[test]
fn the_gc_closes_idle_connections_between_reuse_time_and_one_and_a_half_times_it() {
    let config = Config { reuse_time: Duration::from_secs(30), ..asynchronous() };
    for seed in 0..20u64 {
        let now = Instant::now();
        let local = Handshake { port: 4001, identity: Identity::random() };
        let limits = config.limits().unwrap();
        let client = Connection::with_rng(now, local, LOCALHOST, limits, fastrand::Rng::with_seed(seed));
        let mut pair = StreamPair::new(
            client,
            conn(now, 4002, &Config { reuse_time: Duration::from_secs(3600), ..config.clone() }),
        );
        let start = pair.now();
        while pair.closed().is_none() {
            pair.advance_to_next_timeout().expect("a GC deadline is always armed");
        }
        let when = pair.now() - start;
        assert!(matches!(pair.closed(), Some((Side::Client, CloseReason::Local(_)))));
        // Idle > 30 s is noticed at the first GC tick after it: ticks come every
        // 15–30 s, so by 60 s at the latest.
        assert!(
            when > Duration::from_secs(30) && when <= Duration::from_secs(60),
            "seed {seed}: closed after {when:?}"
        );
    }
}

#[test]
fn the_gc_spares_a_connection_with_a_held_message() {
    let mut pair = pair(&asynchronous());
    send(&mut pair, 1, b"kept");
    let held = received(&mut pair.server_events).remove(0);
    pair.advance(Duration::from_secs(120));
    // The client (nothing outstanding) was collected; the server held a slot and
    // did not close first.
    assert!(matches!(pair.closed(), Some((Side::Client, CloseReason::Local(_)))), "{:?}", pair.closed());
    let now = pair.now();
    assert!(pair.server.release(now, held.slot).is_ok(), "a release after the close still frees the slot");
}

#[test]
fn reuse_time_is_at_least_three_timeouts() {
    let config = Config { reuse_time: Duration::from_secs(10), timeout: Duration::from_secs(5), ..Config::default() };
    assert_eq!(config.limits().unwrap().reuse_time, Duration::from_secs(15));
    assert_eq!(config.limits().unwrap().connect_timeout, Duration::from_secs(10));
    let long = Config { timeout: Duration::from_secs(40), reuse_time: Duration::from_secs(200), ..Config::default() };
    assert_eq!(long.limits().unwrap().connect_timeout, Duration::from_secs(60));
}

#[test]
fn slots_follow_the_mode() {
    assert_eq!(Config::default().limits().unwrap().slots, 1);
    assert_eq!(asynchronous().limits().unwrap().slots, 16);
    assert_eq!(Config { max_slots: 32, ..asynchronous() }.limits().unwrap().slots, 32);
    assert!(Config { max_slots: 33, ..asynchronous() }.limits().is_err());
    assert!(Config { max_slots: 2, ..Config::default() }.limits().is_err());
}

#[test]
fn a_peer_that_sends_no_handshake_is_closed_after_the_connect_timeout() {
    let now = Instant::now();
    let mut conn = conn(now, 4001, &Config::default());
    let mut out = BytesMut::new();
    conn.poll_transmit(now, 1024, &mut out);
    assert_eq!(out.len(), 18);
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(10)));
    conn.handle_timeout(now + Duration::from_secs(10));
    assert!(matches!(conn.poll_close(), Some(CloseReason::TimedOut(_))));
}

#[test]
fn nothing_but_the_handshake_is_written_before_the_peers() {
    let now = Instant::now();
    let mut conn = conn(now, 4001, &asynchronous());
    conn.send(now, 1, Outgoing::new(&b"early"[..])).unwrap();
    let mut out = BytesMut::new();
    conn.poll_transmit(now, 1 << 16, &mut out);
    assert_eq!(out.len(), 18);
    conn.handle_input(now, &Handshake { port: 4002, identity: Identity::random() }.encode());
    conn.poll_transmit(now, 1 << 16, &mut out);
    assert_eq!(out.len(), 18 + HEADER_LEN + 5);
}

fn bad_header(kind: u8, header_len: u16, data_len: u32) -> [u8; HEADER_LEN] {
    WireHeader { identity: Identity::random(), serial: 1, data_len, header_len, kind }.encode()
}

#[test]
fn protocol_errors_close_the_connection() {
    let cases: [(&str, [u8; HEADER_LEN]); 6] = [
        ("ACK with data", bad_header(kind::ACK, 0, 1)),
        ("ACK with a header", bad_header(kind::ACK, 1, 0)),
        ("NOOP with data", bad_header(kind::NOOP, 0, 5)),
        ("ACK requesting an ACK", bad_header(kind::ACK | kind::REQ_ACK, 0, 0)),
        ("NOOP requesting an ACK", bad_header(kind::NOOP | kind::REQ_ACK, 0, 0)),
        ("over MAX_MSG_SIZE", bad_header(0, 1, 100 * 1024 * 1024)),
    ];
    for (what, header) in cases {
        let mut pair = pair(&asynchronous());
        pair.inject_to_server(&header);
        assert!(matches!(pair.closed(), Some((Side::Server, CloseReason::Protocol(_)))), "{what}: {:?}", pair.closed());
        assert_eq!(pair.server.buffered_input(), 0, "{what}: nothing kept");
    }
    // Exactly MAX_MSG_SIZE is allowed: the header is accepted and its body awaited,
    // without reserving 100 MiB ahead of the bytes.
    let mut pair = pair(&asynchronous());
    pair.inject_to_server(&bad_header(0, 0, 100 * 1024 * 1024));
    assert!(pair.closed().is_none());
    pair.inject_to_server(&[7u8; 1000]);
    assert_eq!(pair.server.buffered_input(), 1000);
}

#[test]
fn a_stale_ack_is_ignored() {
    let mut pair = pair(&Config::default());
    let stale =
        WireHeader { identity: Identity::random(), serial: 5, data_len: 0, header_len: 0, kind: kind::ACK }.encode();
    send(&mut pair, 1, b"waiting");
    pair.inject_to_client(&stale);
    assert!(pair.closed().is_none());
    assert!(sent_tokens(&pair.client_events).is_empty());
}

#[test]
fn a_full_send_queue_pushes_back() {
    let config = Config { max_queued: 3, ..asynchronous() };
    let now = Instant::now();
    let mut conn = conn(now, 4001, &config);
    for token in 0..3 {
        conn.send(now, token, Outgoing::new(&b"x"[..])).unwrap();
    }
    assert_eq!(conn.send(now, 3, Outgoing::new(&b"x"[..])), Err(SendError::QueueFull { queued: 3, bytes: 3 }));
    let bytes = Config { max_queued_bytes: 10, ..asynchronous() };
    let mut conn2 =
        Connection::new(now, Handshake { port: 1, identity: Identity::ZERO }, LOCALHOST, bytes.limits().unwrap());
    conn2.send(now, 0, Outgoing::new(vec![0u8; 100])).unwrap(); // one always fits
    assert!(matches!(conn2.send(now, 1, Outgoing::new(vec![0u8; 1])), Err(SendError::QueueFull { .. })));
    let big = Outgoing { identity: Identity::ZERO, header: vec![0u8; 70_000].into(), data: Default::default() };
    assert!(matches!(conn.send(now, 9, big), Err(SendError::TooLarge { .. })));
}

#[test]
fn queued_messages_come_back_when_the_connection_closes() {
    let mut pair = pair(&asynchronous());
    pair.server_reads = false;
    pair.window = 0;
    let now = pair.now();
    for token in 1..=3 {
        pair.client.send(now, token, Outgoing::new(&b"later"[..])).unwrap();
    }
    pair.drive();
    pair.inject_to_client(&bad_header(kind::ACK, 0, 1)); // the client closes itself
    let failed = failures(&pair.client_events);
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|(_, e)| matches!(e, SendFailure::NotSent(_))), "{failed:?}");
}
