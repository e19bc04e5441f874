//! Property tests: the codecs round-trip, the decoder's result does not depend on how
//! the stream is cut, and no input makes the decoder or a connection panic.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use pvloom_chirp::decoder::{Decoder, Frame, Step};
use pvloom_chirp::wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, WireHeader};
use pvloom_chirp::{Config, Connection, Identity};
use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::StreamEndpoint;

fn identity() -> impl Strategy<Value = Identity> {
    any::<[u8; 16]>().prop_map(Identity)
}

fn header() -> impl Strategy<Value = WireHeader> {
    (identity(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u8>()).prop_map(
        |(identity, serial, data_len, header_len, kind)| WireHeader { identity, serial, data_len, header_len, kind },
    )
}

/// A valid data message: its header and its body bytes.
fn message() -> impl Strategy<Value = (WireHeader, Vec<u8>, Vec<u8>)> {
    (
        identity(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(identity, serial, upper, data, req_ack)| {
            let header = WireHeader {
                identity,
                serial,
                data_len: data.len() as u32,
                header_len: upper.len() as u16,
                kind: u8::from(req_ack),
            };
            (header, upper, data)
        })
}

fn decode_all(stream: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut decoder = Decoder::new(1 << 20);
    let mut frames = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    for end in points {
        decoder.push(&stream[start..end]);
        start = end;
        while let Ok(Step::Frame(frame)) = decoder.next(true) {
            frames.push(frame);
        }
    }
    frames
}

proptest! {
    #[test]
    fn handshake_round_trips(port in any::<u16>(), id in identity()) {
        let handshake = Handshake { port, identity: id };
        let bytes = handshake.encode();
        prop_assert_eq!(bytes.len(), HANDSHAKE_LEN);
        prop_assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), port);
        prop_assert_eq!(Handshake::decode(&bytes), Some(handshake));
        prop_assert_eq!(Handshake::decode(&bytes[..HANDSHAKE_LEN - 1]), None);
    }

    #[test]
    fn header_round_trips(header in header()) {
        let bytes = header.encode();
        prop_assert_eq!(bytes.len(), HEADER_LEN);
        // The layout: identity, serial, data_len, header_len, type, big-endian.
        prop_assert_eq!(&bytes[..16], &header.identity.0[..]);
        prop_assert_eq!(&bytes[16..20], &header.serial.to_be_bytes()[..]);
        prop_assert_eq!(&bytes[20..24], &header.data_len.to_be_bytes()[..]);
        prop_assert_eq!(&bytes[24..26], &header.header_len.to_be_bytes()[..]);
        prop_assert_eq!(bytes[26], header.kind);
        prop_assert_eq!(WireHeader::decode(&bytes), Some(header));
    }

    #[test]
    fn decoding_does_not_depend_on_the_cuts(
        hello in any::<[u8; HANDSHAKE_LEN]>(),
        messages in proptest::collection::vec(message(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = hello.to_vec();
        for (header, upper, data) in &messages {
            stream.extend_from_slice(&header.encode());
            stream.extend_from_slice(upper);
            stream.extend_from_slice(data);
        }
        let whole = decode_all(&stream, &[]);
        let cut = decode_all(&stream, &cuts);
        prop_assert_eq!(whole.len(), messages.len() + 1);
        prop_assert_eq!(&whole, &cut);
        for (frame, (header, upper, data)) in whole[1..].iter().zip(&messages) {
            match frame {
                Frame::Message { header: got, upper: got_upper, data: got_data, wants_ack } => {
                    prop_assert_eq!(got, header);
                    prop_assert_eq!(&got_upper[..], &upper[..]);
                    prop_assert_eq!(&got_data[..], &data[..]);
                    prop_assert_eq!(*wants_ack, header.kind & 1 == 1);
                }
                other => prop_assert!(false, "expected a message, got {:?}", other),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..10), slot in any::<bool>()) {
        let mut decoder = Decoder::new(4096);
        for chunk in chunks {
            decoder.push(&chunk);
            for _ in 0..64 {
                match decoder.next(slot) {
                    Ok(Step::Frame(_)) => {}
                    Ok(_) | Err(_) => break,
                }
            }
            // Never more than what was pushed plus nothing: bounded by the input.
            prop_assert!(decoder.buffered() <= 10 * 200 + HEADER_LEN);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_connection(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10), synchronous in any::<bool>()) {
        let config = Config { synchronous, max_msg_size: 8192, ..Config::default() };
        let limits = config.limits().unwrap();
        let now = Instant::now();
        let local = Handshake { port: 2998, identity: Identity::random() };
        let mut conn = Connection::new(now, local, IpAddr::V4(Ipv4Addr::LOCALHOST), limits);
        let mut out = BytesMut::new();
        let mut held = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let at = now + Duration::from_millis(i as u64 * 700);
            conn.handle_input(at, chunk);
            conn.handle_timeout(at);
            conn.poll_transmit(at, 1 << 16, &mut out);
            while let Some(event) = conn.poll_event() {
                if let pvloom_chirp::ConnEvent::Received(msg) = event {
                    held.push(msg.slot);
                }
            }
            if let Some(slot) = held.pop() {
                let _ = conn.release(at, slot);
            }
            let _ = conn.poll_close();
            prop_assert!(conn.buffered_input() <= chunks.iter().map(Vec::len).sum::<usize>());
        }
    }
}
