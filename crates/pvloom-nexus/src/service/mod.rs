//! The writer services: a scan writer per blissdata scan, and a session writer that starts
//! them. Both are [`pvloom_core::subscriber::Subscriber`]s (INIT/ON/OFF/FAULT).

mod record;
mod scan;
mod session;

pub use record::{NexusRecording, RecordProgress};
pub use scan::{NexusScanWriter, ScanFailed, ScanProgress, ScanWriterOptions, WriterInput};
pub use session::{FinishedScan, NexusSessionWriter};
