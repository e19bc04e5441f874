//! [`Link`]: what one connection shares with the bus — the messages waiting to go to its
//! peer, the credit waiting to go back to it, and who to wake for either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use std::time::Instant;

use super::Routed;
use crate::server::Credentials;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct Queues {
    /// Messages the bus routed to this connection's peer, oldest first.
    out: VecDeque<Routed>,
    /// SEND_QUOTA amounts to return to the peer, one per message it sent, in order.
    credit: Vec<u32>,
}

/// One connection's side of the bus. The bus (any thread) posts messages and credit;
/// the connection (its I/O thread) takes them when woken.
pub struct Link {
    id: u64,
    credentials: Credentials,
    queues: Mutex<Queues>,
    out_bytes: AtomicUsize,
    /// Bytes of messages from this connection's peer still held somewhere in the bus.
    in_flight: AtomicUsize,
    wake_pending: AtomicBool,
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    room: Condvar,
    /// The peer's address, once the transport knows it (`msg_client_stats`' `dest`).
    peer: OnceLock<std::net::SocketAddr>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("id", &self.id).field("in_flight", &self.in_flight()).finish()
    }
}

/// What a connection took from its link in one go.
#[derive(Debug, Default)]
pub struct Taken {
    /// Messages to send to the peer.
    pub out: Vec<Routed>,
    /// Credit to return to the peer (one SEND_QUOTA each).
    pub credit: Vec<u32>,
}

impl Link {
    /// A link for a connection whose peer has `credentials`.
    pub fn new(credentials: Credentials) -> Arc<Link> {
        Arc::new(Link {
            id: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
            credentials,
            queues: Mutex::new(Queues::default()),
            out_bytes: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            wake_pending: AtomicBool::new(false),
            waker: OnceLock::new(),
            delivered: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            room: Condvar::new(),
            peer: OnceLock::new(),
        })
    }

    /// Records the peer's address (the first call wins).
    pub fn set_peer_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.peer.set(addr);
    }

    /// The peer's address, if the transport gave it.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.peer.get().copied()
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peer's identity, against which deliveries are checked.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Set once: called from any thread when there is something to take.
    pub fn set_waker(&self, waker: impl Fn() + Send + Sync + 'static) {
        let _ = self.waker.set(Box::new(waker));
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Some(w) = self.waker.get()
        {
            w();
        }
    }

    /// Queue a message for the peer (publishing on a sans-I/O `ClientConn`: post on its
    /// `link()`; the connection sends it when next polled).
    pub fn post(&self, msg: Routed) {
        self.out_bytes.fetch_add(msg.msg.held_size(), Ordering::AcqRel);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.delivered_bytes.fetch_add(msg.msg_len() as u64, Ordering::Relaxed);
        self.queues.lock().out.push_back(msg);
        self.wake();
    }

    /// Credit for a message of this connection's peer that the bus has finished with.
    pub(crate) fn return_credit(&self, quota: u32, bytes: usize) {
        self.queues.lock().credit.push(quota);
        self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
        self.wake();
    }

    /// Counts a message of this connection's peer entering the bus.
    fn hold(&self, bytes: usize) {
        self.in_flight.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Bytes of this connection's messages the bus still holds (its input pauses above
    /// the bus's limit).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Bytes of messages waiting to go to the peer.
    pub fn out_bytes(&self) -> usize {
        self.out_bytes.load(Ordering::Acquire)
    }

    /// Messages and bytes routed to this connection so far.
    pub fn delivered(&self) -> (u64, u64) {
        (self.delivered.load(Ordering::Relaxed), self.delivered_bytes.load(Ordering::Relaxed))
    }

    /// Takes at most `max_out` messages (all credit): what the connection's I/O thread
    /// does when woken; whether it took anything. Until a take finds nothing, posts do
    /// not wake the connection again: it is busy and comes back for them itself, so a
    /// publisher that outruns its I/O thread pays for no wake per message.
    pub fn take(&self, max_out: usize, into: &mut Taken) -> bool {
        let mut q = self.queues.lock();
        if q.out.is_empty() && q.credit.is_empty() {
            // Under the lock: a post after this sees the flag down and wakes.
            self.wake_pending.store(false, Ordering::Release);
            return false;
        }
        into.credit.append(&mut q.credit);
        let n = q.out.len().min(max_out);
        let mut bytes = 0;
        into.out.extend(q.out.drain(..n).inspect(|m| bytes += m.msg.held_size()));
        self.out_bytes.fetch_sub(bytes, Ordering::AcqRel);
        if bytes > 0 {
            self.room.notify_all();
        }
        true
    }

    /// Waits until fewer than `limit` bytes wait for the peer, or `deadline`; whether
    /// there is room. The caller must be allowed to block.
    pub fn wait_room(&self, limit: usize, deadline: Instant) -> bool {
        let mut q = self.queues.lock();
        while self.out_bytes() >= limit {
            if self.room.wait_until(&mut q, deadline).timed_out() {
                return self.out_bytes() < limit;
            }
        }
        true
    }

    /// Wakes everyone waiting for room (the connection closed).
    pub fn wake_waiters(&self) {
        let _q = self.queues.lock();
        self.room.notify_all();
    }

    /// True while messages wait to go to the peer.
    pub fn has_out(&self) -> bool {
        !self.queues.lock().out.is_empty()
    }

    /// Drops what waits for the peer (the connection closed): their credit goes back to
    /// their senders.
    pub fn clear(&self) {
        let out = std::mem::take(&mut self.queues.lock().out);
        self.out_bytes.store(0, Ordering::Release);
        drop(out);
        self.wake_waiters();
    }
}

/// Credit for one message, returned to its sender's link when the last reference to the
/// message goes: every connection it was routed to has written it out and every local
/// client's callback has returned.
pub(crate) struct Credit {
    link: Arc<Link>,
    quota: u32,
    bytes: usize,
}

impl Credit {
    /// Credit of `quota` for a message of `bytes` from `link`'s peer, held from now on.
    pub(crate) fn new(link: Arc<Link>, quota: u32, bytes: usize) -> Credit {
        link.hold(bytes);
        Credit { link, quota, bytes }
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.link.return_credit(self.quota, self.bytes);
    }
}
