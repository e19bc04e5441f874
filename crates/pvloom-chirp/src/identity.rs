//! Identities: 16 opaque bytes naming a node (sent in its handshake) or a message
//! (kept by a reply, so requests and answers can be matched).

use std::fmt;

/// Length of an identity on the wire (`CH_ID_SIZE`).
pub const IDENTITY_LEN: usize = 16;

/// A node's or a message's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Identity(pub [u8; IDENTITY_LEN]);

impl Identity {
    /// The all-zero identity: libchirp's "not configured" for a node identity.
    pub const ZERO: Identity = Identity([0; IDENTITY_LEN]);

    /// 16 random bytes. Uniqueness is what matters (identities are matched, never
    /// trusted), so a fast per-thread generator is enough; libchirp uses `rand()`.
    pub fn random() -> Identity {
        Identity(fastrand::u128(..).to_be_bytes())
    }

    /// True for the all-zero identity.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; IDENTITY_LEN]
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; IDENTITY_LEN] {
        &self.0
    }
}

impl From<[u8; IDENTITY_LEN]> for Identity {
    fn from(bytes: [u8; IDENTITY_LEN]) -> Self {
        Identity(bytes)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self})")
    }
}
