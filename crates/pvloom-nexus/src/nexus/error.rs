//! The writer's error type.

use std::io;
use std::path::PathBuf;

/// What went wrong while writing a scan.
#[derive(Debug, thiserror::Error)]
pub enum NexusError {
    /// An HDF5 call failed. `summary` is HDF5's own word on it (the outermost entry of
    /// its error stack), `detail` the whole stack; `os` is the operating system's cause
    /// when HDF5 reported one (e.g. `File too large`, `No space left on device`).
    #[error("HDF5 {op} failed{}: {summary}", os.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Hdf5 { op: String, summary: String, detail: String, os: Option<io::Error> },
    #[error("cannot create directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    /// The event does not fit the scan as known (no Begin yet, unknown stream, wrong size…).
    #[error("scan event rejected: {0}")]
    Event(String),
    /// The scan's `h5maps` mapping of the file is one blissdata's models refuse (or names
    /// a stream the scan does not have).
    #[error("malformed h5maps: {0}")]
    Mapping(#[from] super::h5map::MappingError),
}

impl NexusError {
    /// The operating system's cause, if the failure had one.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            NexusError::Hdf5 { os, .. } => os.as_ref(),
            NexusError::Dir { source, .. } => Some(source),
            NexusError::Event(_) | NexusError::Mapping(_) => None,
        }
    }
}
