//! Property tests of the zap framing: every message type round-trips through encode,
//! `Frame::decode` and `FrameDecoder` in arbitrary pieces; arbitrary bytes never panic;
//! the limits and malformed lengths give typed errors.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use pvloom_ldms::zap::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn rail() -> impl Strategy<Value = RailConnMsg> {
    (any::<[u8; 4]>(), any::<[u8; 16]>(), any::<(u32, u64, u64, u32, u32, u32, u64, u32)>()).prop_map(
        |(v, a, (ct, rl, rq, n, i, p, g, m))| RailConnMsg {
            ldms_version: v,
            auth_name: a,
            conn_type: ct,
            rate_limit: rl,
            recv_quota: rq,
            n_eps: n,
            idx: i,
            pid: p,
            rail_gn: g,
            msg_enabled: m,
        },
    )
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 8]>(), bytes(200))
            .prop_map(|(version, signature, data)| { Msg::Connect(Connect { version, signature, data }) }),
        bytes(300).prop_map(Msg::SendRecv),
        (any::<(u32, u32, u64, u32)>(), bytes(300)).prop_map(|((k, a, ad, l), m)| {
            Msg::Rendezvous(Rendezvous { map_key: k, access: a, addr: ad, len: l, msg: m })
        }),
        any::<(u32, u64, u32)>().prop_map(|(k, p, l)| Msg::ReadReq(ReadReq { map_key: k, src_ptr: p, len: l })),
        (any::<(u16, [u8; 2], u64)>(), bytes(300))
            .prop_map(|((s, pad, d), data)| { Msg::ReadResp(ReadResp { status: s, pad, dst_ptr: d, data }) }),
        (any::<(u32, u64)>(), bytes(300)).prop_map(|((k, d), data)| Msg::WriteReq(WriteReq {
            map_key: k,
            dst_ptr: d,
            data
        })),
        any::<(u16, [u8; 2])>().prop_map(|(status, pad)| Msg::WriteResp(WriteResp { status, pad })),
        bytes(100).prop_map(Msg::Accepted),
        bytes(100).prop_map(Msg::Rejected),
        bytes(10).prop_map(Msg::AckAccepted),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<(u16, u32, u64)>(), msg()).prop_map(|((reserved, xid, ctxt), msg)| Frame { reserved, xid, ctxt, msg })
}

proptest! {
    #[test]
    fn frame_round_trip(f in frame()) {
        let mut b = BytesMut::new();
        f.encode(&mut b);
        prop_assert_eq!(b.len(), f.encoded_len());
        let b = b.freeze();
        prop_assert_eq!(Frame::decode(&b).unwrap(), f);
    }

    #[test]
    fn stream_round_trip_in_pieces(
        fs in proptest::collection::vec(frame(), 0..8),
        cuts in proptest::collection::vec(1usize..64, 0..64),
    ) {
        let mut b = BytesMut::new();
        for f in &fs {
            f.encode(&mut b);
        }
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        let mut rest = &b[..];
        let mut cuts = cuts.into_iter().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
            dec.push(&rest[..n]).unwrap();
            rest = &rest[n..];
            while let Some(f) = dec.next_frame().unwrap() {
                out.push(f);
            }
        }
        prop_assert_eq!(out, fs);
        prop_assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn rail_conn_msg_round_trip(m in rail()) {
        let b = m.to_bytes();
        prop_assert_eq!(b.len(), RAIL_CONN_MSG_LEN);
        prop_assert_eq!(RailConnMsg::decode(&b).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Frame::decode(&Bytes::from(data.clone()));
        let _ = RailConnMsg::decode(&data);
        let mut dec = FrameDecoder::new();
        if dec.push(&data).is_ok() {
            while let Ok(Some(_)) = dec.next_frame() {}
        }
    }

    #[test]
    fn mutated_frames_never_panic(f in frame(), pos in any::<usize>(), val in any::<u8>()) {
        let mut b = BytesMut::new();
        f.encode(&mut b);
        let i = pos % b.len();
        b[i] = val;
        let b = b.freeze();
        let _ = Frame::decode(&b);
        let mut dec = FrameDecoder::new();
        dec.push(&b).unwrap();
        while let Ok(Some(_)) = dec.next_frame() {}
    }
}

fn header(ty: u16, len: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&ty.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0; 12]);
    v
}

fn first_error(bytes: &[u8]) -> ZapError {
    let mut dec = FrameDecoder::new();
    dec.push(bytes).unwrap();
    let e = dec.next_frame().unwrap_err();
    assert_eq!(dec.next_frame().unwrap_err(), ZapError::Failed);
    e
}

#[test]
fn frame_limit_with_bulk_exemption() {
    // SENDRECV of exactly 1 MiB is fine once complete; one byte more is refused from the
    // header alone.
    let mut dec = FrameDecoder::new();
    dec.push(&header(2, MAX_FRAME_LEN as u32)).unwrap();
    assert_eq!(dec.next_frame().unwrap(), None);
    assert!(matches!(
        first_error(&header(2, MAX_FRAME_LEN as u32 + 1)),
        ZapError::TooLong { msg_type: MsgType::SendRecv, .. }
    ));
    // READ_RESP and WRITE_REQ are exempt, up to the bulk bound.
    for ty in [5, 6] {
        let mut dec = FrameDecoder::new();
        dec.push(&header(ty, 2 * MAX_FRAME_LEN as u32)).unwrap();
        assert_eq!(dec.next_frame().unwrap(), None);
        assert!(matches!(first_error(&header(ty, DEFAULT_MAX_BULK_LEN as u32 + 1)), ZapError::TooLong { .. }));
    }
    // A 2 MiB READ_RESP decodes.
    let data = Bytes::from(vec![7u8; 2 * MAX_FRAME_LEN]);
    let f = Frame::new(9, Msg::ReadResp(ReadResp { status: 0, pad: [0; 2], dst_ptr: 0, data: data.clone() }));
    let mut b = BytesMut::new();
    f.encode(&mut b);
    let mut dec = FrameDecoder::new();
    for c in b.chunks(65536) {
        dec.push(c).unwrap();
    }
    assert_eq!(dec.next_frame().unwrap(), Some(f));
}

#[test]
fn malformed_input_gives_typed_errors() {
    assert_eq!(first_error(&header(0, 24)), ZapError::UnknownType(0));
    assert_eq!(first_error(&header(11, 24)), ZapError::UnknownType(11));
    assert!(matches!(
        first_error(&header(2, 10)),
        ZapError::TooShort { msg_type: MsgType::SendRecv, len: 10, min: 24 }
    ));
    let mut rr = header(4, 40);
    rr.resize(40, 0);
    assert!(matches!(first_error(&rr), ZapError::WrongLength { expected: 36, .. }));
    let mut sr = header(2, 30);
    sr.extend_from_slice(&5u32.to_be_bytes());
    sr.resize(30, 0);
    assert!(matches!(first_error(&sr), ZapError::DataLen { data_len: 5, avail: 6, .. }));
    assert_eq!(RailConnMsg::decode(&[0; 63]), Err(ZapError::ConnMsgLen(63)));
    assert!(matches!(Frame::decode(&Bytes::from(header(10, 24))), Err(ZapError::Truncated { need: 24, have: 20 })));
}

#[test]
fn buffer_is_bounded() {
    let mut dec = FrameDecoder::with_limits(1024, 4096);
    let e = dec.push(&vec![0; 4096 + MAX_FRAME_LEN + 1]).unwrap_err();
    assert!(matches!(e, ZapError::BufferFull { .. }));
    assert_eq!(dec.push(&[0]), Err(ZapError::Failed));
}

#[test]
fn connect_new_matches_the_wire_form() {
    let m = RailConnMsg::new(10858, 1, true);
    let f = Frame::new(1, Msg::Connect(Connect::new(&m)));
    let mut b = BytesMut::new();
    f.encode(&mut b);
    assert_eq!(b.len(), 100);
    assert_eq!(&b[..12], &[0, 1, 0, 0, 0, 0, 0, 100, 1, 0, 0, 0]);
    assert_eq!(&b[20..36], b"\x01\x03\x01\x00SOCKET\0\0\0\0\0\x40");
    assert_eq!(&b[36..44], b"\x04\x02\x00\x00none");
}

proptest! {
    #[test]
    fn direct_read_resp_is_the_encoded_frame(xid: u32, ctxt: u64, status: u16, data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut direct = BytesMut::new();
        Frame::encode_read_resp(xid, ctxt, status, &data, &mut direct);
        let frame = Frame {
            reserved: 0,
            xid,
            ctxt,
            msg: Msg::ReadResp(ReadResp { status, pad: [0; 2], dst_ptr: 0, data: Bytes::from(data) }),
        };
        let mut encoded = BytesMut::new();
        frame.encode(&mut encoded);
        prop_assert_eq!(direct, encoded);
    }
}
