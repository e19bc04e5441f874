//! Arbitrary bytes as SENDRECV data into the message-service codec.
//!
//! Whatever is interpreted must re-encode to the bytes it came from; a part must go
//! through the reassembler without panicking, a whole message must re-encode to its bytes
//! with the ignored header areas zeroed, and splitting it then reassembling must give it
//! back.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pvloom_ldms::msg::{self, Limits, MSG_HDR_LEN, Msg, MsgHeader, MsgWire, Reassembler, split_message};
use pvloom_ldms::request;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    let Ok(m) = request::decode(&data) else { return };
    let Some(Ok(w)) = msg::interpret(&m) else { return };
    let mut out = BytesMut::new();
    request::encode(&w.to_message().expect("an interpreted command encodes"), &mut out);
    assert_eq!(&out[..], &data[..]);
    let MsgWire::Part { part: p, .. } = w else { return };

    let limits = Limits { max_msg: 1 << 16, max_in_progress: 2, max_buffered: 1 << 17 };
    let mut r = Reassembler::new(limits);
    let _ = r.push(&p);
    assert!(r.reserved() <= limits.max_buffered && r.in_progress() <= 2);

    let Ok(whole) = Msg::decode(&p.payload) else { return };
    let mut re = BytesMut::new();
    whole.encode(&mut re).expect("a decoded message encodes");
    let mut masked = p.payload.to_vec();
    for rg in MsgHeader::ignored_ranges(whole.header.hop_cnt) {
        masked[rg].fill(0);
    }
    assert_eq!(&re[..], &masked[..]);

    // Split into small parts (the first holds the header) and collect them again.
    let max_part = MSG_HDR_LEN + p.payload.len() % 97;
    let parts = split_message(&whole.header, &whole.name, &whole.data, max_part).expect("split");
    let mut r = Reassembler::new(Limits { max_msg: 1 << 20, max_in_progress: 1, max_buffered: 1 << 20 });
    let mut got = None;
    for q in &parts {
        got = r.push(q).expect("own parts reassemble");
    }
    assert_eq!(got.as_ref(), Some(&whole));
});
