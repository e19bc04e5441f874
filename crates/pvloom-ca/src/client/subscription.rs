//! Subscriptions: monitor updates delivered to callbacks.
//!
//! A subscription starts (EVENT_ADD) with its first callback and is cancelled
//! (EVENT_CANCEL) when its last callback goes. [`Subscription::add_callback`] returns a
//! [`CallbackHandle`]: dropping the handle removes the callback. This is Rust's answer
//! to caproto's weak references to callbacks: the callback lives exactly as long as
//! something holds its handle; call [`CallbackHandle::keep`] to keep it until
//! [`Subscription::remove_callback`] or [`Subscription::clear`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use pvloom_core::{Deliverer, Overflow};

use super::pv::{Pv, PvShared};
use super::response::Response;
use crate::proto::constants::{DBE_ALARM, DBE_VALUE};
use crate::proto::{DbrClass, DbrType};

/// What a subscription asks for.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeOptions {
    /// DBR type of the updates; `None`: the native type promoted to `class`.
    pub data_type: Option<DbrType>,
    /// Class when `data_type` is `None` (default: TIME, so updates carry timestamps).
    pub class: DbrClass,
    /// Elements per update; `None`: the channel's count.
    pub data_count: Option<u32>,
    /// Events to report (`DBE_VALUE | DBE_ALARM` by default).
    pub mask: u16,
    /// Updates that may wait for the callback before older ones are coalesced away
    /// (Ordered delivery only). Large enough to absorb the bursts a single socket read
    /// brings (a 64 KiB read holds ~1600 small updates); sustained overload is handled
    /// per circuit with EVENTS_OFF, which bounds the total.
    pub queue: usize,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            data_type: None,
            class: DbrClass::Time,
            data_count: None,
            mask: DBE_VALUE | DBE_ALARM,
            queue: 4096,
        }
    }
}

type UpdateCallback = Arc<dyn Fn(Arc<Response>) + Send + Sync>;

static NEXT_SUBSCRIPTION_ID: AtomicU32 = AtomicU32::new(1);

pub(crate) struct SubShared {
    pub(crate) pv: Arc<PvShared>,
    pub(crate) options: SubscribeOptions,
    /// Stable identity (the coalescing key of its updates).
    pub(crate) id: u32,
    /// The id used on the wire by the current EVENT_ADD (0: none yet); fresh each time.
    wire: std::sync::atomic::AtomicU32,
    callbacks: Mutex<Vec<(u64, UpdateCallback)>>,
    active: AtomicBool,
    next_token: AtomicU64,
    pub(crate) deliverer: Deliverer,
    most_recent: Mutex<Option<Arc<Response>>>,
    pub(crate) received: AtomicU64,
}

impl SubShared {
    pub(crate) fn new(pv: Arc<PvShared>, options: SubscribeOptions) -> Arc<Self> {
        let deliverer = match pv.context.upgrade() {
            Some(context) => context.runtime.deliverer_with(options.queue.max(1), Overflow::Coalesce),
            None => Deliverer::inline(),
        };
        Arc::new(SubShared {
            pv,
            options,
            id: NEXT_SUBSCRIPTION_ID.fetch_add(1, Ordering::Relaxed),
            wire: std::sync::atomic::AtomicU32::new(0),
            callbacks: Mutex::new(Vec::new()),
            active: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
            deliverer,
            most_recent: Mutex::new(None),
            received: AtomicU64::new(0),
        })
    }

    pub(crate) fn wire_id(&self) -> u32 {
        self.wire.load(Ordering::Acquire)
    }

    pub(crate) fn new_wire_id(&self) -> u32 {
        let id = NEXT_SUBSCRIPTION_ID.fetch_add(1, Ordering::Relaxed).max(1);
        self.wire.store(id, Ordering::Release);
        id
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The DBR type and count to subscribe with on a channel. A count is always
    /// given: count 0 on a plain type would look like a cancel confirmation.
    pub(crate) fn request_for(&self, native: DbrType, channel_count: u32) -> (DbrType, u32) {
        let data_type =
            self.options.data_type.unwrap_or_else(|| native.promote_to(self.options.class).unwrap_or(native));
        (data_type, self.options.data_count.unwrap_or(channel_count).max(1))
    }

    /// An update arrived (on the circuit's I/O thread): remember it and hand it to
    /// every callback through the subscription's deliverer.
    pub(crate) fn deliver(self: &Arc<Self>, response: Arc<Response>, backlog: Option<BacklogGuard>) {
        self.received.fetch_add(1, Ordering::Relaxed);
        *self.most_recent.lock() = Some(response.clone());
        let callbacks: Vec<UpdateCallback> = self.callbacks.lock().iter().map(|(_, c)| c.clone()).collect();
        if callbacks.is_empty() {
            return;
        }
        let key = u64::from(self.id);
        let _ = self.deliverer.dispatch("ca.subscription", Some(key), move || {
            let _backlog = backlog;
            for callback in callbacks {
                callback(response.clone());
            }
        });
    }

    fn start(self: &Arc<Self>) {
        let sub = self.clone();
        let wanted = self.clone();
        self.pv.with_link(
            move |link| {
                if let Ok(link) = link
                    && sub.is_active()
                {
                    let (circuit, sub2) = (link.circuit.clone(), sub.clone());
                    circuit.exec(move |handler, _| handler.add_subscription(&sub2, &link), || {});
                }
            },
            move || wanted.is_active(),
        );
    }

    fn stop(self: &Arc<Self>) {
        let link = self.pv.state.lock().link.clone();
        if let Some(link) = link {
            let sub = self.clone();
            link.circuit.exec(move |handler, _| handler.cancel_subscription(&sub), || {});
        }
    }
}

/// Counts one update waiting for its callback; dropping it (after the callback ran,
/// or when a newer update replaced it) uncounts it.
pub(crate) struct BacklogGuard {
    pub(crate) on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for BacklogGuard {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

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
