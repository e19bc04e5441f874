//! The LDMS request/reply layer (ldmsd 4.x, protocol 4.2.0.0), sans-I/O.
//!
//! Three kinds of LDMS messages ride on the zap transport:
//!
//! - **Requests** (SENDRECV data): a 16-byte header `{xid, cmd, len}` and a per-command
//!   parameter block ([`Request`]).
//! - **Replies** (SENDRECV data): a 20-byte header `{xid, cmd, len, rc}` and a per-command
//!   body ([`Reply`]). Reply commands are `0x100..0x80000000`; [`decode`] tells them apart.
//! - **Rendezvous messages** (the tail of a zap RENDEZVOUS frame): a successful LOOKUP's
//!   answer, one per set, and a client's push registration ([`RendezvousMsg`]).
//!
//! The directory that DIR replies carry is JSON; [`dir`] parses and renders it exactly as
//! ldmsd formats it, and splits long directories into parts the way ldmsd does.
//!
//! Byte order, as ldmsd writes it: `xid`, set ids and the LOOKUP rendezvous `len` are copied
//! from memory unconverted ("host" order, little-endian on every known peer, and treated as
//! little-endian here); everything else is big-endian. All structs are packed to 4 bytes.
//!
//! Decoding never panics and never allocates more than the input implies: every length is
//! checked against the buffer, and malformed input is a [`RequestError`]. A decoded message
//! re-encodes to the bytes it came from; fields that ldmsd leaves uninitialised are kept as
//! received for that reason.
//!
//! Layouts: `ldms/src/core/ldms_xprt.h`, `ldms_xprt.c`, `ldms.h`, `ldms.c` (commit 279bd1b8).

pub mod dir;
mod error;
mod msg;
mod rendezvous;

pub use error::RequestError;
pub use msg::{
    Message, NotifyEvent, PushReply, Reply, ReplyBody, Request, RequestBody, Timespec, decode, encode, msg_body,
};
pub use rendezvous::{
    LOOKUP_PROFILE_MARKER, LookupParam, LookupProfile, PushParam, RendezvousBody, RendezvousMsg, SCHEMA_ITEM_PAD,
    SetInfoPair, name_item, schema_item,
};

/// Length of a request header (`struct ldms_request_hdr`).
pub const REQUEST_HDR_LEN: usize = 16;
/// Length of a reply header (`struct ldms_reply_hdr`).
pub const REPLY_HDR_LEN: usize = 20;
/// Length of a rendezvous message header (`struct ldms_rendezvous_hdr`).
pub const RENDEZVOUS_HDR_LEN: usize = 16;
/// Largest LDMS message ldmsd lets a request or reply grow to over `sock`: the zap message
/// limit less a SEND request's 20 bytes of header and length (`ldms_xprt_msg_max`).
pub const LDMS_MSG_MAX: usize = crate::zap::MAX_SENDRECV_DATA - 20;
/// Largest data chunk of one PUSH_REPLY: ldmsd fills the zap message limit less the reply
/// header and the push fields, and sends the rest of the set in further replies with
/// [`PUSH_REPLY_F_MORE`].
pub const PUSH_REPLY_MAX_DATA: usize = crate::zap::MAX_SENDRECV_DATA - REPLY_HDR_LEN - 20;

/// `LDMS_CMD_DIR`: list the peer's sets.
pub const CMD_DIR: u32 = 0;
/// `LDMS_CMD_DIR_CANCEL`: stop directory updates.
pub const CMD_DIR_CANCEL: u32 = 1;
/// `LDMS_CMD_LOOKUP`: look sets up by name, schema or regex.
pub const CMD_LOOKUP: u32 = 2;
/// `LDMS_CMD_REQ_NOTIFY`: ask for set events.
pub const CMD_REQ_NOTIFY: u32 = 3;
/// `LDMS_CMD_CANCEL_NOTIFY`: stop set events.
pub const CMD_CANCEL_NOTIFY: u32 = 4;
/// `LDMS_CMD_SEND_MSG`: an application message (`ldms_xprt_send`).
pub const CMD_SEND_MSG: u32 = 5;
/// `LDMS_CMD_AUTH_MSG`: an authentication plugin's message.
pub const CMD_AUTH_MSG: u32 = 6;
/// `LDMS_CMD_CANCEL_PUSH`: stop pushes of a set.
pub const CMD_CANCEL_PUSH: u32 = 7;
/// `LDMS_CMD_AUTH`: authentication.
pub const CMD_AUTH: u32 = 8;
/// `LDMS_CMD_SET_DELETE`: the owner tells a peer that a set it looked up is gone.
pub const CMD_SET_DELETE: u32 = 9;
/// `LDMS_CMD_SEND_QUOTA`: returns send credit.
pub const CMD_SEND_QUOTA: u32 = 10;
/// `LDMS_CMD_MSG`: a message-service message part.
pub const CMD_MSG: u32 = 11;
/// `LDMS_CMD_MSG_SUB`: message-service subscribe.
pub const CMD_MSG_SUB: u32 = 12;
/// `LDMS_CMD_MSG_UNSUB`: message-service unsubscribe.
pub const CMD_MSG_UNSUB: u32 = 13;
/// `LDMS_CMD_QGROUP_ASK`: quota group request.
pub const CMD_QGROUP_ASK: u32 = 14;
/// `LDMS_CMD_QGROUP_DONATE`: quota group donation.
pub const CMD_QGROUP_DONATE: u32 = 15;
/// `LDMS_CMD_QGROUP_DONATE_BACK`: quota group donation returned.
pub const CMD_QGROUP_DONATE_BACK: u32 = 16;
/// `LDMS_CMD_QUOTA_RECONFIG`: new rail quota after connect.
pub const CMD_QUOTA_RECONFIG: u32 = 17;
/// `LDMS_CMD_RATE_RECONFIG`: new rail rate after connect.
pub const CMD_RATE_RECONFIG: u32 = 18;
/// `LDMS_CMD_REPLY`: the generic reply (and the first reply command number).
pub const CMD_REPLY: u32 = 0x100;
/// `LDMS_CMD_DIR_REPLY`: a directory part.
pub const CMD_DIR_REPLY: u32 = 0x101;
/// `LDMS_CMD_DIR_CANCEL_REPLY`: DIR_CANCEL done.
pub const CMD_DIR_CANCEL_REPLY: u32 = 0x102;
/// `LDMS_CMD_DIR_UPDATE_REPLY`: a directory change, sent after DIR with [`DIR_F_NOTIFY`].
pub const CMD_DIR_UPDATE_REPLY: u32 = 0x103;
/// `LDMS_CMD_LOOKUP_REPLY`: a failed lookup (successes come as rendezvous).
pub const CMD_LOOKUP_REPLY: u32 = 0x104;
/// `LDMS_CMD_REQ_NOTIFY_REPLY`: a set event.
pub const CMD_REQ_NOTIFY_REPLY: u32 = 0x105;
/// `LDMS_CMD_AUTH_CHALLENGE_REPLY`.
pub const CMD_AUTH_CHALLENGE_REPLY: u32 = 0x106;
/// `LDMS_CMD_AUTH_APPROVAL_REPLY`.
pub const CMD_AUTH_APPROVAL_REPLY: u32 = 0x107;
/// `LDMS_CMD_PUSH_REPLY`: pushed set contents.
pub const CMD_PUSH_REPLY: u32 = 0x108;
/// `LDMS_CMD_AUTH_REPLY`.
pub const CMD_AUTH_REPLY: u32 = 0x109;
/// `LDMS_CMD_SET_DELETE_REPLY`: SET_DELETE acknowledged.
pub const CMD_SET_DELETE_REPLY: u32 = 0x10a;
/// `LDMS_CMD_MSG_SUB_REPLY`: message-service subscribe result.
pub const CMD_MSG_SUB_REPLY: u32 = 0x10b;
/// `LDMS_CMD_MSG_UNSUB_REPLY`: message-service unsubscribe result.
pub const CMD_MSG_UNSUB_REPLY: u32 = 0x10c;
/// `LDMS_CMD_XPRT_PRIVATE`: commands with this bit are transport-private requests.
pub const CMD_XPRT_PRIVATE: u32 = 0x8000_0000;

/// Rendezvous command: the answer to a LOOKUP, one per matching set.
pub const RENDEZVOUS_LOOKUP: u32 = 1;
/// Rendezvous command: register for pushes of a set.
pub const RENDEZVOUS_PUSH: u32 = 2;

/// DIR flag: keep sending DIR_UPDATE_REPLY as sets come and go (`LDMS_DIR_F_NOTIFY`).
pub const DIR_F_NOTIFY: u32 = 1;
/// Directory part type: the complete list (`LDMS_DIR_LIST`).
pub const DIR_LIST: u32 = 0;
/// Directory part type: the sets were deleted (`LDMS_DIR_DEL`).
pub const DIR_DEL: u32 = 1;
/// Directory part type: the sets were added (`LDMS_DIR_ADD`).
pub const DIR_ADD: u32 = 2;
/// Directory part type: the sets' set_info changed (`LDMS_DIR_UPD`).
pub const DIR_UPD: u32 = 3;

/// LOOKUP flag value: the path is an instance name (`LDMS_LOOKUP_BY_INSTANCE`).
pub const LOOKUP_BY_INSTANCE: u32 = 0;
/// LOOKUP flag: the path is a schema name (`LDMS_LOOKUP_BY_SCHEMA`).
pub const LOOKUP_BY_SCHEMA: u32 = 1;
/// LOOKUP flag: the path is a regular expression (`LDMS_LOOKUP_RE`).
pub const LOOKUP_RE: u32 = 2;
/// LOOKUP flag `LDMS_LOOKUP_SET_INFO` (in `ldms.h`; ldmsd's lookup ignores it).
pub const LOOKUP_SET_INFO: u32 = 4;

/// Push-registration flag: push (`LDMS_RBD_F_PUSH`).
pub const RBD_F_PUSH: u32 = 1;
/// Push-registration flag: push on every change (`LDMS_RBD_F_PUSH_CHANGE`).
pub const RBD_F_PUSH_CHANGE: u32 = 2;
/// Push-registration flag: cancel pending (`LDMS_RBD_F_PUSH_CANCEL`, server-side state).
pub const RBD_F_PUSH_CANCEL: u32 = 4;
/// `ldms_xprt_register_push` flag: push on change (`LDMS_XPRT_PUSH_F_CHANGE`).
pub const XPRT_PUSH_F_CHANGE: u32 = 1;

/// Update flag: the update came from a push (`LDMS_UPD_F_PUSH`); also a PUSH_REPLY flag.
pub const UPD_F_PUSH: u32 = 0x1000_0000;
/// Update flag: the last push of a set (`LDMS_UPD_F_PUSH_LAST`); also a PUSH_REPLY flag.
pub const UPD_F_PUSH_LAST: u32 = 0x2000_0000;
/// Update-callback flag: more update completions are outstanding (`LDMS_UPD_F_MORE`).
/// Not a wire value: PUSH_REPLY uses [`PUSH_REPLY_F_MORE`] instead.
pub const UPD_F_MORE: u32 = 0x4000_0000;
/// The error code bits of an update callback's flags (`LDMS_UPD_ERROR_MASK`).
pub const UPD_ERROR_MASK: u32 = 0x00FF_FFFF;
/// PUSH_REPLY flag: more of this push follows in the next reply
/// (`LDMS_CMD_PUSH_REPLY_F_MORE`).
pub const PUSH_REPLY_F_MORE: u32 = 0x8000_0000;

/// Notify event type: the set was modified (`LDMS_SET_MODIFIED`).
pub const NOTIFY_SET_MODIFIED: u32 = 1;
/// Notify event type: user data (`LDMS_USER_DATA`).
pub const NOTIFY_USER_DATA: u32 = 2;

/// Whether `cmd` is a reply command number (as ldmsd tells them apart).
pub fn is_reply_cmd(cmd: u32) -> bool {
    (CMD_REPLY..CMD_XPRT_PRIVATE).contains(&cmd)
}
