//! pvloom to pvloom when things go wrong, on real sockets (127.0.0.1, free ports): a
//! receiver killed mid-stream and restarted on its port (sync: no acknowledged message
//! lost or duplicated; async: what may have been lost is reported), and, on virtual
//! time, the reconnect block after a failure and a synchronous send to a receiver that
//! never releases.
//!
//! "Killed" is the receiver's runtime shut down at once: its sockets close under the
//! sender with unread data in them. A real SIGKILL of a process is in
//! `tests/libchirp_robustness.rs`, against libchirp.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::{Duration, Instant};

use pvloom_chirp::wire::{HANDSHAKE_LEN, HEADER_LEN, Handshake, WireHeader};
use pvloom_chirp::{Chirp, ChirpError, Config, Identity, Message, Outgoing, SendFailure};
use pvloom_core::{Delivery, Runtime};

mod support;

use support::{VirtualTime, free_port};

const WAIT: Duration = Duration::from_secs(15);

fn runtime() -> Runtime {
    Runtime::builder().io_threads(2).delivery(Delivery::ordered(2)).build().unwrap()
}

fn config(synchronous: bool) -> Config {
    Config { synchronous, port: 0, bind_v4: Ipv4Addr::LOCALHOST, disable_encryption: true, ..Config::default() }
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Warnings of the whole test binary, to check what the node reports.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_warnings() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt().with_writer(|| Capture).with_max_level(tracing::Level::WARN).with_ansi(false).init();
    });
}

fn logged() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

/// A receiver on `port` recording each message's data (a sync send completes when the
/// handler returned: auto-release).
fn recorder(rt: &Runtime, port: u16, synchronous: bool, log: &Arc<Mutex<Vec<String>>>) -> Chirp {
    let log = log.clone();
    Chirp::start(&rt.handle(), &Config { port, ..config(synchronous) }, move |msg| {
        log.lock().unwrap().push(String::from_utf8_lossy(&msg.data).into_owned());
    })
    .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < end, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn sync_stream_survives_a_receiver_killed_and_restarted_without_loss_or_duplicates() {
    let rt = runtime();
    let sender = Chirp::start(&rt.handle(), &config(true), |_| {}).unwrap();
    let port = free_port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let first_rt = runtime();
    let first = recorder(&first_rt, port, true, &log);
    let count = 300;
    let sends: Vec<_> = (0..count).map(|i| sender.send(at(port), Outgoing::new(format!("{i}").into_bytes()))).collect();
    wait_for("a third of the stream", || log.lock().unwrap().len() >= count / 3);
    first_rt.shutdown();
    drop(first);
    // Back on the same port at once; the sender reconnects after its 50-550 ms block.
    let second_rt = runtime();
    let _second = recorder(&second_rt, port, true, &log);
    let mut results = Vec::new();
    for send in sends {
        results.push(send.wait_timeout(WAIT).expect("every send completes, one way or the other"));
    }
    let received = log.lock().unwrap().clone();
    let mut times: HashMap<&str, usize> = HashMap::new();
    for data in &received {
        *times.entry(data.as_str()).or_default() += 1;
    }
    assert!(times.values().all(|&n| n == 1), "a message arrived twice: {times:?}");
    let order: Vec<usize> = received.iter().map(|d| d.parse().unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order across the restart: {order:?}");
    let mut failed = Vec::new();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(()) => assert_eq!(times.get(format!("{i}").as_str()), Some(&1), "message {i} acked but not received"),
            Err(ChirpError::Failed(SendFailure::ConnectionLost(_) | SendFailure::TimedOut(_))) => failed.push(i),
            Err(other) => panic!("message {i}: {other}"),
        }
    }
    // Failures are the message awaiting its ACK at the kill and one per refused
    // reconnect: few, and each one reported.
    assert!(failed.len() < count / 10, "{} failed: {failed:?}", failed.len());
    assert!(results[count - 1].is_ok(), "the stream continued to its end");
    let stats = sender.stats();
    assert!(stats.reconnects >= 1 && stats.connections_lost >= 1, "{stats:?}");
    assert_eq!(stats.possibly_lost, 0, "sync mode: nothing completes unacknowledged");
}

#[test]
fn async_sends_lost_with_a_killed_receiver_are_reported() {
    capture_warnings();
    let rt = runtime();
    let (tx, answers) = mpsc::channel();
    let sender = Chirp::start(&rt.handle(), &config(false), move |msg| {
        let _ = tx.send(msg.data);
    })
    .unwrap();
    let receiver_rt = runtime();
    let me: Arc<std::sync::OnceLock<Chirp>> = Arc::new(std::sync::OnceLock::new());
    let held: Arc<Mutex<Vec<Message>>> = Arc::new(Mutex::new(Vec::new()));
    let receiver = {
        let (me, held) = (me.clone(), held.clone());
        // Four slots, never released: it reads four messages, answers each (as
        // libchirp's pool does, holding the slot) and stops reading.
        let config = Config { max_slots: 4, auto_release: false, ..config(false) };
        Chirp::start(&receiver_rt.handle(), &config, move |msg| {
            let reply = msg.reply(msg.data.clone());
            let from = msg.from();
            // Held before answering: the answer is the test's sign that it is held.
            held.lock().unwrap().push(msg);
            if let Some(node) = me.get() {
                drop(node.send(from, reply));
            }
        })
        .unwrap()
    };
    let to = at(receiver.port());
    let _ = me.set(receiver);
    let count = 200;
    let sends: Vec<_> = (0..count).map(|i| sender.send(to, Outgoing::new(vec![i as u8; 1000]))).collect();
    for send in sends {
        // Asynchronous: complete once handed to the OS, read or not.
        send.wait_timeout(WAIT).unwrap().unwrap();
    }
    for _ in 0..4 {
        answers.recv_timeout(WAIT).expect("the receiver answers what it read");
    }
    assert_eq!(held.lock().unwrap().len(), 4, "four slots, then it stopped reading");
    let before = sender.stats();
    assert_eq!(before.possibly_lost, 0, "nothing reported while the connection lives");
    receiver_rt.shutdown();
    wait_for("the sender notices", || sender.stats().connections_lost >= 1);
    let stats = sender.stats();
    let lost = (count - 4) as u64;
    // The answers confirm the four read; the rest completed Ok and are reported.
    assert_eq!(stats.possibly_lost, lost, "{stats:?}");
    // The warning is written just after the counters move: wait for it (bounded).
    let expected = format!("{lost} asynchronous sends completed but were not seen read");
    let end = Instant::now() + WAIT;
    while !logged().contains(&expected) {
        assert!(Instant::now() < end, "no warning {expected:?} within {WAIT:?}: {}", logged());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Accept on `listener` within `limit` of real time.
fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    let end = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn the_reconnect_waits_50_to_550_ms_of_virtual_time_then_resumes_the_queue() {
    let vt = VirtualTime::new(2);
    let node = Chirp::start(&vt.runtime.handle(), &config(false), |_| {}).unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sends: Vec<_> =
        ["one", "two", "three"].iter().map(|d| node.send(at(port), Outgoing::new(d.as_bytes().to_vec()))).collect();
    // The first connection dies before its handshake: a failed connect, which fails one
    // message and blocks the remote.
    drop(accept_within(&listener, WAIT).expect("the first connect"));
    let mut sends = sends.into_iter();
    let first = sends.next().unwrap().wait_timeout(WAIT).unwrap();
    assert!(matches!(first, Err(ChirpError::Failed(SendFailure::ConnectionLost(_)))), "{first:?}");
    let lost_at = vt.runtime.now();
    // The node queued its reconnect timer before reporting the failure; a round on
    // every I/O thread lets it be armed at `lost_at`, before time moves.
    vt.advance(Duration::ZERO, 1);
    vt.advance(Duration::from_millis(49), 1);
    assert!(accept_within(&listener, Duration::from_millis(100)).is_none(), "reconnected within 49 ms");
    let mut stream = None;
    while vt.runtime.now() - lost_at < Duration::from_millis(560) {
        vt.advance(Duration::from_millis(5), 1);
        if let Some(s) = accept_within(&listener, Duration::from_millis(20)) {
            stream = Some(s);
            break;
        }
    }
    let waited = vt.runtime.now() - lost_at;
    let mut stream = stream.unwrap_or_else(|| panic!("no reconnect within {waited:?} of virtual time"));
    assert!(waited >= Duration::from_millis(50) && waited <= Duration::from_millis(555), "{waited:?}");
    assert_eq!(node.stats().reconnects, 1);
    // Speak chirp by hand: the node's handshake, ours, then the two queued messages.
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(&Handshake { port, identity: Identity::random() }.encode()).unwrap();
    let mut hello = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut hello).unwrap();
    assert_eq!(Handshake::decode(&hello).unwrap().identity, node.identity());
    for want in ["two", "three"] {
        let mut head = [0u8; HEADER_LEN];
        stream.read_exact(&mut head).unwrap();
        let header = WireHeader::decode(&head).unwrap();
        let mut body = vec![0u8; header.body_len() as usize];
        stream.read_exact(&mut body).unwrap();
        assert_eq!(body, want.as_bytes(), "the queue resumes in order");
    }
    for send in sends {
        send.wait_timeout(WAIT).unwrap().unwrap();
    }
}

#[test]
fn a_sync_send_to_a_receiver_that_never_releases_times_out_after_timeout_of_virtual_time() {
    let vt = VirtualTime::new(2);
    let (tx, inbox) = mpsc::channel();
    let holder = Config { auto_release: false, ..config(true) };
    let receiver = Chirp::start(&vt.runtime.handle(), &holder, move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let sender = Chirp::start(&vt.runtime.handle(), &config(true), |_| {}).unwrap();
    let send = sender.send(at(receiver.port()), Outgoing::new(&b"hold me"[..]));
    let _held = inbox.recv_timeout(WAIT).expect("the receiver has it");
    vt.advance(Duration::from_millis(4990), 10);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!send.is_ready(), "completed before TIMEOUT");
    vt.advance(Duration::from_millis(20), 2);
    let result = send.wait_timeout(WAIT).unwrap();
    assert!(
        matches!(result, Err(ChirpError::Failed(SendFailure::TimedOut(t))) if t == Duration::from_secs(5)),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().to_string(), "timed out after 5s");
}

#[test]
fn a_sync_send_with_a_short_timeout_fails_on_real_sockets() {
    let rt = runtime();
    let short = Config { timeout: Duration::from_millis(200), reuse_time: Duration::from_secs(1), ..config(true) };
    let (tx, inbox) = mpsc::channel();
    let receiver = Chirp::start(&rt.handle(), &Config { auto_release: false, ..short.clone() }, move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let sender = Chirp::start(&rt.handle(), &short, |_| {}).unwrap();
    let start = Instant::now();
    let result = sender.send_wait(at(receiver.port()), Outgoing::new(&b"hold me"[..]));
    let took = start.elapsed();
    assert!(matches!(result, Err(ChirpError::Failed(SendFailure::TimedOut(_)))), "{result:?}");
    assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2), "{took:?}");
    assert!(inbox.try_recv().is_ok(), "it was delivered, never released");
}

/// The number a message of [`numbered`] carries.
fn number(msg: &Message) -> usize {
    let text = String::from_utf8_lossy(&msg.data);
    text.split(' ').next().unwrap().parse().unwrap()
}

fn numbered(i: usize, size: usize) -> Outgoing {
    let mut data = format!("{i} ").into_bytes();
    data.resize(size, b' ');
    Outgoing::new(data)
}

#[test]
fn async_sends_not_begun_when_the_receiver_dies_go_to_the_next_connection_in_order() {
    let rt = runtime();
    let sender = Chirp::start(&rt.handle(), &config(false), |_| {}).unwrap();
    let port = free_port();
    let first_received = Arc::new(Mutex::new(Vec::new()));
    let first_rt = runtime();
    let first = {
        let (received, held) = (first_received.clone(), Arc::new(Mutex::new(Vec::new())));
        // One slot, never released: it stops reading after the first message, and what
        // follows fills the socket buffers and then the sender's connection queue.
        let config = Config { port, max_slots: 1, auto_release: false, ..config(false) };
        Chirp::start(&first_rt.handle(), &config, move |msg| {
            received.lock().unwrap().push(number(&msg));
            held.lock().unwrap().push(msg);
        })
        .unwrap()
    };
    let count = 80;
    let sends: Vec<_> = (0..count).map(|i| sender.send(at(port), numbered(i, 256 * 1024))).collect();
    wait_for("the first message", || !first_received.lock().unwrap().is_empty());
    // Give the hand-offs time to stop where the buffers are full.
    std::thread::sleep(Duration::from_millis(300));
    first_rt.shutdown();
    drop(first);
    // The node counts the loss after the connection's last events: what is not complete
    // now was never handed off on it (no receiver is up yet to take a reconnect).
    wait_for("the sender notices", || sender.stats().connections_lost >= 1);
    let waiting: Vec<usize> = (0..count).filter(|&i| !sends[i].is_ready()).collect();
    assert!(waiting.len() > 10, "the receiver's buffers took almost everything: {} waiting", waiting.len());
    let second_received = Arc::new(Mutex::new(Vec::new()));
    let second_rt = runtime();
    let _second = {
        let received = second_received.clone();
        Chirp::start(&second_rt.handle(), &Config { port, ..config(false) }, move |msg| {
            received.lock().unwrap().push(number(&msg));
        })
        .unwrap()
    };
    let results: Vec<_> = sends.into_iter().map(|s| s.wait_timeout(WAIT).expect("every send completes")).collect();
    let mut failed = Vec::new();
    let mut delivered = Vec::new();
    for &i in &waiting {
        match &results[i] {
            Ok(()) => delivered.push(i),
            // The one half-written at the kill, or one failed by a refused reconnect.
            Err(ChirpError::Failed(SendFailure::ConnectionLost(_))) => failed.push(i),
            Err(other) => panic!("message {i}: {other}"),
        }
    }
    assert!(failed.len() <= 3, "{failed:?}");
    // Not handed off on the dead connection, so re-queued: every Ok is a delivery, and
    // they go in the order they were sent.
    wait_for("the re-queued messages", || second_received.lock().unwrap().len() >= delivered.len());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(*second_received.lock().unwrap(), delivered, "re-queued messages: all, once, in order");
    let first_received = first_received.lock().unwrap().clone();
    let lost = (0..count).filter(|i| results[*i].is_ok() && !first_received.contains(i) && !delivered.contains(i));
    let lost = lost.count() as u64;
    let stats = sender.stats();
    assert!(lost <= stats.possibly_lost, "{lost} lost silently: {stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
}

/// Read one chirp frame's body from a raw socket.
fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; HEADER_LEN];
    stream.read_exact(&mut head)?;
    let header = WireHeader::decode(&head).unwrap();
    let mut body = vec![0u8; header.body_len() as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

#[test]
fn what_a_replaced_connection_gives_back_goes_out_on_its_successor() {
    let rt = runtime();
    let node = Chirp::start(&rt.handle(), &config(false), |_| {}).unwrap();
    // A chirp peer by hand, at `port`: it takes the node's connection, stops reading it,
    // then connects to the node itself, so its connection replaces the first (the last
    // handshake wins), and resets the first with the node's messages still queued in it.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = Handshake { port, identity: Identity::random() };
    let count = 60;
    let sends: Vec<_> = (0..count).map(|i| node.send(at(port), numbered(i, 256 * 1024))).collect();
    let mut first = accept_within(&listener, WAIT).expect("the node connects");
    first.set_nonblocking(false).unwrap();
    first.write_all(&peer.encode()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(sends.iter().filter(|s| !s.is_ready()).count() > 10, "the first connection took everything");
    let mut second = TcpStream::connect(at(node.port())).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    second.write_all(&peer.encode()).unwrap();
    let mut hello = [0u8; HANDSHAKE_LEN];
    second.read_exact(&mut hello).unwrap();
    wait_for("the node's second handshake", || node.stats().connections_opened >= 2);
    // A new message takes the new connection once it replaced the first.
    let probe = node.send(at(port), Outgoing::new(&b"probe"[..]));
    assert_eq!(read_frame(&mut second).unwrap(), b"probe", "the second connection serves the remote");
    probe.wait_timeout(WAIT).unwrap().unwrap();
    // Closed with unread input: a reset, under the node's feet.
    drop(first);
    let mut got = Vec::new();
    while got.last() != Some(&(count - 1)) {
        match read_frame(&mut second) {
            Ok(body) => got.push(String::from_utf8_lossy(&body).split(' ').next().unwrap().parse::<usize>().unwrap()),
            Err(e) => panic!("after {got:?}, nothing more on the second connection: {e}"),
        }
    }
    // What the first connection had not begun, all of it, in order, to the end.
    let from = got[0];
    assert_eq!(got, (from..count).collect::<Vec<_>>(), "given back and sent on the successor");
    let mut lost = 0;
    for (i, send) in sends.into_iter().enumerate() {
        match send.wait_timeout(WAIT).unwrap() {
            Ok(()) if i < from => lost += 1,
            Ok(()) => {}
            // The one half written when the first connection was reset.
            Err(ChirpError::Failed(SendFailure::ConnectionLost(_))) if i + 1 == from => {}
            Err(other) => panic!("message {i}: {other}"),
        }
    }
    let stats = node.stats();
    assert!(lost <= stats.possibly_lost, "{lost} handed off on the reset connection, unreported: {stats:?}");
}

#[test]
fn a_message_above_the_receivers_limit_closes_its_connection_and_fails_the_sync_send() {
    let rt = runtime();
    let (tx, inbox) = mpsc::channel();
    let small = Config { max_msg_size: 1024, ..config(true) };
    let receiver = Chirp::start(&rt.handle(), &small, move |msg| {
        let _ = tx.send(msg.data);
    })
    .unwrap();
    let sender = Chirp::start(&rt.handle(), &config(true), |_| {}).unwrap();
    // The sender's own limit refuses at once what it could never send.
    let refused = Chirp::start(&rt.handle(), &small, |_| {}).unwrap();
    let result = refused.send_wait(at(receiver.port()), Outgoing::new(vec![0u8; 1025]));
    assert!(matches!(result, Err(ChirpError::Send(pvloom_chirp::SendError::TooLarge { .. }))), "{result:?}");
    // The receiver's limit: it closes the connection on the header (libchirp: ENOMEM).
    let result = sender.send_wait(at(receiver.port()), Outgoing::new(vec![0u8; 1025]));
    assert!(matches!(result, Err(ChirpError::Failed(SendFailure::ConnectionLost(_)))), "{result:?}");
    wait_for("the receiver's close", || receiver.stats().connections_lost >= 1);
    assert!(inbox.try_recv().is_err(), "nothing of it reached the application");
    // After the block, the next message goes on a new connection.
    sender.send_wait(at(receiver.port()), Outgoing::new(vec![1u8; 1024])).unwrap();
    assert_eq!(inbox.recv_timeout(WAIT).unwrap().len(), 1024);
    assert_eq!(sender.stats().reconnects, 1);
}
