//! HubTrigger across threads: coalescing under contention, no run lost, async hubs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pvloom_core::sync::{HubTrigger, Launcher};

#[test]
fn eight_threads_sending_ten_thousand_each_coalesce_and_lose_no_run() {
    const SENDERS: usize = 8;
    const SENDS: usize = 10_000;
    let launcher = Launcher::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    // Each run records how many sends had happened when it started; the last run must
    // start after the last send, or that send was lost.
    let seen_at_last_run = Arc::new(AtomicUsize::new(0));
    let (counter, sent_probe, last) = (runs.clone(), sent.clone(), seen_at_last_run.clone());
    let trigger = Arc::new(HubTrigger::new(&launcher, false, move || {
        counter.fetch_add(1, Ordering::SeqCst);
        last.store(sent_probe.load(Ordering::SeqCst), Ordering::SeqCst);
    }));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (trigger, sent) = (trigger.clone(), sent.clone());
            std::thread::spawn(move || {
                for _ in 0..SENDS {
                    sent.fetch_add(1, Ordering::SeqCst);
                    assert!(trigger.send());
                }
            })
        })
        .collect();
    while senders.iter().any(|s| !s.is_finished()) {
        launcher.serve(Duration::from_millis(5)).unwrap();
    }
    for sender in senders {
        sender.join().unwrap();
    }
    launcher.run_pending().unwrap();
    let total = SENDERS * SENDS;
    let runs = runs.load(Ordering::SeqCst);
    assert!((1..=total).contains(&runs), "runs {runs}");
    assert_eq!(seen_at_last_run.load(Ordering::SeqCst), total, "a run must follow the last send");
    assert!(!trigger.is_pending());
}

#[test]
fn a_send_from_another_thread_runs_on_the_hub_thread() {
    let launcher = Launcher::new();
    let hub = std::thread::current().id();
    let ran_on_hub = Arc::new(AtomicUsize::new(0));
    let flag = ran_on_hub.clone();
    let trigger = Arc::new(HubTrigger::new(&launcher, true, move || {
        if std::thread::current().id() == hub {
            flag.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let remote = trigger.clone();
    std::thread::spawn(move || remote.send()).join().unwrap();
    while ran_on_hub.load(Ordering::SeqCst) == 0 {
        launcher.serve(Duration::from_millis(50)).unwrap();
    }
    assert_eq!(ran_on_hub.load(Ordering::SeqCst), 1);
}

#[test]
fn an_async_hub_serves_triggers_sent_from_threads() {
    let launcher = Launcher::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let trigger = Arc::new(HubTrigger::new(&launcher, false, move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let remote = trigger.clone();
    let sender = std::thread::spawn(move || remote.send());
    futures::executor::block_on(async {
        while runs.load(Ordering::SeqCst) == 0 {
            launcher.serve_async().await.unwrap();
        }
    });
    assert!(sender.join().unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
