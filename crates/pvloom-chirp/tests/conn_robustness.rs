//! The connection on virtual time, for what the robustness acceptance adds to
//! `tests/conn.rs`: what an asynchronous sender may have lost when the connection
//! dies, how a close sorts messages into re-queued and failed, and input that lies
//! about its lengths or stops half-way.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use pvloom_chirp::wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, WireHeader, kind};
use pvloom_chirp::{Config, ConnEvent, Connection, Identity, Outgoing, Received, SendFailure};
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

fn received(events: &mut VecDeque<ConnEvent>) -> Vec<Received> {
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

fn failures(events: &VecDeque<ConnEvent>) -> Vec<(u64, SendFailure)> {
    events
        .iter()
        .filter_map(
            |e| if let ConnEvent::Failed { token, error, .. } = e { Some((*token, error.clone())) } else { None },
        )
        .collect()
}

fn sent(events: &VecDeque<ConnEvent>) -> usize {
    events.iter().filter(|e| matches!(e, ConnEvent::Sent { .. })).count()
}

#[test]
fn async_hand_offs_stay_unconfirmed_until_the_peer_answers_one() {
    let mut pair = pair(&asynchronous());
    let now = pair.now();
    let messages: Vec<_> = (0..5).map(|i| Outgoing::new(vec![i; 10])).collect();
    for (token, message) in messages.iter().enumerate() {
        pair.client.send(now, token as u64, message.clone()).unwrap();
    }
    pair.drive();
    assert_eq!(sent(&pair.client_events), 5, "completed at the hand-off");
    assert_eq!(pair.client.unconfirmed(), 5, "none of them known to be read");
    let got = received(&mut pair.server_events);
    // A message of the server's own proves nothing about what it read (a libchirp peer
    // with every slot held writes without reading).
    pair.server.send(now, 100, Outgoing::new(&b"unrelated"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.client.unconfirmed(), 5);
    // The answer to the third: it and the two before it were read.
    pair.server.send(now, 101, Outgoing::reply(&got[2], &b"answer"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.client.unconfirmed(), 2);
    // An answer to one already confirmed changes nothing.
    pair.server.send(now, 102, Outgoing::reply(&got[0], &b"late"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.client.unconfirmed(), 2);
    pair.server.send(now, 103, Outgoing::reply(&got[4], &b"last"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.client.unconfirmed(), 0);
}

#[test]
fn a_long_unanswered_stream_stays_counted_beyond_the_identity_window() {
    let mut pair = pair(&Config { max_slots: 32, ..asynchronous() });
    let now = pair.now();
    let total = 3000u64;
    let mut last = None;
    for token in 0..total {
        pair.client.send(now, token, Outgoing::new(&b"x"[..])).unwrap();
        pair.drive();
        for msg in received(&mut pair.server_events) {
            pair.server.release(now, msg.slot).unwrap();
            last = Some(msg);
        }
    }
    assert_eq!(pair.client.unconfirmed(), total, "counted, though only the latest are remembered by identity");
    pair.server.send(now, 0, Outgoing::reply(&last.unwrap(), &b"got all"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.client.unconfirmed(), 0, "an answer to the latest confirms the forgotten ones too");
}

#[test]
fn sync_sends_are_never_unconfirmed() {
    let mut pair = pair(&Config::default());
    let now = pair.now();
    pair.client.send(now, 1, Outgoing::new(&b"one"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.client.unconfirmed(), 0, "awaiting its ACK, it is not complete: it fails if lost");
    let got = received(&mut pair.server_events);
    pair.server.release(now, got[0].slot).unwrap();
    pair.drive();
    assert_eq!(sent(&pair.client_events), 1);
    assert_eq!(pair.client.unconfirmed(), 0);
}

#[test]
fn an_idle_collection_clears_the_count() {
    let config = asynchronous();
    let now = Instant::now();
    let quiet = Config { reuse_time: Duration::from_secs(3600), ..config.clone() };
    let mut pair = StreamPair::new(conn(now, 4001, &config), conn(now, 4002, &quiet));
    let t = pair.now();
    pair.client.send(t, 1, Outgoing::new(&b"fire and forget"[..])).unwrap();
    pair.drive();
    let got = received(&mut pair.server_events);
    pair.server.release(t, got[0].slot).unwrap();
    assert_eq!(pair.client.unconfirmed(), 1);
    pair.advance(Duration::from_secs(61));
    assert!(matches!(pair.closed(), Some((Side::Client, CloseReason::Local(_)))), "{:?}", pair.closed());
    assert_eq!(pair.client.unconfirmed(), 0, "quiet for the reuse time: not reported as lost");
}

#[test]
fn a_close_requeues_what_was_not_begun_and_fails_what_was_half_written() {
    let mut pair = pair(&asynchronous());
    pair.server_reads = false;
    pair.window = 500; // the first message (1000 bytes) goes out in part
    let now = pair.now();
    for token in 1..=3 {
        pair.client.send(now, token, Outgoing::new(vec![0u8; 1000])).unwrap();
    }
    pair.drive();
    assert!(pair.client.write_deadline().is_some(), "the first message is being written");
    pair.client.handle_closed(now, &CloseReason::PeerClosed);
    let events: VecDeque<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    let failed = failures(&events);
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(matches!(failed[0], (1, SendFailure::ConnectionLost(_))), "half written: it failed {failed:?}");
    assert!(matches!(failed[1], (2, SendFailure::NotSent(_))), "not begun: may be sent again {failed:?}");
    assert!(matches!(failed[2], (3, SendFailure::NotSent(_))), "{failed:?}");
    assert_eq!(pair.client.unconfirmed(), 0, "none completed, none counted as possibly lost");
}

#[test]
fn a_truncated_handshake_is_closed_at_the_connect_timeout() {
    let now = Instant::now();
    let mut conn = conn(now, 4001, &Config::default());
    let hello = Handshake { port: 4002, identity: Identity::random() }.encode();
    conn.handle_input(now, &hello[..HANDSHAKE_LEN - 1]);
    assert!(conn.remote().is_none());
    assert!(conn.poll_event().is_none());
    assert_eq!(conn.buffered_input(), HANDSHAKE_LEN - 1);
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(10), "the connect timeout, 2 x TIMEOUT");
    conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(conn.poll_close().is_none());
    conn.handle_timeout(deadline);
    assert!(matches!(conn.poll_close(), Some(CloseReason::TimedOut(_))));
}

fn header(header_len: u16, data_len: u32, kind: u8) -> [u8; HEADER_LEN] {
    WireHeader { identity: Identity::random(), serial: 1, data_len, header_len, kind }.encode()
}

#[test]
fn a_message_is_cut_by_its_announced_lengths_and_the_surplus_is_the_next_header() {
    let mut pair = pair(&asynchronous());
    // Announces 3 header bytes and 2 data bytes, then sends 5 more than that: the
    // message is what was announced; the surplus starts a header, and 27 bytes of it
    // that announce an ACK with data close the connection.
    let mut bytes = header(3, 2, 0).to_vec();
    bytes.extend_from_slice(b"HHHdd");
    let surplus = header(0, 5, kind::ACK);
    bytes.extend_from_slice(&surplus);
    pair.inject_to_server(&bytes);
    let got = received(&mut pair.server_events);
    assert_eq!(got.len(), 1);
    assert_eq!((&got[0].header[..], &got[0].data[..]), (&b"HHH"[..], &b"dd"[..]));
    assert!(matches!(pair.closed(), Some((Side::Server, CloseReason::Protocol(_)))), "{:?}", pair.closed());
}

#[test]
fn a_message_cut_short_by_the_peer_never_reaches_the_application() {
    let mut pair = pair(&asynchronous());
    let mut bytes = header(10, 1000, 0).to_vec();
    bytes.extend_from_slice(&[1u8; 500]);
    pair.inject_to_server(&bytes);
    assert!(received(&mut pair.server_events).is_empty(), "half a message is no message");
    assert_eq!(pair.server.buffered_input(), 500, "only what arrived is kept");
    let now = pair.now();
    pair.server.handle_closed(now, &CloseReason::PeerClosed);
    assert!(pair.server.poll_event().is_none());
    assert_eq!(pair.server.slots_held(), 0);
}
