//! The CA repeater on real sockets (127.0.0.1 only), and against peers we did not
//! write: caproto's threading client and libca (through pyepics), run from the
//! project's virtualenv (`./test.sh` creates it).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use pvloom_ca::proto::Command;
use pvloom_ca::repeater::{
    HostProbe, PortStatus, RepeaterConfig, RepeaterHandle, SystemProbe, spawn_repeater, spawn_repeater_with,
};
use pvloom_core::Runtime;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn runtime() -> Runtime {
    Runtime::builder().io_threads(1).name("rep-test").build().expect("runtime")
}

/// A repeater on a free port of 127.0.0.1 that checks its clients every 100 ms.
fn fast_repeater(runtime: &Runtime) -> RepeaterHandle {
    let config = RepeaterConfig { verify_interval: Duration::from_millis(100), ..RepeaterConfig::default() };
    spawn_repeater_with(runtime, SocketAddrV4::new(LOCALHOST, 0), config).expect("repeater")
}

fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind(SocketAddrV4::new(LOCALHOST, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket
}

fn addr_of(socket: &UdpSocket) -> SocketAddrV4 {
    match socket.local_addr().unwrap() {
        std::net::SocketAddr::V4(addr) => addr,
        other => panic!("not IPv4: {other}"),
    }
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65_536];
    let (len, _) = socket.recv_from(&mut buf).expect("a datagram from the repeater");
    buf[..len].to_vec()
}

fn register_bytes() -> Vec<u8> {
    Command::RepeaterRegisterRequest { client_address: LOCALHOST }.to_bytes().unwrap().to_vec()
}

fn confirm_bytes() -> Vec<u8> {
    Command::RepeaterConfirmResponse { repeater_address: LOCALHOST }.to_bytes().unwrap().to_vec()
}

fn beacon_bytes(address: Option<Ipv4Addr>) -> Vec<u8> {
    Command::Beacon { version: 13, server_port: 5064, beacon_id: 42, address }.to_bytes().unwrap().to_vec()
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn beacons_reach_every_registered_client_byte_for_byte() {
    let runtime = runtime();
    let repeater = fast_repeater(&runtime);
    let repeater_addr = repeater.local_addr();
    assert_ne!(repeater_addr.port(), 0);

    let a = udp_socket();
    a.send_to(&register_bytes(), repeater_addr).unwrap();
    assert_eq!(recv(&a), confirm_bytes());
    let b = udp_socket();
    b.send_to(&register_bytes(), repeater_addr).unwrap();
    assert_eq!(recv(&b), confirm_bytes());
    // EPICS: a registration sends a no-op (all-zero VERSION header) to the other clients.
    assert_eq!(recv(&a), [0u8; 16]);
    wait_until("two clients", Duration::from_secs(5), || repeater.client_count() == 2);
    let mut clients = repeater.clients();
    clients.sort();
    let mut expected = vec![addr_of(&a), addr_of(&b)];
    expected.sort();
    assert_eq!(clients, expected);

    // Re-registration is confirmed again; the count stays.
    a.send_to(&register_bytes(), repeater_addr).unwrap();
    assert_eq!(recv(&a), confirm_bytes());
    assert_eq!(recv(&b), [0u8; 16]);
    assert_eq!(repeater.client_count(), 2);

    let server = udp_socket();
    let beacon = beacon_bytes(Some(Ipv4Addr::new(10, 1, 2, 3)));
    server.send_to(&beacon, repeater_addr).unwrap();
    assert_eq!(recv(&a), beacon);
    assert_eq!(recv(&b), beacon);

    // A beacon without server address gets the sender's, as in EPICS.
    server.send_to(&beacon_bytes(None), repeater_addr).unwrap();
    assert_eq!(recv(&a), beacon_bytes(Some(LOCALHOST)));
    assert_eq!(recv(&b), beacon_bytes(Some(LOCALHOST)));

    // A client's own datagram goes to the others, never back to it.
    a.send_to(b"hello", repeater_addr).unwrap();
    assert_eq!(recv(&b), b"hello");
    a.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 64];
    assert!(a.recv_from(&mut buf).is_err(), "the sender got its own datagram back");
    // The server is no client: it got nothing.
    server.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(server.recv_from(&mut buf).is_err());

    // A client that closes its socket is removed by the periodic check.
    let a_addr = addr_of(&a);
    drop(b);
    wait_until("the closed client's removal", Duration::from_secs(5), || repeater.clients() == vec![a_addr]);
    assert_eq!(repeater.client_count(), 1);
}

#[test]
fn zero_length_registration_and_bounded_input() {
    let runtime = runtime();
    let repeater = fast_repeater(&runtime);
    let client = udp_socket();
    client.send_to(&[], repeater.local_addr()).unwrap();
    assert_eq!(recv(&client), confirm_bytes());

    // Junk of every size is forwarded untouched and never stops the repeater.
    let sender = udp_socket();
    for len in [1usize, 7, 15, 16, 17, 1000, 60_000] {
        let junk: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        sender.send_to(&junk, repeater.local_addr()).unwrap();
        let got = recv(&client);
        assert!(got == junk, "{len} bytes sent, {} bytes received, or other bytes", got.len());
    }
    assert!(repeater.is_running());
    assert_eq!(repeater.client_count(), 1);
}

#[test]
fn a_taken_port_is_reported_as_addr_in_use_and_stop_frees_it() {
    let runtime = runtime();
    let first = spawn_repeater(&runtime, SocketAddrV4::new(LOCALHOST, 0)).expect("repeater");
    let addr = first.local_addr();
    let err = spawn_repeater(&runtime, addr).expect_err("the port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    // libca's own test (bind 0.0.0.0 on the repeater port) sees a repeater too.
    let libca_test = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, addr.port()));
    assert_eq!(libca_test.expect_err("in use").kind(), std::io::ErrorKind::AddrInUse);

    assert!(first.is_running());
    first.stop();
    assert!(!first.is_running());
    assert_eq!(first.client_count(), 0);
    let second = spawn_repeater(&runtime, addr).expect("the port is free again");
    drop(second);
    UdpSocket::bind(addr).expect("dropping the handle stops the repeater too");

    // Shutting the runtime down closes a repeater that is still running.
    let third = spawn_repeater(&runtime, addr).expect("repeater");
    drop(runtime);
    assert!(!third.is_running());
    third.stop();
}

#[test]
fn wait_timeout_times_out_while_running_refuses_an_io_thread_and_ends_on_stop() {
    let runtime = runtime();
    let repeater = std::sync::Arc::new(spawn_repeater(&runtime, SocketAddrV4::new(LOCALHOST, 0)).expect("repeater"));
    let start = Instant::now();
    assert!(!repeater.wait_timeout(Some(Duration::from_millis(20))).unwrap(), "still running");
    assert!(start.elapsed() >= Duration::from_millis(20));

    // On an I/O thread the wait could never end (the repeater's thread closes the
    // socket): refused at once, with or without a timeout.
    let (tx, rx) = channel();
    let on_io = repeater.clone();
    runtime
        .spawn(move || {
            let start = Instant::now();
            let timed = on_io.wait_timeout(Some(Duration::from_secs(5)));
            let forever = on_io.wait_timeout(None);
            on_io.wait(); // returns at once too
            tx.send((timed, forever, start.elapsed())).unwrap();
        })
        .unwrap();
    let (timed, forever, elapsed) = rx.recv_timeout(Duration::from_secs(5)).expect("the I/O thread answers");
    assert!(matches!(timed, Err(pvloom_core::Error::WouldDeadlock)));
    assert!(matches!(forever, Err(pvloom_core::Error::WouldDeadlock)));
    assert!(elapsed < Duration::from_millis(50), "refused at once, took {elapsed:?}");

    // A waiter blocked without a timeout is released by `stop`.
    let waiter = {
        let repeater = repeater.clone();
        std::thread::spawn(move || repeater.wait_timeout(None))
    };
    std::thread::sleep(Duration::from_millis(20));
    repeater.stop();
    assert!(waiter.join().unwrap().unwrap());
    assert!(repeater.wait_timeout(Some(Duration::ZERO)).unwrap());
    repeater.wait();
}

#[test]
fn system_probe_answers_with_bind_tests() {
    let mut probe = SystemProbe;
    let socket = UdpSocket::bind(SocketAddrV4::new(LOCALHOST, 0)).unwrap();
    let port = addr_of(&socket).port();
    assert_eq!(probe.udp_port_status(port), PortStatus::InUse);
    drop(socket);
    assert_eq!(probe.udp_port_status(port), PortStatus::Free);
    assert!(probe.is_local_address(LOCALHOST));
    // TEST-NET-3: documentation addresses, never assigned to a host.
    assert!(!probe.is_local_address(Ipv4Addr::new(203, 0, 113, 7)));
}

// ---------------------------------------------------------------------------------
// Peers we did not write
// ---------------------------------------------------------------------------------

fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh at the repository root to create the virtualenv with caproto and pyepics",
        python.display()
    );
    python
}

/// A Python subprocess, killed and reaped when dropped; its stdout arrives line by line.
struct PythonPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl PythonPeer {
    fn start(script: &str, repeater_port: u16) -> PythonPeer {
        let mut child = Process::new(venv_python())
            .args(["-u", "-c", script])
            .env("EPICS_CA_REPEATER_PORT", repeater_port.to_string())
            .env("EPICS_CA_AUTO_ADDR_LIST", "NO")
            .env("EPICS_CA_ADDR_LIST", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the venv's python");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PythonPeer { child, stdin, lines }
    }

    /// The next line that starts with `prefix`, within `timeout`.
    fn expect_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no line starting with {prefix:?} within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the peer exited before printing {prefix:?}"),
            }
        }
    }

    /// Every remaining line, until the peer exits (within `timeout`).
    fn rest(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut out = String::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => panic!("the peer did not exit within {timeout:?}; it said:\n{out}"),
            }
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to the peer");
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CAPROTO_CLIENT: &str = r#"
import time
from caproto.threading.client import Context

ctx = Context()                      # SharedBroadcaster registers with the repeater now
shared = ctx.broadcaster
deadline = time.monotonic() + 10
while not shared.broadcaster.registered and time.monotonic() < deadline:
    time.sleep(0.02)
print('REGISTERED' if shared.broadcaster.registered else 'NOT-REGISTERED', flush=True)
while time.monotonic() < deadline and not shared.last_beacon:
    time.sleep(0.02)
for host, port in list(shared.last_beacon):
    print('BEACON %s %d' % (host, port), flush=True)
print('DONE', flush=True)
"#;

#[test]
fn caproto_threading_client_registers_and_receives_forwarded_beacons() {
    let runtime = runtime();
    let repeater = fast_repeater(&runtime);
    let peer = PythonPeer::start(CAPROTO_CLIENT, repeater.local_addr().port());

    let registered = peer.expect_line("REGISTERED", Duration::from_secs(15));
    assert_eq!(registered, "REGISTERED", "caproto never received our REPEATER_CONFIRM");
    wait_until("caproto's registration", Duration::from_secs(2), || repeater.client_count() >= 1);

    // A "server" beacon, forwarded by the repeater to caproto.
    let server = udp_socket();
    let beacon = beacon_bytes(Some(Ipv4Addr::new(10, 1, 2, 3)));
    let deadline = Instant::now() + Duration::from_secs(8);
    let line = loop {
        server.send_to(&beacon, repeater.local_addr()).unwrap();
        match peer.lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("BEACON") || line == "DONE" => break line,
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => panic!("caproto exited early"),
        }
        assert!(Instant::now() < deadline, "caproto saw no forwarded beacon");
    };
    assert_eq!(line, "BEACON 10.1.2.3 5064");
}

const PYEPICS_CLIENT: &str = r#"
import sys, time
import epics

epics.ca.initialize_libca()
# libca makes its UDP socket with the first channel, and sends its first registration
# (a zero-length datagram) 10 s later, then one a second until confirmed.
chid = epics.ca.create_channel('PVLOOM:REPEATER:TEST:NOBODY', connect=False)
print('CHANNEL', flush=True)
sys.stdin.readline()
time.sleep(0.3)
# Prints "repeater subscribe timer: attempts=N registered=1 ..." and the beacon table.
epics.ca.client_status(epics.ca.current_context(), 3)
"#;

#[test]
fn libca_through_pyepics_registers_and_receives_forwarded_beacons() {
    let runtime = runtime();
    let repeater = fast_repeater(&runtime);
    let mut peer = PythonPeer::start(PYEPICS_CLIENT, repeater.local_addr().port());
    peer.expect_line("CHANNEL", Duration::from_secs(5));
    wait_until("libca's registration (10 s after its first channel)", Duration::from_secs(15), || {
        repeater.client_count() >= 1
    });

    // libca files the first beacon of a server in its beacon table.
    let server = udp_socket();
    server.send_to(&beacon_bytes(Some(Ipv4Addr::new(10, 1, 2, 3))), repeater.local_addr()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    peer.say("go");
    let status = peer.rest(Duration::from_secs(5));
    assert!(status.contains("registered=1"), "libca did not take our REPEATER_CONFIRM:\n{status}");
    assert!(status.contains("1 items of type 3bhe"), "libca did not see the forwarded beacon:\n{status}");
}
