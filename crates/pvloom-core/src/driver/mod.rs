//! The one socket driver every protocol runs on.
//!
//! A protocol supplies a sans-I/O endpoint ([`StreamEndpoint`] or
//! [`DatagramEndpoint`]) and a small application layer ([`StreamApp`],
//! [`DatagramApp`]) that turns the endpoint's events into callbacks and completions.
//! The driver owns everything else, once, for every protocol:
//!
//! - TCP: connect with a timeout ([`connect`]), accept ([`Listener`], [`adopt`]),
//!   buffered reads with a per-turn budget, writes with write interest only while
//!   bytes wait, a bounded send buffer whose fullness is back-pressure to the
//!   endpoint, a stall timeout for peers that stop reading, and close with a
//!   [`CloseReason`](crate::endpoint::CloseReason).
//! - UDP: unicast and broadcast sends, reads until the socket is empty.
//! - One deadline per endpoint: after every input, event or call, the driver reads
//!   `poll_timeout()` and keeps a single runtime timer armed at the earliest
//!   deadline. An endpoint with nothing due arms none.
//! - Calls from any thread reach the application on its I/O thread through an
//!   [`Address`]; the driver pumps the endpoint afterwards (events, transmit,
//!   timer), so no protocol writes that bookkeeping itself.
//!
//! [`StreamEndpoint`]: crate::endpoint::StreamEndpoint
//! [`DatagramEndpoint`]: crate::endpoint::DatagramEndpoint

mod address;
mod datagram;
mod deadline;
mod listener;
mod stream;

pub use address::Address;
pub use datagram::{DatagramAddress, DatagramApp, DatagramDriver, bind_udp};
pub use listener::{LISTEN_BACKLOG, Listener, bind_tcp};
pub use stream::{StreamAddress, StreamApp, StreamConfig, StreamDriver, adopt, connect};
