//! [`Link`]: what one connection shares with the bus — the messages waiting to go to its
//! peer, the credit waiting to go back to it, and who to wake for either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};
use std::time::Instant;

use super::Routed;
use crate::server::Credentials;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct Queues {
    /// Messages the bus routed to this connection's peer, oldest first.
    out: VecDeque<Routed>,
    /// What `out` holds, counted as `held_size`.
    out_held: usize,
    /// Messages and bytes routed to this connection so far.
    delivered: (u64, u64),
    /// Credit to return to the peer: the sum of its messages' quotas the bus finished
    /// with since the last take (one SEND_QUOTA for all, as ldmsd returns what its
    /// quota group held back).
    credit: u64,
}

/// One connection's side of the bus. The bus (any thread) posts messages and credit;
/// the connection (its I/O thread) takes them when woken.
pub struct Link {
    id: u64,
    credentials: Credentials,
    queues: Mutex<Queues>,
    // What waits for the peer is `posted - taken`. Each counter has one writer side and
    // its own cache line: a publisher adding to a counter the connection's thread also
    // wrote paid a cache miss per message.
    /// Bytes ever posted (written by publishers).
    posted: CachePadded<AtomicUsize>,
    /// Bytes ever taken or dropped (written by the connection).
    taken: CachePadded<AtomicUsize>,
    /// Bytes of messages from this connection's peer still held somewhere in the bus.
    in_flight: CachePadded<AtomicUsize>,
    wake_pending: AtomicBool,
    /// Raised by the wake a credit return makes, lowered when the connection takes
    /// credit alone. Apart from `wake_pending`: credit must not wait for the
    /// connection's own output to drain, since that output may be waiting for the peer,
    /// and the peer for this credit.
    credit_wake_pending: AtomicBool,
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
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
    pub out: VecDeque<Routed>,
    /// Credit to return to the peer, summed.
    pub credit: u64,
}

impl Link {
    /// A link for a connection whose peer has `credentials`.
    pub fn new(credentials: Credentials) -> Arc<Link> {
        Arc::new(Link {
            id: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
            credentials,
            queues: Mutex::new(Queues::default()),
            posted: CachePadded::new(AtomicUsize::new(0)),
            taken: CachePadded::new(AtomicUsize::new(0)),
            in_flight: CachePadded::new(AtomicUsize::new(0)),
            wake_pending: AtomicBool::new(false),
            credit_wake_pending: AtomicBool::new(false),
            waker: OnceLock::new(),
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
        // Called after the lock that queued the item: a take that lowered the flag did
        // so under that lock, so the load sees it lowered. A load, not a swap, while the
        // connection is busy keeps a publisher from writing the shared line per message.
        if !self.wake_pending.load(Ordering::Acquire)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Some(w) = self.waker.get()
        {
            w();
        }
    }

    /// Queue a message for the peer (publishing on a sans-I/O `ClientConn`: post on its
    /// `link()`; the connection sends it when next polled).
    pub fn post(&self, msg: Routed) {
        let held = msg.msg.held_size();
        self.posted.fetch_add(held, Ordering::AcqRel);
        {
            let mut q = self.queues.lock();
            q.out_held += held;
            q.delivered.0 += 1;
            q.delivered.1 += msg.msg_len() as u64;
            q.out.push_back(msg);
        }
        self.wake();
    }

    /// Credit for a message of this connection's peer that the bus has finished with.
    pub(crate) fn return_credit(&self, quota: u32, bytes: usize) {
        self.queues.lock().credit += u64::from(quota);
        self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
        // An idle connection is woken as for a post. One whose output waits for the
        // peer is not coming back for more by itself: it lowered the credit flag when it
        // took credit alone (`take_credit`), so a return wakes it once.
        self.wake();
        if !self.credit_wake_pending.load(Ordering::Acquire)
            && !self.credit_wake_pending.swap(true, Ordering::AcqRel)
            && let Some(w) = self.waker.get()
        {
            w();
        }
    }

    /// Takes the credit waiting to go back to the peer, and nothing else: what a
    /// connection whose own output is held up still owes.
    pub fn take_credit(&self) -> u64 {
        let mut q = self.queues.lock();
        self.credit_wake_pending.store(false, Ordering::Release);
        std::mem::take(&mut q.credit)
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
        // `taken` first: `posted` only grows and was never below it.
        let taken = self.taken.load(Ordering::Acquire);
        self.posted.load(Ordering::Acquire).wrapping_sub(taken)
    }

    /// Messages and bytes routed to this connection so far.
    pub fn delivered(&self) -> (u64, u64) {
        self.queues.lock().delivered
    }

    /// Takes at most `max_out` messages (all credit): what the connection's I/O thread
    /// does when woken; whether it took anything. Until a take finds nothing, posts do
    /// not wake the connection again: it is busy and comes back for them itself, so a
    /// publisher that outruns its I/O thread pays for no wake per message.
    pub fn take(&self, max_out: usize, into: &mut Taken) -> bool {
        let mut q = self.queues.lock();
        if q.out.is_empty() && q.credit == 0 {
            // Under the lock: a post after this sees the flag down and wakes.
            self.wake_pending.store(false, Ordering::Release);
            return false;
        }
        into.credit += std::mem::take(&mut q.credit);
        let bytes = if into.out.is_empty() && q.out.len() <= max_out {
            // The usual case: the whole queue changes hands, and the lock a publisher
            // waits for is held for a swap, not for a copy of each message.
            std::mem::swap(&mut q.out, &mut into.out);
            std::mem::take(&mut q.out_held)
        } else {
            let n = q.out.len().min(max_out);
            let mut bytes = 0;
            into.out.extend(q.out.drain(..n).inspect(|m| bytes += m.msg.held_size()));
            q.out_held -= bytes;
            bytes
        };
        self.taken.fetch_add(bytes, Ordering::AcqRel);
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
        let out = {
            let mut q = self.queues.lock();
            self.taken.fetch_add(std::mem::take(&mut q.out_held), Ordering::AcqRel);
            std::mem::take(&mut q.out)
        };
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

/// One delivery's hold on its message's credit: none (published in this process), the
/// whole of it (the message's only delivery, which needs no shared count), or a share.
#[derive(Default)]
pub(crate) enum CreditShare {
    #[default]
    None,
    Sole {
        _credit: Credit,
    },
    Shared {
        _credit: Arc<Credit>,
    },
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.link.return_credit(self.quota, self.bytes);
    }
}
