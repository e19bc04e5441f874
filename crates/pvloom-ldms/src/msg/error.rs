//! Errors of the message-service codec and of reassembly.

use super::LdmsAddr;

/// A malformed message-service body, or one that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// Fewer bytes than a fixed part needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A whole message's `msg_len` disagrees with the bytes after its header.
    #[error("msg_len {msg_len} but {actual} bytes follow the message header")]
    MsgLen {
        /// The header's `msg_len`.
        msg_len: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// A string that must be NUL-terminated is not.
    #[error("{0} is not NUL-terminated")]
    MissingNul(&'static str),
    /// A name or match string holds a NUL (encode only: it could not be decoded back).
    #[error("{0} contains a NUL byte")]
    InteriorNul(&'static str),
    /// An MSG_SUB / MSG_UNSUB's 31-bit match length field is not what ldmsd stores for
    /// the match carried.
    #[error("match_len field {field:#x}, but ldmsd stores {expected:#x} for the match carried")]
    MatchLen {
        /// The field as received (31 bits).
        field: u32,
        /// What ldmsd puts there for this match.
        expected: u32,
    },
    /// A sub/unsub reply's `msg_len` disagrees with the text carried.
    #[error("reply msg_len {msg_len} but {actual} bytes of text")]
    ReplyLen {
        /// The reply's `msg_len`.
        msg_len: i32,
        /// Bytes carried.
        actual: usize,
    },
    /// A message too large for the 32-bit length fields.
    #[error("message of {0} bytes is too large for msg_len")]
    TooLarge(usize),
    /// A part size given to [`super::split_message`] that cannot hold the message header
    /// in the first part (receivers read the message length from it).
    #[error("max_part {0} is smaller than the {min}-byte message header", min = super::MSG_HDR_LEN)]
    PartTooSmall(usize),
}

/// Why the [`super::Reassembler`] refused a part. The part is dropped, and so is any
/// message in progress under the same key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// A continuation part (`first = 0`) for a message that has no first part.
    #[error("part of message {msg_gn} from {src:?} without a first part")]
    NoFirst {
        /// Source address of the part.
        src: LdmsAddr,
        /// The message number.
        msg_gn: u64,
    },
    /// A first part for a message already in progress.
    #[error("second first part for message {msg_gn} from {src:?}")]
    FirstTwice {
        /// Source address of the part.
        src: LdmsAddr,
        /// The message number.
        msg_gn: u64,
    },
    /// The whole message (header included) would be larger than the limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared whole-message length, header included.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// Too many messages are already in progress.
    #[error("{max} messages already in progress")]
    TooManyInProgress {
        /// The limit.
        max: usize,
    },
    /// Buffering the message would exceed the total buffer limit.
    #[error("buffering {need} more bytes would exceed the limit of {max}")]
    BufferFull {
        /// Bytes the new message needs.
        need: usize,
        /// The limit.
        max: usize,
    },
    /// The parts carry more bytes than the first part's header declared.
    #[error("parts carry {got} bytes but the message is {len}")]
    Overrun {
        /// Declared whole-message length, header included.
        len: usize,
        /// Bytes received with this part.
        got: usize,
    },
    /// The last part (`more = 0`) arrived before the declared length was reached.
    #[error("last part after {got} bytes but the message is {len}")]
    Short {
        /// Declared whole-message length, header included.
        len: usize,
        /// Bytes received.
        got: usize,
    },
    /// The first part or the completed message does not decode.
    #[error("bad message: {0}")]
    Malformed(#[from] MsgError),
}
