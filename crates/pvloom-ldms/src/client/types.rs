//! What the client endpoint hands up: ids, errors, directory parts, lookup results and
//! set snapshots. Everything here is immutable once made, so a callback may keep it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::request::dir::DirEntry;
use crate::set::{DataHeader, MetricValue, SetData, SetError, SetMeta, Timestamp};

/// One operation in flight on a connection (a DIR, LOOKUP or update).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// A set this connection looked up (the client's handle; also its push id on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(pub u64);

/// `ENOENT`: no set matched a lookup.
pub const ENOENT: i32 = 2;
/// `EIO`: a read failed.
pub const EIO: i32 = 5;
/// `EINVAL`: a malformed set image.
pub const EINVAL: i32 = 22;
/// `ENOTCONN`: the connection is gone.
pub const ENOTCONN: i32 = 107;
/// `ETIMEDOUT`: no answer in time.
pub const ETIMEDOUT: i32 = 110;
/// `EBUSY`: the operation is already in progress.
pub const EBUSY: i32 = 16;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The peer answered with an errno (a LOOKUP that matched nothing: `ENOENT`).
    #[error("the peer answered errno {0}")]
    Remote(i32),
    /// No answer before the operation's deadline.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The connection closed before the answer came.
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// The connection is not (yet, or any more) open.
    #[error("not connected")]
    NotConnected,
    /// The set is not known on this connection (never looked up, or deleted).
    #[error("unknown set")]
    UnknownSet,
    /// The set image read or pushed does not decode.
    #[error("bad set image: {0}")]
    BadImage(String),
    /// A READ_RESP with a nonzero zap status.
    #[error("read failed with zap status {0}")]
    ReadFailed(u16),
    /// The same kind of operation is already in progress on the set.
    #[error("{0} already in progress")]
    Busy(&'static str),
}

impl OpError {
    /// The errno LDMS would report for this failure (for update flags and callbacks).
    pub fn errno(&self) -> i32 {
        match self {
            OpError::Remote(e) => *e,
            OpError::TimedOut(_) => ETIMEDOUT,
            OpError::Disconnected(_) | OpError::NotConnected => ENOTCONN,
            OpError::UnknownSet => ENOENT,
            OpError::BadImage(_) => EINVAL,
            OpError::ReadFailed(_) => EIO,
            OpError::Busy(_) => EBUSY,
        }
    }
}

/// One DIR_REPLY part: a complete directory document.
#[derive(Debug, Clone, PartialEq)]
pub struct DirPart {
    /// The sets in this part.
    pub entries: Vec<DirEntry>,
    /// True when more parts follow.
    pub more: bool,
}

/// One set found by a lookup; its metadata was already read.
#[derive(Debug, Clone)]
pub struct LookupResult {
    /// The client's handle for the set.
    pub set: SetId,
    /// The instance name.
    pub name: String,
    /// The schema name.
    pub schema: String,
    /// The set_info pairs the owner sent.
    pub info: Vec<(String, String)>,
    /// The decoded metadata.
    pub meta: Arc<SetMeta>,
    /// True when more sets of the same lookup follow.
    pub more: bool,
}

/// A consistent view of a remote set at one update: metadata, the data header and the raw
/// data section, whose values are decoded on first access. Never changed once made; the
/// next update makes a new one.
#[derive(Debug)]
pub struct SetSnapshot {
    /// The metadata the data belongs to.
    pub meta: Arc<SetMeta>,
    /// The data section's header (transaction, generation numbers).
    pub header: DataHeader,
    /// The data section as read.
    pub data_bytes: Bytes,
    /// The data generation of the previous snapshot (`None` for the first).
    pub prev_data_gn: Option<u64>,
    decoded: OnceLock<Result<SetData, SetError>>,
}

impl SetSnapshot {
    /// A snapshot of `data_bytes` (a whole data section of `meta`).
    ///
    /// # Errors
    /// The section is shorter than `data_sz` or its header.
    pub fn new(meta: Arc<SetMeta>, data_bytes: Bytes, prev_data_gn: Option<u64>) -> Result<SetSnapshot, SetError> {
        let header = DataHeader::decode(&meta, &data_bytes)?;
        Ok(SetSnapshot { meta, header, data_bytes, prev_data_gn, decoded: OnceLock::new() })
    }
    /// The decoded data section (decoded once, on the first call).
    ///
    /// # Errors
    /// The image is inconsistent (a value outside the section, a broken list).
    pub fn data(&self) -> Result<&SetData, SetError> {
        self.decoded.get_or_init(|| SetData::decode(&self.meta, &self.data_bytes)).as_ref().map_err(Clone::clone)
    }
    /// The data generation number.
    pub fn data_gn(&self) -> u64 {
        self.header.data_gn
    }
    /// True when the data changed since the previous snapshot (or there was none).
    pub fn changed(&self) -> bool {
        self.prev_data_gn != Some(self.header.data_gn)
    }
    /// `ldms_set_is_consistent`: the last transaction ended.
    pub fn is_consistent(&self) -> bool {
        self.header.is_consistent()
    }
    /// The value of metric `index` (meta values from the metadata, data values from the
    /// data section); `None` for no such metric or an image that does not decode.
    pub fn value(&self, index: usize) -> Option<&MetricValue> {
        self.meta
            .values
            .get(index)
            .and_then(Option::as_ref)
            .or_else(|| self.data().ok().and_then(|d| d.values.get(index)).and_then(Option::as_ref))
    }
    /// The value of the metric called `name`.
    pub fn value_by_name(&self, name: &str) -> Option<&MetricValue> {
        self.meta.index_of(name).and_then(|i| self.value(i))
    }
    /// The transaction end time.
    pub fn timestamp(&self) -> Timestamp {
        self.header.trans.ts
    }
    /// The transaction duration.
    pub fn duration(&self) -> Timestamp {
        self.header.trans.dur
    }
}

/// What a [`ClientConn`](super::ClientConn) reports.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// The handshake finished.
    Connected {
        /// The peer's rail connect message.
        peer: crate::zap::RailConnMsg,
    },
    /// The peer refused the connection.
    Rejected {
        /// Its reason, as text.
        reason: String,
    },
    /// The connection is gone; every pending operation has failed already.
    Closed {
        /// Why.
        reason: pvloom_core::CloseReason,
        /// True if it had been connected (DISCONNECTED), false if not (ERROR).
        was_connected: bool,
    },
    /// A directory part, or the DIR's failure (the last event of the DIR then).
    Dir {
        /// The DIR.
        op: OpId,
        /// The part.
        result: Result<DirPart, OpError>,
    },
    /// A directory change after a DIR with [`DIR_F_NOTIFY`](crate::request::DIR_F_NOTIFY).
    DirUpdate {
        /// The DIR that asked for updates.
        op: OpId,
        /// [`DIR_ADD`](crate::request::DIR_ADD), [`DIR_DEL`](crate::request::DIR_DEL) or
        /// [`DIR_UPD`](crate::request::DIR_UPD).
        kind: u32,
        /// The sets concerned.
        entries: Vec<DirEntry>,
    },
    /// One set found by a lookup (`more` tells if others follow), or the lookup's failure.
    Lookup {
        /// The LOOKUP.
        op: OpId,
        /// The set, or why the lookup failed.
        result: Result<LookupResult, OpError>,
    },
    /// An update finished.
    Update {
        /// The update.
        op: OpId,
        /// The set.
        set: SetId,
        /// The new snapshot, or why it failed.
        result: Result<Arc<SetSnapshot>, OpError>,
    },
    /// A push arrived (flags: [`UPD_F_PUSH`](crate::request::UPD_F_PUSH), with
    /// [`UPD_F_PUSH_LAST`](crate::request::UPD_F_PUSH_LAST) on the last one).
    Push {
        /// The set.
        set: SetId,
        /// Update flags.
        flags: u32,
        /// The snapshot (the previous one for the final empty PUSH_LAST), or an error.
        result: Result<Arc<SetSnapshot>, OpError>,
    },
    /// The owner deleted a set (it was answered with SET_DELETE_REPLY).
    SetDelete {
        /// The handle, if the set was looked up here.
        set: Option<SetId>,
        /// The instance name.
        name: String,
    },
    /// An application message (LDMS SEND_MSG).
    Recv {
        /// The message.
        data: Bytes,
    },
    /// The answer to a MSG_SUB or MSG_UNSUB (`MsgStatusEvent`).
    MsgSubStatus {
        /// The request.
        op: OpId,
        /// The status, as [`MsgSubStatus`].
        status: MsgSubStatus,
    },
    /// The peer returned send credit.
    SendQuota {
        /// Bytes of credit.
        quota: u32,
        /// Status.
        rc: i32,
    },
}

/// What a peer answered to a remote (un)subscription (the real API's `MsgStatusEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgSubStatus {
    /// The name or regex.
    pub pattern: String,
    /// Whether it is a regex.
    pub is_regex: bool,
    /// True for MSG_UNSUB.
    pub unsubscribe: bool,
    /// 0, or the peer's errno (`ENOTSUP`: its message service is off).
    pub status: i32,
    /// The peer's text ("OK", or why not).
    pub text: String,
}
