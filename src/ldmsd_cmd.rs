//! `pvloom ldmsd`: an LDMS daemon that takes ldmsd's flags and configuration files.
//!
//! Its flags follow ldmsd's getopt letters, so they are parsed apart from the rest of the
//! command line (ldmsd's `-v LEVEL` would clash with pvloom's global `-v` count).

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use pvloom_ldmsd::daemon::{Daemon, DaemonOptions, parse_listen_flag};
use tracing_subscriber::EnvFilter;

/// An LDMS daemon (sampler and aggregator) speaking ldmsd 4.x's wire protocol.
#[derive(Debug, Parser)]
#[command(name = "pvloom ldmsd", version)]
pub struct LdmsdArgs {
    /// Listen for LDMS peers: `XPRT:PORT[:ADDR]` (only `sock`; all addresses unless ADDR).
    #[arg(short = 'x', value_name = "XPRT:PORT[:ADDR]")]
    listen: Vec<String>,
    /// Configuration file in ldmsd's language (load/config/start, prdcr_*, updtr_*, strgp_*).
    #[arg(short = 'c', value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Stay in the foreground (without it the daemon detaches, as ldmsd does).
    #[arg(short = 'F')]
    foreground: bool,
    /// Log level: DEBUG, INFO, WARNING, ERROR, CRITICAL or QUIET.
    #[arg(short = 'v', value_name = "LEVEL", default_value = "ERROR")]
    verbosity: String,
    /// Log to this file instead of stderr.
    #[arg(short = 'l', value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Write the process id to this file.
    #[arg(short = 'r', value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Set memory size (accepted for compatibility: sets are allocated one by one).
    #[arg(short = 'm', value_name = "SIZE")]
    memory: Option<String>,
    /// I/O threads (ldmsd's -P).
    #[arg(short = 'P', value_name = "N", default_value_t = 2)]
    threads: usize,
    /// Stop after this many seconds (tests and benchmarks; default: run until signalled).
    #[arg(long, value_name = "S")]
    run_for: Option<f64>,
}

fn level_filter(level: &str) -> anyhow::Result<&'static str> {
    Ok(match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" => "error",
        "QUIET" => "off",
        other => bail!("unknown log level {other:?} (DEBUG, INFO, WARNING, ERROR, CRITICAL, QUIET)"),
    })
}

fn init_logging(args: &LdmsdArgs) -> anyhow::Result<()> {
    let level = level_filter(&args.verbosity)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    match &args.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(file).with_ansi(false).init();
        }
        None => {
            let ansi = std::io::stderr().is_terminal();
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
        }
    }
    Ok(())
}

/// Detach as ldmsd does without `-F`: the same command (`argv`, from `ldmsd` on) runs again in the foreground in a
/// new session with its standard streams closed, and this process exits.
fn detach(argv: &[OsString]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().context("cannot find the pvloom executable")?;
    let child = Command::new(exe)
        .args(argv)
        .arg("-F")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the detached daemon")?;
    println!("pvloom ldmsd detached, pid {}", child.id());
    Ok(())
}

/// Run `pvloom ldmsd` with `argv` (from `ldmsd` on).
pub fn main(argv: &[OsString]) -> anyhow::Result<()> {
    let args = LdmsdArgs::parse_from(argv);
    if !args.foreground {
        return detach(argv);
    }
    init_logging(&args)?;
    if let Some(m) = &args.memory {
        tracing::debug!("-m {m}: sets are allocated one by one");
    }
    let daemon = Daemon::new(DaemonOptions { io_threads: args.threads.max(1), ..DaemonOptions::default() })?;
    // Configuration first, then the -x listeners. `msg_enable` may come anywhere: each
    // listener advertises the message service as it is when a peer connects.
    for file in &args.config {
        daemon.apply_file(file)?;
    }
    for spec in &args.listen {
        let addr = parse_listen_flag(spec).map_err(anyhow::Error::msg).with_context(|| format!("-x {spec}"))?;
        daemon.listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    }
    if daemon.listen_addrs().is_empty() && daemon.producers().is_empty() {
        tracing::warn!("no listener (-x or listen) and no producer: nothing can reach this daemon's sets");
    }
    if let Some(path) = &args.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tracing::info!(sets = daemon.registry().len(), addrs = ?daemon.listen_addrs(), "pvloom ldmsd running");
    let runtime = daemon.runtime().handle();
    let mut collector = BurstCollector::new(runtime.io_threads());
    // Once at start: the configuration's transients go back to the OS.
    crate::release_freed_memory();
    wait_for_stop(args.run_for, || {
        let busy: Vec<Duration> = runtime.thread_stats().iter().map(|t| t.busy_total).collect();
        let quiet_after_burst = collector.quiet_after_burst(&busy);
        if quiet_after_burst.is_empty() {
            return;
        }
        // On each thread whose burst ended: the empty pages its own heap kept (mimalloc
        // would free them only on that thread's later allocations); then, here, the
        // arenas' freed pages go back to the OS.
        for i in quiet_after_burst {
            let _ = runtime.run_on(i, |_| crate::release_freed_memory());
        }
        crate::release_freed_memory();
    });
    tracing::info!("pvloom ldmsd stopping");
    if let Some(path) = &args.pid_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Work in one collection tick (about a second) above which an I/O thread is in a burst.
const BURST_WORK: Duration = Duration::from_millis(20);

/// Which I/O threads to collect: those whose burst of work just ended. A collection
/// walks the thread's pages (a few hundred microseconds): once a second on every thread
/// it was a sixth of an aggregator's CPU at 100 updates a second, where nothing needs
/// giving back; after a burst, it bounds how long the burst's pages stay committed.
struct BurstCollector {
    last_busy: Vec<Duration>,
    in_burst: Vec<bool>,
}

impl BurstCollector {
    fn new(threads: usize) -> BurstCollector {
        BurstCollector { last_busy: vec![Duration::ZERO; threads], in_burst: vec![false; threads] }
    }

    /// Given each thread's total work so far, the threads that worked more than
    /// [`BURST_WORK`] in an earlier tick and less in this one.
    fn quiet_after_burst(&mut self, busy_total: &[Duration]) -> Vec<usize> {
        let mut ended = Vec::new();
        for (i, &total) in busy_total.iter().enumerate().take(self.last_busy.len()) {
            let worked = total.saturating_sub(self.last_busy[i]);
            self.last_busy[i] = total;
            if worked > BURST_WORK {
                self.in_burst[i] = true;
            } else if std::mem::take(&mut self.in_burst[i]) {
                ended.push(i);
            }
        }
        ended
    }
}

/// Every this many quarter-second waits, [`wait_for_stop`] calls its `tick`.
const TICKS_PER_COLLECT: u32 = 4;

/// Block until SIGINT or SIGTERM (or `run_for` seconds), calling `tick` about every second.
fn wait_for_stop(run_for: Option<f64>, mut tick: impl FnMut()) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let deadline = run_for.map(|s| std::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut ticks = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        // Only this thread waits here; a signal is seen within a quarter second.
        std::thread::sleep(Duration::from_millis(250));
        ticks += 1;
        if ticks.is_multiple_of(TICKS_PER_COLLECT) {
            tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_collected_once_when_its_burst_ends() {
        let ms = Duration::from_millis;
        let mut c = BurstCollector::new(2);
        // Thread 0 idles along at 1 ms a tick; thread 1 works 500 ms a tick, then stops.
        assert!(c.quiet_after_burst(&[ms(1), ms(500)]).is_empty());
        assert!(c.quiet_after_burst(&[ms(2), ms(1000)]).is_empty(), "still in its burst");
        assert_eq!(c.quiet_after_burst(&[ms(3), ms(1001)]), vec![1], "the burst ended");
        assert!(c.quiet_after_burst(&[ms(4), ms(1002)]).is_empty(), "collected once, not every tick");
        assert!(c.quiet_after_burst(&[ms(5), ms(1003)]).is_empty(), "a steady light load is never collected");
    }
}
