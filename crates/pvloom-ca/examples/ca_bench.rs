//! The pvloom (Rust) client of `bench/ca`: runs the benchmark scenarios against the
//! server the environment points at and prints one JSON object of results.
//!
//! Usage: ca_bench SCENARIO PREFIX [SECONDS]
//! Scenarios: read (one PV), batch (1000 PVs), connect (1000 PVs), flood (one PV),
//! many (3000 subscriptions), timers (100 000 reads of 1000 PVs, then the runtime
//! timers still armed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pvloom_ca::client::{Context, DbrClass, ReadOptions, SubscribeOptions};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) of this process, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn names(prefix: &str, stem: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{stem}{i}")).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let scenario = args.get(1).map_or("read", String::as_str);
    let prefix = args.get(2).map_or("B:", String::as_str);
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let ctx = Context::builder().timeout(Duration::from_secs(10)).build()?;
    let mut cpu_per_update_us = None;
    let mut extra = String::new();
    let (rate, unit) = match scenario {
        "read" => {
            let pv = ctx.get_pv(&format!("{prefix}AI"));
            pv.wait_for_connection(None)?;
            let start = Instant::now();
            let mut reads = 0u64;
            while start.elapsed().as_secs_f64() < seconds {
                pv.read()?;
                reads += 1;
            }
            (reads as f64 / start.elapsed().as_secs_f64(), "reads/s")
        }
        "batch" | "connect" => {
            let names = names(prefix, "N", 1000);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let start = Instant::now();
            let pvs = ctx.get_pvs(&refs);
            for pv in &pvs {
                pv.wait_for_connection(None)?;
            }
            let connect = start.elapsed().as_secs_f64();
            if scenario == "connect" {
                (1000.0 / connect, "PVs/s")
            } else {
                let rounds = 5;
                let start = Instant::now();
                for _ in 0..rounds {
                    let pending: Vec<_> = pvs.iter().map(|pv| pv.read_async(ReadOptions::default())).collect();
                    for reading in pending {
                        reading.wait_timeout(Duration::from_secs(10))?;
                    }
                }
                ((1000 * rounds) as f64 / start.elapsed().as_secs_f64(), "reads/s")
            }
        }
        "flood" | "many" => {
            let names = if scenario == "flood" { vec![format!("{prefix}FLOOD")] } else { names(prefix, "C", 3000) };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let pvs = ctx.get_pvs(&refs);
            let received = Arc::new(AtomicU64::new(0));
            let mut handles = Vec::new();
            for pv in &pvs {
                pv.wait_for_connection(None)?;
                let sub = pv.subscribe(SubscribeOptions { class: DbrClass::Time, ..Default::default() });
                let r = received.clone();
                handles.push(sub.add_callback(move |_| {
                    r.fetch_add(1, Ordering::Relaxed);
                }));
            }
            std::thread::sleep(Duration::from_millis(500));
            let before = received.load(Ordering::Relaxed);
            let (start, cpu_before) = (Instant::now(), cpu_seconds());
            std::thread::sleep(Duration::from_secs_f64(seconds));
            let got = received.load(Ordering::Relaxed) - before;
            cpu_per_update_us = Some((cpu_seconds() - cpu_before) * 1e6 / got.max(1) as f64);
            (got as f64 / start.elapsed().as_secs_f64(), "updates/s")
        }
        "timers" => {
            let names = names(prefix, "N", 1000);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let pvs = ctx.get_pvs(&refs);
            for pv in &pvs {
                pv.wait_for_connection(None)?;
            }
            let start = Instant::now();
            for _ in 0..100 {
                let pending: Vec<_> = pvs.iter().map(|pv| pv.read_async(ReadOptions::default())).collect();
                for reading in pending {
                    reading.wait_timeout(Duration::from_secs(10))?;
                }
            }
            let rate = 100_000.0 / start.elapsed().as_secs_f64();
            let stats = ctx.runtime().thread_stats();
            let timers: usize = stats.iter().map(|s| s.timers_pending).sum();
            let circuits = ctx.servers().len();
            extra = format!(", \"timers_after\": {timers}, \"circuits\": {circuits}");
            (rate, "reads/s")
        }
        "connect10k" => {
            let names = names(prefix, "N", 10_000);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let start = Instant::now();
            let pvs = ctx.get_pvs(&refs);
            for pv in &pvs {
                pv.wait_for_connection(Some(Duration::from_secs(60)))?;
            }
            (10_000.0 / start.elapsed().as_secs_f64(), "channels/s")
        }
        "fanout" => {
            // 50 clients, each its own context and circuit, each subscribed to 100 PVs.
            let names = names(prefix, "C", 100);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let received = Arc::new(AtomicU64::new(0));
            let (mut keep, mut clients) = (Vec::new(), Vec::new());
            for _ in 0..50 {
                let client =
                    Context::builder().io_threads(1).max_workers(0).timeout(Duration::from_secs(10)).build()?;
                for pv in client.get_pvs(&refs) {
                    pv.wait_for_connection(None)?;
                    let sub = pv.subscribe(SubscribeOptions { class: DbrClass::Time, ..Default::default() });
                    let r = received.clone();
                    keep.push(sub.add_callback(move |_| {
                        r.fetch_add(1, Ordering::Relaxed);
                    }));
                }
                clients.push(client);
            }
            std::thread::sleep(Duration::from_millis(500));
            let before = received.load(Ordering::Relaxed);
            let start = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(seconds));
            let got = received.load(Ordering::Relaxed) - before;
            (got as f64 / start.elapsed().as_secs_f64(), "updates/s")
        }
        other => return Err(format!("unknown scenario {other}").into()),
    };
    let cpu = cpu_per_update_us.map_or(String::new(), |us| format!(", \"cpu_us_per_update\": {us:.2}"));
    println!("{{\"rate\": {rate:.1}, \"unit\": \"{unit}\", \"rss_mib\": {:.1}{cpu}{extra}}}", peak_rss_mib());
    Ok(())
}
