//! The generic subscriber: a listener that receives events and a consumer that
//! processes them, with the states INIT → ON → OFF (stopped) or FAULT (killed/failed).
//!
//! The listener and the consumer run either in one thread (`Sequential`: the consumer
//! is called from `emit`) or in two threads joined by a bounded queue (`Parallel`: the
//! listener keeps receiving while the consumer writes, e.g. HDF5). An error in either
//! moves the subscriber to FAULT and keeps the error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::hook::panic_message;
use crate::sync::Event;
use crate::{Error, Result};

/// The subscriber's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriberState {
    /// Created, not started.
    Init,
    /// Listening.
    On,
    /// Finished normally (stopped, or the source ended).
    Off,
    /// Killed, or the listener or consumer failed.
    Fault,
}

impl SubscriberState {
    /// The state's name as BLISS prints it.
    pub fn name(self) -> &'static str {
        match self {
            SubscriberState::Init => "INIT",
            SubscriberState::On => "ON",
            SubscriberState::Off => "OFF",
            SubscriberState::Fault => "FAULT",
        }
    }

    /// The transitions the machine allows: INIT→ON, ON→OFF, ON→FAULT, and INIT→FAULT
    /// (a start that could not spawn its threads).
    pub fn can_become(self, next: SubscriberState) -> bool {
        use SubscriberState::{Fault, Init, Off, On};
        matches!((self, next), (Init, On) | (On, Off) | (On, Fault) | (Init, Fault))
    }
}

impl std::fmt::Display for SubscriberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the listener and the consumer share threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One thread: `emit` calls the consumer directly.
    Sequential,
    /// Two threads joined by a queue of at most `capacity` events; `emit` waits for room
    /// (back-pressure on the listener, which never runs on an I/O thread).
    Parallel {
        /// Events the queue holds.
        capacity: usize,
    },
}

type ListenerFn<E> = Box<dyn FnOnce(&Emitter<E>) -> Result<()> + Send>;
type ConsumerFn<E> = Box<dyn FnMut(E) -> Result<()> + Send>;

enum Sink<E> {
    Direct(Mutex<ConsumerFn<E>>),
    Queue(flume::Sender<E>),
}

/// What the listener uses to hand events on and to notice `stop`/`kill`.
pub struct Emitter<E> {
    sink: Sink<E>,
    control: Arc<Control>,
}

impl<E> Emitter<E> {
    /// Hand one event to the consumer.
    ///
    /// # Errors
    /// [`Error::Cancelled`] once killed (stop listening), or the consumer's error in
    /// sequential mode.
    pub fn emit(&self, event: E) -> Result<()> {
        if self.control.killed.load(Ordering::Acquire) {
            return Err(Error::Cancelled);
        }
        match &self.sink {
            Sink::Direct(consumer) => {
                let outcome = (consumer.lock())(event);
                if let Err(err) = &outcome {
                    // The consumer's failure is the subscriber's, whatever the listener
                    // does with the error.
                    self.control.record_error(err.clone());
                    self.control.killed.store(true, Ordering::Release);
                }
                outcome
            }
            Sink::Queue(tx) => tx.send(event).map_err(|_| Error::Cancelled),
        }
    }

    /// True once `stop` or `kill` was requested: the listener should return.
    pub fn should_stop(&self) -> bool {
        self.control.stop_requested.load(Ordering::Acquire) || self.control.killed.load(Ordering::Acquire)
    }
}

struct Control {
    stop_requested: AtomicBool,
    killed: AtomicBool,
    running: AtomicUsize,
    state: Mutex<SubscriberState>,
    error: Mutex<Option<Error>>,
    started_at: Mutex<Option<Instant>>,
    ended_at: Mutex<Option<Instant>>,
    finished: Event,
}

impl Control {
    fn transition(&self, next: SubscriberState) -> Result<()> {
        let mut state = self.state.lock();
        if !state.can_become(next) {
            return Err(Error::IllegalTransition { from: state.name(), to: next.name() });
        }
        *state = next;
        Ok(())
    }

    fn record_error(&self, error: Error) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// Called by each of the subscriber's threads as it ends; the last one settles the state.
    fn thread_ended(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let failed = self.error.lock().is_some() || self.killed.load(Ordering::Acquire);
        if self.killed.load(Ordering::Acquire) {
            self.record_error(Error::Cancelled);
        }
        let _ = self.transition(if failed { SubscriberState::Fault } else { SubscriberState::Off });
        *self.ended_at.lock() = Some(Instant::now());
        self.finished.set();
    }
}

/// A listener/consumer pair with the INIT/ON/OFF/FAULT life cycle.
pub struct Subscriber<E: Send + 'static> {
    name: String,
    mode: Mode,
    parts: Mutex<Option<(ListenerFn<E>, ConsumerFn<E>)>>,
    control: Arc<Control>,
}

impl<E: Send + 'static> Subscriber<E> {
    /// A subscriber in INIT. The listener runs until it returns (source ended) or sees
    /// [`Emitter::should_stop`]; the consumer gets each event in order.
    pub fn new(
        name: impl Into<String>,
        mode: Mode,
        listener: impl FnOnce(&Emitter<E>) -> Result<()> + Send + 'static,
        consumer: impl FnMut(E) -> Result<()> + Send + 'static,
    ) -> Self {
        Subscriber {
            name: name.into(),
            mode,
            parts: Mutex::new(Some((Box::new(listener), Box::new(consumer)))),
            control: Arc::new(Control {
                stop_requested: AtomicBool::new(false),
                killed: AtomicBool::new(false),
                running: AtomicUsize::new(0),
                state: Mutex::new(SubscriberState::Init),
                error: Mutex::new(None),
                started_at: Mutex::new(None),
                ended_at: Mutex::new(None),
                finished: Event::new(),
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> SubscriberState {
        *self.control.state.lock()
    }

    /// The first error of the listener or consumer (or `Cancelled` after a kill).
    pub fn error(&self) -> Option<Error> {
        self.control.error.lock().clone()
    }

    /// INIT → ON: start the thread(s). With `wait`, return once they run.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] unless in INIT.
    pub fn start(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        self.control.transition(SubscriberState::On)?;
        let Some((listener, consumer)) = self.parts.lock().take() else {
            return Err(Error::IllegalTransition { from: "ON", to: "ON" });
        };
        *self.control.started_at.lock() = Some(Instant::now());
        let started = Arc::new(Event::new());
        // How many of the subscriber's threads could not be started.
        let (spawned, missing) = match self.mode {
            Mode::Sequential => {
                self.control.running.store(1, Ordering::Release);
                let emitter = Emitter { sink: Sink::Direct(Mutex::new(consumer)), control: self.control.clone() };
                let spawned = self.spawn_listener(listener, emitter, started.clone());
                let missing = usize::from(spawned.is_err());
                (spawned, missing)
            }
            Mode::Parallel { capacity } => {
                self.control.running.store(2, Ordering::Release);
                let (tx, rx) = flume::bounded(capacity.max(1));
                let emitter = Emitter { sink: Sink::Queue(tx), control: self.control.clone() };
                match self.spawn_consumer(consumer, rx) {
                    Err(err) => (Err(err), 2),
                    Ok(()) => {
                        // On failure the emitter is dropped with the closure: the consumer
                        // sees the queue close and ends by itself.
                        let spawned = self.spawn_listener(listener, emitter, started.clone());
                        let missing = usize::from(spawned.is_err());
                        (spawned, missing)
                    }
                }
            }
        };
        if let Err(err) = spawned {
            self.control.record_error(err.clone());
            self.control.killed.store(true, Ordering::Release);
            for _ in 0..missing {
                self.control.thread_ended();
            }
            return Err(err);
        }
        if wait {
            let ran = match timeout {
                Some(t) => started.wait_timeout(t)?,
                None => started.wait().map(|()| true)?,
            };
            if !ran {
                return Err(Error::Timeout(timeout.unwrap_or_default()));
            }
        }
        Ok(())
    }

    fn spawn_listener(&self, listener: ListenerFn<E>, emitter: Emitter<E>, started: Arc<Event>) -> Result<()> {
        let control = self.control.clone();
        std::thread::Builder::new()
            .name(format!("{}-listener", self.name))
            .spawn(move || {
                started.set();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener(&emitter)))
                    .unwrap_or_else(|p| Err(Error::Panicked(panic_message(p.as_ref()).into())));
                match outcome {
                    Err(Error::Cancelled) if control.killed.load(Ordering::Acquire) => {}
                    Err(err) => control.record_error(err),
                    Ok(()) => {}
                }
                // Dropping the emitter closes the queue: the consumer drains and ends.
                drop(emitter);
                control.thread_ended();
            })
            .map(|_| ())
            .map_err(Error::failed)
    }

    fn spawn_consumer(&self, mut consumer: ConsumerFn<E>, rx: flume::Receiver<E>) -> Result<()> {
        let control = self.control.clone();
        std::thread::Builder::new()
            .name(format!("{}-consumer", self.name))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    for event in rx.iter() {
                        if control.killed.load(Ordering::Acquire) {
                            break;
                        }
                        consumer(event)?;
                    }
                    Ok(())
                }))
                .unwrap_or_else(|p| Err(Error::Panicked(panic_message(p.as_ref()).into())));
                if let Err(err) = outcome {
                    control.record_error(err);
                    // The listener must not wait on a queue nobody drains any more.
                    control.killed.store(true, Ordering::Release);
                }
                drop(rx);
                control.thread_ended();
            })
            .map(|_| ())
            .map_err(Error::failed)
    }

    fn request(&self, kill: bool, wait: bool, timeout: Option<Duration>) -> Result<()> {
        let state = self.state();
        let target = if kill { SubscriberState::Fault } else { SubscriberState::Off };
        if state != SubscriberState::On {
            return Err(Error::IllegalTransition { from: state.name(), to: target.name() });
        }
        if kill {
            self.control.killed.store(true, Ordering::Release);
        }
        self.control.stop_requested.store(true, Ordering::Release);
        if wait { self.join(timeout) } else { Ok(()) }
    }

    /// ON → OFF: ask the listener to stop; the consumer finishes what is queued.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] unless ON; [`Error::Timeout`] if `wait` ran out.
    pub fn stop(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        self.request(false, wait, timeout)
    }

    /// ON → FAULT: stop at once, dropping what is queued.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] unless ON; [`Error::Timeout`] if `wait` ran out.
    pub fn kill(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        self.request(true, wait, timeout)
    }

    /// Wait until finished (OFF or FAULT).
    ///
    /// # Errors
    /// [`Error::Timeout`] when it ran out; [`Error::WouldDeadlock`] on an I/O thread.
    pub fn join(&self, timeout: Option<Duration>) -> Result<()> {
        let finished = match timeout {
            Some(t) => self.control.finished.wait_timeout(t)?,
            None => self.control.finished.wait().map(|()| true)?,
        };
        if finished { Ok(()) } else { Err(Error::Timeout(timeout.unwrap_or_default())) }
    }

    /// True once OFF or FAULT.
    pub fn done(&self) -> bool {
        self.control.finished.is_set()
    }

    /// Time spent listening: from start to the end (or to now while ON).
    pub fn duration(&self) -> Option<Duration> {
        let start = (*self.control.started_at.lock())?;
        let end = self.control.ended_at.lock().unwrap_or_else(Instant::now);
        Some(end.saturating_duration_since(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting(mode: Mode, events: u32) -> (Subscriber<u32>, Arc<Mutex<Vec<u32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let sub = Subscriber::new(
            "test",
            mode,
            move |emitter| {
                for i in 0..events {
                    if emitter.should_stop() {
                        break;
                    }
                    emitter.emit(i)?;
                }
                Ok(())
            },
            move |event| {
                sink.lock().push(event);
                Ok(())
            },
        );
        (sub, seen)
    }

    #[test]
    fn runs_to_off_in_both_modes_in_order() {
        for mode in [Mode::Sequential, Mode::Parallel { capacity: 4 }] {
            let (sub, seen) = counting(mode, 1000);
            assert_eq!(sub.state(), SubscriberState::Init);
            sub.start(true, Some(Duration::from_secs(5))).unwrap();
            sub.join(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(sub.state(), SubscriberState::Off);
            assert!(sub.done() && sub.error().is_none());
            assert_eq!(*seen.lock(), (0..1000).collect::<Vec<_>>());
            assert!(sub.duration().is_some());
        }
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let (sub, _) = counting(Mode::Sequential, 0);
        assert!(matches!(sub.stop(false, None), Err(Error::IllegalTransition { from: "INIT", to: "OFF" })));
        assert!(matches!(sub.kill(false, None), Err(Error::IllegalTransition { from: "INIT", to: "FAULT" })));
        sub.start(false, None).unwrap();
        sub.join(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(sub.start(false, None), Err(Error::IllegalTransition { from: "OFF", to: "ON" })));
        assert!(matches!(sub.stop(false, None), Err(Error::IllegalTransition { from: "OFF", .. })));
        assert!(!SubscriberState::Off.can_become(SubscriberState::On));
        assert!(!SubscriberState::Fault.can_become(SubscriberState::Off));
    }

    fn endless(mode: Mode, fail_consumer_at: Option<u64>) -> Subscriber<u64> {
        Subscriber::new(
            "endless",
            mode,
            |emitter| {
                let mut i = 0;
                while !emitter.should_stop() {
                    emitter.emit(i)?;
                    i += 1;
                }
                Ok(())
            },
            move |event| match fail_consumer_at {
                Some(limit) if event == limit => Err(Error::msg("disk full")),
                _ => Ok(()),
            },
        )
    }

    #[test]
    fn stop_gives_off_kill_gives_fault() {
        for mode in [Mode::Sequential, Mode::Parallel { capacity: 16 }] {
            let sub = endless(mode, None);
            sub.start(true, None).unwrap();
            sub.stop(true, Some(Duration::from_secs(5))).unwrap();
            assert_eq!(sub.state(), SubscriberState::Off);

            let sub = endless(mode, None);
            sub.start(true, None).unwrap();
            sub.kill(true, Some(Duration::from_secs(5))).unwrap();
            assert_eq!(sub.state(), SubscriberState::Fault);
            assert!(matches!(sub.error(), Some(Error::Cancelled)));
        }
    }

    #[test]
    fn consumer_error_moves_to_fault_and_is_kept() {
        for mode in [Mode::Sequential, Mode::Parallel { capacity: 16 }] {
            let sub = endless(mode, Some(100));
            sub.start(false, None).unwrap();
            sub.join(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(sub.state(), SubscriberState::Fault);
            assert_eq!(sub.error().unwrap().to_string(), "disk full");
        }
    }

    #[test]
    fn listener_panic_moves_to_fault() {
        let sub: Subscriber<u8> = Subscriber::new("panics", Mode::Sequential, |_| panic!("redis gone"), |_| Ok(()));
        sub.start(false, None).unwrap();
        sub.join(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(sub.state(), SubscriberState::Fault);
        assert!(matches!(sub.error(), Some(Error::Panicked(m)) if &*m == "redis gone"));
    }
}
