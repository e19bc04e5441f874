//! The fuzz seeds recorded from real libchirp traffic (`fuzz/record_seeds.py`: a
//! libchirp sender and a libchirp echo node through a recording proxy), replayed into
//! a [`Connection`] as the peer's bytes: each stream decodes to libchirp's handshake,
//! its twelve messages ("libchirp 0" … "libchirp 11", the echo sending them back) and,
//! in synchronous mode, the ACKs the two exchanged, with nothing left over.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

use pvloom_chirp::wire::Handshake;
use pvloom_chirp::{Config, ConnEvent, Connection, Identity};
use pvloom_core::endpoint::StreamEndpoint;

const MESSAGES: usize = 12;

fn seed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/conn_stream").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The first byte is the fuzz target's control byte, not traffic.
    bytes[1..].to_vec()
}

/// Feed `stream` as the peer's bytes, `chunk` at a time, releasing every message at
/// once: the data of the messages received, and the handshake.
fn replay(stream: &[u8], synchronous: bool, chunk: usize) -> (Handshake, Vec<Vec<u8>>) {
    let config = Config { synchronous, ..Config::default() };
    let now = Instant::now();
    let local = Handshake { port: 4000, identity: Identity::random() };
    let mut conn = Connection::new(now, local, IpAddr::V4(Ipv4Addr::LOCALHOST), config.limits().unwrap());
    let mut handshake = None;
    let mut data = Vec::new();
    for piece in stream.chunks(chunk) {
        assert!(conn.wants_input(), "it stopped reading");
        conn.handle_input(now, piece);
        while let Some(event) = conn.poll_event() {
            match event {
                ConnEvent::Handshake(h) => handshake = Some(h),
                ConnEvent::Received(msg) => {
                    assert_eq!(msg.wants_ack, synchronous, "REQ_ACK is set in synchronous mode only");
                    data.push(msg.data.to_vec());
                    conn.release(now, msg.slot).expect("release");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(conn.poll_close().is_none(), "libchirp's own bytes closed the connection");
    }
    assert_eq!(conn.buffered_input(), 0, "bytes left over");
    (handshake.expect("libchirp's handshake"), data)
}

fn expected() -> Vec<Vec<u8>> {
    (0..MESSAGES).map(|i| format!("libchirp {i}").into_bytes()).collect()
}

fn check(name: &str, synchronous: bool) {
    let stream = seed(name);
    let (whole, data) = replay(&stream, synchronous, stream.len());
    assert_eq!(data, expected(), "{name}");
    assert!(!whole.identity.is_zero(), "libchirp sends its random node identity");
    let (bytewise, data) = replay(&stream, synchronous, 1);
    assert_eq!(data, expected(), "{name}, one byte at a time");
    assert_eq!(bytewise, whole);
}

#[test]
fn libchirp_senders_async_stream_decodes() {
    check("libchirp-async-sender", false);
}

#[test]
fn libchirp_echos_async_stream_decodes() {
    check("libchirp-async-echo", false);
}

#[test]
fn libchirp_senders_sync_stream_with_its_acks_decodes() {
    check("libchirp-sync-sender", true);
}

#[test]
fn libchirp_echos_sync_stream_with_its_acks_decodes() {
    check("libchirp-sync-echo", true);
}
