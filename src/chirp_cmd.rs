//! `pvloom chirp …`: chirp tools on pvloom's node, wire-compatible with libchirp 1.2.
//!
//! - `echo`: a node that sends every message back where it came from (the seed's
//!   `pool_echo.py`, for any number of messages), with its rate each second.
//! - `send`: messages to a node, the send rate (asynchronous: handed to the OS;
//!   synchronous: released by the remote) and, when it is an echo, the echo rate.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use pvloom_chirp::{Chirp, ChirpError, Config, Outgoing, SendError};
use pvloom_core::{Delivery, Runtime};

/// chirp tools.
#[derive(Debug, Subcommand)]
pub enum ChirpCommand {
    /// An echo node: every message goes back to its sender, identity kept.
    Echo(EchoArgs),
    /// Send messages to a node and print the rates.
    Send(SendArgs),
}

/// `--sync` / `--async` (libchirp's SYNCHRONOUS; synchronous is its default).
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct Mode {
    /// Synchronous: one message in flight per remote, each acknowledged when released.
    #[arg(long)]
    sync: bool,
    /// Asynchronous: pipelined, a send is done when the OS took it.
    #[arg(long = "async")]
    asynchronous: bool,
}

/// Options of `pvloom chirp echo`.
#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    /// Port to listen on (libchirp's PORT; 0: any free one, printed).
    #[arg(long, short, default_value_t = 2998)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: Ipv4Addr,
    #[command(flatten)]
    mode: Mode,
    /// Exit after echoing this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
}

/// Options of `pvloom chirp send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The node to send to.
    target: String,
    /// How many messages.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    count: u64,
    /// Synchronous mode (default: asynchronous).
    #[arg(long)]
    sync: bool,
    /// Data bytes per message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// This node's port, where echoes come back (0: any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How long to wait for echoes after the last send, in seconds.
    #[arg(long, default_value_t = 5.0)]
    wait: f64,
}

pub fn run(command: ChirpCommand) -> anyhow::Result<()> {
    match command {
        ChirpCommand::Echo(args) => echo(&args),
        ChirpCommand::Send(args) => send(&args),
    }
}

fn runtime() -> anyhow::Result<Runtime> {
    // Inline: the echo answers on the I/O thread that read the message, no hand-off.
    Runtime::builder().io_threads(2).delivery(Delivery::Inline).build().context("starting the runtime")
}

fn config(port: u16, bind: Ipv4Addr, synchronous: bool) -> Config {
    // The CLI talks plain chirp (libchirp encrypts no loopback peer either); TLS needs
    // the PEM files of a Config, which the CLI does not take.
    Config { port, bind_v4: bind, synchronous, disable_encryption: true, ..Config::default() }
}

fn mode_name(synchronous: bool) -> &'static str {
    if synchronous { "sync" } else { "async" }
}

fn echo(args: &EchoArgs) -> anyhow::Result<()> {
    let synchronous = !args.mode.asynchronous;
    let runtime = runtime()?;
    let echoed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // The handler needs the node it belongs to, which exists only once started.
    let me: Arc<OnceLock<Chirp>> = Arc::new(OnceLock::new());
    let handler = {
        let (me, echoed, failed) = (me.clone(), echoed.clone(), failed.clone());
        move |msg: pvloom_chirp::Message| {
            let Some(node) = me.get() else { return };
            let reply = Outgoing { identity: msg.identity, header: msg.header.clone(), data: msg.data.clone() };
            let (echoed, failed) = (echoed.clone(), failed.clone());
            node.send(msg.from(), reply).then(move |result| match result {
                Ok(Ok(())) => {
                    echoed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("echo failed: {e}");
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("echo failed: {e}");
                }
            });
        }
    };
    let node = Chirp::start(&runtime.handle(), &config(args.port, args.bind, synchronous), handler)
        .with_context(|| format!("starting the echo node on port {}", args.port))?;
    let port = node.port();
    let identity = node.identity();
    let _ = me.set(node);
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "chirp echo on {}:{port} ({}), identity {identity}", args.bind, mode_name(synchronous))?;
    out.flush()?;
    let start = Instant::now();
    let until = args.seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()).map(|d| start + d);
    let (mut last, mut last_at) = (0, start);
    loop {
        let done = echoed.load(Ordering::Relaxed);
        if stop.load(Ordering::Relaxed)
            || args.count.is_some_and(|c| done >= c)
            || until.is_some_and(|u| Instant::now() >= u)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if last_at.elapsed() >= Duration::from_secs(1) {
            if done != last {
                let rate = (done - last) as f64 / last_at.elapsed().as_secs_f64();
                writeln!(out, "echoed {done} ({rate:.0}/s)")?;
                out.flush()?;
            }
            (last, last_at) = (done, Instant::now());
        }
    }
    if let Some(node) = me.get() {
        node.stop();
    }
    writeln!(
        out,
        "echoed {} messages in {:.2} s, {} failed",
        echoed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed)
    )?;
    Ok(())
}

fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = target.to_socket_addrs().with_context(|| format!("{target:?} is not HOST:PORT"))?;
    // The node listens on IPv4 only: prefer an IPv4 address of a name.
    let all: Vec<_> = addrs.by_ref().collect();
    all.iter().find(|a| a.is_ipv4()).or(all.first()).copied().with_context(|| format!("{target} has no address"))
}

fn send(args: &SendArgs) -> anyhow::Result<()> {
    let to = resolve(&args.target)?;
    let runtime = runtime()?;
    let echoes = Arc::new(AtomicU64::new(0));
    let node = {
        let echoes = echoes.clone();
        Chirp::start(&runtime.handle(), &config(args.port, Ipv4Addr::UNSPECIFIED, args.sync), move |_| {
            echoes.fetch_add(1, Ordering::Relaxed);
        })
        .context("starting the sending node")?
    };
    let data = pvloom_core::bytes::Bytes::from(vec![b'x'; args.size]);
    // A window of sends in flight: pipelined, within the node's bounded queue.
    const WINDOW: usize = 512;
    let limit = Duration::from_secs(30);
    let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
    let mut failed = 0u64;
    let start = Instant::now();
    for _ in 0..args.count {
        if in_flight.len() >= WINDOW {
            failed += u64::from(!finished(in_flight.pop_front(), limit)?);
        }
        in_flight.push_back(node.send(to, Outgoing::new(data.clone())));
    }
    while let Some(send) = in_flight.pop_front() {
        failed += u64::from(!finished(Some(send), limit)?);
    }
    let sent_in = start.elapsed();
    let expected = args.count - failed;
    let wait_until = Instant::now() + Duration::try_from_secs_f64(args.wait.max(0.0)).unwrap_or(Duration::ZERO);
    while echoes.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let echoed_in = start.elapsed();
    let echoed = echoes.load(Ordering::Relaxed);
    node.stop();
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let how = if args.sync { "sync, each released by the remote" } else { "async, handed to the OS" };
    println!(
        "sent {} of {} messages of {} bytes to {to} in {:.3} s: {:.0} msg/s ({how})",
        args.count - failed,
        args.count,
        args.size,
        sent_in.as_secs_f64(),
        rate(args.count - failed, sent_in)
    );
    println!("{echoed} echoed in {:.3} s: {:.0} round trips/s", echoed_in.as_secs_f64(), rate(echoed, echoed_in));
    if failed > 0 {
        bail!("{failed} sends failed");
    }
    Ok(())
}

/// Wait for one send; false if it failed (the reason is logged).
fn finished(send: Option<pvloom_chirp::node::SendCompletion>, limit: Duration) -> anyhow::Result<bool> {
    let Some(send) = send else { return Ok(true) };
    match send.wait_timeout(limit).context("waiting for a send")? {
        Ok(()) => Ok(true),
        Err(ChirpError::Send(SendError::QueueFull { .. })) => {
            bail!("the send queue is full: the remote does not keep up")
        }
        Err(e) => {
            tracing::warn!("send failed: {e}");
            Ok(false)
        }
    }
}
