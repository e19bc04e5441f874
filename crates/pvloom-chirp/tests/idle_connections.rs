//! Bad input at scale: 10 000 connections that send nothing, not even a handshake,
//! against a node on virtual time. The node stays responsive to a real sender while
//! they are open, holds little memory for them, and closes every one at the handshake
//! (connect) timeout, 2 x TIMEOUT of virtual time, and not before.
//!
//! The idle clients are a child process (`tests/interop/idle_clients.py`, plain Python
//! sockets), so that each side's file descriptors stay within RLIMIT_NOFILE: this
//! process raises its soft limit to the hard one and uses fewer connections if even
//! that is too low (the count used is printed). The node spends one descriptor per
//! connection, its socket.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pvloom_chirp::{Chirp, Config, Outgoing};
use pvloom_core::{Delivery, Runtime};

mod support;

use support::{Process, VirtualTime, python, script};

const WANTED: usize = 10_000;
const WAIT: Duration = Duration::from_secs(15);

/// Raise the soft RLIMIT_NOFILE to the hard one; the connections that then fit.
fn connections_that_fit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    // Each accepted connection costs this process one descriptor, its socket. Room is
    // left for the runtimes and the test harness.
    let fit = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX).saturating_sub(512);
    let count = WANTED.min(fit);
    if count < WANTED {
        eprintln!("RLIMIT_NOFILE hard limit {}: {count} idle connections instead of {WANTED}", limit.rlim_max);
    }
    assert!(count >= 1000, "RLIMIT_NOFILE {} leaves too few connections to test", limit.rlim_max);
    count
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn config() -> Config {
    Config { port: 0, bind_v4: Ipv4Addr::LOCALHOST, disable_encryption: true, ..Config::default() }
}

/// The next line from the child that starts with `prefix`, within `limit`.
fn line(lines: &mpsc::Receiver<String>, prefix: &str, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.trim().to_string());
                }
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn ten_thousand_silent_connections_are_closed_at_the_handshake_timeout_while_a_sender_is_served() {
    let count = connections_that_fit();
    let vt = VirtualTime::new(2);
    let node = Chirp::start(&vt.runtime.handle(), &config(), |_| {}).unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, node.port()));
    let limits = config().limits().unwrap();
    let before = resident_bytes();
    let mut child = Command::new(python())
        .arg(script("idle_clients.py"))
        .args([node.port().to_string(), count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the idle clients");
    let stdout = child.stdout.take().unwrap();
    let _clients = Process(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let connected = line(&lines, "connected ", WAIT).expect("the idle clients connected");
    assert_eq!(connected, count.to_string());
    // Accepted by the node, not only queued by the kernel: each got the node's
    // handshake. One accepted later would get a later deadline.
    let greeted = line(&lines, "greeted ", WAIT).expect("the node's handshake on every idle connection");
    assert_eq!(greeted, count.to_string());

    // A real sender on its own (real-time) runtime is served meanwhile.
    let rt = Runtime::builder().io_threads(1).delivery(Delivery::ordered(1)).build().unwrap();
    let sender = Chirp::start(&rt.handle(), &config(), |_| {}).unwrap();
    let start = Instant::now();
    for i in 0..20 {
        sender.send_wait(to, Outgoing::new(format!("{i}").into_bytes())).unwrap();
    }
    let served = start.elapsed();
    assert!(served < Duration::from_secs(5), "20 sync sends took {served:?} beside {count} idle connections");
    let grown = resident_bytes().saturating_sub(before);
    // Each idle connection is a decoder with nothing in it and an empty send queue:
    // a few KiB, never a read buffer of its own.
    assert!(grown < count * 16 * 1024, "{} KiB more for {count} idle connections", grown / 1024);

    let timeout = limits.connect_timeout;
    vt.advance(timeout - Duration::from_millis(100), 10);
    assert_eq!(line(&lines, "closed ", Duration::from_millis(300)), None, "closed before the handshake timeout");
    assert_eq!(node.stats().connections_closed, 0);
    vt.advance(Duration::from_millis(200), 2);
    let done = line(&lines, "done ", WAIT).unwrap_or_else(|| {
        panic!("no report from the idle clients: {:?}, {:?}", node.stats(), lines.try_iter().collect::<Vec<_>>())
    });
    assert_eq!(done, count.to_string(), "every idle connection closed");
    let stats = node.stats();
    assert!(stats.connections_closed >= count as u64 && stats.connections_lost >= count as u64, "{stats:?}");
    // The sender's connection finished its handshake and is untouched.
    sender.send_wait(to, Outgoing::new(&b"still here"[..])).unwrap();
    assert_eq!(node.stats().connections_opened, 1, "only the sender ever shook hands");
}
