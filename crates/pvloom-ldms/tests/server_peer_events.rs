//! The set server's transport events and peer handles over real TCP on 127.0.0.1: a
//! pvloom client connects to a pvloom server made with `bind_with_events`, and each side
//! sends the other application messages (SEND_MSG).

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pvloom_core::{Delivery, Runtime};
use pvloom_ldms::client::{Xprt, XprtConfig, XprtEvent, XprtEventKind};
use pvloom_ldms::request::{self, Message, Request, RequestBody};
use pvloom_ldms::server::{
    LdmsServer, Peer, PeerEvent, SEND_MSG_MAX, SendError, ServerConfig, ServerConn, SetRegistry,
};

const WAIT: Duration = Duration::from_secs(5);

/// A server whose callback forwards every event, and panics on the message `panic`.
fn server(rt: &Runtime) -> (LdmsServer, Receiver<(Peer, PeerEvent)>) {
    let (tx, rx) = mpsc::channel();
    let tx = parking_lot::Mutex::new(tx);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = LdmsServer::bind_with_events(rt.handle(), addr, SetRegistry::new(), ServerConfig::default(), {
        move |peer, ev| {
            let boom = ev == PeerEvent::Recv(Bytes::from_static(b"panic"));
            let _ = tx.lock().send((peer.clone(), ev));
            assert!(!boom, "a server callback panics");
        }
    })
    .unwrap();
    (server, rx)
}

fn client(rt: &Runtime, addr: SocketAddr) -> (Xprt, Receiver<XprtEvent>) {
    let (tx, rx) = mpsc::channel();
    let tx = parking_lot::Mutex::new(tx);
    let x = Xprt::connect_cb(&rt.handle(), addr, XprtConfig::default(), move |_, ev| {
        let _ = tx.lock().send(ev.clone());
    });
    (x, rx)
}

fn next<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(WAIT).expect("an event in time")
}

fn client_event(rx: &Receiver<XprtEvent>, kind: XprtEventKind) -> XprtEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let ev = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("client event");
        if ev.kind == kind {
            return ev;
        }
    }
}

fn lifecycle(rt: Runtime) {
    let (server, events) = server(&rt);
    let (x, client_events) = client(&rt, server.local_addr());
    client_event(&client_events, XprtEventKind::Connected);

    // Connected, with the client's address.
    let (peer, ev) = next(&events);
    assert_eq!(ev, PeerEvent::Connected);
    assert_eq!(peer.remote_addr().ip().to_string(), "127.0.0.1");
    assert_ne!(peer.remote_addr().port(), server.local_addr().port());
    assert_eq!(peer.local_addr(), Some(server.local_addr()));
    assert!(peer.is_connected());
    assert_eq!(server.peers().len(), 1);
    assert_eq!(server.peer(peer.id()).map(|p| p.remote_addr()), Some(peer.remote_addr()));

    // Client send -> server Recv with the same bytes, from the same peer.
    x.send(b"hello server");
    let (p, ev) = next(&events);
    assert_eq!(p.id(), peer.id());
    assert_eq!(ev, PeerEvent::Recv(Bytes::from_static(b"hello server")));
    let empty = Vec::new();
    x.send(&empty);
    assert_eq!(next(&events).1, PeerEvent::Recv(Bytes::new()));

    // Server send -> client RECV.
    peer.send(&b"hello client"[..]).unwrap();
    let big = vec![7u8; 200_000];
    peer.send(big.clone()).unwrap();
    let ev = client_event(&client_events, XprtEventKind::Recv);
    assert_eq!(ev.data.as_deref(), Some(&b"hello client"[..]));
    let ev = client_event(&client_events, XprtEventKind::Recv);
    assert_eq!(ev.data.as_deref(), Some(&big[..]));
    assert!(matches!(peer.send(vec![0u8; SEND_MSG_MAX + 1]), Err(SendError::TooLong { .. })));

    // A panicking callback is contained and reported; later events still arrive.
    let failures = rt.handle().containment().failures();
    x.send(b"panic");
    assert_eq!(next(&events).1, PeerEvent::Recv(Bytes::from_static(b"panic")));
    x.send(b"after");
    assert_eq!(next(&events).1, PeerEvent::Recv(Bytes::from_static(b"after")));
    let deadline = Instant::now() + WAIT;
    while rt.handle().containment().failures() == failures {
        assert!(Instant::now() < deadline, "the panic was not reported");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Client close -> server Disconnected, the handle is dead.
    x.close();
    let (p, ev) = next(&events);
    assert_eq!(p.id(), peer.id());
    assert!(matches!(ev, PeerEvent::Disconnected(_)), "{ev:?}");
    assert!(!peer.is_connected());
    assert_eq!(peer.send(&b"late"[..]), Err(SendError::NotConnected));
    assert!(server.peers().is_empty());
}

#[test]
fn connect_recv_send_panic_disconnect_inline() {
    lifecycle(Runtime::builder().io_threads(2).build().unwrap());
}

#[test]
fn connect_recv_send_panic_disconnect_ordered() {
    lifecycle(Runtime::builder().io_threads(2).delivery(Delivery::ordered(2)).build().unwrap());
}

#[test]
fn server_side_close_and_send_from_the_callback() {
    let rt = Runtime::builder().io_threads(2).build().unwrap();
    let (tx, events) = mpsc::channel();
    let tx = parking_lot::Mutex::new(tx);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // An echo server: every message goes back at once from inside the callback.
    let server = LdmsServer::bind_with_events(rt.handle(), addr, SetRegistry::new(), ServerConfig::default(), {
        move |peer: &Peer, ev: PeerEvent| {
            if let PeerEvent::Recv(data) = &ev {
                peer.send(data.clone()).unwrap();
            }
            let _ = tx.lock().send((peer.clone(), ev));
        }
    })
    .unwrap();
    let (x, client_events) = client(&rt, server.local_addr());
    client_event(&client_events, XprtEventKind::Connected);
    let (peer, ev) = next(&events);
    assert_eq!(ev, PeerEvent::Connected);
    for i in 0..20u8 {
        x.send(&[i; 3]);
    }
    for i in 0..20u8 {
        let ev = client_event(&client_events, XprtEventKind::Recv);
        assert_eq!(ev.data.as_deref(), Some(&[i; 3][..]));
    }
    peer.close();
    client_event(&client_events, XprtEventKind::Disconnected);
    let deadline = Instant::now() + WAIT;
    loop {
        if let (_, PeerEvent::Disconnected(_)) = next(&events) {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    assert!(!x.is_connected());
}

#[test]
fn plain_bind_still_takes_messages_and_has_peers() {
    let rt = Runtime::builder().io_threads(1).build().unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = LdmsServer::bind(rt.handle(), addr, SetRegistry::new(), ServerConfig::default()).unwrap();
    let (x, client_events) = client(&rt, server.local_addr());
    client_event(&client_events, XprtEventKind::Connected);
    x.send(b"nobody listens");
    let deadline = Instant::now() + WAIT;
    let peer = loop {
        if let Some(p) = server.peers().into_iter().next().filter(Peer::is_connected) {
            break p;
        }
        assert!(Instant::now() < deadline, "no connected peer");
        std::thread::sleep(Duration::from_millis(5));
    };
    peer.send(&b"still reaches the client"[..]).unwrap();
    let ev = client_event(&client_events, XprtEventKind::Recv);
    assert_eq!(ev.data.as_deref(), Some(&b"still reaches the client"[..]));
}

#[test]
fn send_msg_before_the_handshake_is_refused() {
    let mut conn = ServerConn::new(SetRegistry::new(), ServerConfig::default(), Instant::now());
    assert!(!conn.is_open());
    assert_eq!(conn.send_msg(Bytes::from_static(b"x")), Err(SendError::NotConnected));
    assert_eq!(SendError::NotConnected.errno(), 107);
}

/// The client's `send` and the server's parsing are the one `RequestBody::Send` codec;
/// its bytes are `ldms_xprt_send`'s: `hdr.xid` 0, `hdr.cmd` htonl(5), `hdr.len`
/// htonl(16 + 4 + n), `send.msg_len` htonl(n), then the message.
#[test]
fn send_msg_wire_format_is_ldms_xprt_send() {
    let msg = Bytes::from_static(b"abc");
    let mut b = BytesMut::new();
    Request::new(0, RequestBody::Send { msg: msg.clone() }).encode(&mut b);
    let mut want = vec![0u8; 8];
    want.extend_from_slice(&5u32.to_be_bytes());
    want.extend_from_slice(&23u32.to_be_bytes());
    want.extend_from_slice(&3u32.to_be_bytes());
    want.extend_from_slice(b"abc");
    assert_eq!(&b[..], &want[..]);
    match request::decode(&b.freeze()).unwrap() {
        Message::Request(Request { xid: 0, body: RequestBody::Send { msg: got } }) => assert_eq!(got, msg),
        other => panic!("{other:?}"),
    }
}
