//! The LDMS client.
//!
//! - [`ClientConn`] (`endpoint`): one connection, sans-I/O: handshake, DIR, LOOKUP,
//!   updates, pushes, SET_DELETE, with a deadline on every operation.
//! - [`Xprt`] and [`Set`]: the API on pvloom-core's driver, from any thread, each
//!   operation blocking or with a callback on one code path.
//! - [`format`](mod@format): what `ldms_ls` prints, on decoded sets.

mod endpoint;
pub mod format;
mod set;
mod types;
mod xprt;

pub use endpoint::{ClientConn, ClientConnConfig};
pub use set::Set;
pub use types::{
    ClientEvent, DirPart, EBUSY, EINVAL, EIO, ENOENT, ENOTCONN, ETIMEDOUT, LookupResult, OpError, OpId, SetId,
    SetSnapshot,
};
pub use xprt::{DirReply, LdmsError, Xprt, XprtConfig, XprtEvent, XprtEventKind};
