//! The completion hand-off raced across threads. Each scenario runs ITERATIONS
//! times with the two sides on different threads, released at the same instant so that
//! every interleaving of "complete" against "wait / then / await / drop" is exercised.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use pvloom_core::{Error, completion, parts};

/// 20 000 iterations per scenario (stated for the acceptance list).
const ITERATIONS: u64 = 20_000;

fn race(producer: impl FnOnce() + Send + 'static, consumer: impl FnOnce() + Send + 'static) {
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let p = std::thread::spawn(move || {
        b.wait();
        producer();
    });
    barrier.wait();
    consumer();
    p.join().unwrap();
}

#[test]
fn wait_always_gets_the_value() {
    for i in 0..ITERATIONS {
        let (tx, rx) = completion();
        let got = Arc::new(AtomicU64::new(u64::MAX));
        let g = got.clone();
        race(
            move || tx.succeed(i),
            move || g.store(rx.wait_timeout(Duration::from_secs(10)).unwrap(), Ordering::SeqCst),
        );
        assert_eq!(got.load(Ordering::SeqCst), i);
    }
}

#[test]
fn then_runs_exactly_once_whoever_comes_first() {
    let calls = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    for i in 0..ITERATIONS {
        let (tx, rx) = completion();
        let (c, s) = (calls.clone(), sum.clone());
        race(
            move || tx.succeed(i),
            move || {
                rx.then(move |r| {
                    c.fetch_add(1, Ordering::SeqCst);
                    s.fetch_add(r.unwrap(), Ordering::SeqCst);
                })
            },
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), ITERATIONS);
    assert_eq!(sum.load(Ordering::SeqCst), ITERATIONS * (ITERATIONS - 1) / 2);
}

#[test]
fn dropped_producer_always_abandons_never_hangs() {
    for _ in 0..ITERATIONS {
        let (tx, rx) = completion::<u64>();
        let outcome = Arc::new(parking_lot::Mutex::new(None));
        let o = outcome.clone();
        race(move || drop(tx), move || *o.lock() = Some(rx.wait_timeout(Duration::from_secs(10))));
        assert!(matches!(outcome.lock().take(), Some(Err(Error::Abandoned))));
    }
}

#[test]
fn await_always_resolves() {
    for i in 0..ITERATIONS / 4 {
        let (tx, rx) = completion();
        let got = Arc::new(AtomicU64::new(u64::MAX));
        let g = got.clone();
        race(move || tx.succeed(i), move || g.store(futures::executor::block_on(rx).unwrap(), Ordering::SeqCst));
        assert_eq!(got.load(Ordering::SeqCst), i);
    }
}

#[test]
fn parts_arrive_complete_and_in_order_under_races() {
    for _ in 0..ITERATIONS / 10 {
        let (tx, rx) = parts();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = seen.clone();
        race(
            move || {
                for n in 0..8u32 {
                    tx.send(n, n < 7);
                }
            },
            move || rx.on_part(move |part, _more| s.lock().push(part.unwrap())),
        );
        assert_eq!(*seen.lock(), (0..8).collect::<Vec<_>>());
    }
}
