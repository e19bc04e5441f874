//! LDMS for pvloom, wire-compatible with ldmsd 4.x (protocol 4.2.0.0), sans-I/O.
//!
//! - [`zap`]: the `sock` transport's framing: the 20-byte header, every message type,
//!   the 1 MiB frame limit (READ_RESP exempt), and the rail connect message.
//! - [`set`]: metric set images: the meta and data layouts, every metric type, lists
//!   and records in the heap.
//! - [`request`]: the LDMS requests and replies inside SENDRECV data, the rendezvous
//!   messages inside RENDEZVOUS, and the directory JSON.
#![warn(missing_docs)]

pub mod request;
pub mod set;
pub mod zap;
