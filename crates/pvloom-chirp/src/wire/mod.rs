//! libchirp's wire: the handshake each side sends first, then messages, each a fixed
//! header followed by the upper-layer header bytes and the data bytes.

mod handshake;
mod header;

pub use handshake::{HANDSHAKE_LEN, Handshake};
pub use header::{HEADER_LEN, MsgKind, WireHeader, kind};
