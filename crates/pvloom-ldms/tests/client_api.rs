//! The client API over real TCP against a scripted server that replays recorded server
//! bytes, and the endpoint's deadlines on a fake clock.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod replay_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use pvloom_core::{CloseReason, StreamEndpoint};
use pvloom_ldms::client::{
    ClientConn, ClientConnConfig, ClientEvent, LdmsError, OpError, Xprt, XprtConfig, XprtEventKind,
};
use pvloom_ldms::set::MetricValue;
use replay_util::{Ids, be32, load};

/// A server on 127.0.0.1 that answers each client frame with what the recorded server
/// sent after the recorded client's frame in that place.
fn scripted_server(scenario: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let cap = load(scenario, 0);
        let (mut sock, _) = listener.accept().unwrap();
        let mut ids = Ids::default();
        let mut buf = Vec::new();
        let mut seen = 0usize;
        let mut next_s2c = 0usize;
        let mut chunk = [0u8; 65536];
        loop {
            while buf.len() >= 8 && buf.len() >= be32(&buf, 4) as usize {
                let len = be32(&buf, 4) as usize;
                let f: Vec<u8> = buf.drain(..len).collect();
                if let Some(rec) = cap.c2s.get(seen) {
                    ids.learn(rec, &f);
                }
                seen += 1;
                while next_s2c < cap.s2c.len() && cap.s2c[next_s2c].1 <= seen {
                    let out = ids.rewrite(cap.s2c[next_s2c].0.clone());
                    if sock.write_all(&out).is_err() {
                        return;
                    }
                    next_s2c += 1;
                }
            }
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    addr
}

fn config() -> XprtConfig {
    XprtConfig { timeout: Duration::from_secs(5), ..XprtConfig::default() }
}

#[test]
fn blocking_dir_lookup_update_over_tcp() {
    let rt = pvloom_core::Runtime::new().unwrap();
    let x = Xprt::connect(&rt.handle(), scripted_server("ls-l-meminfo"), config()).unwrap();
    assert!(x.is_connected());
    let dir = x.dir().unwrap();
    assert_eq!(dir.len(), 1);
    assert_eq!(dir[0].name, "localhost1/meminfo");
    let sets = x.lookup("localhost1/meminfo", 0).unwrap();
    assert_eq!(sets.len(), 1);
    let s = &sets[0];
    assert_eq!((s.name(), s.schema(), s.card()), ("localhost1/meminfo", "meminfo", 57));
    assert_eq!(s.info_get("updt_hint_us"), Some("1000000:0"));
    let snap = s.update().unwrap();
    assert!(s.is_consistent() && snap.is_consistent());
    assert_eq!(s.data_gn(), snap.data_gn());
    assert_eq!(s.metric_by_name("MemTotal"), Some(MetricValue::U64(24684084)));
    assert_eq!(s.metric(0), Some(MetricValue::U64(1)), "component_id, a meta metric");
    assert_eq!(s.producer(), "localhost1");
    x.close();
}

#[test]
fn callbacks_cannot_block_and_panics_are_contained() {
    let rt = pvloom_core::Runtime::new().unwrap();
    let handle = rt.handle();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let (x, connected) = Xprt::connect_with(
        &handle,
        scripted_server("ls-l-meminfo"),
        config(),
        Some(Arc::new(move |_: &Xprt, e: &pvloom_ldms::client::XprtEvent| ev.lock().push(e.kind))),
    );
    connected.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let failures_before = handle.callback_failures();
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = Arc::new(AtomicBool::new(false));
    let p = panicked.clone();
    x.dir_cb(0, move |x, part| {
        // A blocking call on the I/O thread is refused at once.
        let blocked = x.dir();
        tx.send((part.is_ok(), blocked.err())).unwrap();
        p.store(true, Ordering::SeqCst);
        panic!("a callback that panics");
    });
    let (ok, err) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(ok);
    assert!(matches!(err, Some(LdmsError::Core(pvloom_core::Error::WouldDeadlock))), "{err:?}");
    // The panic was caught and counted; the I/O thread serves the next operation.
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.callback_failures() == failures_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(panicked.load(Ordering::SeqCst));
    assert_eq!(handle.callback_failures(), failures_before + 1);
    let sets = x.lookup("localhost1/meminfo", 0).unwrap();
    assert_eq!(sets[0].update().unwrap().data_gn(), sets[0].data_gn());
    x.close();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !events.lock().contains(&XprtEventKind::Disconnected) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*events.lock(), vec![XprtEventKind::Connected, XprtEventKind::Disconnected]);
}

#[test]
fn connect_refused_is_an_error() {
    let rt = pvloom_core::Runtime::new().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let r = Xprt::connect(&rt.handle(), port, config());
    assert!(matches!(r, Err(LdmsError::Connect(_))), "{r:?}");
}

/// An endpoint after the recorded handshake.
fn connected(now: Instant) -> ClientConn {
    let cap = load("ls-l-meminfo", 0);
    let mut c = ClientConn::new(now, ClientConnConfig::default());
    c.handle_input(now, &cap.s2c[0].0);
    assert!(matches!(c.poll_event(), Some(ClientEvent::Connected { .. })));
    let mut out = BytesMut::new();
    c.poll_transmit(now, usize::MAX, &mut out);
    assert_eq!(out.len(), 124, "CONNECT and ACK_ACCEPTED");
    c
}

#[test]
fn a_server_that_never_answers_times_out() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    assert_eq!(c.poll_timeout(), None, "idle: no timer");
    let op = c.dir(t0, 0, Some(Duration::from_secs(2))).unwrap();
    let lk = c.lookup(t0, "x", 0, Some(Duration::from_secs(3))).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    c.handle_timeout(t0 + Duration::from_secs(1));
    assert!(c.poll_event().is_none());
    c.handle_timeout(t0 + Duration::from_secs(2));
    match c.poll_event() {
        Some(ClientEvent::Dir { op: o, result: Err(OpError::TimedOut(d)) }) => {
            assert_eq!((o, d), (op, Duration::from_secs(2)));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    c.handle_timeout(t0 + Duration::from_secs(4));
    assert!(matches!(c.poll_event(), Some(ClientEvent::Lookup { op, result: Err(OpError::TimedOut(_)) }) if op == lk));
    assert_eq!(c.poll_timeout(), None);
    // A late answer to the timed-out DIR is dropped, not a protocol error.
    let mut late = BytesMut::new();
    let reply = pvloom_ldms::request::Reply::new(
        op.0,
        0,
        pvloom_ldms::request::dir::dir_reply(&b"{ \"directory\" : []}"[..], false),
    );
    reply.encode(&mut late);
    let mut frame = BytesMut::new();
    pvloom_ldms::zap::Frame::new(9, pvloom_ldms::zap::Msg::SendRecv(late.freeze())).encode(&mut frame);
    c.handle_input(t0 + Duration::from_secs(5), &frame);
    assert!(c.poll_event().is_none());
    assert!(c.poll_close().is_none());
    // An answer nobody asked for closes the connection.
    let mut bogus = BytesMut::new();
    pvloom_ldms::request::Reply::new(
        0x4242,
        0,
        pvloom_ldms::request::dir::dir_reply(&b"{ \"directory\" : []}"[..], false),
    )
    .encode(&mut bogus);
    let mut frame = BytesMut::new();
    pvloom_ldms::zap::Frame::new(10, pvloom_ldms::zap::Msg::SendRecv(bogus.freeze())).encode(&mut frame);
    c.handle_input(t0 + Duration::from_secs(5), &frame);
    assert!(matches!(c.poll_close(), Some(CloseReason::Protocol(_))));
}

#[test]
fn disconnect_fails_pending_operations() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    let d = c.dir(t0, 0, None).unwrap();
    let l = c.lookup(t0, "localhost1/meminfo", 0, None).unwrap();
    c.handle_closed(t0, &CloseReason::PeerClosed);
    let evs: Vec<ClientEvent> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        matches!(&evs[0], ClientEvent::Dir { op, result: Err(OpError::Disconnected(why)) } if *op == d && why.contains("peer closed"))
    );
    assert!(matches!(&evs[1], ClientEvent::Lookup { op, result: Err(OpError::Disconnected(_)) } if *op == l));
    assert!(matches!(&evs[2], ClientEvent::Closed { was_connected: true, .. }));
    assert_eq!(evs.len(), 3);
    assert_eq!(c.poll_timeout(), None);
    assert!(matches!(c.dir(t0, 0, None), Err(OpError::NotConnected)));
}

#[test]
fn handshake_deadline() {
    let t0 = Instant::now();
    let mut c = ClientConn::new(t0, ClientConnConfig::default());
    assert!(matches!(c.dir(t0, 0, None), Err(OpError::NotConnected)));
    let d = c.poll_timeout().unwrap();
    c.handle_timeout(d);
    assert!(matches!(c.poll_close(), Some(CloseReason::TimedOut(_))));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Random bytes after the handshake, or a recorded stream with bytes flipped, never
    /// panic the endpoint.
    #[test]
    fn random_server_bytes_never_panic(
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        flips in proptest::collection::vec((0usize..38_188, proptest::prelude::any::<u8>()), 0..8),
        cut in 0usize..38_188,
    ) {
        let t0 = Instant::now();
        let mut c = connected(t0);
        let _ = c.dir(t0, 0, None);
        let _ = c.lookup(t0, "localhost1/.*", 2, None);
        c.handle_input(t0, &junk);
        while c.poll_event().is_some() {}
        let mut c = connected(t0);
        let _ = c.dir(t0, 0, None);
        let mut s2c = std::fs::read(common::root().join("python-api/s2c.bin")).unwrap();
        for (at, b) in flips {
            if at < s2c.len() { s2c[at] ^= b; }
        }
        let cut = cut.min(s2c.len());
        c.handle_input(t0, &s2c[88..cut.max(88)]);
        c.handle_timeout(t0 + Duration::from_secs(100));
        while c.poll_event().is_some() {}
        c.handle_closed(t0, &CloseReason::PeerClosed);
        while c.poll_event().is_some() {}
    }
}
