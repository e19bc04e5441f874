//! Circuit liveness the way libca checks it: after a quiet period send an
//! ECHO; if nothing at all arrives within the echo timeout, the circuit is
//! unresponsive. Time comes in as `now`; nothing here reads a clock.

use std::time::{Duration, Instant};

use crate::proto::constants::{CONNECTION_TIMEOUT, ECHO_TIMEOUT};

/// What the owner of a circuit should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing until this instant (call [`Keepalive::poll`] again then).
    WaitUntil(Instant),
    /// Send [`Command::EchoRequest`](crate::proto::Command::EchoRequest), then
    /// call [`Keepalive::echo_sent`].
    SendEcho,
    /// No reply within the echo timeout: report the circuit unresponsive
    /// (libca's ECA_UNRESPTMO) and consider reconnecting via search.
    Unresponsive,
}

/// Echo timer of one circuit (client side; servers only answer echoes).
#[derive(Debug, Clone)]
pub struct Keepalive {
    idle_period: Duration,
    echo_timeout: Duration,
    last_heard: Instant,
    echo_sent_at: Option<Instant>,
}

impl Keepalive {
    /// libca's defaults: echo after 30 s of silence (EPICS_CA_CONN_TMO), give up 5 s later.
    pub fn new(now: Instant) -> Self {
        Self::with_periods(now, CONNECTION_TIMEOUT, ECHO_TIMEOUT)
    }

    /// Custom periods.
    pub fn with_periods(now: Instant, idle_period: Duration, echo_timeout: Duration) -> Self {
        Keepalive { idle_period, echo_timeout, last_heard: now, echo_sent_at: None }
    }

    /// Any bytes arrived from the peer: it is alive.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.echo_sent_at = None;
    }

    /// An ECHO request was written.
    pub fn echo_sent(&mut self, now: Instant) {
        self.echo_sent_at = Some(now);
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub fn next_deadline(&self) -> Instant {
        match self.echo_sent_at {
            Some(sent) => sent + self.echo_timeout,
            None => self.last_heard + self.idle_period,
        }
    }

    /// Decides what is due at `now`.
    pub fn poll(&self, now: Instant) -> KeepaliveAction {
        match self.echo_sent_at {
            Some(sent) => {
                let deadline = sent + self.echo_timeout;
                if now >= deadline { KeepaliveAction::Unresponsive } else { KeepaliveAction::WaitUntil(deadline) }
            }
            None => {
                let due = self.last_heard + self.idle_period;
                if now >= due { KeepaliveAction::SendEcho } else { KeepaliveAction::WaitUntil(due) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_then_timeout() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(start);
        assert_eq!(keepalive.poll(start), KeepaliveAction::WaitUntil(start + CONNECTION_TIMEOUT));
        let quiet = start + CONNECTION_TIMEOUT;
        assert_eq!(keepalive.poll(quiet), KeepaliveAction::SendEcho);
        keepalive.echo_sent(quiet);
        assert_eq!(keepalive.poll(quiet + Duration::from_secs(1)), KeepaliveAction::WaitUntil(quiet + ECHO_TIMEOUT));
        assert_eq!(keepalive.poll(quiet + ECHO_TIMEOUT), KeepaliveAction::Unresponsive);
    }

    #[test]
    fn traffic_resets_the_timer() {
        let start = Instant::now();
        let mut keepalive = Keepalive::new(start);
        let later = start + Duration::from_secs(29);
        keepalive.heard(later);
        assert_eq!(keepalive.poll(start + CONNECTION_TIMEOUT), KeepaliveAction::WaitUntil(later + CONNECTION_TIMEOUT));
        keepalive.echo_sent(later);
        keepalive.heard(later + Duration::from_secs(1));
        assert!(matches!(keepalive.poll(later + Duration::from_secs(10)), KeepaliveAction::WaitUntil(_)));
    }
}
