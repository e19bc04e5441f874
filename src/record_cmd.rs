//! `pvloom record`: CA monitors and LDMS sets recorded as one NeXus scan.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::nexus::WriterConfig;
use pvloom_nexus::record::{LdmsSource, RecordSpec};
use pvloom_nexus::service::NexusRecording;

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// CA PVs to monitor (each update is a point of PV:value and PV:epoch).
    #[arg(long, num_args = 1..)]
    ca: Vec<String>,
    /// LDMS sets, HOST:PORT/SET (each update with new data is a point of every metric).
    #[arg(long, num_args = 1..)]
    ldms: Vec<String>,
    /// The NeXus file (appended to if it exists: the scan gets the next free entry).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    seconds: Option<f64>,
    /// Also publish the recording as a blissdata scan in this Redis.
    #[arg(long)]
    redis: Option<String>,
    /// The scan's title.
    #[arg(long, default_value = "pvloom record")]
    title: String,
    /// The scan number (entry N.1).
    #[arg(long, default_value_t = 1)]
    number: u64,
    /// The session the scan belongs to.
    #[arg(long, default_value = "pvloom")]
    session: String,
    /// How often LDMS sets are updated, in seconds.
    #[arg(long, default_value_t = 1.0)]
    ldms_interval: f64,
    /// How long every PV and set may take to answer before recording starts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{what} must be a non-negative number of seconds"))
}

pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let ldms = args.ldms.iter().map(|s| s.parse::<LdmsSource>()).collect::<Result<Vec<_>, _>>()?;
    let spec = RecordSpec {
        ca: args.ca.clone(),
        ldms,
        ldms_interval: seconds(args.ldms_interval, "--ldms-interval")?,
        filename: args.out.display().to_string(),
        title: args.title.clone(),
        number: args.number,
        session: args.session.clone(),
        connect_timeout: seconds(args.connect_timeout, "--connect-timeout")?,
        ca_config: None,
    };
    let default_dir = args.out.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let writer = WriterConfig {
        default_dir,
        creator: format!("pvloom {}", env!("CARGO_PKG_VERSION")),
        ..WriterConfig::default()
    };
    let runtime = pvloom_core::Runtime::new().context("starting the runtime")?;
    let recording = NexusRecording::start(&runtime.handle(), &spec, writer, args.redis.as_deref())
        .context("starting the recording")?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("a valid template"));
    let on_terminal = std::io::stderr().is_terminal();
    let start = Instant::now();
    let until = args.seconds.map(|s| seconds(s, "--seconds")).transpose()?.map(|d| start + d);
    let (mut last_points, mut last_at, mut last_line) = (0, start, start);
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        if recording.state() == SubscriberState::Fault {
            bar.finish_and_clear();
            bail!("the recording failed: {}", recording.error().map(|e| e.to_string()).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
        let progress = recording.progress();
        let rate = (progress.points_written - last_points) as f64 / last_at.elapsed().as_secs_f64();
        if last_at.elapsed() >= Duration::from_secs(1) {
            (last_points, last_at) = (progress.points_written, Instant::now());
        }
        let line = format!(
            "{} points ({rate:.0}/s), {} updates, {} dropped, lag {:.0} ms",
            progress.points_written,
            progress.updates,
            progress.dropped,
            progress.lag.as_secs_f64() * 1e3
        );
        if on_terminal {
            bar.set_message(line);
            bar.tick();
        } else if last_line.elapsed() >= Duration::from_secs(10) {
            // A log, not a terminal: a plain line now and then.
            eprintln!("{line}");
            last_line = Instant::now();
        }
    }
    bar.finish_and_clear();
    recording.stop(Some(Duration::from_secs(30))).context("closing the recording")?;
    let progress = recording.progress();
    if recording.state() == SubscriberState::Fault {
        bail!("the recording failed: {}", recording.error().map(|e| e.to_string()).unwrap_or_default());
    }
    let file = progress.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default();
    println!(
        "recorded {} points ({} updates, {} dropped) into {file}::/{}{}",
        progress.points_written,
        progress.updates,
        progress.dropped,
        progress.entry.as_deref().unwrap_or("-"),
        progress.scan_key.map(|k| format!(", published as {k}")).unwrap_or_default()
    );
    Ok(())
}
