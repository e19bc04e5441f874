//! Server-side replay of the `dir-many` capture (2 640 test_sampler sets), the way
//! pvloom-ldms's `server_replay.rs` replays the other captures: the recorded client
//! streams go into a `ServerConn` and what it sends is compared with what ldmsd sent.
//!
//! The sets are built the way ldmsd built them: the capture's own config (`make-conf.sh`)
//! through `config::parse_str` and the `test_sampler` plugin, `configure` once per
//! `config` line, owned by root as in the recording, with the `updt_hint_us` info the
//! `start` line gives. The 89 sets the capture looks up take their wire identity (set id,
//! map key, region base, info) from its RENDEZVOUS frames; the others get the registry's.
//!
//! Nothing in the DIR JSON is masked: each set's data header (timestamp, duration,
//! consistent flag, data_gn) is brought to what the capture's DIR entry shows, so both
//! DIR_REPLY parts must be equal byte for byte, with the same cut between them.
//! Masked: the zap xid of every frame the server starts (its own counter), ldmsd's pid
//! in ACCEPTED, and the lookup profiling timespecs at the end of each RENDEZVOUS. How
//! RENDEZVOUS and READ_RESP frames interleave varies run to run (see the capture's
//! README), so READ_RESPs are compared as their own sequence, matched by the READ_REQ's
//! xid, and everything else in order.

#[path = "../../pvloom-ldms/tests/replay_frames/mod.rs"]
mod replay_frames;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use pvloom_core::endpoint::StreamEndpoint;
use pvloom_ldms::request::dir::parse_dir;
use pvloom_ldms::request::{Message, RendezvousBody, RendezvousMsg, ReplyBody};
use pvloom_ldms::server::{PublishOptions, ServerConfig, ServerConn, SetRegistry};
use pvloom_ldms::set::LocalSet;
use pvloom_ldms::zap::{Frame, FrameDecoder, Msg, RailConnMsg};
use pvloom_ldmsd::config::{Cmd, Owner, parse_str};
use pvloom_ldmsd::sampler::sampler_by_name;
use replay_frames::{mask, patch_to_dir, sendrecv};

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/dir-many");

/// A stream's frames with their raw bytes.
fn frames(file: &str) -> Vec<(Vec<u8>, Frame)> {
    let stream = std::fs::read(PathBuf::from(SCENARIO).join(file)).expect("capture stream");
    split(&stream)
}

fn split(stream: &[u8]) -> Vec<(Vec<u8>, Frame)> {
    let mut dec = FrameDecoder::new();
    dec.push(stream).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    while let Some(f) = dec.next_frame().unwrap() {
        let n = f.encoded_len();
        out.push((stream[off..off + n].to_vec(), f));
        off += n;
    }
    assert_eq!(off, stream.len(), "trailing bytes");
    out
}

/// A RENDEZVOUS of a lookup: (map key, base, set id, instance name, info, more).
type Rdv = (u32, u64, u64, String, Vec<(String, String)>, bool);

fn rendezvous(f: &Frame) -> Option<Rdv> {
    let Msg::Rendezvous(r) = &f.msg else { return None };
    let RendezvousMsg { body: RendezvousBody::Lookup(l), .. } = RendezvousMsg::decode(&r.msg).ok()? else {
        return None;
    };
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let info = l.info.iter().map(|p| (s(p.key()), s(p.value()))).collect();
    Some((r.map_key, r.addr, l.set_id, s(l.instance_name()), info, l.more != 0))
}

/// The 2 640 sets from the capture's config, in creation order, with the `start` line's
/// update hint as set info.
fn configured_sets() -> Vec<LocalSet> {
    let script = PathBuf::from(SCENARIO).join("make-conf.sh");
    // bash, as run.sh ran it (the script uses `$((10#$i))`).
    let out = std::process::Command::new("bash").arg(&script).output().expect("bash");
    assert!(out.status.success());
    let cmds = parse_str(&String::from_utf8(out.stdout).unwrap(), "dir-many.conf").unwrap();
    let mut sampler = None;
    let mut sets = Vec::new();
    let mut hint = None;
    for c in cmds {
        match c.cmd {
            Cmd::Load { plugin, .. } => {
                assert_eq!(plugin, "test_sampler");
                sampler = Some(sampler_by_name(&plugin).unwrap());
            }
            Cmd::Config(mut cfg) => {
                // The recording ran as root; say so, whoever runs the tests.
                cfg.uid = Some(Owner::Id(0));
                cfg.gid = Some(Owner::Id(0));
                sets.extend(sampler.as_mut().expect("loaded").configure(&cfg).unwrap());
            }
            Cmd::Start { interval_us, offset_us, .. } => {
                hint = Some(format!("{interval_us}:{}", offset_us.unwrap_or(0)));
            }
            _ => {}
        }
    }
    let hint = hint.expect("start line");
    for s in &mut sets {
        s.set_info("updt_hint_us", &hint);
    }
    sets
}

/// Feeds `c2s` frame by frame into a new connection; returns what it sent, as frames.
fn run(registry: &Arc<SetRegistry>, c2s: &[(Vec<u8>, Frame)], s2c: &[(Vec<u8>, Frame)]) -> Vec<(Vec<u8>, Frame)> {
    let mut config = ServerConfig::default();
    if let Msg::Accepted(d) = &s2c[0].1.msg {
        config.session.conn_msg = RailConnMsg::decode(d).unwrap();
    }
    let now = Instant::now();
    let mut server = ServerConn::new(registry.clone(), config, now);
    let mut sent = BytesMut::new();
    for (raw, _) in c2s {
        server.handle_input(now, raw);
        server.poll_transmit(now, usize::MAX, &mut sent);
        assert!(server.poll_close().is_none(), "server closed the connection");
    }
    split(&sent)
}

fn assert_same(what: &str, want: &(Vec<u8>, Frame), got: &(Vec<u8>, Frame)) {
    let (mut w, mut g) = (want.0.clone(), got.0.clone());
    mask(&mut w, &want.1);
    mask(&mut g, &got.1);
    if w != g {
        let at = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
        panic!(
            "{what} differs at byte {at} (lengths {} / {}): want {:?} got {:?}",
            w.len(),
            g.len(),
            String::from_utf8_lossy(&w[at.saturating_sub(60)..(at + 60).min(w.len())]),
            String::from_utf8_lossy(&g[at.saturating_sub(60)..(at + 60).min(g.len())]),
        );
    }
}

#[test]
fn dir_many_two_part_dir_lookups_by_schema_and_regex_and_enoent() {
    let t0 = Instant::now();
    let c2s0 = frames("c2s.bin");
    let s2c0 = frames("s2c.bin");
    let c2s1 = frames("conn1.c2s.bin");
    let s2c1 = frames("conn1.s2c.bin");

    // The capture's DIR entries, by name.
    let mut dir = std::collections::HashMap::new();
    for (_, f) in &s2c0 {
        if let Some(Message::Reply(p)) = sendrecv(f)
            && let ReplyBody::Dir { json, .. } = &p.body
        {
            for e in parse_dir(json).unwrap() {
                dir.insert(e.name.clone(), e);
            }
        }
    }
    assert_eq!(dir.len(), 2640);
    let rdv: Vec<Rdv> = s2c1.iter().filter_map(|(_, f)| rendezvous(f)).collect();
    assert_eq!(rdv.len(), 89);

    let mut sets = configured_sets();
    assert_eq!(sets.len(), 2640);
    for s in &mut sets {
        let e = &dir[s.name()];
        patch_to_dir(s, e);
    }
    // Looked-up sets first, with the capture's identity, so that the registry's own
    // choices for the others cannot take theirs.
    let registry = SetRegistry::new();
    let mut rest = Vec::new();
    let mut handles = Vec::new();
    for mut s in sets {
        match rdv.iter().find(|r| r.3 == s.name()) {
            Some((key, base, id, _, info, _)) => {
                for (k, v) in info {
                    s.set_info(k, v);
                }
                let opts = PublishOptions { set_id: Some(*id), map_key: Some(*key), base: Some(*base) };
                handles.push(registry.publish_with(s, opts).unwrap());
            }
            None => rest.push(s),
        }
    }
    for s in rest {
        handles.push(registry.publish(s).unwrap());
    }
    let t_setup = t0.elapsed();

    // Connection 0: ACCEPTED, DIR_REPLY 2 588 entries (more = 1), DIR_REPLY 52 (more = 0).
    let ours0 = run(&registry, &c2s0, &s2c0);
    assert_eq!(ours0.len(), 3, "conn0 frames");
    assert_eq!(s2c0.len(), 3);
    for (i, (w, g)) in s2c0.iter().zip(&ours0).enumerate() {
        assert_same(&format!("conn0 frame {i}"), w, g);
    }
    let parts: Vec<(bool, usize)> = ours0
        .iter()
        .filter_map(|(_, f)| match sendrecv(f) {
            Some(Message::Reply(p)) => match p.body {
                ReplyBody::Dir { more, json, .. } => Some((more != 0, parse_dir(&json).unwrap().len())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(parts, [(true, 2588), (false, 52)]);

    // Connection 1: everything but READ_RESP in order (ACCEPTED, 40 + 49 RENDEZVOUS,
    // LOOKUP_REPLY ENOENT); the 89 READ_RESPs by the xid of the READ_REQ they answer.
    let ours1 = run(&registry, &c2s1, &s2c1);
    let is_resp = |f: &Frame| matches!(f.msg, Msg::ReadResp(_));
    let (want_resp, want_rest): (Vec<_>, Vec<_>) = s2c1.iter().partition(|(_, f)| is_resp(f));
    let (got_resp, got_rest): (Vec<_>, Vec<_>) = ours1.iter().partition(|(_, f)| is_resp(f));
    assert_eq!((want_rest.len(), want_resp.len()), (91, 89));
    assert_eq!((got_rest.len(), got_resp.len()), (91, 89), "conn1 frames");
    for (i, (w, g)) in want_rest.iter().zip(&got_rest).enumerate() {
        assert_same(&format!("conn1 frame {i} (not READ_RESP)"), w, g);
    }
    let got_rdv: Vec<Rdv> = got_rest.iter().filter_map(|(_, f)| rendezvous(f)).collect();
    let names_more = |v: &[Rdv]| v.iter().map(|r| (r.3.clone(), r.5)).collect::<Vec<_>>();
    assert_eq!(names_more(&got_rdv), names_more(&rdv));
    let mores: Vec<bool> = got_rdv.iter().map(|r| r.5).collect();
    let mut expect: Vec<bool> = (0..40).map(|i| i < 39).collect();
    expect.extend((0..49).map(|i| i < 48));
    assert_eq!(mores, expect, "more on all but the last of each lookup");
    // Ascending name order; the regex `set_00[0-4][0-9]` has no set_0000 to match.
    let name = |i: usize| got_rdv[i].3.as_str();
    assert_eq!([name(0), name(39)], ["localhost1/dir_many_b/set_01", "localhost1/dir_many_b/set_40"]);
    assert_eq!([name(40), name(88)], ["localhost1/dir_many/set_0001", "localhost1/dir_many/set_0049"]);
    match sendrecv(&got_rest[90].1) {
        Some(Message::Reply(p)) => {
            assert!(matches!(p.body, ReplyBody::Lookup), "{:?}", p.body);
            assert_eq!(p.rc, 2, "ENOENT");
        }
        other => panic!("last frame: {other:?}"),
    }
    for (w, g) in &want_resp {
        let Some((graw, gf)) = got_resp.iter().find(|(_, f)| f.xid == g.xid) else {
            panic!("no READ_RESP for xid {}", g.xid)
        };
        let (Msg::ReadResp(a), Msg::ReadResp(b)) = (&g.msg, &gf.msg) else { unreachable!() };
        let meta_sz = u32::from_le_bytes(a.data[84..88].try_into().unwrap()) as usize;
        assert_eq!(a.data.len(), meta_sz, "a meta read");
        assert_eq!(a.data, b.data, "READ_RESP payload for xid {}", g.xid);
        assert_eq!(w, graw, "READ_RESP frame for xid {}", g.xid);
    }
    drop(handles);
    eprintln!("dir-many replay: setup {t_setup:?}, total {:?}", t0.elapsed());
}
