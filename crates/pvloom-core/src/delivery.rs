//! Where user callbacks run: on the I/O thread (`Inline`) or on ordered workers.
//!
//! `Ordered` keeps one bounded queue per *source* (a connection, a subscription: the
//! protocol crate decides). A source is served by at most one worker at a time, so its
//! callbacks start — and finish — in arrival order; different sources run in parallel
//! on up to `workers` threads. This is stricter than caproto's `max_workers`, where two
//! callbacks of one circuit may overlap and finish out of order: pvloom's protocol
//! crates make each subscription its own source, which gives the same parallelism
//! across PVs while keeping each PV's updates in order.
//!
//! The queue is bounded. When it is full, the [`Overflow`] policy decides, and the I/O
//! thread never waits: the oldest job is dropped, or a queued job with the same
//! coalescing key is replaced by the newest (the newest value always arrives), or the
//! push fails with [`Error::QueueFull`] so the producer can push back (for example by
//! asking a CA server for `events_off`). Each source counts what it dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::hook::Containment;
use crate::{Error, Result};

/// How a runtime delivers callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Run the callback on the I/O thread that produced the event. Lowest latency; the
    /// callback must not block (blocking pvloom calls return `WouldDeadlock`).
    #[default]
    Inline,
    /// Queue the callback for a pool of worker threads that may block.
    Ordered {
        /// Worker threads shared by all sources.
        workers: usize,
        /// Jobs a single source may have waiting.
        capacity: usize,
        /// What happens when a source's queue is full.
        overflow: Overflow,
    },
}

impl Delivery {
    /// `Ordered` with `workers` threads, 10 000 queued jobs per source, coalescing.
    pub fn ordered(workers: usize) -> Self {
        Delivery::Ordered { workers: workers.max(1), capacity: 10_000, overflow: Overflow::Coalesce }
    }
}

/// What a full per-source queue does with a new job. It never blocks the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the oldest queued job to make room.
    DropOldest,
    /// Replace the queued job with the same key by the new one (it keeps the old one's
    /// place in line); jobs without a key, or without a match, drop the oldest.
    Coalesce,
    /// Refuse the new job with [`Error::QueueFull`].
    Error,
}

/// A queued callback.
pub struct Job {
    origin: &'static str,
    key: Option<u64>,
    run: Box<dyn FnOnce() + Send>,
}

impl Job {
    /// A job with no coalescing key.
    pub fn new(origin: &'static str, run: impl FnOnce() + Send + 'static) -> Self {
        Job { origin, key: None, run: Box::new(run) }
    }

    /// A job that a newer job with the same key may replace while it waits.
    pub fn keyed(origin: &'static str, key: u64, run: impl FnOnce() + Send + 'static) -> Self {
        Job { origin, key: Some(key), run: Box::new(run) }
    }
}

/// Counters of one source's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Jobs accepted.
    pub queued: u64,
    /// Jobs dropped to make room (`DropOldest`, or `Coalesce` without a match).
    pub dropped: u64,
    /// Jobs replaced by a newer job with the same key.
    pub coalesced: u64,
    /// Jobs refused (`Error` policy).
    pub refused: u64,
    /// Jobs waiting now.
    pub pending: u64,
}

/// Runs callbacks for one source with the runtime's chosen delivery.
#[derive(Clone)]
pub enum Deliverer {
    /// Runs each job at once on the calling thread, contained.
    Inline(Containment),
    /// Queues each job on the source's ordered queue.
    Ordered(Arc<SourceQueue>),
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deliverer::Inline(_) => f.write_str("Deliverer::Inline"),
            Deliverer::Ordered(q) => write!(f, "Deliverer::Ordered({:?})", q.stats()),
        }
    }
}

impl Deliverer {
    /// Inline delivery with the process-wide containment.
    pub fn inline() -> Self {
        Deliverer::Inline(Containment::global().clone())
    }

    /// Deliver one job.
    ///
    /// # Errors
    /// [`Error::QueueFull`] under the `Error` policy, [`Error::Closed`] after shutdown.
    #[inline]
    pub fn deliver(&self, job: Job) -> Result<()> {
        match self {
            Deliverer::Inline(containment) => {
                containment.run(job.origin, job.run);
                Ok(())
            }
            Deliverer::Ordered(queue) => queue.push(job),
        }
    }

    /// Deliver a callback without boxing it when delivery is Inline: the hot path of
    /// every protocol event. `key` lets a newer callback replace a queued one under
    /// [`Overflow::Coalesce`].
    ///
    /// # Errors
    /// As [`deliver`](Self::deliver).
    #[inline]
    pub fn dispatch(
        &self,
        origin: &'static str,
        key: Option<u64>,
        callback: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        match self {
            Deliverer::Inline(containment) => {
                containment.run(origin, callback);
                Ok(())
            }
            Deliverer::Ordered(queue) => queue.push(Job { origin, key, run: Box::new(callback) }),
        }
    }

    /// The containment that reports this deliverer's failing callbacks.
    pub fn containment(&self) -> &Containment {
        match self {
            Deliverer::Inline(c) => c,
            Deliverer::Ordered(q) => &q.pool.containment,
        }
    }

    /// True if callbacks run on the producing thread.
    pub fn is_inline(&self) -> bool {
        matches!(self, Deliverer::Inline(_))
    }
}

/// One source's bounded queue of jobs, served in order by one worker at a time.
pub struct SourceQueue {
    pool: Arc<PoolShared>,
    capacity: usize,
    overflow: Overflow,
    state: Mutex<SourceState>,
    dropped: AtomicU64,
    coalesced: AtomicU64,
    refused: AtomicU64,
    queued: AtomicU64,
}

struct SourceState {
    jobs: VecDeque<Job>,
    /// True while the source is in the run queue or being served.
    scheduled: bool,
}

impl SourceQueue {
    /// Queue a job, applying the overflow policy when full. Never blocks.
    ///
    /// # Errors
    /// [`Error::QueueFull`] under the `Error` policy, [`Error::Closed`] after shutdown.
    pub fn push(self: &Arc<Self>, job: Job) -> Result<()> {
        if self.pool.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("callback dispatcher"));
        }
        // Whatever is evicted is dropped after the lock is released: dropping a job can
        // run arbitrary code (a Python `__del__`, an abandoned completion's callback)
        // that may push to this very source.
        let mut evicted: Option<Job> = None;
        let mut state = self.state.lock();
        if state.jobs.len() >= self.capacity {
            match self.overflow {
                Overflow::Error => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    drop(state);
                    drop(job);
                    return Err(Error::QueueFull { capacity: self.capacity });
                }
                // One-shot callbacks (completions, parts; no key) are never dropped: they
                // are bounded by the operations the caller has outstanding.
                Overflow::Coalesce => {
                    if let Some(key) = job.key {
                        if let Some(slot) = state.jobs.iter_mut().rev().find(|queued| queued.key == Some(key)) {
                            evicted = Some(std::mem::replace(slot, job));
                            self.coalesced.fetch_add(1, Ordering::Relaxed);
                            self.queued.fetch_add(1, Ordering::Relaxed);
                            drop(state);
                            drop(evicted);
                            return Ok(());
                        }
                        // Make room by dropping the oldest update, never a one-shot
                        // callback; with none to drop, the new update is the one dropped.
                        match state.jobs.iter().position(|queued| queued.key.is_some()) {
                            Some(oldest) => evicted = state.jobs.remove(oldest),
                            None => {
                                self.dropped.fetch_add(1, Ordering::Relaxed);
                                drop(state);
                                drop(job);
                                return Ok(());
                            }
                        }
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Overflow::DropOldest => {
                    evicted = state.jobs.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        state.jobs.push_back(job);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let schedule = !state.scheduled;
        if schedule {
            state.scheduled = true;
        }
        drop(state);
        drop(evicted);
        if schedule {
            // The run queue is unbounded: scheduling never blocks the producer. It holds at
            // most one entry per source, so it is bounded by the number of sources.
            let _ = self.pool.run_queue.send(Some(self.clone()));
        }
        Ok(())
    }

    /// This source's counters.
    pub fn stats(&self) -> SourceStats {
        SourceStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            pending: self.state.lock().jobs.len() as u64,
        }
    }

    /// Jobs waiting now.
    pub fn len(&self) -> usize {
        self.state.lock().jobs.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Serve up to `budget` jobs; reschedule the source if more remain (fairness).
    /// During shutdown, serve until empty instead: nothing queued is lost.
    fn serve(self: Arc<Self>, budget: usize) {
        let budget = if self.pool.closed.load(Ordering::Acquire) { usize::MAX } else { budget };
        for _ in 0..budget {
            let job = {
                let mut state = self.state.lock();
                match state.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        state.scheduled = false;
                        return;
                    }
                }
            };
            self.pool.containment.run(job.origin, job.run);
        }
        let more = {
            let mut state = self.state.lock();
            if state.jobs.is_empty() {
                state.scheduled = false;
            }
            state.scheduled
        };
        if more {
            let run_queue = self.pool.run_queue.clone();
            let _ = run_queue.send(Some(self));
        }
    }
}

struct PoolShared {
    run_queue: Sender<Option<Arc<SourceQueue>>>,
    containment: Containment,
    closed: AtomicBool,
}

/// The worker threads behind `Ordered` delivery.
pub struct WorkerPool {
    shared: Arc<PoolShared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    capacity: usize,
    overflow: Overflow,
}

/// Jobs a worker runs from one source before letting other sources have a turn.
const FAIRNESS_BUDGET: usize = 64;

/// Runs a worker's turn (up to 64 jobs of one source) inside some context the embedder
/// needs: the Python bindings hold the GIL across the turn instead of taking it once per
/// callback. The wrapper must call the function it is given exactly once.
pub type WorkerWrapper = std::sync::Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

impl WorkerPool {
    /// Start `workers` threads named `{name}-worker-N`.
    ///
    /// # Errors
    /// If the OS refuses a thread.
    pub fn new(
        name: &str,
        workers: usize,
        capacity: usize,
        overflow: Overflow,
        containment: Containment,
    ) -> std::io::Result<Self> {
        Self::with_wrapper(name, workers, capacity, overflow, containment, None)
    }

    /// As [`new`](Self::new), running each worker turn inside `wrapper`.
    ///
    /// # Errors
    /// If the OS refuses a thread.
    pub fn with_wrapper(
        name: &str,
        workers: usize,
        capacity: usize,
        overflow: Overflow,
        containment: Containment,
        wrapper: Option<WorkerWrapper>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(PoolShared { run_queue: tx, containment, closed: AtomicBool::new(false) });
        let mut handles = Vec::new();
        for index in 0..workers.max(1) {
            let rx: Receiver<Option<Arc<SourceQueue>>> = rx.clone();
            let stop_signals = shared.run_queue.clone();
            let wrapper = wrapper.clone();
            handles.push(std::thread::Builder::new().name(format!("{name}-worker-{index}")).spawn(move || {
                let run = |source: Arc<SourceQueue>| match &wrapper {
                    None => source.serve(FAIRNESS_BUDGET),
                    Some(wrap) => {
                        let mut turn = Some(source);
                        wrap(&mut || {
                            if let Some(source) = turn.take() {
                                source.serve(FAIRNESS_BUDGET);
                            }
                        });
                    }
                };
                while let Ok(Some(source)) = rx.recv() {
                    run(source);
                }
                // Shutting down: sources rescheduled behind the stop signals still run. A
                // stop signal met here belongs to another worker: put it back.
                loop {
                    match rx.try_recv() {
                        Ok(Some(source)) => run(source),
                        Ok(None) => {
                            let _ = stop_signals.send(None);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            })?);
        }
        Ok(WorkerPool { shared, workers: Mutex::new(handles), capacity: capacity.max(1), overflow })
    }

    /// A new source with the pool's capacity and overflow policy.
    pub fn source(&self) -> Arc<SourceQueue> {
        self.source_with(self.capacity, self.overflow)
    }

    /// A new source with its own capacity and policy.
    pub fn source_with(&self, capacity: usize, overflow: Overflow) -> Arc<SourceQueue> {
        Arc::new(SourceQueue {
            pool: self.shared.clone(),
            capacity: capacity.max(1),
            overflow,
            state: Mutex::new(SourceState { jobs: VecDeque::new(), scheduled: false }),
            dropped: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        })
    }

    /// Stop accepting jobs, let the workers finish what is queued, and join them.
    /// Called from a worker itself, it does not wait for that worker.
    pub fn shutdown(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let handles = std::mem::take(&mut *self.workers.lock());
        for _ in &handles {
            let _ = self.shared.run_queue.send(None);
        }
        let me = std::thread::current().id();
        for handle in handles {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn pool(workers: usize, capacity: usize, overflow: Overflow) -> WorkerPool {
        WorkerPool::new("test", workers, capacity, overflow, Containment::new()).unwrap()
    }

    /// Blocks the pool's only worker until the returned sender is dropped or used.
    fn block_worker(source: &Arc<SourceQueue>) -> mpsc::Sender<()> {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        source
            .push(Job::new("test", move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv();
            }))
            .unwrap();
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        release_tx
    }

    fn record(source: &Arc<SourceQueue>, key: Option<u64>, value: u64, sink: &Arc<Mutex<Vec<u64>>>) -> Result<()> {
        let sink = sink.clone();
        let run = move || sink.lock().push(value);
        source.push(match key {
            Some(key) => Job::keyed("test", key, run),
            None => Job::new("test", run),
        })
    }

    fn drain(pool: WorkerPool) {
        pool.shutdown();
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let pool = pool(1, 3, Overflow::DropOldest);
        let source = pool.source();
        let release = block_worker(&source);
        let seen = Arc::new(Mutex::new(Vec::new()));
        for value in 0..10 {
            record(&source, None, value, &seen).unwrap();
        }
        assert_eq!(source.stats().dropped, 7);
        drop(release);
        drain(pool);
        assert_eq!(*seen.lock(), vec![7, 8, 9]);
    }

    #[test]
    fn coalesce_replaces_in_place_and_keeps_newest() {
        let pool = pool(1, 2, Overflow::Coalesce);
        let source = pool.source();
        let release = block_worker(&source);
        let seen = Arc::new(Mutex::new(Vec::new()));
        record(&source, Some(1), 10, &seen).unwrap();
        record(&source, Some(2), 20, &seen).unwrap();
        record(&source, Some(1), 11, &seen).unwrap();
        record(&source, Some(1), 12, &seen).unwrap();
        record(&source, Some(3), 30, &seen).unwrap(); // no match: drops the oldest (key 1)
        let stats = source.stats();
        assert_eq!((stats.coalesced, stats.dropped), (2, 1));
        drop(release);
        drain(pool);
        assert_eq!(*seen.lock(), vec![20, 30]);
    }

    #[test]
    fn error_policy_refuses_without_blocking() {
        let pool = pool(1, 2, Overflow::Error);
        let source = pool.source();
        let release = block_worker(&source);
        let seen = Arc::new(Mutex::new(Vec::new()));
        record(&source, None, 1, &seen).unwrap();
        record(&source, None, 2, &seen).unwrap();
        assert!(matches!(record(&source, None, 3, &seen), Err(Error::QueueFull { capacity: 2 })));
        assert_eq!(source.stats().refused, 1);
        drop(release);
        drain(pool);
        assert_eq!(*seen.lock(), vec![1, 2]);
    }

    #[test]
    fn push_after_shutdown_is_closed() {
        let pool = pool(2, 8, Overflow::DropOldest);
        let source = pool.source();
        pool.shutdown();
        assert!(matches!(source.push(Job::new("t", || {})), Err(Error::Closed(_))));
    }
}
