//! Subscriptions: monitor updates delivered to callbacks.
//!
//! A subscription starts (EVENT_ADD) with its first callback and is cancelled
//! (EVENT_CANCEL) when its last callback goes. [`Subscription::add_callback`] returns a
//! [`CallbackHandle`]: dropping the handle removes the callback. This is Rust's answer
//! to caproto's weak references to callbacks: the callback lives exactly as long as
//! something holds its handle; call [`CallbackHandle::keep`] to keep it until
//! [`Subscription::remove_callback`] or [`Subscription::clear`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::core::SubShared;
use super::options::SubscribeOptions;
use super::pv::Pv;
use super::response::Response;

/// A monitor on a PV.
#[derive(Clone)]
pub struct Subscription {
    pub(crate) shared: Arc<SubShared>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("pv", &self.shared.pv.name)
            .field("id", &self.shared.id)
            .field("active", &self.shared.is_active())
            .finish()
    }
}

/// Keeps a subscription callback registered; dropping it removes the callback.
#[must_use = "dropping the handle removes the callback; call .keep() to keep it"]
pub struct CallbackHandle {
    token: u64,
    subscription: Weak<SubShared>,
}

impl CallbackHandle {
    /// The callback's token, for [`Subscription::remove_callback`].
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Keep the callback registered after this handle is gone.
    pub fn keep(self) -> u64 {
        let token = self.token;
        std::mem::forget(self);
        token
    }
}

impl Drop for CallbackHandle {
    fn drop(&mut self) {
        if let Some(shared) = self.subscription.upgrade() {
            Subscription { shared }.remove_callback(self.token);
        }
    }
}

impl Subscription {
    /// The PV.
    pub fn pv(&self) -> Pv {
        Pv { shared: self.shared.pv.clone() }
    }

    /// The subscription id used on the wire now (a new one after each reconnection
    /// or restart; 0 before the first).
    pub fn id(&self) -> u32 {
        self.shared.wire_id()
    }

    /// True while it has callbacks (and so is subscribed on the server).
    pub fn is_active(&self) -> bool {
        self.shared.is_active()
    }

    /// The last update received.
    pub fn most_recent(&self) -> Option<Arc<Response>> {
        self.shared.most_recent.lock().clone()
    }

    /// Updates received so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Call `callback(update)` for every update. The first callback starts the
    /// subscription; the newest update so far is not replayed.
    pub fn add_callback(&self, callback: impl Fn(Arc<Response>) + Send + Sync + 'static) -> CallbackHandle {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        // The active flag flips under the callbacks lock, so a concurrent add and
        // remove cannot leave callbacks without a subscription or the reverse.
        let start = {
            let mut callbacks = self.shared.callbacks.lock();
            callbacks.push((token, Arc::new(callback)));
            !self.shared.active.swap(true, Ordering::AcqRel)
        };
        if start {
            self.shared.start();
        }
        CallbackHandle { token, subscription: Arc::downgrade(&self.shared) }
    }

    /// Remove one callback; removing the last cancels the subscription.
    pub fn remove_callback(&self, token: u64) {
        let stop = {
            let mut callbacks = self.shared.callbacks.lock();
            callbacks.retain(|(t, _)| *t != token);
            callbacks.is_empty() && self.shared.active.swap(false, Ordering::AcqRel)
        };
        if stop {
            self.shared.stop();
        }
    }

    /// Remove every callback and cancel.
    pub fn clear(&self) {
        let stop = {
            let mut callbacks = self.shared.callbacks.lock();
            callbacks.clear();
            self.shared.active.swap(false, Ordering::AcqRel)
        };
        if stop {
            self.shared.stop();
        }
    }
}

impl Pv {
    /// A subscription (not yet active: it starts with its first callback).
    pub fn subscribe(&self, options: SubscribeOptions) -> Subscription {
        Subscription { shared: self.shared.subscribe(options) }
    }
}
