//! The LDMS message service ("message bus") on the wire, sans-I/O.
//!
//! [`crate::request`] keeps the message-service commands as opaque bodies:
//! MSG (11), MSG_SUB (12) and MSG_UNSUB (13) as [`RequestBody::Other`], their replies
//! (0x10b, 0x10c) as [`ReplyBody::Other`]. This module gives those bodies meaning:
//!
//! - [`MsgPart`]: the 32-byte part header that follows the request header of every MSG,
//!   and the part's bytes.
//! - [`Msg`] and [`MsgHeader`]: a whole message, which starts the first part with a
//!   384-byte header, then the NUL-terminated name (the tag) and the data.
//! - [`MsgSub`]: the MSG_SUB / MSG_UNSUB parameters; [`SubReply`]: their replies' text.
//! - [`Reassembler`] collects parts into messages within [`Limits`]; [`split_message`]
//!   cuts a message into parts that fit a SENDRECV frame.
//!
//! # Credit (SEND_QUOTA)
//! After it has consumed a whole message, a receiver gives the sender credit back with a
//! SEND_QUOTA (10) request ([`RequestBody::SendQuota`]), xid 0, `quota` = the message's
//! `msg_len` (name with its NUL plus data) and `rc` 0. ldmsd does so even when quotas are
//! unlimited, and a publisher's message channel counts each one as an acknowledgement. With
//! the message service disabled, ldmsd answers the first part of a message with a
//! SEND_QUOTA of 0 and `rc` = ENOTSUP. [`send_quota`] builds it.
//!
//! [`RequestBody::Other`]: crate::request::RequestBody::Other
//! [`RequestBody::SendQuota`]: crate::request::RequestBody::SendQuota
//! [`ReplyBody::Other`]: crate::request::ReplyBody::Other

mod error;
mod header;
mod part;
mod reasm;
mod sub;

pub use error::{MsgError, ReassemblyError};
pub use header::{Hop, Hops, MAX_HOPS, MSG_HDR_LEN, Msg, MsgHeader, MsgType, tag_hash};
pub use part::{LdmsAddr, MsgPart, PART_HDR_LEN, PART_PAYLOAD_MAX, PartRef};
pub use reasm::{Limits, Reassembler, split_message};
pub use sub::{MsgSub, SUB_HDR_LEN, SubReply};

use crate::request::{
    CMD_MSG, CMD_MSG_SUB, CMD_MSG_SUB_REPLY, CMD_MSG_UNSUB, CMD_MSG_UNSUB_REPLY, Message, Reply, ReplyBody, Request,
    RequestBody,
};

/// A message-service command or reply, interpreted from a decoded [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgWire {
    /// MSG (11): one part of a message.
    Part {
        /// The request's xid (0 from ldmsd).
        xid: u64,
        /// The part.
        part: MsgPart,
    },
    /// MSG_SUB (12).
    Sub {
        /// The request's xid (echoed by the reply).
        xid: u64,
        /// The subscription.
        sub: MsgSub,
    },
    /// MSG_UNSUB (13), with the same parameters as MSG_SUB.
    Unsub {
        /// The request's xid (echoed by the reply).
        xid: u64,
        /// What to unsubscribe.
        sub: MsgSub,
    },
    /// MSG_SUB_REPLY (0x10b) or MSG_UNSUB_REPLY (0x10c).
    SubReply {
        /// Whether this answers an MSG_UNSUB.
        unsub: bool,
        /// The echoed xid.
        xid: u64,
        /// Status: 0 or an errno value.
        rc: u32,
        /// The text.
        reply: SubReply,
    },
    /// SEND_QUOTA (10): credit returned for consumed messages.
    SendQuota {
        /// The request's xid (0 from ldmsd).
        xid: u64,
        /// Bytes of credit (a message's `msg_len`).
        quota: u32,
        /// Status (0, or ENOTSUP when the peer's message service is off).
        rc: i32,
    },
}

/// Interprets a message-service command or reply; `None` for any other message.
pub fn interpret(m: &Message) -> Option<Result<MsgWire, MsgError>> {
    match m {
        Message::Request(Request { xid, body }) => match body {
            RequestBody::Other { cmd: CMD_MSG, body } => {
                Some(MsgPart::decode(body).map(|part| MsgWire::Part { xid: *xid, part }))
            }
            RequestBody::Other { cmd: CMD_MSG_SUB, body } => {
                Some(MsgSub::decode(body).map(|sub| MsgWire::Sub { xid: *xid, sub }))
            }
            RequestBody::Other { cmd: CMD_MSG_UNSUB, body } => {
                Some(MsgSub::decode(body).map(|sub| MsgWire::Unsub { xid: *xid, sub }))
            }
            RequestBody::SendQuota { quota, rc } => Some(Ok(MsgWire::SendQuota { xid: *xid, quota: *quota, rc: *rc })),
            _ => None,
        },
        Message::Reply(Reply { xid, rc, body: ReplyBody::Other { cmd, body } })
            if *cmd == CMD_MSG_SUB_REPLY || *cmd == CMD_MSG_UNSUB_REPLY =>
        {
            let unsub = *cmd == CMD_MSG_UNSUB_REPLY;
            Some(SubReply::decode(body).map(|reply| MsgWire::SubReply { unsub, xid: *xid, rc: *rc, reply }))
        }
        _ => None,
    }
}

impl MsgWire {
    /// The [`Message`] that carries this (the inverse of [`interpret`]); fails only for
    /// a subscription pattern that holds a NUL.
    pub fn to_message(&self) -> Result<Message, MsgError> {
        Ok(match self {
            MsgWire::Part { xid, part } => Message::Request(Request { xid: *xid, ..part.to_request() }),
            MsgWire::Sub { xid, sub } => Message::Request(sub.to_request(*xid, false)?),
            MsgWire::Unsub { xid, sub } => Message::Request(sub.to_request(*xid, true)?),
            MsgWire::SubReply { unsub, xid, rc, reply } => Message::Reply(reply.to_reply(*xid, *rc, *unsub)),
            MsgWire::SendQuota { xid, quota, rc } => Message::Request(Request { xid: *xid, ..send_quota(*quota, *rc) }),
        })
    }
}

/// The SEND_QUOTA request a receiver sends after consuming a message of `msg_len` bytes
/// (`quota` = [`Msg::msg_len`], `rc` 0).
pub fn send_quota(quota: u32, rc: i32) -> Request {
    Request::new(0, RequestBody::SendQuota { quota, rc })
}
