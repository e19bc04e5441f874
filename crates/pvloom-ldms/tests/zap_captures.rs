//! Every frame of every recorded stream in the shared LDMS captures: decoded whole, in the
//! real TCP chunks, one byte at a time (small streams), checked against `frames.txt` and
//! re-encoded byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::BytesMut;
use pvloom_ldms::zap::{Frame, FrameDecoder, LDMS_VERSION, Msg, MsgType, RailConnMsg};

mod common;
use common::{root, scenarios};

fn stream_file(conn: u32, dir: &str) -> String {
    if conn == 0 { format!("{dir}.bin") } else { format!("conn{conn}.{dir}.bin") }
}

/// One frames.txt line: offset, type number, length, xid.
type Expected = (usize, u16, usize, u32);

/// frames.txt, by (conn, dir).
fn expected(scen: &Path) -> BTreeMap<(u32, String), Vec<Expected>> {
    let text = fs::read_to_string(scen.join("frames.txt")).unwrap();
    let mut m: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("[t=")) {
        let field = |key: &str| -> &str {
            let i = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
            let rest = &line[i..];
            &rest[..rest.find([' ', ']']).unwrap_or(rest.len())]
        };
        let conn: u32 = field("conn=").parse().unwrap();
        let dir = if line.contains(" c2s ") { "c2s" } else { "s2c" };
        let off: usize = field("off=").parse().unwrap();
        let ty = field("zap ");
        let ty: u16 = ty[ty.find('(').unwrap() + 1..ty.len() - 1].parse().unwrap();
        let len: usize = field("msg_len=").parse().unwrap();
        let xid: u32 = field("xid=").parse().unwrap();
        m.entry((conn, dir.to_string())).or_default().push((off, ty, len, xid));
    }
    m
}

/// chunks.jsonl data chunks, by (conn, dir), in order.
fn chunks(scen: &Path) -> BTreeMap<(u32, String), Vec<Vec<u8>>> {
    let text = fs::read_to_string(scen.join("chunks.jsonl")).unwrap();
    let mut m: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("\"hex\"")) {
        let str_field = |key: &str| -> &str {
            let k = format!("\"{key}\": \"");
            let i = line.find(&k).unwrap() + k.len();
            &line[i..i + line[i..].find('"').unwrap()]
        };
        let k = "\"conn\": ";
        let i = line.find(k).unwrap() + k.len();
        let conn: u32 = line[i..i + line[i..].find([',', '}']).unwrap()].trim().parse().unwrap();
        let hex = str_field("hex");
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap()).collect();
        m.entry((conn, str_field("dir").to_string())).or_default().push(bytes);
    }
    m
}

/// Decodes a stream pushed in the given pieces; all frames, and nothing left over.
fn decode_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        dec.push(p).unwrap();
        while let Some(f) = dec.next_frame().unwrap() {
            out.push(f);
        }
    }
    assert_eq!(dec.buffered(), 0, "bytes left after the last frame");
    out
}

fn check_frame(f: &Frame, what: &str) {
    match &f.msg {
        Msg::Connect(c) => {
            assert!(c.is_compatible(), "{what}: CONNECT version/signature");
            check_conn_msg(&c.data, what);
        }
        Msg::Accepted(d) => check_conn_msg(d, what),
        Msg::AckAccepted(d) => assert!(d.is_empty(), "{what}: ACK_ACCEPTED data"),
        _ => {}
    }
}

fn check_conn_msg(data: &[u8], what: &str) {
    let m = RailConnMsg::decode(data).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(m.ldms_version, LDMS_VERSION, "{what}");
    assert_eq!(m.auth_name(), b"none", "{what}");
    assert_eq!(m.conn_type, 1, "{what}");
    assert_eq!(&m.to_bytes()[..], data, "{what}: rail connect message re-encoded");
}

#[test]
fn every_capture_stream_decodes_and_reencodes() {
    let root = root();
    let mut scens = Vec::new();
    scenarios(&root, &mut scens);
    assert!(scens.len() >= 11, "expected the 11 capture folders, found {}", scens.len());
    let mut streams_seen = 0;
    let mut total = 0;
    for scen in &scens {
        let name = scen.strip_prefix(&root).unwrap().display().to_string();
        let exp = expected(scen);
        let chunks = chunks(scen);
        // Every *.bin file is described by frames.txt.
        let mut bins: Vec<String> = fs::read_dir(scen)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".bin"))
            .collect();
        bins.sort();
        let mut described: Vec<String> = exp.keys().map(|(c, d)| stream_file(*c, d)).collect();
        described.sort();
        assert_eq!(bins, described, "{name}: streams vs frames.txt");
        let mut counts = Vec::new();
        for ((conn, dir), want) in &exp {
            let file = stream_file(*conn, dir);
            let what = format!("{name}/{file}");
            let bytes = fs::read(scen.join(&file)).unwrap();
            // Whole stream at once.
            let frames = decode_pieces([&bytes[..]]);
            assert_eq!(frames.len(), want.len(), "{what}: frame count");
            let mut off = 0;
            let mut re = BytesMut::new();
            for (f, &(w_off, w_ty, w_len, w_xid)) in frames.iter().zip(want) {
                assert_eq!(off, w_off, "{what}: offset");
                assert_eq!(f.msg_type() as u16, w_ty, "{what} @{off}: type");
                assert_eq!(f.encoded_len(), w_len, "{what} @{off}: length");
                assert_eq!(f.xid, w_xid, "{what} @{off}: xid");
                check_frame(f, &format!("{what} @{off}"));
                let start = re.len();
                f.encode(&mut re);
                assert_eq!(&re[start..], &bytes[off..off + w_len], "{what} @{off}: re-encoded");
                off += w_len;
            }
            assert_eq!(&re[..], &bytes[..], "{what}: whole stream re-encoded");
            // The real TCP chunk boundaries.
            let ch = &chunks[&(*conn, dir.clone())];
            assert_eq!(ch.concat(), bytes, "{what}: chunks.jsonl vs .bin");
            let chunked = decode_pieces(ch.iter().map(|c| &c[..]));
            assert_eq!(chunked, frames, "{what}: chunked decode");
            // One byte at a time, for the small streams.
            if bytes.len() <= 16 * 1024 {
                let bytewise = decode_pieces(bytes.chunks(1));
                assert_eq!(bytewise, frames, "{what}: byte-at-a-time decode");
            }
            counts.push(format!("{file}={}", frames.len()));
            total += frames.len();
            streams_seen += 1;
        }
        println!("{name}: {}", counts.join(" "));
    }
    println!("{streams_seen} streams, {total} frames");
    assert_eq!(streams_seen, 36, "stream count");
}

#[test]
fn handshake_of_ls_l_meminfo() {
    let root = root();
    let c2s = fs::read(root.join("ls-l-meminfo/c2s.bin")).unwrap();
    let frames = decode_pieces([&c2s[..]]);
    let types: Vec<_> = frames.iter().map(Frame::msg_type).collect();
    assert_eq!(&types[..3], &[MsgType::Connect, MsgType::AckAccepted, MsgType::SendRecv]);
    let Msg::Connect(c) = &frames[0].msg else { unreachable!() };
    let m = RailConnMsg::decode(&c.data).unwrap();
    assert_eq!((m.pid, m.rail_gn, m.msg_enabled, m.n_eps), (10858, 1, 1, 1));
    assert_eq!(m, RailConnMsg::new(10858, 1, true));
    assert_eq!(frames[0].xid, 1);
    // READ_REQ (c2s @235) and the matching READ_RESP carry the same xid and ctxt.
    let s2c = fs::read(root.join("ls-l-meminfo/s2c.bin")).unwrap();
    let replies = decode_pieces([&s2c[..]]);
    let Msg::ReadReq(rq) = &frames[4].msg else { panic!("{:?}", frames[4]) };
    assert_eq!((rq.map_key, rq.src_ptr, rq.len), (2, 0x7f6b1697e060, 2976));
    let Msg::ReadResp(rs) = &replies[3].msg else { panic!("{:?}", replies[3]) };
    assert_eq!(rs.data.len(), 2976);
    assert_eq!((replies[3].xid, replies[3].ctxt), (frames[4].xid, frames[4].ctxt));
    assert_eq!(frames[4].ctxt, 0x7fb1f80011a0);
}
