//! Arbitrary bytes as SEND_MSG payloads into the LDMSD request codec.
//!
//! A record that decodes must re-encode to its bytes; the payload is also cut into
//! records pushed through one bounded reassembler, which must stay within its limits; a
//! message that comes out must split and reassemble back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvloom_ldms::ldmsd_req::{HDR_LEN, Message, Reassembler, ReassemblyLimits, Record};

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = Record::decode(data) {
        assert_eq!(&rec.encode()[..], &data[..rec.header.rec_len as usize]);
    }
    let limits = ReassemblyLimits { max_message: 4096, max_in_progress: 4 };
    let mut r = Reassembler::new(limits);
    let mut rest = data;
    while let Ok(rec) = Record::decode(rest) {
        let len = rec.header.rec_len as usize;
        if let Ok(Some(m)) = r.push(&rec) {
            let max = HDR_LEN + 1 + data.len() % 61;
            let mut again = Reassembler::new(ReassemblyLimits::default());
            let mut got = None;
            for b in m.encode_records(max) {
                got = again.push(&Record::decode(&b).expect("own record")).expect("own records reassemble");
            }
            assert_eq!(got.as_ref(), Some(&m));
        }
        assert!(r.in_progress() <= limits.max_in_progress);
        assert!(r.buffered() <= limits.max_message * limits.max_in_progress);
        if len == 0 || len > rest.len() {
            break;
        }
        rest = &rest[len..];
    }
    let _ = Message::decode_body(data);
});
