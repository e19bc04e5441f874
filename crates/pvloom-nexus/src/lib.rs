//! Scans as BLISS records them, written as NeXus HDF5.
//!
//! Sources produce [`model::ScanEvent`]s: blissdata scans read from Redis, or pvloom's own
//! CA monitors and LDMS sets recorded as scans. The NeXus writer consumes the same events,
//! so every source gets the same file layout.

pub mod blissdata;
pub mod model;
pub mod nexus;
pub mod record;
pub mod service;
