//! Arbitrary bytes into the zap stream decoder.
//!
//! The first byte picks how the input is cut into pushes, so partial headers and payloads
//! split across reads are exercised too. Every decoded frame must re-encode to the bytes
//! it came from, and its CONNECT/ACCEPTED data, when 64 bytes, must round-trip as a rail
//! connect message.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pvloom_ldms::zap::{Frame, FrameDecoder, Msg, RAIL_CONN_MSG_LEN, RailConnMsg};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    // Small limits keep the fuzzer's memory bounded; the logic is the same.
    let mut decoder = FrameDecoder::with_limits(1 << 16, 1 << 18);
    let mut consumed = 0;
    'outer: for piece in input.chunks(chunk) {
        if decoder.push(piece).is_err() {
            break;
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let mut out = BytesMut::new();
                    frame.encode(&mut out);
                    assert_eq!(&out[..], &input[consumed..consumed + out.len()]);
                    consumed += out.len();
                    let again = Frame::decode(&out.freeze()).expect("re-decode");
                    assert_eq!(again, frame);
                    let conn_data = match &frame.msg {
                        Msg::Connect(c) => Some(&c.data),
                        Msg::Accepted(d) => Some(d),
                        _ => None,
                    };
                    if let Some(d) = conn_data.filter(|d| d.len() == RAIL_CONN_MSG_LEN) {
                        let m = RailConnMsg::decode(d).expect("64-byte rail message");
                        assert_eq!(&m.to_bytes()[..], &d[..]);
                    }
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
    let _ = Frame::decode(&Bytes::copy_from_slice(input));
    let _ = RailConnMsg::decode(input);
});
