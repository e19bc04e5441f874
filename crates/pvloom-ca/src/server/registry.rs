//! The served PVs and their subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::backend::{MonitorGate, PvBackend};
use super::outbox::Outbox;
use crate::proto::DbrType;
use crate::proto::command::Command;
use crate::proto::dbr::{DbrClass, DbrData};

/// A PV as served: its backend and who subscribed to it.
pub struct ServedPv {
    /// The PV name (with `.FIELD` for field channels).
    pub name: String,
    /// Where its value lives.
    pub backend: Arc<dyn PvBackend>,
    subscribers: Mutex<Vec<Weak<ServerSubscription>>>,
    /// Made afresh per lookup, never kept by name: channels with filters, whose names a
    /// client can vary without end.
    transient: bool,
}

impl std::fmt::Debug for ServedPv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedPv").field("name", &self.name).finish()
    }
}

impl ServedPv {
    pub(crate) fn new(name: String, backend: Arc<dyn PvBackend>) -> Arc<Self> {
        Arc::new(ServedPv { name, backend, subscribers: Mutex::new(Vec::new()), transient: false })
    }

    /// A PV the registry hands out but does not keep (see [`Registry::get`]).
    pub(crate) fn new_transient(name: String, backend: Arc<dyn PvBackend>) -> Arc<Self> {
        Arc::new(ServedPv { name, backend, subscribers: Mutex::new(Vec::new()), transient: true })
    }

    /// Tell subscribers whose mask matches `events` (DBE_*) about a change. Never
    /// blocks: each client's outbox keeps only the newest update per subscription.
    pub fn post(&self, events: u16) {
        let subscribers: Vec<Arc<ServerSubscription>> = {
            let mut list = self.subscribers.lock();
            list.retain(|s| s.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for subscription in subscribers {
            if subscription.mask & events != 0 {
                subscription.send_current(&self.backend);
            }
        }
    }

    pub(crate) fn subscribe(&self, subscription: &Arc<ServerSubscription>) {
        let mut list = self.subscribers.lock();
        // Pruned here too: a PV that never changes must not collect dead entries.
        list.retain(|s| s.strong_count() > 0);
        list.push(Arc::downgrade(subscription));
    }

    /// Subscriptions alive now.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.lock().iter().filter(|s| s.strong_count() > 0).count()
    }
}

/// One client's subscription to one PV.
pub(crate) struct ServerSubscription {
    pub(crate) id: u32,
    pub(crate) data_type: DbrType,
    pub(crate) count: u32,
    pub(crate) mask: u16,
    pub(crate) outbox: Arc<Outbox>,
    /// The channel's per-subscription filter state (`dbnd`, `sync`), if it has one.
    pub(crate) gate: Option<Mutex<Box<dyn MonitorGate>>>,
    /// The first update, until the second is sent (see [`FirstUpdates`]).
    pub(crate) first: Mutex<FirstUpdates>,
}

/// The subscription's initial update and a processing's post race: the record may
/// process between the subscription joining the PV's list and the initial read, and
/// then both read the same value with the same timestamp, and the client would get
/// that update twice (seen in a recorder's counter as 1, 1, 2, ...). A timestamped
/// update equal to the first one, in time and value, is that same processing: only
/// the second update is compared, once.
#[derive(Debug, Default)]
pub(crate) enum FirstUpdates {
    #[default]
    Nothing,
    One(DbrData),
    Settled,
}

impl ServerSubscription {
    /// Read the PV now and queue the update for the client.
    pub(crate) fn send_current(&self, backend: &Arc<dyn PvBackend>) {
        let data = match backend.read(self.data_type, self.count) {
            Ok(data) => data,
            Err(status) => {
                tracing::debug!(status, "subscription read failed");
                return;
            }
        };
        let data = match &self.gate {
            Some(gate) => match gate.lock().pass(data) {
                Some(data) => data,
                None => return,
            },
            None => data,
        };
        // Held while pushing, so the first two updates reach the outbox in the order
        // they were compared.
        let mut _ordered = None;
        if self.data_type.class() == DbrClass::Time {
            let mut first = self.first.lock();
            match std::mem::replace(&mut *first, FirstUpdates::Settled) {
                FirstUpdates::Nothing => {
                    *first = FirstUpdates::One(data.clone());
                    _ordered = Some(first);
                }
                FirstUpdates::One(earlier) if earlier == data => return,
                FirstUpdates::One(_) => _ordered = Some(first),
                FirstUpdates::Settled => {}
            }
        }
        let reply = Command::event_add_response(self.id, crate::proto::constants::ECA_NORMAL, self.data_type, &data);
        match reply {
            Ok(update) => self.outbox.push(self.id, update),
            Err(err) => tracing::warn!("cannot encode an update: {err}"),
        }
    }
}

/// Makes a served PV for a name the registry does not hold yet (an EPICS database
/// resolves `REC.FIELD` channels on demand this way).
pub type Resolver = Arc<dyn Fn(&str) -> Option<Arc<ServedPv>> + Send + Sync>;

/// Every served PV by name.
#[derive(Default)]
pub struct Registry {
    pvs: RwLock<HashMap<String, Arc<ServedPv>>>,
    resolver: RwLock<Option<Resolver>>,
}

impl Registry {
    /// Add (or replace) a PV.
    pub fn insert(&self, pv: Arc<ServedPv>) {
        self.pvs.write().insert(pv.name.clone(), pv);
    }

    /// A PV by name (made by the resolver on first use).
    pub fn get(&self, name: &str) -> Option<Arc<ServedPv>> {
        if let Some(pv) = self.pvs.read().get(name) {
            return Some(pv.clone());
        }
        let resolver = self.resolver.read().clone()?;
        let pv = resolver(name)?;
        if pv.transient {
            return Some(pv);
        }
        Some(self.pvs.write().entry(name.to_owned()).or_insert(pv).clone())
    }

    /// True if the server has `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.pvs.read().contains_key(name) || self.get(name).is_some()
    }

    /// Resolve names the registry does not hold through `resolver`.
    pub fn set_resolver(&self, resolver: Resolver) {
        *self.resolver.write() = Some(resolver);
    }

    /// Names served, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pvs.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Number of PVs.
    pub fn len(&self) -> usize {
        self.pvs.read().len()
    }

    /// True when nothing is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::dbr::Value;
    use crate::server::backend::{PvSpec, SimplePv};

    fn subscription(data_type: DbrType) -> (Arc<ServerSubscription>, Arc<Outbox>) {
        let outbox = Arc::new(Outbox::new(Box::new(|| {})));
        outbox.register(1);
        let sub = Arc::new(ServerSubscription {
            id: 1,
            data_type,
            count: 1,
            mask: crate::proto::constants::DBE_VALUE,
            outbox: outbox.clone(),
            gate: None,
            first: Mutex::default(),
        });
        (sub, outbox)
    }

    fn sent(outbox: &Outbox) -> usize {
        let mut got = Vec::new();
        outbox.take(usize::MAX, &mut got);
        got.len()
    }

    #[test]
    fn the_initial_update_and_a_racing_post_of_the_same_processing_reach_the_client_once() {
        let simple = Arc::new(SimplePv::new(PvSpec::new(Value::Double(vec![1.0]))));
        let backend: Arc<dyn PvBackend> = simple.clone();
        let (sub, outbox) = subscription(DbrType::TimeDouble);
        // The post of a processing that happened before the initial read, then the
        // initial read itself (or the other way round): same value, same time.
        sub.send_current(&backend);
        assert_eq!(sent(&outbox), 1);
        sub.send_current(&backend);
        assert_eq!(sent(&outbox), 0, "the same processing twice");
        // Later updates go out, equal values included (a processing with MDEL -1).
        sub.send_current(&backend);
        assert_eq!(sent(&outbox), 1, "only the second update is compared");
        simple.set(Value::Double(vec![2.0]));
        sub.send_current(&backend);
        assert_eq!(sent(&outbox), 1);
        // Without a timestamp equal updates cannot be told apart: both go out.
        let (plain, outbox) = subscription(DbrType::Double);
        plain.send_current(&backend);
        assert_eq!(sent(&outbox), 1);
        plain.send_current(&backend);
        assert_eq!(sent(&outbox), 1, "no timestamp: not taken for a duplicate");
    }
}
