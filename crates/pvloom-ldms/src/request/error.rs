//! The error type and a bounds-checked reader shared by the codecs.

use bytes::Bytes;

/// Malformed LDMS request, reply or rendezvous message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Fewer bytes than the message's fixed part or a length field needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The header's `len` disagrees with the bytes carried.
    #[error("header len {len} but the message is {actual} bytes")]
    HeaderLen {
        /// The header's length field.
        len: u32,
        /// The message length.
        actual: usize,
    },
    /// Bytes left over after a command's body (they could not be re-encoded).
    #[error("command {cmd:#x}: {extra} bytes after the body")]
    Trailing {
        /// The command.
        cmd: u32,
        /// Bytes left over.
        extra: usize,
    },
    /// A string that ldmsd NUL-terminates is not.
    #[error("{0} is not NUL-terminated")]
    MissingNul(&'static str),
    /// A rendezvous message with a command other than LOOKUP and PUSH.
    #[error("unknown rendezvous command {0}")]
    UnknownRendezvous(u32),
    /// A notify event's length field disagrees with the reply.
    #[error("notify event len {len} but {actual} bytes carried")]
    NotifyLen {
        /// The event's length field.
        len: u32,
        /// Bytes of event carried.
        actual: usize,
    },
    /// The bytes after a LOOKUP's set_info are not the profiling marker and timestamps.
    #[error("unrecognised {0}-byte tail after the lookup set_info")]
    LookupTail(usize),
    /// A set_info item longer than its one-byte length can say (encode only).
    #[error("set_info item of {0} bytes exceeds 255")]
    ItemTooLong(usize),
    /// An empty set_info key, which would end the list early (encode only).
    #[error("empty set_info key")]
    EmptyInfoKey,
}

/// Reads fields front to back, checking every length against what is left.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes, shared with the input.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, RequestError> {
        if n > self.remaining() {
            return Err(RequestError::Truncated { what, need: self.pos.saturating_add(n), have: self.buf.len() });
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        b
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RequestError> {
        let b = self.take(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(&b);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, RequestError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn be32(&mut self, what: &'static str) -> Result<u32, RequestError> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub(crate) fn le32(&mut self, what: &'static str) -> Result<u32, RequestError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn be64(&mut self, what: &'static str) -> Result<u64, RequestError> {
        self.array(what).map(u64::from_be_bytes)
    }

    pub(crate) fn le64(&mut self, what: &'static str) -> Result<u64, RequestError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Fails if anything is left, so that what was decoded re-encodes to the input.
    pub(crate) fn finish(&self, cmd: u32) -> Result<(), RequestError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(RequestError::Trailing { cmd, extra }),
        }
    }
}

/// `v` as a u32 length field.
///
/// # Panics
/// If `v` exceeds `u32::MAX`; no LDMS message can be that long.
pub(crate) fn len32(v: usize) -> u32 {
    u32::try_from(v).expect("LDMS message longer than u32::MAX")
}

/// A NUL-terminated field of `n` bytes (length field included the NUL), without the NUL.
pub(crate) fn take_cstr(r: &mut Reader, n: usize, what: &'static str) -> Result<Bytes, RequestError> {
    let b = r.take(n, what)?;
    match b.last() {
        Some(0) => Ok(b.slice(..b.len() - 1)),
        _ => Err(RequestError::MissingNul(what)),
    }
}
