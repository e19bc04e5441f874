//! The NeXus (HDF5) writer: one scan's [`ScanEvent`](crate::model::ScanEvent)s in, one
//! NXentry out, laid out as the BLISS NeXus writer lays it out.
//!
//! ```text
//! /                            NX_class=NXroot, default=<last entry>, file_name, file_time,
//! │                            creator, HDF5_Version, NeXus_version
//! └─ N.k                       NXentry (N = scan number; k = 1, or the next free k when
//!    │                         the file already has N.1), default=<first plot>; a scan
//!    │                         with several top masters gets one per subscan (N.1, N.2…
//!    │                         in the sorted order of its acquisition_chain keys, each
//!    │                         with the streams of its top master's subtree, the scan's
//!    │                         title, start_time and positioners; the root's default is
//!    │                         the last one, as BLISS's writer leaves it)
//!    ├─ title, start_time      strings (info.title / info.start_time)
//!    ├─ end_time, end_reason   "" and "RUNNING" until the end writes them (SUCCESS, or
//!    │                         info.end_reason; "FAILURE: <reason>" after a fault/abort)
//!    ├─ instrument             NXinstrument
//!    │  ├─ name                the session
//!    │  ├─ <motor>             NXpositioner, dataset `value` (axis:<motor>, or a stream
//!    │  │                      whose info has device_type=axis, or <m> in positioners)
//!    │  ├─ <device>            NXdetector, dataset `data` (channel = device) or <channel>
//!    │  │                      (datasets: units, interpretation scalar/spectrum/image;
//!    │  │                      variable shapes: also <name>_shape int64 [points, rank])
//!    │  ├─ positioners_start   NXcollection: info.positioners.positioners_start (+units)
//!    │  └─ positioners         NXcollection: start values, overwritten by positioners_end
//!    │                         (motors first seen there added after SWMR ends)
//!    ├─ measurement            NXcollection: soft links <channel> (or <device>_<channel>
//!    │                         when two channels share a name) to every stream's dataset
//!    ├─ <plot>                 NXdata per info.plots curve plot (else `plotselect`: all
//!    │                         scalars vs the first motor or the timer): soft links,
//!    │                         signal, auxiliary_signals, axes, <axis>_indices
//!    └─ <device>_<channel>     NXdata per image/spectrum stream: signal, interpretation
//! ```
//!
//! Stream datasets are chunked and unlimited along the point axis and extended in place.
//! Variable-shape points are padded to the largest shape so far (see [`points`]); JSON
//! points are variable-length UTF-8 strings. Numeric data keeps its byte order.
//!
//! SWMR: the whole entry is created at Begin — including `end_time` (empty),
//! `end_reason` (`RUNNING`) and `instrument/positioners` (the start positions; strings
//! fixed-size) as placeholders — then the file enters SWMR write mode, in which only appends (extend +
//! write) and overwrites happen. The end overwrites the placeholders in place, so readers
//! following the scan keep following it to its end, and then the file is closed. A later
//! scan appending to the file opens it again (not SWMR, no file lock), adds its entry, and
//! enters SWMR. Two scans never write one file at once: see [`registry`].
//! A killed writer leaves an entry with every flushed point, `end_reason` `RUNNING`;
//! the file is marked as open for SWMR writing, so readers open it with
//! `h5py.File(f, "r", libver="latest", swmr=True)` (or clear the mark with `h5clear -s`).
//!
//! A scan whose info has an `h5maps` mapping for the file (BLISS 2.4) gets that tree
//! instead of the layout above, in the same SWMR way: see [`h5map`].

pub mod dtype;
pub mod error;
pub(crate) mod h5;
pub mod h5map;
pub mod layout;
pub mod points;
pub mod registry;
mod structure;
mod writer;

pub use error::NexusError;
pub use writer::{ScanWriter, WriterConfig};
