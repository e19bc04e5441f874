//! [`Set`]: a remote set looked up on an [`Xprt`].
//!
//! A set holds the last snapshot an update or push brought. Accessors read that
//! snapshot; callbacks are handed the snapshot of their own update, which no later
//! update changes (a stronger promise than LDMS's "stable during the callback").

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::types::{LookupResult, OpError, SetId, SetSnapshot};
use super::xprt::{LdmsError, PushCb, UpdateWaiter, Xprt, error_flags};
use crate::set::{MetricDesc, MetricValue, SetMeta, Timestamp, ValueType};
use pvloom_core::Completion;

pub(super) struct SetInner {
    xprt: Xprt,
    id: SetId,
    name: String,
    schema: String,
    info: Vec<(String, String)>,
    meta: Mutex<Arc<SetMeta>>,
    snap: Mutex<Option<Arc<SetSnapshot>>>,
}

/// A remote set. Cheap to clone.
#[derive(Clone)]
pub struct Set {
    pub(super) inner: Arc<SetInner>,
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Set").field("name", &self.inner.name).field("data_gn", &self.data_gn()).finish()
    }
}

impl Set {
    pub(super) fn new(xprt: Xprt, r: LookupResult) -> Set {
        Set {
            inner: Arc::new(SetInner {
                xprt,
                id: r.set,
                name: r.name,
                schema: r.schema,
                info: r.info,
                meta: Mutex::new(r.meta),
                snap: Mutex::new(None),
            }),
        }
    }

    pub(super) fn store(&self, snap: Arc<SetSnapshot>) {
        *self.inner.meta.lock() = snap.meta.clone();
        *self.inner.snap.lock() = Some(snap);
    }

    /// The connection's handle of the set.
    pub fn id(&self) -> SetId {
        self.inner.id
    }
    /// The connection it was looked up on.
    pub fn xprt(&self) -> &Xprt {
        &self.inner.xprt
    }
    /// The instance name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }
    /// The set_info pairs sent with the lookup.
    pub fn info(&self) -> &[(String, String)] {
        &self.inner.info
    }
    /// The value of set_info `key`.
    pub fn info_get(&self, key: &str) -> Option<&str> {
        self.inner.info.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// The current metadata.
    pub fn meta(&self) -> Arc<SetMeta> {
        self.inner.meta.lock().clone()
    }
    /// The last snapshot (`None` before the first update or push).
    pub fn snapshot(&self) -> Option<Arc<SetSnapshot>> {
        self.inner.snap.lock().clone()
    }
    /// Number of metrics.
    pub fn card(&self) -> usize {
        self.meta().card()
    }
    /// The producer name.
    pub fn producer(&self) -> String {
        self.meta().producer.clone()
    }
    /// Owner uid.
    pub fn uid(&self) -> u32 {
        self.meta().uid
    }
    /// Owner gid.
    pub fn gid(&self) -> u32 {
        self.meta().gid
    }
    /// Permission bits.
    pub fn perm(&self) -> u32 {
        self.meta().perm
    }
    /// Metadata generation.
    pub fn meta_gn(&self) -> u64 {
        self.meta().meta_gn
    }
    /// Data generation of the last snapshot (0 before any).
    pub fn data_gn(&self) -> u64 {
        self.snapshot().map_or(0, |s| s.data_gn())
    }
    /// Whether the last snapshot's transaction had ended (false before any).
    pub fn is_consistent(&self) -> bool {
        self.snapshot().is_some_and(|s| s.is_consistent())
    }
    /// Transaction end time of the last snapshot.
    pub fn transaction_timestamp(&self) -> Timestamp {
        self.snapshot().map(|s| s.timestamp()).unwrap_or_default()
    }
    /// Transaction duration of the last snapshot.
    pub fn transaction_duration(&self) -> Timestamp {
        self.snapshot().map(|s| s.duration()).unwrap_or_default()
    }
    /// The descriptor of metric `index`.
    pub fn metric_desc(&self, index: usize) -> Option<MetricDesc> {
        self.meta().metrics.get(index).cloned()
    }
    /// The type of metric `index`.
    pub fn metric_type(&self, index: usize) -> Option<ValueType> {
        self.meta().metrics.get(index).map(|m| m.ty)
    }
    /// The index of the metric called `name`.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.meta().index_of(name)
    }
    /// The value of metric `index` in the last snapshot (meta values also before any).
    pub fn metric(&self, index: usize) -> Option<MetricValue> {
        match self.snapshot() {
            Some(s) => s.value(index).cloned(),
            None => self.meta().values.get(index).cloned().flatten(),
        }
    }
    /// The value of the metric called `name`.
    pub fn metric_by_name(&self, name: &str) -> Option<MetricValue> {
        self.metric_index(name).and_then(|i| self.metric(i))
    }

    /// Update without waiting: `cb(set, snapshot, flags)` once the read completed
    /// (`flags` carries the errno, `LDMS_UPD_ERROR`, on failure).
    pub fn update_cb(&self, cb: impl FnOnce(&Set, Result<Arc<SetSnapshot>, OpError>, u32) + Send + 'static) {
        self.inner.xprt.update_set(self, UpdateWaiter::Callback(Box::new(cb)));
    }

    /// Update without waiting, as a completion (completed on the I/O thread, with no
    /// callback delivery in between: what the blocking forms wait on).
    pub fn update_async(&self) -> Completion<Result<Arc<SetSnapshot>, OpError>> {
        let (done, wait) = pvloom_core::completion::<Result<Arc<SetSnapshot>, OpError>>();
        self.inner.xprt.update_set(self, UpdateWaiter::Completion(done));
        wait
    }

    /// Update and wait; returns the new snapshot (also kept as the set's current one).
    ///
    /// # Errors
    /// The read's failure, a timeout, or `WouldDeadlock` on an I/O thread.
    pub fn update(&self) -> Result<Arc<SetSnapshot>, LdmsError> {
        pvloom_core::ensure_may_block()?;
        let t = self.inner.xprt.inner.config.timeout + Duration::from_secs(1);
        Ok(self.update_async().wait_timeout(t)??)
    }

    /// Register for pushes (`flags`: [`XPRT_PUSH_F_CHANGE`](crate::request::XPRT_PUSH_F_CHANGE)
    /// to push on every change); `cb(set, snapshot, flags)` per push, `flags` with
    /// [`UPD_F_PUSH`](crate::request::UPD_F_PUSH), the last with
    /// [`UPD_F_PUSH_LAST`](crate::request::UPD_F_PUSH_LAST).
    pub fn register_push(
        &self,
        flags: u32,
        cb: impl FnMut(&Set, Result<Arc<SetSnapshot>, OpError>, u32) + Send + 'static,
    ) {
        let cb: PushCb = Arc::new(Mutex::new(Box::new(cb)));
        let id = self.id();
        let s = self.clone();
        self.inner.xprt.exec(
            move |app, _| match app.conn.register_push(id, flags) {
                Ok(()) => {
                    app.pushes.insert(id, cb);
                }
                Err(e) => {
                    let f = crate::request::UPD_F_PUSH | crate::request::UPD_F_PUSH_LAST | error_flags(&e);
                    let x = s.xprt().clone();
                    x.deliver("ldms.push", move || (cb.lock())(&s, Err(e), f));
                }
            },
            || {},
        );
    }

    /// The Python API's name for [`register_push`](Self::register_push).
    pub fn subscribe_push(
        &self,
        flags: u32,
        cb: impl FnMut(&Set, Result<Arc<SetSnapshot>, OpError>, u32) + Send + 'static,
    ) {
        self.register_push(flags, cb);
    }

    /// Cancel pushes; the push callback gets one last call with `UPD_F_PUSH_LAST`.
    pub fn cancel_push(&self) {
        let id = self.id();
        self.inner.xprt.exec(
            move |app, _| {
                let _ = app.conn.cancel_push(id);
            },
            || {},
        );
    }
}
