//! Receive slots: a message for the application occupies one until the application
//! releases it. Their number (at most 32, libchirp's bitmap) bounds what a peer can
//! make this side hold; with none free the connection stops reading.

use crate::error::ReleaseError;

/// The most slots a connection may have (libchirp's 32-bit bitmap).
pub const MAX_SLOTS: u8 = 32;

/// A held slot. The generation makes a stale id (released before, or kept across a
/// reuse of the same index) harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId {
    /// Which slot.
    pub index: u8,
    /// Which use of it.
    pub generation: u32,
}

/// A fixed set of slots, each holding `T` while in use.
pub struct Slots<T> {
    entries: Vec<(u32, Option<T>)>,
    held: usize,
}

impl<T> Slots<T> {
    /// `count` slots (clamped to 1..=[`MAX_SLOTS`]).
    pub fn new(count: u8) -> Self {
        let count = count.clamp(1, MAX_SLOTS);
        Slots { entries: (0..count).map(|_| (0, None)).collect(), held: 0 }
    }

    /// How many exist.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// How many are held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// True while one is free.
    pub fn has_free(&self) -> bool {
        self.held < self.entries.len()
    }

    /// Take the lowest free slot for `value`; `None` when all are held.
    pub fn acquire(&mut self, value: T) -> Option<SlotId> {
        let (index, entry) = self.entries.iter_mut().enumerate().find(|(_, (_, v))| v.is_none())?;
        entry.0 = entry.0.wrapping_add(1);
        entry.1 = Some(value);
        self.held += 1;
        // index < MAX_SLOTS (32): fits in u8.
        Some(SlotId { index: index as u8, generation: entry.0 })
    }

    /// Free `id`, returning what it held.
    ///
    /// # Errors
    /// The slot is not held under this generation.
    pub fn release(&mut self, id: SlotId) -> Result<T, ReleaseError> {
        let not_held = ReleaseError::NotHeld { index: id.index };
        let entry = self.entries.get_mut(usize::from(id.index)).ok_or(not_held)?;
        if entry.0 != id.generation {
            return Err(not_held);
        }
        let value = entry.1.take().ok_or(not_held)?;
        self.held -= 1;
        Ok(value)
    }

    /// Free every slot (the connection is gone), returning what they held.
    pub fn drain(&mut self) -> Vec<T> {
        self.held = 0;
        self.entries.iter_mut().filter_map(|(_, v)| v.take()).collect()
    }
}
