//! A wake-up that reaches a waiter which then finds its value on its own is handed
//! on to the next waiter, never lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Context;

use pvloom_core::signal::WaitList;

struct Permits {
    free: AtomicUsize,
    list: WaitList,
}

impl Permits {
    fn take(&self) -> Option<()> {
        self.free.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok().map(|_| ())
    }

    fn give(&self) {
        self.free.fetch_add(1, Ordering::AcqRel);
        self.list.notify_one();
    }
}

#[test]
fn a_wake_up_taken_by_a_waiter_that_needed_none_is_passed_on() {
    let permits = Permits { free: AtomicUsize::new(0), list: WaitList::new() };
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut d = Box::pin(permits.list.wait_async(|| permits.take()));
    let d_ptr: *mut _ = &mut d;
    let mut calls = 0;
    let mut b = Box::pin(permits.list.wait_async(|| {
        calls += 1;
        if calls == 1 {
            return None; // B finds nothing and registers.
        }
        // While B registers: X arrives unseen (nobody waited yet), B's re-check takes
        // it, D registers, and Y's notify_one picks B, the oldest waiter.
        permits.free.fetch_add(1, Ordering::AcqRel);
        let got = permits.take();
        let mut cx2 = Context::from_waker(&waker);
        // SAFETY: D is a distinct pinned future; nothing else touches it meanwhile.
        assert!(unsafe { (*d_ptr).as_mut() }.poll(&mut cx2).is_pending());
        permits.give();
        got
    }));
    assert!(b.as_mut().poll(&mut cx).is_ready());
    drop(b);
    assert_eq!(permits.list.waiters(), 0, "B handed Y's wake-up on to D");
    assert!(d.as_mut().poll(&mut cx).is_ready(), "D takes Y");
}
