//! Property tests of the request layer: every request, reply and rendezvous variant
//! round-trips; any input that decodes re-encodes to itself; truncated, corrupted and
//! random input gives errors, never panics; directory JSON renders and parses back, and
//! the splitter keeps every part under the limit.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use pvloom_ldms::request::dir::{self, DirEntry, DirInfo, DirTime};
use pvloom_ldms::request::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn bytes_in(r: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), r).prop_map(Bytes::from)
}

/// Request commands this layer keeps opaque.
fn other_request_cmd() -> impl Strategy<Value = u32> {
    prop_oneof![Just(CMD_AUTH_MSG), Just(CMD_AUTH), CMD_MSG..CMD_REPLY, CMD_XPRT_PRIVATE..=u32::MAX]
}

/// Reply commands this layer keeps opaque.
fn other_reply_cmd() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(CMD_REPLY),
        Just(CMD_AUTH_CHALLENGE_REPLY),
        Just(CMD_AUTH_APPROVAL_REPLY),
        Just(CMD_AUTH_REPLY),
        CMD_MSG_SUB_REPLY..CMD_XPRT_PRIVATE,
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let body = prop_oneof![
        any::<u32>().prop_map(|flags| RequestBody::Dir { flags }),
        Just(RequestBody::DirCancel),
        (any::<u32>(), bytes(600)).prop_map(|(flags, path)| RequestBody::Lookup { flags, path }),
        any::<(u64, u32)>().prop_map(|(set_id, flags)| RequestBody::ReqNotify { set_id, flags }),
        any::<u64>().prop_map(|set_id| RequestBody::CancelNotify { set_id }),
        any::<u64>().prop_map(|set_id| RequestBody::CancelPush { set_id }),
        bytes(300).prop_map(|inst_name| RequestBody::SetDelete { inst_name }),
        any::<(u32, i32)>().prop_map(|(quota, rc)| RequestBody::SendQuota { quota, rc }),
        bytes(300).prop_map(|msg| RequestBody::Send { msg }),
        (other_request_cmd(), bytes(300)).prop_map(|(cmd, body)| RequestBody::Other { cmd, body }),
    ];
    (any::<u64>(), body).prop_map(|(xid, body)| Request::new(xid, body))
}

fn reply() -> impl Strategy<Value = Reply> {
    let body = prop_oneof![
        (any::<bool>(), any::<(u32, u32, u32)>(), bytes(600)).prop_map(|(update, (dir_type, more, jl), json)| {
            ReplyBody::Dir { update, dir_type, more, json_data_len: jl, json }
        }),
        Just(ReplyBody::DirCancel),
        Just(ReplyBody::Lookup),
        (any::<(u32, [u8; 4], [u8; 4])>(), bytes(100)).prop_map(|((event_type, pad, len_hi), data)| {
            ReplyBody::ReqNotify(NotifyEvent { event_type, pad, len_hi, data })
        }),
        (any::<(u64, u32, u32)>(), bytes(600))
            .prop_map(|((set_id, flags, data_off), data)| ReplyBody::Push(PushReply { set_id, flags, data_off, data })),
        any::<(i64, i64)>().prop_map(|(sec, nsec)| ReplyBody::SetDelete { recv_ts: Timespec { sec, nsec } }),
        (other_reply_cmd(), bytes(300)).prop_map(|(cmd, body)| ReplyBody::Other { cmd, body }),
    ];
    (any::<(u64, u32)>(), body).prop_map(|((xid, rc), body)| Reply::new(xid, rc, body))
}

fn timespec() -> impl Strategy<Value = Timespec> {
    any::<(i64, i64)>().prop_map(|(sec, nsec)| Timespec { sec, nsec })
}

fn rendezvous() -> impl Strategy<Value = RendezvousMsg> {
    let info = proptest::collection::vec(
        (bytes_in(1..=255), bytes_in(0..=255)).prop_map(|(key, value)| SetInfoPair { key, value }),
        0..5,
    );
    let profile =
        proptest::option::of((timespec(), timespec()).prop_map(|(req_recv, share)| LookupProfile { req_recv, share }));
    let lookup = (any::<(u64, u32, u32, u32, u32, u32, u32)>(), bytes_in(0..=255), bytes_in(0..=255), info, profile)
        .prop_map(
            |((set_id, more, meta_len, data_len, card, schema_len, array_card), schema, instance, info, profile)| {
                RendezvousBody::Lookup(LookupParam {
                    set_id,
                    more,
                    meta_len,
                    data_len,
                    card,
                    schema_len,
                    array_card,
                    schema,
                    instance,
                    info,
                    profile,
                })
            },
        );
    let push = any::<(u64, u64, u32)>().prop_map(|(lookup_set_id, push_set_id, flags)| {
        RendezvousBody::Push(PushParam { lookup_set_id, push_set_id, flags })
    });
    (any::<u64>(), prop_oneof![lookup, push]).prop_map(|(xid, body)| RendezvousMsg { xid, body })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![request().prop_map(Message::Request), reply().prop_map(Message::Reply)]
}

fn enc(m: &Message) -> Bytes {
    let mut b = BytesMut::new();
    encode(m, &mut b);
    b.freeze()
}

fn enc_rdv(m: &RendezvousMsg) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    b.freeze()
}

/// Decoding never panics, and whatever decodes re-encodes to the same bytes.
fn check_any(data: &Bytes) {
    if let Ok(m) = decode(data) {
        prop_assert_eq_bytes(&enc(&m), data);
    }
    if let Ok(m) = RendezvousMsg::decode(data) {
        prop_assert_eq_bytes(&enc_rdv(&m), data);
    }
}

fn prop_assert_eq_bytes(a: &[u8], b: &[u8]) {
    assert_eq!(a, b, "decoded input did not re-encode to itself");
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::string::string_regex("[a-zA-Z0-9_/.:-]{0,24}").unwrap(),
        1 => proptest::string::string_regex("(?s).{0,12}").unwrap(),
    ]
}

fn dir_time() -> impl Strategy<Value = DirTime> {
    any::<(u32, u32)>().prop_map(|(sec, usec)| DirTime { sec, usec })
}

fn dir_entry() -> impl Strategy<Value = DirEntry> {
    let info = proptest::collection::vec((text(), text()).prop_map(|(key, value)| DirInfo { key, value }), 0..3);
    (
        (text(), text(), text(), text()),
        any::<(u32, u32, u32, u32, u32, u32, u32)>(),
        0u32..0o1000,
        any::<(u64, u64)>(),
        (dir_time(), dir_time()),
        info,
    )
        .prop_map(
            |(
                (name, schema, digest, flags),
                (meta_size, data_size, heap_size, uid, gid, card, array_card),
                perm,
                (meta_gn, data_gn),
                (timestamp, duration),
                info,
            )| DirEntry {
                name,
                schema,
                digest,
                flags,
                meta_size,
                data_size,
                heap_size,
                uid,
                gid,
                perm,
                card,
                array_card,
                meta_gn,
                data_gn,
                timestamp,
                duration,
                info,
            },
        )
}

proptest! {
    #[test]
    fn message_round_trip(m in message()) {
        let b = enc(&m);
        prop_assert_eq!(b.len(), m.encoded_len());
        prop_assert_eq!(decode(&b).unwrap(), m);
    }

    #[test]
    fn rendezvous_round_trip(m in rendezvous()) {
        let b = enc_rdv(&m);
        prop_assert_eq!(b.len(), m.encoded_len());
        prop_assert_eq!(RendezvousMsg::decode(&b).unwrap(), m);
    }

    #[test]
    fn truncations_fail_cleanly(m in message(), r in rendezvous(), cut in any::<prop::sample::Index>()) {
        let b = enc(&m);
        let short = b.slice(..cut.index(b.len()));
        prop_assert!(decode(&short).is_err());
        check_any(&short);
        let b = enc_rdv(&r);
        let short = b.slice(..cut.index(b.len()));
        prop_assert!(RendezvousMsg::decode(&short).is_err());
        check_any(&short);
    }

    #[test]
    fn corrupted_messages_never_panic(m in message(), r in rendezvous(), at in any::<prop::sample::Index>(), x in 1u8..) {
        for b in [enc(&m), enc_rdv(&r)] {
            let mut v = b.to_vec();
            let i = at.index(v.len());
            v[i] ^= x;
            check_any(&Bytes::from(v));
        }
    }

    #[test]
    fn random_bytes_never_panic(data in bytes(300)) {
        check_any(&data);
        let _ = dir::parse_dir(&data);
    }

    #[test]
    fn random_bodies_behind_valid_headers(xid in any::<u64>(), cmd in prop_oneof![0u32..20, 0x100u32..0x110], rc in any::<u32>(), body in bytes(200)) {
        // A header whose len is right gets the body parsers going.
        let reply = is_reply_cmd(cmd);
        let hdr = if reply { REPLY_HDR_LEN } else { REQUEST_HDR_LEN };
        let mut v = Vec::new();
        v.extend_from_slice(&xid.to_le_bytes());
        v.extend_from_slice(&cmd.to_be_bytes());
        v.extend_from_slice(&((hdr + body.len()) as u32).to_be_bytes());
        if reply {
            v.extend_from_slice(&rc.to_be_bytes());
        }
        v.extend_from_slice(&body);
        check_any(&Bytes::from(v));
        for rcmd in [RENDEZVOUS_LOOKUP, RENDEZVOUS_PUSH] {
            let mut v = Vec::new();
            v.extend_from_slice(&xid.to_le_bytes());
            v.extend_from_slice(&rcmd.to_be_bytes());
            let len = (RENDEZVOUS_HDR_LEN + body.len()) as u32;
            v.extend_from_slice(&if rcmd == RENDEZVOUS_LOOKUP { len.to_le_bytes() } else { len.to_be_bytes() });
            v.extend_from_slice(&body);
            check_any(&Bytes::from(v));
        }
    }

    #[test]
    fn dir_json_round_trip(entries in proptest::collection::vec(dir_entry(), 0..6)) {
        let json = dir::render_dir(&entries);
        prop_assert_eq!(dir::parse_dir(json.as_bytes()).unwrap(), entries.clone());
        for e in &entries {
            let u = dir::render_dir_update(e);
            prop_assert_eq!(u.last(), Some(&0));
            prop_assert_eq!(dir::parse_dir(&u).unwrap(), vec![e.clone()]);
        }
        // Through a whole reply too.
        let m = Message::Reply(Reply::new(7, 0, dir::dir_reply(json.clone(), false)));
        let Message::Reply(Reply { body: ReplyBody::Dir { json: j, json_data_len, .. }, .. }) = decode(&enc(&m)).unwrap() else {
            panic!()
        };
        prop_assert_eq!(json_data_len as usize, json.len());
        prop_assert_eq!(dir::parse_dir(&j).unwrap(), entries);
    }

    #[test]
    fn split_dir_respects_the_limit(entries in proptest::collection::vec(dir_entry(), 0..12), extra in 0usize..2000) {
        let longest = entries.iter().map(|e| { let mut s = String::new(); dir::render_entry(&mut s, e, true); s.len() }).max().unwrap_or(0);
        let msg_max = 35 + dir::DIR_PREFIX.len() + longest + 1 + extra;
        let parts = dir::split_dir(&entries, msg_max).unwrap();
        let room = msg_max - 35;
        let mut all = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            // Below the limit before the closing "]}".
            prop_assert!(p.len() - 2 < room, "part {} of {} bytes, room {}", i, p.len(), room);
            let got = dir::parse_dir(p.as_bytes()).unwrap();
            prop_assert!(!got.is_empty() || parts.len() == 1);
            // A part ends only where the next entry would not have fit.
            if let Some(next) = parts.get(i + 1) {
                let first = &dir::parse_dir(next.as_bytes()).unwrap()[0];
                let mut s = String::new();
                dir::render_entry(&mut s, first, true);
                prop_assert!(p.len() - 2 + s.len() >= room);
            }
            all.extend(got);
        }
        prop_assert_eq!(&all, &entries);
        let one = dir::split_dir(&entries, usize::MAX).unwrap();
        prop_assert_eq!(one, vec![dir::render_dir(&entries)]);
    }

    #[test]
    fn perm_strings(perm in 0u32..0o1000) {
        let s = dir::perm_string(perm);
        prop_assert_eq!(s.len(), 10);
        prop_assert_eq!(dir::parse_perm(&s).unwrap(), perm);
    }
}

#[test]
fn empty_directory_and_oversized_entry() {
    assert_eq!(dir::split_dir(&[], LDMS_MSG_MAX).unwrap(), ["{ \"directory\" : []}"]);
    assert_eq!(dir::render_dir(&[]), "{ \"directory\" : []}");
    let big = DirEntry { name: "x".repeat(2000), ..Default::default() };
    assert!(matches!(dir::split_dir(&[big], 1000), Err(dir::DirError::EntryTooLarge { msg_max: 1000, .. })));
    assert_eq!(dir::perm_string(0o440), "-r--r-----");
    assert!(dir::parse_perm("drwxr-xr-x").is_err());
    assert!(dir::parse_dir(b"{ \"directory\" : [ {\"name\":1}]}").is_err());
    assert!(dir::parse_dir(b"{").is_err());
}

#[test]
fn typed_errors() {
    let short = Bytes::from_static(&[0; 10]);
    assert!(matches!(decode(&short), Err(RequestError::Truncated { .. })));
    // DIR with a len that does not match the data.
    let mut v = vec![0u8; 20];
    v[15] = 21;
    assert!(matches!(decode(&Bytes::from(v.clone())), Err(RequestError::HeaderLen { len: 21, actual: 20 })));
    // DIR with a trailing byte.
    v.push(0);
    assert!(matches!(decode(&Bytes::from(v)), Err(RequestError::Trailing { cmd: 0, extra: 1 })));
    // LOOKUP whose path is not NUL-terminated.
    let q = Request::new(1, RequestBody::Lookup { flags: 0, path: Bytes::from_static(b"ab") });
    let mut b = enc(&Message::Request(q)).to_vec();
    *b.last_mut().unwrap() = b'c';
    assert_eq!(decode(&Bytes::from(b)), Err(RequestError::MissingNul("LOOKUP path")));
    // A path_len past the end allocates nothing and fails.
    let mut b = enc(&Message::Request(Request::new(1, RequestBody::Lookup { flags: 0, path: Bytes::new() }))).to_vec();
    b[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(decode(&Bytes::from(b)), Err(RequestError::Truncated { .. })));
    let r =
        RendezvousMsg { xid: 0, body: RendezvousBody::Push(PushParam { lookup_set_id: 1, push_set_id: 2, flags: 3 }) };
    let mut b = enc_rdv(&r).to_vec();
    b[11] = 9;
    assert_eq!(RendezvousMsg::decode(&Bytes::from(b)), Err(RequestError::UnknownRendezvous(9)));
    let mut l = LookupParam {
        set_id: 1,
        more: 0,
        meta_len: 0,
        data_len: 0,
        card: 0,
        schema_len: 0,
        array_card: 1,
        schema: schema_item(b"s"),
        instance: name_item(b"i"),
        info: vec![SetInfoPair { key: Bytes::new(), value: name_item(b"v") }],
        profile: None,
    };
    let mut out = BytesMut::new();
    let m = RendezvousMsg { xid: 0, body: RendezvousBody::Lookup(l.clone()) };
    assert_eq!(m.encode(&mut out), Err(RequestError::EmptyInfoKey));
    l.info = vec![SetInfoPair { key: Bytes::from(vec![1; 256]), value: Bytes::new() }];
    let m = RendezvousMsg { xid: 0, body: RendezvousBody::Lookup(l) };
    assert_eq!(m.encode(&mut out), Err(RequestError::ItemTooLong(256)));
    assert!(out.is_empty());
}
