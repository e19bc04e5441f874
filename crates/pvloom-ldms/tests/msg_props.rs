//! Properties of the message-service codec: round trips, split then reassemble, no panics
//! on random or truncated input, and the reassembler's limits.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use pvloom_ldms::msg::{
    self, Hop, LdmsAddr, Limits, MAX_HOPS, MSG_HDR_LEN, Msg, MsgHeader, MsgPart, MsgSub, MsgType, PART_PAYLOAD_MAX,
    Reassembler, ReassemblyError, SubReply, split_message, tag_hash,
};
use pvloom_ldms::request::{self, LDMS_MSG_MAX, REQUEST_HDR_LEN, Timespec};

fn addr() -> impl Strategy<Value = LdmsAddr> {
    (any::<u16>(), any::<u16>(), any::<[u8; 16]>()).prop_map(|(family, port, addr)| LdmsAddr { family, port, addr })
}

fn ts() -> impl Strategy<Value = Timespec> {
    (any::<i64>(), any::<i64>()).prop_map(|(sec, nsec)| Timespec { sec, nsec })
}

fn msg_type() -> impl Strategy<Value = MsgType> {
    any::<u32>().prop_map(MsgType::from_u32)
}

fn header() -> impl Strategy<Value = MsgHeader> {
    (addr(), any::<u64>(), msg_type(), any::<u32>(), any::<u32>(), any::<u32>(), 0u32..12, any::<u32>()).prop_flat_map(
        |(src, msg_gn, msg_type, uid, gid, perm, hop_cnt, tag_hash)| {
            let n = MsgHeader::used_hops(hop_cnt);
            prop::collection::vec((ts(), ts()).prop_map(|(recv, send)| Hop { recv, send }), n).prop_map(move |hops| {
                MsgHeader { src, msg_gn, msg_type, uid, gid, perm, tag_hash, hop_cnt, hops: hops.into_iter().collect() }
            })
        },
    )
}

fn name() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(1u8..=255, 0..40).prop_map(Bytes::from)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn encoded(m: &Msg) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    b.freeze()
}

/// Splits, pushes the parts and expects exactly the message back, from the last part.
fn split_reassemble(r: &mut Reassembler, m: &Msg, max_part: usize) {
    let parts = split_message(&m.header, &m.name, &m.data, max_part).unwrap();
    let cap = max_part.min(PART_PAYLOAD_MAX);
    assert_eq!(parts.len(), m.encoded_len().div_ceil(cap));
    for (i, p) in parts.iter().enumerate() {
        assert_eq!((p.first, p.more), (i == 0, i + 1 < parts.len()));
        assert!(p.payload.len() <= cap && !p.payload.is_empty());
        // Each part fits a SENDRECV frame.
        assert!(REQUEST_HDR_LEN + p.encoded_len() <= LDMS_MSG_MAX);
        let got = r.push(p).unwrap();
        if i + 1 < parts.len() {
            assert!(got.is_none());
        } else {
            assert_eq!(got.as_ref(), Some(m));
        }
    }
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.reserved(), 0);
}

proptest! {
    /// A forwarded header encoded in place is the header copied, counted one hop more
    /// and stamped (while there is room), then encoded.
    #[test]
    fn forwarded_header_is_one_more_hop(h in header(), len in any::<u32>(), recv in ts(), send in ts()) {
        let hop = Hop { recv, send };
        let mut copy = h.clone();
        copy.hop_cnt = copy.hop_cnt.saturating_add(1);
        copy.hops.truncate(MsgHeader::used_hops(h.hop_cnt));
        if copy.hops.len() < MAX_HOPS {
            copy.hops.push(hop);
        }
        let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
        copy.encode(len, &mut want);
        h.encode_forwarded(len, hop, &mut got);
        prop_assert_eq!(got, want);
    }

    /// A one-part message decoded into its own buffer is the message decoded in place.
    #[test]
    fn owned_decode_matches(h in header(), name in name(), data in bytes(300)) {
        let m = Msg { header: h, name: name.iter().map(|&c| c.max(1)).collect(), data };
        let mut b = BytesMut::new();
        m.encode(&mut b).unwrap();
        let b = b.freeze();
        prop_assert_eq!(Msg::decode_owned(&b).unwrap(), Msg::decode(&b).unwrap());
        prop_assert_eq!(Msg::decode_owned(&b[..b.len() - 1]).is_err(), Msg::decode(&b.slice(..b.len() - 1)).is_err());
    }

    #[test]
    fn part_round_trip(xid in any::<u64>(), src in addr(), msg_gn in any::<u64>(), more in any::<bool>(), first in any::<bool>(), reserved in any::<u32>(), payload in bytes(600)) {
        let p = MsgPart { src, msg_gn, more, first, reserved: reserved & !3, payload };
        let w = msg::MsgWire::Part { xid, part: p };
        let mut b = BytesMut::new();
        request::encode(&w.to_message().unwrap(), &mut b);
        let m = request::decode(&b.freeze()).unwrap();
        prop_assert_eq!(msg::interpret(&m).unwrap().unwrap(), w);
    }

    #[test]
    fn msg_round_trip(header in header(), name in name(), data in bytes(2000)) {
        let m = Msg { header, name, data };
        let b = encoded(&m);
        prop_assert_eq!(b.len(), m.encoded_len());
        let d = Msg::decode(&b).unwrap();
        prop_assert_eq!(&d, &m);
        // Ignored ranges are zero in what pvloom writes, and garbage there changes nothing.
        let mut dirty = b.to_vec();
        for r in MsgHeader::ignored_ranges(m.header.hop_cnt) {
            prop_assert!(b[r.clone()].iter().all(|&x| x == 0));
            dirty[r].fill(0x25);
        }
        prop_assert_eq!(Msg::decode(&Bytes::from(dirty)).unwrap(), m);
    }

    #[test]
    fn sub_round_trip(is_regex in any::<bool>(), pattern in prop::collection::vec(1u8..=255, 0..300), rate in any::<i64>(), xid in any::<u64>(), unsub in any::<bool>()) {
        let s = MsgSub { is_regex, pattern: Bytes::from(pattern), rate };
        let mut b = BytesMut::new();
        s.to_request(xid, unsub).unwrap().encode(&mut b);
        let m = request::decode(&b.freeze()).unwrap();
        let w = msg::interpret(&m).unwrap().unwrap();
        let want = if unsub { msg::MsgWire::Unsub { xid, sub: s } } else { msg::MsgWire::Sub { xid, sub: s } };
        prop_assert_eq!(w, want);
    }

    #[test]
    fn sub_reply_round_trip(text in prop::collection::vec(1u8..=255, 0..100), xid in any::<u64>(), rc in any::<u32>(), unsub in any::<bool>()) {
        let r = SubReply { text: Bytes::from(text) };
        let mut b = BytesMut::new();
        request::encode(&request::Message::Reply(r.to_reply(xid, rc, unsub)), &mut b);
        let m = request::decode(&b.freeze()).unwrap();
        prop_assert_eq!(msg::interpret(&m).unwrap().unwrap(), msg::MsgWire::SubReply { unsub, xid, rc, reply: r });
    }

    #[test]
    fn split_small(header in header(), name in name(), data in bytes(3000), max_part in 384usize..900) {
        let m = Msg { header, name, data };
        split_reassemble(&mut Reassembler::default(), &m, max_part);
    }

    /// Parts of several messages interleaved, keyed by (src, msg_gn).
    #[test]
    fn split_interleaved(hs in prop::collection::vec((header(), bytes(2000)), 1..5), max_part in 384usize..700) {
        let mut seen = std::collections::HashSet::new();
        let msgs: Vec<Msg> = hs.into_iter()
            .filter(|(h, _)| seen.insert((h.src, h.msg_gn)))
            .map(|(header, data)| Msg { name: Bytes::from_static(b"t"), header, data })
            .collect();
        let mut queues: Vec<Vec<MsgPart>> =
            msgs.iter().map(|m| split_message(&m.header, &m.name, &m.data, max_part).unwrap()).collect();
        for q in &mut queues { q.reverse(); }
        let mut r = Reassembler::default();
        let mut done = Vec::new();
        while queues.iter().any(|q| !q.is_empty()) {
            for q in &mut queues {
                if let Some(p) = q.pop()
                    && let Some(m) = r.push(&p).unwrap()
                {
                    done.push(m);
                }
            }
        }
        prop_assert_eq!(done.len(), msgs.len());
        for m in &msgs { prop_assert!(done.contains(m)); }
        prop_assert_eq!(r.reserved(), 0);
    }

    #[test]
    fn random_bytes_never_panic(b in bytes(1200), cmd in 10u32..14) {
        let _ = MsgPart::decode(&b);
        let _ = Msg::decode(&b);
        let _ = MsgHeader::decode(&b);
        let _ = MsgSub::decode(&b);
        let _ = SubReply::decode(&b);
        let mut data = BytesMut::new();
        request::Request::new(0, request::RequestBody::Other { cmd, body: b.clone() }).encode(&mut data);
        if let Ok(m) = request::decode(&data.freeze())
            && let Some(Ok(w)) = msg::interpret(&m)
        {
            let _ = w.to_message();
        }
        let mut r = Reassembler::new(Limits { max_msg: 4096, max_in_progress: 2, max_buffered: 6000 });
        if let Ok(p) = MsgPart::decode(&b) {
            for first in [true, false] {
                for more in [true, false] {
                    let _ = r.push(&MsgPart { first, more, ..p.clone() });
                }
            }
        }
        prop_assert!(r.reserved() <= 6000);
    }

    #[test]
    fn random_parts_never_panic(parts in prop::collection::vec((0u64..3, any::<bool>(), any::<bool>(), bytes(900)), 0..30)) {
        let limits = Limits { max_msg: 2000, max_in_progress: 2, max_buffered: 3000 };
        let mut r = Reassembler::new(limits);
        for (gn, first, more, payload) in parts {
            let _ = r.push(&MsgPart { src: LdmsAddr::default(), msg_gn: gn, first, more, reserved: 0, payload });
            prop_assert!(r.in_progress() <= 2 && r.reserved() <= 3000);
        }
    }

    #[test]
    fn truncated_is_an_error(header in header(), name in name(), data in bytes(300), cut in any::<prop::sample::Index>()) {
        let m = Msg { header, name, data };
        let b = encoded(&m);
        let n = cut.index(b.len());
        prop_assert!(Msg::decode(&b.slice(..n)).is_err());
        let s = MsgSub { is_regex: true, pattern: m.name.clone(), rate: -1 };
        let mut sb = BytesMut::new();
        s.encode(&mut sb).unwrap();
        let sb = sb.freeze();
        prop_assert!(MsgSub::decode(&sb.slice(..cut.index(sb.len()))).is_err());
    }
}

fn big(len: usize, gn: u64) -> Msg {
    let header = MsgHeader {
        src: LdmsAddr { family: 2, port: 411, addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
        msg_gn: gn,
        msg_type: MsgType::String,
        uid: 1000,
        gid: 100,
        perm: 0o440,
        tag_hash: tag_hash(b"big"),
        hop_cnt: 0,
        hops: [Hop::default()].into_iter().collect(),
    };
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    Msg { header, name: Bytes::from_static(b"big"), data: Bytes::from(data) }
}

#[test]
fn split_large() {
    let mut r = Reassembler::new(Limits { max_msg: 8 << 20, max_in_progress: 4, max_buffered: 16 << 20 });
    let edge = PART_PAYLOAD_MAX - MSG_HDR_LEN - 4; // exactly one full part
    for (i, len) in [0, 1, edge, edge + 1, 1_200_000, 3 << 20, 5 * (1 << 20) + 17].into_iter().enumerate() {
        let m = big(len, i as u64);
        split_reassemble(&mut r, &m, usize::MAX);
        let n = split_message(&m.header, &m.name, &m.data, usize::MAX).unwrap().len();
        assert_eq!(n, m.encoded_len().div_ceil(PART_PAYLOAD_MAX), "len {len}");
    }
    assert_eq!(split_message(&big(edge, 0).header, b"big", &big(edge, 0).data, usize::MAX).unwrap().len(), 1);
    assert_eq!(split_message(&big(edge + 1, 0).header, b"big", &big(edge + 1, 0).data, usize::MAX).unwrap().len(), 2);
}

fn first_of(len: usize, gn: u64) -> (Msg, Vec<MsgPart>) {
    let m = big(len, gn);
    let parts = split_message(&m.header, &m.name, &m.data, 1000).unwrap();
    (m, parts)
}

#[test]
fn limits_enforced() {
    let limits = Limits { max_msg: 10_000, max_in_progress: 2, max_buffered: 14_000 };
    let mut r = Reassembler::new(limits);
    // Too large, by the first part's declared length.
    let (_, p) = first_of(20_000, 1);
    assert!(matches!(r.push(&p[0]), Err(ReassemblyError::TooLarge { max: 10_000, .. })));
    // Two in progress, then a third is refused; single-part messages still go through.
    let (_, a) = first_of(5000, 1);
    let (_, b) = first_of(5000, 2);
    let (_, c) = first_of(5000, 3);
    r.push(&a[0]).unwrap();
    r.push(&b[0]).unwrap();
    assert_eq!(r.reserved(), 2 * (MSG_HDR_LEN + 4 + 5000));
    assert_eq!(r.push(&c[0]), Err(ReassemblyError::TooManyInProgress { max: 2 }));
    let (small, s) = first_of(10, 9);
    assert_eq!(s.len(), 1);
    assert_eq!(r.push(&s[0]).unwrap(), Some(small));
    // The first part again drops the message.
    assert!(matches!(r.push(&a[0]), Err(ReassemblyError::FirstTwice { msg_gn: 1, .. })));
    assert_eq!(r.in_progress(), 1);
    // A continuation of a message that has no first part.
    assert!(matches!(r.push(&a[1]), Err(ReassemblyError::NoFirst { msg_gn: 1, .. })));
    // Buffer limit: 5388 reserved for b, 9388 more do not fit 14 000.
    let (_, d) = first_of(9000, 4);
    assert!(matches!(r.push(&d[0]), Err(ReassemblyError::BufferFull { max: 14_000, .. })));
    // b completes.
    let (bm, _) = first_of(5000, 2);
    let mut got = None;
    for p in &b[1..] {
        got = r.push(p).unwrap();
    }
    assert_eq!(got, Some(bm));
    assert_eq!((r.in_progress(), r.reserved()), (0, 0));

    // Lengths that disagree: the last part too early, or too many bytes.
    let (_, e) = first_of(3000, 5);
    r.push(&e[0]).unwrap();
    let early = MsgPart { more: false, ..e[1].clone() };
    assert!(matches!(r.push(&early), Err(ReassemblyError::Short { .. })));
    r.push(&e[0]).unwrap();
    let mut fat = e[1].clone();
    fat.payload = Bytes::from(vec![0; 4000]);
    assert!(matches!(r.push(&fat), Err(ReassemblyError::Overrun { .. })));
    assert_eq!((r.in_progress(), r.reserved()), (0, 0));
    // A first part shorter than the message header.
    let stub = MsgPart { payload: Bytes::from_static(&[0; 100]), ..e[0].clone() };
    assert!(matches!(r.push(&stub), Err(ReassemblyError::Malformed(_))));
    // abort and clear release the reservation.
    r.push(&e[0]).unwrap();
    assert!(r.abort(e[0].src, 5));
    r.push(&e[0]).unwrap();
    r.clear();
    assert_eq!((r.in_progress(), r.reserved()), (0, 0));
    let h = plain_header(e[0].src);
    assert_eq!(split_message(&h, b"x", b"", MSG_HDR_LEN - 1), Err(msg::MsgError::PartTooSmall(MSG_HDR_LEN - 1)));
    assert_eq!(split_message(&h, b"x", b"", MSG_HDR_LEN).unwrap().len(), 2);
}

/// A header with nothing but the source set.
fn plain_header(src: LdmsAddr) -> MsgHeader {
    MsgHeader {
        src,
        msg_gn: 0,
        msg_type: MsgType::Json,
        uid: 0,
        gid: 0,
        perm: 0,
        tag_hash: 0,
        hop_cnt: 0,
        hops: [Hop::default()].into_iter().collect(),
    }
}

/// A header holds at most MAX_HOPS entries; decoding yields hop_cnt + 1 of them, capped.
#[test]
fn hops_capped() {
    let mut h = plain_header(LdmsAddr::default());
    h.hop_cnt = 20;
    let hop = Hop { recv: Timespec { sec: 1, nsec: 2 }, send: Timespec { sec: 3, nsec: 4 } };
    h.hops = std::iter::repeat_n(hop, MAX_HOPS).collect();
    assert!(h.hops.try_push(hop).is_err(), "no room for a tenth hop");
    let mut b = BytesMut::new();
    h.encode(0, &mut b);
    assert_eq!(b.len(), MSG_HDR_LEN);
    let (d, len) = MsgHeader::decode(&b).unwrap();
    assert_eq!((len, d.hops.len()), (0, MAX_HOPS));
    assert_eq!(MsgHeader::ignored_ranges(20), [20..56, 92..96]);
    assert_eq!(MsgHeader::used_hops(u32::MAX), MAX_HOPS);
}
