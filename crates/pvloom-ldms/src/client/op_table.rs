//! The operations in flight on a connection, with their deadlines kept in order.
//!
//! A client keeps hundreds of updates in flight, and the driver asks for the next
//! deadline after every call: scanning every pending operation for it cost more than the
//! update itself. The deadlines live in an ordered set beside the map, so the next one is
//! the set's first entry and expiry visits only the operations that are due.

use std::collections::BTreeSet;
use std::time::Instant;

use super::types::OpId;
use crate::FastMap;

struct Entry<T> {
    value: T,
    deadline: Option<Instant>,
}

/// Pending operations by id, each with an optional deadline.
pub(super) struct OpTable<T> {
    entries: FastMap<OpId, Entry<T>>,
    deadlines: BTreeSet<(Instant, OpId)>,
}

impl<T> Default for OpTable<T> {
    fn default() -> Self {
        OpTable { entries: FastMap::default(), deadlines: BTreeSet::new() }
    }
}

impl<T> OpTable<T> {
    /// Add `value` under `id`; an operation already there under that id is replaced.
    pub(super) fn insert(&mut self, id: OpId, value: T, deadline: Option<Instant>) {
        if let Some(d) = deadline {
            self.deadlines.insert((d, id));
        }
        if let Some(old) = self.entries.insert(id, Entry { value, deadline })
            && let Some(d) = old.deadline
            && Some(d) != deadline
        {
            self.deadlines.remove(&(d, id));
        }
    }

    pub(super) fn get(&self, id: &OpId) -> Option<&T> {
        self.entries.get(id).map(|e| &e.value)
    }

    pub(super) fn get_mut(&mut self, id: &OpId) -> Option<&mut T> {
        self.entries.get_mut(id).map(|e| &mut e.value)
    }

    pub(super) fn contains_key(&self, id: &OpId) -> bool {
        self.entries.contains_key(id)
    }

    pub(super) fn remove(&mut self, id: &OpId) -> Option<T> {
        let e = self.entries.remove(id)?;
        if let Some(d) = e.deadline {
            self.deadlines.remove(&(d, *id));
        }
        Some(e.value)
    }

    /// The operation stays but no longer expires (a directory kept open for updates).
    pub(super) fn clear_deadline(&mut self, id: &OpId) {
        if let Some(e) = self.entries.get_mut(id)
            && let Some(d) = e.deadline.take()
        {
            self.deadlines.remove(&(d, *id));
        }
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&OpId, &T) -> bool) {
        let deadlines = &mut self.deadlines;
        self.entries.retain(|id, e| {
            let k = keep(id, &e.value);
            if !k && let Some(d) = e.deadline {
                deadlines.remove(&(d, *id));
            }
            k
        });
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Remove and return the operations whose deadline is `now` or earlier, earliest first.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<(OpId, T)> {
        let mut due = Vec::new();
        while let Some(&(d, id)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(e) = self.entries.remove(&id) {
                due.push((id, e.value));
            }
        }
        due
    }

    /// Remove every operation, in id order (the order they were started).
    pub(super) fn drain_in_order(&mut self) -> Vec<(OpId, T)> {
        self.deadlines.clear();
        let mut all: Vec<(OpId, T)> = self.entries.drain().map(|(id, e)| (id, e.value)).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_follow_inserts_removals_and_expiry() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let mut t = OpTable::default();
        t.insert(OpId(1), "a", at(30));
        t.insert(OpId(2), "b", at(10));
        t.insert(OpId(3), "c", None);
        t.insert(OpId(4), "d", at(20));
        assert_eq!(t.next_deadline(), at(10));
        assert_eq!(t.remove(&OpId(2)), Some("b"));
        assert_eq!(t.next_deadline(), at(20));
        t.clear_deadline(&OpId(4));
        assert_eq!(t.next_deadline(), at(30));
        t.insert(OpId(1), "a2", at(5));
        assert_eq!(t.next_deadline(), at(5), "a replaced operation keeps only its new deadline");
        assert_eq!(t.take_expired(t0 + Duration::from_millis(29)).len(), 1);
        assert_eq!(t.next_deadline(), None);
        assert!(t.take_expired(t0 + Duration::from_secs(60)).is_empty());
        assert_eq!(t.len(), 2, "operations without a deadline never expire");
        t.retain(|id, _| id.0 == 3);
        assert_eq!(t.drain_in_order().into_iter().map(|(id, v)| (id.0, v)).collect::<Vec<_>>(), vec![(3, "c")]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn expiry_returns_the_due_operations_earliest_first() {
        let t0 = Instant::now();
        let mut t = OpTable::default();
        for i in 0..100u64 {
            t.insert(OpId(i), i, Some(t0 + Duration::from_millis(100 - i)));
        }
        let due = t.take_expired(t0 + Duration::from_millis(50));
        assert_eq!(due.len(), 50);
        assert!(due.windows(2).all(|w| w[0].0.0 > w[1].0.0), "earliest deadline first");
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(51)));
        assert_eq!(t.len(), 50);
    }
}
