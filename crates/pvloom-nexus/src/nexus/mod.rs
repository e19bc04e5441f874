//! The NeXus (HDF5) writer: one scan's [`ScanEvent`](crate::model::ScanEvent)s in, one
//! NXentry out, laid out as the BLISS NeXus writer lays it out.
//!
//! ```text
//! /                           NX_class=NXroot, default=<entry>, file_name, file_time,
//!                             creator, HDF5_Version, NeXus_version
//! └─ N.k                      NXentry (N = scan number, k = 1 or the next free)
//!    │                        default=<first plot>
//!    ├─ title, start_time     strings (end_time, end_reason: written at the end)
//!    ├─ instrument            NXinstrument
//!    │  ├─ name               the session
//!    │  ├─ <motor>            NXpositioner, dataset `value` (axis:<motor> streams)
//!    │  ├─ <device>           NXdetector, dataset `data` (channel = device) or <channel>
//!    │  ├─ positioners_start  NXcollection: info.positioners.positioners_start
//!    │  └─ positioners        NXcollection: positioners_end (at the end)
//!    ├─ measurement           NXcollection: soft links to every stream's dataset
//!    └─ <plot>                NXdata: links, signal, auxiliary_signals, axes, <axis>_indices
//! ```
//!
//! Stream datasets are chunked and unlimited along the point axis and extended in place.
//! Variable-shape points are padded to the largest shape so far (see [`points`]); JSON
//! points are variable-length UTF-8 strings. Numeric data keeps its byte order.
//!
//! SWMR: the whole entry is created at Begin, then the file enters SWMR write mode, in
//! which only appends (extend + write) happen. The end of the scan needs new datasets, so
//! closing leaves SWMR (close, reopen without it) first. A second scan appending to the
//! file opens it again (not SWMR) and adds its entry before entering SWMR. Two scans never
//! write one file at once: see [`registry`].

pub mod dtype;
pub mod error;
pub(crate) mod h5;
pub mod layout;
pub mod points;
pub mod registry;
mod structure;
mod writer;

pub use error::NexusError;
pub use writer::{ScanWriter, WriterConfig};
