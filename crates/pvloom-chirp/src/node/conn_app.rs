//! [`ConnApp`]: one connection's application layer, on its I/O thread: it drains its
//! remote's outbox into the connection, completes sends, hands messages to the
//! handler and applies releases.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use pvloom_core::driver::{StreamAddress, StreamApp};
use pvloom_core::{CloseReason, Deliverer, IoCtx};

use super::message::{Message, Releases};
use super::outbox::{Outbox, Pending, SendDone};
use super::{ChirpError, Node};
use crate::conn::{ConnEvent, Connection, SendToken};
use crate::error::SendFailure;
use crate::remote::RemoteKey;
use crate::slots::SlotId;
use crate::tls::Secured;

pub(crate) struct ConnApp {
    pub(super) conn: Secured<Connection>,
    node: Arc<Node>,
    id: u64,
    /// The remote: known at once for a connection we opened, from the handshake for
    /// one we accepted.
    key: Option<RemoteKey>,
    handshaken: bool,
    address: Arc<StreamAddress<ConnApp>>,
    deliverer: Deliverer,
    releases: Arc<Releases>,
    /// The remote's outbox, once this connection serves it.
    outbox: Option<Arc<Outbox>>,
    /// Completers of the sends handed to `conn`, by token.
    dones: foldhash::HashMap<SendToken, SendDone>,
    /// Sends `conn` gave back unbegun as it closed, for the next connection.
    requeue: Vec<Pending>,
    /// Messages received in this burst, for the handler (when it runs elsewhere).
    inbox: Vec<(SlotId, Message)>,
    /// When the remote table last heard of this connection's activity.
    last_touch: Option<Instant>,
}

impl ConnApp {
    pub(super) fn new(
        node: &Arc<Node>,
        id: u64,
        key: Option<RemoteKey>,
        peer: IpAddr,
        accepted: bool,
        ctx: &IoCtx<'_>,
        address: &Arc<StreamAddress<ConnApp>>,
    ) -> Self {
        ConnApp {
            conn: node.secure(Connection::new(ctx.now(), node.local, peer, node.limits), peer, accepted),
            node: node.clone(),
            id,
            key,
            handshaken: false,
            address: address.clone(),
            deliverer: node.runtime.deliverer(),
            releases: Releases::new(address.clone()),
            outbox: None,
            dones: foldhash::HashMap::default(),
            requeue: Vec::new(),
            inbox: Vec::new(),
            last_touch: None,
        }
    }

    /// Move what the connection's queue has room for from the remote's outbox, if
    /// this connection is the one serving it.
    pub(super) fn drain(&mut self, now: Instant) {
        let Some(outbox) = self.outbox.clone() else { return };
        let mut refused = Vec::new();
        {
            let mut state = outbox.state.lock();
            if state.drainer.as_ref().map(|d| d.id) != Some(self.id) {
                return;
            }
            let conn = self.conn.inner_mut();
            while let Some(next) = state.queue.front() {
                // body_len <= max_msg_size (a u32), checked at submit.
                if !conn.can_queue(next.message.body_len() as usize) {
                    break;
                }
                let Some(pending) = state.queue.pop_front() else { break };
                match conn.send(now, pending.token, pending.message) {
                    Ok(()) => {
                        self.dones.insert(pending.token, pending.done);
                    }
                    Err(error) => refused.push((pending.done, error)),
                }
            }
            // With sends outstanding, their completions drain again: no wake-up needed.
            state.drain_due = conn.has_sends_outstanding();
        }
        for (done, error) in refused {
            done.succeed(Err(error.into()));
        }
        self.touch(now);
    }

    /// Take back the send `token` if the connection has not begun it. Then drain: what
    /// the outbox held back for lack of room may fit now, and no Sent or Failed event
    /// will come for the withdrawn send to drain it.
    pub(super) fn withdraw(&mut self, token: SendToken, now: Instant) -> bool {
        let withdrawn = self.conn.inner_mut().withdraw(token);
        if withdrawn {
            self.dones.remove(&token);
            self.drain(now);
        }
        withdrawn
    }

    /// Apply the releases the application made since the last batch.
    pub(super) fn apply_releases(&mut self, releases: &Releases, now: Instant) {
        for (slot, done) in releases.take() {
            let released = self.conn.inner_mut().release(now, slot).ok().map(|r| (r.identity, r.serial));
            if let Some(done) = done {
                done.succeed(released);
            }
        }
    }

    /// Tell the remote table this remote is active, often enough for its GC (which
    /// forgets remotes idle for the reuse time) and no more often.
    fn touch(&mut self, now: Instant) {
        let Some(key) = self.key else { return };
        let every = self.node.limits.reuse_time / 8;
        if self.last_touch.is_none_or(|at| now.saturating_duration_since(at) >= every) {
            self.last_touch = Some(now);
            self.node.table.lock().touch(now, key);
        }
    }

    fn complete(&mut self, token: SendToken, result: Result<(), ChirpError>) {
        if let Some(done) = self.dones.remove(&token) {
            done.succeed(result);
        }
    }

    fn on_handshake(&mut self, now: Instant, port: u16) {
        let key = *self.key.get_or_insert(RemoteKey::new(self.conn.inner().peer_ip(), port));
        self.handshaken = true;
        let replaced = self.node.table.lock().handshake(now, key, self.id);
        if let Some(old) = replaced {
            // The older connection stays open until idle (libchirp leaves it to the
            // GC) and finishes what it holds; new messages take this one.
            tracing::debug!(remote = %key.socket_addr(), old, new = self.id, "chirp connection replaced");
        }
        self.outbox = Some(self.node.attach_drainer(key, self.id, &self.address));
        // Counted once it serves the remote: whoever sees the count can use it.
        self.node.stats.opened();
        self.last_touch = Some(now);
        self.drain(now);
    }

    fn on_received(&mut self, now: Instant, received: crate::message::Received) {
        self.touch(now);
        if self.node.requests_open.load(Ordering::Acquire) > 0 {
            let mut requests = self.node.requests.lock();
            let answer = requests.answer(&received.identity);
            self.node.requests_open.store(requests.len(), Ordering::Release);
            drop(requests);
            if let Some(answer) = answer {
                let _ = self.conn.inner_mut().release(now, received.slot);
                answer.succeed(Ok(Message::new(received, None)));
                return;
            }
        }
        let slot = received.slot;
        let message = Message::new(received, Some(self.releases.clone()));
        let auto_release = self.node.auto_release;
        if self.deliverer.is_inline() {
            // The handler runs here, on the I/O thread: its slot is freed directly,
            // without a trip through the release queue.
            let handler = &self.node.handler;
            self.deliverer.containment().run("chirp handler", || handler(message.clone()));
            if auto_release && message.take_slot() {
                // Replies the handler sent to this remote join this connection's queue
                // now. While that queue fills faster than the socket takes it, the slot
                // is freed only at the next loop turn, after the write: reading then
                // waits for writing instead of overflowing the send queue.
                self.drain(now);
                if self.conn.inner().queued() >= self.node.limits.max_queued / 2 {
                    self.releases.push(slot, None);
                } else {
                    let _ = self.conn.inner_mut().release(now, slot);
                }
            }
            return;
        }
        self.inbox.push((slot, message));
    }

    /// Hand the messages of one burst to the handler as one callback job, and free
    /// their slots (auto-release) in one batch after it.
    fn deliver_inbox(&mut self, now: Instant) {
        if self.inbox.is_empty() {
            return;
        }
        let burst = std::mem::take(&mut self.inbox);
        let slots: Vec<_> = burst.iter().map(|(slot, _)| *slot).collect();
        let handler = self.node.handler.clone();
        let auto_release = self.node.auto_release;
        let containment = self.deliverer.containment().clone();
        let releases = self.releases.clone();
        let delivered = self.node.runtime.deliver(&self.deliverer, "chirp handler", move || {
            // Each handler call is contained alone: one that panics loses no other.
            for (_, message) in &burst {
                containment.run("chirp handler", || handler(message.clone()));
            }
            if auto_release {
                releases.release_all(burst.iter().map(|(_, message)| message));
            }
        });
        if let Err(error) = delivered {
            // The messages went with the refused job: free their slots, or the
            // connection would stop reading for good.
            tracing::warn!(conn = self.id, "chirp messages not delivered: {error}");
            for slot in slots {
                let _ = self.conn.inner_mut().release(now, slot);
            }
        }
    }
}

impl StreamApp for ConnApp {
    type Endpoint = Secured<Connection>;

    fn endpoint(&mut self) -> &mut Secured<Connection> {
        &mut self.conn
    }

    fn on_event(&mut self, event: ConnEvent, ctx: &mut IoCtx<'_>) {
        let now = ctx.now();
        match event {
            ConnEvent::Handshake(handshake) => self.on_handshake(now, handshake.port),
            ConnEvent::Received(received) => self.on_received(now, received),
            ConnEvent::Sent { token, .. } => {
                self.complete(token, Ok(()));
                self.drain(now);
            }
            ConnEvent::Failed { token, error: SendFailure::NotSent(_), message }
                if !self.node.stopping.load(Ordering::Acquire) && self.key.is_some() =>
            {
                // Not begun: it waits for the next connection, in its place.
                if let Some(done) = self.dones.remove(&token) {
                    self.requeue.push(Pending { token, message, done });
                }
            }
            ConnEvent::Failed { token, error, .. } => self.complete(token, Err(error.into())),
        }
    }

    fn on_events_done(&mut self, ctx: &mut IoCtx<'_>) {
        self.deliver_inbox(ctx.now());
    }

    fn on_closed(&mut self, reason: &CloseReason, ctx: &mut IoCtx<'_>) {
        tracing::debug!(conn = self.id, "chirp connection closed: {reason}");
        // What arrived before the close still reaches the handler.
        self.deliver_inbox(ctx.now());
        let unconfirmed = self.conn.inner().unconfirmed();
        self.node.stats.closed(self.conn.inner().peer_ip(), self.key.map(|k| k.port), reason, unconfirmed);
        let requeue = std::mem::take(&mut self.requeue);
        self.node.connection_gone(ctx.now(), self.id, self.key, self.handshaken, reason, requeue);
    }
}
