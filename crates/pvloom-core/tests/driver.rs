//! The shared socket driver on real loopback sockets: connect, accept, echo, one
//! deadline per endpoint, back-pressure, the stall timeout, calls from other threads,
//! and close reasons.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pvloom_core::driver::{self, Listener, StreamAddress, StreamApp, StreamConfig};
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};
use pvloom_core::mio::net::TcpListener;
use pvloom_core::{IoCtx, Runtime};

/// Echoes what it receives (server) or records it (client); may hold its input.
struct Echo {
    echo: bool,
    out: BytesMut,
    received: Vec<u8>,
    events: Vec<usize>,
    wants_input: bool,
    tick: Option<Instant>,
    ticks: u32,
}

impl Echo {
    fn new(echo: bool) -> Self {
        Echo {
            echo,
            out: BytesMut::new(),
            received: Vec::new(),
            events: Vec::new(),
            wants_input: true,
            tick: None,
            ticks: 0,
        }
    }
}

impl StreamEndpoint for Echo {
    type Event = usize;

    fn handle_input(&mut self, _now: Instant, data: &[u8]) {
        if self.echo {
            self.out.extend_from_slice(data);
        }
        self.received.extend_from_slice(data);
        self.events.push(data.len());
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.tick.is_some_and(|at| now >= at) {
            self.ticks += 1;
            self.tick = (self.ticks < 3).then(|| now + Duration::from_millis(10));
        }
    }

    fn poll_transmit(&mut self, _now: Instant, room: usize, out: &mut BytesMut) {
        let take = room.min(self.out.len());
        out.extend_from_slice(&self.out.split_to(take));
    }

    fn poll_event(&mut self) -> Option<usize> {
        self.events.pop()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.tick
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        None
    }

    fn wants_input(&self) -> bool {
        self.wants_input
    }
}

enum Report {
    Bytes(usize),
    Ticks(u32),
    Closed(CloseReason),
}

struct App {
    echo: Echo,
    report: Sender<Report>,
}

impl StreamApp for App {
    type Endpoint = Echo;

    fn endpoint(&mut self) -> &mut Echo {
        &mut self.echo
    }

    fn on_event(&mut self, bytes: usize, _ctx: &mut IoCtx<'_>) {
        let _ = self.report.send(Report::Bytes(bytes));
    }

    fn on_closed(&mut self, reason: &CloseReason, _ctx: &mut IoCtx<'_>) {
        let _ = self.report.send(Report::Ticks(self.echo.ticks));
        let _ = self.report.send(Report::Closed(reason.clone()));
    }
}

/// A runtime with an echo server listening on a free loopback port.
fn echo_server(
    config: StreamConfig,
    server_wants_input: bool,
) -> (Runtime, SocketAddr, std::sync::mpsc::Receiver<Report>) {
    let runtime = Runtime::new().unwrap();
    let socket = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = channel();
    runtime
        .run_on(0, move |ctx| {
            let accept = move |stream, _peer, ctx: &mut IoCtx<'_>| {
                let address = StreamAddress::new(ctx.runtime().unwrap(), ctx.thread_index());
                let mut echo = Echo::new(true);
                echo.wants_input = server_wants_input;
                driver::adopt(ctx, &address, stream, config, App { echo, report: tx.clone() }).unwrap();
            };
            ctx.register(Box::new(Listener::new(socket, accept))).unwrap();
        })
        .unwrap();
    (runtime, addr, rx)
}

fn connect_client(
    runtime: &Runtime,
    to: SocketAddr,
    echo: Echo,
) -> (Arc<StreamAddress<App>>, std::sync::mpsc::Receiver<Report>) {
    let (tx, rx) = channel();
    let address = StreamAddress::new(runtime.handle(), 1);
    let opening = address.clone();
    runtime
        .run_on(1, move |ctx| {
            driver::connect(ctx, &opening, to, StreamConfig::default(), App { echo, report: tx }).unwrap();
        })
        .unwrap();
    (address, rx)
}

fn wait_bytes(rx: &std::sync::mpsc::Receiver<Report>, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < want {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Report::Bytes(n)) => got += n,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

fn wait_closed(rx: &std::sync::mpsc::Receiver<Report>) -> (u32, CloseReason) {
    let mut ticks = 0;
    loop {
        match rx.recv_timeout(Duration::from_secs(10)).expect("closed in time") {
            Report::Ticks(t) => ticks = t,
            Report::Closed(reason) => return (ticks, reason),
            Report::Bytes(_) => {}
        }
    }
}

#[test]
fn bytes_written_before_connect_arrive_and_come_back() {
    let (runtime, addr, _server) = echo_server(StreamConfig::default(), true);
    let mut echo = Echo::new(false);
    echo.out.extend_from_slice(&[7u8; 300_000]);
    let (address, rx) = connect_client(&runtime, addr, echo);
    assert_eq!(wait_bytes(&rx, 300_000), 300_000, "all echoed through bounded send buffers");
    // A call from this thread reaches the client on its I/O thread; the driver then
    // flushes what it queued.
    address.exec(|app, _| app.echo.out.extend_from_slice(b"again"), || panic!("the connection is alive"));
    assert_eq!(wait_bytes(&rx, 5), 5);
    let stats = runtime.thread_stats();
    assert_eq!(stats.iter().map(|s| s.timers_pending).sum::<usize>(), 0, "idle endpoints arm no timer");
}

#[test]
fn data_and_the_peers_fin_in_one_edge_still_close_the_connection() {
    use std::io::{Read, Write};
    let (runtime, addr, server) = echo_server(StreamConfig::default(), true);
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.write_all(b"hello").unwrap();
    let mut echoed = [0u8; 5];
    client.read_exact(&mut echoed).unwrap();
    // Hold the server's I/O thread so the next data and the FIN are both waiting when
    // it polls again: one readiness edge for both.
    let (release, held) = channel::<()>();
    let (parked, is_parked) = channel::<()>();
    runtime
        .run_on(0, move |_| {
            let _ = parked.send(());
            let _ = held.recv();
        })
        .unwrap();
    is_parked.recv().unwrap();
    client.write_all(b"bye").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    release.send(()).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    // Without the read to the end the server sat in CLOSE_WAIT and this read timed out.
    client.read_to_end(&mut rest).expect("the server closed its side");
    // What was still to be echoed goes with the connection (a peer that stopped sending
    // is closed at once, as before).
    assert!(rest.is_empty() || rest == b"bye", "{rest:?}");
    assert!(matches!(wait_closed(&server).1, CloseReason::PeerClosed));
}

#[test]
fn the_endpoint_deadline_fires_and_is_not_rearmed_once_gone() {
    let (runtime, addr, _server) = echo_server(StreamConfig::default(), true);
    let mut echo = Echo::new(false);
    echo.tick = Some(Instant::now() + Duration::from_millis(10));
    let (address, rx) = connect_client(&runtime, addr, echo);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (done_tx, done_rx) = channel();
        address.exec(move |app, _| done_tx.send(app.echo.ticks).unwrap(), || {});
        if done_rx.recv_timeout(Duration::from_secs(5)).unwrap() == 3 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(rx);
    std::thread::sleep(Duration::from_millis(30));
    let stats = runtime.thread_stats();
    assert_eq!(stats.iter().map(|s| s.timers_pending).sum::<usize>(), 0, "no timer left after the last deadline");
}

#[test]
fn a_peer_that_stops_reading_is_cut_off_after_the_stall_timeout() {
    let config =
        StreamConfig { stall_timeout: Some(Duration::from_millis(300)), send_buffer: 64 * 1024, ..Default::default() };
    let (runtime, addr, server) = echo_server(config, true);
    // A raw client that sends a lot and never reads the echo.
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![1u8; 64 * 1024];
        while raw.write_all(&chunk).is_ok() {
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
    });
    let (_, reason) = wait_closed(&server);
    assert!(matches!(reason, CloseReason::TimedOut(ref why) if why.contains("stopped reading")), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(8));
    writer.join().unwrap();
    drop(runtime);
}

#[test]
fn an_endpoint_that_wants_no_input_is_not_read() {
    let (runtime, addr, server) = echo_server(StreamConfig::default(), false);
    let mut echo = Echo::new(false);
    echo.out.extend_from_slice(b"held");
    let (_address, client) = connect_client(&runtime, addr, echo);
    assert!(server.recv_timeout(Duration::from_millis(200)).is_err(), "the server's endpoint sees nothing");
    assert!(client.recv_timeout(Duration::from_millis(10)).is_err());
    drop(runtime);
}

#[test]
fn a_refused_connection_closes_with_the_reason_and_calls_find_it_gone() {
    let runtime = Runtime::new().unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (address, rx) = connect_client(&runtime, to, Echo::new(false));
    let (_, reason) = wait_closed(&rx);
    assert!(matches!(reason, CloseReason::Io(_) | CloseReason::PeerClosed), "{reason}");
    let (tx, missing) = channel();
    address.exec(|_, _| panic!("closed"), move || tx.send(()).unwrap());
    missing.recv_timeout(Duration::from_secs(5)).expect("the missing branch runs");
}

#[test]
fn shutdown_closes_connections_with_shutdown() {
    // The server on a runtime of its own: only the client's runtime shuts down.
    let (_server_runtime, addr, _server) = echo_server(StreamConfig::default(), true);
    let runtime = Runtime::new().unwrap();
    let (_address, rx) = connect_client(&runtime, addr, Echo::new(false));
    std::thread::sleep(Duration::from_millis(50));
    runtime.shutdown();
    let (_, reason) = wait_closed(&rx);
    assert_eq!(reason, CloseReason::Shutdown);
}

#[test]
fn a_panicking_call_closes_the_connection_and_reports_it() {
    let (_server_runtime, addr, _server) = echo_server(StreamConfig::default(), true);
    let runtime = Runtime::new().unwrap();
    let (address, rx) = connect_client(&runtime, addr, Echo::new(false));
    std::thread::sleep(Duration::from_millis(50));
    address.exec(|_, _| panic!("a protocol bug"), || {});
    let (_, reason) = wait_closed(&rx);
    assert_eq!(reason, CloseReason::Shutdown, "closed as a dropped handler is: {reason}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while runtime.callback_failures() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(runtime.callback_failures(), 1, "the panic reached the error hook");
    let (tx, missing) = channel();
    address.exec(|_, _| panic!("gone"), move || tx.send(()).unwrap());
    missing.recv_timeout(Duration::from_secs(5)).expect("later calls find it gone");
    assert_eq!(runtime.thread_stats().iter().map(|s| s.handlers).sum::<usize>(), 0);
}

/// Answers one datagram, then is done.
struct OneShot {
    reply: Option<pvloom_core::Datagram>,
    done: bool,
}

impl pvloom_core::DatagramEndpoint for OneShot {
    type Event = ();
    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, data: &[u8]) {
        self.reply = Some(pvloom_core::Datagram { to: from, data: bytes::Bytes::copy_from_slice(data) });
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self, _now: Instant) -> Option<pvloom_core::Datagram> {
        let reply = self.reply.take();
        self.done |= reply.is_some();
        reply
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_closed(&self) -> bool {
        self.done
    }
}

struct OneShotApp(OneShot);

impl pvloom_core::driver::DatagramApp for OneShotApp {
    type Endpoint = OneShot;
    fn endpoint(&mut self) -> &mut OneShot {
        &mut self.0
    }
    fn on_event(&mut self, (): (), _ctx: &mut IoCtx<'_>) {}
}

#[test]
fn a_datagram_endpoint_that_is_done_closes_its_socket_after_its_last_send() {
    let runtime = Runtime::new().unwrap();
    let socket = pvloom_core::mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let address = pvloom_core::driver::DatagramAddress::new(runtime.handle(), 0);
    let opening = address.clone();
    runtime
        .run_on(0, move |ctx| {
            let app = OneShotApp(OneShot { reply: None, done: false });
            driver::bind_udp(ctx, &opening, socket, app).unwrap();
        })
        .unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    peer.send_to(b"ping", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = peer.recv_from(&mut buf).expect("the reply went out before the close");
    assert_eq!(&buf[..n], b"ping");
    let deadline = Instant::now() + Duration::from_secs(5);
    while runtime.thread_stats().iter().map(|s| s.handlers).sum::<usize>() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(runtime.thread_stats().iter().map(|s| s.handlers).sum::<usize>(), 0, "socket closed");
    let (tx, missing) = channel();
    address.exec(|_, _| panic!("closed"), move || tx.send(()).unwrap());
    missing.recv_timeout(Duration::from_secs(5)).unwrap();
}
