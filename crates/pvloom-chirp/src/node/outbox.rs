//! [`Outbox`]: one remote's messages on their way to its connection.
//!
//! Senders (any thread) push; the connection serving the remote (its I/O thread)
//! drains into its own bounded queue. The I/O thread is woken only when nothing will
//! drain on its own: a connection with sends outstanding drains again at each
//! completion, so a stream of sends costs one wake-up per burst, not one per message.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_core::Completer;
use pvloom_core::driver::StreamAddress;

use super::ChirpError;
use super::conn_app::ConnApp;
use crate::conn::SendToken;
use crate::message::Outgoing;

/// A send's completer.
pub(super) type SendDone = Completer<Result<(), ChirpError>>;

/// One send waiting for (or handed to) a connection.
pub(super) struct Pending {
    pub token: SendToken,
    pub message: Outgoing,
    pub done: SendDone,
}

/// The connection that drains an outbox.
pub(super) struct Drainer {
    pub id: u64,
    pub address: Arc<StreamAddress<ConnApp>>,
}

#[derive(Default)]
pub(super) struct OutboxState {
    pub queue: VecDeque<Pending>,
    /// The handshaken connection serving the remote (the last handshake wins).
    pub drainer: Option<Drainer>,
    /// A drain will happen without a wake-up: one is scheduled, or the drainer has
    /// sends outstanding and drains at their completion.
    pub drain_due: bool,
}

/// One remote's queue, shared by the node and the connection serving it.
#[derive(Default)]
pub(super) struct Outbox {
    pub state: Mutex<OutboxState>,
}

/// What a push did.
pub(super) enum Pushed {
    /// Queued; the drainer will take it.
    Queued,
    /// Queued; no connection serves the remote: one must be made.
    NeedsConnection,
    /// Not queued: the queue is full.
    Full(SendDone, usize),
}

impl Outbox {
    /// Queue a send (at most `limit` wait) and wake the drainer if it will not drain
    /// on its own.
    pub fn push(&self, pending: Pending, limit: usize) -> Pushed {
        let mut state = self.state.lock();
        if state.queue.len() >= limit {
            let queued = state.queue.len();
            return Pushed::Full(pending.done, queued);
        }
        state.queue.push_back(pending);
        if state.drainer.is_none() {
            return Pushed::NeedsConnection;
        }
        if !std::mem::replace(&mut state.drain_due, true)
            && let Some(address) = state.drainer.as_ref().map(|d| d.address.clone())
        {
            drop(state);
            // A connection gone meanwhile clears `drainer` when it closes; what waits
            // goes to the next one, so a missed drain loses nothing.
            address.exec(|app, ctx| app.drain(ctx.now()), || {});
        }
        Pushed::Queued
    }

    /// Sends given back by a closed connection, not begun: first in line again, in
    /// their order.
    pub fn requeue_front(&self, sends: Vec<Pending>) {
        if sends.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        for pending in sends.into_iter().rev() {
            state.queue.push_front(pending);
        }
    }

    /// Everything waiting, taken (the node stops or forgets the remote).
    pub fn take_all(&self) -> Vec<Pending> {
        let mut state = self.state.lock();
        state.drainer = None;
        state.drain_due = false;
        state.queue.drain(..).collect()
    }
}
