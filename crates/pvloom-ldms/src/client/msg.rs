//! The message service on an [`Xprt`]: publish through the peer, ask it to forward
//! (MSG_SUB / MSG_UNSUB). What it forwards goes to this process's bus, where
//! [`MsgClient`](crate::bus::MsgClient)s get it.

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::types::{MsgSubStatus, OpError};
use super::xprt::{LdmsError, Xprt};
use crate::bus::{BusError, BusMsg, MsgBus, timespec};
use crate::msg::MsgType;

pub(super) type MsgSubCb = Box<dyn FnOnce(&Xprt, MsgSubStatus) + Send>;

/// Who a published message says it is from, and who may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgOwner {
    /// uid (default: this process's effective uid).
    pub uid: u32,
    /// gid (default: this process's effective gid).
    pub gid: u32,
    /// Permission bits (default 0o444, as `ldms_msg_publish`).
    pub perm: u32,
}

impl Default for MsgOwner {
    fn default() -> Self {
        // Asked of the kernel once: a publish must not cost a stat.
        static IDENTITY: OnceLock<(u32, u32)> = OnceLock::new();
        let &(uid, gid) =
            IDENTITY.get_or_init(|| std::fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or((0, 0)));
        MsgOwner { uid, gid, perm: 0o444 }
    }
}

/// Why publishing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The message itself is wrong (name, size).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Not connected.
    #[error("not connected")]
    NotConnected,
    /// The queue to the peer stayed full (the peer gives no credit, or reads slowly).
    #[error("{queued} bytes wait for the peer; no room within {waited:?}")]
    Full {
        /// Bytes waiting.
        queued: usize,
        /// How long it waited.
        waited: Duration,
    },
    /// Waiting is not allowed here (`WouldDeadlock` on an I/O thread).
    #[error(transparent)]
    Core(#[from] pvloom_core::Error),
}

impl PublishError {
    /// The errno LDMS would report.
    pub fn errno(&self) -> i32 {
        match self {
            PublishError::Bus(e) => e.errno(),
            PublishError::NotConnected => super::types::ENOTCONN,
            PublishError::Full { .. } => crate::bus::EAGAIN,
            PublishError::Core(_) => super::types::EIO,
        }
    }
}

impl Xprt {
    /// What the published messages waiting to go to the peer (for room, or its credit)
    /// count against [`XprtConfig::msg_queue`](super::XprtConfig): their bytes plus a
    /// fixed overhead each.
    pub fn msg_queued(&self) -> usize {
        self.inner.link.out_bytes()
    }

    fn msg_bus(&self) -> Arc<MsgBus> {
        self.inner.config.conn.bus.clone().unwrap_or_else(|| MsgBus::global().clone())
    }

    /// Publish `data` under `name` to the peer (`ldms_msg_publish(x, ...)`), waiting at
    /// most `wait` for room while [`XprtConfig::msg_queue`](super::XprtConfig) bytes
    /// already wait for the peer (`Duration::ZERO`: fail at once). A message larger
    /// than one frame goes in several parts. Returns the message's `msg_gn`.
    ///
    /// # Errors
    /// [`PublishError::Bus`] (bad name, too large), [`PublishError::NotConnected`],
    /// [`PublishError::Full`], or `WouldDeadlock` when it would wait on an I/O thread.
    pub fn msg_publish_with(
        &self,
        name: &str,
        msg_type: MsgType,
        data: impl Into<Bytes>,
        owner: MsgOwner,
        wait: Duration,
    ) -> Result<u64, PublishError> {
        let data = data.into();
        let bus = self.msg_bus();
        bus.check(name.as_bytes(), data.len())?;
        if !self.is_connected() {
            return Err(PublishError::NotConnected);
        }
        let link = &self.inner.link;
        let limit = self.inner.config.msg_queue;
        if link.out_bytes() >= limit {
            if wait.is_zero() {
                return Err(PublishError::Full { queued: link.out_bytes(), waited: wait });
            }
            pvloom_core::ensure_may_block()?;
            if !link.wait_room(limit, Instant::now() + wait) {
                return Err(PublishError::Full { queued: link.out_bytes(), waited: wait });
            }
            if !self.is_connected() {
                return Err(PublishError::NotConnected);
            }
        }
        let gn = bus.next_msg_gn();
        let now = timespec((bus.config().wall_clock)());
        let owner = (owner.uid, owner.gid, owner.perm);
        let msg = BusMsg::local(Bytes::copy_from_slice(name.as_bytes()), msg_type, data, owner, gn, now);
        link.post(crate::bus::Routed::local(Arc::new(msg)));
        Ok(gn)
    }

    /// [`msg_publish_with`](Self::msg_publish_with) with this process's identity, perm
    /// 0o444, waiting up to the connection's timeout.
    ///
    /// # Errors
    /// As [`msg_publish_with`](Self::msg_publish_with).
    pub fn msg_publish(&self, name: &str, msg_type: MsgType, data: impl Into<Bytes>) -> Result<u64, PublishError> {
        self.msg_publish_with(name, msg_type, data, MsgOwner::default(), self.inner.config.timeout)
    }

    /// Waits until every published message went out to the peer (or `timeout`).
    ///
    /// # Errors
    /// [`PublishError::Full`] at the timeout, `WouldDeadlock` on an I/O thread.
    pub fn msg_flush(&self, timeout: Duration) -> Result<(), PublishError> {
        pvloom_core::ensure_may_block()?;
        if self.inner.link.wait_room(1, Instant::now() + timeout) {
            Ok(())
        } else {
            Err(PublishError::Full { queued: self.inner.link.out_bytes(), waited: timeout })
        }
    }

    /// The last errno the peer refused a published message with (SEND_QUOTA with an
    /// rc: ENOTSUP when its message service is off, EPERM for a claimed identity).
    pub fn msg_refused(&self) -> Option<i32> {
        self.inner.state.lock().refused
    }

    /// Whether the peer said (in its rail connect message) that its message service is
    /// on (`ldms_xprt_peer_msg_is_enabled`).
    pub fn peer_msg_is_enabled(&self) -> bool {
        self.inner.state.lock().peer_msg_enabled
    }

    pub(super) fn note_refusal(&self, rc: i32) {
        self.inner.state.lock().refused = Some(rc);
    }

    /// Ask the peer to forward messages named `pattern` (matching it, `is_regex`), at
    /// most `rate` bytes/s (≤ 0: all); `cb` gets its answer. Forwarded messages go to
    /// this process's bus.
    pub fn msg_subscribe_cb(
        &self,
        pattern: &str,
        is_regex: bool,
        rate: i64,
        cb: impl FnOnce(&Xprt, MsgSubStatus) + Send + 'static,
    ) {
        self.msg_sub_op(pattern, is_regex, rate, false, Box::new(cb));
    }

    /// Stop a forwarding asked for by [`msg_subscribe_cb`](Self::msg_subscribe_cb).
    pub fn msg_unsubscribe_cb(
        &self,
        pattern: &str,
        is_regex: bool,
        cb: impl FnOnce(&Xprt, MsgSubStatus) + Send + 'static,
    ) {
        self.msg_sub_op(pattern, is_regex, 0, true, Box::new(cb));
    }

    fn msg_sub_op(&self, pattern: &str, is_regex: bool, rate: i64, unsub: bool, cb: MsgSubCb) {
        let timeout = self.inner.config.timeout;
        self.exec_with(
            (cb, pattern.to_string(), self.clone()),
            move |(cb, pattern, me), app, ctx| match app.conn.msg_subscribe(
                ctx.now(),
                &pattern,
                is_regex,
                rate,
                unsub,
                Some(timeout),
            ) {
                Ok(op) => {
                    app.msg_subs.insert(op, cb);
                }
                Err(e) => {
                    let status = failed(pattern, is_regex, unsub, &e);
                    let x = me.clone();
                    me.deliver("ldms.msg_subscribe", move || cb(&x, status));
                }
            },
            move |(cb, pattern, me)| {
                let status = failed(pattern, is_regex, unsub, &OpError::NotConnected);
                let x = me.clone();
                me.deliver("ldms.msg_subscribe", move || cb(&x, status));
            },
        );
    }

    fn msg_sub_wait(&self, pattern: &str, is_regex: bool, rate: i64, unsub: bool) -> Result<MsgSubStatus, LdmsError> {
        pvloom_core::ensure_may_block()?;
        let (done, wait) = pvloom_core::completion::<MsgSubStatus>();
        self.msg_sub_op(pattern, is_regex, rate, unsub, Box::new(move |_, s| done.succeed(s)));
        let status = wait.wait_timeout(self.inner.config.timeout + Duration::from_secs(1))?;
        if status.status != 0 {
            return Err(LdmsError::Op(OpError::Remote(status.status)));
        }
        Ok(status)
    }

    /// Subscribe and wait for the peer's answer.
    ///
    /// # Errors
    /// The peer's errno (`ENOTSUP`: its message service is off), a timeout, or
    /// `WouldDeadlock` on an I/O thread.
    pub fn msg_subscribe(&self, pattern: &str, is_regex: bool, rate: i64) -> Result<MsgSubStatus, LdmsError> {
        self.msg_sub_wait(pattern, is_regex, rate, false)
    }

    /// Unsubscribe and wait for the peer's answer.
    ///
    /// # Errors
    /// As [`msg_subscribe`](Self::msg_subscribe); `ENOENT` for no such subscription.
    pub fn msg_unsubscribe(&self, pattern: &str, is_regex: bool) -> Result<MsgSubStatus, LdmsError> {
        self.msg_sub_wait(pattern, is_regex, 0, true)
    }
}

fn failed(pattern: String, is_regex: bool, unsubscribe: bool, e: &OpError) -> MsgSubStatus {
    MsgSubStatus { pattern, is_regex, unsubscribe, status: e.errno(), text: e.to_string() }
}
