//! The message service in the shared LDMS captures (msg-bus, both sides; msg-chan, all
//! four connections): every MSG, MSG_SUB, MSG_UNSUB, their replies and every SEND_QUOTA
//! interpreted, checked against `frames.txt` and re-encoded byte for byte, with the
//! header bytes ldmsd leaves uninitialised masked.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use pvloom_ldms::msg::{
    self, LdmsAddr, MSG_HDR_LEN, Msg, MsgHeader, MsgSub, MsgType, MsgWire, PART_HDR_LEN, Reassembler, tag_hash,
};
use pvloom_ldms::request::{self, REQUEST_HDR_LEN};
use pvloom_ldms::zap::{FrameDecoder, Msg as ZapMsg};

mod common;
use common::{root, scenarios};

/// A message-service item of a stream, with its frame offset; whole messages come
/// through a [`Reassembler`].
#[derive(Debug)]
enum Item {
    Whole(Box<Msg>),
    Other(MsgWire),
}

/// Walks one stream file; every message-service SENDRECV is interpreted and re-encoded.
fn stream(path: &Path) -> Vec<(usize, Item)> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = FrameDecoder::new();
    dec.push(&bytes).unwrap();
    let mut reasm = Reassembler::default();
    let mut out = Vec::new();
    let mut off = 0;
    while let Some(f) = dec.next_frame().unwrap() {
        let what = format!("{} @{off}", path.display());
        if let ZapMsg::SendRecv(data) = &f.msg {
            let m = request::decode(data).unwrap_or_else(|e| panic!("{what}: {e}"));
            let w = msg::interpret(&m)
                .unwrap_or_else(|| panic!("{what}: not a message-service command: {m:?}"))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            // The command and the part header re-encode exactly.
            let mut re = BytesMut::new();
            request::encode(&w.to_message().unwrap(), &mut re);
            assert_eq!(&re[..], &data[..], "{what}: re-encoded");
            match w {
                MsgWire::Part { xid, part: p } => {
                    assert_eq!(xid, 0, "{what}: MSG xid");
                    assert!(p.first && !p.more, "{what}: every captured message is one part");
                    assert_eq!(p.reserved, 0, "{what}: reserved bits");
                    assert_eq!(p.src, LdmsAddr::default(), "{what}: loopback leaves src zero");
                    let m = reasm.push(&p).unwrap_or_else(|e| panic!("{what}: {e}")).expect("single part");
                    assert_eq!(m.header.msg_gn, p.msg_gn, "{what}: msg_gn in both headers");
                    check_msg_bytes(&m, &p.payload, &what);
                    // The same bytes through the SENDRECV data, at their stream offsets.
                    assert_eq!(&data[REQUEST_HDR_LEN + PART_HDR_LEN..], &p.payload[..]);
                    out.push((off, Item::Whole(Box::new(m))));
                }
                w => out.push((off, Item::Other(w))),
            }
        }
        off += f.encoded_len();
    }
    assert_eq!(off, bytes.len(), "{}: whole stream", path.display());
    assert_eq!(reasm.in_progress(), 0);
    out
}

/// Re-encodes a whole message and compares it with the wire bytes, masking the ranges
/// ldmsd leaves uninitialised; checks that those are the only differences allowed.
fn check_msg_bytes(m: &Msg, wire: &Bytes, what: &str) {
    let mut re = BytesMut::new();
    m.encode(&mut re).unwrap();
    assert_eq!(re.len(), wire.len(), "{what}: message length");
    let mut masked = wire.to_vec();
    for r in MsgHeader::ignored_ranges(m.header.hop_cnt) {
        assert!(re[r.clone()].iter().all(|&b| b == 0), "{what}: encoder zeroes {r:?}");
        masked[r].fill(0);
    }
    assert_eq!(&re[..], &masked[..], "{what}: message re-encoded (garbage masked)");
    assert_eq!(MSG_HDR_LEN + m.msg_len(), wire.len());
}

/// (name, type, data) of a delivered message, with its msg_gn and hop_cnt.
struct Expect {
    name: &'static str,
    ty: MsgType,
    data: Vec<u8>,
    gn: u64,
}

fn e(name: &'static str, ty: MsgType, data: &[u8], gn: u64) -> Expect {
    Expect { name, ty, data: data.to_vec(), gn }
}

/// Checks the whole messages of a stream, in order, against `exp`; returns the
/// SEND_QUOTA values the receiver must send (the msg_lens).
fn check_msgs(items: &[(usize, Item)], exp: &[Expect], hop_cnt: u32, what: &str) -> Vec<u32> {
    let msgs: Vec<&Msg> = items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Whole(m) => Some(&**m),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), exp.len(), "{what}: message count");
    for (m, x) in msgs.iter().zip(exp) {
        let h = &m.header;
        assert_eq!(&m.name[..], x.name.as_bytes(), "{what}: name");
        assert_eq!(h.msg_type, x.ty, "{what} {}: type", x.name);
        assert_eq!(m.data.len(), x.data.len(), "{what} {}: data length", x.name);
        assert_eq!(&m.data[..], &x.data[..], "{what} {}: data", x.name);
        assert_eq!(h.msg_gn, x.gn, "{what} {}: msg_gn", x.name);
        assert_eq!((h.uid, h.gid, h.perm), (0, 0, 0o444), "{what} {}: cred", x.name);
        assert_eq!(h.tag_hash, tag_hash(x.name.as_bytes()), "{what} {}: tag_hash", x.name);
        assert_eq!(h.hop_cnt, hop_cnt, "{what} {}: hop_cnt", x.name);
        assert_eq!(h.hops.len(), hop_cnt as usize + 1, "{what}: used hops");
        for hop in &h.hops {
            // Late-2026 machine clock, both timestamps set, send not before recv.
            assert!(hop.recv.sec > 1_700_000_000 && hop.recv.nsec < 1_000_000_000, "{what}: {hop:?}");
            assert!((hop.send.sec, hop.send.nsec) >= (hop.recv.sec, hop.recv.nsec), "{what}: {hop:?}");
        }
    }
    msgs.iter().map(|m| m.msg_len() as u32).collect()
}

/// The SEND_QUOTA values of a stream (each xid 0, rc 0).
fn quotas(items: &[(usize, Item)]) -> Vec<u32> {
    items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Other(MsgWire::SendQuota { xid, quota, rc }) => {
                assert_eq!((*xid, *rc), (0, 0));
                Some(*quota)
            }
            _ => None,
        })
        .collect()
}

fn abc(n: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(n).collect()
}

/// The seven publishes of msg-bus, with the data of the 64 KiB JSON read from the capture
/// (only its length and start are documented).
fn bus_publishes(bar_z: &[u8]) -> Vec<Expect> {
    use MsgType::{Json, String};
    vec![
        e("foo", String, b"hello-foo-1", 0),
        e("foo", Json, br#"{"k": "v", "n": 1}"#, 1),
        e("bar.x", String, b"hello-bar-x", 2),
        e("baz", String, b"not-subscribed", 3),
        e("bar.y", Json, br#"{"arr": [1, 2, 3]}"#, 4),
        e("foo", String, &abc(65_536), 5),
        e("bar.z", Json, bar_z, 6),
    ]
}

fn bar_z(items: &[(usize, Item)]) -> Vec<u8> {
    let m = items
        .iter()
        .find_map(|(_, i)| match i {
            Item::Whole(m) if &m.name[..] == b"bar.z" => Some(&**m),
            _ => None,
        })
        .unwrap();
    assert_eq!(m.data.len(), 65_523);
    assert!(m.data.starts_with(br#"{"seq": 99, "blob": "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLM"#));
    assert_eq!(m.data.last(), Some(&b'}'));
    m.data.to_vec()
}

#[test]
fn msg_bus_publisher() {
    let dir = root().join("msg-bus/publisher");
    let c2s = stream(&dir.join("c2s.bin"));
    let s2c = stream(&dir.join("s2c.bin"));
    let exp = bus_publishes(&bar_z(&c2s));
    let lens = check_msgs(&c2s, &exp, 0, "publisher c2s");
    assert_eq!(lens, [15, 22, 17, 18, 24, 65_540, 65_529]);
    // Offsets from the README walk-through.
    let offs: Vec<usize> = c2s.iter().map(|(o, _)| *o).collect();
    assert_eq!(offs, [124, 595, 1073, 1546, 2020, 2500, 68_496]);
    assert_eq!(quotas(&c2s), Vec::<u32>::new());
    // ldmsd returns credit for every publish, `baz` included.
    assert_eq!(quotas(&s2c), lens);
    assert_eq!(s2c.len(), 7);
}

#[test]
fn msg_bus_subscriber() {
    let dir = root().join("msg-bus/subscriber");
    let c2s = stream(&dir.join("c2s.bin"));
    let s2c = stream(&dir.join("s2c.bin"));
    let mut exp = bus_publishes(&bar_z(&s2c));
    exp.remove(3); // baz is not forwarded; msg_gn 3 is skipped
    let lens = check_msgs(&s2c, &exp, 1, "subscriber s2c");
    assert_eq!(lens, [15, 22, 17, 24, 65_540, 65_529]);
    let offs: Vec<usize> = s2c.iter().filter(|(_, i)| matches!(i, Item::Whole(_))).map(|(o, _)| *o).collect();
    assert_eq!(offs, [190, 661, 1139, 1612, 2092, 68_088]);
    assert_eq!(quotas(&c2s), lens);

    // Subscriptions: "foo" exact, "bar.*" regex, then "foo" unsubscribed.
    let subs: Vec<(usize, bool, u64, &MsgSub)> = c2s
        .iter()
        .filter_map(|(o, i)| match i {
            Item::Other(MsgWire::Sub { xid, sub }) => Some((*o, false, *xid, sub)),
            Item::Other(MsgWire::Unsub { xid, sub }) => Some((*o, true, *xid, sub)),
            _ => None,
        })
        .collect();
    let got: Vec<(usize, bool, &[u8], bool, i64)> =
        subs.iter().map(|(o, u, _, s)| (*o, *u, &s.pattern[..], s.is_regex, s.rate)).collect();
    assert_eq!(
        got,
        [
            (124, false, &b"foo"[..], false, -1),
            (180, false, &b"bar.*"[..], true, -1),
            (478, true, &b"foo"[..], false, -1)
        ]
    );
    // The bitfield bytes as ldmsd sends them (README fact 9).
    let raw = fs::read(dir.join("c2s.bin")).unwrap();
    assert_eq!(raw[164..168], [0, 0, 0, 8]);
    assert_eq!(raw[220..224], [1, 0, 0, 0x0c]);
    assert_eq!(MsgSub::match_len_field(4), 0x0400_0000);

    // Replies: xid echoed, rc 0, "OK"; two SUB replies then the UNSUB reply.
    let replies: Vec<(usize, bool, u64, u32, &[u8])> = s2c
        .iter()
        .filter_map(|(o, i)| match i {
            Item::Other(MsgWire::SubReply { unsub, xid, rc, reply }) => Some((*o, *unsub, *xid, *rc, &reply.text[..])),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 3);
    for ((o, unsub, xid, rc, text), (want_off, sub)) in
        replies.iter().zip([(88, subs[0]), (139, subs[1]), (134_073, subs[2])])
    {
        assert_eq!((*o, *unsub, *xid, *rc, *text), (want_off, sub.1, sub.2, 0, &b"OK"[..]));
    }
    assert_eq!(s2c.len(), 9);
    assert_eq!(c2s.len(), 9);
}

#[test]
fn msg_chan_connections() {
    use MsgType::{Json, String};
    let dir = root().join("msg-chan");
    let conns: [(&str, Vec<Expect>, Vec<u32>); 4] = [
        (
            "",
            vec![
                e("chan.a", String, b"hello-1", 0),
                e("chan.a", String, b"hello-2", 1),
                e("chan.b", Json, br#"{"run": 1, "seq": 3}"#, 2),
                e("chan.c", String, &[b'x'; 300], 3),
                e("chan.b", Json, br#"{"run": 1, "list": [1, 2.5, "z"], "nested": {"k": null}}"#, 4),
            ],
            vec![14, 14, 27, 307, 63],
        ),
        (
            // The restarted publisher: msg_gn starts again at 0.
            "conn1.",
            vec![
                e("chan.a", String, b"again-1", 0),
                e("chan.b", Json, br#"{"run": 2, "seq": 2}"#, 1),
                e("chan.a", String, b"again-3", 2),
                e("chan.b", Json, br#"{"run": 2, "seq": 4}"#, 3),
            ],
            vec![14, 27, 14, 27],
        ),
        (
            "conn2.",
            vec![e("chan.a", String, b"before-drop-1", 0), e("chan.b", Json, br#"{"run": 3, "seq": 2}"#, 1)],
            vec![20, 27],
        ),
        (
            // The reconnect of the same process: msg_gn continues.
            "conn3.",
            vec![e("chan.a", String, b"queued-1", 2), e("chan.b", Json, br#"{"run": 3, "seq": 4, "queued": true}"#, 3)],
            vec![15, 43],
        ),
    ];
    for (prefix, exp, want) in conns {
        let c2s = stream(&dir.join(format!("{prefix}c2s.bin")));
        let s2c = stream(&dir.join(format!("{prefix}s2c.bin")));
        let what = format!("msg-chan {prefix}");
        let lens = check_msgs(&c2s, &exp, 0, &what);
        assert_eq!(lens, want, "{what}: msg_lens");
        assert_eq!(quotas(&s2c), want, "{what}: SEND_QUOTA");
        assert_eq!(c2s.len(), exp.len());
        assert_eq!(s2c.len(), exp.len());
    }
    assert_eq!(tag_hash(b"chan.a"), 0xd0d6_6c26);
    assert_eq!(tag_hash(b"chan.b"), 0xcfd6_6a93);
    assert_eq!(tag_hash(b"chan.c"), 0xced6_6900);
    assert_eq!(tag_hash(b"foo"), 0xd9a6_e7fd);
}

/// The first MSG of msg-chan, by hand: the offsets of README's walk-through.
#[test]
fn msg_chan_first_frame_layout() {
    let raw = fs::read(root().join("msg-chan/c2s.bin")).unwrap();
    let part = &raw[164..196];
    assert_eq!(part[28..32], [2, 0, 0, 0], "first, single part");
    let hdr = &raw[196..196 + MSG_HDR_LEN];
    let (h, msg_len) = MsgHeader::decode(hdr).unwrap();
    assert_eq!(msg_len, 14);
    assert_eq!(hdr[84..88], [0x26, 0x6c, 0xd6, 0xd0], "tag_hash host order");
    assert_eq!(h.hop_cnt, 0);
    assert_eq!(&raw[580..594], b"chan.a\0hello-1");
    // Stack pointers in the unused hops from header offset 248 on, which decoding ignores.
    assert!(hdr[248..].iter().any(|&b| b != 0));
}

/// Every capture: each message-service command or reply is interpreted (and re-encoded);
/// they occur only in msg-bus and msg-chan.
#[test]
fn every_capture() {
    let mut dirs = Vec::new();
    scenarios(&root(), &mut dirs);
    let mut per_dir = Vec::new();
    for d in dirs {
        let mut bins: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        bins.sort();
        let mut n = 0;
        for b in bins {
            let bytes = fs::read(&b).unwrap();
            let mut dec = FrameDecoder::new();
            dec.push(&bytes).unwrap();
            while let Some(f) = dec.next_frame().unwrap() {
                let ZapMsg::SendRecv(data) = &f.msg else { continue };
                let m = request::decode(data).unwrap();
                if let Some(w) = msg::interpret(&m) {
                    let w = w.unwrap_or_else(|e| panic!("{}: {e}", b.display()));
                    let mut re = BytesMut::new();
                    request::encode(&w.to_message().unwrap(), &mut re);
                    assert_eq!(&re[..], &data[..]);
                    n += 1;
                }
            }
        }
        if n > 0 {
            per_dir.push((d.file_name().unwrap().to_string_lossy().into_owned(), n));
        }
    }
    // msg-bus: publisher 7 MSG + 7 SEND_QUOTA; subscriber 3 requests + 3 replies + 6 MSG
    // + 6 SEND_QUOTA. msg-chan: 13 MSG + 13 SEND_QUOTA.
    assert_eq!(per_dir, [("publisher".to_string(), 14), ("subscriber".to_string(), 18), ("msg-chan".to_string(), 26)]);
}
