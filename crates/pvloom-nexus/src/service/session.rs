//! `NexusSessionWriter`: watches a BLISS session (or every session) and starts one
//! [`NexusScanWriter`] per new scan; writers that finished are purged.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_core::subscriber::{Emitter, Mode, Subscriber, SubscriberState};

use super::scan::{NexusScanWriter, ScanProgress, ScanWriterOptions};
use crate::blissdata::ScanWatcher;

/// A finished scan as the session writer saw it end.
#[derive(Clone, Debug)]
pub struct FinishedScan {
    /// 1 for the first scan that ended, counting up.
    pub seq: u64,
    pub key: String,
    pub state: SubscriberState,
    pub progress: ScanProgress,
    /// The cause when `state` is FAULT.
    pub error: Option<String>,
}

#[derive(Default)]
struct Writers {
    running: Vec<NexusScanWriter>,
    finished: Vec<FinishedScan>,
    ended: u64,
    /// At most this many finished scans are kept for [`NexusSessionWriter::finished`].
    keep_finished: usize,
}

impl Writers {
    fn purge(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) = self.running.drain(..).partition(|w| w.done());
        self.running = running;
        for writer in done {
            self.ended += 1;
            let finished = FinishedScan {
                seq: self.ended,
                key: writer.key().to_owned(),
                state: writer.state(),
                progress: writer.progress(),
                error: writer.error().map(|e| e.to_string()),
            };
            match finished.state {
                SubscriberState::Fault => tracing::warn!(
                    "scan {} ended in FAULT ({}): {} points in {:?}",
                    finished.key,
                    finished.progress.fault.as_deref().or(finished.error.as_deref()).unwrap_or("killed"),
                    finished.progress.points_written,
                    finished.progress.file
                ),
                _ => tracing::info!(
                    "scan {} written: {} points in {:?} entry {:?}",
                    finished.key,
                    finished.progress.points_written,
                    finished.progress.file,
                    finished.progress.entry
                ),
            }
            self.finished.push(finished);
        }
        let excess = self.finished.len().saturating_sub(self.keep_finished);
        self.finished.drain(..excess);
    }
}

/// The session writer service: every new scan of `session` (or of all sessions) recorded.
pub struct NexusSessionWriter {
    watcher: Subscriber<String>,
    writers: Arc<Mutex<Writers>>,
}

impl NexusSessionWriter {
    /// A session writer (INIT) on the Redis at `url`.
    pub fn new(url: &str, session: Option<&str>, options: ScanWriterOptions) -> NexusSessionWriter {
        let writers = Arc::new(Mutex::new(Writers { keep_finished: 1000, ..Writers::default() }));
        let poll = options.poll;
        let listener = {
            let (url, session) = (url.to_owned(), session.map(str::to_owned));
            move |emitter: &Emitter<String>| -> pvloom_core::Result<()> {
                let mut watcher = ScanWatcher::connect(&url, session.as_deref())
                    .map_err(|e| pvloom_core::Error::Failed(Arc::new(e)))?;
                while !emitter.should_stop() {
                    // An empty key is the purge tick.
                    let key = watcher.next_scan(poll).map_err(|e| pvloom_core::Error::Failed(Arc::new(e)))?;
                    emitter.emit(key.unwrap_or_default())?;
                }
                Ok(())
            }
        };
        let consumer = {
            let (url, writers) = (url.to_owned(), writers.clone());
            move |key: String| -> pvloom_core::Result<()> {
                let mut writers = writers.lock();
                writers.purge();
                if key.is_empty() {
                    return Ok(());
                }
                tracing::info!("new scan {key}");
                let writer = NexusScanWriter::new(&url, &key, options.clone());
                writer.start()?;
                writers.running.push(writer);
                Ok(())
            }
        };
        let watcher = Subscriber::new("nexus session writer", Mode::Sequential, listener, consumer);
        NexusSessionWriter { watcher, writers }
    }

    /// Start watching; returns once ON.
    pub fn start(&self) -> pvloom_core::Result<()> {
        self.watcher.start(true, None)
    }

    /// Stop watching and stop every running scan writer (their entries are closed and
    /// marked as stopped by the writer).
    pub fn stop(&self, timeout: Option<Duration>) -> pvloom_core::Result<()> {
        self.watcher.stop(true, timeout)?;
        let mut writers = self.writers.lock();
        for writer in &writers.running {
            writer.stop(true, timeout)?;
        }
        writers.purge();
        Ok(())
    }

    /// The watcher's state: ON while it runs, also while Redis is unreachable (it
    /// reconnects, and watches on when Redis is back); FAULT if Redis was unreachable at
    /// start or its scan history is malformed.
    pub fn state(&self) -> SubscriberState {
        self.watcher.state()
    }

    /// The cause of a FAULT.
    pub fn error(&self) -> Option<pvloom_core::Error> {
        self.watcher.error()
    }

    /// Keys and progress of the scans being written now.
    pub fn running(&self) -> Vec<(String, ScanProgress)> {
        let mut writers = self.writers.lock();
        writers.purge();
        writers.running.iter().map(|w| (w.key().to_owned(), w.progress())).collect()
    }

    /// The scans written so far (the last 1000), in the order they ended.
    pub fn finished(&self) -> Vec<FinishedScan> {
        let mut writers = self.writers.lock();
        writers.purge();
        writers.finished.clone()
    }

    /// Wait until the watcher ends (after stop, or a Redis failure).
    pub fn join(&self, timeout: Option<Duration>) -> pvloom_core::Result<()> {
        self.watcher.join(timeout)
    }
}
