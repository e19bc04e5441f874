//! The CA client against servers we did not write: EPICS base's rsrv (pythonSoftIOC)
//! and caproto's server.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_ca::client::{
    CaError, ConnectionState, DbrClass, DbrType, Metadata, ReadOptions, SubscribeOptions, Value, WriteOptions,
};
use pvloom_ca::proto::NativeType;
use support::{Peer, ServerKind};

const CLASSES: [DbrClass; 5] =
    [DbrClass::Plain, DbrClass::Status, DbrClass::Time, DbrClass::Graphic, DbrClass::Control];

/// (suffix, native type) of one PV per native type on each server.
fn typed_pvs(kind: ServerKind) -> Vec<(&'static str, NativeType)> {
    match kind {
        ServerKind::SoftIoc => vec![
            ("AI", NativeType::Double),
            ("LI", NativeType::Long),
            ("SI", NativeType::String),
            ("MBBI", NativeType::Enum),
            ("CHARWF", NativeType::Char),
            ("SHORTWF", NativeType::Short),
            ("FLOATWF", NativeType::Float),
        ],
        ServerKind::Caproto => vec![
            ("double", NativeType::Double),
            ("long", NativeType::Long),
            ("string", NativeType::String),
            ("enum", NativeType::Enum),
            ("char", NativeType::Char),
            ("int", NativeType::Short),
            ("float", NativeType::Float),
        ],
    }
}

fn check_every_type_and_class(kind: ServerKind) {
    let server = Peer::start(kind, "T:");
    let ctx = server.client();
    let pvs: Vec<_> = typed_pvs(kind).into_iter().map(|(s, t)| (ctx.get_pv(&server.pv(s)), t)).collect();
    for (pv, native) in &pvs {
        pv.wait_for_connection(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(pv.native_type().unwrap().native(), *native, "{}", pv.name());
        for class in CLASSES {
            let reading =
                pv.read_with(ReadOptions::class(class)).unwrap_or_else(|e| panic!("{} {class:?}: {e}", pv.name()));
            assert_eq!(
                reading.data_type.class(),
                if *native == NativeType::Enum && class == DbrClass::Graphic { DbrClass::Graphic } else { class },
                "{}",
                pv.name()
            );
            assert_eq!(reading.value().native_type(), *native, "{} {class:?}", pv.name());
            match (class, reading.metadata()) {
                (DbrClass::Plain, Metadata::None) => {}
                (DbrClass::Status, Metadata::Status(_)) => {}
                (DbrClass::Time, Metadata::Time { stamp, .. }) => {
                    assert!(stamp.to_system_time() > std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
                }
                (DbrClass::Graphic | DbrClass::Control, Metadata::Enum { strings, .. }) => {
                    assert!(!strings.is_empty(), "{} has enum strings", pv.name());
                }
                (DbrClass::Graphic, Metadata::Graphic { .. }) | (DbrClass::Control, Metadata::Control { .. }) => {}
                (DbrClass::Graphic | DbrClass::Control, Metadata::Status(_)) if *native == NativeType::String => {}
                (class, metadata) => panic!("{} {class:?}: unexpected metadata {metadata:?}", pv.name()),
            }
        }
        // Subscribe with every class too: the first update arrives.
        for class in CLASSES {
            let sub = pv.subscribe(SubscribeOptions { class, ..Default::default() });
            let (tx, rx) = std::sync::mpsc::channel();
            let _handle = sub.add_callback(move |update| {
                let _ = tx.send(update.data_type.class());
            });
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("{} {class:?}: no update", pv.name()));
            assert!(
                got == class || (class == DbrClass::Graphic && *native == NativeType::Enum),
                "{got:?} vs {class:?}"
            );
        }
    }
}

#[test]
fn softioc_every_native_type_and_dbr_class() {
    check_every_type_and_class(ServerKind::SoftIoc);
}

#[test]
fn caproto_every_native_type_and_dbr_class() {
    check_every_type_and_class(ServerKind::Caproto);
}

fn check_arrays(kind: ServerKind) {
    let server = Peer::start(kind, "A:");
    let ctx = server.client();
    let names: &[(&str, usize)] = match kind {
        ServerKind::SoftIoc => &[("WF1", 1), ("WF1K", 1000), ("WF1M", 1_000_000)],
        ServerKind::Caproto => &[("double", 1), ("array1k", 1000), ("array1m", 1_000_000)],
    };
    for &(suffix, len) in names {
        let pv = ctx.get_pv(&server.pv(suffix));
        let reading = pv
            .read_with(ReadOptions { timeout: Some(Duration::from_secs(20)), notify: true, ..Default::default() })
            .unwrap();
        let values = reading.as_f64s().unwrap();
        assert_eq!(values.len(), len, "{suffix}");
        if len == 1_000_000 {
            assert_eq!(values[999_999], 0.5 * 999_999.0);
        }
        // Write a whole array back and read it.
        if len > 1 {
            let new: Vec<f64> = (0..len).map(|i| (i as f64) * 2.0).collect();
            pv.write_with(new.clone(), WriteOptions { timeout: Some(Duration::from_secs(20)), ..Default::default() })
                .unwrap();
            let back = pv
                .read_with(ReadOptions { timeout: Some(Duration::from_secs(20)), notify: true, ..Default::default() })
                .unwrap();
            assert_eq!(back.as_f64s().unwrap(), new);
        }
    }
}

#[test]
fn softioc_arrays_of_1_1k_1m() {
    check_arrays(ServerKind::SoftIoc);
}

#[test]
fn caproto_arrays_of_1_1k_1m() {
    check_arrays(ServerKind::Caproto);
}

fn check_writes(kind: ServerKind) {
    let server = Peer::start(kind, "W:");
    let ctx = server.client();
    let (number, text, read_only) = match kind {
        ServerKind::SoftIoc => ("AO", "SO", "AI.NAME"),
        ServerKind::Caproto => ("double", "string", "readonly"),
    };
    let pv = ctx.get_pv(&server.pv(number));
    pv.write(12.5).unwrap();
    assert_eq!(pv.read().unwrap().as_f64s().unwrap(), vec![12.5]);
    // Without notify: complete once sent; the value lands shortly after.
    pv.write_with(-3.0, WriteOptions { notify: false, ..Default::default() }).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pv.read().unwrap().as_f64s().unwrap() != vec![-3.0] {
        assert!(Instant::now() < deadline, "write without notify never landed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pv = ctx.get_pv(&server.pv(text));
    pv.write("pvloom").unwrap();
    assert_eq!(pv.read().unwrap().as_strings(), vec!["pvloom".to_owned()]);

    let ro = ctx.get_pv(&server.pv(read_only));
    ro.wait_for_connection(None).unwrap();
    assert!(!ro.access_rights().can_write());
    match ro.write(1.0) {
        Err(CaError::NoWriteAccess { name }) => assert_eq!(name, server.pv(read_only)),
        other => panic!("write to a read-only PV: {other:?}"),
    }
}

#[test]
fn softioc_write_with_and_without_notify_and_read_only() {
    check_writes(ServerKind::SoftIoc);
}

#[test]
fn caproto_write_with_and_without_notify_and_read_only() {
    check_writes(ServerKind::Caproto);
}

#[test]
fn missing_pv_times_out_naming_it() {
    let server = Peer::start(ServerKind::Caproto, "M:");
    let ctx = server.client();
    let pv = ctx.get_pv("does:not:exist");
    let start = Instant::now();
    match pv.read_with(ReadOptions { timeout: Some(Duration::from_millis(500)), notify: true, ..Default::default() }) {
        Err(err @ (CaError::ConnectionTimeout { .. } | CaError::Timeout { .. })) => {
            assert!(err.to_string().contains("does:not:exist"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    match pv.wait_for_connection(Some(Duration::from_millis(200))) {
        Err(CaError::ConnectionTimeout { name, .. }) => assert_eq!(name, "does:not:exist"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn thousand_pvs_from_one_get_pvs() {
    let server = Peer::start(ServerKind::SoftIoc, "K:");
    let ctx = server.client();
    let names: Vec<String> = (0..1000).map(|i| server.pv(&format!("N{i}"))).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let start = Instant::now();
    let pvs = ctx.get_pvs(&refs);
    for pv in &pvs {
        pv.wait_for_connection(Some(Duration::from_secs(20))).unwrap();
    }
    let connected = start.elapsed();
    let pending: Vec<_> =
        pvs.iter().map(|pv| pv.read_async(ReadOptions { notify: true, ..Default::default() })).collect();
    for (i, reading) in pending.into_iter().enumerate() {
        let reading = reading.wait_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(reading.as_f64s().unwrap(), vec![i as f64]);
    }
    eprintln!("1000 PVs connected in {connected:?}");
    assert_eq!(ctx.servers().len(), 1, "one circuit for all");
}

fn check_restart(kind: ServerKind) {
    let port = support::free_port();
    let repeater = support::free_udp_port();
    let mut server = Peer::start_on(kind, "R:", port, repeater);
    let ctx = pvloom_ca::client::Context::builder().config(support::client_config(port, repeater)).build().unwrap();
    let name = server.pv(if kind == ServerKind::SoftIoc { "AO" } else { "double" });
    let pv = ctx.get_pv(&name);
    pv.wait_for_connection(Some(Duration::from_secs(10))).unwrap();
    let states = Arc::new(Mutex::new(Vec::new()));
    let s = states.clone();
    pv.add_connection_callback(move |_, state| s.lock().push(state));
    let updates = Arc::new(Mutex::new(Vec::new()));
    let u = updates.clone();
    let sub = pv.subscribe(SubscribeOptions::default());
    let _keep = sub.add_callback(move |update| u.lock().extend(update.as_f64s().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while updates.lock().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!updates.lock().is_empty(), "first update");

    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pv.connected() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!pv.connected(), "noticed the server's death");
    drop(server);
    let server = Peer::start_on(kind, "R:", port, repeater);
    pv.wait_for_connection(Some(Duration::from_secs(30))).unwrap();
    let before = updates.lock().len();
    pv.write(77.0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !updates.lock()[before..].contains(&77.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(updates.lock()[before..].contains(&77.0), "subscription resumed unaided: {:?}", updates.lock());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        states.lock().as_slice(),
        &[ConnectionState::Disconnected, ConnectionState::Connected],
        "connection callbacks"
    );
    drop(server);
}

#[test]
fn softioc_restart_reconnects_and_resumes_subscriptions() {
    check_restart(ServerKind::SoftIoc);
}

#[test]
fn caproto_restart_reconnects_and_resumes_subscriptions() {
    check_restart(ServerKind::Caproto);
}

#[test]
fn events_off_and_on() {
    let server = Peer::start(ServerKind::SoftIoc, "E:");
    let ctx = server.client();
    let pv = ctx.get_pv(&server.pv("COUNTER"));
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let sub = pv.subscribe(SubscribeOptions::default());
    let _handle = sub.add_callback(move |_| {
        s.fetch_add(1, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(700));
    assert!(seen.load(Ordering::SeqCst) >= 3, "COUNTER updates at 10 Hz");
    ctx.events_off();
    std::thread::sleep(Duration::from_millis(300));
    let paused_at = seen.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    assert!(seen.load(Ordering::SeqCst) <= paused_at + 1, "no updates while events are off");
    ctx.events_on();
    std::thread::sleep(Duration::from_millis(700));
    assert!(seen.load(Ordering::SeqCst) >= paused_at + 3, "updates resume after events_on");
}

#[test]
fn go_idle_then_read_reconnects() {
    let server = Peer::start(ServerKind::Caproto, "I:");
    let ctx = server.client();
    let pv = ctx.get_pv(&server.pv("long"));
    assert_eq!(pv.read().unwrap().as_f64s().unwrap(), vec![42.0]);
    pv.go_idle();
    assert!(!pv.connected());
    assert_eq!(pv.read().unwrap().as_f64s().unwrap(), vec![42.0]);
    assert!(pv.connected());
}

#[test]
fn flood_keeps_memory_bounded_and_newest_value_arrives() {
    let server = Peer::start(ServerKind::Caproto, "F:");
    let ctx = server.client_with(1);
    let flood = ctx.get_pv(&server.pv("flood"));
    let rate = ctx.get_pv(&server.pv("flood_rate"));
    let last = Arc::new(Mutex::new(0.0f64));
    let calls = Arc::new(AtomicU64::new(0));
    let (l, c) = (last.clone(), calls.clone());
    let sub = flood.subscribe(SubscribeOptions { class: DbrClass::Plain, ..Default::default() });
    // A deliberately slow consumer: 1 ms per update.
    let _handle = sub.add_callback(move |update| {
        std::thread::sleep(Duration::from_millis(1));
        *l.lock() = update.as_f64s().unwrap()[0];
        c.fetch_add(1, Ordering::Relaxed);
    });
    flood.wait_for_connection(None).unwrap();
    let rss_before = support::rss_bytes();
    rate.write(20_000.0).unwrap();
    let mut peak = rss_before;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(support::rss_bytes());
    }
    rate.write(0.0).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let newest = flood.read().unwrap().as_f64s().unwrap()[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    while *last.lock() != newest && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(*last.lock(), newest, "the newest value arrives");
    let growth = peak.saturating_sub(rss_before);
    eprintln!(
        "flood: {} received, {} callbacks, RSS growth {} KiB",
        sub.received(),
        calls.load(Ordering::Relaxed),
        growth / 1024
    );
    assert!(growth < 100 * 1024 * 1024, "RSS grew by {growth} bytes");
}

#[test]
fn would_deadlock_in_inline_callback() {
    let server = Peer::start(ServerKind::Caproto, "D:");
    let ctx = server.client_with(0);
    let pv = ctx.get_pv(&server.pv("double"));
    pv.wait_for_connection(None).unwrap();
    let _ = (Value::Double(vec![]), DbrType::Double);
    // `then` runs the callback on this thread when the read finished first (this thread
    // was preempted between the two calls): only a callback the I/O thread ran counts.
    for _attempt in 0..20 {
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = pv.clone();
        pv.read_async(ReadOptions { notify: true, ..Default::default() }).then(move |_| {
            let on_io_thread = pvloom_core::is_io_thread();
            let _ = tx.send((on_io_thread, inner.read().map(|_| ())));
        });
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            (true, Err(CaError::Core(pvloom_core::Error::WouldDeadlock))) => return,
            (true, other) => panic!("a blocking read on the I/O thread: {other:?}"),
            (false, r) => assert!(r.is_ok(), "{r:?}"),
        }
    }
    panic!("the read always finished before its callback was registered");
}

#[test]
fn name_server_search_over_tcp() {
    let server = Peer::start(ServerKind::SoftIoc, "NS:");
    let mut config = support::client_config(server.port, server.repeater_port);
    // No UDP destinations at all: only EPICS_CA_NAME_SERVERS can find the PV.
    config.addr_list.clear();
    config.name_servers = vec![std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, server.port)];
    let ctx = pvloom_ca::client::Context::builder().config(config).build().unwrap();
    let pv = ctx.get_pv(&server.pv("AI"));
    assert_eq!(pv.read().unwrap().as_f64s().unwrap(), vec![1.5]);
}

/// A name searched for long enough that its backoff reached seconds is found within
/// moments of its server starting: rsrv's beacons reach the client through the
/// in-process repeater, and the new server is a beacon anomaly that re-searches now.
#[test]
fn beacon_anomaly_from_a_new_server_searches_at_once() {
    let port = support::free_port();
    let repeater = support::free_udp_port();
    let ctx = pvloom_ca::client::Context::builder().config(support::client_config(port, repeater)).build().unwrap();
    let pv = ctx.get_pv("LATE:AI");
    // Searches go out at about 0, 0.06, 0.2, 0.4, 1, 2, 4, 8.1 and 16.3 s: started at
    // 9 s, the server is up around 11 s, five seconds before the next scheduled search.
    std::thread::sleep(Duration::from_secs(9));
    assert!(!pv.connected());
    let server = Peer::start_on(ServerKind::SoftIoc, "LATE:", port, repeater);
    let started = Instant::now();
    pv.wait_for_connection(Some(Duration::from_secs(10))).unwrap();
    let waited = started.elapsed();
    eprintln!("connected {waited:?} after the server was up");
    assert!(waited < Duration::from_millis(1500), "found by the beacon anomaly, not the backoff: {waited:?}");
    drop(server);
}
