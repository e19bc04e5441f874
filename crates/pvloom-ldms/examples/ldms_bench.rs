//! The client half of `bench/ldms`: `ldms_bench HOST:PORT [--seconds S] [--window W]
//! [--server-pid PID] [--regex RE] [--blocking]`. `--blocking`: one blocking `update()`
//! after the other from this thread (the round trip an application's loop sees), in
//! place of `W` callback-driven updates in flight.
//!
//! Looks up every set matching RE (default: all), then keeps W updates in flight, each
//! completion starting the next set's update, for S seconds. Prints one line of
//! `key=value` pairs: sets, updates, rate, this process's CPU per update and, given the
//! server's pid, the server's CPU per update (from /proc, user + system).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pvloom_ldms::client::{Set, Xprt, XprtConfig};
use pvloom_ldms::request::LOOKUP_RE;

/// The allocator the `pvloom` binary ships with, so the numbers are the binary's (a
/// client application picks its own; glibc's was a sixth of this client's CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) of a process, from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name's closing parenthesis; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct Run {
    sets: Vec<Set>,
    next: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

fn start_one(run: &Arc<Run>) {
    if run.stop.load(Ordering::Relaxed) {
        return;
    }
    let i = run.next.fetch_add(1, Ordering::Relaxed) as usize % run.sets.len();
    let r = run.clone();
    run.sets[i].update_cb(move |_, res, _| {
        match res {
            Ok(_) => r.done.fetch_add(1, Ordering::Relaxed),
            Err(_) => r.errors.fetch_add(1, Ordering::Relaxed),
        };
        start_one(&r);
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: ldms_bench HOST:PORT [--seconds S] [--window W] [--server-pid PID] [--regex RE] [--blocking]";
    let addr = args.get(1).ok_or(usage)?.parse()?;
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let seconds: f64 = opt("--seconds").map_or(Ok(5.0), |s| s.parse())?;
    let window: usize = opt("--window").map_or(Ok(256), |s| s.parse())?;
    let server_pid = opt("--server-pid");
    let regex = opt("--regex").unwrap_or_else(|| ".*".into());
    let blocking = args.iter().any(|a| a == "--blocking");

    let rt = pvloom_core::Runtime::builder().io_threads(1).build()?;
    let x = Xprt::connect(&rt.handle(), addr, XprtConfig::default())?;
    let t = Instant::now();
    let sets = x.lookup(&regex, LOOKUP_RE)?;
    let lookup_s = t.elapsed().as_secs_f64();
    if sets.is_empty() {
        return Err("no set matched".into());
    }
    // One update of each first: the first read of a set fetches meta and data.
    for s in &sets {
        s.update()?;
    }
    let run = Arc::new(Run {
        sets,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let me = std::process::id().to_string();
    let (cpu0, srv0) = (cpu_seconds(&me), server_pid.as_deref().and_then(cpu_seconds));
    let t = Instant::now();
    if blocking {
        let end = t + Duration::from_secs_f64(seconds);
        'run: loop {
            for s in &run.sets {
                match s.update() {
                    Ok(_) => run.done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => run.errors.fetch_add(1, Ordering::Relaxed),
                };
            }
            if Instant::now() >= end {
                break 'run;
            }
        }
    } else {
        for _ in 0..window.max(1) {
            start_one(&run);
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
    }
    let n = run.done.load(Ordering::Relaxed);
    let dt = t.elapsed().as_secs_f64();
    let (cpu1, srv1) = (cpu_seconds(&me), server_pid.as_deref().and_then(cpu_seconds));
    run.stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if n > 0 => format!("{:.2}", (b - a) * 1e6 / n as f64),
        _ => "-".into(),
    };
    println!(
        "sets={} set_bytes={} lookup_ms={:.1} updates={n} errors={} rate={:.0} client_cpu_us={} server_cpu_us={}",
        run.sets.len(),
        run.sets[0].meta().meta_sz + run.sets[0].meta().data_sz,
        lookup_s * 1e3,
        run.errors.load(Ordering::Relaxed),
        n as f64 / dt,
        per(cpu0, cpu1),
        per(srv0, srv1),
    );
    x.close();
    Ok(())
}
