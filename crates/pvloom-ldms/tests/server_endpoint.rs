//! `ServerConn` on virtual time: pushes, directory updates, set deletion, bounds of
//! READ_REQ, access, the handshake deadline, malformed input, back-pressure.

mod server_util;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};
use pvloom_core::harness::{Side, StreamPair};
use pvloom_ldms::request::dir::parse_dir;
use pvloom_ldms::request::{
    self, DIR_ADD, DIR_DEL, DIR_F_NOTIFY, DIR_UPD, LOOKUP_BY_SCHEMA, LOOKUP_RE, PUSH_REPLY_F_MORE, RBD_F_PUSH,
    RBD_F_PUSH_CHANGE, RendezvousBody, RendezvousMsg, ReplyBody, Request, RequestBody, UPD_F_PUSH, UPD_F_PUSH_LAST,
};
use pvloom_ldms::server::{
    Credentials, EACCES, EINVAL, ENOENT, ENOTSUP, ServerConfig, ServerConn, ServerEvent, SetRegistry,
    ZAP_ERR_REMOTE_LEN, ZAP_ERR_REMOTE_MAP, ZAP_ERR_REMOTE_PERMISSION,
};
use pvloom_ldms::set::{MetricValue, Timestamp};
use pvloom_ldms::zap::{Frame, Msg};
use server_util::*;

type Pair = StreamPair<Client, ServerConn>;

fn pair(registry: &Arc<SetRegistry>, config: ServerConfig) -> Pair {
    let now = std::time::Instant::now();
    let mut p = StreamPair::new(Client::new(now), ServerConn::new(registry.clone(), config, now));
    p.drive();
    assert!(p.client.session.is_open());
    assert!(matches!(p.server_events.pop_front(), Some(ServerEvent::Connected { .. })));
    p
}

fn ts(sec: u32) -> Timestamp {
    Timestamp { sec, usec: 0 }
}

fn pushes(frames: &[Frame]) -> Vec<request::PushReply> {
    frames
        .iter()
        .filter_map(reply_of)
        .filter_map(|r| match r.body {
            ReplyBody::Push(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn push_meta_first_then_data_then_meta_again_and_last_on_cancel() {
    let reg = SetRegistry::new();
    let h = reg.publish(small_set("prod/s", 0, 0, 0o440)).unwrap();
    let mut p = pair(&reg, ServerConfig::default());
    p.client.send(push_msg(h.set_id(), RBD_F_PUSH | RBD_F_PUSH_CHANGE));
    p.drive();
    let (meta_sz, total) = h.read(|s| (s.meta().meta_sz as usize, s.image().len()));
    for n in 0..5u32 {
        h.transaction(ts(10 + n), ts(10 + n), |s| s.set_u64(1, u64::from(n)).unwrap());
        p.drive();
    }
    // A meta change: the next push carries meta and data again.
    h.update(|s| s.set(0, &MetricValue::U64(77)).unwrap());
    h.transaction(ts(20), ts(20), |s| s.set_u64(1, 99).unwrap());
    p.drive();
    let got = pushes(&p.client.take());
    assert_eq!(got.len(), 6);
    assert_eq!((got[0].data_off, got[0].data.len()), (0, total));
    for g in &got[1..5] {
        assert_eq!((g.data_off as usize, g.data.len()), (meta_sz, total - meta_sz));
        assert_eq!(g.flags, UPD_F_PUSH);
        assert_eq!(g.set_id, h.set_id() + 100);
    }
    assert_eq!((got[5].data_off, got[5].data.len()), (0, total));
    assert_eq!(&got[5].data[..], h.read(|s| s.image().to_vec()).as_slice());
    // Writes without a transaction end push nothing.
    h.update(|s| s.set_u64(1, 5).unwrap());
    p.drive();
    assert!(pushes(&p.client.take()).is_empty());
    p.client.send(req_msg(&Request::new(0, RequestBody::CancelPush { set_id: h.set_id() })));
    p.drive();
    let last = pushes(&p.client.take());
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].flags, last[0].data.len()), (UPD_F_PUSH | UPD_F_PUSH_LAST, 0));
    h.transaction(ts(30), ts(30), |_| ());
    p.drive();
    assert!(pushes(&p.client.take()).is_empty(), "no push after cancel");
    assert!(p.server.stats().pushes >= 6);
}

#[test]
fn push_without_change_flag_waits_for_explicit_push() {
    let reg = SetRegistry::new();
    let h = reg.publish(small_set("prod/s", 0, 0, 0o440)).unwrap();
    let mut p = pair(&reg, ServerConfig::default());
    p.client.send(push_msg(h.set_id(), RBD_F_PUSH));
    p.drive();
    h.transaction(ts(1), ts(1), |_| ());
    p.drive();
    assert!(pushes(&p.client.take()).is_empty());
    h.push();
    p.drive();
    assert_eq!(pushes(&p.client.take()).len(), 1);
}

#[test]
fn a_large_set_is_pushed_in_parts() {
    let reg = SetRegistry::new();
    let schema = pvloom_ldms::set::Schema {
        name: "big".into(),
        metrics: vec![pvloom_ldms::set::MetricSpec::new("v", pvloom_ldms::set::ValueType::U64Array, 300_000, false)],
        digest: None,
        meta_sz: None,
        heap_sz: None,
    };
    let info = pvloom_ldms::set::SetInfo {
        producer: "p".into(),
        instance: "p/big".into(),
        uid: 0,
        gid: 0,
        perm: 0o444,
        meta_gn: 1,
    };
    let h = reg.publish(pvloom_ldms::set::LocalSet::new(&schema, &info).unwrap()).unwrap();
    let mut p = pair(&reg, ServerConfig::default());
    p.client.send(push_msg(h.set_id(), 3));
    p.drive();
    h.transaction(ts(1), ts(1), |_| ());
    p.drive();
    let got = pushes(&p.client.take());
    let total = h.read(|s| s.image().len());
    assert!(got.len() >= 3, "{} parts", got.len());
    let mut off = 0;
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.data_off as usize, off);
        assert_eq!(g.flags & PUSH_REPLY_F_MORE != 0, i + 1 < got.len());
        off += g.data.len();
    }
    assert_eq!(off, total);
}

#[test]
fn dir_notify_add_upd_del_and_set_delete_to_lookers() {
    let reg = SetRegistry::new();
    let a = reg.publish(small_set("prod/a", 0, 0, 0o440)).unwrap();
    let mut watcher = pair(&reg, ServerConfig::default());
    let mut looker = pair(&reg, ServerConfig::default());
    watcher.client.send(dir(7, DIR_F_NOTIFY));
    looker.client.send(dir(8, DIR_F_NOTIFY));
    looker.client.send(lookup(9, 0, "prod/a"));
    watcher.drive();
    looker.drive();
    watcher.client.take();
    looker.client.take();
    let b = reg.publish(small_set("prod/b", 0, 0, 0o440)).unwrap();
    b.update(|s| s.set_info("k", "v"));
    watcher.drive();
    let kinds: Vec<_> = watcher
        .client
        .take()
        .iter()
        .filter_map(reply_of)
        .map(|r| match r.body {
            ReplyBody::Dir { update: true, dir_type, json, .. } => {
                assert_eq!(r.xid, 7);
                assert_eq!(*json.last().unwrap(), 0);
                (dir_type, parse_dir(&json).unwrap()[0].clone())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds.len(), 2);
    assert_eq!((kinds[0].0, kinds[0].1.name.as_str(), kinds[0].1.info.len()), (DIR_ADD, "prod/b", 0));
    assert_eq!((kinds[1].0, kinds[1].1.info[0].key.as_str()), (DIR_UPD, "k"));
    looker.drive();
    looker.client.take();
    a.unpublish();
    watcher.drive();
    looker.drive();
    // The watcher never looked `a` up: DIR DEL. The looker: SET_DELETE only.
    let w: Vec<_> = watcher.client.take().iter().filter_map(reply_of).collect();
    assert!(matches!(&w[..], [r] if matches!(r.body, ReplyBody::Dir { dir_type: DIR_DEL, .. })), "{w:?}");
    let l = looker.client.take();
    let del: Vec<_> = l.iter().filter_map(request_of).collect();
    assert_eq!(del.len(), 1, "{l:?}");
    assert!(l.iter().filter_map(reply_of).all(|r| !matches!(r.body, ReplyBody::Dir { update: true, .. })));
    let RequestBody::SetDelete { inst_name } = &del[0].body else { panic!() };
    assert_eq!(&inst_name[..], b"prod/a");
    let reply = request::Reply::new(del[0].xid, 0, ReplyBody::SetDelete { recv_ts: Default::default() });
    let mut bytes = bytes::BytesMut::new();
    reply.encode(&mut bytes);
    looker.client.send(Msg::SendRecv(bytes.freeze()));
    looker.drive();
    assert!(looker.server_events.iter().any(|e| matches!(e, ServerEvent::SetDeleteAcked { name } if name == "prod/a")));
    // Reads of the deleted set's map fail.
    looker.client.send(read_msg(a.map_key(), a.base(), 16));
    looker.drive();
    let r = looker.client.take();
    assert!(matches!(&r[0].msg, Msg::ReadResp(x) if x.status == ZAP_ERR_REMOTE_MAP && x.data.is_empty()));
    // DIR_CANCEL: no more updates.
    watcher.client.send(req_msg(&Request::new(70, RequestBody::DirCancel)));
    watcher.drive();
    assert!(matches!(reply_of(&watcher.client.take()[0]).unwrap().body, ReplyBody::DirCancel));
    reg.publish(small_set("prod/c", 0, 0, 0o440)).unwrap();
    watcher.drive();
    assert!(watcher.client.take().is_empty());
    drop(watcher);
    drop(looker);
    assert_eq!(reg.registrations(), 0, "closed connections leave no registration");
}

#[test]
fn lookup_kinds_and_errors() {
    let reg = SetRegistry::new();
    for n in ["h1/meminfo", "h1/vmstat", "h2/meminfo"] {
        reg.publish(small_set(n, 0, 0, 0o440)).unwrap();
    }
    let mut p = pair(&reg, ServerConfig::default());
    let names = |frames: Vec<Frame>| -> Vec<(String, u32)> {
        frames
            .iter()
            .filter_map(|f| match &f.msg {
                Msg::Rendezvous(r) => match RendezvousMsg::decode(&r.msg).unwrap().body {
                    RendezvousBody::Lookup(l) => {
                        Some((String::from_utf8_lossy(l.instance_name()).into_owned(), l.more))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    p.client.send(lookup(1, LOOKUP_RE, "meminfo$"));
    p.drive();
    assert_eq!(names(p.client.take()), vec![("h1/meminfo".into(), 1), ("h2/meminfo".into(), 0)]);
    p.client.send(lookup(2, LOOKUP_BY_SCHEMA, "test"));
    p.drive();
    assert_eq!(names(p.client.take()).len(), 3);
    p.client.send(lookup(3, LOOKUP_BY_SCHEMA | LOOKUP_RE, "^te"));
    p.drive();
    assert_eq!(names(p.client.take()).len(), 3);
    p.client.send(lookup(4, 0, "h1/vmstat"));
    p.drive();
    assert_eq!(names(p.client.take()), vec![("h1/vmstat".into(), 0)]);
    for (xid, flags, path, rc) in [(5, 0, "nope", ENOENT), (6, LOOKUP_RE, "(", EINVAL), (7, LOOKUP_RE, "zzz", ENOENT)] {
        p.client.send(lookup(xid, flags, path));
        p.drive();
        let r = reply_of(&p.client.take()[0]).unwrap();
        assert_eq!((r.xid, r.rc, r.body), (xid, rc, ReplyBody::Lookup));
    }
}

#[test]
fn access_for_a_non_root_peer() {
    let reg = SetRegistry::new();
    let open = reg.publish(small_set("p/open", 0, 0, 0o444)).unwrap();
    let shut = reg.publish(small_set("p/shut", 0, 0, 0o440)).unwrap();
    let group = reg.publish(small_set("p/group", 0, 50, 0o440)).unwrap();
    let config = ServerConfig { credentials: Credentials::user(1000, 100, vec![50]), ..ServerConfig::default() };
    let mut p = pair(&reg, config);
    p.client.send(dir(1, 0));
    p.drive();
    let ReplyBody::Dir { json, .. } = reply_of(&p.client.take()[0]).unwrap().body else { panic!() };
    let listed: Vec<_> = parse_dir(&json).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(listed, vec!["p/open", "p/group"]);
    p.client.send(lookup(2, 0, "p/shut"));
    p.client.send(lookup(3, LOOKUP_RE, "shut"));
    p.drive();
    let rcs: Vec<_> = p.client.take().iter().filter_map(reply_of).map(|r| r.rc).collect();
    assert_eq!(rcs, vec![EACCES, ENOENT]);
    p.client.send(read_msg(shut.map_key(), shut.base(), 8));
    p.client.send(read_msg(open.map_key(), open.base(), 8));
    p.client.send(read_msg(group.map_key(), group.base(), 8));
    p.drive();
    let st: Vec<_> = p
        .client
        .take()
        .iter()
        .map(|f| match &f.msg {
            Msg::ReadResp(r) => (r.status, r.data.len()),
            m => panic!("{m:?}"),
        })
        .collect();
    assert_eq!(st, vec![(ZAP_ERR_REMOTE_PERMISSION, 0), (0, 8), (0, 8)]);
}

#[test]
fn read_bounds() {
    let reg = SetRegistry::new();
    let h = reg.publish(small_set("p/s", 0, 0, 0o440)).unwrap();
    let img = h.read(|s| s.image().to_vec());
    let (key, base, n) = (h.map_key(), h.base(), img.len() as u64);
    let mut p = pair(&reg, ServerConfig::default());
    let cases = [
        (key, base, n as u32, 0, n as usize),
        (key, base + 8, 16, 0, 16),
        (key, base + n - 1, 1, 0, 1),
        (key, base + n - 1, 2, ZAP_ERR_REMOTE_LEN, 0),
        (key, base + n, 0, 0, 0),
        (key, base - 1, 4, ZAP_ERR_REMOTE_LEN, 0),
        (key, u64::MAX, u32::MAX, ZAP_ERR_REMOTE_LEN, 0),
        (key, base, u32::MAX, ZAP_ERR_REMOTE_LEN, 0),
        (key + 1, base, 4, ZAP_ERR_REMOTE_MAP, 0),
    ];
    for (i, (k, a, l, ..)) in cases.iter().enumerate() {
        p.client.send_ctxt(read_msg(*k, *a, *l), 0xabc0 + i as u64);
    }
    p.drive();
    let got = p.client.take();
    assert_eq!(got.len(), cases.len());
    for (i, (f, (_, a, _, status, len))) in got.iter().zip(cases).enumerate() {
        let Msg::ReadResp(r) = &f.msg else { panic!() };
        assert_eq!((r.status, r.data.len()), (status, len), "case {i}");
        assert_eq!(f.ctxt, 0xabc0 + i as u64);
        if len > 0 {
            let off = (a - base) as usize;
            assert_eq!(&r.data[..], &img[off..off + len]);
        }
    }
    assert_eq!(p.server.stats().read_errors, 5);
}

#[test]
fn message_service_requests_get_ldmsd_disabled_answers() {
    let reg = SetRegistry::new();
    let mut p = pair(&reg, ServerConfig::default());
    // MSG_SUB "foo": match_len bitfield, rate, name (the reply needs only the xid).
    let mut sub = vec![0, 0, 0, 8];
    sub.extend_from_slice(&[0; 8]);
    sub.extend_from_slice(b"foo\0");
    p.client.send(req_msg(&Request::new(0x55, RequestBody::Other { cmd: 12, body: Bytes::from(sub) })));
    let mut part = vec![0u8; 28];
    part.extend_from_slice(&2u32.to_le_bytes());
    part.extend_from_slice(b"payload");
    p.client.send(req_msg(&Request::new(0, RequestBody::Other { cmd: 11, body: Bytes::from(part) })));
    p.client.send(req_msg(&Request::new(0, RequestBody::SendQuota { quota: 5, rc: 0 })));
    p.drive();
    let got = p.client.take();
    assert_eq!(got.len(), 2);
    let r = reply_of(&got[0]).unwrap();
    assert_eq!((r.xid, r.rc, r.body.cmd()), (0x55, ENOTSUP, 0x10b));
    let ReplyBody::Other { body, .. } = r.body else { panic!() };
    assert_eq!(&body[4..], b"LDMS Message Service disabled\0");
    let q = request_of(&got[1]).unwrap();
    assert_eq!(q.body, RequestBody::SendQuota { quota: 0, rc: ENOTSUP as i32 });
    assert!(p.closed().is_none());
}

#[test]
fn silent_peer_is_closed_at_the_handshake_deadline() {
    let reg = SetRegistry::new();
    let now = std::time::Instant::now();
    let mut client = Client::new(now);
    client.send_connect = false;
    let mut p = StreamPair::new(client, ServerConn::new(reg.clone(), ServerConfig::default(), now));
    p.advance(Duration::from_secs(9));
    assert!(p.closed().is_none());
    p.advance(Duration::from_secs(2));
    assert!(matches!(p.closed(), Some((Side::Server, CloseReason::TimedOut(_)))), "{:?}", p.closed());
}

#[test]
fn malformed_input_closes_with_a_protocol_reason() {
    let reg = SetRegistry::new();
    reg.publish(small_set("p/s", 0, 0, 0o440)).unwrap();
    let bad: Vec<Vec<u8>> = vec![
        // A SENDRECV whose LDMS header length lies.
        {
            let mut f = bytes::BytesMut::new();
            Frame::new(9, Msg::SendRecv(Bytes::from_static(&[0; 16]))).encode(&mut f);
            let mut v = f.to_vec();
            v[24 + 12..24 + 16].copy_from_slice(&99u32.to_be_bytes());
            v
        },
        // An unknown request.
        {
            let mut f = bytes::BytesMut::new();
            Frame::new(9, req_msg(&Request::new(1, RequestBody::Other { cmd: 77, body: Bytes::new() })).clone())
                .encode(&mut f);
            f.to_vec()
        },
        // A frame over the 1 MiB limit (header only).
        {
            let mut v = vec![0, 2, 0, 0];
            v.extend_from_slice(&((MAX_FRAME + 1) as u32).to_be_bytes());
            v.extend_from_slice(&[0; 12]);
            v
        },
        // Garbage type.
        vec![0xff; 40],
    ];
    for (i, b) in bad.iter().enumerate() {
        let mut p = pair(&reg, ServerConfig::default());
        p.inject_to_server(b);
        assert!(matches!(p.closed(), Some((Side::Server, CloseReason::Protocol(_)))), "case {i}: {:?}", p.closed());
    }
}

#[test]
fn a_peer_that_does_not_read_stops_being_read_and_pushes_coalesce() {
    let reg = SetRegistry::new();
    let h = reg.publish(small_set("p/s", 0, 0, 0o440)).unwrap();
    let config = ServerConfig { max_queued: 64 * 1024, ..ServerConfig::default() };
    let mut p = pair(&reg, config);
    p.client.send(push_msg(h.set_id(), 3));
    p.drive();
    p.client_reads = false;
    p.window = 4096;
    let n = h.read(|s| s.image().len()) as u32;
    for _ in 0..2000 {
        p.client.send(read_msg(h.map_key(), h.base(), n));
    }
    for i in 0..100 {
        h.transaction(ts(i), ts(i), |_| ());
    }
    p.drive();
    assert!(!p.server.wants_input(), "input paused");
    assert!(p.server.queued() < 64 * 1024 + 2 * n as usize + 1024, "queue bounded: {}", p.server.queued());
    assert!(p.server.stats().pushes_coalesced > 0);
    p.client_reads = true;
    p.window = 1 << 20;
    p.drive();
    let got = p.client.take();
    let reads = got.iter().filter(|f| matches!(f.msg, Msg::ReadResp(_))).count();
    assert_eq!(reads, 2000, "every READ_REQ answered in the end");
    assert!(p.server.wants_input());
}

#[test]
fn reads_ahead_of_the_socket_are_bounded_below_max_queued() {
    // A peer with many READ_REQs in flight is answered at the socket's pace: the server
    // queues about a send buffer's worth (256 KiB) of answers and leaves the rest of the
    // requests unread, not max_queued (8 MiB) of answers that the allocator would keep.
    let reg = SetRegistry::new();
    let h = reg.publish(small_set("p/r", 0, 0, 0o440)).unwrap();
    let mut p = pair(&reg, ServerConfig::default());
    p.drive();
    p.client_reads = false;
    p.window = 4096;
    let n = h.read(|s| s.image().len()) as u32;
    let count = 4 * (256 * 1024) / n as usize;
    for _ in 0..count {
        p.client.send(read_msg(h.map_key(), h.base(), n));
    }
    p.drive();
    assert!(!p.server.wants_input(), "input paused");
    assert!(p.server.queued() < 256 * 1024 + 2 * n as usize + 1024, "queue bounded: {}", p.server.queued());
    p.client_reads = true;
    p.window = 1 << 20;
    p.drive();
    let got = p.client.take();
    let reads = got.iter().filter(|f| matches!(f.msg, Msg::ReadResp(_))).count();
    assert_eq!(reads, count, "every READ_REQ answered in the end");
    assert!(p.server.wants_input());
}

fn handshake_prefix() -> Vec<u8> {
    let c2s = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/ls-l-meminfo/c2s.bin"))
        .expect("captures");
    c2s[..124].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_input_never_panics_nor_leaks_bytes(
        frames in proptest::collection::vec((0u8..12, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..12),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let reg = SetRegistry::new();
        let h = reg.publish(small_set("p/s", 0, 0, 0o440)).unwrap();
        // Pushes and transactions happen on another set, so the read one stays fixed.
        let t = reg.publish(small_set("p/t", 0, 0, 0o440)).unwrap();
        let img = h.read(|s| s.image().to_vec());
        let now = std::time::Instant::now();
        let mut s = ServerConn::new(reg.clone(), ServerConfig::default(), now);
        let mut input = handshake_prefix();
        for (kind, x, body) in frames {
            let mut b = bytes::BytesMut::new();
            let msg = match kind {
                0 => read_msg(h.map_key(), h.base().wrapping_add(u64::from(x % 4096)), x >> 20),
                1 => read_msg(x | 0x100, u64::from(x) << 12, x),
                2 => dir(u64::from(x), x & 1),
                3 => lookup(1, x & 7, std::str::from_utf8(&body).unwrap_or(".*")),
                4 => push_msg(t.set_id(), x),
                5 => Msg::SendRecv(Bytes::from(body)),
                6 => Msg::Rendezvous(pvloom_ldms::zap::Rendezvous { map_key: x, access: 3, addr: 0, len: 0, msg: Bytes::from(body) }),
                7 => req_msg(&Request::new(0, RequestBody::CancelPush { set_id: u64::from(x % 3) })),
                _ => req_msg(&Request::new(u64::from(x), RequestBody::Other { cmd: 10 + u32::from(kind), body: Bytes::from(body) })),
            };
            Frame::new(x, msg).encode(&mut b);
            input.extend_from_slice(&b);
        }
        input.extend_from_slice(&noise);
        let mut out = bytes::BytesMut::new();
        for chunk in input.chunks(7) {
            s.handle_input(now, chunk);
            t.transaction(ts(1), ts(2), |_| ());
            s.poll_transmit(now, usize::MAX, &mut out);
            if s.poll_close().is_some() { break; }
        }
        let mut dec = pvloom_ldms::zap::FrameDecoder::new();
        dec.push(&out).unwrap();
        while let Some(f) = dec.next_frame().unwrap() {
            if let Msg::ReadResp(r) = &f.msg {
                if r.status != 0 {
                    prop_assert!(r.data.is_empty());
                } else if !r.data.is_empty() {
                    prop_assert!(img.windows(r.data.len()).any(|w| w == &r.data[..]), "bytes from outside the set");
                }
            }
        }
    }
}
