//! Property tests of the LDMSD request codec: messages round-trip through records of
//! any size and the reassembler; anything that decodes re-encodes to its bytes; random
//! bytes and random record sequences give errors, never panics, and never grow the
//! reassembler past its bounds.

use proptest::prelude::*;
use pvloom_ldms::ldmsd_req::*;

fn attr_strategy() -> impl Strategy<Value = Attr> {
    (0u32..60, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(id, value)| Attr { id, value })
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop_oneof![Just(TYPE_REQUEST), Just(TYPE_RESPONSE), any::<u32>()],
        any::<u32>(),
        any::<u32>(),
        proptest::collection::vec(attr_strategy(), 0..6),
    )
        .prop_map(|(kind, msg_no, code, attrs)| Message { kind, msg_no, code, attrs })
}

proptest! {
    #[test]
    fn messages_round_trip_through_records_of_any_size(m in message(), max in (HDR_LEN + 1)..300usize) {
        let records = m.encode_records(max);
        prop_assert!(!records.is_empty());
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut got = None;
        for (i, b) in records.iter().enumerate() {
            prop_assert!(b.len() <= max);
            let rec = Record::decode(b).unwrap();
            prop_assert_eq!(rec.header.rec_len as usize, b.len());
            prop_assert_eq!(rec.header.is_som(), i == 0);
            prop_assert_eq!(rec.header.is_eom(), i + 1 == records.len());
            prop_assert_eq!(&rec.encode(), b);
            prop_assert!(got.is_none());
            got = r.push(&rec).unwrap();
        }
        prop_assert_eq!(got, Some(m.clone()));
        prop_assert_eq!((r.in_progress(), r.buffered()), (0, 0));
        prop_assert_eq!(Message::decode_body(&m.encode_body()).unwrap(), m.attrs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = RecordHeader::peek(&data);
        if let Ok(rec) = Record::decode(&data) {
            prop_assert_eq!(&rec.encode()[..], &data[..rec.header.rec_len as usize]);
        }
        if let Ok(attrs) = Message::decode_body(&data) {
            let m = Message { kind: 0, msg_no: 0, code: 0, attrs };
            prop_assert_eq!(m.encode_body(), data.clone());
        }
        let _ = Message::decode_single(&data);
    }

    #[test]
    fn random_record_sequences_stay_bounded(
        recs in proptest::collection::vec(
            (0u32..4, 0u32..4, proptest::collection::vec(any::<u8>(), 0..64)), 0..40),
    ) {
        let limits = ReassemblyLimits { max_message: 128, max_in_progress: 3 };
        let mut r = Reassembler::new(limits);
        for (flags, msg_no, body) in &recs {
            let header = RecordHeader {
                marker: RECORD_MARKER, kind: TYPE_REQUEST, flags: *flags, msg_no: *msg_no, code: 1,
                rec_len: (HDR_LEN + body.len()) as u32,
            };
            let _ = r.push(&Record { header, body });
            prop_assert!(r.in_progress() <= limits.max_in_progress);
            prop_assert!(r.buffered() <= limits.max_message * limits.max_in_progress);
        }
    }
}
