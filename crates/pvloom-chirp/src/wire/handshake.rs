//! The handshake: 18 bytes, the sender's public port (u16, big-endian) then its node
//! identity. Both sides send one as soon as the connection is up.

use crate::identity::{IDENTITY_LEN, Identity};

/// Length of a handshake on the wire (`CH_SR_HANDSHAKE_SIZE`).
pub const HANDSHAKE_LEN: usize = 2 + IDENTITY_LEN;

/// What a node announces about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The port the node listens on: replies and new connections go there, not to
    /// the connection's ephemeral source port.
    pub port: u16,
    /// The node's identity (random per start unless configured).
    pub identity: Identity,
}

impl Handshake {
    /// The 18 wire bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[..2].copy_from_slice(&self.port.to_be_bytes());
        out[2..].copy_from_slice(&self.identity.0);
        out
    }

    /// Decode the first [`HANDSHAKE_LEN`] bytes; `None` when fewer are given. Every
    /// 18 bytes are a valid handshake: libchirp checks nothing in it.
    pub fn decode(bytes: &[u8]) -> Option<Handshake> {
        let bytes: &[u8; HANDSHAKE_LEN] = bytes.get(..HANDSHAKE_LEN)?.try_into().ok()?;
        let port = u16::from_be_bytes([bytes[0], bytes[1]]);
        let mut identity = [0u8; IDENTITY_LEN];
        identity.copy_from_slice(&bytes[2..]);
        Some(Handshake { port, identity: Identity(identity) })
    }
}
