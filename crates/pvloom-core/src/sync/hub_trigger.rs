//! Trigger a function on a launcher's owning thread (its "hub") from any thread,
//! without arguments or result; concurrent triggers coalesce into one run.
//!
//! pvloom has no greenlet hub: a thread's hub is the [`Launcher`] it serves
//! ([`Launcher::serve`], [`Launcher::run_pending`], [`Launcher::serve_async`]). A
//! trigger queues one task there; `send` while that task is queued does nothing more,
//! and a `send` during a run queues exactly one more run (the flag is cleared before
//! the function starts, so nothing sent during a run is lost).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use super::Launcher;
use crate::hook::Containment;

type Func = Box<dyn Fn() + Send + Sync>;

/// Runs `func` on the thread that serves `launcher` each time it is triggered.
///
/// `blocking == false` (the BLISS default): every run is queued and happens at the
/// hub's next `serve`/`run_pending`, even when sent from the hub thread itself, so a
/// sender never runs the function in its own call stack. `blocking == true`: a send
/// from the hub thread runs the function at once, inline; from other threads it is
/// queued as above. Dropping the trigger cancels runs still queued. A panicking
/// function is reported through the [`Containment`] and the hub thread carries on.
pub struct HubTrigger {
    inner: Arc<Inner>,
}

struct Inner {
    func: Func,
    launcher: Launcher,
    pending: AtomicBool,
    blocking: bool,
    containment: Containment,
}

impl std::fmt::Debug for HubTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubTrigger")
            .field("blocking", &self.inner.blocking)
            .field("pending", &self.inner.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl HubTrigger {
    /// A trigger on the calling thread's hub, [`Launcher::current`].
    pub fn current(blocking: bool, func: impl Fn() + Send + Sync + 'static) -> Self {
        Self::new(&Launcher::current(), blocking, func)
    }

    /// A trigger on `launcher` (usually one the calling thread serves), reporting
    /// panics to the process-wide containment.
    pub fn new(launcher: &Launcher, blocking: bool, func: impl Fn() + Send + Sync + 'static) -> Self {
        Self::with_containment(launcher, blocking, Containment::global().clone(), func)
    }

    /// As [`new`](Self::new), reporting panics to `containment`.
    pub fn with_containment(
        launcher: &Launcher,
        blocking: bool,
        containment: Containment,
        func: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let inner = Inner {
            func: Box::new(func),
            launcher: launcher.clone(),
            pending: AtomicBool::new(false),
            blocking,
            containment,
        };
        HubTrigger { inner: Arc::new(inner) }
    }

    /// Whether a run is queued and not yet started.
    pub fn is_pending(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Have `func` run on the hub. Returns `false` when the hub's launcher is closed
    /// (its thread stopped serving), so nothing will run.
    pub fn send(&self) -> bool {
        let inner = &self.inner;
        if inner.blocking && inner.launcher.is_owner() {
            inner.run();
            return true;
        }
        if inner.pending.swap(true, Ordering::AcqRel) {
            return true;
        }
        if !inner.launcher.is_open() {
            inner.pending.store(false, Ordering::Release);
            return false;
        }
        // The task holds a weak reference: dropping the trigger cancels it.
        let weak: Weak<Inner> = Arc::downgrade(inner);
        // The completion is not awaited: a trigger has no result, and a close racing
        // this send leaves nothing to run anyway (a closed launcher never reopens).
        drop(inner.launcher.apply_async(move || {
            if let Some(inner) = weak.upgrade() {
                inner.pending.store(false, Ordering::Release);
                inner.run();
            }
        }));
        true
    }
}

impl Inner {
    fn run(&self) {
        self.containment.run("sync.hub_trigger", || (self.func)());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn sends_before_a_run_coalesce_and_a_send_during_a_run_queues_one_more() {
        let launcher = Launcher::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let trigger = Arc::new(HubTrigger::new(&launcher, false, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        for _ in 0..5 {
            assert!(trigger.send());
        }
        assert_eq!(launcher.run_pending().unwrap(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // A trigger that sends itself during its first run must run exactly once more.
        let slot: Arc<std::sync::OnceLock<Arc<HubTrigger>>> = Arc::default();
        let (me, own_runs) = (slot.clone(), Arc::new(AtomicUsize::new(0)));
        let counted = own_runs.clone();
        let selfish = Arc::new(HubTrigger::new(&launcher, false, move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                me.get().unwrap().send();
            }
        }));
        slot.set(selfish.clone()).unwrap();
        selfish.send();
        assert_eq!(launcher.run_pending().unwrap(), 2);
        assert_eq!(own_runs.load(Ordering::SeqCst), 2);
        assert!(!selfish.is_pending());
    }

    #[test]
    fn blocking_runs_inline_on_the_hub_and_non_blocking_waits_for_the_loop() {
        let launcher = Launcher::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a, b) = (runs.clone(), runs.clone());
        let inline = HubTrigger::new(&launcher, true, move || {
            a.fetch_add(1, Ordering::SeqCst);
        });
        let deferred = HubTrigger::new(&launcher, false, move || {
            b.fetch_add(10, Ordering::SeqCst);
        });
        inline.send();
        deferred.send();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        launcher.run_pending().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn dropping_the_trigger_cancels_queued_runs() {
        let launcher = Launcher::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let trigger = HubTrigger::new(&launcher, false, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        trigger.send();
        drop(trigger);
        launcher.run_pending().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panic_is_contained_and_the_next_send_runs_again() {
        let launcher = Launcher::new();
        let containment = Containment::new();
        containment.set_hook(Arc::new(|_| {}));
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let trigger = HubTrigger::with_containment(&launcher, false, containment.clone(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            panic!("trigger failed");
        });
        trigger.send();
        launcher.run_pending().unwrap();
        trigger.send();
        launcher.run_pending().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(containment.failures(), 2);
    }

    #[test]
    fn current_is_the_thread_hub_and_a_thread_binds_its_own() {
        let here = Launcher::current();
        assert!(here.is_owner());
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let trigger = HubTrigger::current(false, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        trigger.send();
        assert_eq!(Launcher::current().run_pending().unwrap(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let thread = super::super::Thread::new("hub", |ctx: &super::super::ThreadContext| {
            Ok(Launcher::current().is_owner() && ctx.serve(Duration::ZERO).is_ok())
        });
        thread.start(true, None).unwrap();
        assert!(thread.get(Some(Duration::from_secs(5))).unwrap());
    }

    #[test]
    fn a_closed_hub_refuses() {
        let launcher = Launcher::new();
        let trigger = HubTrigger::new(&launcher, false, || {});
        launcher.close();
        assert!(!trigger.send());
        assert!(!trigger.is_pending());
    }
}
