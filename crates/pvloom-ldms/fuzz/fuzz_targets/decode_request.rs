//! Arbitrary bytes into the LDMS request layer: as SENDRECV data, as a rendezvous
//! message, and as directory JSON.
//!
//! Whatever decodes must re-encode to the bytes it came from; directory JSON that parses
//! must render to JSON that parses back to the same entries.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pvloom_ldms::request::{self, Message, RendezvousMsg, Reply, ReplyBody, dir};

fn check_dir(json: &[u8]) {
    if let Ok(entries) = dir::parse_dir(json) {
        let text = dir::render_dir(&entries);
        assert_eq!(dir::parse_dir(text.as_bytes()).expect("rendered JSON parses"), entries);
    }
}

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    if let Ok(m) = request::decode(&data) {
        let mut out = BytesMut::new();
        request::encode(&m, &mut out);
        assert_eq!(&out[..], &data[..]);
        if let Message::Reply(Reply { body: ReplyBody::Dir { json, .. }, .. }) = &m {
            check_dir(json);
        }
    }
    if let Ok(m) = RendezvousMsg::decode(&data) {
        let mut out = BytesMut::new();
        m.encode(&mut out).expect("a decoded rendezvous message encodes");
        assert_eq!(&out[..], &data[..]);
    }
    check_dir(&data);
});
