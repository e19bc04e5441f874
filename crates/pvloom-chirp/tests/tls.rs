//! libchirp's TLS: certificates made here (a CA and a node certificate, as libchirp's
//! CERT_CHAIN_PEM), the endpoint in memory, two pvloom nodes on 127.0.0.1 (with
//! `always_encrypt`: libchirp skips TLS for 127.0.0.1 and ::1 only), a node whose
//! certificate another CA signed, and the real libchirp both ways.

mod support;

use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pvloom_chirp::tls::{Secured, encrypts};
use pvloom_chirp::wire::Handshake;
use pvloom_chirp::{Chirp, ChirpError, Config, ConfigError, ConnEvent, Connection, Identity, Outgoing};
use pvloom_core::harness::StreamPair;
use pvloom_core::{Delivery, Runtime};
use support::{Certs, Process, TempDir, free_port, make_certs, python, script, wait_line};

const WAIT: Duration = Duration::from_secs(15);

fn tls_config(certs: &Certs, synchronous: bool) -> Config {
    Config {
        synchronous,
        port: 0,
        bind_v4: Ipv4Addr::LOCALHOST,
        cert_chain_pem: Some(certs.chain.clone()),
        dh_params_pem: Some(certs.dh.clone()),
        always_encrypt: true,
        ..Config::default()
    }
}

fn runtime() -> Runtime {
    Runtime::builder().io_threads(2).delivery(Delivery::ordered(2)).build().unwrap()
}

#[test]
fn libchirps_rule_encrypts_all_but_127_0_0_1_and_ipv6_loopback() {
    let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(!encrypts(v4("127.0.0.1"), false, false));
    assert!(!encrypts(v4("::1"), false, false));
    assert!(encrypts(v4("127.0.0.2"), false, false), "libchirp compares the text: 127.0.0.2 is encrypted");
    assert!(encrypts(v4("192.0.2.7"), false, false));
    assert!(!encrypts(v4("192.0.2.7"), true, false), "DISABLE_ENCRYPTION");
    assert!(encrypts(v4("127.0.0.1"), false, true), "always_encrypt");
}

#[test]
fn encryption_needs_both_pem_files() {
    let config = Config { disable_encryption: false, ..Config::default() };
    assert!(matches!(config.tls_context(), Err(ConfigError::Tls(_))));
    let dir = TempDir::new("missing");
    let bad = Config {
        cert_chain_pem: Some(dir.0.join("absent.pem")),
        dh_params_pem: Some(dir.0.join("absent-dh.pem")),
        ..Config::default()
    };
    let error = bad.tls_context().unwrap_err();
    assert!(error.to_string().contains("absent.pem"), "{error}");
}

#[test]
fn the_endpoint_runs_chirp_inside_tls_in_memory() {
    let dir = TempDir::new("pair");
    let certs = make_certs(&dir.0, "pair");
    let config = tls_config(&certs, true);
    let context = config.tls_context().unwrap().unwrap();
    let limits = config.limits().unwrap();
    let now = Instant::now();
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let side = |port, accept| {
        let conn = Connection::new(now, Handshake { port, identity: Identity::random() }, localhost, limits);
        Secured::encrypted(conn, context.session(accept).unwrap())
    };
    let mut pair = StreamPair::new(side(4001, false), side(4002, true));
    pair.drive();
    let (version, cipher) = pair.client.session().unwrap().negotiated().expect("TLS established");
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{version}");
    assert!(!cipher.is_empty());
    assert_eq!(pair.client.inner().remote().map(|h| h.port), Some(4002), "the chirp handshake inside TLS");
    let before = pair.bytes_sent.0;
    let secret = b"a secret no one on the wire may read";
    let now = pair.now();
    pair.client.inner_mut().send(now, 1, Outgoing::new(&secret[..])).unwrap();
    pair.drive();
    let received = pair
        .server_events
        .iter()
        .find_map(|e| if let ConnEvent::Received(m) = e { Some(m.clone()) } else { None })
        .expect("the message arrived");
    assert_eq!(&received.data[..], secret);
    assert!(pair.bytes_sent.0 - before > secret.len() as u64 + 27, "TLS records add overhead");
    let now = pair.now();
    pair.server.inner_mut().release(now, received.slot).unwrap();
    pair.drive();
    assert!(pair.client_events.iter().any(|e| matches!(e, ConnEvent::Sent { token: 1, .. })), "ACK back over TLS");
}

fn pvloom_pair_over_tls(synchronous: bool) {
    let dir = TempDir::new("nodes");
    let certs = make_certs(&dir.0, "nodes");
    let rt = runtime();
    let config = tls_config(&certs, synchronous);
    let (tx, inbox) = mpsc::channel::<pvloom_chirp::Message>();
    let echo = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let (answers_tx, answers) = mpsc::channel::<pvloom_chirp::Message>();
    let client = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = answers_tx.send(msg);
    })
    .unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, echo.port()));
    let count = 30;
    let sends: Vec<_> = (0..count).map(|i| client.send(to, Outgoing::new(format!("tls {i}").into_bytes()))).collect();
    for _ in 0..count {
        let msg = inbox.recv_timeout(WAIT).expect("a message over TLS");
        drop(echo.send(msg.from(), msg.reply(msg.data.clone())));
    }
    for send in sends {
        send.wait_timeout(WAIT).unwrap().unwrap();
    }
    let mut got: Vec<_> = (0..count).map(|_| answers.recv_timeout(WAIT).unwrap().data).collect();
    got.sort();
    let mut want: Vec<_> = (0..count).map(|i| pvloom_core::bytes::Bytes::from(format!("tls {i}"))).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn two_pvloom_nodes_over_tls_sync() {
    pvloom_pair_over_tls(true);
}

#[test]
fn two_pvloom_nodes_over_tls_async() {
    pvloom_pair_over_tls(false);
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = TempDir::new("foreign");
    let ours = make_certs(&dir.0, "ours");
    let theirs = make_certs(&dir.0, "theirs");
    let rt = runtime();
    let (tx, inbox) = mpsc::channel::<pvloom_chirp::Message>();
    let server = Chirp::start(&rt.handle(), &tls_config(&ours, false), move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let stranger = Chirp::start(&rt.handle(), &tls_config(&theirs, false), |_| {}).unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()));
    let result = stranger.send(to, Outgoing::new(&b"let me in"[..])).wait_timeout(WAIT).unwrap();
    assert!(matches!(result, Err(ChirpError::Failed(_))), "{result:?}");
    assert!(inbox.try_recv().is_err(), "nothing delivered from a peer that failed verification");
    // The server still serves a peer with the right CA.
    let friend = Chirp::start(&rt.handle(), &tls_config(&ours, false), |_| {}).unwrap();
    friend.send(to, Outgoing::new(&b"hello"[..])).wait_timeout(WAIT).unwrap().unwrap();
    assert_eq!(&inbox.recv_timeout(WAIT).unwrap().data[..], b"hello");
}

// Against the real libchirp.

fn libchirp_tls_env(command: &mut Command, certs: &Certs, always: bool) {
    command.env("CHIRP_CERT_CHAIN", &certs.chain).env("CHIRP_DH_PARAMS", &certs.dh);
    if always {
        command.env("CHIRP_ALWAYS_ENCRYPT", "1");
    }
}

/// A local address libchirp encrypts without being told to: this host's address on
/// its default route, if it has one (nothing is sent: a UDP connect only picks it).
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn pvloom_to_libchirp_echo(certs: &Certs, at: IpAddr, synchronous: bool, always: bool) {
    let python = python();
    let port = free_port();
    let mut command = Command::new(&python);
    command.arg(script("echo_node.py")).args([port.to_string(), mode(synchronous).into(), "20".into()]);
    libchirp_tls_env(&mut command, certs, always);
    let mut child = command.stdout(Stdio::piped()).spawn().expect("start libchirp");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _echo = Process(child);
    let _identity = wait_line(&mut out, "ready ");
    let rt = runtime();
    let (tx, answers) = mpsc::channel::<pvloom_chirp::Message>();
    let config = Config { bind_v4: Ipv4Addr::UNSPECIFIED, always_encrypt: always, ..tls_config(certs, synchronous) };
    let node = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let to = SocketAddr::new(at, port);
    for i in 0..10 {
        node.send(to, Outgoing::new(format!("over tls {i}").into_bytes())).wait_timeout(WAIT).unwrap().unwrap();
    }
    let mut got: Vec<_> = (0..10).map(|_| answers.recv_timeout(WAIT).expect("libchirp's echo over TLS").data).collect();
    got.sort();
    let mut want: Vec<_> = (0..10).map(|i| pvloom_core::bytes::Bytes::from(format!("over tls {i}"))).collect();
    want.sort();
    assert_eq!(got, want);
    node.stop();
}

fn mode(synchronous: bool) -> &'static str {
    if synchronous { "sync" } else { "async" }
}

fn libchirp_sender_to_pvloom(certs: &Certs, at: IpAddr, synchronous: bool, always: bool) {
    let python = python();
    let rt = runtime();
    let config = Config { bind_v4: Ipv4Addr::UNSPECIFIED, always_encrypt: always, ..tls_config(certs, synchronous) };
    let (tx, inbox) = mpsc::channel::<pvloom_chirp::Message>();
    let node = Chirp::start(&rt.handle(), &config, move |msg| {
        let _ = tx.send(msg);
    })
    .unwrap();
    let count = 10;
    let mut command = Command::new(&python);
    command.arg(script("sender.py")).args([
        free_port().to_string(),
        node.port().to_string(),
        mode(synchronous).into(),
        count.to_string(),
    ]);
    command.env("CHIRP_TARGET_ADDRESS", at.to_string());
    libchirp_tls_env(&mut command, certs, always);
    let mut sender = Process(command.stdout(Stdio::piped()).spawn().expect("start the libchirp sender"));
    for _ in 0..count {
        let msg = inbox.recv_timeout(WAIT).expect("a message from libchirp over TLS");
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
    let mut out = BufReader::new(sender.0.stdout.take().unwrap());
    let report = wait_line(&mut out, "answers ");
    assert!(status.success(), "libchirp sender: {status}, said {report:?}");
    assert_eq!(report, format!("{count} of {count} match"));
    node.stop();
}

#[test]
fn pvloom_sends_to_libchirp_over_tls_on_loopback_always_encrypt() {
    let dir = TempDir::new("lc-loop");
    let certs = make_certs(&dir.0, "lc");
    pvloom_to_libchirp_echo(&certs, IpAddr::V4(Ipv4Addr::LOCALHOST), true, true);
    pvloom_to_libchirp_echo(&certs, IpAddr::V4(Ipv4Addr::LOCALHOST), false, true);
}

#[test]
fn libchirp_sends_to_pvloom_over_tls_on_loopback_always_encrypt() {
    let dir = TempDir::new("lc-loop-rev");
    let certs = make_certs(&dir.0, "lc");
    libchirp_sender_to_pvloom(&certs, IpAddr::V4(Ipv4Addr::LOCALHOST), true, true);
    libchirp_sender_to_pvloom(&certs, IpAddr::V4(Ipv4Addr::LOCALHOST), false, true);
}

/// Without any testing aid: this host's own non-loopback address, which both sides
/// encrypt by libchirp's rule. A host with only loopback has nothing to run this on
/// (the always-encrypt tests above still cover the wire).
#[test]
fn pvloom_and_libchirp_over_tls_on_a_non_loopback_address() {
    let Some(at) = non_loopback_address() else {
        eprintln!("no non-loopback local address: covered by the always-encrypt tests only");
        return;
    };
    let dir = TempDir::new("lc-eth");
    let certs = make_certs(&dir.0, "lc");
    pvloom_to_libchirp_echo(&certs, at, true, false);
    libchirp_sender_to_pvloom(&certs, at, false, false);
}
