//! pvloom-chirp's benchmark, two processes on 127.0.0.1 (run by `bench/chirp`):
//!
//! - `async`: one-way asynchronous messages/s (a send completes at the OS hand-off; the
//!   receiver's count is checked at the end);
//! - `sync`: one-way synchronous messages/s (each completes at the receiver's release);
//! - `request`: request/answer round trips/s, one at a time;
//! - `pingpong`: the floor, a strict TCP ping-pong (1 byte each way) between the same
//!   two processes, no chirp at all.
//!
//! usage: chirp_bench [--seconds S] [--size B] [--target HOST:PORT] [--io-threads N]
//!                    [--delivery inline|ordered] [async|sync|request|pingpong ...]
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

/// The allocator the `pvloom` binary ships with, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config(synchronous: bool) -> Config {
    Config { synchronous, port: 0, bind_v4: Ipv4Addr::LOCALHOST, disable_encryption: true, ..Config::default() }
}

/// How both processes run their runtime: I/O threads, and handlers and completions
/// inline on the I/O thread or on a worker (`--io-threads N`, `--delivery
/// inline|ordered`; the child gets the same flags).
struct RuntimeChoice {
    io_threads: usize,
    inline: bool,
}

static RUNTIME_CHOICE: std::sync::OnceLock<RuntimeChoice> = std::sync::OnceLock::new();

fn runtime() -> Runtime {
    let choice = RUNTIME_CHOICE.get_or_init(|| RuntimeChoice { io_threads: 2, inline: false });
    let delivery = if choice.inline { Delivery::Inline } else { Delivery::ordered(1) };
    Runtime::builder().io_threads(choice.io_threads).delivery(delivery).build().expect("runtime")
}

fn runtime_flags() -> Vec<String> {
    let choice = RUNTIME_CHOICE.get_or_init(|| RuntimeChoice { io_threads: 2, inline: false });
    let delivery = if choice.inline { "inline" } else { "ordered" };
    vec!["--io-threads".into(), choice.io_threads.to_string(), "--delivery".into(), delivery.into()]
}

/// A receiving node: counts (sink) or sends each message back (echo). Prints its port,
/// then the count when stdin closes.
fn serve(role: &str, synchronous: bool) {
    let rt = runtime();
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
        let mut child = Command::new(exe)
            .args(args)
            .args(runtime_flags())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
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
    let rt = runtime();
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
    // With the window full the sender sleeps until half of it completed: spinning
    // would take a core from the I/O threads of both processes (2 cores here).
    let wake_at = Arc::new(AtomicU64::new(u64::MAX));
    let sender = std::thread::current();
    while Instant::now() < end {
        while sent - done.load(Ordering::Acquire) < window {
            let (done, failed, wake_at, sender) = (done.clone(), failed.clone(), wake_at.clone(), sender.clone());
            node.send(to, Outgoing::new(payload.clone())).then(move |result| {
                if !matches!(result, Ok(Ok(()))) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                if done.fetch_add(1, Ordering::AcqRel) + 1 == wake_at.load(Ordering::Acquire) {
                    sender.unpark();
                }
            });
            sent += 1;
        }
        wake_at.store(sent - window / 2, Ordering::Release);
        while done.load(Ordering::Acquire) < sent - window / 2 {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        wake_at.store(u64::MAX, Ordering::Release);
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
    let rt = runtime();
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
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut choice = RuntimeChoice { io_threads: 2, inline: false };
    while let Some(at) = args.iter().position(|a| a == "--io-threads" || a == "--delivery") {
        let value = args.get(at + 1).cloned().unwrap_or_default();
        if args[at] == "--io-threads" {
            choice.io_threads = value.parse().expect("--io-threads N");
        } else {
            choice.inline = match value.as_str() {
                "inline" => true,
                "ordered" => false,
                other => panic!("--delivery inline|ordered, not {other:?}"),
            };
        }
        args.drain(at..(at + 2).min(args.len()));
    }
    let _ = RUNTIME_CHOICE.set(choice);
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
