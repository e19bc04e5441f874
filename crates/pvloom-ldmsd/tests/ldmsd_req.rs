//! The LDMSD request protocol against recordings of the real `ldmsctl`,
//! `ldmsd_controller` and `ldmsd` (tests/fixtures/ldmsd-req, see its README):
//!
//! - every recorded request and response decodes with pvloom's codec and re-encodes to
//!   the same bytes;
//! - the recorded client side, replayed against `pvloom ldmsd` on a free 127.0.0.1 port,
//!   gets responses of the same shape: the same message numbers, `rsp_err`, attribute
//!   ids and (for JSON) keys. Values that depend on state (counters, timestamps, the
//!   configuration counter, the client's port) are not compared; texts are compared where
//!   pvloom words them as ldmsd does;
//! - the status sessions (updtr/strgp/plugn/prdcr_set/daemon status, msg_client_stats
//!   pairs), replayed against pvloom daemons configured as the recorded ones, get the
//!   same JSON once run-to-run values (ports, times, addresses, library paths) are set
//!   aside.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::Runtime;
use pvloom_ldms::client::{Xprt, XprtConfig, XprtEvent, XprtEventKind};
use pvloom_ldms::ldmsd_req::{
    Attr, Message, Reassembler, ReassemblyLimits, Record, TYPE_REQUEST, TYPE_RESPONSE, attr, attr_id, request_id,
};
use pvloom_ldms::request::{self, RequestBody};
use pvloom_ldms::zap::{FrameDecoder, Msg};
use pvloom_ldmsd::config::parse_str;
use pvloom_ldmsd::daemon::{Daemon, DaemonOptions, ProducerState};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldmsd-req")
}

/// The SEND_MSG payloads of one recorded direction, in order.
fn send_msgs(session: &str, way: &str) -> Vec<Vec<u8>> {
    let stream = std::fs::read(fixtures().join(session).join(format!("{way}.bin"))).unwrap();
    let mut dec = FrameDecoder::new();
    dec.push(&stream).unwrap();
    let mut out = Vec::new();
    while let Some(frame) = dec.next_frame().unwrap() {
        if let Msg::SendRecv(d) = &frame.msg
            && let Ok(request::Message::Request(q)) = request::decode(d)
            && let RequestBody::Send { msg } = q.body
        {
            out.push(msg.to_vec());
        }
    }
    out
}

const SESSIONS: &[&str] = &[
    "ldmsctl-prdcr",
    "ldmsctl-sampler",
    "controller-msg-stats",
    "controller-msg-client-stats",
    "controller-prdcr-status",
    "controller-updtr",
    "python-errors",
    "python-status-agg",
    "python-status-sampler",
    "controller-updtr-status",
    "controller-msg-client-pairs",
    "controller-prdcr-stats",
    "ldmsctl-status",
];

/// Whole messages from records, through the reassembler.
fn messages(records: &[Vec<u8>]) -> Vec<Message> {
    let mut r = Reassembler::new(ReassemblyLimits::default());
    records.iter().filter_map(|b| r.push(&Record::decode(b).unwrap()).unwrap()).collect()
}

#[test]
fn every_recorded_record_decodes_and_reencodes_byte_exact() {
    let mut n = 0;
    for s in SESSIONS {
        for (way, kind) in [("c2s", TYPE_REQUEST), ("s2c", TYPE_RESPONSE)] {
            let records = send_msgs(s, way);
            assert!(!records.is_empty(), "{s} {way}");
            for b in &records {
                let rec = Record::decode(b).unwrap_or_else(|e| panic!("{s} {way}: {e}"));
                assert_eq!(rec.header.kind, kind, "{s} {way}");
                assert_eq!(rec.encode(), *b, "{s} {way}: the record re-encodes");
                // Every recorded message fits one record: the whole message re-encodes too.
                let m = Message::decode_single(b).unwrap_or_else(|e| panic!("{s} {way}: {e}"));
                assert_eq!(m.encode_records(b.len()), vec![b.clone()], "{s} {way}: the message re-encodes");
                n += 1;
            }
            assert_eq!(messages(&records).len(), records.len());
        }
    }
    assert!(n >= 40, "{n} records");
}

#[test]
fn recorded_requests_carry_what_the_tools_send() {
    let reqs = messages(&send_msgs("ldmsctl-sampler", "c2s"));
    let config = &reqs[1];
    assert_eq!(config.code, request_id("config").unwrap());
    assert_eq!(config.attr(attr::NAME).unwrap().str_value(), "meminfo");
    assert_eq!(config.attr(attr::STRING).unwrap().str_value(), "producer=agg instance=agg/meminfo component_id=2");
    let first = messages(&send_msgs("controller-msg-stats", "c2s"));
    assert_eq!(first[0].code, 0x3, "ldmsd_controller asks for the configuration counter first");
    let bad = messages(&send_msgs("python-errors", "c2s"));
    assert!(!bad[3].attrs[0].nul_terminated(), "the recorded bad request's value has no NUL");
}

/// A connection to `addr` collecting the SEND_MSGs it receives.
struct Ctl {
    x: Xprt,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Ctl {
    fn connect(rt: &Runtime, addr: SocketAddr) -> Ctl {
        let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let g = got.clone();
        let (x, wait) = Xprt::connect_with(
            &rt.handle(),
            addr,
            XprtConfig::default(),
            Some(Arc::new(move |_: &Xprt, ev: &XprtEvent| {
                if ev.kind == XprtEventKind::Recv
                    && let Some(d) = &ev.data
                {
                    g.lock().push(d.to_vec());
                }
            })),
        );
        wait.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
        Ctl { x, got }
    }

    /// Sends one request record and waits for one response record.
    fn ask(&self, record: &[u8]) -> Vec<u8> {
        let before = self.got.lock().len();
        self.x.send(record);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.got.lock().get(before) {
                return r.clone();
            }
            assert!(Instant::now() < end, "no response to {record:02x?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The keys of a JSON value, recursively (array elements merged), as sorted paths.
fn shape(v: &serde_json::Value, at: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                // `sources` is keyed by address, not by field name.
                let key = if at.ends_with("sources") { "*" } else { k.as_str() };
                let p = format!("{at}.{key}");
                out.insert(p.clone());
                shape(x, &p, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| shape(x, &format!("{at}[]"), out)),
        _ => {}
    }
}

fn json_shape(m: &Message) -> std::collections::BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(&m.attr(attr::JSON).unwrap().str_value()).unwrap();
    let mut out = std::collections::BTreeSet::new();
    shape(&v, "", &mut out);
    out
}

/// Called after request `.0` of a replay (to wait for a state the recording had).
type Pause<'a> = Option<(usize, &'a dyn Fn())>;

/// Replays a session's requests, each through `rewrite` (identity when it returns
/// `None`); returns (recorded response, pvloom's response) pairs.
fn replay_with(
    rt: &Runtime,
    addr: SocketAddr,
    session: &str,
    rewrite: &dyn Fn(&Message) -> Option<Message>,
    pause_after: Pause<'_>,
) -> Vec<(Message, Message)> {
    let ctl = Ctl::connect(rt, addr);
    let recorded = messages(&send_msgs(session, "s2c"));
    let requests = send_msgs(session, "c2s");
    assert_eq!(requests.len(), recorded.len(), "{session}: one response per request");
    let mut out = Vec::new();
    for (i, (req, want)) in requests.iter().zip(recorded).enumerate() {
        let req = match rewrite(&Message::decode_single(req).unwrap()) {
            Some(m) => m.encode_records(4096).remove(0),
            None => req.clone(),
        };
        let got = Message::decode_single(&ctl.ask(&req)).unwrap();
        assert_eq!((got.kind, got.msg_no), (TYPE_RESPONSE, want.msg_no), "{session} #{i}");
        out.push((want, got));
        if let Some((at, f)) = &pause_after
            && *at == i
        {
            f();
        }
    }
    out
}

fn replay(rt: &Runtime, addr: SocketAddr, session: &str) -> Vec<(Message, Message)> {
    replay_with(rt, addr, session, &|_| None, None)
}

/// Same `rsp_err` and attribute ids; the same text where pvloom words it as ldmsd.
fn same_shape(session: &str, pairs: &[(Message, Message)], same_text: &[usize]) {
    for (i, (want, got)) in pairs.iter().enumerate() {
        let ids = |m: &Message| m.attrs.iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(got.code, want.code, "{session} #{i}: rsp_err ({got:?})");
        assert_eq!(ids(got), ids(want), "{session} #{i}: attributes ({got:?})");
        if same_text.contains(&i) {
            assert_eq!(got.attrs, want.attrs, "{session} #{i}: text");
        }
    }
}

fn daemon(conf: &str) -> (Daemon, SocketAddr) {
    let d = Daemon::new(DaemonOptions { io_threads: 1, ..DaemonOptions::default() }).unwrap();
    d.apply_all(&parse_str(conf, "test.conf").unwrap()).unwrap();
    let addr = d.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    (d, addr)
}

#[test]
fn replayed_ldmsctl_prdcr_session_answers_like_ldmsd() {
    let rt = Runtime::new().unwrap();
    // A pvloom sampler stands in for the recorded one; prdcr_add is sent with its port.
    let proc_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ls-l-meminfo");
    let sampler = Daemon::new(DaemonOptions { io_threads: 1, proc_root, ..DaemonOptions::default() }).unwrap();
    let conf = "load name=meminfo\nconfig name=meminfo producer=smp1 instance=smp1/meminfo component_id=1\n\
                start name=meminfo interval=1s\n";
    sampler.apply_all(&parse_str(conf, "sampler.conf").unwrap()).unwrap();
    let sampler_port = sampler.listen("127.0.0.1:0".parse().unwrap()).unwrap().port();
    // pvloom looks up only the sets an updater pulls (ldmsd looks up every set).
    let (agg, addr) = daemon("msg_enable\nupdtr_add name=u interval=1s\nupdtr_prdcr_add name=u regex=.*\n");
    let with_port = |m: &Message| {
        let port = attr_id("port").unwrap();
        m.attr(port)?;
        let mut m = m.clone();
        m.attrs.iter_mut().filter(|a| a.id == port).for_each(|a| *a = Attr::string(port, &sampler_port.to_string()));
        Some(m)
    };
    let connected = || {
        wait_until("the producer's set", Duration::from_secs(10), || {
            agg.producers().iter().any(|p| p.state == ProducerState::Connected && !p.sets.is_empty())
        });
    };
    let pairs = replay_with(&rt, addr, "ldmsctl-prdcr", &with_port, Some((1, &connected)));
    // #6 prdcr_del: ldmsd answered EBUSY (its stop had not finished); pvloom stops at once.
    let (head, del) = pairs.split_at(6);
    same_shape("ldmsctl-prdcr", head, &[0, 1, 3, 4, 5]);
    assert_eq!((del[0].1.code, del[0].1.attrs.len()), (0, 0), "pvloom deletes the stopped producer");
    let status = &head[2];
    assert_eq!(json_shape(&status.1), json_shape(&status.0), "prdcr_status keys");
}

#[test]
fn replayed_ldmsctl_sampler_session_answers_like_ldmsd() {
    let rt = Runtime::new().unwrap();
    let (_d, addr) = daemon("");
    let pairs = replay(&rt, addr, "ldmsctl-sampler");
    // #5 load of a missing plugin: ENOENT both, ldmsd's text names its dlopen error.
    same_shape("ldmsctl-sampler", &pairs, &[0, 1, 2, 3, 4, 6]);
}

#[test]
fn replayed_controller_sessions_answer_like_ldmsd() {
    let rt = Runtime::new().unwrap();
    let (d, addr) = daemon("msg_enable\n");
    // As in the recording: a remote subscriber of foo (exact) and bar.* (regex), and one
    // message published on foo.
    let sub_bus = pvloom_ldms::bus::MsgBus::new(pvloom_ldms::bus::BusConfig::default());
    let mut config = XprtConfig::default();
    config.conn.bus = Some(sub_bus);
    let sub = Xprt::connect(&rt.handle(), addr, config).unwrap();
    assert_eq!(sub.msg_subscribe("foo", false, -1).unwrap().status, 0);
    assert_eq!(sub.msg_subscribe("bar.*", true, -1).unwrap().status, 0);
    let publisher = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).unwrap();
    publisher.msg_publish("foo", pvloom_ldms::msg::MsgType::Json, r#"{"a":1}"#).unwrap();
    wait_until("the message counted", Duration::from_secs(10), || {
        d.bus().stats().clients.iter().any(|c| c.pattern == "foo" && c.tx.count == 1)
    });

    for s in ["controller-msg-stats", "controller-msg-client-stats"] {
        let pairs = replay(&rt, addr, s);
        same_shape(s, &pairs, &[]);
        let (want, got) = &pairs[1];
        let (want, got) = (json_shape(want), json_shape(got));
        assert!(want.is_subset(&got), "{s}: ldmsd's keys {want:?} all in pvloom's {got:?}");
    }
    // prdcr_status of a stopped producer, as recorded.
    d.apply_all(
        &parse_str("prdcr_add name=smp1 host=127.0.0.1 port=1 xprt=sock type=active reconnect=1s\n", "t").unwrap(),
    )
    .unwrap();
    let pairs = replay(&rt, addr, "controller-prdcr-status");
    same_shape("controller-prdcr-status", &pairs, &[]);
    assert_eq!(json_shape(&pairs[1].1), json_shape(&pairs[1].0));
    let pairs = replay(&rt, addr, "controller-updtr");
    same_shape("controller-updtr", &pairs, &[1]);
    // python-errors: not implemented, greeting, the request without its NUL.
    let pairs = replay(&rt, addr, "python-errors");
    same_shape("python-errors", &pairs, &[1, 2, 3]);
}

#[test]
fn msg_stats_while_the_service_is_off_is_enotsup() {
    let rt = Runtime::new().unwrap();
    let (_d, addr) = daemon("");
    let ctl = Ctl::connect(&rt, addr);
    let req = Message::request(5, request_id("msg_stats").unwrap(), vec![]);
    let got = Message::decode_single(&ctl.ask(&req.encode_records(4096)[0])).unwrap();
    assert_eq!(got, Message::response_text(5, 95, "The message service is disabled."));
}

#[test]
fn a_request_split_over_records_is_gathered() {
    let rt = Runtime::new().unwrap();
    let (d, addr) = daemon("");
    let ctl = Ctl::connect(&rt, addr);
    let attrs = vec![Attr::string(attr::NAME, "u-long-name"), Attr::string(attr::INTERVAL, "1s")];
    let req = Message::request(9, request_id("updtr_add").unwrap(), attrs);
    let records = req.encode_records(24 + 7);
    assert!(records.len() > 4);
    let before = ctl.got.lock().len();
    for r in &records[..records.len() - 1] {
        ctl.x.send(r);
    }
    let last = ctl.ask(&records[records.len() - 1]);
    assert_eq!(ctl.got.lock().len(), before + 1, "one response, to the last record");
    assert_eq!(Message::decode_single(&last).unwrap(), Message::response_text(9, 0, ""));
    // The same again: EEXIST, with ldmsd's text.
    let again = Message::request(10, request_id("updtr_add").unwrap(), req.attrs.clone());
    let got = Message::decode_single(&ctl.ask(&again.encode_records(4096)[0])).unwrap();
    assert_eq!(got, Message::response_text(10, 17, "The updtr u-long-name already exists."));
    drop(d);
}

/// Sends `verb` with `attrs` and decodes the one response.
fn ask(ctl: &Ctl, msg_no: u32, verb: &str, attrs: Vec<Attr>) -> Message {
    let req = Message::request(msg_no, request_id(verb).unwrap(), attrs);
    let got = Message::decode_single(&ctl.ask(&req.encode_records(4096)[0])).unwrap();
    assert_eq!((got.kind, got.msg_no), (TYPE_RESPONSE, msg_no), "{verb}");
    got
}

/// The JSON of a response, checked to be sent as ldmsd's status handlers send it: one
/// JSON attribute whose length stops at the closing bracket (no NUL).
fn status_json(m: &Message) -> serde_json::Value {
    assert_eq!(m.code, 0, "{m:?}");
    assert_eq!(m.attrs.len(), 1, "{m:?}");
    let a = m.attr(attr::JSON).unwrap();
    assert!(matches!(a.value.last(), Some(b']' | b'}')), "no NUL after the JSON: {a:?}");
    serde_json::from_slice(&a.value).unwrap()
}

fn s(v: &str) -> serde_json::Value {
    serde_json::Value::String(v.into())
}

#[test]
fn status_requests_report_updaters_policies_plugins_and_sets() {
    let rt = Runtime::new().unwrap();
    let proc_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ls-l-meminfo");
    let sampler = Daemon::new(DaemonOptions { io_threads: 1, proc_root, ..DaemonOptions::default() }).unwrap();
    let conf = "load name=meminfo\nconfig name=meminfo producer=smp1 instance=smp1/meminfo component_id=1\n\
                start name=meminfo interval=1s\nload name=la plugin=loadavg\n";
    sampler.apply_all(&parse_str(conf, "sampler.conf").unwrap()).unwrap();
    let sampler_port = sampler.listen("127.0.0.1:0".parse().unwrap()).unwrap().port();
    let dir = std::env::temp_dir().join(format!("pvloom-ldmsd-status-{}", std::process::id()));
    let conf = format!(
        "prdcr_add name=smp1 host=127.0.0.1 port={sampler_port} xprt=sock type=active reconnect=1s\n\
         prdcr_add name=other host=127.0.0.1 port=1 xprt=sock type=active reconnect=20s\n\
         prdcr_start name=smp1\n\
         updtr_add name=u1 interval=1s offset=100ms\nupdtr_prdcr_add name=u1 regex=smp.*\nupdtr_start name=u1\n\
         updtr_add name=u2 interval=2s push=onchange\nupdtr_prdcr_add name=u2 regex=.*\n\
         load name=csv plugin=store_csv\nconfig name=csv path={} buffer=0\n\
         strgp_add name=s1 plugin=csv container=node schema=meminfo flush=1.5s\n\
         strgp_prdcr_add name=s1 regex=smp1\nstrgp_prdcr_add name=s1 regex=other\n\
         strgp_metric_add name=s1 metric=MemFree\nstrgp_metric_add name=s1 metric=MemTotal\nstrgp_start name=s1\n\
         strgp_add name=s2 plugin=csv container=all regex=.*\n",
        dir.display()
    );
    let (agg, addr) = daemon(&conf);
    wait_until("the producer's set", Duration::from_secs(10), || {
        agg.producers().iter().any(|p| p.name == "smp1" && p.state == ProducerState::Connected && !p.sets.is_empty())
    });
    let ctl = Ctl::connect(&rt, addr);

    // updtr_status: all, then one by name; producers as their regexes match them now.
    let all = status_json(&ask(&ctl, 1, "updtr_status", vec![]));
    let u1 = serde_json::json!({
        "name": "u1", "interval": "1000000", "offset": "100000", "sync": "true", "mode": "Pull",
        "auto": "false", "state": "RUNNING",
        "producers": [{"name": "smp1", "host": "127.0.0.1", "port": sampler_port, "transport": "sock",
                       "state": "CONNECTED"}],
    });
    assert_eq!(all[0], u1);
    let u2 = &all[1];
    assert_eq!((&u2["name"], &u2["mode"], &u2["state"]), (&s("u2"), &s("Push on Change"), &s("STOPPED")));
    assert_eq!((&u2["offset"], &u2["sync"]), (&s("0"), &s("true")), "updtr_add takes a missing offset as 0");
    let names: Vec<_> = u2["producers"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, [s("other"), s("smp1")], "sorted by name, as ldmsd's tree keeps them");
    assert_eq!(u2["producers"][0]["state"], s("STOPPED"));
    // ldmsd_controller sends `summary` as a STRING attribute; the answer is the same.
    let one = ask(&ctl, 2, "updtr_status", vec![Attr::string(attr::NAME, "u1"), Attr::string(attr::STRING, "true")]);
    assert_eq!(status_json(&one), serde_json::json!([u1]));
    let missing = ask(&ctl, 3, "updtr_status", vec![Attr::string(attr::NAME, "nope")]);
    assert_eq!(missing, Message::response_text(3, 2, "updtr 'nope' doesn't exist."));

    // strgp_status: the store's plugin name, flush as seconds.micros, producers newest
    // first, metrics in order.
    let all = status_json(&ask(&ctl, 4, "strgp_status", vec![]));
    let s1 = serde_json::json!({
        "name": "s1", "container": "node", "schema": "meminfo", "regex": "-", "plugin": "store_csv",
        "flush": "1.500000", "state": "RUNNING", "decomp": "-",
        "producers": ["other", "smp1"], "metrics": ["MemFree", "MemTotal"],
    });
    assert_eq!(all[0], s1);
    let s2 = &all[1];
    assert_eq!((&s2["schema"], &s2["regex"], &s2["state"]), (&s("-"), &s(".*"), &s("STOPPED")));
    assert_eq!((&s2["flush"], &s2["producers"]), (&s("0.000000"), &serde_json::json!([])));
    let one = ask(&ctl, 5, "strgp_status", vec![Attr::string(attr::NAME, "s1")]);
    assert_eq!(status_json(&one), serde_json::json!([s1]));
    let missing = ask(&ctl, 6, "strgp_status", vec![Attr::string(attr::NAME, "nope")]);
    assert_eq!(missing, Message::response_text(6, 2, "strgp 'nope' doesn't exist."));

    // prdcr_set_status: the pulled set, filtered by producer, instance and schema.
    let sets = status_json(&ask(&ctl, 7, "prdcr_set_status", vec![]));
    let set = &sets[0];
    assert_eq!(sets.as_array().unwrap().len(), 1, "{sets}");
    assert_eq!((&set["inst_name"], &set["schema_name"]), (&s("smp1/meminfo"), &s("meminfo")));
    assert_eq!((&set["state"], &set["origin"], &set["producer"]), (&s("READY"), &s("smp1"), &s("smp1")));
    for k in ["timestamp.sec", "timestamp.usec", "duration.sec", "duration.usec"] {
        assert!(set[k].as_str().unwrap().parse::<u32>().is_ok(), "{k}: {set}");
    }
    let producer = attr_id("producer").unwrap();
    let by = |id, v: &str| status_json(&ask(&ctl, 8, "prdcr_set_status", vec![Attr::string(id, v)]));
    assert_eq!(by(producer, "smp1").as_array().unwrap().len(), 1);
    assert_eq!(by(producer, "other"), serde_json::json!([]));
    assert_eq!(by(producer, "nope"), serde_json::json!([]), "an unknown producer: an empty list");
    assert_eq!(by(attr_id("instance").unwrap(), "x/y"), serde_json::json!([]));
    assert_eq!(by(attr_id("schema").unwrap(), "meminfo").as_array().unwrap().len(), 1);
    // `name` is what ldmsd_controller sends for producer=; ldmsd reads only `producer`.
    assert_eq!(by(attr::NAME, "other").as_array().unwrap().len(), 1);

    // plugn_status: samplers (by name), then stores.
    let exe = std::env::current_exe().unwrap().display().to_string();
    let smp = Ctl::connect(&rt, sampler.listen_addrs()[0]);
    let plugins = status_json(&ask(&smp, 9, "plugn_status", vec![]));
    assert_eq!(
        plugins,
        serde_json::json!([
            {"name": "la", "plugin": "loadavg", "type": "sampler[S]", "libpath": exe},
            {"name": "meminfo", "plugin": "meminfo", "type": "sampler[M]", "libpath": exe},
        ])
    );
    let plugins = status_json(&ask(&ctl, 10, "plugn_status", vec![]));
    assert_eq!(
        plugins,
        serde_json::json!([{"name": "csv", "plugin": "store_csv", "type": "store[M]", "libpath": exe}])
    );

    // plugn_sets: each sampler's sets; an unknown name gets an empty list.
    let sets = status_json(&ask(&smp, 11, "plugn_sets", vec![]));
    assert_eq!(
        sets,
        serde_json::json!([{"plugin": "la", "sets": []}, {"plugin": "meminfo", "sets": ["smp1/meminfo"]}])
    );
    let sets = status_json(&ask(&smp, 12, "plugn_sets", vec![Attr::string(attr::NAME, "meminfo")]));
    assert_eq!(sets, serde_json::json!([{"plugin": "meminfo", "sets": ["smp1/meminfo"]}]));
    let sets = status_json(&ask(&smp, 13, "plugn_sets", vec![Attr::string(attr::NAME, "nope")]));
    assert_eq!(sets, serde_json::json!([]));

    // daemon_status, and with thread_stats (a STRING attribute).
    assert_eq!(status_json(&ask(&ctl, 14, "daemon_status", vec![])), serde_json::json!({"state": "ready"}));
    let with = status_json(&ask(&ctl, 15, "daemon_status", vec![Attr::string(attr::STRING, "true")]));
    assert_eq!(with["state"], s("ready"));
    // thread_stats, alone or in daemon_status: the runtime's one I/O thread.
    let alone = ask(&ctl, 16, "thread_stats", vec![Attr::string(attr::RESET, "False")]);
    let alone: serde_json::Value = serde_json::from_str(&alone.attr(attr::JSON).unwrap().str_value()).unwrap();
    for t in [&with["thread_stats"], &alone] {
        assert_eq!(t["count"], 1, "{t}");
        let io = &t["io_threads"][0];
        assert_eq!((&io["name"], &io["refresh_us"]), (&s("ldmsd-io-0"), &serde_json::json!(1_000_000)));
        let u = io["utilization"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&u), "{io}");
        let ops = &io["ldms_xprt"];
        let (idle, other) = (ops["Idle"].as_i64().unwrap(), ops["Other"].as_i64().unwrap());
        assert_eq!(idle + other, io["total_us"].as_i64().unwrap(), "{io}");
        assert_eq!(ops.as_object().unwrap().len(), 20, "Idle, Zap and ldmsd's 18 operations");
        for k in ["worker_threads", "xthreads", "storage threads"] {
            assert_eq!(t[k], serde_json::json!([]), "{k}");
        }
    }
    // prdcr_stats: counts by state, keys in ldmsd's order (ldmsd_controller prints them
    // as they come), with a NUL as ldmsd's *_stats handlers send it.
    let stats = ask(&ctl, 17, "prdcr_stats", vec![]);
    let text = stats.attr(attr::JSON).unwrap();
    assert_eq!(text.value.last(), Some(&0));
    assert_eq!(
        text.str_value(),
        r#"{"prdcr_count":2,"stopped_count":1,"disconnected_count":0,"connecting_count":0,"connected_count":1,"stopping_count":0,"standby_count":0,"set_count":1,"compute_time":0}"#
    );

    // After changes (the real ldmsd answered the same sequence alike): a new interval
    // without an offset makes the updater asynchronous; stopped policy and producer.
    let ok = |n, verb, attrs| assert_eq!(ask(&ctl, n, verb, attrs), Message::response_text(n, 0, ""), "{verb}");
    ok(20, "updtr_stop", vec![Attr::string(attr::NAME, "u1")]);
    ok(21, "updtr_start", vec![Attr::string(attr::NAME, "u1"), Attr::string(attr::INTERVAL, "2s")]);
    let u1 = status_json(&ask(&ctl, 22, "updtr_status", vec![Attr::string(attr::NAME, "u1")]));
    assert_eq!((&u1[0]["interval"], &u1[0]["offset"], &u1[0]["sync"]), (&s("2000000"), &s("0"), &s("false")));
    ok(23, "strgp_stop", vec![Attr::string(attr::NAME, "s1")]);
    let s1 = status_json(&ask(&ctl, 24, "strgp_status", vec![Attr::string(attr::NAME, "s1")]));
    assert_eq!(s1[0]["state"], s("STOPPED"));
    ok(25, "prdcr_stop", vec![Attr::string(attr::NAME, "smp1")]);
    assert_eq!(status_json(&ask(&ctl, 26, "prdcr_set_status", vec![])), serde_json::json!([]));
    let u2 = status_json(&ask(&ctl, 27, "updtr_status", vec![Attr::string(attr::NAME, "u2")]));
    let states: Vec<_> = u2[0]["producers"].as_array().unwrap().iter().map(|p| p["state"].clone()).collect();
    assert_eq!(states, [s("STOPPED"), s("STOPPED")]);
    drop((ctl, smp, agg, sampler));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn msg_client_stats_counts_per_channel_and_client() {
    let rt = Runtime::new().unwrap();
    let (d, addr) = daemon("msg_enable\n");
    let sub_bus = pvloom_ldms::bus::MsgBus::new(pvloom_ldms::bus::BusConfig::default());
    let mut config = XprtConfig::default();
    config.conn.bus = Some(sub_bus);
    let sub = Xprt::connect(&rt.handle(), addr, config).unwrap();
    assert_eq!(sub.msg_subscribe("foo", false, -1).unwrap().status, 0);
    assert_eq!(sub.msg_subscribe("ba.*", true, -1).unwrap().status, 0);
    let publisher = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).unwrap();
    for (ch, data) in [("foo", r#"{"a":1}"#), ("bar", r#"{"b":22}"#), ("baz", r#"{"c":333}"#), ("baz", "{}")] {
        publisher.msg_publish(ch, pvloom_ldms::msg::MsgType::Json, data).unwrap();
    }
    wait_until("the messages counted", Duration::from_secs(10), || {
        d.bus().stats().clients.iter().map(|c| c.tx.count).sum::<u64>() == 4
    });
    let ctl = Ctl::connect(&rt, addr);
    let clients = ask(&ctl, 1, "msg_client_stats", vec![]);
    let v: serde_json::Value = serde_json::from_str(&clients.attr(attr::JSON).unwrap().str_value()).unwrap();
    // The regex client first, then the exact one; both at the subscriber's address.
    assert_eq!((&v[0]["match"], &v[1]["match"]), (&s("ba.*"), &s("foo")));
    let dest = v[0]["dest"].as_str().unwrap();
    assert!(dest.starts_with("127.0.0.1:") && dest != "127.0.0.1:0", "{dest}");
    assert_eq!(v[1]["dest"], v[0]["dest"]);
    let pairs = |c: &serde_json::Value| -> Vec<(String, u64, u64)> {
        c["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["client_match"], c["match"]);
                (
                    p["msg_tag"].as_str().unwrap().to_string(),
                    p["tx"]["count"].as_u64().unwrap(),
                    p["tx"]["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // ldmsd counts the data's bytes (its data_len), as the real one counted these.
    let len = |_ch: &str, data: &str| data.len() as u64;
    assert_eq!(
        pairs(&v[0]),
        [
            ("bar".to_string(), 1, len("bar", r#"{"b":22}"#)),
            ("baz".to_string(), 2, len("baz", r#"{"c":333}"#) + len("baz", "{}"))
        ]
    );
    assert_eq!(v[0]["tx"]["count"], 3, "the client's total is its pairs' sum");
    assert_eq!(v[0]["is_regex"], serde_json::Value::Null, "is_regex is per pair, not per client");
    assert_eq!(v[0]["channels"][0]["is_regex"], 1);
    assert_eq!(pairs(&v[1]), [("foo".to_string(), 1, len("foo", r#"{"a":1}"#))]);
    // msg_stats lists the regex client under each channel it matched, with the pair's counters.
    let chans = ask(&ctl, 2, "msg_stats", vec![]);
    let v: serde_json::Value = serde_json::from_str(&chans.attr(attr::JSON).unwrap().str_value()).unwrap();
    let baz = v.as_array().unwrap().iter().find(|c| c["msg_tag"] == "baz").unwrap();
    assert_eq!(baz["clients"].as_array().unwrap().len(), 1);
    assert_eq!(baz["sources"], serde_json::json!({}), "per source only with LDMS_MSG_STATS_LEVEL > 1, as ldmsd");
    assert_eq!(
        (&baz["clients"][0]["client_match"], &baz["clients"][0]["tx"]["count"]),
        (&s("ba.*"), &serde_json::json!(2))
    );
    // reset=true answers the counters, then zeroes them; the pairs stay.
    ask(&ctl, 3, "msg_client_stats", vec![Attr::string(attr::RESET, "true")]);
    let after = ask(&ctl, 4, "msg_client_stats", vec![]);
    let v: serde_json::Value = serde_json::from_str(&after.attr(attr::JSON).unwrap().str_value()).unwrap();
    assert_eq!(pairs(&v[0]), [("bar".to_string(), 0, 0), ("baz".to_string(), 0, 0)]);
    assert_eq!(v[1]["tx"]["count"], 0);
    // An empty counter's first_ts is ldmsd's "never": the largest time (as the real
    // ldmsd answered after a reset).
    assert_eq!(v[1]["tx"]["first_ts"].as_f64(), Some(9_223_372_036_854_775_807.0));
    assert_eq!(v[1]["drops"]["first_ts"].as_f64(), Some(9_223_372_036_854_775_807.0));
}

/// A JSON value with what differs run to run replaced by `"*"`: ports, set timestamps
/// and durations, message times, the subscriber's address, a plugin's library path,
/// the time ldmsd took to answer.
fn normalized(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let varies =
                        matches!(k.as_str(), "port" | "dest" | "libpath" | "first_ts" | "last_ts" | "compute_time")
                            || k.starts_with("timestamp.")
                            || k.starts_with("duration.");
                    (k.clone(), if varies { s("*") } else { normalized(x) })
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        x => x.clone(),
    }
}

/// Same `rsp_err` and attribute ids; JSON equal once normalized (and NUL-terminated or
/// not alike), texts equal, except the responses listed in `skip` (run-to-run values).
fn same_answers(session: &str, pairs: &[(Message, Message)], skip: &[usize]) {
    let mut compared = 0;
    for (i, (want, got)) in pairs.iter().enumerate().filter(|(i, _)| !skip.contains(i)) {
        let ids = |m: &Message| m.attrs.iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!((got.code, ids(got)), (want.code, ids(want)), "{session} #{i}: {got:?}");
        match (want.attr(attr::JSON), got.attr(attr::JSON)) {
            (Some(w), Some(g)) => {
                assert_eq!(w.value.last() == Some(&0), g.value.last() == Some(&0), "{session} #{i}: the NUL");
                let j = |a: &Attr| normalized(&serde_json::from_str(&a.str_value()).unwrap());
                assert_eq!(j(g), j(w), "{session} #{i}");
            }
            _ => assert_eq!(got.attrs, want.attrs, "{session} #{i}: text"),
        }
        compared += 1;
    }
    assert!(compared > 0, "{session}: nothing compared");
}

/// The recorded aggregator's and sampler's configuration (fixtures README), with the
/// producer's port and the CSV directory of this run.
fn recorded_status_daemons() -> (Daemon, Daemon, SocketAddr, SocketAddr, PathBuf) {
    let proc_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ls-l-meminfo");
    let sampler = Daemon::new(DaemonOptions { io_threads: 1, proc_root, ..DaemonOptions::default() }).unwrap();
    let conf = "load name=meminfo\nconfig name=meminfo producer=smp1 instance=smp1/meminfo component_id=1\n\
                start name=meminfo interval=1s offset=0\nload name=la plugin=loadavg\n";
    sampler.apply_all(&parse_str(conf, "smp.conf").unwrap()).unwrap();
    let smp_addr = sampler.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("pvloom-ldmsd-recorded-{}", std::process::id()));
    let conf = format!(
        "msg_enable\n\
         prdcr_add name=smp1 host=127.0.0.1 port={} xprt=sock type=active reconnect=1s\n\
         prdcr_add name=other host=127.0.0.1 port=1 xprt=sock type=active reconnect=20s\n\
         prdcr_start name=smp1\n\
         updtr_add name=u1 interval=1s offset=100ms\nupdtr_prdcr_add name=u1 regex=smp.*\nupdtr_start name=u1\n\
         updtr_add name=u2 interval=2s push=onchange\nupdtr_prdcr_add name=u2 regex=.*\n\
         load name=csv plugin=store_csv\nconfig name=csv path={} buffer=0\n\
         strgp_add name=s1 plugin=csv container=node schema=meminfo flush=1.5s\n\
         strgp_prdcr_add name=s1 regex=smp1\nstrgp_prdcr_add name=s1 regex=other\n\
         strgp_metric_add name=s1 metric=MemFree\nstrgp_metric_add name=s1 metric=MemTotal\nstrgp_start name=s1\n\
         strgp_add name=s2 plugin=csv container=all schema=loadavg\n",
        smp_addr.port(),
        dir.display()
    );
    let (agg, agg_addr) = daemon(&conf);
    wait_until("the producer's set", Duration::from_secs(10), || {
        agg.producers().iter().any(|p| p.name == "smp1" && p.state == ProducerState::Connected && !p.sets.is_empty())
    });
    (sampler, agg, smp_addr, agg_addr, dir)
}

#[test]
fn replayed_status_sessions_answer_as_the_recorded_ldmsd() {
    let rt = Runtime::new().unwrap();
    let (sampler, agg, smp_addr, agg_addr, dir) = recorded_status_daemons();
    // The communicator asks for the configuration counter first (#0: its value varies).
    // Then every response: updaters, policies, pulled sets (one per filter), the store
    // instance, daemon_status, and the ENOENT texts.
    let pairs = replay(&rt, agg_addr, "python-status-agg");
    assert_eq!(pairs.len(), 12);
    same_answers("python-status-agg", &pairs, &[0]);
    let pairs = replay(&rt, smp_addr, "python-status-sampler");
    same_answers("python-status-sampler", &pairs, &[0]);
    let pairs = replay(&rt, agg_addr, "controller-updtr-status");
    same_answers("controller-updtr-status", &pairs, &[0]);
    let pairs = replay(&rt, agg_addr, "controller-prdcr-stats");
    same_answers("controller-prdcr-stats", &pairs, &[0]);
    // ldmsctl's session came after these changes (fixtures README).
    let changes = "updtr_stop name=u1\nupdtr_start name=u1 interval=2s\nupdtr_stop name=u1\n\
                   strgp_stop name=s1\nprdcr_stop name=smp1\n";
    agg.apply_all(&parse_str(changes, "changes").unwrap()).unwrap();
    let pairs = replay(&rt, agg_addr, "ldmsctl-status");
    assert_eq!(pairs.len(), 6);
    same_answers("ldmsctl-status", &pairs, &[]);
    drop((agg, sampler));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replayed_msg_client_stats_counts_the_recorded_pairs() {
    let rt = Runtime::new().unwrap();
    let (d, addr) = daemon("msg_enable\n");
    // As in the recording: one peer subscribed to foo (exact) and ba.* (regex), and four
    // messages published on foo, bar, baz and baz.
    let sub_bus = pvloom_ldms::bus::MsgBus::new(pvloom_ldms::bus::BusConfig::default());
    let mut config = XprtConfig::default();
    config.conn.bus = Some(sub_bus);
    let sub = Xprt::connect(&rt.handle(), addr, config).unwrap();
    assert_eq!(sub.msg_subscribe("foo", false, -1).unwrap().status, 0);
    assert_eq!(sub.msg_subscribe("ba.*", true, -1).unwrap().status, 0);
    let publisher = Xprt::connect(&rt.handle(), addr, XprtConfig::default()).unwrap();
    for (ch, data) in [("foo", r#"{"a":1}"#), ("bar", r#"{"b":22}"#), ("baz", r#"{"c":333}"#), ("baz", "{}")] {
        publisher.msg_publish(ch, pvloom_ldms::msg::MsgType::Json, data).unwrap();
    }
    wait_until("the messages counted", Duration::from_secs(10), || {
        d.bus().stats().clients.iter().map(|c| c.tx.count).sum::<u64>() == 4
    });
    // Counts and bytes per pair and per client equal the recorded ones.
    let pairs = replay(&rt, addr, "controller-msg-client-pairs");
    same_answers("controller-msg-client-pairs", &pairs, &[0]);
}
