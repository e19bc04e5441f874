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
#[allow(dead_code)]
mod replay_util;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use pvloom_core::endpoint::StreamEndpoint;
use pvloom_ldms::bus::{BusConfig, BusMsg, MsgBus, MsgClient};
use pvloom_ldms::client::{ClientConn, ClientConnConfig, ClientEvent};
use pvloom_ldms::msg::{MSG_HDR_LEN, PART_HDR_LEN};
use pvloom_ldms::msg::{MsgHeader, MsgType};
use replay_util::{Capture, Ids, load};

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

/// Per connection: the recorded server frames and ours; and what a local client got
/// (name, msg_gn, hop_cnt, data).
type Served = (Vec<(Vec<Timed>, Frames)>, Vec<(String, u64, u32, Bytes)>);

/// A local client on the bus (`local`) takes each message as it comes and is done with it
/// at once, so its credit goes back.
fn serve(conns: &[(&Path, u64)], bus: &Arc<MsgBus>, local: Option<&MsgClient>) -> Served {
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
    let mut got = Vec::new();
    for (i, f) in feeds {
        let now = t0 + Duration::from_secs_f64(f.t);
        servers[i].handle_input(now, &f.raw);
        while let Some(m) = local.and_then(MsgClient::try_get_data) {
            got.push((m.name(), m.msg_gn(), m.hop_cnt(), m.data().clone()));
        }
        pump(&mut servers, &mut sent, now);
    }
    (recorded.into_iter().zip(sent.iter().map(|s| split(s))).collect(), got)
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
    let (out, _) = serve(&[(&sub_dir, 0), (&pub_dir, 0)], &bus, None);
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

/// Client side: a `ClientConn` fed the recorded server stream, doing what the recorded
/// Python client did; its frames are compared with the recorded client's.
struct ClientReplay {
    conn: ClientConn,
    t0: Instant,
    cap: Capture,
    next_s2c: usize,
    out: BytesMut,
    mine: Frames,
    ids: Ids,
    events: Vec<ClientEvent>,
}

impl ClientReplay {
    fn new(scenario: &str, conn: u64, bus: &Arc<MsgBus>) -> ClientReplay {
        let cap = load(scenario, conn);
        let mut config = ClientConnConfig { bus: Some(bus.clone()), ..ClientConnConfig::default() };
        config.session.conn_msg = RailConnMsg::decode(&cap.c2s[0][36..100]).unwrap();
        config.wall_clock = || Duration::from_secs(1_795_436_736);
        let t0 = Instant::now();
        let mut r = ClientReplay {
            conn: ClientConn::new(t0, config),
            t0,
            cap,
            next_s2c: 0,
            out: BytesMut::new(),
            mine: Vec::new(),
            ids: Ids::default(),
            events: Vec::new(),
        };
        r.collect();
        r
    }

    fn now(&self) -> Instant {
        let t = self.next_s2c.checked_sub(1).map_or(0.0, |i| self.cap.s2c[i].2);
        self.t0 + Duration::from_secs_f64(t)
    }

    /// Takes what the client sent; learns the recorded client's ids from it.
    fn collect(&mut self) {
        let now = self.now();
        self.conn.poll_transmit(now, usize::MAX, &mut self.out);
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
        assert!(self.conn.poll_close().is_none(), "the client closed");
        let sent = self.out.split();
        for (raw, f) in split(&sent) {
            let i = self.mine.len();
            let rec = self.cap.c2s.get(i).unwrap_or_else(|| panic!("client frame #{i} beyond the capture"));
            self.ids.learn(rec, &raw);
            self.mine.push((raw, f));
        }
    }

    /// Feeds the next recorded server frame (ids rewritten to the client's).
    fn feed(&mut self) {
        let f = self.ids.rewrite(self.cap.s2c[self.next_s2c].0.clone());
        self.next_s2c += 1;
        let now = self.now();
        self.conn.handle_input(now, &f);
        self.collect();
    }

    /// Compares everything the client sent with the recorded client stream, masked (the
    /// LDMS xid of MSG_SUB/MSG_UNSUB is the recorded client's pointer).
    fn finish(self, what: &str) -> Vec<ClientEvent> {
        assert_eq!(self.next_s2c, self.cap.s2c.len(), "{what}: every server frame fed");
        let want: Frames = self
            .cap
            .c2s
            .iter()
            .map(|raw| {
                let mut dec = FrameDecoder::new();
                dec.push(raw).unwrap();
                (raw.clone(), dec.next_frame().unwrap().unwrap())
            })
            .collect();
        let mask_xid = |v: &Frames| -> Frames {
            v.iter()
                .map(|(raw, f)| {
                    let mut raw = raw.clone();
                    if let Some(Message::Request(q)) = sendrecv(f)
                        && matches!(q.body.cmd(), request::CMD_MSG_SUB | request::CMD_MSG_UNSUB)
                    {
                        raw[24..32].fill(0);
                    }
                    (raw, f.clone())
                })
                .collect()
        };
        compare(what, &mask_xid(&want), &mask_xid(&self.mine));
        self.events
    }
}

fn sub_status(events: &[ClientEvent]) -> Vec<(String, bool, bool, i32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::MsgSubStatus { status: s, .. } => {
                Some((s.pattern.clone(), s.is_regex, s.unsubscribe, s.status, s.text.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn msg_bus_client_side_subscriber() {
    let bus = bus();
    let local = MsgClient::queue(&bus, ".*", true, 64).unwrap();
    let mut r = ClientReplay::new("msg-bus/subscriber", 0, &bus);
    r.feed(); // ACCEPTED → ACK_ACCEPTED
    let now = r.now();
    r.conn.msg_subscribe(now, "foo", false, -1, false, None).unwrap();
    r.collect();
    r.feed();
    r.conn.msg_subscribe(now, "bar.*", true, -1, false, None).unwrap();
    r.collect();
    r.feed();
    let mut got = Vec::new();
    for k in 0..6 {
        r.feed();
        let m = local.try_get_data().expect("delivered to the local client");
        got.push((m.name(), m.msg_gn(), m.hop_cnt(), m.data().len()));
        if k == 5 {
            // The recorded client unsubscribed before its callback had finished with
            // the last message: its credit follows the MSG_UNSUB.
            let now = r.now();
            r.conn.msg_subscribe(now, "foo", false, -1, true, None).unwrap();
            r.collect();
        }
        drop(m); // the bus is done with it: the credit goes back
        r.collect();
    }
    r.feed(); // MSG_UNSUB_REPLY
    assert!(local.try_get_data().is_none());
    let events = r.finish("msg-bus subscriber c2s");
    let names: Vec<_> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(names, ["foo", "foo", "bar.x", "bar.y", "foo", "bar.z"]);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 1, 2, 4, 5, 6]);
    assert!(got.iter().all(|g| g.2 == 1));
    assert_eq!(got.iter().map(|g| g.3).collect::<Vec<_>>(), [11, 18, 11, 18, 65536, 65523]);
    let ok = |p: &str, re: bool, un: bool| (p.to_string(), re, un, 0, "OK".to_string());
    assert_eq!(sub_status(&events), [ok("foo", false, false), ok("bar.*", true, false), ok("foo", false, true)]);
}

/// The messages of a recorded publisher stream, as published: (header, name, data).
fn recorded_publishes(c2s: &[Vec<u8>]) -> Vec<(MsgHeader, Bytes, Bytes)> {
    c2s.iter()
        .filter(|raw| is_first_part(raw))
        .map(|raw| {
            let (header, _) = MsgHeader::decode(&raw[MSG_HDR_AT..]).unwrap();
            let rest = &raw[MSG_HDR_AT + MSG_HDR_LEN..];
            let nul = rest.iter().position(|&c| c == 0).unwrap();
            (header, Bytes::copy_from_slice(&rest[..nul]), Bytes::copy_from_slice(&rest[nul + 1..]))
        })
        .collect()
}

fn publish_on(conn: &ClientConn, header: &MsgHeader, name: &Bytes, data: &Bytes) {
    let m = BusMsg::local(
        name.clone(),
        header.msg_type,
        data.clone(),
        (header.uid, header.gid, header.perm),
        header.msg_gn,
        header.hops[0].send,
    );
    conn.link().post(pvloom_ldms::bus::Routed::local(Arc::new(m)));
}

#[test]
fn msg_bus_client_side_publisher() {
    let bus = bus();
    let mut r = ClientReplay::new("msg-bus/publisher", 0, &bus);
    let msgs = recorded_publishes(&r.cap.c2s);
    assert_eq!(msgs.len(), 7);
    assert_eq!(msgs.iter().map(|m| m.0.msg_type).filter(|t| *t == MsgType::Json).count(), 3);
    r.feed(); // ACCEPTED → ACK_ACCEPTED
    // The recorded publisher sent its 7 messages 0.2 s apart, the credit of each coming
    // back before the next.
    for (h, name, data) in &msgs {
        publish_on(&r.conn, h, name, data);
        r.collect();
        r.feed(); // SEND_QUOTA
    }
    let events = r.finish("msg-bus publisher c2s");
    let q: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::SendQuota { quota, rc } => Some((*quota, *rc)),
            _ => None,
        })
        .collect();
    assert_eq!(q, [(15, 0), (22, 0), (17, 0), (18, 0), (24, 0), (65540, 0), (65529, 0)]);
}

/// msg-chan, publisher → subscriber directly: each connection's publisher stream into a
/// server connection whose bus has a local `.*` client (the subscribe-mode channel).
#[test]
fn msg_chan_server_side_every_connection() {
    let dir = common::root().join("msg-chan");
    let mut all = Vec::new();
    for conn in 0..4 {
        let bus = bus();
        let local = MsgClient::queue(&bus, ".*", true, 64).unwrap();
        let (out, got) = serve(&[(&dir, conn)], &bus, Some(&local));
        let (rec, ours) = &out[0];
        compare(&format!("msg-chan conn{conn} s2c"), &recorded_frames(rec), ours);
        let sent =
            recorded_publishes(&frames_timed(&dir, conn, "c2s").iter().map(|t| t.raw.to_vec()).collect::<Vec<_>>());
        assert_eq!(got.len(), sent.len(), "conn{conn}: every message delivered");
        for (g, (h, name, data)) in got.iter().zip(&sent) {
            assert_eq!(
                (g.0.as_bytes(), g.1, g.2, &g.3),
                (name.as_ref(), h.msg_gn, 0, data),
                "conn{conn}: in order, as received"
            );
        }
        let q: Vec<u32> = quotas(ours).iter().map(|q| q.0).collect();
        assert_eq!(q, sent.iter().map(|(_, n, d)| (n.len() + 1 + d.len()) as u32).collect::<Vec<_>>());
        all.extend(got.into_iter().map(|g| g.1));
    }
    assert_eq!(all, [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3], "msg_gn per publisher process, conn3 continuing conn2");
    // Connection 0's SEND_QUOTAs as recorded.
    let (out, _) = {
        let bus = bus();
        let local = MsgClient::queue(&bus, ".*", true, 64).unwrap();
        serve(&[(&dir, 0)], &bus, Some(&local))
    };
    assert_eq!(quotas(&out[0].1).iter().map(|q| q.0).collect::<Vec<_>>(), [14, 14, 27, 307, 63]);
}

/// msg-chan, the publisher side: a `ClientConn` publishes what the recorded channel did
/// and gets the recorded SEND_QUOTAs.
#[test]
fn msg_chan_client_side_every_connection() {
    for conn in 0..4 {
        let bus = bus();
        let mut r = ClientReplay::new("msg-chan", conn, &bus);
        let msgs = recorded_publishes(&r.cap.c2s);
        r.feed(); // ACCEPTED → ACK_ACCEPTED
        for (h, name, data) in &msgs {
            publish_on(&r.conn, h, name, data);
            r.collect();
        }
        while r.next_s2c < r.cap.s2c.len() {
            r.feed(); // SEND_QUOTA
        }
        let what = format!("msg-chan conn{conn} c2s");
        let events = r.finish(&what);
        let acks = events.iter().filter(|e| matches!(e, ClientEvent::SendQuota { rc: 0, .. })).count();
        assert_eq!(acks, msgs.len(), "{what}: every message acknowledged");
    }
}
