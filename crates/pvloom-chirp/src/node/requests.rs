//! [`Requests`]: requests waiting for their answer, and their one timeout.
//!
//! Every request waits the same TIMEOUT, so deadlines come in the order requests were
//! made: a FIFO of deadlines and a single timer armed for the oldest replace a runtime
//! timer per request (which cost a wake-up of an I/O thread each, and lived on after
//! the answer came).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use pvloom_core::Completer;

use super::{ChirpError, Message};
use crate::identity::Identity;

pub(super) type ReplyDone = Completer<Result<Message, ChirpError>>;

#[derive(Default)]
pub(super) struct Requests {
    /// By identity: the request's number and its answer's completer.
    waiting: HashMap<Identity, (u64, ReplyDone)>,
    /// (deadline, identity, number), oldest first; answered ones are skipped when due.
    deadlines: VecDeque<(Instant, Identity, u64)>,
    next: u64,
    /// A timer is armed for the front of `deadlines`.
    pub timer_armed: bool,
}

impl Requests {
    /// Wait for the answer to `identity` until `deadline`. Returns the completer of an
    /// older request with the same identity, which can get no answer now.
    pub fn insert(&mut self, identity: Identity, done: ReplyDone, deadline: Instant) -> Option<ReplyDone> {
        self.next += 1;
        self.deadlines.push_back((deadline, identity, self.next));
        self.waiting.insert(identity, (self.next, done)).map(|(_, older)| older)
    }

    /// The completer waiting for `identity`, if any.
    pub fn answer(&mut self, identity: &Identity) -> Option<ReplyDone> {
        self.waiting.remove(identity).map(|(_, done)| done)
    }

    /// Requests still waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The requests whose deadline passed by `now`, and the next deadline.
    pub fn expire(&mut self, now: Instant) -> (Vec<ReplyDone>, Option<Instant>) {
        let mut expired = Vec::new();
        while let Some(&(deadline, identity, number)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.waiting.get(&identity).is_some_and(|(n, _)| *n == number)
                && let Some((_, done)) = self.waiting.remove(&identity)
            {
                expired.push(done);
            }
        }
        (expired, self.deadlines.front().map(|d| d.0))
    }

    /// Everything waiting, taken (the node stops).
    pub fn take_all(&mut self) -> Vec<ReplyDone> {
        self.deadlines.clear();
        self.waiting.drain().map(|(_, (_, done))| done).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pending() -> (ReplyDone, pvloom_core::Completion<Result<Message, ChirpError>>) {
        pvloom_core::completion()
    }

    #[test]
    fn only_unanswered_requests_expire_and_in_order() {
        let t0 = Instant::now();
        let mut requests = Requests::default();
        let (a, _a) = pending();
        let (b, _b) = pending();
        let (c, _c) = pending();
        let (ida, idb, idc) = (Identity::random(), Identity::random(), Identity::random());
        assert!(requests.insert(ida, a, t0 + Duration::from_secs(1)).is_none());
        assert!(requests.insert(idb, b, t0 + Duration::from_secs(2)).is_none());
        assert!(requests.insert(idc, c, t0 + Duration::from_secs(3)).is_none());
        assert!(requests.answer(&idb).is_some(), "b answered");
        let (expired, next) = requests.expire(t0 + Duration::from_millis(2500));
        assert_eq!(expired.len(), 1, "a expired; b was answered");
        assert_eq!(next, Some(t0 + Duration::from_secs(3)));
        assert_eq!(requests.len(), 1);
        let (expired, next) = requests.expire(t0 + Duration::from_secs(3));
        assert_eq!((expired.len(), next, requests.len()), (1, None, 0));
    }

    #[test]
    fn a_repeated_identity_replaces_the_older_request_and_keeps_its_own_deadline() {
        let t0 = Instant::now();
        let mut requests = Requests::default();
        let id = Identity::random();
        let (first, _first) = pending();
        let (second, _second) = pending();
        assert!(requests.insert(id, first, t0 + Duration::from_secs(1)).is_none());
        assert!(requests.insert(id, second, t0 + Duration::from_secs(5)).is_some(), "the older is handed back");
        // The first request's deadline passing must not expire the second.
        let (expired, _) = requests.expire(t0 + Duration::from_secs(2));
        assert!(expired.is_empty());
        assert!(requests.answer(&id).is_some());
    }
}
