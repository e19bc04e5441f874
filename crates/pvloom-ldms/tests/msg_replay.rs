//! Replays of the message service captures (msg-bus, msg-chan) against pvloom, both
//! sides, sans-I/O on a fake clock.
//!
//! Server side: the recorded clients' bytes go to `ServerConn`s that share one `MsgBus`,
//! so what the publisher sends reaches the subscriber's connection; each connection's
//! output is compared frame by frame with what ldmsd sent.
//!
//! Masked (they vary run to run, or ldmsd sends uninitialised memory there):
//! * the zap xid of every frame: ldmsd numbers frames from one process-wide counter shared
//!   by all its connections (the publisher's ACCEPTED has xid 4); pvloom counts per
//!   connection;
//! * the pid in ACCEPTED / CONNECT;
//! * in every MSG message header the pad and `reserve` bytes and the whole `hops[]` array
//!   (the used entries are wall-clock timestamps, the unused ones stack garbage); `hop_cnt`
//!   itself is compared.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use pvloom_core::endpoint::StreamEndpoint;
use pvloom_ldms::bus::{BusConfig, MsgBus};
use pvloom_ldms::msg::{MSG_HDR_LEN, PART_HDR_LEN};
use pvloom_ldms::request::{self, Message, REQUEST_HDR_LEN, RequestBody};
use pvloom_ldms::server::{ServerConfig, ServerConn, SetRegistry};
use pvloom_ldms::zap::{Frame, FrameDecoder, Msg, RailConnMsg};

/// A frame and when (capture seconds) it was seen complete (c2s) / begun (s2c).
#[derive(Clone, Debug)]
struct Timed {
    t: f64,
    raw: Bytes,
    frame: Frame,
}

fn frames_timed(dir: &Path, conn: u64, way: &str) -> Vec<Timed> {
    let text = std::fs::read_to_string(dir.join("chunks.jsonl")).unwrap();
    let mut stream = Vec::new();
    let mut times = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["conn"].as_u64() != Some(conn) || v["dir"].as_str() != Some(way) {
            continue;
        }
        let Some(hex) = v["hex"].as_str() else { continue };
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        stream.extend_from_slice(&bytes);
        times.push((stream.len(), v["t"].as_f64().unwrap()));
    }
    let prefix = if conn == 0 { String::new() } else { format!("conn{conn}.") };
    let bin = std::fs::read(dir.join(format!("{prefix}{way}.bin"))).unwrap();
    assert_eq!(bin, stream, "{}: chunks.jsonl and {way}.bin agree", dir.display());
    let mut out = Vec::new();
    let mut off = 0;
    let mut dec = FrameDecoder::new();
    dec.push(&stream).unwrap();
    while let Some(frame) = dec.next_frame().unwrap() {
        let len = frame.encoded_len();
        let raw = Bytes::copy_from_slice(&stream[off..off + len]);
        let at = if way == "c2s" { off + len } else { off + 1 };
        let t = times.iter().find(|(end, _)| *end >= at).unwrap().1;
        out.push(Timed { t, raw, frame });
        off += len;
    }
    assert_eq!(off, stream.len());
    out
}

fn sendrecv(f: &Frame) -> Option<Message> {
    match &f.msg {
        Msg::SendRecv(d) => request::decode(d).ok(),
        _ => None,
    }
}

/// Where the message header starts in a raw SENDRECV MSG frame (first part).
const MSG_HDR_AT: usize = 24 + REQUEST_HDR_LEN + PART_HDR_LEN;
/// The message header's hop count and hops (offsets inside the header).
const HOP_CNT: usize = 88;
const HOPS: usize = 96;

fn is_first_part(raw: &[u8]) -> bool {
    raw.len() >= MSG_HDR_AT + MSG_HDR_LEN
        && u32::from_be_bytes(raw[24 + 8..24 + 12].try_into().unwrap()) == request::CMD_MSG
        && raw[24 + REQUEST_HDR_LEN + 28] & 2 != 0
}

/// Masks what varies (see the module docs) in a raw frame, in place.
fn mask(raw: &mut [u8], f: &Frame) {
    raw[8..12].fill(0);
    match &f.msg {
        Msg::Accepted(_) => raw[24 + 48..24 + 52].fill(0),
        Msg::Connect(_) => raw[36 + 48..36 + 52].fill(0),
        Msg::SendRecv(_) if is_first_part(raw) => {
            let h = MSG_HDR_AT;
            raw[h + 20..h + 56].fill(0); // pad + reserve
            raw[h + 92..h + 96].fill(0); // pad
            raw[h + HOPS..h + MSG_HDR_LEN].fill(0); // timestamps and unused hops
        }
        _ => {}
    }
}

fn describe(f: &Frame) -> String {
    match sendrecv(f) {
        Some(Message::Request(q)) => format!("request {:#x}", q.body.cmd()),
        Some(Message::Reply(p)) => format!("reply {:#x} rc {}", p.body.cmd(), p.rc),
        None => format!("{:?}", f.msg_type()),
    }
}

fn split(sent: &[u8]) -> Vec<(Vec<u8>, Frame)> {
    let mut dec = FrameDecoder::new();
    dec.push(sent).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    while let Some(f) = dec.next_frame().unwrap() {
        let n = f.encoded_len();
        out.push((sent[off..off + n].to_vec(), f));
        off += n;
    }
    assert_eq!(off, sent.len(), "whole frames");
    out
}

/// Compares `ours` with the recorded frames, masked.
fn compare(what: &str, want: &[(Vec<u8>, Frame)], ours: &[(Vec<u8>, Frame)]) {
    for (i, ((w, wf), (g, gf))) in want.iter().zip(ours).enumerate() {
        let (mut w, mut g) = (w.clone(), g.clone());
        mask(&mut w, wf);
        mask(&mut g, gf);
        if w != g {
            let at = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
            panic!(
                "{what}: frame {i} ({} / ours {}) differs at byte {at} (lengths {} / {}): want {:02x?} got {:02x?}",
                describe(wf),
                describe(gf),
                w.len(),
                g.len(),
                &w[at.saturating_sub(8)..(at + 24).min(w.len())],
                &g[at.saturating_sub(8)..(at + 24).min(g.len())],
            );
        }
    }
    assert_eq!(
        ours.len(),
        want.len(),
        "{what}: frame count; ours: {:?}",
        ours.iter().map(|(_, f)| describe(f)).collect::<Vec<_>>()
    );
}

fn fixed_wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_436_736)
}

/// A server connection on `bus` that answers as the recorded ldmsd did (its ACCEPTED).
fn server_conn(bus: &Arc<MsgBus>, accepted: &Frame, now: Instant) -> ServerConn {
    let mut config = ServerConfig { bus: Some(bus.clone()), wall_clock: fixed_wall, ..ServerConfig::default() };
    if let Msg::Accepted(d) = &accepted.msg {
        config.session.conn_msg = RailConnMsg::decode(d).unwrap();
    }
    ServerConn::new(SetRegistry::new(), config, now)
}

fn bus() -> Arc<MsgBus> {
    MsgBus::new(BusConfig { wall_clock: fixed_wall, ..BusConfig::default() })
}

/// Feeds the recorded client streams `conns` (dir, conn) into server connections on one
/// bus, in capture time order, and returns what each connection sent.
/// Raw frames with their decoding.
type Frames = Vec<(Vec<u8>, Frame)>;

fn serve(conns: &[(&Path, u64)], bus: &Arc<MsgBus>) -> Vec<(Vec<Timed>, Frames)> {
    let t0 = Instant::now();
    let mut servers = Vec::new();
    let mut feeds = Vec::new();
    let mut recorded = Vec::new();
    for (i, (dir, conn)) in conns.iter().enumerate() {
        let c2s = frames_timed(dir, *conn, "c2s");
        let s2c = frames_timed(dir, *conn, "s2c");
        servers.push(server_conn(bus, &s2c[0].frame, t0));
        feeds.extend(c2s.into_iter().map(|f| (i, f)));
        recorded.push(s2c);
    }
    feeds.sort_by(|a, b| a.1.t.partial_cmp(&b.1.t).unwrap());
    let mut sent = vec![BytesMut::new(); servers.len()];
    let pump = |servers: &mut Vec<ServerConn>, sent: &mut Vec<BytesMut>, now: Instant| {
        // Twice: a delivery on one connection frees the publisher's credit on another.
        for _ in 0..2 {
            for (s, out) in servers.iter_mut().zip(sent.iter_mut()) {
                s.poll_transmit(now, usize::MAX, out);
                while s.poll_event().is_some() {}
                assert!(s.poll_close().is_none(), "the server closed a connection");
            }
        }
    };
    for (i, f) in feeds {
        let now = t0 + Duration::from_secs_f64(f.t);
        servers[i].handle_input(now, &f.raw);
        pump(&mut servers, &mut sent, now);
    }
    recorded.into_iter().zip(sent.iter().map(|s| split(s))).collect()
}

fn recorded_frames(v: &[Timed]) -> Vec<(Vec<u8>, Frame)> {
    v.iter().map(|t| (t.raw.to_vec(), t.frame.clone())).collect()
}

/// The MSG frames of a stream: (msg_gn, hop_cnt, name, data length).
fn deliveries(frames: &[(Vec<u8>, Frame)]) -> Vec<(u64, u32, String, usize)> {
    frames
        .iter()
        .filter(|(raw, _)| is_first_part(raw))
        .map(|(raw, _)| {
            let p = 24 + REQUEST_HDR_LEN;
            let gn = u64::from_be_bytes(raw[p + 20..p + 28].try_into().unwrap());
            let h = MSG_HDR_AT;
            let hop_cnt = u32::from_be_bytes(raw[h + HOP_CNT..h + HOP_CNT + 4].try_into().unwrap());
            let rest = &raw[h + MSG_HDR_LEN..];
            let nul = rest.iter().position(|&c| c == 0).unwrap();
            (gn, hop_cnt, String::from_utf8_lossy(&rest[..nul]).into_owned(), rest.len() - nul - 1)
        })
        .collect()
}

/// SEND_QUOTA values in a stream.
fn quotas(frames: &[(Vec<u8>, Frame)]) -> Vec<(u32, i32)> {
    frames
        .iter()
        .filter_map(|(_, f)| match sendrecv(f) {
            Some(Message::Request(q)) => match q.body {
                RequestBody::SendQuota { quota, rc } => Some((quota, rc)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn msg_bus_server_side_subscriber_and_publisher_on_one_bus() {
    let root = common::root().join("msg-bus");
    let (sub_dir, pub_dir) = (root.join("subscriber"), root.join("publisher"));
    let bus = bus();
    let out = serve(&[(&sub_dir, 0), (&pub_dir, 0)], &bus);
    let (sub_rec, sub_ours) = &out[0];
    let (pub_rec, pub_ours) = &out[1];
    let (sub_rec, pub_rec) = (recorded_frames(sub_rec), recorded_frames(pub_rec));
    compare("msg-bus subscriber s2c", &sub_rec, sub_ours);
    compare("msg-bus publisher s2c", &pub_rec, pub_ours);

    let got = deliveries(sub_ours);
    let names: Vec<_> = got.iter().map(|d| d.2.as_str()).collect();
    assert_eq!(names, ["foo", "foo", "bar.x", "bar.y", "foo", "bar.z"], "baz is not forwarded");
    assert_eq!(got.iter().map(|d| d.0).collect::<Vec<_>>(), [0, 1, 2, 4, 5, 6], "msg_gn as captured");
    assert!(got.iter().all(|d| d.1 == 1), "hop_cnt 1: {got:?}");
    assert_eq!(got.iter().map(|d| d.3).collect::<Vec<_>>(), [11, 18, 11, 18, 65536, 65523]);
    assert_eq!(quotas(pub_ours), [(15, 0), (22, 0), (17, 0), (18, 0), (24, 0), (65540, 0), (65529, 0)]);
    let texts: Vec<_> = sub_ours
        .iter()
        .filter_map(|(_, f)| match sendrecv(f) {
            Some(Message::Reply(p)) => Some((p.body.cmd(), p.rc)),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [(request::CMD_MSG_SUB_REPLY, 0), (request::CMD_MSG_SUB_REPLY, 0), (request::CMD_MSG_UNSUB_REPLY, 0)]
    );
    assert!(sub_ours.iter().filter_map(|(r, _)| r.windows(3).rposition(|w| w == b"OK\0")).count() >= 3);
}
