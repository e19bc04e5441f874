//! LDMS for pvloom, wire-compatible with ldmsd 4.x (protocol 4.2.0.0), sans-I/O.
//!
//! - [`zap`]: the `sock` transport's framing: the 20-byte header, every message type,
//!   the 1 MiB frame limit (READ_RESP exempt), and the rail connect message.
//! - [`set`]: metric set images: the meta and data layouts, every metric type, lists
//!   and records in the heap; [`set::LocalSet`] for sets this process produces.
//! - [`client`]: `Xprt`, the LDMS client on pvloom-core's driver: dir, lookup, update,
//!   push, from any thread, blocking or with callbacks.
//! - [`server`]: serves local sets to many peers: dir and dir updates, lookup, reads, push.
//! - [`request`]: the LDMS requests and replies inside SENDRECV data, the rendezvous
//!   messages inside RENDEZVOUS, and the directory JSON.
//! - [`msg`]: the message service (message bus): MSG parts and whole messages,
//!   subscribe parameters and replies, splitting and reassembly.
//! - [`ldmsd_req`]: the LDMSD request protocol of `ldmsctl` / `ldmsd_controller`
//!   (records, attributes, bounded reassembly), carried in SEND_MSG.
//! - [`bus`]: the message bus of a process: local clients, remote subscribers, credit.
//! - [`chan`]: `MessageChannel`, a listening subscriber and a reconnecting publisher
//!   with a bounded queue (`ldms_msg_chan`).
//! - [`session`]: one connection's zap session: handshake, limits, outbound queue.
#![warn(missing_docs)]

pub mod bus;
pub mod chan;
pub mod client;
pub mod ldmsd_req;
pub mod msg;
pub mod request;
pub mod server;
pub mod session;
pub mod set;
pub mod zap;

/// A fast seeded hasher for the maps on the per-message and per-update paths (their keys
/// are ids this process hands out or map keys it looks up; SipHash showed in profiles).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The set form of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
