//! Arbitrary bytes into the handshake/header codec and the frame decoder.
//!
//! The first byte picks how the rest is cut into pushes (partial headers and bodies
//! across reads) and whether a slot is free. A decoded header must re-encode to the
//! bytes it came from; a decoded message's body must be the bytes that followed its
//! header; the decoder never holds more than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvloom_chirp::decoder::{Decoder, Frame, Step};
use pvloom_chirp::wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, WireHeader};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    if let Some(header) = WireHeader::decode(input) {
        assert_eq!(&header.encode()[..], &input[..HEADER_LEN]);
        let _ = header.validate(1 << 16);
    }
    if let Some(handshake) = Handshake::decode(input) {
        assert_eq!(&handshake.encode()[..], &input[..HANDSHAKE_LEN]);
    }
    let chunk = usize::from(control >> 1).max(1);
    let slot_free = control & 1 == 1;
    // A small limit keeps the fuzzer's memory bounded; the logic is the same.
    let mut decoder = Decoder::new(1 << 16);
    let mut pushed = 0;
    let mut consumed = 0;
    'outer: for piece in input.chunks(chunk) {
        decoder.push(piece);
        pushed += piece.len();
        loop {
            match decoder.next(slot_free) {
                Ok(Step::Frame(frame)) => {
                    consumed += match &frame {
                        Frame::Handshake(h) => {
                            assert_eq!(&h.encode()[..], &input[consumed..consumed + HANDSHAKE_LEN]);
                            HANDSHAKE_LEN
                        }
                        Frame::Noop(h) | Frame::Ack(h) => {
                            assert_eq!(&h.encode()[..], &input[consumed..consumed + HEADER_LEN]);
                            HEADER_LEN
                        }
                        Frame::Message { header, upper, data, .. } => {
                            let body = consumed + HEADER_LEN;
                            assert_eq!(&header.encode()[..], &input[consumed..body]);
                            assert_eq!(&upper[..], &input[body..body + upper.len()]);
                            let data_at = body + upper.len();
                            assert_eq!(&data[..], &input[data_at..data_at + data.len()]);
                            HEADER_LEN + upper.len() + data.len()
                        }
                    };
                }
                Ok(Step::NeedMore | Step::NeedSlot) => break,
                Err(_) => break 'outer,
            }
        }
        assert!(decoder.buffered() <= pushed - consumed);
    }
});
