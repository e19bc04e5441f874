//! chirp message passing, wire-compatible with libchirp 1.2.
//!
//! The sans-I/O core, bottom up (dependencies run one way, each module one job):
//!
//! - [`identity`]: 16-byte node and message identities.
//! - [`wire`]: the 18-byte handshake and the 27-byte big-endian message header, with
//!   the protocol's validity rules.
//! - [`decoder`]: the byte stream of one connection cut into frames, with bounded
//!   buffering (a peer never grows memory beyond one message and one read).
//! - [`slots`]: the receive slots (at most 32) that bound what the application holds.
//! - [`config`]: libchirp's configuration, its defaults, its checks and what follows
//!   from it (slot count, reuse time, connect timeout, probe threshold).
//! - [`message`]: what is sent and what is received.
//! - [`conn`]: [`conn::Connection`], the endpoint of one TCP connection: handshake,
//!   sync and async sending, ACK/NOOP, slots and every per-connection timer.
//! - [`remote`]: the table of remotes a node keeps: keyed by (family, address, port),
//!   the last handshake wins a race, reconnects blocked 50–550 ms after a failure,
//!   idle remotes collected.
//! - [`tls`]: [`tls::Secured`], libchirp's TLS (OpenSSL over memory buffers) around
//!   any stream endpoint, and libchirp's rule for which peers are encrypted.
//! - [`node`]: [`Chirp`], a node on pvloom's shared driver: listener, connections,
//!   per-remote send queues, send / request / release.
//! - [`stats`]: [`NodeStats`], what a node counts, the possibly lost sends above all.
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod decoder;
pub mod error;
pub mod identity;
pub mod message;
pub mod node;
pub mod remote;
pub mod slots;
pub mod stats;
pub mod tls;
pub mod wire;

pub use config::{Config, Limits};
pub use conn::{ConnEvent, Connection, SendToken};
pub use error::{ConfigError, ProtocolError, ReleaseError, SendError, SendFailure};
pub use identity::Identity;
pub use message::{Outgoing, Received};
pub use node::{Chirp, ChirpError, Message};
pub use remote::{RemoteKey, RemoteTable, TableEvent};
pub use slots::SlotId;
pub use stats::NodeStats;
pub use tls::{Secured, TlsContext, TlsError};
