//! Each primitive driven by 8 OS threads and 8 async tasks at once loses and
//! duplicates nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::executor::ThreadPool;
use futures::future::join_all;
use pvloom_core::sync::{AsyncResult, Event, Launcher, Lock, Queue, RLock, Thread, ThreadResource};

const THREADS: usize = 8;
const TASKS: usize = 8;
const PER_PARTY: u64 = 2_000;

/// Run `thread_body(i)` on 8 OS threads and `task_body(i)` as 8 async tasks on a
/// 2-thread executor, all at once, and wait for all of them.
fn drive<F, Fut>(thread_body: impl Fn(usize) + Send + Sync + 'static, task_body: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let thread_body = Arc::new(thread_body);
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let body = thread_body.clone();
            std::thread::spawn(move || body(i))
        })
        .collect();
    let pool = ThreadPool::builder().pool_size(2).create().unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (tx, rx) = futures::channel::oneshot::channel();
            let fut = task_body(THREADS + i);
            pool.spawn_ok(async move {
                fut.await;
                let _ = tx.send(());
            });
            rx
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    futures::executor::block_on(join_all(tasks)).into_iter().for_each(|r| r.unwrap());
}

#[test]
fn queue_mpmc_loses_and_duplicates_nothing() {
    let queue = Arc::new(Queue::bounded(64));
    let received = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let parties = (THREADS + TASKS) as u64;
    // Producers and consumers together: each party puts its own PER_PARTY items and takes
    // PER_PARTY items (whoever's they are).
    let (q1, r1, q2, r2) = (queue.clone(), received.clone(), queue.clone(), received.clone());
    drive(
        move |party| {
            let mut got = Vec::new();
            for n in 0..PER_PARTY {
                q1.put(party as u64 * PER_PARTY + n).unwrap();
                got.push(q1.get_timeout(Duration::from_secs(10)).unwrap());
            }
            r1.lock().extend(got);
        },
        move |party| {
            let (queue, received) = (q2.clone(), r2.clone());
            async move {
                let mut got = Vec::new();
                for n in 0..PER_PARTY {
                    queue.put_async(party as u64 * PER_PARTY + n).await.unwrap();
                    got.push(queue.get_async().await.unwrap());
                }
                received.lock().extend(got);
            }
        },
    );
    let received = received.lock();
    let unique: HashSet<_> = received.iter().copied().collect();
    assert_eq!(received.len() as u64, parties * PER_PARTY, "nothing lost");
    assert_eq!(unique.len(), received.len(), "nothing duplicated");
    assert!(queue.is_empty());
}

/// Increment a counter with a deliberately non-atomic read-modify-write under the lock:
/// any overlap of two holders loses an increment.
fn bump(counter: &AtomicU64) {
    let value = counter.load(Ordering::Relaxed);
    std::hint::spin_loop();
    counter.store(value + 1, Ordering::Relaxed);
}

#[test]
fn lock_excludes_threads_and_tasks() {
    let lock = Arc::new(Lock::new());
    let counter = Arc::new(AtomicU64::new(0));
    let (l1, c1, l2, c2) = (lock.clone(), counter.clone(), lock.clone(), counter.clone());
    drive(
        move |_| {
            for _ in 0..PER_PARTY {
                let _guard = l1.acquire().unwrap();
                bump(&c1);
            }
        },
        move |_| {
            let (lock, counter) = (l2.clone(), c2.clone());
            async move {
                for _ in 0..PER_PARTY {
                    let _guard = lock.acquire_async().await;
                    bump(&counter);
                }
            }
        },
    );
    assert_eq!(counter.load(Ordering::SeqCst), (THREADS + TASKS) as u64 * PER_PARTY);
    assert!(!lock.is_locked());
}

#[test]
fn rlock_excludes_and_reenters() {
    let lock = Arc::new(RLock::new());
    let counter = Arc::new(AtomicU64::new(0));
    let (l1, c1, l2, c2) = (lock.clone(), counter.clone(), lock.clone(), counter.clone());
    drive(
        move |_| {
            for _ in 0..PER_PARTY {
                let _outer = l1.acquire().unwrap();
                let _inner = l1.acquire().unwrap();
                bump(&c1);
            }
        },
        move |_| {
            let (lock, counter) = (l2.clone(), c2.clone());
            async move {
                for _ in 0..PER_PARTY {
                    let outer = lock.acquire_async().await;
                    let _inner = outer.reenter();
                    bump(&counter);
                }
            }
        },
    );
    assert_eq!(counter.load(Ordering::SeqCst), (THREADS + TASKS) as u64 * PER_PARTY);
    assert_eq!(lock.depth(), 0);
}

#[test]
fn event_wakes_every_waiter_each_round() {
    const ROUNDS: usize = 50;
    let go: Arc<Vec<Event>> = Arc::new((0..ROUNDS).map(|_| Event::new()).collect());
    let woke = Arc::new(AtomicUsize::new(0));
    let setter = {
        let (go, woke) = (go.clone(), woke.clone());
        std::thread::spawn(move || {
            for (round, event) in go.iter().enumerate() {
                // Set each round only once every party finished the previous one.
                while woke.load(Ordering::SeqCst) < round * (THREADS + TASKS) {
                    std::thread::yield_now();
                }
                event.set();
            }
        })
    };
    let (g1, w1, g2, w2) = (go.clone(), woke.clone(), go.clone(), woke.clone());
    drive(
        move |_| {
            for event in g1.iter() {
                assert!(event.wait_timeout(Duration::from_secs(10)).unwrap());
                w1.fetch_add(1, Ordering::SeqCst);
            }
        },
        move |_| {
            let (go, woke) = (g2.clone(), w2.clone());
            async move {
                for event in go.iter() {
                    event.wait_async().await;
                    woke.fetch_add(1, Ordering::SeqCst);
                }
            }
        },
    );
    setter.join().unwrap();
    assert_eq!(woke.load(Ordering::SeqCst), ROUNDS * (THREADS + TASKS));
}

#[test]
fn async_result_reaches_every_reader_once_set() {
    for round in 0..20u64 {
        let result = Arc::new(AsyncResult::new());
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let setter = {
            let result = result.clone();
            std::thread::spawn(move || result.set(round).unwrap())
        };
        let (r1, s1, r2, s2) = (result.clone(), seen.clone(), result.clone(), seen.clone());
        drive(
            move |_| s1.lock().push(r1.get_timeout(Duration::from_secs(10)).unwrap()),
            move |_| {
                let (result, seen) = (r2.clone(), s2.clone());
                async move {
                    let value = result.get_async().await.unwrap();
                    seen.lock().push(value);
                }
            },
        );
        setter.join().unwrap();
        assert_eq!(*seen.lock(), vec![round; THREADS + TASKS]);
    }
}

#[test]
fn launcher_runs_every_applied_function_once_on_its_owner() {
    let (launcher_tx, launcher_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(Event::new());
    let ran = Arc::new(AtomicU64::new(0));
    let owner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let launcher = Launcher::new();
            launcher_tx.send(launcher.clone()).unwrap();
            while !stop.is_set() {
                launcher.serve(Duration::from_millis(5)).unwrap();
            }
            launcher.run_pending().unwrap();
            std::thread::current().id()
        })
    };
    let launcher: Launcher = launcher_rx.recv().unwrap();
    let results = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let owner_id = owner.thread().id();
    let (la1, ra1, rs1, la2, ra2, rs2) =
        (launcher.clone(), ran.clone(), results.clone(), launcher.clone(), ran.clone(), results.clone());
    const CALLS: u64 = 300;
    drive(
        move |party| {
            for n in 0..CALLS {
                let ran = ra1.clone();
                let value = la1
                    .apply(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(std::thread::current().id(), owner_id);
                        party as u64 * CALLS + n
                    })
                    .unwrap();
                rs1.lock().push(value);
            }
        },
        move |party| {
            let (launcher, ran, results) = (la2.clone(), ra2.clone(), rs2.clone());
            async move {
                for n in 0..CALLS {
                    let ran = ran.clone();
                    let value = launcher
                        .apply_async(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            party as u64 * CALLS + n
                        })
                        .await
                        .unwrap();
                    results.lock().push(value);
                }
            }
        },
    );
    stop.set();
    owner.join().unwrap();
    let results = results.lock();
    let unique: HashSet<_> = results.iter().copied().collect();
    let expected = (THREADS + TASKS) as u64 * CALLS;
    assert_eq!(ran.load(Ordering::SeqCst), expected, "each ran exactly once");
    assert_eq!(unique.len() as u64, expected, "nothing lost or duplicated");
}

#[test]
fn thread_serves_threads_and_tasks() {
    let worker = Thread::serving("stress-worker");
    worker.start(true, None).unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    const CALLS: u64 = 300;
    let (w1, r1, w2, r2) = (worker.clone(), ran.clone(), worker.clone(), ran.clone());
    drive(
        move |_| {
            for _ in 0..CALLS {
                let ran = r1.clone();
                w1.apply(move || ran.fetch_add(1, Ordering::SeqCst)).unwrap();
            }
        },
        move |_| {
            let (worker, ran) = (w2.clone(), r2.clone());
            async move {
                for _ in 0..CALLS {
                    let ran = ran.clone();
                    worker.apply_async(move || ran.fetch_add(1, Ordering::SeqCst)).await.unwrap();
                }
            }
        },
    );
    worker.stop(true, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), (THREADS + TASKS) as u64 * CALLS);
}

#[test]
fn thread_resource_one_value_per_thread_dropped_with_it() {
    // Each value has its own serial: addresses are reused once a thread's value is
    // freed, so they cannot tell values apart.
    struct Tracked(Arc<AtomicUsize>, usize);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let resource = {
        let drops = drops.clone();
        let serial = AtomicUsize::new(0);
        Arc::new(ThreadResource::new(move || Tracked(drops.clone(), serial.fetch_add(1, Ordering::SeqCst))))
    };
    let seen = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let (res, s) = (resource.clone(), seen.clone());
    drive(
        move |_| {
            let a = res.get();
            let b = res.get();
            assert!(Arc::ptr_eq(&a, &b));
            s.lock().insert(a.1);
        },
        |_| async {},
    );
    assert_eq!(seen.lock().len(), THREADS, "one value per thread");
    assert_eq!(drops.load(Ordering::SeqCst), THREADS, "dropped when each thread ended");
    assert!(resource.is_empty());
}
