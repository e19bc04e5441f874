//! The crate's errors, one enum per kind of failure.

use std::time::Duration;

/// A peer broke the protocol; the connection is closed with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// header_len + data_len above the limit (libchirp closes with ENOMEM).
    #[error("message of {size} bytes (header and data) exceeds the limit of {limit}")]
    TooLarge {
        /// header_len + data_len as announced.
        size: u64,
        /// The configured MAX_MSG_SIZE.
        limit: u32,
    },
    /// An ACK or NOOP announced a header or data.
    #[error("an ACK/NOOP may not carry a header or data (header_len {header_len}, data_len {data_len})")]
    ControlWithPayload {
        /// As announced.
        header_len: u16,
        /// As announced.
        data_len: u32,
    },
    /// An ACK or NOOP asked to be acknowledged.
    #[error("an ACK/NOOP may not require an ACK (type {kind:#04x})")]
    ControlRequestsAck {
        /// The type byte.
        kind: u8,
    },
}

/// A message could not be queued for sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection's send queue is full: back-pressure (libchirp has no bound).
    #[error("send queue full ({queued} messages, {bytes} bytes queued)")]
    QueueFull {
        /// Messages queued.
        queued: usize,
        /// Bytes queued.
        bytes: usize,
    },
    /// header or data too long for the wire or above MAX_MSG_SIZE.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// header + data.
        size: u64,
        /// The limit that applies.
        limit: u64,
    },
    /// The connection is closed (or closing).
    #[error("connection closed")]
    Closed,
}

/// Why a send that was accepted did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// The write (or, in synchronous mode, the remote's ACK) took longer than TIMEOUT.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// The connection closed before the message completed.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The connection closed before the message was written; it may be sent again on
    /// another connection (libchirp keeps such messages queued for the reconnect).
    #[error("not sent: {0}")]
    NotSent(String),
}

/// A slot could not be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// Not a slot held by the application (released twice, or from another
    /// connection's generation).
    #[error("slot {index} is not held (already released?)")]
    NotHeld {
        /// The slot's index.
        index: u8,
    },
}

/// A configuration libchirp would refuse (its `ch_chirp_verify_cfg` rules).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// PORT must be above 1024 (0 is pvloom's "any free port").
    #[error("PORT must be > 1024 (or 0 for any free port), not {0}")]
    Port(u16),
    /// BACKLOG must be below 128.
    #[error("BACKLOG must be < 128, not {0}")]
    Backlog(u32),
    /// TIMEOUT must be within 0.1 s ..= 1200 s.
    #[error("TIMEOUT must be within 0.1 s and 1200 s, not {0:?}")]
    Timeout(Duration),
    /// REUSE_TIME must be within 0.5 s ..= 3600 s.
    #[error("REUSE_TIME must be within 0.5 s and 3600 s, not {0:?}")]
    ReuseTime(Duration),
    /// TIMEOUT must not exceed REUSE_TIME.
    #[error("TIMEOUT ({timeout:?}) must be <= REUSE_TIME ({reuse_time:?})")]
    TimeoutAboveReuse {
        /// TIMEOUT.
        timeout: Duration,
        /// REUSE_TIME.
        reuse_time: Duration,
    },
    /// MAX_SLOTS must be 1 (or 0) when SYNCHRONOUS, and at most 32.
    #[error("MAX_SLOTS {slots} is not allowed ({why})")]
    Slots {
        /// As configured.
        slots: u8,
        /// The rule broken.
        why: &'static str,
    },
    /// BUFFER_SIZE must be 0 (the default) or at least 1024.
    #[error("BUFFER_SIZE must be 0 or >= 1024, not {0}")]
    BufferSize(u32),
    /// TLS cannot be set up from the configured files.
    #[error("TLS: {0}")]
    Tls(String),
    /// The send queue bound must allow at least one message.
    #[error("the send queue must hold at least one message")]
    SendQueue,
}
