//! The LDMSD request protocol against recordings of the real `ldmsctl`,
//! `ldmsd_controller` and `ldmsd` (tests/fixtures/ldmsd-req, see its README):
//!
//! - every recorded request and response decodes with pvloom's codec and re-encodes to
//!   the same bytes;
//! - the recorded client side, replayed against `pvloom ldmsd` on a free 127.0.0.1 port,
//!   gets responses of the same shape: the same message numbers, `rsp_err`, attribute
//!   ids and (for JSON) keys. Values that depend on state (counters, timestamps, the
//!   configuration counter, the client's port) are not compared; texts are compared where
//!   pvloom words them as ldmsd does.

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
