//! Named states for the `sync` channel filter, as base's dbState: created by iocsh's
//! `dbStateCreate`, set and cleared by `dbStateSet` / `dbStateClear` at any time, read
//! by every filtered subscription at each of its updates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// The IOC's named states (shared by the shell and the served channels).
#[derive(Debug, Default)]
pub struct NamedStates {
    states: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
}

impl NamedStates {
    /// An empty set of states.
    pub fn new() -> Arc<NamedStates> {
        Arc::default()
    }

    /// The state `name`, created clear if it does not exist yet.
    pub fn create(&self, name: &str) -> Arc<AtomicBool> {
        self.states.lock().entry(name.to_owned()).or_default().clone()
    }

    /// The state `name`, if it was created.
    pub fn find(&self, name: &str) -> Option<Arc<AtomicBool>> {
        self.states.lock().get(name).cloned()
    }

    /// Sets (`true`) or clears state `name`; false if there is no such state (base
    /// ignores the command then).
    pub fn change(&self, name: &str, set: bool) -> bool {
        self.find(name).map(|s| s.store(set, Ordering::Release)).is_some()
    }

    /// Every state's name and value, by name.
    pub fn list(&self) -> Vec<(String, bool)> {
        self.states.lock().iter().map(|(n, s)| (n.clone(), s.load(Ordering::Acquire))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_clear_then_set_and_cleared_by_name() {
        let states = NamedStates::new();
        assert!(states.find("run").is_none());
        assert!(!states.change("run", true), "no such state: ignored");
        let run = states.create("run");
        assert!(!run.load(Ordering::Acquire));
        assert!(states.change("run", true));
        assert!(run.load(Ordering::Acquire), "the handle sees the change");
        assert!(Arc::ptr_eq(&run, &states.create("run")), "create finds an existing state");
        assert_eq!(states.list(), vec![("run".to_owned(), true)]);
    }
}
