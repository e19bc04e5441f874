//! [`MsgConn`]: the message service on one connection, either side — parts collected into
//! messages for the bus, credit returned for them, and what the bus routed to the peer
//! sent as the peer's credit and the socket's room allow. Sans-I/O: it is given the
//! session and `now`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{BusError, BusMsg, Credit, Link, MsgBus, Routed, Taken, check_identity, timespec};
use crate::msg::{Limits, Msg, PartRef, Reassembler};
use crate::request::{REQUEST_HDR_LEN, Request, RequestBody};
use crate::session::Session;
use crate::zap;

/// Encoded messages the session may hold at once. More waits unencoded in the link: a
/// session filled to its full limit (megabytes) was copied out to the driver piece by
/// piece and grown by copying, where a window below the driver's buffer goes out whole,
/// by a buffer swap.
pub const PUMP_WINDOW: usize = 128 * 1024;

/// What a MSG part came to.
#[derive(Debug)]
pub enum PartOutcome {
    /// More parts are needed.
    Partial,
    /// A whole message, handed to the bus.
    Routed,
    /// A whole message refused; the peer was told (SEND_QUOTA with an errno).
    Refused(BusError),
}

/// The message service's state on one connection.
pub struct MsgConn {
    bus: Arc<MsgBus>,
    link: Arc<Link>,
    reasm: Reassembler,
    /// Messages taken from the link, waiting for room or the peer's credit.
    out: VecDeque<Routed>,
    taken: Taken,
    /// Credit the peer granted (its recv_quota; `u64::MAX`: unlimited) less what is used.
    credit: u64,
    /// Since when messages wait for credit.
    starved_since: Option<Instant>,
    /// Whether this side checks a publisher's claimed identity (the passive side).
    check_identity: bool,
    sent: u64,
    /// Bytes (msg_len) sent whose credit the peer has not returned yet: the peer has not
    /// finished with them.
    unreturned: u64,
}

impl std::fmt::Debug for MsgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgConn").field("link", &self.link.id()).field("out", &self.out.len()).finish()
    }
}

impl MsgConn {
    /// The service for a connection on `bus`, its peer's identity in `link`.
    pub fn new(bus: Arc<MsgBus>, link: Arc<Link>, max_msg: usize, check_identity: bool) -> MsgConn {
        MsgConn {
            reasm: Reassembler::new(Limits { max_msg, ..Default::default() }),
            bus,
            link,
            out: VecDeque::new(),
            taken: Taken::default(),
            credit: u64::MAX,
            starved_since: None,
            check_identity,
            sent: 0,
            unreturned: 0,
        }
    }

    /// The connection's link.
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<MsgBus> {
        &self.bus
    }

    /// Messages sent to the peer.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The peer's handshake told its recv_quota: this side's credit for sending to it.
    pub fn set_peer_quota(&mut self, quota: u64) {
        self.credit = quota;
    }

    /// Credit the peer returned (SEND_QUOTA).
    pub fn on_send_quota(&mut self, quota: u32) {
        self.unreturned = self.unreturned.saturating_sub(u64::from(quota));
        if self.credit != u64::MAX {
            self.credit = self.credit.saturating_add(u64::from(quota));
        }
    }

    /// Too many of the peer's messages are still held in the bus: read no more input.
    pub fn held_up(&self) -> bool {
        self.link.in_flight() > self.bus.config().link_in_flight
    }

    /// When the peer will have held messages waiting for its credit for `timeout`.
    pub fn credit_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.starved_since.and_then(|t| t.checked_add(timeout))
    }

    /// The peer refused a message with no credit (its message service is off, as
    /// ldmsd's without `msg_enable`): it returns none for any, so none is awaited.
    pub fn forget_unreturned(&mut self) {
        self.unreturned = 0;
    }

    /// True while the peer has not returned the credit of every message sent to it
    /// (it has not finished with them all).
    pub fn awaiting_credit(&self) -> bool {
        self.unreturned > 0
    }

    /// True while messages wait for the peer.
    pub fn has_pending(&self) -> bool {
        !self.out.is_empty() || self.link.has_out()
    }

    /// Sends returned credit, then routed messages while the session holds less than
    /// `max_queued` bytes (at most `PUMP_WINDOW`) and the peer's credit lasts.
    pub fn pump(&mut self, session: &mut Session, max_queued: usize, now: Instant, wall: std::time::SystemTime) {
        if !session.is_open() {
            return;
        }
        let max_queued = max_queued.min(PUMP_WINDOW);
        let wall = timespec(wall);
        loop {
            if self.out.is_empty() {
                // Until a take finds nothing the link does not wake this connection, so
                // a take of credit alone must be followed by another.
                if !self.link.take(256, &mut self.taken) {
                    self.starved_since = None;
                    return;
                }
                return_credit(session, std::mem::take(&mut self.taken.credit));
                // `out` is empty here: take the lot by a swap.
                std::mem::swap(&mut self.out, &mut self.taken.out);
                continue;
            }
            while let Some(msg) = self.out.front() {
                if session.queued() >= max_queued {
                    return;
                }
                let len = msg.msg_len() as u64;
                if self.credit != u64::MAX {
                    if self.credit < len {
                        self.starved_since.get_or_insert(now);
                        // The credit this side owes goes back now, and each return
                        // wakes it from here on: the peer may be waiting for it to send
                        // the credit this side waits for (both publishing, both quotas
                        // used up: neither sent its SEND_QUOTA until the credit timeout
                        // closed both).
                        return_credit(session, self.link.take_credit());
                        return;
                    }
                    self.credit -= len;
                }
                self.starved_since = None;
                self.unreturned += len;
                if let Some(len) = msg.msg.single_part_len() {
                    session.send_recv_with(len, |out| msg.msg.encode_single(wall, len, out));
                } else {
                    for part in msg.msg.wire(wall).iter() {
                        session.send(zap::Msg::SendRecv(part.clone()));
                    }
                }
                self.sent += 1;
                self.out.pop_front();
            }
        }
    }

    /// A MSG part from the peer. A whole message goes to the bus (credit returns when the
    /// bus is done with it), or is refused with a SEND_QUOTA carrying the errno.
    ///
    /// # Errors
    /// The part or the message is malformed or over the limit: close the connection.
    pub fn on_part(
        &mut self,
        session: &mut Session,
        body: &[u8],
        now: Instant,
        wall: std::time::SystemTime,
    ) -> Result<PartOutcome, String> {
        let part = PartRef::decode(body).map_err(|e| format!("bad MSG part: {e}"))?;
        let msg: Msg = match self.reasm.push_ref(part) {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(PartOutcome::Partial),
            Err(e) => return Err(format!("message reassembly: {e}")),
        };
        let quota = msg.msg_len() as u32;
        let refused = if !self.bus.is_enabled() {
            Some(BusError::Disabled)
        } else if self.check_identity {
            check_identity(self.link.credentials(), msg.header.uid, msg.header.gid).err()
        } else {
            None
        };
        if let Some(e) = refused {
            tracing::debug!(link = self.link.id(), "message refused: {e}");
            send_quota(session, quota, e.errno());
            return Ok(PartOutcome::Refused(e));
        }
        let credit = Credit::new(self.link.clone(), quota, super::held_size(msg.msg_len()));
        let bm = BusMsg::received(msg, timespec(wall));
        self.bus.route_with(Arc::new(bm), Some(credit), Some(self.link.id()), now, wall);
        Ok(PartOutcome::Routed)
    }

    /// The connection is gone: its subscriptions end, what waited for it is dropped
    /// (its senders get their credit back), collected parts are freed.
    pub fn forget(&mut self) {
        self.bus.forget_link(self.link.id());
        self.out.clear();
        self.link.clear();
        self.reasm.clear();
    }
}

/// `credit` back to the peer, in SEND_QUOTAs of at most `u32::MAX` bytes each.
fn return_credit(session: &mut Session, mut credit: u64) {
    while credit > 0 {
        let q = credit.min(u64::from(u32::MAX));
        send_quota(session, q as u32, 0);
        credit -= q;
    }
}

/// Queues a SEND_QUOTA of `quota` with `rc` (0, or the errno of a refusal).
fn send_quota(session: &mut Session, quota: u32, rc: i32) {
    let mut b = BytesMut::with_capacity(REQUEST_HDR_LEN + 8);
    Request::new(0, RequestBody::SendQuota { quota, rc }).encode(&mut b);
    session.send(zap::Msg::SendRecv(b.freeze()));
}
