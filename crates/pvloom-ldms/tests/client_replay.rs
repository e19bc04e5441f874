//! Replays: each capture's server stream is fed to a `ClientConn` that runs the same
//! operations the recorded client ran. The client's own bytes are checked against the
//! recorded client's (masking only xids, pointers and the pid), and what it reports
//! against `client-output.txt`.
//!
//! LDMS xids and read cookies are opaque, so the harness learns the mapping from the
//! recorded requests to the client's and rewrites the replies it feeds.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod replay_util;

use replay_util::{Capture, Ids, be32, load, scenario};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pvloom_core::StreamEndpoint;
use pvloom_ldms::client::format;
use pvloom_ldms::client::{ClientConn, ClientConnConfig, ClientEvent, OpError, SetId, SetSnapshot};
use pvloom_ldms::request::dir::DirEntry;
use pvloom_ldms::request::{self, DIR_ADD, DIR_F_NOTIFY, DIR_UPD, LOOKUP_BY_SCHEMA, LOOKUP_RE};
use pvloom_ldms::zap::RailConnMsg;

type Step = Box<dyn FnOnce(&mut ClientConn, Instant, &[ClientEvent])>;

struct Replay {
    conn: ClientConn,
    t0: Instant,
    cap: Capture,
    mine: Vec<Vec<u8>>,
    pending_out: BytesMut,
    ids: Ids,
    events: Vec<ClientEvent>,
}

impl Replay {
    fn new(name: &str, conn: u64) -> Replay {
        let cap = load(name, conn);
        let mut config = ClientConnConfig { op_timeout: Duration::from_secs(120), ..ClientConnConfig::default() };
        // The recorded client's rail connect message (its pid, message service flag).
        config.session.conn_msg = RailConnMsg::decode(&cap.c2s[0][36..100]).unwrap();
        config.wall_clock = || Duration::from_secs(1_795_436_736);
        let t0 = Instant::now();
        Replay {
            conn: ClientConn::new(t0, config),
            t0,
            cap,
            mine: Vec::new(),
            pending_out: BytesMut::new(),
            ids: Ids::default(),
            events: Vec::new(),
        }
    }

    /// Take the client's output, check each frame against the recorded one, learn ids.
    fn collect(&mut self, now: Instant) {
        self.conn.poll_transmit(now, usize::MAX, &mut self.pending_out);
        loop {
            if self.pending_out.len() < 8 {
                return;
            }
            let len = be32(&self.pending_out, 4) as usize;
            if self.pending_out.len() < len {
                return;
            }
            let f = self.pending_out.split_to(len).to_vec();
            let i = self.mine.len();
            let rec = self.cap.c2s.get(i).unwrap_or_else(|| panic!("client frame #{i} beyond the capture: {f:02x?}"));
            self.compare(i, rec.clone(), &f);
            self.mine.push(f);
        }
    }

    fn compare(&mut self, i: usize, rec: Vec<u8>, mine: &[u8]) {
        assert_eq!(rec.len(), mine.len(), "client frame #{i} length");
        let (mut a, mut b) = (rec.clone(), mine.to_vec());
        let ty = be32(&rec, 0) >> 16;
        let mut mask = |r: std::ops::Range<usize>| {
            for k in r {
                a[k] = 0;
                b[k] = 0;
            }
        };
        self.ids.learn(&rec, mine);
        mask(8..20); // zap xid (a process-wide counter) and ctxt
        match ty {
            2 => {
                let cmd = be32(&rec, 32);
                mask(24..32);
                if cmd == request::CMD_SET_DELETE_REPLY {
                    mask(44..60); // receive time stamp
                }
            }
            3 => {
                mask(20..24); // the client's map key
                mask(28..36); // and region address
                mask(64..72); // and push set id
            }
            _ => {}
        }
        assert_eq!(a, b, "client frame #{i} (type {ty}) differs from the recorded one");
    }

    /// Feed every server frame, running `next` whenever the recorded client had sent
    /// more than this one has.
    fn run(mut self, mut next: impl FnMut(&mut ClientConn, Instant, &[ClientEvent]) -> bool) -> Replay {
        let frames = std::mem::take(&mut self.cap.s2c);
        for (k, (f, before, t)) in frames.into_iter().enumerate() {
            let now = self.t0 + Duration::from_secs_f64(t);
            self.collect(now);
            while self.mine.len() < before {
                let progressed = next(&mut self.conn, now, &self.events);
                self.drain();
                self.collect(now);
                assert!(
                    progressed || self.mine.len() >= before,
                    "server frame #{k}: the client sent {} frames, the recorded one {before}",
                    self.mine.len()
                );
            }
            let f = self.ids.rewrite(f);
            self.conn.handle_input(now, &f);
            self.drain();
            assert!(self.conn.poll_close().is_none(), "closed after server frame #{k}: {:?}", self.conn.poll_close());
        }
        let end = self.t0 + Duration::from_secs(60);
        while next(&mut self.conn, end, &self.events) {
            self.drain();
        }
        self.collect(end);
        assert_eq!(self.mine.len(), self.cap.c2s.len(), "the client sent as many frames as the recorded one");
        self
    }

    fn drain(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
    }
}

/// A script of steps run one per call.
fn steps(v: Vec<Step>) -> impl FnMut(&mut ClientConn, Instant, &[ClientEvent]) -> bool {
    let mut v: std::collections::VecDeque<Step> = v.into();
    move |c, now, ev| match v.pop_front() {
        Some(s) => {
            s(c, now, ev);
            true
        }
        None => false,
    }
}

fn set_named(events: &[ClientEvent], name: &str) -> SetId {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            ClientEvent::Lookup { result: Ok(r), .. } if r.name == name => Some(r.set),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no lookup result for {name}"))
}

fn dir_entries(events: &[ClientEvent]) -> Vec<DirEntry> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Dir { result: Ok(p), .. } => Some(p.entries.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn updates(events: &[ClientEvent]) -> Vec<(SetId, Arc<SetSnapshot>)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Update { set, result: Ok(s), .. } => Some((*set, s.clone())),
            _ => None,
        })
        .collect()
}

fn lookup_step(name: &'static str, flags: u32) -> Step {
    Box::new(move |c, now, _| {
        c.lookup(now, name, flags, None).unwrap();
    })
}
fn update_step(name: &'static str) -> Step {
    Box::new(move |c, now, ev| {
        c.update(now, set_named(ev, name), None).unwrap();
    })
}

/// `ldms_ls [-l] [-v]` as a state machine: DIR, then per set (in ldms_ls's order,
/// the reverse of the directory) a lookup, then its update.
fn ldms_ls(long: bool) -> impl FnMut(&mut ClientConn, Instant, &[ClientEvent]) -> bool {
    let mut dir_sent = false;
    let mut i = 0usize;
    let mut looked = false;
    move |c, now, ev| {
        if !dir_sent {
            dir_sent = true;
            c.dir(now, 0, None).unwrap();
            return true;
        }
        if !long {
            return false;
        }
        let mut names: Vec<String> = dir_entries(ev).into_iter().map(|e| e.name).collect();
        names.reverse();
        let Some(name) = names.get(i) else { return false };
        if !looked {
            looked = true;
            c.lookup(now, name, 0, None).unwrap();
        } else {
            c.update(now, set_named(ev, name), None).unwrap();
            looked = false;
            i += 1;
        }
        true
    }
}

/// What ldms_ls prints for the replayed events.
fn ldms_ls_output(r: &Replay, verbose: bool, long: bool) -> String {
    let mut out = String::new();
    let mut entries = dir_entries(&r.events);
    entries.reverse();
    if verbose {
        out.push_str(&format::verbose_table(&entries, long));
    } else if !long {
        for e in &entries {
            out.push_str(&e.name);
            out.push('\n');
        }
    }
    for (set, snap) in updates(&r.events) {
        out.push_str(&format::set_block(r.conn.set_name(set).unwrap(), &snap, 0));
    }
    out
}

/// The part of client-output.txt printed for `$ ... # connection N`, or all of it.
fn expected_output(name: &str, conn: Option<u64>) -> String {
    let text = std::fs::read_to_string(scenario(name).join("client-output.txt")).unwrap();
    let Some(conn) = conn else { return text };
    let mut out = String::new();
    let mut on = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with("$ ") {
            on = line.contains(&format!("# connection {conn}")) && line.contains("ldms_ls");
            continue;
        }
        if on {
            out.push_str(line);
        }
    }
    assert!(!out.is_empty(), "no output for connection {conn} of {name}");
    out
}

fn assert_same_text(got: &str, want: &str) {
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "line {} differs", i + 1);
        }
        assert_eq!(got.lines().count(), want.lines().count(), "line count");
        assert_eq!(got, want);
    }
}

#[test]
fn ls_l_meminfo() {
    let r = Replay::new("ls-l-meminfo", 0).run(ldms_ls(true));
    assert_same_text(&ldms_ls_output(&r, false, true), &expected_output("ls-l-meminfo", None));
}

#[test]
fn ls_l_two_samplers_verbose() {
    let r = Replay::new("ls-l-two-samplers", 0).run(ldms_ls(false));
    assert_same_text(&ldms_ls_output(&r, true, false), &expected_output("ls-l-two-samplers", Some(0)));
    let r = Replay::new("ls-l-two-samplers", 1).run(ldms_ls(true));
    assert_same_text(&ldms_ls_output(&r, true, true), &expected_output("ls-l-two-samplers", Some(1)));
}

#[test]
fn ls_l_records() {
    let r = Replay::new("ls-l-records", 0).run(ldms_ls(true));
    assert_same_text(&ldms_ls_output(&r, false, true), &expected_output("ls-l-records", None));
}

#[test]
fn all_types_ldms_ls() {
    let r = Replay::new("all-types", 0).run(ldms_ls(true));
    assert_same_text(&ldms_ls_output(&r, true, true), &expected_output("all-types", Some(0)));
}

#[test]
fn list_record_ldms_ls() {
    let r = Replay::new("list-record", 0).run(ldms_ls(true));
    assert_same_text(&ldms_ls_output(&r, false, true), &expected_output("list-record", Some(0)));
}

/// `update#N name: data_gn=G ... consistent=C` lines of a Python client's output.
fn python_updates(name: &str) -> Vec<(String, u64, bool)> {
    let text = std::fs::read_to_string(scenario(name).join("client-output.txt")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("update#"))
        .map(|l| {
            let rest = l.split_once(' ').unwrap().1;
            let (set, rest) = rest.split_once(": ").unwrap();
            let field = |k: &str| rest.split(' ').find_map(|w| w.strip_prefix(k)).unwrap().to_string();
            (set.to_string(), field("data_gn=").parse().unwrap(), field("consistent=") == "True")
        })
        .collect()
}

fn check_python_updates(r: &Replay, name: &str) {
    let got: Vec<(String, u64, bool)> = updates(&r.events)
        .into_iter()
        .map(|(s, snap)| (r.conn.set_name(s).unwrap().to_string(), snap.data_gn(), snap.is_consistent()))
        .collect();
    assert_eq!(got, python_updates(name));
}

#[test]
fn python_api() {
    let names = ["localhost1/meminfo", "localhost1/vmstat"];
    let mut script: Vec<Step> = vec![
        Box::new(|c, now, _| {
            c.dir(now, 0, None).unwrap();
        }),
        lookup_step("localhost1/.*", LOOKUP_RE),
    ];
    for _ in 0..2 {
        for n in names {
            script.push(update_step(n));
        }
    }
    script.push(Box::new(|c, _, ev| c.register_push(set_named(ev, "localhost1/meminfo"), 1).unwrap()));
    script.push(Box::new(|c, _, ev| c.cancel_push(set_named(ev, "localhost1/meminfo")).unwrap()));
    let r = Replay::new("python-api", 0).run(steps(script));
    // dir: both sets; the regex lookup: two results, the first with more.
    let d: Vec<_> = dir_entries(&r.events).into_iter().map(|e| (e.name, e.schema, e.meta_size, e.data_size)).collect();
    assert_eq!(
        d,
        vec![
            ("localhost1/vmstat".into(), "vmstat".into(), 10688, 1648),
            ("localhost1/meminfo".into(), "meminfo".into(), 2976, 544)
        ]
    );
    let lk: Vec<(String, bool)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Lookup { result: Ok(l), .. } => Some((l.name.clone(), l.more)),
            _ => None,
        })
        .collect();
    assert_eq!(lk, vec![("localhost1/meminfo".into(), true), ("localhost1/vmstat".into(), false)]);
    check_python_updates(&r, "python-api");
    let m = &updates(&r.events)[2].1;
    assert_eq!(m.value_by_name("MemFree"), Some(&pvloom_ldms::set::MetricValue::U64(23914156)));
    assert!(!updates(&r.events)[0].1.changed() || updates(&r.events)[0].1.prev_data_gn.is_none());
    let pushes: Vec<(u32, Option<u64>)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Push { flags, result, .. } => Some((*flags, result.as_ref().ok().map(|s| s.data_gn()))),
            _ => None,
        })
        .collect();
    assert_eq!(
        pushes,
        vec![(0x1000_0000, Some(278)), (0x1000_0000, Some(333)), (0x1000_0000, Some(388)), (0x3000_0000, Some(388))]
    );
}

#[test]
fn all_types_python() {
    let names = ["localhost1/all_types", "localhost1/array_example"];
    let mut script: Vec<Step> = names.iter().map(|n| lookup_step(n, 0)).collect();
    for _ in 0..2 {
        for n in names {
            script.push(update_step(n));
        }
    }
    let r = Replay::new("all-types", 1).run(steps(script));
    check_python_updates(&r, "all-types");
}

#[test]
fn list_record_python() {
    let names = ["localhost1/list_sampler", "localhost1/record_sampler", "localhost1/test_lists"];
    let mut script: Vec<Step> = vec![lookup_step("localhost1/.*", LOOKUP_RE)];
    for _ in 0..2 {
        for n in names {
            script.push(update_step(n));
        }
    }
    let r = Replay::new("list-record", 1).run(steps(script));
    check_python_updates(&r, "list-record");
}

#[test]
fn dir_many() {
    let r = Replay::new("dir-many", 0).run(ldms_ls(false));
    let parts: Vec<(usize, bool)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Dir { result: Ok(p), .. } => Some((p.entries.len(), p.more)),
            _ => None,
        })
        .collect();
    assert_eq!(parts, vec![(2588, true), (52, false)]);
    let mut names: Vec<String> = dir_entries(&r.events).into_iter().map(|e| e.name).collect();
    names.sort();
    let want = expected_output("dir-many", None);
    let want: Vec<&str> = want.lines().filter(|l| l.starts_with("localhost1/")).collect();
    assert_eq!(&names[..3], &want[..3]);
    assert_eq!(&names[names.len() - 3..], &want[3..6]);
    assert_eq!(names.len(), 2640);

    let script: Vec<Step> = vec![
        lookup_step("dir_many_b", LOOKUP_BY_SCHEMA),
        lookup_step("^localhost1/dir_many/set_00[0-4][0-9]$", LOOKUP_RE),
        lookup_step("localhost1/no_such_set", 0),
    ];
    let r = Replay::new("dir-many", 1).run(steps(script));
    let mut by_op: Vec<(u64, usize)> = Vec::new();
    let mut errors = Vec::new();
    for e in &r.events {
        match e {
            ClientEvent::Lookup { op, result: Ok(_) } => match by_op.last_mut() {
                Some((o, n)) if *o == op.0 => *n += 1,
                _ => by_op.push((op.0, 1)),
            },
            ClientEvent::Lookup { result: Err(e), .. } => errors.push(e.clone()),
            _ => {}
        }
    }
    assert_eq!(by_op.iter().map(|x| x.1).collect::<Vec<_>>(), vec![40, 49]);
    assert_eq!(errors, vec![OpError::Remote(2)]);
}

#[test]
fn aggregator() {
    let (mem, vm) = ("localhost1/meminfo", "localhost1/vmstat");
    let script: Vec<Step> = vec![
        Box::new(|c, now, _| {
            c.dir(now, DIR_F_NOTIFY, None).unwrap();
        }),
        lookup_step(mem, 0),
        update_step(mem),
        update_step(mem),
        update_step(mem),
        lookup_step(vm, 0),
        update_step(mem),
        update_step(mem),
        update_step(vm),
        update_step(mem),
        update_step(vm),
        update_step(mem),
        update_step(mem),
    ];
    let r = Replay::new("aggregator", 0).run(steps(script));
    let dir_updates: Vec<(u32, String)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::DirUpdate { kind, entries, .. } => Some((*kind, entries[0].name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(dir_updates, vec![(DIR_ADD, vm.to_string()), (DIR_UPD, vm.to_string())]);
    assert!(
        r.events.iter().any(|e| matches!(e, ClientEvent::SetDelete { set: Some(_), name } if name == vm)),
        "SET_DELETE reported"
    );
    // The deleted set is gone; meminfo updates went on.
    assert_eq!(updates(&r.events).len(), 10);
}
