//! Lock and re-entrant lock usable from threads and async tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Notify, deadline_after};
use crate::{Error, Result};

/// A lock held by one party at a time, across threads and tasks. Not poisoned by a
/// panic: the guard releases it on unwind.
#[derive(Default)]
pub struct Lock {
    locked: AtomicBool,
    notify: Notify,
}

/// Releases its [`Lock`] when dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("locked", &self.is_locked()).finish()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take the lock if it is free.
    pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
        self.try_raw().then(|| LockGuard { lock: self })
    }

    /// Wait for the lock.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        self.notify.wait_until(None, || self.try_acquire())
    }

    /// Wait at most `timeout`; `Ok(None)` when it ran out.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        match self.notify.wait_until(deadline_after(timeout), || self.try_acquire()) {
            Ok(guard) => Ok(Some(guard)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Wait for the lock asynchronously.
    pub async fn acquire_async(&self) -> LockGuard<'_> {
        self.notify.wait_async(|| self.try_acquire()).await
    }

    /// True while held.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// Release a lock whose guard was [forgotten](LockGuard::keep) (the
    /// `acquire()`/`release()` style of Python's `threading.Lock`).
    ///
    /// # Errors
    /// [`Error::NotOwner`] if the lock is not held.
    pub fn release(&self) -> Result<()> {
        if self.locked.swap(false, Ordering::AcqRel) {
            self.notify.notify_one();
            Ok(())
        } else {
            Err(Error::NotOwner)
        }
    }

    fn try_raw(&self) -> bool {
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }
}

impl LockGuard<'_> {
    /// Keep the lock held after the guard is gone; release it with [`Lock::release`].
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

/// Who holds a re-entrant lock: a thread, or an async task's guard lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Thread(ThreadId),
    Task(u64),
}

#[derive(Default)]
struct RState {
    owner: Option<Owner>,
    depth: usize,
}

/// A lock its owner may take again; others wait until it is released as often as it
/// was taken. A thread owns it by thread; an async task, which may move between
/// threads, owns it through its guard: re-enter with [`RLockGuard::reenter`].
#[derive(Default)]
pub struct RLock {
    state: Mutex<RState>,
    notify: Notify,
    next_task: AtomicU64,
}

/// Releases one level of its [`RLock`] when dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    owner: Owner,
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock").field("depth", &self.depth()).finish()
    }
}

impl RLock {
    /// An unlocked re-entrant lock.
    pub fn new() -> Self {
        Self::default()
    }

    fn try_owner(&self, owner: Owner) -> Option<RLockGuard<'_>> {
        let mut state = self.state.lock();
        match state.owner {
            None => {
                state.owner = Some(owner);
                state.depth = 1;
            }
            Some(current) if current == owner => state.depth += 1,
            Some(_) => return None,
        }
        Some(RLockGuard { lock: self, owner })
    }

    fn this_thread() -> Owner {
        Owner::Thread(std::thread::current().id())
    }

    /// Take the lock for this thread if it is free or already this thread's.
    pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
        self.try_owner(Self::this_thread())
    }

    /// Take the lock for this thread, waiting while another party holds it.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn acquire(&self) -> Result<RLockGuard<'_>> {
        let me = Self::this_thread();
        self.notify.wait_until(None, || self.try_owner(me))
    }

    /// As [`acquire`](Self::acquire), waiting at most `timeout`; `Ok(None)` when it ran out.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] on an I/O thread.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<RLockGuard<'_>>> {
        let me = Self::this_thread();
        match self.notify.wait_until(deadline_after(timeout), || self.try_owner(me)) {
            Ok(guard) => Ok(Some(guard)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Take the lock for a new async owner.
    pub async fn acquire_async(&self) -> RLockGuard<'_> {
        let me = Owner::Task(self.next_task.fetch_add(1, Ordering::Relaxed));
        self.notify.wait_async(|| self.try_owner(me)).await
    }

    /// Release one level taken by this thread without a guard (Python style).
    ///
    /// # Errors
    /// [`Error::NotOwner`] if this thread does not hold it.
    pub fn release(&self) -> Result<()> {
        self.release_for(Self::this_thread())
    }

    fn release_for(&self, owner: Owner) -> Result<()> {
        let mut state = self.state.lock();
        if state.owner != Some(owner) {
            return Err(Error::NotOwner);
        }
        state.depth -= 1;
        if state.depth == 0 {
            state.owner = None;
            drop(state);
            self.notify.notify_one();
        }
        Ok(())
    }

    /// How many times the owner holds it (0: free).
    pub fn depth(&self) -> usize {
        self.state.lock().depth
    }

    /// True if this thread holds it.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.state.lock().owner == Some(Self::this_thread())
    }
}

impl<'a> RLockGuard<'a> {
    /// Take the lock once more for the same owner (never waits).
    pub fn reenter(&self) -> RLockGuard<'a> {
        let mut state = self.lock.state.lock();
        debug_assert_eq!(state.owner, Some(self.owner));
        state.depth += 1;
        RLockGuard { lock: self.lock, owner: self.owner }
    }

    /// Keep this level held after the guard is gone; release with [`RLock::release`]
    /// (thread owners only).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release_for(self.owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_excludes_and_times_out() {
        let lock = Arc::new(Lock::new());
        let guard = lock.acquire().unwrap();
        let other = lock.clone();
        let timed_out = std::thread::spawn(move || other.acquire_timeout(Duration::from_millis(10)).unwrap().is_none());
        assert!(timed_out.join().unwrap());
        drop(guard);
        assert!(lock.try_acquire().is_some());
        assert!(lock.release().is_err());
    }

    #[test]
    fn rlock_reenters_for_owner_only() {
        let lock = Arc::new(RLock::new());
        let outer = lock.acquire().unwrap();
        let inner = lock.acquire().unwrap();
        assert_eq!(lock.depth(), 2);
        let other = lock.clone();
        assert!(std::thread::spawn(move || other.try_acquire().is_none()).join().unwrap());
        let other = lock.clone();
        assert!(std::thread::spawn(move || other.release().is_err()).join().unwrap());
        drop(inner);
        drop(outer);
        assert_eq!(lock.depth(), 0);
        let other = lock.clone();
        assert!(std::thread::spawn(move || other.try_acquire().is_some()).join().unwrap());
    }

    #[test]
    fn async_rlock_reenters_through_guard() {
        let lock = RLock::new();
        futures::executor::block_on(async {
            let guard = lock.acquire_async().await;
            let again = guard.reenter();
            assert_eq!(lock.depth(), 2);
            assert!(lock.try_acquire().is_none(), "a thread owner is not the task owner");
            drop(again);
            drop(guard);
        });
        assert_eq!(lock.depth(), 0);
    }
}
