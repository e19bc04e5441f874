//! [`Message`]: a received message as the application holds it, and the release of
//! its slot from any thread.
//!
//! Releases are batched per connection ([`Releases`]): the application's thread
//! queues them and the connection's I/O thread applies however many came, woken once
//! per batch. With 16 slots and a handler on another thread, a wake-up per release
//! would cap a connection at the speed of thread hand-offs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use pvloom_core::driver::StreamAddress;
use pvloom_core::{Completer, Completion};

use super::conn_app::ConnApp;
use crate::identity::Identity;
use crate::message::{Outgoing, Received};
use crate::slots::SlotId;

type ReleaseDone = Completer<Option<(Identity, u32)>>;

/// A message as the application sees it: the received message plus its slot.
#[derive(Clone)]
pub struct Message {
    /// Its identity.
    pub identity: Identity,
    /// The sender's serial.
    pub serial: u32,
    /// The sending node's identity.
    pub remote_identity: Identity,
    /// The sender's address.
    pub address: IpAddr,
    /// The sender's public port.
    pub port: u16,
    /// Upper-layer header bytes.
    pub header: Bytes,
    /// The data.
    pub data: Bytes,
    slot: Arc<Mutex<Option<SlotRef>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("identity", &self.identity)
            .field("serial", &self.serial)
            .field("from", &SocketAddr::new(self.address, self.port))
            .field("data_len", &self.data.len())
            .field("has_slot", &self.has_slot())
            .finish()
    }
}

struct SlotRef {
    releases: Arc<Releases>,
    slot: SlotId,
}

impl Message {
    pub(super) fn new(received: Received, releases: Option<Arc<Releases>>) -> Self {
        let slot = releases.map(|releases| SlotRef { releases, slot: received.slot });
        Message {
            identity: received.identity,
            serial: received.serial,
            remote_identity: received.remote_identity,
            address: received.from.ip(),
            port: received.from.port(),
            header: received.header,
            data: received.data,
            slot: Arc::new(Mutex::new(slot)),
        }
    }

    /// Where it came from (the sender's public port): where a reply goes.
    pub fn from(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// True until released.
    pub fn has_slot(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// A reply: same identity, new data.
    pub fn reply(&self, data: impl Into<Bytes>) -> Outgoing {
        Outgoing { identity: self.identity, header: Bytes::new(), data: data.into() }
    }

    /// Free its slot (and, if the sender asked for one, send the ACK that completes
    /// the sender's synchronous send). Resolves to (identity, serial), or `None` if it
    /// had no slot (released before, or its connection is gone).
    pub fn release(&self) -> Completion<Option<(Identity, u32)>> {
        let Some(slot) = self.slot.lock().take() else {
            return Completion::ready(Ok(None));
        };
        let (done, wait) = pvloom_core::completion();
        slot.releases.push(slot.slot, Some(done));
        wait
    }

    /// As [`release`](Self::release) without a completion to learn the outcome from:
    /// what auto-release and callers that do not look use.
    pub fn release_detached(&self) {
        // Taken in a statement of its own: in the `if let` the slot's lock would be held
        // while `push` takes the releases' lock, which `release_all` takes first.
        let slot = self.slot.lock().take();
        if let Some(slot) = slot {
            slot.releases.push(slot.slot, None);
        }
    }
}

impl Message {
    /// Take its slot away, for the connection's own thread to free directly: true if
    /// it still had one.
    pub(super) fn take_slot(&self) -> bool {
        self.slot.lock().take().is_some()
    }
}

/// Slots released by the application, waiting for their connection's thread.
pub(super) struct Releases {
    address: Arc<StreamAddress<ConnApp>>,
    state: Mutex<ReleasesState>,
}

#[derive(Default)]
struct ReleasesState {
    slots: Vec<(SlotId, Option<ReleaseDone>)>,
    scheduled: bool,
}

impl Releases {
    pub fn new(address: Arc<StreamAddress<ConnApp>>) -> Arc<Self> {
        Arc::new(Releases { address, state: Mutex::default() })
    }

    pub(super) fn push(self: &Arc<Self>, slot: SlotId, done: Option<ReleaseDone>) {
        let mut state = self.state.lock();
        state.slots.push((slot, done));
        if std::mem::replace(&mut state.scheduled, true) {
            return;
        }
        drop(state);
        self.schedule();
    }

    /// Free the slots the `messages` still hold, in one batch.
    pub fn release_all<'a>(self: &Arc<Self>, messages: impl Iterator<Item = &'a Message>) {
        let mut state = self.state.lock();
        let before = state.slots.len();
        for message in messages {
            if let Some(slot) = message.slot.lock().take() {
                state.slots.push((slot.slot, None));
            }
        }
        if state.slots.len() == before || std::mem::replace(&mut state.scheduled, true) {
            return;
        }
        drop(state);
        self.schedule();
    }

    fn schedule(self: &Arc<Self>) {
        let (apply, gone) = (self.clone(), self.clone());
        let reached = self.address.exec(move |app, ctx| app.apply_releases(&apply, ctx.now()), move || gone.abandon());
        if !reached {
            self.abandon();
        }
    }

    /// What waits, taken by the connection's thread.
    pub fn take(&self) -> Vec<(SlotId, Option<ReleaseDone>)> {
        let mut state = self.state.lock();
        state.scheduled = false;
        std::mem::take(&mut state.slots)
    }

    /// The connection is gone: nothing to release any more.
    fn abandon(&self) {
        for (_, done) in self.take() {
            if let Some(done) = done {
                done.succeed(None);
            }
        }
    }
}
