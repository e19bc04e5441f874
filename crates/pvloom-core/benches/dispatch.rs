//! Dispatch costs of the callback contract, next to the baselines measured in the same
//! run: a direct function call loop and a crossbeam-channel ping-pong.
//!
//! `cargo bench -p pvloom-core --bench dispatch` prints a table. Under
//! `cargo test --benches` it runs each measurement once with tiny counts (compiles,
//! exercises, times nothing meaningful).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pvloom_core::delivery::WorkerPool;
use pvloom_core::{Containment, Deliverer, Overflow, completion};

struct Sizes {
    calls: u64,
    jobs: u64,
    round_trips: u64,
}

fn sizes() -> Sizes {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if std::env::args().any(|a| a == "--bench") {
        Sizes { calls: 50_000_000, jobs: 2_000_000, round_trips: 50_000 }
    } else {
        Sizes { calls: 1_000, jobs: 1_000, round_trips: 100 }
    }
}

#[inline(never)]
fn on_event(sink: &AtomicU64, value: u64) {
    sink.fetch_add(black_box(value), Ordering::Relaxed);
}

fn per_call_ns(elapsed: Duration, count: u64) -> f64 {
    elapsed.as_nanos() as f64 / count as f64
}

fn direct_calls(count: u64) -> f64 {
    let sink = AtomicU64::new(0);
    let start = Instant::now();
    for i in 0..count {
        on_event(&sink, i);
    }
    black_box(sink.load(Ordering::Relaxed));
    per_call_ns(start.elapsed(), count)
}

fn inline_dispatch(count: u64) -> f64 {
    static SINK: AtomicU64 = AtomicU64::new(0);
    let deliverer = Deliverer::Inline(Containment::new());
    let start = Instant::now();
    for i in 0..count {
        let _ = deliverer.dispatch("bench.inline", None, move || on_event(&SINK, i));
    }
    black_box(SINK.load(Ordering::Relaxed));
    per_call_ns(start.elapsed(), count)
}

/// Jobs per second through one Ordered source with one worker, produced by one thread.
fn ordered_rate(count: u64) -> f64 {
    let pool = WorkerPool::new("bench", 1, count as usize, Overflow::Error, Containment::new()).unwrap();
    let deliverer = Deliverer::Ordered(pool.source());
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for _ in 0..count {
        let done = done.clone();
        deliverer
            .dispatch("bench.ordered", None, move || {
                done.fetch_add(1, Ordering::Release);
            })
            .unwrap();
    }
    while done.load(Ordering::Acquire) < count {
        std::hint::spin_loop();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Messages per second streamed through a crossbeam channel to one consumer thread.
fn channel_stream_rate(count: u64) -> f64 {
    let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
    let consumer = std::thread::spawn(move || {
        for job in rx.iter() {
            job();
        }
    });
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for _ in 0..count {
        let done = done.clone();
        tx.send(Box::new(move || {
            done.fetch_add(1, Ordering::Release);
        }))
        .unwrap();
    }
    while done.load(Ordering::Acquire) < count {
        std::hint::spin_loop();
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    drop(tx);
    consumer.join().unwrap();
    rate
}

/// Round trips per second and one-way latencies of a crossbeam-channel ping-pong.
fn channel_ping_pong(round_trips: u64) -> (f64, Vec<Duration>) {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<Instant>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<Duration>(1);
    let echo = std::thread::spawn(move || {
        for sent in ping_rx.iter() {
            let one_way = sent.elapsed();
            pong_tx.send(one_way).unwrap();
        }
    });
    let mut latencies = Vec::with_capacity(round_trips as usize);
    let start = Instant::now();
    for _ in 0..round_trips {
        ping_tx.send(Instant::now()).unwrap();
        latencies.push(pong_rx.recv().unwrap());
    }
    let rate = round_trips as f64 / start.elapsed().as_secs_f64();
    drop(ping_tx);
    echo.join().unwrap();
    (rate, latencies)
}

/// The crossbeam ping-pong with one-shot completions in place of the channels: each
/// message is a `succeed` on one thread and a `wait` on the other.
fn completion_ping_pong(round_trips: u64) -> (f64, Vec<Duration>) {
    let n = round_trips as usize;
    let (ping_tx, ping_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| completion::<Instant>()).unzip();
    let (pong_tx, pong_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| completion::<Duration>()).unzip();
    let echo = std::thread::spawn(move || {
        for (ping, pong) in ping_rx.into_iter().zip(pong_tx) {
            let sent = ping.wait().unwrap();
            pong.succeed(sent.elapsed());
        }
    });
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for (ping, pong) in ping_tx.into_iter().zip(pong_rx) {
        ping.succeed(Instant::now());
        latencies.push(pong.wait().unwrap());
    }
    let rate = round_trips as f64 / start.elapsed().as_secs_f64();
    echo.join().unwrap();
    (rate, latencies)
}

/// Time from `succeed` on one thread to the return of `wait` on another.
fn completion_wake(round_trips: u64) -> (f64, Vec<Duration>) {
    let (request_tx, request_rx) = crossbeam_channel::bounded(1);
    let completer = std::thread::spawn(move || {
        for (completer, ready) in request_rx.iter() {
            let ready: std::sync::mpsc::Sender<()> = ready;
            let _ = ready.send(());
            // Give the waiter time to park, so the wake-up path is what is measured.
            let park = Instant::now();
            while park.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
            }
            let completer: pvloom_core::Completer<Instant> = completer;
            completer.succeed(Instant::now());
        }
    });
    let mut latencies = Vec::with_capacity(round_trips as usize);
    let start = Instant::now();
    for _ in 0..round_trips {
        let (tx, rx) = completion::<Instant>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        request_tx.send((tx, ready_tx)).unwrap();
        ready_rx.recv().unwrap();
        let completed_at = rx.wait().unwrap();
        latencies.push(completed_at.elapsed());
    }
    let rate = round_trips as f64 / start.elapsed().as_secs_f64();
    drop(request_tx);
    completer.join().unwrap();
    (rate, latencies)
}

/// The same measurement with a channel receive in place of the completion.
fn channel_wake(round_trips: u64) -> Vec<Duration> {
    let (request_tx, request_rx) = crossbeam_channel::bounded(1);
    let sender = std::thread::spawn(move || {
        for (reply, ready) in request_rx.iter() {
            let ready: std::sync::mpsc::Sender<()> = ready;
            let _ = ready.send(());
            let park = Instant::now();
            while park.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
            }
            let reply: crossbeam_channel::Sender<Instant> = reply;
            reply.send(Instant::now()).unwrap();
        }
    });
    let mut latencies = Vec::with_capacity(round_trips as usize);
    for _ in 0..round_trips {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        request_tx.send((tx, ready_tx)).unwrap();
        ready_rx.recv().unwrap();
        let sent_at = rx.recv().unwrap();
        latencies.push(sent_at.elapsed());
    }
    drop(request_tx);
    sender.join().unwrap();
    latencies
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn main() {
    let sizes = sizes();
    let direct = direct_calls(sizes.calls);
    let inline = inline_dispatch(sizes.calls);
    let ordered = ordered_rate(sizes.jobs);
    let stream = channel_stream_rate(sizes.jobs);
    let (ping_rate, mut ping_lat) = channel_ping_pong(sizes.round_trips);
    let (completion_rate, mut completion_lat) = completion_ping_pong(sizes.round_trips);
    let (_, mut wake_lat) = completion_wake(sizes.round_trips);
    let mut chan_wake_lat = channel_wake(sizes.round_trips);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (w50, w99) = (percentile(&mut wake_lat, 0.5), percentile(&mut wake_lat, 0.99));
    let (c50, c99) = (percentile(&mut chan_wake_lat, 0.5), percentile(&mut chan_wake_lat, 0.99));
    let (p50, p99) = (percentile(&mut ping_lat, 0.5), percentile(&mut ping_lat, 0.99));
    let (k50, k99) = (percentile(&mut completion_lat, 0.5), percentile(&mut completion_lat, 0.99));
    println!(
        "pvloom-core dispatch benchmark ({} calls, {} jobs, {} round trips)",
        sizes.calls, sizes.jobs, sizes.round_trips
    );
    println!("{:<44} {:>14} {:>14}", "measurement", "value", "ratio");
    println!("{:<44} {:>11.2} ns {:>14}", "direct function call", direct, "1.00x");
    println!("{:<44} {:>11.2} ns {:>13.2}x", "Inline dispatch (contained callback)", inline, inline / direct);
    println!("{:<44} {:>10.0} k/s {:>14}", "crossbeam ping-pong round trips", ping_rate / 1e3, "1.00x");
    println!(
        "{:<44} {:>10.0} k/s {:>13.2}x",
        "Ordered dispatch rate (1 source, 1 worker)",
        ordered / 1e3,
        ordered / ping_rate
    );
    println!(
        "{:<44} {:>10.0} k/s {:>13.2}x",
        "  vs crossbeam one-way stream of closures",
        stream / 1e3,
        ordered / stream
    );
    println!("{:<44} {:>7.1}/{:>5.1} us {:>14}", "crossbeam ping-pong one-way p50/p99", us(p50), us(p99), "1.00x");
    println!(
        "{:<44} {:>7.1}/{:>5.1} us {:>6.2}x/{:.2}x",
        "completion ping-pong one-way p50/p99",
        us(k50),
        us(k99),
        us(k50) / us(p50).max(1e-3),
        us(k99) / us(p99).max(1e-3)
    );
    println!(
        "{:<44} {:>10.0} k/s {:>13.2}x",
        "completion ping-pong round trips",
        completion_rate / 1e3,
        completion_rate / ping_rate
    );
    println!(
        "{:<44} {:>7.1}/{:>5.1} us {:>14}",
        "channel wake of a parked receiver p50/p99",
        us(c50),
        us(c99),
        "1.00x"
    );
    println!(
        "{:<44} {:>7.1}/{:>5.1} us {:>6.2}x/{:.2}x",
        "completion wake of a parked waiter p50/p99",
        us(w50),
        us(w99),
        us(w50) / us(c50).max(1e-3),
        us(w99) / us(c99).max(1e-3)
    );
}
