//! `pvloom demo`: the runtime at work, visibly. Timers on the I/O threads produce a
//! random walk and a ramp; their callbacks are delivered in order to worker threads;
//! the terminal shows values, rates and each I/O thread's statistics.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::Mutex;
use pvloom_core::{Delivery, Job, Runtime};

/// Options of `pvloom demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Number of I/O threads.
    #[arg(long, default_value_t = 2)]
    io_threads: usize,
    /// Worker threads for ordered callback delivery.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Update rate of each signal, in Hz.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
}

#[derive(Default)]
struct Signal {
    value: Mutex<f64>,
    updates: AtomicU64,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let runtime = Runtime::builder()
        .io_threads(args.io_threads)
        .delivery(Delivery::ordered(args.workers))
        .build()
        .context("starting the runtime")?;
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1.0));
    let walk = Arc::new(Signal::default());
    let ramp = Arc::new(Signal::default());

    let mut timers = Vec::new();
    for (signal, step) in [(walk.clone(), Step::RandomWalk), (ramp.clone(), Step::Ramp)] {
        let deliverer = runtime.deliverer();
        let mut state = 0.0f64;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        timers.push(runtime.call_every(period, move || {
            state = step.next(state, &mut seed);
            let (signal, value) = (signal.clone(), state);
            // Produced on an I/O thread, consumed on a worker, in order.
            let _ = deliverer.deliver(Job::keyed("demo.update", 0, move || {
                *signal.value.lock() = value;
                signal.updates.fetch_add(1, Ordering::Relaxed);
            }));
        }));
    }

    let start = Instant::now();
    let run_for = Duration::from_secs_f64(args.seconds.max(0.1));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pvloom demo: {} I/O threads, {} workers, {:.0} Hz per signal",
        args.io_threads, args.workers, args.rate
    )?;
    while start.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(250));
        let secs = start.elapsed().as_secs_f64();
        let busy: Vec<String> =
            runtime.thread_stats().iter().map(|s| format!("{} {:>5.1}%", s.name, s.busy_fraction * 100.0)).collect();
        writeln!(
            out,
            "t={secs:5.2}s  walk={:>8.3} ({:>6.0}/s)  ramp={:>7.1} ({:>6.0}/s)  {}",
            *walk.value.lock(),
            walk.updates.load(Ordering::Relaxed) as f64 / secs,
            *ramp.value.lock(),
            ramp.updates.load(Ordering::Relaxed) as f64 / secs,
            busy.join("  "),
        )?;
    }
    for timer in &timers {
        timer.cancel();
    }
    let stats = runtime.thread_stats();
    let callbacks: u64 = stats.iter().map(|s| s.callbacks).sum();
    writeln!(
        out,
        "done: {} + {} updates delivered, {callbacks} I/O-thread callbacks, {} callback failures",
        walk.updates.load(Ordering::Relaxed),
        ramp.updates.load(Ordering::Relaxed),
        runtime.callback_failures()
    )?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Step {
    RandomWalk,
    Ramp,
}

impl Step {
    fn next(self, value: f64, seed: &mut u64) -> f64 {
        match self {
            Step::RandomWalk => {
                // xorshift: enough randomness for a demo without a dependency.
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                value + (*seed as f64 / u64::MAX as f64 - 0.5)
            }
            Step::Ramp => (value + 1.0) % 100.0,
        }
    }
}
