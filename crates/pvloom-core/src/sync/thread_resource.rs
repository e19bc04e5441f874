//! A lazily made value per thread, visible from other threads, dropped with its thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::thread::ThreadId;

use parking_lot::Mutex;

type Registry<T> = Mutex<HashMap<ThreadId, Arc<T>>>;

/// One value per thread, made on first [`get`](Self::get) by `init`. Other threads
/// can [`iter`](Self::iter) over all of them. When a thread ends, its value is removed
/// (and dropped once no one else holds an `Arc` to it).
pub struct ThreadResource<T: Send + Sync + 'static> {
    init: Box<dyn Fn() -> T + Send + Sync>,
    values: Arc<Registry<T>>,
    /// Unique for the process's lifetime: the key of this resource's exit hooks.
    key: u64,
}

static NEXT_RESOURCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// Clean-ups that run when this thread ends: one per resource the thread used.
    static ON_EXIT: RefCell<ExitHooks> = RefCell::new(ExitHooks::default());
}

/// Keyed by the resource: one hook per resource per thread, however often its value is
/// popped and made again.
#[derive(Default)]
struct ExitHooks(Vec<(u64, Box<dyn FnOnce()>)>);

impl Drop for ExitHooks {
    fn drop(&mut self) {
        for (_, hook) in self.0.drain(..) {
            hook();
        }
    }
}

impl<T: Send + Sync + 'static> ThreadResource<T> {
    /// A resource made by `init` in each thread that asks for it.
    pub fn new(init: impl Fn() -> T + Send + Sync + 'static) -> Self {
        ThreadResource {
            init: Box::new(init),
            values: Arc::new(Mutex::new(HashMap::new())),
            key: NEXT_RESOURCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This thread's value, made now if this thread has none.
    pub fn get(&self) -> Arc<T> {
        let me = std::thread::current().id();
        if let Some(value) = self.values.lock().get(&me) {
            return value.clone();
        }
        // Made outside the lock: `init` may be slow or use other resources.
        let value = Arc::new((self.init)());
        self.values.lock().insert(me, value.clone());
        let registry: Weak<Registry<T>> = Arc::downgrade(&self.values);
        let key = self.key;
        // During thread teardown the thread-local may be gone already; the value then
        // stays until `pop` or the resource is dropped.
        let _ = ON_EXIT.try_with(|hooks| {
            let mut hooks = hooks.borrow_mut();
            if hooks.0.iter().any(|(k, _)| *k == key) {
                return;
            }
            hooks.0.push((
                key,
                Box::new(move || {
                    if let Some(registry) = registry.upgrade() {
                        let removed = registry.lock().remove(&me);
                        drop(removed);
                    }
                }),
            ));
        });
        value
    }

    /// Remove (and return) this thread's value.
    pub fn pop(&self) -> Option<Arc<T>> {
        self.values.lock().remove(&std::thread::current().id())
    }

    /// Every thread's value, as a snapshot.
    pub fn iter(&self) -> impl Iterator<Item = Arc<T>> {
        self.values.lock().values().cloned().collect::<Vec<_>>().into_iter()
    }

    /// How many threads hold a value now.
    pub fn len(&self) -> usize {
        self.values.lock().len()
    }

    /// True when no thread holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn value_per_thread_dropped_when_thread_ends() {
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let resource = {
            let (drops, made) = (drops.clone(), made.clone());
            Arc::new(ThreadResource::new(move || {
                made.fetch_add(1, Ordering::SeqCst);
                Counted(drops.clone())
            }))
        };
        let first = resource.get();
        assert!(Arc::ptr_eq(&first, &resource.get()), "cached per thread");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let worker = {
            let resource = resource.clone();
            std::thread::spawn(move || {
                let _ = resource.get();
                ready_tx.send(()).unwrap();
                end_rx.recv().unwrap();
            })
        };
        ready_rx.recv().unwrap();
        assert_eq!(resource.iter().count(), 2, "visible from another thread");
        end_tx.send(()).unwrap();
        worker.join().unwrap();
        assert_eq!(resource.len(), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the ended thread's value was dropped");
        drop(first);
        assert!(resource.pop().is_some());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }
}
