//! The daemon's message service on 127.0.0.1, pvloom Xprts as publishers and subscribers:
//! off until `msg_enable` (refused with ENOTSUP, and said so in the rail connect
//! message), many publishers to several subscribers exactly once and in order (one of
//! them reconnecting mid-run), a 4 MiB message, forwarding through one and two
//! aggregators (`prdcr_subscribe`) with the hops counted, and the `msg_stats` request.
//!
//! `PVLOOM_MSG_FULL=1` runs the load test at its full size (144 publishers × 10 000
//! messages); `PVLOOM_MSG_PER_PUB=N` sets the messages per publisher.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use pvloom_core::Runtime;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient, MsgData};
use pvloom_ldms::client::{MsgOwner, Xprt, XprtConfig, XprtEventKind};
use pvloom_ldms::msg::MsgType;
use pvloom_ldms::session::{Role, Session, SessionConfig, SessionEvent};
use pvloom_ldmsd::config::parse_str;
use pvloom_ldmsd::daemon::{Daemon, DaemonOptions, MSG_STATS_REQUEST, ProducerState};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A daemon that ran `conf` and listens on a free port.
fn daemon(conf: &str) -> (Daemon, SocketAddr) {
    let d = Daemon::new(DaemonOptions { io_threads: 2, ..DaemonOptions::default() }).unwrap();
    d.apply_all(&parse_str(conf, "test.conf").unwrap()).unwrap();
    let addr = d.listen(local()).unwrap();
    (d, addr)
}

/// A connection whose forwarded messages land on `bus`.
fn client(rt: &Runtime, addr: SocketAddr, bus: &Arc<MsgBus>) -> Xprt {
    let mut config = XprtConfig::default();
    config.conn.bus = Some(bus.clone());
    Xprt::connect(&rt.handle(), addr, config).unwrap()
}

type Got = Arc<Mutex<Vec<MsgData>>>;

/// A bus with one collecting client (every name) and a connection subscribed to `pattern`.
fn subscriber(rt: &Runtime, addr: SocketAddr, pattern: &str, is_regex: bool) -> (Xprt, MsgClient, Got) {
    let bus = MsgBus::new(BusConfig::default());
    let got: Got = Arc::default();
    let g = got.clone();
    let c = MsgClient::new(&bus, &rt.handle(), ".*", true, move |m| g.lock().push(m.clone())).unwrap();
    let x = client(rt, addr, &bus);
    let st = x.msg_subscribe(pattern, is_regex, -1).unwrap();
    assert_eq!(st.status, 0, "{}", st.text);
    (x, c, got)
}

/// The `msg_enabled` of the rail connect message `addr` accepts with (a raw handshake).
fn advertised_msg_enabled(addr: SocketAddr) -> u32 {
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = Session::new(Role::Active, SessionConfig::default(), Instant::now());
    let mut buf = [0u8; 4096];
    loop {
        let mut out = BytesMut::new();
        s.poll_transmit(1 << 20, &mut out);
        sock.write_all(&out).unwrap();
        while let Some(ev) = s.poll_event() {
            if let SessionEvent::Connected { peer } = ev {
                return peer.msg_enabled;
            }
        }
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "the daemon closed during the handshake");
        s.handle_input(Instant::now(), &buf[..n]);
    }
}

#[test]
fn off_by_default_refused_with_enotsup_and_msg_enable_turns_it_on() {
    let rt = Runtime::new().unwrap();
    let (d, addr) = daemon("");
    assert!(!d.bus().is_enabled());
    assert_eq!(advertised_msg_enabled(addr), 0, "a daemon without msg_enable says its service is off");
    let bus = MsgBus::new(BusConfig::default());
    let x = client(&rt, addr, &bus);
    let e = x.msg_subscribe("foo", false, -1).unwrap_err();
    assert_eq!(e.errno(), 95, "{e}");
    x.msg_publish("foo", MsgType::String, "x").unwrap();
    wait_until("the refusal", Duration::from_secs(5), || x.msg_refused() == Some(95));

    d.apply_all(&parse_str("msg_enable\n", "ctl").unwrap()).unwrap();
    assert_eq!(advertised_msg_enabled(addr), 1, "enabled after msg_enable, at the next accept");
    assert_eq!(x.msg_subscribe("foo", false, -1).unwrap().status, 0);
    d.apply_all(&parse_str("msg_disable\n", "ctl").unwrap()).unwrap();
    assert_eq!(x.msg_subscribe("bar", false, -1).unwrap_err().errno(), 95);
    assert_eq!(advertised_msg_enabled(addr), 0);
}

#[test]
fn a_four_mib_message_goes_through_the_daemon_whole() {
    let rt = Runtime::new().unwrap();
    let (_d, addr) = daemon("msg_enable\n");
    let (_sub, _c, got) = subscriber(&rt, addr, "big", false);
    let publisher = client(&rt, addr, &MsgBus::new(BusConfig::default()));
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    publisher.msg_publish("big", MsgType::String, data.clone()).unwrap();
    publisher.msg_publish("big", MsgType::Json, r#"{"after": 1}"#).unwrap();
    wait_until("both messages", Duration::from_secs(30), || got.lock().len() == 2);
    let got = got.lock();
    assert_eq!(got[0].data().len(), 4 << 20);
    assert!(got[0].data().as_ref() == data.as_slice(), "the 4 MiB data arrived intact");
    assert_eq!(got[0].hop_cnt(), 1);
    assert_eq!(got[1].json().unwrap()["after"], 1, "and what followed it, in order");
}

#[test]
fn msg_stats_request_answers_with_the_buses_counters() {
    let rt = Runtime::new().unwrap();
    let (_d, addr) = daemon("msg_enable\n");
    let (_sub, _c, got) = subscriber(&rt, addr, "counted", false);
    let publisher = client(&rt, addr, &MsgBus::new(BusConfig::default()));
    for _ in 0..7 {
        publisher.msg_publish("counted", MsgType::String, "1234").unwrap();
    }
    wait_until("7 deliveries", Duration::from_secs(10), || got.lock().len() == 7);

    let reply: Arc<Mutex<Option<bytes::Bytes>>> = Arc::default();
    let r = reply.clone();
    let (x, wait) = Xprt::connect_with(
        &rt.handle(),
        addr,
        XprtConfig::default(),
        Some(Arc::new(move |_: &Xprt, ev: &pvloom_ldms::client::XprtEvent| {
            if ev.kind == XprtEventKind::Recv {
                *r.lock() = ev.data.clone();
            }
        })),
    );
    wait.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
    x.send(b"not a request");
    x.send(MSG_STATS_REQUEST.as_bytes());
    wait_until("the stats reply", Duration::from_secs(5), || reply.lock().is_some());
    let v: serde_json::Value = serde_json::from_slice(&reply.lock().clone().unwrap()).unwrap();
    assert_eq!(v["enabled"], true);
    let ch = v["channels"].as_array().unwrap().iter().find(|c| c["msg_tag"] == "counted").expect("the channel");
    assert_eq!(ch["rx"]["count"], 7);
    // ldmsd counts the data's bytes, not the name's.
    assert_eq!(ch["rx"]["bytes"], 7 * 4);
    let remote = v["clients"].as_array().unwrap().iter().find(|c| c["remote"] == true).expect("the subscriber");
    assert_eq!(remote["tx"]["count"], 7);
}

/// A sampler daemon, `n` aggregators stacked on it (each `prdcr_subscribe`s the one
/// below), a subscriber on the top one: the message is forwarded with a hop per daemon.
fn forwarded_through(rt: &Runtime, aggregators: usize) -> MsgData {
    let (sampler, sampler_addr) = daemon("msg_enable\n");
    let mut below = sampler_addr;
    let mut daemons = vec![sampler];
    for i in 0..aggregators {
        let conf = format!(
            "msg_enable\nprdcr_add name=p{i} host=127.0.0.1 port={} xprt=sock type=active reconnect=200ms\n\
             prdcr_subscribe regex=^p{i}$ message_channel=hop.*\nprdcr_start name=p{i}\n",
            below.port()
        );
        let (d, addr) = daemon(&conf);
        wait_until("the producer", Duration::from_secs(10), || {
            d.producers().iter().all(|p| p.state == ProducerState::Connected)
        });
        assert_eq!(d.producers()[0].subscriptions, ["hop.*"]);
        daemons.push(d);
        below = addr;
    }
    let (_sub, _c, got) = subscriber(rt, below, "hops", false);
    // The subscriptions up the chain are asynchronous: publish until one gets through.
    let publisher = client(rt, sampler_addr, &MsgBus::new(BusConfig::default()));
    let end = Instant::now() + Duration::from_secs(10);
    while got.lock().is_empty() {
        assert!(Instant::now() < end, "nothing forwarded through {aggregators} aggregators");
        publisher.msg_publish("hops", MsgType::String, "up").unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = got.lock()[0].clone();
    assert_eq!(m.data().as_ref(), b"up");
    m
}

#[test]
fn an_aggregator_forwards_a_producers_messages_with_its_hop() {
    let rt = Runtime::new().unwrap();
    let m = forwarded_through(&rt, 1);
    assert_eq!((m.hop_cnt(), m.hops().len()), (2, 3), "sampler and aggregator each counted a hop");
}

#[test]
fn aggregator_to_aggregator_counts_every_hop() {
    let rt = Runtime::new().unwrap();
    let m = forwarded_through(&rt, 2);
    assert_eq!((m.hop_cnt(), m.hops().len()), (3, 4));
    let hops = m.hops();
    let t = |ts: pvloom_ldms::request::Timespec| (ts.sec, ts.nsec);
    assert!(hops.windows(2).all(|w| t(w[0].send) <= t(w[1].recv)), "hops stamped in order: {hops:?}");
}

#[test]
fn prdcr_subscribe_survives_a_reconnect_and_prdcr_unsubscribe_stops_it() {
    let rt = Runtime::new().unwrap();
    let (sampler, sampler_addr) = daemon("msg_enable\n");
    let conf = format!(
        "msg_enable\nprdcr_add name=s host=127.0.0.1 port={} xprt=sock type=active reconnect=100ms\n\
         prdcr_subscribe regex=.* message_channel=re rx_rate=-1\nprdcr_start name=s\n",
        sampler_addr.port()
    );
    let (agg, agg_addr) = daemon(&conf);
    let (_sub, _c, got) = subscriber(&rt, agg_addr, "re", false);
    let publisher = client(&rt, sampler_addr, &MsgBus::new(BusConfig::default()));
    let publish_until = |n: usize| {
        let end = Instant::now() + Duration::from_secs(10);
        while got.lock().len() < n {
            assert!(Instant::now() < end, "the aggregator forwarded nothing");
            publisher.msg_publish("re", MsgType::String, "x").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    publish_until(1);
    // The sampler goes away and comes back on the same port: the aggregator reconnects
    // and subscribes again.
    drop(publisher);
    drop(sampler);
    wait_until("the producer to be retried", Duration::from_secs(10), || {
        agg.producers()[0].state == ProducerState::Connecting
    });
    let sampler = Daemon::new(DaemonOptions { io_threads: 1, ..DaemonOptions::default() }).unwrap();
    sampler.apply_all(&parse_str("msg_enable\n", "again.conf").unwrap()).unwrap();
    sampler.listen(sampler_addr).expect("the same port again");
    wait_until("the reconnect", Duration::from_secs(10), || {
        let p = &agg.producers()[0];
        p.connects >= 2 && p.state == ProducerState::Connected
    });
    let publisher = client(&rt, sampler_addr, &MsgBus::new(BusConfig::default()));
    let publish_until = |n: usize| {
        let end = Instant::now() + Duration::from_secs(10);
        while got.lock().len() < n {
            assert!(Instant::now() < end, "the aggregator forwarded nothing after the reconnect");
            publisher.msg_publish("re", MsgType::String, "x").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let before = got.lock().len();
    publish_until(before + 1);

    agg.apply_all(&parse_str("prdcr_unsubscribe regex=^s$ message_channel=re\n", "ctl").unwrap()).unwrap();
    assert!(agg.producers()[0].subscriptions.is_empty());
    wait_until("the sampler to drop the subscription", Duration::from_secs(5), || {
        sampler.bus().stats().clients.is_empty()
    });
    let before = got.lock().len();
    publisher.msg_publish("re", MsgType::String, "x").unwrap();
    publisher.msg_flush(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(got.lock().len(), before, "nothing forwarded after prdcr_unsubscribe");
}

// ----------------------------------------------------------------------------------
// Many publishers, several subscribers, one of them reconnecting.

fn per_publisher() -> u64 {
    if let Some(n) = std::env::var("PVLOOM_MSG_PER_PUB").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if std::env::var("PVLOOM_MSG_FULL").is_ok_and(|v| v == "1") { 10_000 } else { 2_000 }
}

const PUBLISHERS: usize = 144;
const SUBSCRIBERS: usize = 4;
const PUBLISH_THREADS: usize = 8;

/// What one subscriber session saw, per publisher: the first sequence number, the next
/// expected, and whether anything came twice or out of order.
#[derive(Default)]
struct Seen {
    first: Vec<Option<u64>>,
    next: Vec<u64>,
    errors: Vec<String>,
    total: u64,
}

impl Seen {
    fn new() -> Seen {
        Seen { first: vec![None; PUBLISHERS], next: vec![0; PUBLISHERS], errors: Vec::new(), total: 0 }
    }

    fn record(&mut self, data: &[u8]) {
        let text = std::str::from_utf8(data).unwrap();
        let (p, seq) = text.split_once(' ').unwrap();
        let (p, seq): (usize, u64) = (p.parse().unwrap(), seq.trim_end_matches('\0').parse().unwrap());
        self.total += 1;
        match self.first[p] {
            None => {
                self.first[p] = Some(seq);
                self.next[p] = seq + 1;
            }
            Some(_) if seq == self.next[p] => self.next[p] += 1,
            Some(_) if self.errors.len() < 10 => {
                self.errors.push(format!("publisher {p}: got {seq}, expected {}", self.next[p]))
            }
            Some(_) => {}
        }
    }
}

/// One subscriber session: its own runtime (a process of its own, in effect: its
/// callbacks do not queue behind the publishers' work), bus, client and connection.
struct Subscriber {
    xprt: Xprt,
    client: MsgClient,
    seen: Arc<Mutex<Seen>>,
    _rt: Runtime,
}

fn load_subscriber(addr: SocketAddr) -> Subscriber {
    let runtime = Runtime::builder().io_threads(1).name("msg-sub").build().unwrap();
    let rt = &runtime;
    let bus = MsgBus::new(BusConfig::default());
    let seen = Arc::new(Mutex::new(Seen::new()));
    let s = seen.clone();
    let c = MsgClient::new(&bus, &rt.handle(), "load", false, move |m| s.lock().record(m.data())).unwrap();
    // A daemon busy routing a backlog answers a new connection slowly (debug builds on
    // two cores: seconds at the full size), hence the long deadline.
    let mut config = XprtConfig { timeout: Duration::from_secs(120), ..XprtConfig::default() };
    config.conn.bus = Some(bus.clone());
    let xprt = Xprt::connect(&rt.handle(), addr, config).unwrap();
    assert_eq!(xprt.msg_subscribe("load", false, -1).unwrap().status, 0);
    Subscriber { xprt, client: c, seen, _rt: runtime }
}

#[test]
fn many_publishers_reach_every_subscriber_once_and_in_order_across_a_resubscription() {
    let n = per_publisher();
    let started = Instant::now();
    let rt = Runtime::builder().io_threads(2).name("msg-load").build().unwrap();
    let (d, addr) = daemon("msg_enable\n");
    let mut subs: Vec<Subscriber> = (0..SUBSCRIBERS).map(|_| load_subscriber(addr)).collect();
    let published: Arc<Vec<AtomicU64>> = Arc::new((0..PUBLISHERS).map(|_| AtomicU64::new(0)).collect());
    let publishers: Vec<Xprt> =
        (0..PUBLISHERS).map(|_| client(&rt, addr, &MsgBus::new(BusConfig::default()))).collect();
    let publishers = Arc::new(publishers);
    let owner = MsgOwner::default();
    let resubscribed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..PUBLISH_THREADS)
        .map(|t| {
            let (publishers, published, resubscribed) = (publishers.clone(), published.clone(), resubscribed.clone());
            std::thread::spawn(move || {
                let mine: Vec<usize> = (t..PUBLISHERS).step_by(PUBLISH_THREADS).collect();
                // Paced (unpaced, every message is queued at once), and held at three
                // quarters until subscriber 3 is back, so that its resubscription falls
                // in the middle of publishing even on a loaded machine.
                let pace = (n / 400).max(1);
                for seq in 0..n {
                    if seq % pace == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    while seq == n * 3 / 4 && !resubscribed.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    for &p in &mine {
                        let data = format!("{p} {seq}");
                        publishers[p]
                            .msg_publish_with("load", MsgType::String, data, owner, Duration::from_secs(30))
                            .unwrap_or_else(|e| panic!("publisher {p} message {seq}: {e}"));
                        published[p].store(seq + 1, Ordering::Release);
                    }
                }
            })
        })
        .collect();

    // Subscriber 3 goes away a quarter of the way in and subscribes again.
    let total = n * PUBLISHERS as u64;
    wait_until("a quarter of the messages", Duration::from_secs(120), || {
        published.iter().map(|a| a.load(Ordering::Acquire)).sum::<u64>() >= total / 4
    });
    let old = subs.pop().unwrap();
    old.client.close();
    old.xprt.close();
    wait_until("the daemon to drop the old subscription", Duration::from_secs(30), || {
        d.bus().stats().clients.len() == SUBSCRIBERS - 1
    });
    let first_session = std::mem::replace(&mut *old.seen.lock(), Seen::new());
    std::thread::sleep(Duration::from_millis(30));
    let t = Instant::now();
    let again = load_subscriber(addr);
    let resubscribe_took = t.elapsed();
    // Everything published from here on must reach it.
    let marks: Vec<u64> = published.iter().map(|a| a.load(Ordering::Acquire)).collect();
    subs.push(again);
    resubscribed.store(true, Ordering::Release);
    let resubscribed_at = started.elapsed();
    assert!(marks.iter().sum::<u64>() < total, "the resubscription happened while publishing went on");

    for t in threads {
        t.join().unwrap();
    }
    let publish_time = started.elapsed();

    let want = |s: &Subscriber| s.seen.lock().next.iter().all(|&x| x == n);
    wait_until("every subscriber to get everything", Duration::from_secs(120), || subs.iter().all(want));

    for (i, s) in subs.iter().enumerate() {
        let seen = s.seen.lock();
        assert!(seen.errors.is_empty(), "subscriber {i}: {:?}", seen.errors);
        if i < 3 {
            assert_eq!(seen.total, total, "subscriber {i} got everything exactly once");
            assert!(seen.first.iter().all(|f| *f == Some(0)));
        } else {
            for (p, (first, mark)) in seen.first.iter().zip(&marks).enumerate() {
                let first = first.unwrap_or(n);
                assert!(first <= *mark, "publisher {p}: resubscribed at {mark}, first got {first}");
            }
            let expected: u64 = seen.first.iter().map(|f| n - f.unwrap_or(n)).sum();
            assert_eq!(seen.total, expected, "from its resubscription on, exactly once");
        }
    }
    assert!(first_session.errors.is_empty(), "before it went away: {:?}", first_session.errors);
    assert!(first_session.first.iter().all(|f| f.is_none_or(|f| f == 0)), "from the start, in order");

    let stats = d.bus().stats();
    let load = stats.channels.iter().find(|c| c.name == "load").unwrap();
    assert_eq!(load.rx.count, total, "the daemon counted every message once");
    eprintln!(
        "{PUBLISHERS} publishers x {n} messages to {SUBSCRIBERS} subscribers: resubscribed at \
         {resubscribed_at:?} (took {resubscribe_took:?}, {} published), published in {publish_time:?}, delivered in {:?}",
        marks.iter().sum::<u64>(),
        started.elapsed()
    );
    // The connections last until here.
    drop(publishers);
}
