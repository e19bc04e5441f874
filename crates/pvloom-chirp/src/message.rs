//! Messages: what the application sends and what it receives.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::identity::Identity;
use crate::slots::SlotId;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Its identity: random for a new message, the request's for a reply.
    pub identity: Identity,
    /// Upper-layer header bytes (at most 65 535).
    pub header: Bytes,
    /// The data.
    pub data: Bytes,
}

impl Outgoing {
    /// A new message with a random identity.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Outgoing { identity: Identity::random(), header: Bytes::new(), data: data.into() }
    }

    /// A reply to `request`: it keeps the request's identity, which is how the
    /// requester matches answers to requests.
    pub fn reply(request: &Received, data: impl Into<Bytes>) -> Self {
        Outgoing { identity: request.identity, header: Bytes::new(), data: data.into() }
    }

    /// Header and data bytes together.
    pub fn body_len(&self) -> u64 {
        self.header.len() as u64 + self.data.len() as u64
    }
}

/// A message received, holding one of the connection's slots until released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The slot it occupies.
    pub slot: SlotId,
    /// Its identity (the sender's, or the request's for a reply).
    pub identity: Identity,
    /// The sender's serial for it.
    pub serial: u32,
    /// The sending node's identity (from its handshake).
    pub remote_identity: Identity,
    /// The sender's address and its public (listening) port: where a reply goes.
    pub from: SocketAddr,
    /// Upper-layer header bytes.
    pub header: Bytes,
    /// The data.
    pub data: Bytes,
    /// The sender asked for an ACK, sent when the slot is released.
    pub wants_ack: bool,
}
