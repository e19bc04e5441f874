//! What the session-writer tests share: writer options for a test directory, and a
//! bounded wait for scans to end.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use pvloom_nexus::nexus::WriterConfig;
use pvloom_nexus::service::{FinishedScan, NexusSessionWriter, ScanWriterOptions};

/// SWMR files in `dir`, flushed every 100 ms, Redis polled every 50 ms.
pub fn options(dir: &Path, creator: &str, end_timeout: Duration) -> ScanWriterOptions {
    ScanWriterOptions {
        writer: WriterConfig {
            flush_interval: Duration::from_millis(100),
            swmr: true,
            default_dir: dir.to_owned(),
            creator: creator.into(),
        },
        end_timeout,
        poll: Duration::from_millis(50),
        ..ScanWriterOptions::default()
    }
}

/// Waits (bounded) until the service has seen `n` scans end.
pub fn wait_finished(service: &NexusSessionWriter, n: usize, limit: Duration) -> Vec<FinishedScan> {
    let end = Instant::now() + limit;
    loop {
        let finished = service.finished();
        if finished.len() >= n {
            return finished;
        }
        assert!(Instant::now() < end, "only {} of {n} scans ended within {limit:?}: {finished:?}", finished.len());
        std::thread::sleep(Duration::from_millis(20));
    }
}
