//! Arbitrary bytes into a connection endpoint, in both modes, with the application
//! releasing what it receives now and then: no panic, bounded input held.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pvloom_chirp::wire::Handshake;
use pvloom_chirp::{Config, ConnEvent, Connection, Identity, Outgoing};
use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::StreamEndpoint;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let config = Config { synchronous: control & 1 == 1, max_msg_size: 1 << 16, ..Config::default() };
    let Ok(limits) = config.limits() else { return };
    let start = Instant::now();
    let local = Handshake { port: 2998, identity: Identity::ZERO };
    let mut conn = Connection::new(start, local, IpAddr::V4(Ipv4Addr::LOCALHOST), limits);
    let chunk = usize::from(control >> 1).max(1);
    let mut out = BytesMut::new();
    let mut held = Vec::new();
    for (i, piece) in input.chunks(chunk).enumerate() {
        let now = start + Duration::from_millis(i as u64 * 50);
        if conn.wants_input() {
            conn.handle_input(now, piece);
        }
        if i % 3 == 0 {
            let _ = conn.send(now, i as u64, Outgoing::new(piece.to_vec()));
        }
        conn.handle_timeout(now);
        conn.poll_transmit(now, 4096, &mut out);
        out.clear();
        while let Some(event) = conn.poll_event() {
            if let ConnEvent::Received(msg) = event {
                held.push(msg.slot);
            }
        }
        if i % 2 == 0
            && let Some(slot) = held.pop()
        {
            let _ = conn.release(now, slot);
        }
        if conn.poll_close().is_some() {
            break;
        }
        assert!(conn.buffered_input() <= input.len());
    }
});
