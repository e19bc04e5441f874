//! `pvloom nexus writer`: the session writer service on a blissdata Redis.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::nexus::WriterConfig;
use pvloom_nexus::service::{NexusSessionWriter, ScanWriterOptions};

#[derive(Subcommand, Debug)]
pub enum NexusCommand {
    /// Record every new blissdata scan of a session (or of all sessions) as NeXus HDF5,
    /// until stopped (SIGINT/SIGTERM) or `--seconds`.
    Writer(WriterArgs),
}

#[derive(Args, Debug)]
pub struct WriterArgs {
    /// The blissdata Redis, e.g. redis://127.0.0.1:6379.
    #[arg(long)]
    redis: String,
    /// Only scans of this BLISS session (default: every session).
    #[arg(long)]
    session: Option<String>,
    /// Where files go for scans whose info names no `filename`.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Close a scan that sends nothing for this many seconds (marked in its entry).
    #[arg(long, default_value_t = 60.0)]
    end_timeout: f64,
    /// Flush the files at least this often (seconds).
    #[arg(long, default_value_t = 0.5)]
    flush_interval: f64,
    /// Write without SWMR (readers cannot follow a running scan).
    #[arg(long)]
    no_swmr: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
}

pub fn run(command: NexusCommand) -> anyhow::Result<()> {
    match command {
        NexusCommand::Writer(args) => writer(&args),
    }
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{what} must be a non-negative number of seconds"))
}

fn writer(args: &WriterArgs) -> anyhow::Result<()> {
    let options = ScanWriterOptions {
        writer: WriterConfig {
            flush_interval: seconds(args.flush_interval, "--flush-interval")?,
            swmr: !args.no_swmr,
            default_dir: args.dir.clone(),
            creator: format!("pvloom {}", env!("CARGO_PKG_VERSION")),
        },
        end_timeout: seconds(args.end_timeout, "--end-timeout")?,
        ..ScanWriterOptions::default()
    };
    let service = NexusSessionWriter::new(&args.redis, args.session.as_deref(), options);
    service.start().with_context(|| format!("watching scans on {}", args.redis))?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let mut out = std::io::stdout().lock();
    match &args.session {
        Some(session) => writeln!(out, "nexus writer on {} for session {session}", args.redis)?,
        None => writeln!(out, "nexus writer on {} for every session", args.redis)?,
    }
    out.flush()?;
    let until = args.seconds.map(|s| seconds(s, "--seconds")).transpose()?.map(|d| Instant::now() + d);
    let mut reported = 0; // the last FinishedScan::seq printed
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        if service.state() == SubscriberState::Fault {
            let cause = service.error().map(|e| e.to_string()).unwrap_or_default();
            bail!("the session writer failed: {cause}");
        }
        let finished = service.finished();
        for scan in finished.iter().filter(|s| s.seq > reported) {
            let file = scan.progress.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default();
            // A scan with subscans has several entries: "7.1,7.2".
            let entry = if scan.progress.entries.is_empty() { "-".to_owned() } else { scan.progress.entries.join(",") };
            match (&scan.state, scan.progress.fault.as_deref().or(scan.error.as_deref())) {
                (SubscriberState::Fault, cause) | (_, cause @ Some(_)) => writeln!(
                    out,
                    "{} {file}::/{entry} FAULT ({}): {} points",
                    scan.key,
                    cause.unwrap_or("killed"),
                    scan.progress.points_written
                )?,
                _ => writeln!(out, "{} {file}::/{entry} {} points", scan.key, scan.progress.points_written)?,
            }
        }
        reported = finished.last().map_or(reported, |s| s.seq);
        out.flush()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    service.stop(Some(Duration::from_secs(30))).context("stopping the scan writers")?;
    for scan in service.finished().iter().filter(|s| s.seq > reported) {
        let file = scan.progress.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default();
        writeln!(out, "{} {file} {} points (stopped)", scan.key, scan.progress.points_written)?;
    }
    Ok(())
}
