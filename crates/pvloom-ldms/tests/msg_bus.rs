//! The message bus over TCP on 127.0.0.1, pvloom on both ends: publish through a server
//! with a bus to remote subscribers (MSG_SUB) and local clients, credit, refusals,
//! multi-part messages, a subscriber that goes away, back-pressure without loss.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::Runtime;
use pvloom_ldms::bus::{BusConfig, MsgBus, MsgClient, MsgData};
use pvloom_ldms::client::{MsgOwner, Xprt, XprtConfig, XprtEventKind};
use pvloom_ldms::msg::MsgType;
use pvloom_ldms::server::{LdmsServer, ServerConfig, SetRegistry};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn daemon(rt: &Runtime, bus: Option<Arc<MsgBus>>) -> LdmsServer {
    let config = ServerConfig { bus, ..ServerConfig::default() };
    LdmsServer::bind(rt.handle(), local(), SetRegistry::new(), config).unwrap()
}

/// A client whose forwarded messages land on its own bus.
fn client(rt: &Runtime, addr: SocketAddr, bus: &Arc<MsgBus>) -> Xprt {
    let mut config = XprtConfig::default();
    config.conn.bus = Some(bus.clone());
    Xprt::connect(&rt.handle(), addr, config).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

type Got = Arc<Mutex<Vec<MsgData>>>;

fn collector(rt: &Runtime, bus: &Arc<MsgBus>, pattern: &str, is_regex: bool) -> (MsgClient, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let c = MsgClient::new(bus, &rt.handle(), pattern, is_regex, move |m| g.lock().push(m.clone())).unwrap();
    (c, got)
}

#[test]
fn publish_through_a_daemon_reaches_exact_and_regex_subscribers_only() {
    let rt = Runtime::new().unwrap();
    let server = daemon(&rt, Some(MsgBus::new(BusConfig::default())));
    let sub_bus = MsgBus::new(BusConfig::default());
    let (_all, got) = collector(&rt, &sub_bus, ".*", true);
    let sub = client(&rt, server.local_addr(), &sub_bus);
    let st = sub.msg_subscribe("foo", false, -1).unwrap();
    assert_eq!((st.status, st.text.as_str()), (0, "OK"));
    sub.msg_subscribe("bar.*", true, -1).unwrap();

    let quota = Arc::new(AtomicUsize::new(0));
    let q = quota.clone();
    let pub_bus = MsgBus::new(BusConfig::default());
    let mut config = XprtConfig::default();
    config.conn.bus = Some(pub_bus);
    let (publisher, wait) = Xprt::connect_with(
        &rt.handle(),
        server.local_addr(),
        config,
        Some(Arc::new(move |_: &Xprt, ev: &pvloom_ldms::client::XprtEvent| {
            if ev.kind == XprtEventKind::SendQuotaDeposited {
                q.fetch_add(ev.quota as usize, Ordering::Relaxed);
            }
        })),
    );
    wait.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let owner = MsgOwner { uid: 0, gid: 0, perm: 0o444 };
    let sends = [
        ("foo", MsgType::String, b"hello-foo-1".to_vec()),
        ("foo", MsgType::Json, br#"{"k": "v"}"#.to_vec()),
        ("bar.x", MsgType::String, b"hello-bar-x".to_vec()),
        ("baz", MsgType::String, b"not-subscribed".to_vec()),
        ("foo", MsgType::String, vec![b'a'; 65536]),
        ("bar.big", MsgType::String, vec![b'z'; 3 << 20]),
    ];
    for (name, t, data) in &sends {
        publisher.msg_publish_with(name, *t, data.clone(), owner, Duration::from_secs(5)).unwrap();
    }
    wait_until("5 deliveries", Duration::from_secs(10), || got.lock().len() == 5);
    let credit: usize = sends.iter().map(|(n, _, d)| n.len() + 1 + d.len()).sum();
    wait_until("every credit back", Duration::from_secs(10), || quota.load(Ordering::Relaxed) == credit);
    let got = got.lock();
    let names: Vec<_> = got.iter().map(MsgData::name).collect();
    assert_eq!(names, ["foo", "foo", "bar.x", "foo", "bar.big"]);
    assert_eq!(got[0].data().as_ref(), b"hello-foo-1");
    assert!(got[1].is_json());
    assert_eq!(got[1].json().unwrap()["k"], "v");
    assert_eq!(got[3].data().len(), 65536);
    assert_eq!(got[4].data().len(), 3 << 20, "a multi-part message reassembled");
    assert!(got[4].data().iter().all(|&c| c == b'z'));
    assert!(got.iter().all(|m| m.hop_cnt() == 1 && m.hops().len() == 2), "the daemon counted its hop");
    assert_eq!(got.iter().map(MsgData::msg_gn).collect::<Vec<_>>()[..3], [0, 1, 2]);
    drop(got);

    let st = sub.msg_unsubscribe("foo", false).unwrap();
    assert_eq!(st.status, 0);
    let e = sub.msg_unsubscribe("foo", false).unwrap_err();
    assert_eq!(e.errno(), 2, "{e}");
}

#[test]
fn a_daemon_without_the_service_refuses_and_says_so() {
    let rt = Runtime::new().unwrap();
    let server = daemon(&rt, None);
    let bus = MsgBus::new(BusConfig::default());
    let x = client(&rt, server.local_addr(), &bus);
    let e = x.msg_subscribe("foo", false, -1).unwrap_err();
    assert_eq!(e.errno(), 95, "{e}");
    x.msg_publish("foo", MsgType::String, "x").unwrap();
    wait_until("the refusal", Duration::from_secs(5), || x.msg_refused() == Some(95));

    // Disabled at run time (msg_disable): the same.
    let bus2 = MsgBus::new(BusConfig::default());
    let server2 = daemon(&rt, Some(bus2.clone()));
    bus2.set_enabled(false);
    let y = client(&rt, server2.local_addr(), &bus);
    assert_eq!(y.msg_subscribe("foo", false, -1).unwrap_err().errno(), 95);
}

#[test]
fn bad_regex_too_large_and_bad_names_are_clear_errors() {
    let rt = Runtime::new().unwrap();
    let server = daemon(&rt, Some(MsgBus::new(BusConfig::default())));
    let bus = MsgBus::new(BusConfig { max_msg: 1 << 20, ..BusConfig::default() });
    let x = client(&rt, server.local_addr(), &bus);
    assert_eq!(x.msg_subscribe("(", true, -1).unwrap_err().errno(), 22);
    let too_big = vec![0u8; 1 << 20];
    let e = x.msg_publish("big", MsgType::String, too_big).unwrap_err();
    assert_eq!(e.errno(), 90, "{e}");
    assert_eq!(x.msg_publish("a\0b", MsgType::String, "x").unwrap_err().errno(), 22);
    assert!(x.is_connected());
}

#[test]
fn a_slow_subscriber_slows_the_publisher_and_nothing_is_lost() {
    let rt = Runtime::new().unwrap();
    let server = daemon(&rt, Some(MsgBus::new(BusConfig { link_in_flight: 64 << 10, ..BusConfig::default() })));
    let sub_bus = MsgBus::new(BusConfig { link_in_flight: 64 << 10, ..BusConfig::default() });
    let got = Arc::new(AtomicUsize::new(0));
    let order_ok = Arc::new(AtomicUsize::new(1));
    let (g, ok) = (got.clone(), order_ok.clone());
    let _c = MsgClient::new(&sub_bus, &rt.handle(), "slow", false, move |m| {
        let want = g.fetch_add(1, Ordering::Relaxed);
        if m.data().as_ref() != format!("{want:08}").as_bytes() {
            ok.store(0, Ordering::Relaxed);
        }
        if want % 500 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .unwrap();
    let sub = client(&rt, server.local_addr(), &sub_bus);
    sub.msg_subscribe("slow", false, -1).unwrap();
    let publisher = client(&rt, server.local_addr(), &MsgBus::new(BusConfig::default()));
    let n = 20_000;
    for i in 0..n {
        publisher.msg_publish("slow", MsgType::String, format!("{i:08}")).unwrap();
    }
    wait_until("every message", Duration::from_secs(30), || got.load(Ordering::Relaxed) == n);
    assert_eq!(order_ok.load(Ordering::Relaxed), 1, "in publish order");
}

#[test]
fn a_subscriber_that_goes_away_releases_its_messages() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let server = daemon(&rt, Some(bus.clone()));
    let sub_bus = MsgBus::new(BusConfig::default());
    let (_c, got) = collector(&rt, &sub_bus, "t", false);
    let sub = client(&rt, server.local_addr(), &sub_bus);
    sub.msg_subscribe("t", false, -1).unwrap();
    sub.close();
    wait_until("the subscription to go", Duration::from_secs(5), || bus.stats().clients.is_empty());
    let publisher = client(&rt, server.local_addr(), &MsgBus::new(BusConfig::default()));
    for _ in 0..100 {
        publisher.msg_publish("t", MsgType::String, "x").unwrap();
    }
    publisher.msg_flush(Duration::from_secs(5)).unwrap();
    wait_until("the daemon counted them", Duration::from_secs(5), || {
        bus.stats().channels.iter().any(|c| c.name == "t" && c.rx.count == 100)
    });
    assert!(got.lock().is_empty());

    // A new subscriber gets what is published from then on.
    let sub = client(&rt, server.local_addr(), &sub_bus);
    sub.msg_subscribe("t", false, -1).unwrap();
    publisher.msg_publish("t", MsgType::String, "after").unwrap();
    wait_until("the new subscriber's message", Duration::from_secs(5), || got.lock().len() == 1);
}

#[test]
fn local_clients_and_rate_limits() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let (exact, got_exact) = collector(&rt, &bus, "a.b", false);
    let (_re, got_re) = collector(&rt, &bus, "^a\\.", true);
    let q = MsgClient::queue(&bus, "a.b", false, 16).unwrap();
    assert_eq!(bus.publish("a.b", MsgType::String, "1", (0, 0, 0o444)).unwrap(), 3);
    assert_eq!(bus.publish("a.c", MsgType::String, "2", (0, 0, 0o444)).unwrap(), 1);
    assert_eq!(bus.publish("x", MsgType::String, "3", (0, 0, 0o444)).unwrap(), 0);
    assert_eq!(got_exact.lock().len(), 1);
    assert_eq!(got_re.lock().len(), 2);
    assert_eq!(q.get_data(Duration::from_secs(1)).unwrap().unwrap().data().as_ref(), b"1");
    assert!(q.try_get_data().is_none());
    exact.close();
    bus.publish("a.b", MsgType::String, "4", (0, 0, 0o444)).unwrap();
    assert_eq!(got_exact.lock().len(), 1, "closed clients get nothing");
    let stats = bus.stats();
    let ab = stats.channels.iter().find(|c| c.name == "a.b").unwrap();
    assert_eq!(ab.rx.count, 2);
    assert_eq!(ab.sources[0].0, "local");
    bus.set_enabled(false);
    assert!(bus.publish("a.b", MsgType::String, "5", (0, 0, 0o444)).is_err());
}

#[test]
fn a_remote_rate_limit_drops_and_counts() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let server = daemon(&rt, Some(bus.clone()));
    let sub_bus = MsgBus::new(BusConfig::default());
    let (_c, got) = collector(&rt, &sub_bus, "r", false);
    let sub = client(&rt, server.local_addr(), &sub_bus);
    sub.msg_subscribe("r", false, 1000).unwrap();
    for _ in 0..50 {
        bus.publish("r", MsgType::String, vec![b'x'; 98], (0, 0, 0o444)).unwrap();
    }
    let client_stats = bus.stats().clients;
    let drops: u64 = client_stats.iter().map(|c| c.drops).sum();
    let delivered: u64 = client_stats.iter().map(|c| c.tx.count).sum();
    assert_eq!(delivered + drops, 50);
    assert!(delivered <= 11 && drops >= 39, "{delivered} delivered, {drops} dropped");
    wait_until("the admitted ones", Duration::from_secs(5), || got.lock().len() as u64 == delivered);
}

#[test]
fn credit_returns_when_the_callback_returns_even_if_the_message_is_kept() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let server = daemon(&rt, Some(bus.clone()));
    // The application keeps every message (as the real API's users do).
    let (_kept, got) = collector(&rt, &bus, "keep", false);
    let queued = MsgClient::queue(&bus, "keep", false, 1000).unwrap();
    let quota = Arc::new(AtomicUsize::new(0));
    let q = quota.clone();
    let (publisher, wait) = Xprt::connect_with(
        &rt.handle(),
        server.local_addr(),
        XprtConfig::default(),
        Some(Arc::new(move |_: &Xprt, ev: &pvloom_ldms::client::XprtEvent| {
            // Credit comes back summed over what the bus let go at once, so count
            // it in messages' worth (each is "keep\0x": 6 bytes).
            if ev.kind == XprtEventKind::SendQuotaDeposited {
                q.fetch_add(ev.quota as usize / 6, Ordering::Relaxed);
            }
        })),
    );
    wait.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
    for _ in 0..10 {
        publisher.msg_publish("keep", MsgType::String, "x").unwrap();
    }
    wait_until("the deliveries", Duration::from_secs(5), || got.lock().len() == 10);
    // Half are still queued: their credit waits for them.
    for _ in 0..5 {
        queued.get_data(Duration::from_secs(1)).unwrap().unwrap();
    }
    wait_until("credit for the five taken", Duration::from_secs(5), || quota.load(Ordering::Relaxed) == 5);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(quota.load(Ordering::Relaxed), 5, "the queued five still hold theirs");
    let kept: Vec<MsgData> = (0..5).map(|_| queued.get_data(Duration::from_secs(1)).unwrap().unwrap()).collect();
    wait_until("all credit back", Duration::from_secs(5), || quota.load(Ordering::Relaxed) == 10);
    assert_eq!(kept.len(), 5);
}

#[test]
fn a_callback_that_publishes_to_a_name_it_matches_gets_that_message_after_it_returns() {
    // Delivered on the publishing thread, the inner message once waited for the
    // callback's own lock, held further up the same thread's stack: forever.
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s, relay_bus) = (seen.clone(), bus.clone());
    let _relay = MsgClient::new(&bus, &rt.handle(), "^relay\\.", true, move |m| {
        let text = String::from_utf8_lossy(m.data()).into_owned();
        s.lock().push(text.clone());
        if text == "in" {
            assert_eq!(relay_bus.publish("relay.out", MsgType::String, "out", (0, 0, 0o444)).unwrap(), 1);
            s.lock().push("published".into());
        }
    })
    .unwrap();
    let publisher = std::thread::spawn(move || bus.publish("relay.in", MsgType::String, "in", (0, 0, 0o444)).unwrap());
    wait_until("both messages through the relay", Duration::from_secs(5), || seen.lock().len() == 3);
    assert_eq!(*seen.lock(), ["in", "published", "out"], "one message at a time, in order");
    assert_eq!(publisher.join().unwrap(), 1);
}

#[test]
fn two_callbacks_that_publish_to_each_other_from_two_threads_both_finish() {
    let rt = Runtime::new().unwrap();
    let bus = MsgBus::new(BusConfig::default());
    let counts: Arc<[AtomicUsize; 2]> = Arc::default();
    let mut clients = Vec::new();
    for (me, other) in [("ping", "pong"), ("pong", "ping")] {
        let (b, c) = (bus.clone(), counts.clone());
        let slot = usize::from(me == "pong");
        clients.push(
            MsgClient::new(&bus, &rt.handle(), me, false, move |m| {
                c[slot].fetch_add(1, Ordering::SeqCst);
                let hops: u32 = String::from_utf8_lossy(m.data()).parse().unwrap();
                if hops > 0 {
                    // Slow enough for the other thread's callback to be running too.
                    std::thread::sleep(Duration::from_millis(1));
                    b.publish(other, MsgType::String, (hops - 1).to_string(), (0, 0, 0o444)).unwrap();
                }
            })
            .unwrap(),
        );
    }
    let threads: Vec<_> = ["ping", "pong"]
        .into_iter()
        .map(|name| {
            let b = bus.clone();
            std::thread::spawn(move || b.publish(name, MsgType::String, "20", (0, 0, 0o444)).unwrap())
        })
        .collect();
    wait_until("both relays to run down", Duration::from_secs(10), || {
        counts[0].load(Ordering::SeqCst) + counts[1].load(Ordering::SeqCst) == 42
    });
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn both_ends_publishing_with_small_quotas_deliver_everything() {
    // Each side once sent its credit only when its own output was empty; both outputs
    // waited for the other's credit, and the credit timeout closed both connections.
    const QUOTA: u64 = 8 * 1024;
    const N: usize = 2000;
    let rt = Runtime::new().unwrap();
    let server_bus = MsgBus::new(BusConfig::default());
    let mut config = ServerConfig { bus: Some(server_bus.clone()), ..ServerConfig::default() };
    config.session.conn_msg.recv_quota = QUOTA;
    let server = LdmsServer::bind(rt.handle(), local(), SetRegistry::new(), config).unwrap();
    let (_up, ups) = collector(&rt, &server_bus, "up", false);
    let client_bus = MsgBus::new(BusConfig::default());
    let (_down, downs) = collector(&rt, &client_bus, "down", false);
    let mut xc = XprtConfig::default();
    xc.conn.bus = Some(client_bus.clone());
    xc.conn.session.conn_msg.recv_quota = QUOTA;
    let x = Xprt::connect(&rt.handle(), server.local_addr(), xc).unwrap();
    x.msg_subscribe("down", false, -1).unwrap();
    let payload = vec![b'x'; 200];
    let down_payload = payload.clone();
    let down = std::thread::spawn(move || {
        for _ in 0..N {
            server_bus.publish("down", MsgType::String, down_payload.clone(), (0, 0, 0o444)).unwrap();
        }
    });
    for _ in 0..N {
        x.msg_publish("up", MsgType::String, payload.clone()).unwrap();
    }
    down.join().unwrap();
    wait_until("both directions delivered", Duration::from_secs(20), || {
        ups.lock().len() == N && downs.lock().len() == N
    });
    assert!(x.is_connected());
}
