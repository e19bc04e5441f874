//! pvloom-chirp's benchmark, two processes on 127.0.0.1 (run by `bench/chirp`):
//!
//! - `async`: one-way asynchronous messages/s (a send completes at the OS hand-off; the
//!   receiver's count is checked at the end);
//! - `sync`: one-way synchronous messages/s (each completes at the receiver's release);
//! - `request`: request/answer round trips/s, one at a time;
//! - `pingpong`: the floor, a strict TCP ping-pong (1 byte each way) between the same
//!   two processes, no chirp at all.
//!
//! usage: chirp_bench [--seconds S] [--size B] [--target HOST:PORT] [async|sync|request|pingpong ...]
//! (`--target` sends to a running node, e.g. libchirp's, instead of starting a child.)
//! Internal: chirp_bench serve sink|echo sync|async, and chirp_bench pong.
//! Prints one line per mode: `mode rate unit`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pvloom_chirp::{Chirp, Config, Outgoing};
use pvloom_core::bytes::Bytes;
use pvloom_core::{Delivery, Runtime};

fn config(synchronous: bool) -> Config {
    Config { synchronous, port: 0, bind_v4: Ipv4Addr::LOCALHOST, disable_encryption: true, ..Config::default() }
}

fn runtime(io_threads: usize) -> Runtime {
    Runtime::builder().io_threads(io_threads).delivery(Delivery::ordered(1)).build().expect("runtime")
}

/// A receiving node: counts (sink) or sends each message back (echo). Prints its port,
/// then the count when stdin closes.
fn serve(role: &str, synchronous: bool) {
    let rt = runtime(2);
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    let echo = role == "echo";
    let node: Arc<parking_lot::Mutex<Option<Arc<Chirp>>>> = Arc::default();
    let me = node.clone();
    let chirp = Arc::new(
        Chirp::start(&rt.handle(), &config(synchronous), move |msg| {
            seen.fetch_add(1, Ordering::Relaxed);
            if echo && let Some(node) = me.lock().clone() {
                drop(node.send(msg.from(), msg.reply(msg.data.clone())));
            }
        })
        .expect("start"),
    );
    *node.lock() = Some(chirp.clone());
    println!("port {}", chirp.port());
    std::io::stdout().flush().ok();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    println!("received {}", count.load(Ordering::Relaxed));
    node.lock().take();
    chirp.stop();
}

fn pong() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    println!("port {}", listener.local_addr().expect("addr").port());
    std::io::stdout().flush().ok();
    let (mut stream, _) = listener.accept().expect("accept");
    stream.set_nodelay(true).ok();
    let mut byte = [0u8; 1];
    while stream.read_exact(&mut byte).is_ok() {
        if stream.write_all(&byte).is_err() {
            break;
        }
    }
}

struct ChildNode {
    child: Child,
    port: u16,
}

impl ChildNode {
    fn start(args: &[&str]) -> ChildNode {
        let exe = std::env::current_exe().expect("own path");
        let mut child =
            Command::new(exe).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn child");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("child's port");
        let port = line.trim().strip_prefix("port ").and_then(|p| p.parse().ok()).expect("port line");
        child.stdout = Some(out.into_inner());
        ChildNode { child, port }
    }

    /// Close its stdin and read what it counted.
    fn finish(mut self) -> Option<u64> {
        drop(self.child.stdin.take());
        let mut out = String::new();
        self.child.stdout.take()?.read_to_string(&mut out).ok()?;
        let _ = self.child.wait();
        out.lines().find_map(|l| l.strip_prefix("received ")?.parse().ok())
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One-way sends for `seconds`, at most `window` outstanding: messages/s completed.
fn one_way(to: SocketAddr, synchronous: bool, seconds: f64, size: usize, window: u64) -> (f64, u64) {
    let rt = runtime(2);
    let node = Chirp::start(&rt.handle(), &config(synchronous), |_| {}).expect("start");
    let payload = Bytes::from(vec![b'x'; size]);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // Warm-up: the connection and its handshake.
    let (tx, rx) = std::sync::mpsc::channel();
    node.send(to, Outgoing::new(payload.clone())).then(move |r| {
        let _ = tx.send(r.is_ok());
    });
    // A lost first completion is reported, not waited for forever.
    if rx.recv_timeout(Duration::from_secs(2)).is_err() {
        eprintln!("warning: the warm-up send did not complete within 2 s");
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..256 {
            if sent - done.load(Ordering::Acquire) >= window {
                std::thread::yield_now();
                break;
            }
            let (done, failed) = (done.clone(), failed.clone());
            node.send(to, Outgoing::new(payload.clone())).then(move |result| {
                if !matches!(result, Ok(Ok(()))) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Release);
            });
            sent += 1;
        }
    }
    while done.load(Ordering::Acquire) < sent {
        std::thread::sleep(Duration::from_micros(100));
        if start.elapsed() > Duration::from_secs_f64(seconds + 30.0) {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let completed = done.load(Ordering::Acquire) - failed.load(Ordering::Relaxed);
    node.stop();
    (completed as f64 / elapsed, failed.load(Ordering::Relaxed))
}

fn requests(to: SocketAddr, seconds: f64, size: usize) -> f64 {
    let rt = runtime(2);
    let node = Chirp::start(&rt.handle(), &config(false), |_| {}).expect("start");
    let payload = Bytes::from(vec![b'x'; size]);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    while Instant::now() < end {
        let (_, answer) = node.request(to, Outgoing::new(payload.clone()));
        if answer.wait_timeout(Duration::from_secs(10)).is_ok_and(|a| a.is_ok()) {
            count += 1;
        }
    }
    node.stop();
    count as f64 / start.elapsed().as_secs_f64()
}

fn ping_pong(seconds: f64) -> f64 {
    let child = ChildNode::start(&["pong"]);
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, child.port)).expect("connect");
    stream.set_nodelay(true).ok();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    let mut byte = [7u8; 1];
    while Instant::now() < end {
        stream.write_all(&byte).expect("ping");
        stream.read_exact(&mut byte).expect("pong");
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(&args[1], args.get(2).is_some_and(|m| m == "sync")),
        Some("pong") => return pong(),
        _ => {}
    }
    let mut seconds = 3.0;
    let mut size = 64;
    let mut target: Option<SocketAddr> = None;
    let mut modes = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds S"),
            "--size" => size = it.next().and_then(|s| s.parse().ok()).expect("--size B"),
            "--target" => target = it.next().and_then(|s| s.parse().ok()),
            mode => modes.push(mode.to_string()),
        }
    }
    if modes.is_empty() {
        modes = ["pingpong", "async", "sync", "request"].map(String::from).to_vec();
    }
    for mode in modes {
        match mode.as_str() {
            "pingpong" => println!("pingpong {:.0} round-trips/s", ping_pong(seconds)),
            "async" | "sync" => {
                let synchronous = mode == "sync";
                let child = target.is_none().then(|| ChildNode::start(&["serve", "sink", &mode]));
                let to = target
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, child.as_ref().map_or(0, |c| c.port))));
                let (rate, failed) = one_way(to, synchronous, seconds, size, 1000);
                let received = child.and_then(ChildNode::finish);
                let received = received.map_or(String::new(), |n| format!(" (receiver counted {n})"));
                let failed = if failed > 0 { format!(" {failed} FAILED") } else { String::new() };
                println!("{mode} {rate:.0} msg/s{failed}{received}");
            }
            "request" => {
                let child = target.is_none().then(|| ChildNode::start(&["serve", "echo", "async"]));
                let to = target
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, child.as_ref().map_or(0, |c| c.port))));
                println!("request {:.0} round-trips/s", requests(to, seconds, size));
                drop(child);
            }
            other => eprintln!("unknown mode {other}"),
        }
    }
}
