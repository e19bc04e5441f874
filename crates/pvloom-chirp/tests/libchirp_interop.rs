//! The wire against the real libchirp 1.2 (PyPI `libchirp` 1.2.1b3, its pool API):
//! a [`Connection`] on a plain blocking socket talks to a Python libchirp node, both
//! directions, synchronous and asynchronous.
//!
//! The interpreter comes from `PVLOOM_CHIRP_PYTHON`, else the workspace's
//! `.venv/bin/python` (which `./test.sh` fills). Without libchirp the tests fail with
//! the command that installs it: a wire test that did not run proves nothing.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pvloom_chirp::wire::Handshake;
use pvloom_chirp::{Config, ConnEvent, Connection, Identity, Outgoing};
use pvloom_core::bytes::BytesMut;
use pvloom_core::endpoint::StreamEndpoint;

mod support;

use support::{Process, free_port, python, script};

fn config(synchronous: bool) -> Config {
    Config { synchronous, port: 0, disable_encryption: true, ..Config::default() }
}

/// Drive `conn` on `stream` until `step` says done or `limit` passes.
fn drive(
    stream: &mut TcpStream,
    conn: &mut Connection,
    limit: Duration,
    mut step: impl FnMut(&mut Connection, Instant, ConnEvent) -> bool,
) {
    stream.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = BytesMut::new();
    loop {
        let now = Instant::now();
        assert!(now < end, "no result within {limit:?}");
        if conn.poll_timeout().is_some_and(|at| at <= now) {
            conn.handle_timeout(now);
        }
        conn.poll_transmit(now, 1 << 20, &mut out);
        if !out.is_empty() {
            stream.write_all(&out).unwrap();
            out.clear();
        }
        while let Some(event) = conn.poll_event() {
            if step(conn, now, event) {
                // What the last step queued (an ACK) still goes out.
                conn.poll_transmit(now, 1 << 20, &mut out);
                stream.write_all(&out).unwrap();
                return;
            }
        }
        if let Some(reason) = conn.poll_close() {
            panic!("connection closed: {reason}");
        }
        if conn.wants_input() {
            match stream.read(&mut buf) {
                Ok(0) => panic!("libchirp closed the connection"),
                Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn start_echo(python: &Path, port: u16, synchronous: bool, count: usize) -> (Process, Identity) {
    let mode = if synchronous { "sync" } else { "async" };
    let mut child = Command::new(python)
        .arg(script("echo_node.py"))
        .args([port.to_string(), mode.to_string(), count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the libchirp echo node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let hex = line.strip_prefix("ready ").unwrap_or_else(|| panic!("echo node said {line:?}")).trim();
    let mut identity = [0u8; 16];
    for (i, byte) in identity.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    (Process(child), Identity(identity))
}

fn pvloom_to_libchirp(synchronous: bool) {
    let python = python();
    let port = free_port();
    let count = 20;
    let (_echo, echo_identity) = start_echo(&python, port, synchronous, count);
    // Our public port: libchirp answers on this connection, keyed by it.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let our_port = listener.local_addr().unwrap().port();
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let limits = config(synchronous).limits().unwrap();
    let me = Identity::random();
    let mut conn = Connection::new(
        Instant::now(),
        Handshake { port: our_port, identity: me },
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        limits,
    );
    let mut sent = Vec::new();
    for i in 0..count {
        let message = Outgoing::new(format!("pvloom {i}").into_bytes());
        sent.push((message.identity, message.data.clone()));
        conn.send(Instant::now(), i as u64, message).unwrap();
    }
    let mut completed = 0;
    let mut echoed = Vec::new();
    drive(&mut stream, &mut conn, Duration::from_secs(20), |conn, now, event| {
        match event {
            ConnEvent::Handshake(h) => {
                assert_eq!(h.port, port, "libchirp announces its PORT");
                assert_eq!(h.identity, echo_identity, "and its identity");
            }
            ConnEvent::Sent { .. } => completed += 1,
            ConnEvent::Failed { error, .. } => panic!("send failed: {error}"),
            ConnEvent::Received(msg) => {
                assert_eq!(msg.remote_identity, echo_identity);
                assert_eq!(msg.wants_ack, synchronous, "libchirp asks for ACKs exactly in sync mode");
                echoed.push((msg.identity, msg.data.clone()));
                conn.release(now, msg.slot).unwrap();
            }
        }
        completed == count && echoed.len() == count
    });
    if synchronous {
        assert_eq!(echoed, sent, "every message echoed once, in order (one in flight), identity kept");
    } else {
        // libchirp's pool runs handlers on a thread pool: echoes may overtake each other.
        echoed.sort();
        sent.sort();
        assert_eq!(echoed, sent, "every message echoed once, identity kept");
    }
}

fn libchirp_to_pvloom(synchronous: bool) {
    let python = python();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let our_port = listener.local_addr().unwrap().port();
    let count = 20;
    let mode = if synchronous { "sync" } else { "async" };
    let sender = Command::new(&python)
        .arg(script("sender.py"))
        .args([free_port().to_string(), our_port.to_string(), mode.to_string(), count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the libchirp sender");
    let mut sender = Process(sender);
    listener.set_nonblocking(true).unwrap();
    let accept_by = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < accept_by => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the libchirp sender did not connect: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_nodelay(true).unwrap();
    let limits = config(synchronous).limits().unwrap();
    let mut conn = Connection::new(
        Instant::now(),
        Handshake { port: our_port, identity: Identity::random() },
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        limits,
    );
    let mut answered = 0;
    let mut acked = 0;
    drive(&mut stream, &mut conn, Duration::from_secs(20), |conn, now, event| {
        match event {
            ConnEvent::Received(msg) => {
                assert_eq!(msg.wants_ack, synchronous);
                conn.send(now, answered, Outgoing::reply(&msg, msg.data.clone())).unwrap();
                conn.release(now, msg.slot).unwrap();
                answered += 1;
            }
            ConnEvent::Sent { .. } => acked += 1,
            ConnEvent::Failed { error, .. } => panic!("echo failed: {error}"),
            ConnEvent::Handshake(_) => {}
        }
        acked == count
    });
    let status = {
        let child = &mut sender.0;
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            // Keep serving (ACKs, the sender's close) while it finishes.
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < end, "the libchirp sender did not finish");
            let mut buf = [0u8; 4096];
            stream.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            if let Ok(n) = stream.read(&mut buf) {
                conn.handle_input(Instant::now(), &buf[..n]);
            }
        }
    };
    let mut report = String::new();
    sender.0.stdout.take().unwrap().read_to_string(&mut report).unwrap();
    assert!(status.success(), "libchirp sender: {status}, said {report:?}");
    assert!(report.contains(&format!("answers {count} of {count} match")), "{report}");
}

#[test]
fn pvloom_sends_to_a_libchirp_echo_node_async() {
    pvloom_to_libchirp(false);
}

#[test]
fn pvloom_sends_to_a_libchirp_echo_node_sync() {
    pvloom_to_libchirp(true);
}

#[test]
fn a_libchirp_sender_talks_to_a_pvloom_echo_async() {
    libchirp_to_pvloom(false);
}

#[test]
fn a_libchirp_sender_talks_to_a_pvloom_echo_sync() {
    libchirp_to_pvloom(true);
}

// The node on the shared driver against libchirp.

fn node_config(synchronous: bool) -> pvloom_chirp::Config {
    pvloom_chirp::Config {
        synchronous,
        port: 0,
        bind_v4: Ipv4Addr::LOCALHOST,
        disable_encryption: true,
        ..Config::default()
    }
}

fn runtime() -> pvloom_core::Runtime {
    pvloom_core::Runtime::builder().io_threads(2).delivery(pvloom_core::Delivery::ordered(2)).build().unwrap()
}

const WAIT: Duration = Duration::from_secs(15);

fn node_to_libchirp(synchronous: bool) {
    let python = python();
    let port = free_port();
    let count = 50;
    let requests = 10;
    let (_echo, echo_identity) = start_echo(&python, port, synchronous, count + requests);
    let rt = runtime();
    let (tx, answers) = std::sync::mpsc::channel();
    let node = pvloom_chirp::Chirp::start(&rt.handle(), &node_config(synchronous), move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut sent = Vec::new();
    let sends: Vec<_> = (0..count)
        .map(|i| {
            let message = Outgoing::new(format!("node {i}").into_bytes());
            sent.push((message.identity, message.data.clone()));
            node.send(to, message)
        })
        .collect();
    for send in sends {
        send.wait_timeout(WAIT).unwrap().unwrap();
    }
    let mut echoed: Vec<_> = (0..count).map(|_| answers.recv_timeout(WAIT).expect("an echo from libchirp")).collect();
    echoed.sort_by_key(|m| sent.iter().position(|(id, _)| *id == m.identity));
    for (msg, (identity, data)) in echoed.iter().zip(&sent) {
        assert_eq!((&msg.identity, &msg.data), (identity, data));
        assert_eq!(msg.remote_identity, echo_identity);
        assert_eq!(msg.port, port, "libchirp's public port");
    }
    for i in 0..requests {
        let (sent, answer) = node.request(to, Outgoing::new(format!("request {i}").into_bytes()));
        sent.wait_timeout(WAIT).unwrap().unwrap();
        let answer = answer.wait_timeout(WAIT).unwrap().unwrap();
        assert_eq!(&answer.data[..], format!("request {i}").as_bytes());
    }
    node.stop();
}

fn libchirp_to_node(synchronous: bool) {
    let python = python();
    let rt = runtime();
    let (tx, inbox) = std::sync::mpsc::channel::<pvloom_chirp::Message>();
    let node = pvloom_chirp::Chirp::start(&rt.handle(), &node_config(synchronous), move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let count = 50;
    let mode = if synchronous { "sync" } else { "async" };
    let sender = Command::new(&python)
        .arg(script("sender.py"))
        .args([free_port().to_string(), node.port().to_string(), mode.to_string(), count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the libchirp sender");
    let mut sender = Process(sender);
    for _ in 0..count {
        let msg = inbox.recv_timeout(WAIT).expect("a message from libchirp");
        drop(node.send(msg.from(), msg.reply(msg.data.clone())));
    }
    let end = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = sender.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "the libchirp sender did not finish");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut report = String::new();
    sender.0.stdout.take().unwrap().read_to_string(&mut report).unwrap();
    assert!(status.success(), "libchirp sender: {status}, said {report:?}");
    assert!(report.contains(&format!("answers {count} of {count} match")), "{report}");
    node.stop();
}

#[test]
fn a_pvloom_node_sends_and_requests_to_libchirp_async() {
    node_to_libchirp(false);
}

#[test]
fn a_pvloom_node_sends_and_requests_to_libchirp_sync() {
    node_to_libchirp(true);
}

#[test]
fn a_libchirp_sender_talks_to_a_pvloom_node_async() {
    libchirp_to_node(false);
}

#[test]
fn a_libchirp_sender_talks_to_a_pvloom_node_sync() {
    libchirp_to_node(true);
}

/// Sizes across the edges: empty, one byte, one read buffer (64 KiB) and one past it,
/// several megabytes; each with upper-layer header bytes. libchirp echoes the message
/// it got (header and data), so every byte comes back through its reader and writer.
fn large_and_empty_through_libchirp(synchronous: bool) {
    let python = python();
    let port = free_port();
    let sizes = [0usize, 1, 64 * 1024, 64 * 1024 + 1, 3 * 1024 * 1024 + 7, 16 * 1024 * 1024];
    let (_echo, _) = start_echo(&python, port, synchronous, sizes.len());
    let rt = runtime();
    let (tx, answers) = std::sync::mpsc::channel();
    let node = pvloom_chirp::Chirp::start(&rt.handle(), &node_config(synchronous), move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    for (i, &size) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        let mut message = Outgoing::new(data.clone());
        message.header = format!("header {i}").into_bytes().into();
        let identity = message.identity;
        node.send(to, message).wait_timeout(WAIT).unwrap().unwrap();
        let echo = answers.recv_timeout(WAIT).expect("libchirp's echo");
        assert_eq!(echo.identity, identity);
        assert_eq!(&echo.header[..], format!("header {i}").as_bytes(), "size {size}");
        assert!(echo.data[..] == data[..], "size {size}: the data came back changed");
    }
    node.stop();
}

#[test]
fn large_and_empty_messages_round_trip_through_libchirp_async() {
    large_and_empty_through_libchirp(false);
}

#[test]
fn large_and_empty_messages_round_trip_through_libchirp_sync() {
    large_and_empty_through_libchirp(true);
}
