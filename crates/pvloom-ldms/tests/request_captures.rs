//! Every LDMS request, reply and rendezvous message in the shared LDMS captures: decoded,
//! checked against `frames.txt`, re-encoded byte for byte, and every directory JSON
//! parsed and rendered back byte for byte.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use pvloom_ldms::request::dir::{self, DirEntry};
use pvloom_ldms::request::{
    self, LDMS_MSG_MAX, LookupParam, Message, PushParam, RendezvousBody, RendezvousMsg, Reply, ReplyBody, Request,
    RequestBody,
};
use pvloom_ldms::zap::{Frame, FrameDecoder, Msg};

mod common;
use common::{root, scenarios};

/// What an LDMS-carrying frame decoded to.
#[derive(Debug)]
enum Ldms {
    Msg(Message),
    Rdv(RendezvousMsg),
}

/// Decodes one stream file; returns each LDMS message with its frame offset. Every message
/// is re-encoded and compared with its bytes, and its DIR JSON rendered back.
fn stream(path: &Path) -> Vec<(usize, Ldms)> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = FrameDecoder::new();
    dec.push(&bytes).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    while let Some(f) = dec.next_frame().unwrap() {
        let what = format!("{} @{off}", path.display());
        if let Some(m) = ldms_of(&f, &what) {
            out.push((off, m));
        }
        off += f.encoded_len();
    }
    assert_eq!(off, bytes.len(), "{}: whole stream", path.display());
    out
}

fn ldms_of(f: &Frame, what: &str) -> Option<Ldms> {
    match &f.msg {
        Msg::SendRecv(data) => {
            let m = request::decode(data).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut re = BytesMut::new();
            request::encode(&m, &mut re);
            assert_eq!(&re[..], &data[..], "{what}: re-encoded");
            assert_eq!(m.encoded_len(), data.len(), "{what}: encoded_len");
            if let Message::Reply(Reply { body: ReplyBody::Dir { .. }, .. }) = &m {
                check_dir_json(&m, what);
            }
            Some(Ldms::Msg(m))
        }
        Msg::Rendezvous(r) => {
            let m = RendezvousMsg::decode(&r.msg).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut re = BytesMut::new();
            m.encode(&mut re).unwrap();
            assert_eq!(&re[..], &r.msg[..], "{what}: rendezvous re-encoded");
            assert_eq!(m.encoded_len(), r.msg.len(), "{what}: encoded_len");
            if let RendezvousBody::Lookup(l) = &m.body {
                // The schema item is the name, its NUL and 33 zeros; the digest is not sent.
                assert_eq!(l.schema, request::schema_item(l.schema_name()), "{what}: schema item");
                assert_eq!(l.instance, request::name_item(l.instance_name()), "{what}: instance item");
                assert_eq!(l.schema_len, 0, "{what}: schema_len");
                assert!(l.profile.is_some(), "{what}: profiling tail");
                for p in &l.info {
                    assert_eq!(p, &request::SetInfoPair::new(p.key(), p.value()), "{what}: info item");
                }
            }
            Some(Ldms::Rdv(m))
        }
        _ => None,
    }
}

/// DIR JSON: parse, render back byte for byte, and rebuild the body as ldmsd does.
fn check_dir_json(m: &Message, what: &str) {
    let Message::Reply(Reply { body: body @ ReplyBody::Dir { update, dir_type, more, json_data_len, json }, .. }) = m
    else {
        unreachable!()
    };
    let entries = dir::parse_dir(json).unwrap_or_else(|e| panic!("{what}: {e}"));
    if *update {
        assert_eq!(entries.len(), 1, "{what}: one entry per update");
        assert_eq!(json.last(), Some(&0), "{what}: update JSON is NUL-terminated");
        assert_eq!(*json_data_len as usize, json.len(), "{what}: json_data_len counts the NUL");
        assert_eq!(dir::render_dir_update(&entries[0]), &json[..], "{what}: rendered update");
        assert_eq!(&dir::dir_update_reply(*dir_type, &entries[0]), body, "{what}: update body");
    } else {
        assert_ne!(json.last(), Some(&0), "{what}: list JSON has no NUL");
        assert_eq!(*json_data_len as usize, json.len(), "{what}: json_data_len");
        assert_eq!(dir::render_dir(&entries).as_bytes(), &json[..], "{what}: rendered list");
        assert_eq!(&dir::dir_reply(json.clone(), *more != 0), body, "{what}: list body");
    }
}

/// The messages `f` picks, with their frame offsets.
fn pick<'a, T>(s: &'a [(usize, Ldms)], f: impl Fn(&'a Ldms) -> Option<T>) -> Vec<(usize, T)> {
    s.iter().filter_map(|(o, m)| f(m).map(|t| (*o, t))).collect()
}

fn requests(s: &[(usize, Ldms)]) -> Vec<(usize, &Request)> {
    pick(s, |m| if let Ldms::Msg(Message::Request(q)) = m { Some(q) } else { None })
}

fn replies(s: &[(usize, Ldms)]) -> Vec<(usize, &Reply)> {
    pick(s, |m| if let Ldms::Msg(Message::Reply(p)) = m { Some(p) } else { None })
}

/// LOOKUP rendezvous messages: the lookup's xid and the set.
fn lookups(s: &[(usize, Ldms)]) -> Vec<(u64, &LookupParam)> {
    let rdv = pick(s, |m| {
        if let Ldms::Rdv(RendezvousMsg { xid, body: RendezvousBody::Lookup(l) }) = m { Some((*xid, l)) } else { None }
    });
    rdv.into_iter().map(|(_, x)| x).collect()
}

fn dir_entries(r: &Reply) -> Vec<DirEntry> {
    let ReplyBody::Dir { json, .. } = &r.body else { panic!("not a DIR reply: {r:?}") };
    dir::parse_dir(json).unwrap()
}

fn names(e: &[DirEntry]) -> Vec<&str> {
    e.iter().map(|e| e.name.as_str()).collect()
}

fn lookup_req(q: &Request) -> (u32, &[u8]) {
    let RequestBody::Lookup { flags, path } = &q.body else { panic!("not a LOOKUP: {q:?}") };
    (*flags, &path[..])
}

#[test]
fn every_ldms_message_decodes_and_reencodes() {
    let root = root();
    let mut scens = Vec::new();
    scenarios(&root, &mut scens);
    assert!(scens.len() >= 11, "expected the 11 capture folders, found {}", scens.len());
    let (mut n_msgs, mut n_rdv, mut n_streams) = (0, 0, 0);
    for scen in &scens {
        let mut bins: Vec<_> = fs::read_dir(scen)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        bins.sort();
        for b in bins {
            for (_, m) in stream(&b) {
                match m {
                    Ldms::Msg(_) => n_msgs += 1,
                    Ldms::Rdv(_) => n_rdv += 1,
                }
            }
            n_streams += 1;
        }
    }
    println!("{n_streams} streams, {n_msgs} SENDRECV messages, {n_rdv} rendezvous messages");
    assert_eq!(n_streams, 36);
    assert!(n_msgs > 100 && n_rdv > 100, "{n_msgs} {n_rdv}");
}

#[test]
fn ls_l_meminfo() {
    let d = root().join("ls-l-meminfo");
    let c2s = stream(&d.join("c2s.bin"));
    let s2c = stream(&d.join("s2c.bin"));
    let q = requests(&c2s);
    assert_eq!(q[0].0, 124);
    assert_eq!(q[0].1, &Request::new(0x563b_5a86_3240, RequestBody::Dir { flags: 0 }));
    assert_eq!(q[1].0, 168);
    assert_eq!(lookup_req(q[1].1), (0, &b"localhost1/meminfo"[..]));
    let p = replies(&s2c);
    assert_eq!((p[0].0, p[0].1.xid, p[0].1.rc), (88, 0x563b_5a86_3240, 0));
    let ReplyBody::Dir { update: false, dir_type: 0, more: 0, json_data_len: 418, .. } = p[0].1.body else {
        panic!("{:?}", p[0].1)
    };
    let e = dir_entries(p[0].1);
    assert_eq!(names(&e), ["localhost1/meminfo"]);
    let e = &e[0];
    assert_eq!((e.schema.as_str(), e.flags.as_str(), e.perm), ("meminfo", "CL ", 0o440));
    assert!(e.is_consistent());
    assert_eq!(e.digest, "4B6356268C98436AAC94DD173E51FA054621B9BB1F4C05E530F1B151930AA0BE");
    assert_eq!((e.meta_size, e.data_size, e.heap_size, e.card, e.array_card), (2976, 544, 0, 57, 1));
    assert_eq!((e.meta_gn, e.data_gn), (2, 168));
    assert_eq!((e.timestamp.sec, e.timestamp.usec, e.duration.sec, e.duration.usec), (1795436485, 1551, 0, 71));
    assert_eq!((e.info[0].key.as_str(), e.info[0].value.as_str()), ("updt_hint_us", "1000000:0"));
    let l = lookups(&s2c);
    assert_eq!(l.len(), 1);
    let (xid, l) = l[0];
    assert_eq!(xid, 0x563b_5a86_35e0);
    assert_eq!(
        (l.set_id, l.more, l.meta_len, l.data_len, l.card, l.schema_len, l.array_card),
        (1, 0, 2976, 544, 57, 0, 1)
    );
    assert_eq!(l.schema.len(), 41, "schema item length byte 0x29");
    assert_eq!((l.schema_name(), l.instance_name()), (&b"meminfo"[..], &b"localhost1/meminfo"[..]));
    assert_eq!(l.info.len(), 1);
    assert_eq!((l.info[0].key(), l.info[0].value()), (&b"updt_hint_us"[..], &b"1000000:0"[..]));
    let prof = l.profile.unwrap();
    assert!(prof.share.sec >= prof.req_recv.sec && prof.share.sec > 1_700_000_000);
    assert!((0..1_000_000_000).contains(&prof.share.nsec));
}

#[test]
fn ls_l_two_samplers() {
    let d = root().join("ls-l-two-samplers");
    for (file, want_lookups) in [("s2c.bin", 0), ("conn1.s2c.bin", 2)] {
        let s = stream(&d.join(file));
        let p = replies(&s);
        assert_eq!(p.len(), 1, "{file}");
        assert_eq!(names(&dir_entries(p[0].1)), ["localhost1/vmstat", "localhost1/meminfo"], "{file}");
        assert_eq!(lookups(&s).len(), want_lookups, "{file}");
    }
    let c2s = stream(&d.join("conn1.c2s.bin"));
    let q = requests(&c2s);
    let paths: Vec<_> = q.iter().skip(1).map(|(_, q)| lookup_req(q)).collect();
    assert_eq!(paths, [(0, &b"localhost1/meminfo"[..]), (0, &b"localhost1/vmstat"[..])]);
}

#[test]
fn python_api_regex_lookup_and_push() {
    let d = root().join("python-api");
    let c2s = stream(&d.join("c2s.bin"));
    let s2c = stream(&d.join("s2c.bin"));
    let q = requests(&c2s);
    assert_eq!(lookup_req(q[1].1), (request::LOOKUP_RE, &b"localhost1/.*"[..]));
    let l = lookups(&s2c);
    let xid = q[1].1.xid;
    let got: Vec<_> = l.iter().map(|(x, l)| (*x, l.more, l.instance_name().to_vec())).collect();
    assert_eq!(got, [(xid, 1, b"localhost1/meminfo".to_vec()), (xid, 0, b"localhost1/vmstat".to_vec())]);
    // The client's push registration: a c2s rendezvous with a big-endian len.
    let push = pick(&c2s, |m| if let Ldms::Rdv(r) = m { Some(r) } else { None });
    assert_eq!(push.len(), 1);
    assert_eq!(push[0].0, 446);
    assert_eq!(
        push[0].1,
        &RendezvousMsg {
            xid: 0,
            body: RendezvousBody::Push(PushParam {
                lookup_set_id: 1,
                push_set_id: 1,
                flags: request::RBD_F_PUSH | request::RBD_F_PUSH_CHANGE
            })
        }
    );
    let cancel = q.iter().find(|(o, _)| *o == 522).unwrap().1;
    assert_eq!(cancel, &Request::new(0, RequestBody::CancelPush { set_id: 1 }));
    let pushes: Vec<_> = replies(&s2c)
        .into_iter()
        .filter_map(|(_, r)| match &r.body {
            ReplyBody::Push(p) => Some((r.xid, p.set_id, p.flags, p.data_off, p.data.len())),
            _ => None,
        })
        .collect();
    let (push, last) = (request::UPD_F_PUSH, request::UPD_F_PUSH_LAST);
    assert_eq!(
        pushes,
        [(0, 1, push, 0, 3520), (0, 1, push, 2976, 544), (0, 1, push, 2976, 544), (0, 1, push | last, 0, 0)]
    );
}

#[test]
fn aggregator_dir_updates_and_set_delete() {
    let d = root().join("aggregator");
    let c2s = stream(&d.join("c2s.bin"));
    let s2c = stream(&d.join("s2c.bin"));
    let q = requests(&c2s);
    assert_eq!(q[0].1, &Request::new(0x7f14_ac00_1230, RequestBody::Dir { flags: request::DIR_F_NOTIFY }));
    let updates: Vec<_> = replies(&s2c)
        .into_iter()
        .filter_map(|(o, r)| match &r.body {
            ReplyBody::Dir { update: true, dir_type, json, json_data_len, .. } => {
                Some((o, r.xid, *dir_type, *json_data_len, json.len(), dir_entries(r)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!((updates[0].0, updates[0].4), (7928, 365), "offset and JSON length of the ADD");
    assert_eq!((updates[0].1, updates[0].2, updates[0].3), (0x7f14_ac00_1230, request::DIR_ADD, 365));
    assert_eq!((updates[1].0, updates[1].2, updates[1].3), (8349, request::DIR_UPD, 407));
    let (add, upd) = (&updates[0].5[0], &updates[1].5[0]);
    assert_eq!((add.name.as_str(), add.flags.as_str(), add.card), ("localhost1/vmstat", " L ", 195));
    assert!(add.info.is_empty() && !add.is_consistent());
    assert_eq!(upd.info.len(), 1);
    assert_eq!(upd.info[0].key, "updt_hint_us");
    // SET_DELETE goes server to client; the client answers with its receive time (BE).
    let del = requests(&s2c);
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].0, 36128);
    assert_eq!(
        del[0].1,
        &Request::new(0x7f54_9000_b760, RequestBody::SetDelete { inst_name: Bytes::from_static(b"localhost1/vmstat") })
    );
    let ack = replies(&c2s);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].0, 661);
    let ReplyBody::SetDelete { recv_ts } = ack[0].1.body else { panic!("{:?}", ack[0].1) };
    assert_eq!((ack[0].1.xid, recv_ts.sec, recv_ts.nsec), (0x7f54_9000_b760, 1795436736, 270647100));
    let l: Vec<_> = lookups(&s2c).iter().map(|(_, l)| (l.set_id, l.instance_name().to_vec())).collect();
    assert_eq!(l, [(1, b"localhost1/meminfo".to_vec()), (2, b"localhost1/vmstat".to_vec())]);
}

#[test]
fn dir_many_two_parts_and_lookups() {
    let d = root().join("dir-many");
    let s2c = stream(&d.join("s2c.bin"));
    let p = replies(&s2c);
    assert_eq!(p.len(), 2);
    let mores: Vec<_> = p
        .iter()
        .map(|(_, r)| match &r.body {
            ReplyBody::Dir { more, json, .. } => (*more, json.len()),
            _ => panic!(),
        })
        .collect();
    assert_eq!(mores, [(1, 1_048_239), (0, 21_079)]);
    let (a, b) = (dir_entries(p[0].1), dir_entries(p[1].1));
    assert_eq!((a.len(), b.len()), (2588, 52));
    assert_eq!(
        (a[0].name.as_str(), a[2587].name.as_str()),
        ("localhost1/dir_many_b/set_40", "localhost1/dir_many/set_0053")
    );
    assert_eq!(
        (b[0].name.as_str(), b[51].name.as_str()),
        ("localhost1/dir_many/set_0052", "localhost1/dir_many/set_0001")
    );
    // ldmsd's split, recomputed from the entries, cuts at the same place.
    let all: Vec<_> = a.iter().chain(&b).cloned().collect();
    assert_eq!(all.len(), 2640);
    let parts = dir::split_dir(&all, LDMS_MSG_MAX).unwrap();
    assert_eq!(parts.len(), 2);
    for (part, (_, r)) in parts.iter().zip(&p) {
        let ReplyBody::Dir { json, .. } = &r.body else { panic!() };
        assert!(part.as_bytes() == &json[..], "split part differs");
    }
    let rebuilt = dir::dir_replies(p[0].1.xid, &all, LDMS_MSG_MAX).unwrap();
    assert_eq!(rebuilt.iter().collect::<Vec<_>>(), p.iter().map(|(_, r)| *r).collect::<Vec<_>>());

    let c2s = stream(&d.join("conn1.c2s.bin"));
    let s2c = stream(&d.join("conn1.s2c.bin"));
    let q = requests(&c2s);
    let lk: Vec<_> = q.iter().map(|(_, q)| (q.xid, lookup_req(q))).collect();
    assert_eq!(lk.len(), 3);
    assert_eq!(lk[0].1, (request::LOOKUP_BY_SCHEMA, &b"dir_many_b"[..]));
    assert_eq!(lk[1].1, (request::LOOKUP_RE, &b"^localhost1/dir_many/set_00[0-4][0-9]$"[..]));
    assert_eq!(lk[2].1, (request::LOOKUP_BY_INSTANCE, &b"localhost1/no_such_set"[..]));
    let l = lookups(&s2c);
    for (i, (xid, n)) in [(lk[0].0, 40), (lk[1].0, 49)].into_iter().enumerate() {
        let mine: Vec<_> = l.iter().filter(|(x, _)| *x == xid).map(|(_, l)| *l).collect();
        assert_eq!(mine.len(), n, "lookup {i}");
        let more: Vec<_> = mine.iter().map(|l| l.more).collect();
        assert!(more[..n - 1].iter().all(|&m| m == 1) && more[n - 1] == 0, "lookup {i}: more {more:?}");
        if i == 0 {
            assert!(mine.iter().all(|l| l.schema_name() == b"dir_many_b"));
        }
    }
    let fail = replies(&s2c);
    assert_eq!(fail.len(), 1);
    assert_eq!(fail[0].0, 52553);
    assert_eq!(fail[0].1, &Reply::new(lk[2].0, 2, ReplyBody::Lookup));
}

#[test]
fn message_service_commands_stay_opaque() {
    let d = root().join("msg-bus/subscriber");
    let c2s = stream(&d.join("c2s.bin"));
    let s2c = stream(&d.join("s2c.bin"));
    let cmds: Vec<_> = requests(&c2s).iter().map(|(_, q)| q.body.cmd()).collect();
    assert!(cmds.contains(&request::CMD_MSG_SUB) && cmds.contains(&request::CMD_MSG_UNSUB), "{cmds:?}");
    for (_, q) in requests(&c2s).iter().chain(&requests(&s2c)) {
        match &q.body {
            RequestBody::SendQuota { quota, rc } => assert!(*quota > 0 && *rc == 0),
            RequestBody::Other { cmd, body } => {
                assert!([request::CMD_MSG, request::CMD_MSG_SUB, request::CMD_MSG_UNSUB].contains(cmd));
                assert!(!body.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let subs: Vec<_> = replies(&s2c).iter().map(|(_, r)| r.body.cmd()).collect();
    assert_eq!(subs, [request::CMD_MSG_SUB_REPLY, request::CMD_MSG_SUB_REPLY, request::CMD_MSG_UNSUB_REPLY]);
    // msg-chan: the subscriber returns credit for every message, unsolicited (xid 0).
    let d = root().join("msg-chan");
    let quotas: Vec<_> = requests(&stream(&d.join("s2c.bin")))
        .iter()
        .filter_map(|(_, q)| match q.body {
            RequestBody::SendQuota { quota, rc } => Some((q.xid, quota, rc)),
            _ => None,
        })
        .collect();
    assert!(!quotas.is_empty() && quotas.iter().all(|&(x, q, rc)| x == 0 && q > 0 && rc == 0), "{quotas:?}");
}
