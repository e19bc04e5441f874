//! Replays recorded client streams into a `ServerConn` and compares what it sends with
//! what ldmsd sent: the same frames in the same order, byte for byte except the fields
//! that vary from run to run (zap xids of unsolicited frames, pids, profiling
//! timestamps, pointer-valued request xids the server chooses).
//!
//! The registry holds the captured sets: images from the captured READ_RESP data, map
//! keys, addresses and set ids from the captured RENDEZVOUS, set info from the captured
//! directory or rendezvous. Before each request the sets are brought to the state the
//! capture shows for that moment (data header of the READ_RESP that answers it, gn and
//! timestamps of the DIR_REPLY), and the server-initiated frames (pushes, directory
//! updates, SET_DELETE) are caused at the time the capture shows them.

#[allow(dead_code)]
mod common;
mod replay_frames;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pvloom_core::endpoint::StreamEndpoint;
use pvloom_ldms::request::dir::parse_dir;
use pvloom_ldms::request::{
    self, Message, RendezvousBody, RendezvousMsg, ReplyBody, Request, RequestBody, UPD_F_PUSH_LAST,
};
use pvloom_ldms::server::{PublishOptions, ServerConfig, ServerConn, ServerEvent, SetHandle, SetRegistry};
use pvloom_ldms::set::LocalSet;
use pvloom_ldms::zap::{Frame, FrameDecoder, Msg, RailConnMsg};
use replay_frames::{mask, patch_to_dir, sendrecv};

/// A frame and when (capture seconds) it was seen complete / begun.
#[derive(Clone, Debug)]
struct Timed {
    t: f64,
    raw: Bytes,
    frame: Frame,
}

fn frames_timed(dir: &Path, conn: u64, way: &str) -> Vec<Timed> {
    let text = std::fs::read_to_string(dir.join("chunks.jsonl")).unwrap();
    let mut stream = Vec::new();
    let mut times = Vec::new(); // (end offset, t)
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
    let mut out = Vec::new();
    let mut off = 0;
    let mut dec = FrameDecoder::new();
    dec.push(&stream).unwrap();
    while let Some(frame) = dec.next_frame().unwrap() {
        let len = frame.encoded_len();
        let raw = Bytes::copy_from_slice(&stream[off..off + len]);
        // c2s: when the last byte arrived; s2c: when the first byte was sent.
        let at = if way == "c2s" { off + len } else { off + 1 };
        let t = times.iter().find(|(end, _)| *end >= at).unwrap().1;
        out.push(Timed { t, raw, frame });
        off += len;
    }
    out
}

fn conns(dir: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join("chunks.jsonl")).unwrap();
    let mut c: Vec<u64> =
        text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["conn"].as_u64()).collect();
    c.sort();
    c.dedup();
    c
}

#[derive(Default, Clone)]
struct SetFacts {
    key: u32,
    base: u64,
    set_id: u64,
    meta: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    info: Vec<(String, String)>,
    name: String,
}

/// Everything the scenario's streams tell about its sets.
fn gather(dir: &Path) -> BTreeMap<u32, SetFacts> {
    let mut sets: BTreeMap<u32, SetFacts> = BTreeMap::new();
    for conn in conns(dir) {
        let c2s = frames_timed(dir, conn, "c2s");
        let s2c = frames_timed(dir, conn, "s2c");
        for f in &s2c {
            if let Msg::Rendezvous(r) = &f.frame.msg
                && let Ok(RendezvousMsg { body: RendezvousBody::Lookup(l), .. }) = RendezvousMsg::decode(&r.msg)
            {
                let s = sets.entry(r.map_key).or_default();
                s.key = r.map_key;
                s.base = r.addr;
                s.set_id = l.set_id;
                s.name = String::from_utf8_lossy(l.instance_name()).into_owned();
                s.info = l
                    .info
                    .iter()
                    .map(|p| {
                        (String::from_utf8_lossy(p.key()).into_owned(), String::from_utf8_lossy(p.value()).into_owned())
                    })
                    .collect();
            }
        }
        let reqs: HashMap<u32, (u32, u64)> = c2s
            .iter()
            .filter_map(|f| match &f.frame.msg {
                Msg::ReadReq(r) => Some((f.frame.xid, (r.map_key, r.src_ptr))),
                _ => None,
            })
            .collect();
        for f in &s2c {
            let Msg::ReadResp(r) = &f.frame.msg else { continue };
            let Some(&(key, ptr)) = reqs.get(&f.frame.xid) else { continue };
            let Some(s) = sets.get_mut(&key) else { continue };
            let off = ptr - s.base;
            if off == 0 {
                let meta_sz = u32::from_le_bytes(r.data[84..88].try_into().unwrap()) as usize;
                s.meta.get_or_insert_with(|| r.data[..meta_sz].to_vec());
                if r.data.len() > meta_sz {
                    s.data.get_or_insert_with(|| r.data[meta_sz..].to_vec());
                }
            } else if s.data.is_none() {
                s.data = Some(r.data.to_vec());
            }
        }
    }
    sets
}

struct Replay {
    registry: Arc<SetRegistry>,
    handles: HashMap<String, SetHandle>,
    facts: BTreeMap<u32, SetFacts>,
}

impl Replay {
    fn new(dir: &Path, unpublished: &[&str]) -> Replay {
        let facts = gather(dir);
        let registry = SetRegistry::new();
        let mut handles = HashMap::new();
        for f in facts.values() {
            if unpublished.contains(&f.name.as_str()) {
                continue;
            }
            let h = publish(&registry, f);
            handles.insert(f.name.clone(), h);
        }
        Replay { registry, handles, facts }
    }

    fn facts_of(&self, name: &str) -> &SetFacts {
        self.facts.values().find(|f| f.name == name).unwrap_or_else(|| panic!("no captured image of {name}"))
    }
}

fn publish(registry: &Arc<SetRegistry>, f: &SetFacts) -> SetHandle {
    let mut img = f.meta.clone().unwrap_or_else(|| panic!("no meta of {}", f.name));
    img.extend_from_slice(f.data.as_ref().unwrap_or_else(|| panic!("no data of {}", f.name)));
    let mut set = LocalSet::from_image(img).unwrap();
    for (k, v) in &f.info {
        set.set_info(k, v);
    }
    let opts = PublishOptions { set_id: Some(f.set_id), map_key: Some(f.key), base: Some(f.base) };
    registry.publish_with(set, opts).unwrap()
}

fn describe(f: &Frame) -> String {
    match sendrecv(f) {
        Some(Message::Request(q)) => format!("request {:#x}", q.body.cmd()),
        Some(Message::Reply(p)) => format!("reply {:#x} rc {}", p.body.cmd(), p.rc),
        None => format!("{:?}", f.msg_type()),
    }
}

/// Replays connection `conn` of `scenario`; returns the server's events.
fn replay(scenario: &str, conn: u64, unpublished: &[&str]) -> Vec<ServerEvent> {
    let dir = common::root().join(scenario);
    let mut rp = Replay::new(&dir, unpublished);
    let c2s = frames_timed(&dir, conn, "c2s");
    let s2c = frames_timed(&dir, conn, "s2c");
    let mut config = ServerConfig::default();
    if let Msg::Accepted(d) = &s2c[0].frame.msg {
        config.session.conn_msg = RailConnMsg::decode(d).unwrap();
    }
    let now = Instant::now();
    let mut server = ServerConn::new(rp.registry.clone(), config, now);

    // The timeline: client frames, and the server frames the server starts itself.
    enum Step {
        Feed(usize),
        Cause(usize),
    }
    let mut steps: Vec<(f64, u8, Step)> = c2s.iter().enumerate().map(|(i, f)| (f.t, 1, Step::Feed(i))).collect();
    for (i, f) in s2c.iter().enumerate() {
        let unsolicited = match sendrecv(&f.frame) {
            Some(Message::Reply(p)) => match &p.body {
                ReplyBody::Push(pr) => pr.flags & UPD_F_PUSH_LAST == 0,
                ReplyBody::Dir { update, .. } => *update,
                _ => false,
            },
            Some(Message::Request(q)) => matches!(q.body, RequestBody::SetDelete { .. }),
            None => false,
        };
        if unsolicited {
            steps.push((f.t, 0, Step::Cause(i)));
        }
    }
    steps.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));

    let mut sent = BytesMut::new();
    let mut events = Vec::new();
    let mut delete_xids = Vec::new();
    let pump = |server: &mut ServerConn, sent: &mut BytesMut, events: &mut Vec<ServerEvent>| {
        server.poll_transmit(now, usize::MAX, sent);
        while let Some(e) = server.poll_event() {
            events.push(e);
        }
        assert!(server.poll_close().is_none(), "server closed the connection");
    };
    for (_, _, step) in steps {
        match step {
            Step::Feed(i) => {
                let f = &c2s[i].frame;
                // Bring the sets to the state the capture's answer shows.
                match &f.msg {
                    Msg::ReadReq(rq) => {
                        let resp = s2c.iter().find(|r| matches!(r.frame.msg, Msg::ReadResp(_)) && r.frame.xid == f.xid);
                        if let (Some(resp), Some(facts)) = (resp, rp.facts.get(&rq.map_key)) {
                            let Msg::ReadResp(r) = &resp.frame.msg else { unreachable!() };
                            let h = &rp.handles[&facts.name];
                            let meta_sz = h.read(|s| s.meta().meta_sz) as usize;
                            let off = (rq.src_ptr - facts.base) as usize;
                            if off + r.data.len() > meta_sz && off <= meta_sz {
                                let data = &r.data[meta_sz - off..];
                                h.update(|s| {
                                    if data.len() == s.data_bytes().len() {
                                        s.replace_data(data).unwrap();
                                    }
                                });
                            }
                        }
                    }
                    Msg::SendRecv(_) => {
                        if let Some(Message::Request(Request { xid, body: RequestBody::Dir { .. } })) = sendrecv(f) {
                            for r in &s2c {
                                if let Some(Message::Reply(p)) = sendrecv(&r.frame)
                                    && p.xid == xid
                                    && let ReplyBody::Dir { update: false, json, .. } = &p.body
                                {
                                    for e in parse_dir(json).unwrap() {
                                        if let Some(h) = rp.handles.get(&e.name) {
                                            h.update(|s| patch_to_dir(s, &e));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
                let mut raw = c2s[i].raw.to_vec();
                // The peer's SET_DELETE_REPLY echoes ldmsd's xid; give it ours.
                if let Some(Message::Reply(p)) = sendrecv(f)
                    && matches!(p.body, ReplyBody::SetDelete { .. })
                    && !delete_xids.is_empty()
                {
                    let x: u64 = delete_xids.remove(0);
                    raw[24..32].copy_from_slice(&x.to_le_bytes());
                }
                server.handle_input(now, &raw);
            }
            Step::Cause(i) => match sendrecv(&s2c[i].frame).unwrap() {
                Message::Reply(p) => match p.body {
                    ReplyBody::Push(pr) => {
                        let name = rp.facts.values().find(|f| f.set_id == pr.set_id).map(|f| f.name.clone());
                        // The client's push_set_id equals ldmsd's set id in the captures.
                        let h = &rp.handles[&name.expect("pushed set")];
                        h.update(|s| {
                            let ms = s.meta().meta_sz as usize;
                            let data = if pr.data_off == 0 { &pr.data[ms..] } else { &pr.data[..] };
                            s.replace_data(data).unwrap();
                        });
                    }
                    ReplyBody::Dir { dir_type, json, .. } => {
                        let e = parse_dir(&json).unwrap().remove(0);
                        match dir_type {
                            request::DIR_ADD => {
                                let f = rp.facts_of(&e.name).clone();
                                let mut img = f.meta.clone().unwrap();
                                img.extend_from_slice(f.data.as_ref().unwrap());
                                let mut set = LocalSet::from_image(img).unwrap();
                                patch_to_dir(&mut set, &e);
                                let opts =
                                    PublishOptions { set_id: Some(f.set_id), map_key: Some(f.key), base: Some(f.base) };
                                let h = rp.registry.publish_with(set, opts).unwrap();
                                rp.handles.insert(e.name.clone(), h);
                            }
                            _ => rp.handles[&e.name].update(|s| patch_to_dir(s, &e)),
                        }
                    }
                    _ => unreachable!(),
                },
                Message::Request(q) => {
                    let RequestBody::SetDelete { inst_name } = q.body else { unreachable!() };
                    let name = String::from_utf8(inst_name.to_vec()).unwrap();
                    rp.handles[&name].unpublish();
                }
            },
        }
        pump(&mut server, &mut sent, &mut events);
        // Learn the xid of a SET_DELETE just sent, for the peer's reply.
        let mut dec = FrameDecoder::new();
        dec.push(&sent).unwrap();
        let mut seen = 0;
        while let Some(f) = dec.next_frame().unwrap() {
            if let Some(Message::Request(q)) = sendrecv(&f)
                && matches!(q.body, RequestBody::SetDelete { .. })
            {
                seen += 1;
                if seen
                    > delete_xids.len()
                        + events.iter().filter(|e| matches!(e, ServerEvent::SetDeleteAcked { .. })).count()
                {
                    delete_xids.push(q.xid);
                }
            }
        }
    }

    // Compare.
    let mut dec = FrameDecoder::new();
    dec.push(&sent).unwrap();
    let mut ours = Vec::new();
    let mut off = 0;
    while let Some(f) = dec.next_frame().unwrap() {
        let n = f.encoded_len();
        ours.push((sent[off..off + n].to_vec(), f));
        off += n;
    }
    assert_eq!(off, sent.len());
    for (i, (want, (got, gf))) in s2c.iter().zip(&ours).enumerate() {
        let mut w = want.raw.to_vec();
        let mut g = got.clone();
        mask(&mut w, &want.frame);
        mask(&mut g, gf);
        if w != g {
            let at = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
            panic!(
                "{scenario} conn{conn}: s2c frame {i} ({}) differs at byte {at} (lengths {} / {}): want {:02x?} got {:02x?}",
                describe(&want.frame),
                w.len(),
                g.len(),
                &w[at.saturating_sub(8)..(at + 24).min(w.len())],
                &g[at.saturating_sub(8)..(at + 24).min(g.len())],
            );
        }
    }
    assert_eq!(
        ours.len(),
        s2c.len(),
        "{scenario} conn{conn}: frame count; ours: {:?}",
        ours.iter().map(|(_, f)| describe(f)).collect::<Vec<_>>()
    );
    events
}

#[test]
fn ls_l_meminfo() {
    replay("ls-l-meminfo", 0, &[]);
}

#[test]
fn ls_l_two_samplers_conn1() {
    replay("ls-l-two-samplers", 1, &[]);
}

#[test]
fn python_api_dir_regex_lookup_updates_push_cancel() {
    replay("python-api", 0, &[]);
}

#[test]
fn ls_l_records() {
    replay("ls-l-records", 0, &[]);
}

#[test]
fn all_types_both_connections() {
    replay("all-types", 0, &[]);
    replay("all-types", 1, &[]);
}

#[test]
fn list_record_both_connections() {
    replay("list-record", 0, &[]);
    replay("list-record", 1, &[]);
}

#[test]
fn aggregator_dir_notify_add_upd_set_delete() {
    let events = replay("aggregator", 0, &["localhost1/vmstat"]);
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::SetDeleteAcked { name } if name == "localhost1/vmstat")),
        "{events:?}"
    );
}
