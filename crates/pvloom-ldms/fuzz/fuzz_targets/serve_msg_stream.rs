//! Arbitrary bytes, after a recorded valid handshake, into a server connection with the
//! message service on: MSG parts, MSG_SUB / MSG_UNSUB and SEND_QUOTA reach the bus, which
//! also has a remote subscriber (a second connection that subscribed `foo` and `bar.*` as
//! the msg-bus capture's client did, and never returns credit) and a local `.*` client.
//! No panic; every message the subscriber gets is whole; time runs past the credit timeout.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pvloom_core::endpoint::StreamEndpoint;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient};
use pvloom_ldms::msg::{self, MsgWire, Reassembler};
use pvloom_ldms::request;
use pvloom_ldms::server::{ServerConfig, ServerConn, SetRegistry};
use pvloom_ldms::zap::{FrameDecoder, Msg};

/// CONNECT, ACK_ACCEPTED as the msg-bus publisher sent them (c2s @0..124).
const PUB: &[u8] = include_bytes!("../../../../../shared/ldms-captures/msg-bus/publisher/c2s.bin");
/// CONNECT, ACK_ACCEPTED, MSG_SUB foo, MSG_SUB bar.* (msg-bus subscriber c2s @0..238).
const SUB: &[u8] = include_bytes!("../../../../../shared/ldms-captures/msg-bus/subscriber/c2s.bin");

fuzz_target!(|data: &[u8]| {
    let bus = MsgBus::new(BusConfig {
        max_msg: 1 << 20,
        max_subs_per_link: 64,
        link_in_flight: 1 << 20,
        ..BusConfig::default()
    });
    let local = MsgClient::queue(&bus, ".*", true, 16).unwrap();
    let config = ServerConfig {
        bus: Some(bus.clone()),
        max_queued: 1 << 20,
        max_msg: 1 << 20,
        credit_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let now = Instant::now();
    let mut sub = ServerConn::new(SetRegistry::new(), config.clone(), now);
    let mut conn = ServerConn::new(SetRegistry::new(), config, now);
    let (mut sub_out, mut out) = (BytesMut::new(), BytesMut::new());
    sub.handle_input(now, &SUB[..238]);
    sub.poll_transmit(now, usize::MAX, &mut sub_out);
    conn.handle_input(now, &PUB[..124]);
    let mut t = now;
    for (i, chunk) in data.chunks(211).enumerate() {
        if conn.wants_input() {
            conn.handle_input(t, chunk);
        }
        if i % 2 == 1 {
            while local.try_get_data().is_some() {}
        }
        conn.poll_transmit(t, usize::MAX, &mut out);
        sub.poll_transmit(t, usize::MAX, &mut sub_out);
        conn.poll_transmit(t, usize::MAX, &mut out);
        while conn.poll_event().is_some() {}
        while sub.poll_event().is_some() {}
        if conn.poll_close().is_some() {
            break;
        }
        let _ = sub.poll_close();
        t += Duration::from_millis(700);
        for c in [&mut conn, &mut sub] {
            if c.poll_timeout().is_some_and(|d| d <= t) {
                c.handle_timeout(t);
            }
        }
    }
    drop(local);
    conn.poll_transmit(t, usize::MAX, &mut out);
    sub.handle_timeout(t + Duration::from_secs(60));
    sub.poll_transmit(t, usize::MAX, &mut sub_out);
    // Every delivery to the subscriber is a well-formed message.
    let mut dec = FrameDecoder::new();
    dec.push(&sub_out).unwrap();
    let mut reasm = Reassembler::default();
    while let Ok(Some(f)) = dec.next_frame() {
        if let Msg::SendRecv(d) = &f.msg {
            let m = request::decode(d).expect("the server sends valid requests");
            if let Some(w) = msg::interpret(&m) {
                if let MsgWire::Part { part, .. } = w.expect("a valid message-service request") {
                    reasm.push(&part).expect("whole, consistent messages");
                }
            }
        }
    }
});
