//! The LDMS client.
//!
//! - [`ClientConn`] (`endpoint`): one connection, sans-I/O: handshake, DIR, LOOKUP,
//!   updates, pushes, SET_DELETE, with a deadline on every operation.
//! - [`Xprt`] and [`Set`]: the API on pvloom-core's driver, from any thread, each
//!   operation blocking or with a callback on one code path.
//! - [`format`](mod@format): what `ldms_ls` prints, on decoded sets.
//!
//! ```no_run
//! use pvloom_ldms::client::{Xprt, XprtConfig};
//! use pvloom_ldms::request::{LOOKUP_RE, XPRT_PUSH_F_CHANGE};
//!
//! let rt = pvloom_core::Runtime::new()?;
//! let xprt = Xprt::connect(&rt.handle(), "127.0.0.1:10444".parse()?, XprtConfig::default())?;
//! for entry in xprt.dir()? {                                  // blocking; dir_cb(...) does not block
//!     println!("{} ({})", entry.name, entry.schema);
//! }
//! let set = xprt.lookup(".*/meminfo", LOOKUP_RE)?.remove(0);   // or lookup_cb(name, flags, cb)
//! let snap = set.update()?;                                     // or update_cb(cb)
//! println!("MemFree {:?} consistent {}", snap.value_by_name("MemFree"), snap.is_consistent());
//! set.register_push(XPRT_PUSH_F_CHANGE, |set, snap, flags| {   // the seed's subscribe_push
//!     println!("{} pushed (flags {flags:#x}): {:?}", set.name(), snap.map(|s| s.data_gn()));
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod endpoint;
pub mod format;
mod msg;
mod op_table;
mod set;
mod types;
mod xprt;

pub use endpoint::{ClientConn, ClientConnConfig};
pub use msg::{MsgOwner, PublishError};
pub use set::Set;
pub use types::{
    ClientEvent, DirPart, EBUSY, EINVAL, EIO, ENOENT, ENOTCONN, ETIMEDOUT, LookupResult, MsgSubStatus, OpError, OpId,
    SetId, SetSnapshot,
};
pub use xprt::{DirReply, LdmsError, Xprt, XprtConfig, XprtEvent, XprtEventKind};
