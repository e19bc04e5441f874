//! The errno values an LDMSD response carries in `rsp_err`: ldmsd sends its host's
//! errno numbers, and the clients compare them with their own (`errno.ENOENT` in
//! ldmsd_controller), so these are Linux's.

/// No such producer, updater, policy or plugin.
pub const ENOENT: i32 = 2;
/// A request or response larger than the transport's maximum message.
pub const E2BIG: i32 = 7;
/// The object is in use or already in that state.
pub const EBUSY: i32 = 16;
/// The object already exists.
pub const EEXIST: i32 = 17;
/// A missing or bad attribute.
pub const EINVAL: i32 = 22;
/// A request pvloom (or ldmsd) does not implement.
pub const ENOSYS: i32 = 38;
/// The message service is disabled.
pub const ENOTSUP: i32 = 95;
/// A second record starting a message number already in progress.
pub const EADDRINUSE: i32 = 98;
