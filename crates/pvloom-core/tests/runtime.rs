//! The runtime contract: I/O threads, delivery, deadlock guard, containment, stats.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::mio::net::TcpListener;
use pvloom_core::mio::{Interest, Registry, Token};
use pvloom_core::sync::Event;
use pvloom_core::{CallbackFailure, Delivery, Error, IoCtx, IoHandler, Job, Keep, Overflow, Runtime, completion};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn io_threads_are_named_and_sized() {
    let runtime = Runtime::builder().io_threads(3).build().unwrap();
    let (tx, rx) = mpsc::channel();
    for index in 0..3 {
        let tx = tx.clone();
        runtime
            .run_on(index, move |ctx: &mut IoCtx<'_>| {
                tx.send((ctx.thread_index(), std::thread::current().name().unwrap().to_owned())).unwrap();
            })
            .unwrap();
    }
    let mut names: Vec<_> = (0..3).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    names.sort();
    assert_eq!(names, vec![(0, "pvloom-io-0".into()), (1, "pvloom-io-1".into()), (2, "pvloom-io-2".into())]);
    assert_eq!(Runtime::new().unwrap().io_threads(), 2, "default size");
}

#[test]
fn blocking_wait_in_inline_callback_returns_would_deadlock_within_50ms() {
    let runtime = Runtime::new().unwrap();
    let (tx, rx) = mpsc::channel();
    runtime
        .spawn(move || {
            let (_never, pending) = completion::<u8>();
            let start = Instant::now();
            let outcome = pending.wait_timeout(Duration::from_secs(5));
            let event = Event::new();
            let event_outcome = event.wait_timeout(Duration::from_secs(5));
            tx.send((outcome, event_outcome, start.elapsed())).unwrap();
        })
        .unwrap();
    let (outcome, event_outcome, elapsed) = rx.recv_timeout(WAIT).unwrap();
    assert!(matches!(outcome, Err(Error::WouldDeadlock)));
    assert!(matches!(event_outcome, Err(Error::WouldDeadlock)));
    assert!(elapsed < Duration::from_millis(50), "refused at once, took {elapsed:?}");
}

#[test]
fn ordered_workers_may_block() {
    let runtime = Runtime::builder().delivery(Delivery::ordered(2)).build().unwrap();
    let deliverer = runtime.deliverer();
    let (tx, rx) = mpsc::channel();
    let (done_tx, done) = completion::<u8>();
    deliverer.deliver(Job::new("test", move || tx.send(done.wait_timeout(Duration::from_secs(5))).unwrap())).unwrap();
    done_tx.succeed(9);
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), 9);
}

#[test]
fn ten_thousand_panicking_callbacks_are_counted_and_the_pool_lives_on() {
    let runtime = Runtime::new().unwrap();
    let hooked = Arc::new(AtomicU64::new(0));
    let origins = Arc::new(Mutex::new(std::collections::HashSet::new()));
    {
        let (hooked, origins) = (hooked.clone(), origins.clone());
        runtime.set_error_hook(Arc::new(move |failure: &CallbackFailure<'_>| {
            hooked.fetch_add(1, Ordering::Relaxed);
            origins.lock().insert((failure.origin.to_owned(), failure.thread.starts_with("pvloom-io-")));
        }));
    }
    for n in 0..10_000 {
        runtime.spawn(move || panic!("callback {n} fails")).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    runtime.spawn(move || tx.send("still running").unwrap()).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "still running");
    let deadline = Instant::now() + WAIT;
    while runtime.callback_failures() < 10_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(runtime.callback_failures(), 10_000);
    assert_eq!(hooked.load(Ordering::Relaxed), 10_000);
    assert_eq!(*origins.lock(), [("runtime.task".to_owned(), true)].into_iter().collect());
    // Every thread of the pool still runs callbacks.
    for index in 0..runtime.io_threads() {
        let (tx, rx) = mpsc::channel();
        runtime.run_on(index, move |_| tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(WAIT).unwrap();
    }
}

#[test]
fn ordered_four_workers_keep_each_sources_arrival_order() {
    const SOURCES: usize = 8;
    const EVENTS: u64 = 10_000;
    let runtime = Runtime::builder()
        .delivery(Delivery::Ordered { workers: 4, capacity: EVENTS as usize, overflow: Overflow::Error })
        .build()
        .unwrap();
    let logs: Vec<Arc<Mutex<Vec<u64>>>> = (0..SOURCES).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let concurrent = Arc::new(AtomicU64::new(0));
    let max_concurrent = Arc::new(AtomicU64::new(0));
    let deliverers: Vec<_> = (0..SOURCES).map(|_| runtime.deliverer()).collect();
    // Produce from the I/O threads, as protocol events would be.
    let (done_tx, done_rx) = mpsc::channel();
    for (source, deliverer) in deliverers.into_iter().enumerate() {
        let log = logs[source].clone();
        let (concurrent, max_concurrent, done_tx) = (concurrent.clone(), max_concurrent.clone(), done_tx.clone());
        runtime
            .run_on(source, move |_| {
                for n in 0..EVENTS {
                    let log = log.clone();
                    let (concurrent, max_concurrent) = (concurrent.clone(), max_concurrent.clone());
                    deliverer
                        .deliver(Job::new("test.ordered", move || {
                            let now = concurrent.fetch_add(1, Ordering::SeqCst) + 1;
                            max_concurrent.fetch_max(now, Ordering::SeqCst);
                            log.lock().push(n);
                            concurrent.fetch_sub(1, Ordering::SeqCst);
                        }))
                        .unwrap();
                }
                done_tx.send(()).unwrap();
            })
            .unwrap();
    }
    for _ in 0..SOURCES {
        done_rx.recv_timeout(WAIT).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while logs.iter().any(|log| log.lock().len() < EVENTS as usize) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for log in &logs {
        assert_eq!(*log.lock(), (0..EVENTS).collect::<Vec<_>>(), "arrival order kept per source");
    }
    assert!(max_concurrent.load(Ordering::SeqCst) <= 4, "never more callbacks at once than workers");
}

#[test]
fn full_ordered_queue_never_blocks_the_io_thread() {
    let runtime = Runtime::builder()
        .delivery(Delivery::Ordered { workers: 1, capacity: 4, overflow: Overflow::DropOldest })
        .build()
        .unwrap();
    let gate = Arc::new(Event::new());
    let deliverer = runtime.deliverer();
    let (tx, rx) = mpsc::channel();
    let gate_started = Arc::new(Event::new());
    {
        let (gate, started) = (gate.clone(), gate_started.clone());
        deliverer
            .deliver(Job::new("test.gate", move || {
                started.set();
                gate.wait().unwrap();
            }))
            .unwrap();
    }
    // The worker must be inside the gate before the flood, or the gate could be dropped.
    assert!(gate_started.wait_timeout(WAIT).unwrap());
    let d = deliverer.clone();
    runtime
        .spawn(move || {
            let start = Instant::now();
            for _ in 0..1_000 {
                d.deliver(Job::new("test.flood", || {})).unwrap();
            }
            tx.send(start.elapsed()).unwrap();
        })
        .unwrap();
    let elapsed = rx.recv_timeout(WAIT).unwrap();
    assert!(elapsed < Duration::from_secs(1));
    gate.set();
    let pvloom_core::Deliverer::Ordered(queue) = &deliverer else { panic!("ordered runtime") };
    let stats = queue.stats();
    assert!(stats.dropped >= 996, "{stats:?}");
}

#[test]
fn timers_fire_repeat_and_cancel() {
    let runtime = Runtime::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    runtime.call_later(Duration::from_millis(30), move || tx.send(start.elapsed()).unwrap());
    let fired_after = rx.recv_timeout(WAIT).unwrap();
    assert!(fired_after >= Duration::from_millis(30), "{fired_after:?}");

    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let every = runtime.call_every(Duration::from_millis(5), move || {
        t.fetch_add(1, Ordering::SeqCst);
    });
    let deadline = Instant::now() + WAIT;
    while ticks.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    every.cancel();
    std::thread::sleep(Duration::from_millis(30));
    let after_cancel = ticks.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    assert!(after_cancel >= 5);
    assert_eq!(ticks.load(Ordering::SeqCst), after_cancel, "no ticks after cancel");

    let cancelled_fired = Arc::new(AtomicU64::new(0));
    let c = cancelled_fired.clone();
    runtime
        .call_later(Duration::from_millis(20), move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .cancel();
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(cancelled_fired.load(Ordering::SeqCst), 0);
}

/// Echoes every accepted connection's bytes back: a socket owned by an I/O thread.
struct EchoServer {
    listener: TcpListener,
}

struct EchoConn {
    stream: pvloom_core::mio::net::TcpStream,
}

impl IoHandler for EchoServer {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    fn ready(&mut self, ctx: &mut IoCtx<'_>, _: Token, _: &pvloom_core::mio::event::Event) -> Keep {
        while let Ok((stream, _)) = self.listener.accept() {
            ctx.register(Box::new(EchoConn { stream })).unwrap();
        }
        Keep::Yes
    }
}

impl IoHandler for EchoConn {
    fn register(&mut self, registry: &Registry, token: Token) -> std::io::Result<()> {
        registry.register(&mut self.stream, token, Interest::READABLE)
    }

    fn ready(&mut self, _: &mut IoCtx<'_>, _: Token, _: &pvloom_core::mio::event::Event) -> Keep {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Keep::No,
                Ok(n) => self.stream.write_all(&buf[..n]).unwrap(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Keep::Yes,
                Err(_) => return Keep::No,
            }
        }
    }
}

#[test]
fn sockets_are_served_by_io_threads_and_stats_count_them() {
    let runtime = Runtime::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let thread = runtime.least_loaded_thread();
    runtime
        .run_on(thread, move |ctx| {
            tx.send(ctx.register(Box::new(EchoServer { listener })).is_ok()).unwrap();
        })
        .unwrap();
    assert!(rx.recv_timeout(WAIT).unwrap());
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    for round in 0..100u32 {
        client.write_all(&round.to_be_bytes()).unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).unwrap();
        assert_eq!(u32::from_be_bytes(back), round);
    }
    let stats = runtime.thread_stats();
    assert_eq!(stats.len(), 2);
    let served = &stats[thread];
    assert_eq!(served.name, format!("pvloom-io-{thread}"));
    // Edge-triggered readiness: one event may carry several rounds, so at least the
    // accept and one read, and at most one event per round plus the accept.
    assert!((2..=101).contains(&served.events), "{served:?}");
    assert!(served.callbacks >= served.events);
    assert_eq!(served.handlers, 2, "listener and connection");
    assert!((0.0..=1.0).contains(&served.busy_fraction));
}

#[test]
fn busy_fraction_reflects_work() {
    let runtime = Runtime::builder().io_threads(1).build().unwrap();
    runtime
        .spawn(|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1_500) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_700));
    let stats = &runtime.thread_stats()[0];
    assert!(stats.busy_fraction > 0.5, "{stats:?}");
    assert!(stats.busy_total >= Duration::from_millis(1_400));
}

#[test]
fn submit_is_the_non_blocking_form_plus_a_wait() {
    let runtime = Runtime::new().unwrap();
    assert_eq!(runtime.submit(|| 6 * 7).wait_timeout(WAIT).unwrap(), 42);
    assert!(matches!(runtime.submit(|| -> u8 { panic!("x") }).wait_timeout(WAIT), Err(Error::Panicked(_))));
    let (tx, rx) = mpsc::channel();
    runtime.submit(|| "async").then(move |r| tx.send(r.unwrap()).unwrap());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "async");
    assert_eq!(futures::executor::block_on(runtime.submit(|| 1)).unwrap(), 1);
}

#[test]
fn shutdown_closes_handlers_and_refuses_new_work() {
    let runtime = Runtime::new().unwrap();
    let handle = runtime.handle();
    drop(runtime);
    assert!(matches!(handle.spawn(|| {}), Err(Error::Closed(_))));
    assert!(matches!(handle.submit(|| 1).wait(), Err(Error::Closed(_))));
}

#[test]
fn periodic_timer_cancels_itself_and_zero_period_does_not_wedge() {
    let runtime = Runtime::new().unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    runtime
        .run_on(0, move |ctx| {
            let own: Arc<std::sync::OnceLock<pvloom_core::TimerId>> = Arc::default();
            let own_in = own.clone();
            let id = ctx.call_every(Duration::from_millis(2), move |ctx| {
                if r.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                    assert!(ctx.cancel_timer(*own_in.get().unwrap()), "a running timer can cancel itself");
                }
            });
            let _ = own.set(id);
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    let spins = Arc::new(AtomicU64::new(0));
    let s = spins.clone();
    let zero = runtime.call_every(Duration::ZERO, move || {
        s.fetch_add(1, Ordering::Relaxed);
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(runtime.submit(|| 5).wait_timeout(WAIT).unwrap(), 5, "the I/O thread still answers");
    zero.cancel();
    assert!(spins.load(Ordering::Relaxed) > 0);
}

#[test]
fn coalescing_never_drops_one_shot_callbacks() {
    let runtime = Runtime::builder()
        .delivery(Delivery::Ordered { workers: 1, capacity: 2, overflow: Overflow::Coalesce })
        .build()
        .unwrap();
    let deliverer = runtime.deliverer();
    let gate = Arc::new(Event::new());
    let started = Arc::new(Event::new());
    {
        let (gate, started) = (gate.clone(), started.clone());
        deliverer
            .deliver(Job::new("test.gate", move || {
                started.set();
                gate.wait().unwrap();
            }))
            .unwrap();
    }
    assert!(started.wait_timeout(WAIT).unwrap());
    let ran = Arc::new(AtomicU64::new(0));
    for _ in 0..10 {
        let ran = ran.clone();
        deliverer
            .deliver(Job::new("test.once", move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
    }
    for value in 0..10 {
        deliverer.dispatch("test.update", Some(7), move || assert!(value < 10)).unwrap();
    }
    gate.set();
    let deadline = Instant::now() + WAIT;
    while ran.load(Ordering::SeqCst) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 10, "every one-shot callback ran");
}

#[test]
fn tasks_an_io_thread_sends_itself_run_in_order_beside_other_threads_tasks() {
    let runtime = Runtime::builder().io_threads(2).build().unwrap();
    let handle = runtime.handle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let (h, s) = (handle.clone(), seen.clone());
    // A chain: each task on thread 0 sends the next to thread 0 itself, as a completion
    // callback starting the next operation does; thread 1 and this thread send theirs too.
    fn chain(h: pvloom_core::RuntimeHandle, s: Arc<Mutex<Vec<u32>>>, n: u32, tx: mpsc::Sender<usize>) {
        let next = h.clone();
        h.run_on(0, move |ctx: &mut IoCtx<'_>| {
            s.lock().push(n);
            if n == 999 {
                tx.send(ctx.thread_index()).unwrap();
            } else {
                chain(next, s, n + 1, tx);
            }
        })
        .unwrap();
    }
    handle.run_on(0, move |_| chain(h, s, 0, tx)).unwrap();
    let other = Arc::new(AtomicU64::new(0));
    for i in 0..100 {
        let o = other.clone();
        let from = if i % 2 == 0 { 1 } else { 0 };
        let h = handle.clone();
        handle
            .run_on(from, move |_| {
                h.run_on(0, move |_| {
                    o.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            })
            .unwrap();
    }
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 0);
    assert_eq!(*seen.lock(), (0..1000).collect::<Vec<u32>>(), "every task once, in the order sent");
    let end = Instant::now() + WAIT;
    while other.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < end, "the other threads' tasks ran too");
        std::thread::sleep(Duration::from_millis(5));
    }
    // After shutdown, sending is refused.
    drop(runtime);
    assert!(handle.run_on(0, |_| {}).is_err());
}
