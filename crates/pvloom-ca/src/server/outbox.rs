//! Each client's bounded outbox of subscription updates.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::proto::command::Command;

/// Seeded and fast: every post looks up here (see the circuit book's tables).
type Ids = foldhash::fast::RandomState;

struct OutboxState {
    order: VecDeque<u32>,
    latest: HashMap<u32, Command, Ids>,
    /// Subscriptions the client holds: an update posted for one it just cancelled
    /// (the post raced with the cancel) is dropped, never sent after the confirmation.
    live: HashSet<u32, Ids>,
    events_off: bool,
    /// Replies owed later than their request's turn (a put's completion after a
    /// delayed processing): never coalesced, sent whether events are on or off.
    replies: VecDeque<Command>,
}

/// Wakes the client's circuit on its I/O thread when updates wait.
pub(crate) type Wake = Box<dyn Fn() + Send + Sync>;

/// A client's pending subscription updates: at most one per subscription (the newest),
/// so a client that does not read costs a bounded amount of memory and nobody else
/// waits for it — what EPICS rsrv does. Posts come from any thread; the circuit
/// takes updates when its socket has room, and its state machine checks each.
pub(crate) struct Outbox {
    state: Mutex<OutboxState>,
    flush_scheduled: AtomicBool,
    pub(crate) coalesced: AtomicU64,
    wake: Wake,
}

impl Outbox {
    pub(crate) fn new(wake: Wake) -> Self {
        Outbox {
            state: Mutex::new(OutboxState {
                order: VecDeque::new(),
                latest: HashMap::default(),
                live: HashSet::default(),
                events_off: false,
                replies: VecDeque::new(),
            }),
            flush_scheduled: AtomicBool::new(false),
            coalesced: AtomicU64::new(0),
            wake,
        }
    }

    pub(crate) fn push(&self, subscription: u32, update: Command) {
        let wake = {
            let mut state = self.state.lock();
            if !state.live.contains(&subscription) {
                return;
            }
            if state.latest.insert(subscription, update).is_some() {
                self.coalesced.fetch_add(1, Ordering::Relaxed);
            } else {
                state.order.push_back(subscription);
            }
            !state.events_off
        };
        if wake {
            self.schedule_flush();
        }
    }

    /// Queues a reply the circuit sends at its next flush, after the updates queued now.
    pub(crate) fn push_reply(&self, reply: Command) {
        self.state.lock().replies.push_back(reply);
        self.schedule_flush();
    }

    fn schedule_flush(&self) {
        if !self.flush_scheduled.swap(true, Ordering::AcqRel) {
            (self.wake)();
        }
    }

    /// Called by the circuit when it starts draining.
    pub(crate) fn flush_started(&self) {
        self.flush_scheduled.store(false, Ordering::Release);
    }

    /// Move queued updates into `into`, about `budget` bytes of them. The lock is
    /// held only for the move: posters never wait for the encoding.
    pub(crate) fn take(&self, budget: usize, into: &mut Vec<Command>) {
        let mut state = self.state.lock();
        if !state.events_off {
            let mut taken = 0;
            while taken < budget {
                let Some(id) = state.order.pop_front() else { break };
                if let Some(update) = state.latest.remove(&id) {
                    taken += update_size(&update);
                    into.push(update);
                }
            }
        }
        // After the updates queued before them (a completed put's client sees the new
        // value in its monitors first, as from rsrv); with events off, at once.
        if state.events_off || state.order.is_empty() {
            into.extend(state.replies.drain(..));
        }
    }

    /// The client subscribed under `subscription`.
    pub(crate) fn register(&self, subscription: u32) {
        self.state.lock().live.insert(subscription);
    }

    /// The client cancelled `subscription`: drop its pending update, accept no more.
    pub(crate) fn forget(&self, subscription: u32) {
        let mut state = self.state.lock();
        state.live.remove(&subscription);
        if state.latest.remove(&subscription).is_some() {
            state.order.retain(|id| *id != subscription);
        }
    }

    pub(crate) fn set_events(&self, on: bool) {
        self.state.lock().events_off = !on;
        if on {
            self.schedule_flush();
        }
    }
}

/// About what an update takes on the wire.
fn update_size(update: &Command) -> usize {
    match update {
        Command::EventAddResponse { data, .. } => 16 + data.len(),
        _ => 16,
    }
}
