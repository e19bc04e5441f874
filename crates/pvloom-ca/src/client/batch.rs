//! Batch: many reads and writes, sent together on exit (caproto's `Batch`).

use std::sync::Arc;

use parking_lot::Mutex;
use pvloom_core::Completion;

use super::error::CaResult;
use super::options::{DbrValue, ReadOptions, WriteOptions};
use super::pv::Pv;
use super::response::Response;

type Pending = Box<dyn FnOnce() + Send>;

/// Collects requests; [`send`](Batch::send) (or dropping the batch) issues them all,
/// each PV's request queued on its circuit in one go, and returns at once. Results go
/// to each request's callback.
#[derive(Default)]
pub struct Batch {
    pending: Mutex<Vec<Pending>>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read `pv`; `callback` gets the response or the error.
    pub fn read(&self, pv: &Pv, callback: impl FnOnce(CaResult<Arc<Response>>) + Send + 'static) {
        let pv = pv.clone();
        self.pending.lock().push(Box::new(move || {
            let name = pv.name().to_owned();
            let completion: Completion<Response> = pv.read_async(ReadOptions { notify: true, ..Default::default() });
            completion.then(move |result| {
                callback(result.map(Arc::new).map_err(|e| super::error::CaError::from_core(e, &name, "read")))
            });
        }));
    }

    /// Write `value` to `pv` (with notify); `callback` gets the outcome.
    pub fn write(&self, pv: &Pv, value: impl Into<DbrValue>, callback: impl FnOnce(CaResult<()>) + Send + 'static) {
        let (pv, value) = (pv.clone(), value.into());
        self.pending.lock().push(Box::new(move || {
            let name = pv.name().to_owned();
            pv.write_async(value, WriteOptions::default())
                .then(move |result| callback(result.map_err(|e| super::error::CaError::from_core(e, &name, "write"))));
        }));
    }

    /// Issue everything collected so far.
    pub fn send(&self) {
        let pending = std::mem::take(&mut *self.pending.lock());
        for request in pending {
            request();
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.send();
    }
}
