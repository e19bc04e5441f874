//! `ClientConn::close` with published messages still waiting for the peer's credit, on
//! virtual time against a `ServerConn`: the close waits for them, up to `op_timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pvloom_core::CloseReason;
use pvloom_core::harness::{Side, StreamPair};
use pvloom_ldms::bus::{BusConfig, BusMsg, MsgBus, MsgClient, Routed};
use pvloom_ldms::client::{ClientConn, ClientConnConfig};
use pvloom_ldms::msg::MsgType;
use pvloom_ldms::request::Timespec;
use pvloom_ldms::server::{ServerConfig, ServerConn, SetRegistry};

/// msg_len of each message: "close\0" and 57 bytes: 63.
const MSG_LEN: usize = 63;

struct Setup {
    pair: StreamPair<ClientConn, ServerConn>,
    /// Holds what reaches the daemon's bus, and so its credit, until taken.
    held: MsgClient,
}

/// A client connected to a daemon that grants it 200 bytes of credit (three messages).
fn setup() -> Setup {
    let bus = MsgBus::new(BusConfig::default());
    let held = MsgClient::queue(&bus, "close", false, 100).unwrap();
    let mut config = ServerConfig { bus: Some(bus), ..ServerConfig::default() };
    config.session.conn_msg.recv_quota = 200;
    let now = Instant::now();
    let server = ServerConn::new(SetRegistry::new(), config, now);
    let client_bus = MsgBus::new(BusConfig::default());
    let client = ClientConn::new(now, ClientConnConfig { bus: Some(client_bus), ..ClientConnConfig::default() });
    let mut pair = StreamPair::new(client, server);
    pair.drive();
    assert!(pair.client.is_connected());
    Setup { pair, held }
}

fn publish(s: &mut Setup, n: u64) {
    for gn in 0..n {
        let msg = BusMsg::local(
            Bytes::from_static(b"close"),
            MsgType::String,
            Bytes::from(vec![b'c'; MSG_LEN - 6]),
            (0, 0, 0o444),
            gn,
            Timespec::default(),
        );
        s.pair.client.link().post(Routed::local(Arc::new(msg)));
    }
    s.pair.drive();
}

fn arrived(held: &MsgClient) -> usize {
    std::iter::from_fn(|| held.try_get_data()).count()
}

#[test]
fn a_close_waits_until_the_peers_credit_let_every_published_message_out() {
    let mut s = setup();
    publish(&mut s, 5);
    s.pair.client.close("done");
    s.pair.drive();
    assert!(s.pair.closed().is_none(), "closed with two messages waiting for credit");
    assert!(!s.pair.client.is_connected(), "a closing connection takes no new work");
    // Taking the three returns their credit; the last two go out, then the close.
    assert_eq!(arrived(&s.held), 3);
    s.pair.drive();
    assert_eq!(arrived(&s.held), 2);
    s.pair.drive();
    assert!(matches!(s.pair.closed(), Some((Side::Client, CloseReason::Local(_)))), "{:?}", s.pair.closed());
}

#[test]
fn a_close_without_anything_waiting_is_at_once_and_one_left_without_credit_ends_after_op_timeout() {
    let mut s = setup();
    s.pair.client.close("done");
    s.pair.drive();
    assert!(s.pair.closed().is_some(), "nothing waited: closed at once");

    let mut s = setup();
    publish(&mut s, 4);
    s.pair.client.close("done");
    s.pair.drive();
    let timeout = ClientConnConfig::default().op_timeout;
    s.pair.advance(timeout - Duration::from_millis(100));
    assert!(s.pair.closed().is_none(), "not before op_timeout");
    s.pair.advance(Duration::from_millis(200));
    assert!(matches!(s.pair.closed(), Some((Side::Client, CloseReason::Local(_)))), "{:?}", s.pair.closed());
    assert_eq!(arrived(&s.held), 3, "the one without credit was dropped");
}

#[test]
fn a_close_after_publishing_to_a_peer_without_the_message_service_does_not_wait_for_credit() {
    // As ldmsd without msg_enable: the message is refused (ENOTSUP) with no credit, and
    // none comes later.
    let now = Instant::now();
    let server = ServerConn::new(SetRegistry::new(), ServerConfig::default(), now);
    let client_bus = MsgBus::new(BusConfig::default());
    let client = ClientConn::new(now, ClientConnConfig { bus: Some(client_bus), ..ClientConnConfig::default() });
    let mut pair = StreamPair::new(client, server);
    pair.drive();
    let msg = BusMsg::local(
        Bytes::from_static(b"close"),
        MsgType::String,
        Bytes::from_static(b"x"),
        (0, 0, 0o444),
        0,
        Timespec::default(),
    );
    pair.client.link().post(Routed::local(Arc::new(msg)));
    pair.drive();
    pair.client.close("done");
    pair.drive();
    assert!(matches!(pair.closed(), Some((Side::Client, CloseReason::Local(_)))), "{:?}", pair.closed());
}
