//! What a node counts about its connections, for [`crate::Chirp::stats`]: above all
//! the asynchronous messages that completed but may have been lost with a connection
//! that died (chirp has no receipt for them, so this is the only report they get).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use pvloom_core::CloseReason;

/// A snapshot of a node's counters, each since its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Connections whose chirp handshake completed (connected or accepted).
    pub connections_opened: u64,
    /// Connections closed, for any reason, before or after their handshake.
    pub connections_closed: u64,
    /// Of those, the ones this node did not close itself in order (stop, idle
    /// collection): the peer went away, the socket failed, a timeout, a protocol error.
    pub connections_lost: u64,
    /// Connections opened to a remote that had lost one (after its reconnect block).
    pub reconnects: u64,
    /// Asynchronous sends that completed (handed to the OS) on a connection that then
    /// closed before the peer was seen to read them: an upper bound on what was lost.
    /// Logged at each such close: a warning when the connection was lost, info when
    /// this node closed it (stop).
    pub possibly_lost: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    opened: AtomicU64,
    closed: AtomicU64,
    lost: AtomicU64,
    reconnects: AtomicU64,
    possibly_lost: AtomicU64,
}

impl Counters {
    pub(crate) fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection to `peer` closed for `reason` with `unconfirmed` asynchronous
    /// sends not known to have been read.
    pub(crate) fn closed(&self, peer: IpAddr, port: Option<u16>, reason: &CloseReason, unconfirmed: u64) {
        self.closed.fetch_add(1, Ordering::Relaxed);
        let lost = !matches!(reason, CloseReason::Local(_) | CloseReason::Shutdown);
        if lost {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
        if unconfirmed == 0 {
            return;
        }
        self.possibly_lost.fetch_add(unconfirmed, Ordering::Relaxed);
        // Counted either way (a stop drops what the driver had not written yet), but only
        // a connection lost under the node is a warning: a stop is the application's own
        // decision, and would otherwise warn at every shutdown of an asynchronous sender.
        if lost {
            tracing::warn!(
                %peer,
                port,
                possibly_lost = unconfirmed,
                "chirp connection closed ({reason}): {unconfirmed} asynchronous sends completed but were not \
                 seen read by the peer and may be lost"
            );
        } else {
            tracing::info!(
                %peer,
                port,
                possibly_lost = unconfirmed,
                "chirp connection closed ({reason}) with {unconfirmed} asynchronous sends not seen read by the peer"
            );
        }
    }

    pub(crate) fn snapshot(&self) -> NodeStats {
        NodeStats {
            connections_opened: self.opened.load(Ordering::Relaxed),
            connections_closed: self.closed.load(Ordering::Relaxed),
            connections_lost: self.lost.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            possibly_lost: self.possibly_lost.load(Ordering::Relaxed),
        }
    }
}
