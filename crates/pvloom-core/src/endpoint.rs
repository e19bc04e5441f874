//! The endpoint contract: what every protocol's sans-I/O core offers its driver.
//!
//! In quinn-proto's shape. Input is pushed in with the time it arrived
//! (`handle_input`, `handle_datagram`) and `handle_timeout` is called once the
//! endpoint's own deadline passed; output is pulled (`poll_transmit`), as are
//! application events (`poll_event`), the next deadline (`poll_timeout`) and a
//! decision to close (`poll_close`). An endpoint never reads a clock and never
//! touches a socket: every protocol timer (keepalive, search backoff, operation
//! deadlines, reconnect backoff) lives inside it as an `Instant` it compares with the
//! `now` it is given.
//!
//! The same endpoint runs on a real socket under [`crate::driver`] and in memory on
//! virtual time under `pvloom_core::harness` (feature `harness`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

/// Why a connection closed; the text is for logs and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the connection (EOF or reset).
    PeerClosed,
    /// This side asked to close, e.g. the user dropped the connection.
    Local(String),
    /// The peer broke the protocol (bad input), as the endpoint judged it.
    Protocol(String),
    /// A deadline passed: connect, echo, or a peer that stopped reading.
    TimedOut(String),
    /// The socket failed.
    Io(String),
    /// The runtime shut down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::Local(why) => write!(f, "closed locally: {why}"),
            CloseReason::Protocol(why) => write!(f, "protocol error: {why}"),
            CloseReason::TimedOut(why) => write!(f, "timed out: {why}"),
            CloseReason::Io(why) => write!(f, "socket error: {why}"),
            CloseReason::Shutdown => f.write_str("runtime shut down"),
        }
    }
}

impl CloseReason {
    /// True for a close that is part of normal life (peer left, shutdown, local).
    pub fn is_orderly(&self) -> bool {
        matches!(self, CloseReason::PeerClosed | CloseReason::Shutdown | CloseReason::Local(_))
    }
}

/// The sans-I/O core of one stream connection (TCP).
pub trait StreamEndpoint: Send + 'static {
    /// What the endpoint reports to the application.
    type Event: Send;

    /// The transport is up (connected, or accepted); the default does nothing.
    fn handle_connected(&mut self, _now: Instant) {}

    /// Bytes received from the peer at `now`.
    fn handle_input(&mut self, now: Instant, data: &[u8]);

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed (it may be
    /// called late, or early after another input: compare with `now`).
    fn handle_timeout(&mut self, now: Instant);

    /// Append bytes to send to `out`, about `room` at most: the driver's send buffer
    /// is bounded, and `room == 0` means the peer is not reading (back-pressure).
    /// Whatever does not fit stays queued in the endpoint, which decides what to keep.
    fn poll_transmit(&mut self, now: Instant, room: usize, out: &mut BytesMut);

    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`handle_timeout`](Self::handle_timeout) must be called next; `None`:
    /// no timer (an idle endpoint costs no wake-ups).
    fn poll_timeout(&self) -> Option<Instant>;

    /// Set once the endpoint decided the connection must close.
    fn poll_close(&mut self) -> Option<CloseReason>;

    /// False while the endpoint wants no further input, e.g. its replies wait
    /// unsent: the driver stops reading until it is true again.
    fn wants_input(&self) -> bool {
        true
    }

    /// The connection is gone (for any reason, the endpoint's own included).
    fn handle_closed(&mut self, _now: Instant, _reason: &CloseReason) {}
}

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Destination.
    pub to: SocketAddr,
    /// Payload.
    pub data: Bytes,
}

/// The sans-I/O core of one datagram socket (UDP).
pub trait DatagramEndpoint: Send + 'static {
    /// What the endpoint reports to the application.
    type Event: Send;

    /// A datagram from `from` arrived at `now`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed.
    fn handle_timeout(&mut self, now: Instant);

    /// The next datagram to send.
    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram>;

    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    fn poll_timeout(&self) -> Option<Instant>;

    /// True once the endpoint is done: the driver closes the socket.
    fn is_closed(&self) -> bool {
        false
    }
}
