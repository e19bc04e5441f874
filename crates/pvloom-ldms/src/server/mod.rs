//! The LDMS set server: serves this process's metric sets to LDMS peers as ldmsd does.
//!
//! - [`SetRegistry`]: the published sets (thread-safe, shared); a producer writes a set
//!   through its [`SetHandle`], and a transaction's end pushes it to registered peers.
//! - [`ServerConn`]: one peer, sans-I/O ([`pvloom_core::endpoint::StreamEndpoint`]):
//!   DIR with updates, LOOKUP (name, schema, regex), READ_REQ bounded to the sets' regions,
//!   push, SET_DELETE, access checks with the peer's [`Credentials`], bounded memory.
//! - [`LdmsServer`]: the listener and the connections on pvloom-core's runtime; each
//!   connection's [`Peer`] handle sends it application messages, and
//!   [`LdmsServer::bind_with_events`] reports its [`PeerEvent`]s.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pvloom_ldms::server::{LdmsServer, ServerConfig, SetRegistry};
//! # fn demo(rt: pvloom_core::RuntimeHandle, set: pvloom_ldms::set::LocalSet) -> std::io::Result<()> {
//! let registry = SetRegistry::new();
//! let handle = registry.publish(set).expect("unique name");
//! let server = LdmsServer::bind(rt, "127.0.0.1:10444".parse().unwrap(), registry, ServerConfig::default())?;
//! handle.update(|s| s.set_u64(1, 42)).expect("a U64 metric");
//! # drop(server); Ok(()) }
//! ```

mod access;
mod endpoint;
mod registry;
mod tcp;

pub use access::{ACCESS_READ, Credentials};
pub use endpoint::{
    ConnStats, EACCES, EINVAL, EMSGSIZE, ENOBUFS, ENOENT, ENOTCONN, ENOTSUP, SEND_MSG_MAX, SendError, ServerConfig,
    ServerConn, ServerEvent, ZAP_ERR_REMOTE_LEN, ZAP_ERR_REMOTE_MAP, ZAP_ERR_REMOTE_PERMISSION,
};
pub use registry::{PublishOptions, RegistryError, SetHandle, SetRegistry};
pub use tcp::{LdmsServer, Peer, PeerEvent, PeerEventCb};
