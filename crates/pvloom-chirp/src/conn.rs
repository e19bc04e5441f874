//! [`Connection`]: the sans-I/O endpoint of one chirp TCP connection.
//!
//! Both sides send their handshake at once; nothing else is written before the
//! peer's handshake arrived (libchirp waits for it too). Then:
//!
//! - **Sending.** Messages wait in a bounded queue (back-pressure: `send` refuses
//!   when full). ACKs and NOOPs jump it, between messages. In asynchronous mode
//!   messages are pipelined and each completes when its last byte went to the
//!   driver (the OS hand-off); in synchronous mode every message asks for an ACK,
//!   only one is in flight, and it completes when the ACK arrives.
//! - **Receiving.** A message for the application takes a slot until released; with
//!   no slot free the connection stops reading (`wants_input` is false). Releasing a
//!   message that asked for one queues its ACK.
//! - **Timers**, all inside (`poll_timeout`): the peer's handshake within the
//!   connect timeout; a message's write within TIMEOUT of its start; in synchronous
//!   mode its ACK within TIMEOUT of its hand-off; the idle GC, every half reuse time
//!   plus a random part, closing a connection idle longer than the reuse time. The
//!   probe is not a timer: a send on a connection idle for more than ¾ of the reuse
//!   time is preceded by a NOOP.
//!
//! **Possible loss.** An asynchronous send completes at the hand-off, before the peer
//! read it, and chirp has no receipt for it: if the connection then dies, the peer may
//! never have seen it. The connection counts such messages ([`Connection::unconfirmed`])
//! until the peer proves it read past them, which only a frame carrying the identity
//! of one of them does (a reply, or an ACK): the peer decodes in order, so that message
//! and every one handed off before it arrived. Any other frame proves nothing: a libchirp
//! peer whose slots are all held stops reading yet keeps writing. A connection the GC
//! collects had nothing outstanding for the whole reuse time, and counts nothing.
//!
//! Departure from libchirp: its GC closes an idle connection even while the
//! application holds one of its messages or a message waits to be written, and so
//! can lose what is just arriving; here a connection with anything outstanding is
//! never collected.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pvloom_core::endpoint::{CloseReason, StreamEndpoint};

use crate::config::Limits;
use crate::decoder::{Decoder, Frame, Step};
use crate::error::{ReleaseError, SendError, SendFailure};
use crate::identity::Identity;
use crate::message::{Outgoing, Received};
use crate::slots::{SlotId, Slots};
use crate::wire::{HEADER_LEN, Handshake, WireHeader, kind};

/// The caller's name for one send, echoed in its completion event.
pub type SendToken = u64;

/// What a connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// The peer's handshake arrived: its public port and node identity.
    Handshake(Handshake),
    /// A message for the application, holding a slot until released.
    Received(Received),
    /// A send completed: handed to the OS (asynchronous) or acknowledged
    /// (synchronous).
    Sent {
        /// The send's token.
        token: SendToken,
        /// The message's identity.
        identity: Identity,
        /// The serial it went out with.
        serial: u32,
    },
    /// A send failed; the message is given back (a [`SendFailure::NotSent`] one may be
    /// sent again on another connection).
    Failed {
        /// The send's token.
        token: SendToken,
        /// Why.
        error: SendFailure,
        /// The message.
        message: Outgoing,
    },
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The released message's identity.
    pub identity: Identity,
    /// Its serial.
    pub serial: u32,
    /// An ACK was queued for it.
    pub acked: bool,
}

/// What a slot remembers of its message, for the ACK.
struct Held {
    identity: Identity,
    serial: u32,
    wants_ack: bool,
}

enum Control {
    Ack(Identity),
    Noop,
}

struct Queued {
    token: SendToken,
    message: Outgoing,
}

/// The frame being handed to the driver, possibly over several transmits.
struct Writing {
    head: [u8; HEADER_LEN],
    written: usize,
    /// `None` for an ACK or NOOP.
    send: Option<Queued>,
    serial: u32,
    deadline: Instant,
}

impl Writing {
    fn len(&self) -> usize {
        HEADER_LEN + self.send.as_ref().map_or(0, |q| q.message.header.len() + q.message.data.len())
    }
}

struct AwaitingAck {
    send: Queued,
    serial: u32,
    deadline: Instant,
}

/// One chirp connection, sans-I/O.
pub struct Connection {
    limits: Limits,
    peer_ip: IpAddr,
    hello: Option<[u8; crate::wire::HANDSHAKE_LEN]>,
    remote: Option<Handshake>,
    handshake_deadline: Option<Instant>,
    decoder: Decoder,
    slots: Slots<Held>,
    waiting_for_slot: bool,
    control: VecDeque<Control>,
    noop_queued: bool,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    writing: Option<Writing>,
    awaiting_ack: Option<AwaitingAck>,
    serial: u32,
    last_activity: Instant,
    gc_at: Instant,
    rng: fastrand::Rng,
    events: VecDeque<ConnEvent>,
    close: Option<CloseReason>,
    closing: bool,
    /// Set when this side closes on a timeout: what the failed message is told.
    timeout_failure: Option<SendFailure>,
    unconfirmed: Unconfirmed,
}

impl Connection {
    /// A connection to (or from) `peer_ip`, created at `now`, announcing `local`.
    pub fn new(now: Instant, local: Handshake, peer_ip: IpAddr, limits: Limits) -> Self {
        Self::with_rng(now, local, peer_ip, limits, fastrand::Rng::new())
    }

    /// As [`new`](Self::new) with a given random generator (tests fix its seed).
    pub fn with_rng(now: Instant, local: Handshake, peer_ip: IpAddr, limits: Limits, mut rng: fastrand::Rng) -> Self {
        let gc_at = now + limits.gc_period(&mut rng);
        Connection {
            limits,
            peer_ip,
            hello: Some(local.encode()),
            remote: None,
            handshake_deadline: Some(now + limits.connect_timeout),
            decoder: Decoder::new(limits.max_msg_size),
            slots: Slots::new(limits.slots),
            waiting_for_slot: false,
            control: VecDeque::new(),
            noop_queued: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            writing: None,
            awaiting_ack: None,
            // libchirp starts each remote's serial at random.
            serial: rng.u32(..),
            last_activity: now,
            gc_at,
            rng,
            events: VecDeque::new(),
            close: None,
            closing: false,
            timeout_failure: None,
            unconfirmed: Unconfirmed::default(),
        }
    }

    /// The peer's handshake, once it arrived.
    pub fn remote(&self) -> Option<Handshake> {
        self.remote
    }

    /// The peer's address.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer_ip
    }

    /// The limits it runs with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Slots the application holds.
    pub fn slots_held(&self) -> usize {
        self.slots.held()
    }

    /// Messages waiting to be written (not counting the one being written or awaiting
    /// its ACK).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// True while a send it accepted has not completed yet (queued, being written or
    /// awaiting its ACK): a [`ConnEvent::Sent`] or [`ConnEvent::Failed`] is still to
    /// come for it.
    pub fn has_sends_outstanding(&self) -> bool {
        !self.queue.is_empty() || self.writing.as_ref().is_some_and(|w| w.send.is_some()) || self.awaiting_ack.is_some()
    }

    /// True once it is closing: it accepts no more sends.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Bytes the decoder holds (bounded: see [`crate::decoder`]).
    pub fn buffered_input(&self) -> usize {
        self.decoder.buffered()
    }

    /// When input or output last happened.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Asynchronous sends that completed (handed off) on this connection which the
    /// peer has not been seen to read (see the module documentation). What remains when
    /// the connection is closed is what may have been lost with it; an idle collection
    /// clears it.
    pub fn unconfirmed(&self) -> u64 {
        self.unconfirmed.count()
    }

    /// True while nothing is queued, being written, awaiting an ACK or held.
    pub fn is_quiet(&self) -> bool {
        self.queue.is_empty()
            && self.control.is_empty()
            && self.writing.is_none()
            && self.awaiting_ack.is_none()
            && self.slots.held() == 0
    }

    /// Queue `message` under `token`; its completion is a [`ConnEvent::Sent`] or
    /// [`ConnEvent::Failed`].
    ///
    /// # Errors
    /// The queue is full (back-pressure), the message is too large, or the
    /// connection is closing.
    pub fn send(&mut self, now: Instant, token: SendToken, message: Outgoing) -> Result<(), SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let limit = u64::from(self.limits.max_msg_size);
        if message.body_len() > limit || message.header.len() > usize::from(u16::MAX) {
            let limit = if message.header.len() > usize::from(u16::MAX) { u64::from(u16::MAX) } else { limit };
            return Err(SendError::TooLarge { size: message.body_len(), limit });
        }
        // body_len <= max_msg_size (a u32): fits in usize.
        let size = message.body_len() as usize;
        let full = self.queue.len() >= self.limits.max_queued
            || (!self.queue.is_empty() && self.queued_bytes + size > self.limits.max_queued_bytes);
        if full {
            return Err(SendError::QueueFull { queued: self.queue.len(), bytes: self.queued_bytes });
        }
        if now.saturating_duration_since(self.last_activity) > self.limits.probe_after && !self.noop_queued {
            tracing::trace!(peer = %self.peer_ip, "idle connection: a NOOP before the message");
            self.control.push_back(Control::Noop);
            self.noop_queued = true;
        }
        self.queued_bytes += size;
        self.queue.push_back(Queued { token, message });
        Ok(())
    }

    /// Take the queued send `token` back, if it has not begun: true if it was there.
    /// Nothing is reported for it.
    pub fn withdraw(&mut self, token: SendToken) -> bool {
        let Some(at) = self.queue.iter().position(|q| q.token == token) else { return false };
        if let Some(queued) = self.queue.remove(at) {
            self.queued_bytes -= queued.message.body_len() as usize;
        }
        true
    }

    /// True if a message of `size` bytes (header and data) would be queued now.
    pub fn can_queue(&self, size: usize) -> bool {
        !self.closing
            && self.queue.len() < self.limits.max_queued
            && (self.queue.is_empty() || self.queued_bytes + size <= self.limits.max_queued_bytes)
    }

    /// Close the connection (the application's decision).
    pub fn close(&mut self, reason: CloseReason) {
        self.fail(reason);
    }

    /// Release the message in `slot`: the slot is free again and, if the sender asked
    /// for it, an ACK is queued. Reading resumes if it had stopped for want of a slot.
    ///
    /// # Errors
    /// The slot is not held.
    pub fn release(&mut self, now: Instant, slot: SlotId) -> Result<Released, ReleaseError> {
        let held = self.slots.release(slot)?;
        let acked = held.wants_ack && !self.closing;
        if acked {
            self.control.push_back(Control::Ack(held.identity));
        }
        if self.waiting_for_slot {
            self.waiting_for_slot = false;
            self.process_input(now);
        }
        Ok(Released { identity: held.identity, serial: held.serial, acked })
    }

    fn fail(&mut self, reason: CloseReason) {
        if !self.closing {
            tracing::debug!(peer = %self.peer_ip, "closing chirp connection: {reason}");
            self.closing = true;
            self.close = Some(reason);
        }
    }

    fn process_input(&mut self, now: Instant) {
        while !self.closing {
            let step = match self.decoder.next(self.slots.has_free()) {
                Ok(step) => step,
                Err(error) => {
                    tracing::warn!(peer = %self.peer_ip, "chirp protocol error: {error}");
                    self.fail(CloseReason::Protocol(error.to_string()));
                    return;
                }
            };
            match step {
                Step::NeedMore => return,
                Step::NeedSlot => {
                    self.waiting_for_slot = true;
                    return;
                }
                Step::Frame(frame) => self.handle_frame(now, frame),
            }
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: Frame) {
        self.last_activity = now;
        match frame {
            Frame::Handshake(handshake) => {
                self.remote = Some(handshake);
                self.handshake_deadline = None;
                self.events.push_back(ConnEvent::Handshake(handshake));
            }
            Frame::Noop(_) => {}
            Frame::Ack(header) => {
                self.unconfirmed.confirm(&header.identity);
                // An ACK for anything else is stale (its message was failed when an
                // earlier connection closed): libchirp ignores it too.
                if self.awaiting_ack.as_ref().is_some_and(|a| a.send.message.identity == header.identity)
                    && let Some(done) = self.awaiting_ack.take()
                {
                    self.events.push_back(ConnEvent::Sent {
                        token: done.send.token,
                        identity: done.send.message.identity,
                        serial: done.serial,
                    });
                }
            }
            Frame::Message { header, wants_ack, upper, data } => {
                self.unconfirmed.confirm(&header.identity);
                let held = Held { identity: header.identity, serial: header.serial, wants_ack };
                // The decoder gives a message only when a slot is free.
                let Some(slot) = self.slots.acquire(held) else {
                    self.fail(CloseReason::Local("no free slot for a decoded message".into()));
                    return;
                };
                let remote = self.remote.unwrap_or(Handshake { port: 0, identity: Identity::ZERO });
                self.events.push_back(ConnEvent::Received(Received {
                    slot,
                    identity: header.identity,
                    serial: header.serial,
                    remote_identity: remote.identity,
                    from: SocketAddr::new(self.peer_ip, remote.port),
                    header: upper,
                    data,
                    wants_ack,
                }));
            }
        }
    }

    /// The next frame to write, if one may start: control first, then a message
    /// (in synchronous mode only while none awaits its ACK).
    fn start_next(&mut self, now: Instant) -> Option<Writing> {
        self.remote?;
        let deadline = now + self.limits.timeout;
        let (identity, header_len, data_len, kind, send) = if let Some(control) = self.control.pop_front() {
            match control {
                Control::Ack(identity) => (identity, 0, 0, kind::ACK, None),
                Control::Noop => {
                    self.noop_queued = false;
                    (Identity::ZERO, 0, 0, kind::NOOP, None)
                }
            }
        } else {
            if self.limits.synchronous && self.awaiting_ack.is_some() {
                return None;
            }
            let send = self.queue.pop_front()?;
            self.queued_bytes -= send.message.body_len() as usize;
            let kind = if self.limits.synchronous { kind::REQ_ACK } else { 0 };
            // Lengths were checked by `send`.
            let header_len = u16::try_from(send.message.header.len()).unwrap_or(u16::MAX);
            let data_len = u32::try_from(send.message.data.len()).unwrap_or(u32::MAX);
            (send.message.identity, header_len, data_len, kind, Some(send))
        };
        self.serial = self.serial.wrapping_add(1);
        let head = WireHeader { identity, serial: self.serial, data_len, header_len, kind }.encode();
        Some(Writing { head, written: 0, send, serial: self.serial, deadline })
    }

    /// Copy what fits of `writing` into `out`; true once all of it is there.
    fn write_some(writing: &mut Writing, room: &mut usize, out: &mut BytesMut) -> bool {
        let empty = Bytes::new();
        let (upper, data) = writing.send.as_ref().map_or((&empty, &empty), |q| (&q.message.header, &q.message.data));
        let parts: [&[u8]; 3] = [&writing.head, upper, data];
        let mut start = 0;
        for part in parts {
            let end = start + part.len();
            if writing.written < end && *room > 0 {
                let from = writing.written - start;
                let take = (part.len() - from).min(*room);
                out.extend_from_slice(&part[from..from + take]);
                writing.written += take;
                *room -= take;
            }
            start = end;
        }
        writing.written == writing.len()
    }

    fn finish_write(&mut self, now: Instant, writing: Writing) {
        self.last_activity = now;
        let Some(send) = writing.send else { return };
        if self.limits.synchronous {
            self.awaiting_ack = Some(AwaitingAck { send, serial: writing.serial, deadline: now + self.limits.timeout });
        } else {
            self.unconfirmed.handed_off(send.message.identity);
            self.events.push_back(ConnEvent::Sent {
                token: send.token,
                identity: send.message.identity,
                serial: writing.serial,
            });
        }
    }

    fn fail_outstanding(&mut self, why: &CloseReason) {
        let lost = self.timeout_failure.take().unwrap_or_else(|| SendFailure::ConnectionLost(why.to_string()));
        if let Some(writing) = self.writing.take()
            && let Some(send) = writing.send
        {
            let error = if writing.written == 0 { SendFailure::NotSent(why.to_string()) } else { lost.clone() };
            self.events.push_back(ConnEvent::Failed { token: send.token, error, message: send.message });
        }
        if let Some(waiting) = self.awaiting_ack.take() {
            self.events.push_back(ConnEvent::Failed {
                token: waiting.send.token,
                error: lost,
                message: waiting.send.message,
            });
        }
        for send in self.queue.drain(..) {
            self.events.push_back(ConnEvent::Failed {
                token: send.token,
                error: SendFailure::NotSent(why.to_string()),
                message: send.message,
            });
        }
        self.queued_bytes = 0;
        self.control.clear();
    }
}

/// How many recent hand-offs are remembered by identity: a reply to an older one is
/// not recognised, and it stays counted until a later one is confirmed (sound, only
/// less precise). Bounds the memory of a one-way stream that is never answered.
const CONFIRM_WINDOW: usize = 1024;

/// Asynchronous hand-offs not yet confirmed by the peer, numbered in order.
#[derive(Default)]
struct Unconfirmed {
    handed_off: u64,
    confirmed_through: u64,
    /// The most recent hand-offs, oldest first: (identity, number).
    recent: VecDeque<(Identity, u64)>,
    /// `recent` by identity (the latest number for each), so that every received
    /// frame is looked up in constant time, not by a scan of the window.
    index: foldhash::HashMap<Identity, u64>,
}

impl Unconfirmed {
    fn count(&self) -> u64 {
        self.handed_off - self.confirmed_through
    }

    fn handed_off(&mut self, identity: Identity) {
        self.handed_off += 1;
        if self.recent.len() == CONFIRM_WINDOW {
            self.forget_oldest();
        }
        self.recent.push_back((identity, self.handed_off));
        self.index.insert(identity, self.handed_off);
    }

    fn forget_oldest(&mut self) {
        if let Some((identity, number)) = self.recent.pop_front()
            && self.index.get(&identity) == Some(&number)
        {
            self.index.remove(&identity);
        }
    }

    /// A frame carrying `identity` arrived: if it names a hand-off, that one and
    /// every earlier one were read.
    fn confirm(&mut self, identity: &Identity) {
        if self.index.is_empty() {
            return;
        }
        let Some(&number) = self.index.get(identity) else { return };
        self.confirmed_through = self.confirmed_through.max(number);
        while self.recent.front().is_some_and(|&(_, n)| n <= number) {
            self.forget_oldest();
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl StreamEndpoint for Connection {
    type Event = ConnEvent;

    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.closing {
            return;
        }
        self.decoder.push(data);
        self.process_input(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.closing {
            return;
        }
        if self.handshake_deadline.is_some_and(|at| now >= at) {
            let waited = self.limits.connect_timeout;
            return self.fail(CloseReason::TimedOut(format!("no chirp handshake within {waited:?}")));
        }
        if self.writing.as_ref().is_some_and(|w| now >= w.deadline) {
            self.timeout_failure = Some(SendFailure::TimedOut(self.limits.timeout));
            let timeout = self.limits.timeout;
            return self.fail(CloseReason::TimedOut(format!("write not done within {timeout:?}")));
        }
        if self.awaiting_ack.as_ref().is_some_and(|a| now >= a.deadline) {
            self.timeout_failure = Some(SendFailure::TimedOut(self.limits.timeout));
            let timeout = self.limits.timeout;
            return self.fail(CloseReason::TimedOut(format!("no ACK within {timeout:?}")));
        }
        if now >= self.gc_at {
            let idle = now.saturating_duration_since(self.last_activity);
            if idle > self.limits.reuse_time && self.is_quiet() {
                // Quiet for the whole reuse time: the peer had all of it to read what
                // was handed off (libchirp's GC draws the same line).
                self.unconfirmed = Unconfirmed::default();
                return self.fail(CloseReason::Local(format!("idle for {idle:?}, collected")));
            }
            self.gc_at = now + self.limits.gc_period(&mut self.rng);
        }
    }

    fn poll_transmit(&mut self, now: Instant, room: usize, out: &mut BytesMut) {
        if self.closing {
            return;
        }
        if let Some(hello) = self.hello.take() {
            // 18 bytes, first on the wire whatever the room: nothing else may precede.
            out.extend_from_slice(&hello);
        }
        let mut room = room;
        while room > 0 {
            let mut writing = match self.writing.take() {
                Some(writing) => writing,
                None => match self.start_next(now) {
                    Some(writing) => writing,
                    None => return,
                },
            };
            if Self::write_some(&mut writing, &mut room, out) {
                self.finish_write(now, writing);
            } else {
                self.writing = Some(writing);
            }
        }
        // Out of room with a message due: it starts now, so its write timeout runs
        // while the peer does not read (libchirp starts the timer when it hands the
        // message to libuv, which queues it).
        if self.writing.is_none() {
            self.writing = self.start_next(now);
        }
    }

    fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closing {
            return None;
        }
        let mut at = earliest(self.handshake_deadline, Some(self.gc_at));
        at = earliest(at, self.writing.as_ref().map(|w| w.deadline));
        earliest(at, self.awaiting_ack.as_ref().map(|a| a.deadline))
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    fn wants_input(&self) -> bool {
        !self.closing && !self.waiting_for_slot
    }

    fn handle_closed(&mut self, _now: Instant, reason: &CloseReason) {
        self.closing = true;
        self.fail_outstanding(reason);
        // The application may still release what it holds; the connection is gone,
        // so no ACK will be sent (the sender saw the failure).
    }
}

impl Connection {
    /// For tests and diagnostics: the deadline of the write in progress.
    pub fn write_deadline(&self) -> Option<Instant> {
        self.writing.as_ref().map(|w| w.deadline)
    }

    /// For tests and diagnostics: the deadline of the ACK awaited.
    pub fn ack_deadline(&self) -> Option<Instant> {
        self.awaiting_ack.as_ref().map(|a| a.deadline)
    }

    /// For tests and diagnostics: when the GC looks next.
    pub fn gc_deadline(&self) -> Instant {
        self.gc_at
    }

    /// How long it has been idle at `now`.
    pub fn idle(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_activity)
    }
}
