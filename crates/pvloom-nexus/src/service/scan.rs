//! `NexusScanWriter`: one blissdata scan written to NeXus by a [`Subscriber`] whose
//! listener reads Redis and whose consumer writes HDF5.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::subscriber::{Emitter, Mode, Subscriber, SubscriberState};

use crate::blissdata::ScanReader;
use crate::model::{ScanEvent, ScanFault};
use crate::nexus::{ScanWriter, WriterConfig};

/// How a scan writer behaves.
#[derive(Clone, Debug)]
pub struct ScanWriterOptions {
    /// Where and how files are written.
    pub writer: WriterConfig,
    /// A scan that sends nothing for this long is closed as failed, with this reason in
    /// its entry, instead of staying ON forever.
    pub end_timeout: Duration,
    /// How long the listener waits on Redis before it checks for stop and hands the
    /// consumer a flush tick.
    pub poll: Duration,
    /// Sequential (one thread) or parallel (the reader never waits for HDF5 writes,
    /// except when the bounded queue between them is full).
    pub mode: Mode,
}

impl Default for ScanWriterOptions {
    fn default() -> Self {
        ScanWriterOptions {
            writer: WriterConfig::default(),
            end_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            mode: Mode::Parallel { capacity: 1024 },
        }
    }
}

/// What travels from the listener to the consumer (public only as the subscriber's event type).
pub enum WriterInput {
    Event(ScanEvent),
    /// Nothing new: a chance to flush on time.
    Tick,
}

/// What a scan writer has done so far, readable from any thread.
#[derive(Clone, Debug, Default)]
pub struct ScanProgress {
    /// Points of all streams together written into the file.
    pub points_written: u64,
    /// The file, once the scan began.
    pub file: Option<PathBuf>,
    /// The (first) NXentry, once the scan began (`"12.1"`).
    pub entry: Option<String>,
    /// Every NXentry of the scan, once it began: one per subscan (`["12.1", "12.2"]`).
    pub entries: Vec<String>,
    /// Why the scan ended badly, if it did.
    pub fault: Option<String>,
    /// The scan reached CLOSED and its entry was closed.
    pub closed: bool,
}

/// A blissdata scan written as NeXus while it runs.
pub struct NexusScanWriter {
    key: String,
    subscriber: Subscriber<WriterInput>,
    progress: Arc<Mutex<ScanProgress>>,
}

fn failed(err: impl std::error::Error + Send + Sync + 'static) -> pvloom_core::Error {
    pvloom_core::Error::Failed(Arc::new(err))
}

/// The scan itself ended badly (the cause is also written into its entry).
#[derive(Debug, thiserror::Error)]
#[error("scan {key}: {reason}")]
pub struct ScanFailed {
    pub key: String,
    pub reason: String,
}

impl NexusScanWriter {
    /// A writer (INIT) for the scan `key` (`esrf:scan:<ULID>`) in the Redis at `url`.
    pub fn new(url: &str, key: &str, options: ScanWriterOptions) -> NexusScanWriter {
        let progress = Arc::new(Mutex::new(ScanProgress::default()));
        let listener = {
            let (url, key, options) = (url.to_owned(), key.to_owned(), options.clone());
            move |emitter: &Emitter<WriterInput>| listen(&url, &key, &options, emitter)
        };
        let consumer = {
            let mut writer = ScanWriter::new(options.writer.clone());
            let progress = progress.clone();
            move |input: WriterInput| consume(&mut writer, &progress, input)
        };
        let subscriber = Subscriber::new(format!("nexus writer {key}"), options.mode, listener, consumer);
        NexusScanWriter { key: key.to_owned(), subscriber, progress }
    }

    /// The scan's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// INIT, ON, OFF (scan closed, or stopped) or FAULT (killed, or the scan or the
    /// file failed; [`Self::error`] has the cause).
    pub fn state(&self) -> SubscriberState {
        self.subscriber.state()
    }

    /// The cause of a FAULT.
    pub fn error(&self) -> Option<pvloom_core::Error> {
        self.subscriber.error()
    }

    /// What was written so far.
    pub fn progress(&self) -> ScanProgress {
        self.progress.lock().clone()
    }

    /// Start listening; with `wait`, until ON.
    pub fn start(&self) -> pvloom_core::Result<()> {
        self.subscriber.start(true, None)
    }

    /// Ask the writer to end: the entry is closed as stopped by the writer if the scan
    /// had not ended.
    pub fn stop(&self, wait: bool, timeout: Option<Duration>) -> pvloom_core::Result<()> {
        self.subscriber.stop(wait, timeout)
    }

    /// End at once: the entry is left as far as it was written (every point flushed).
    pub fn kill(&self, wait: bool, timeout: Option<Duration>) -> pvloom_core::Result<()> {
        self.subscriber.kill(wait, timeout)
    }

    /// How long the writer has been (or was) ON.
    pub fn duration(&self) -> Option<Duration> {
        self.subscriber.duration()
    }

    /// Wait for the writer to end.
    pub fn join(&self, timeout: Option<Duration>) -> pvloom_core::Result<()> {
        self.subscriber.join(timeout)
    }

    /// True once OFF or FAULT.
    pub fn done(&self) -> bool {
        self.subscriber.done()
    }
}

fn listen(
    url: &str,
    key: &str,
    options: &ScanWriterOptions,
    emitter: &Emitter<WriterInput>,
) -> pvloom_core::Result<()> {
    let mut reader = ScanReader::open(url, key).map_err(failed)?;
    let mut last_news = Instant::now();
    while !reader.is_finished() {
        if emitter.should_stop() {
            let fault = ScanFault { reason: "the writer was stopped before the scan ended".into() };
            return emitter.emit(WriterInput::Event(ScanEvent::Fault(fault)));
        }
        let events = match reader.next_events(options.poll) {
            Ok(events) => events,
            Err(err) => {
                // The file still gets its end, marked with the cause.
                let fault = ScanFault { reason: format!("reading {key} failed: {err}") };
                emitter.emit(WriterInput::Event(ScanEvent::Fault(fault)))?;
                return Err(failed(err));
            }
        };
        if events.is_empty() {
            if last_news.elapsed() >= options.end_timeout {
                let reason = format!(
                    "no event from the scan within {:?}: closed by the writer's end timeout",
                    options.end_timeout
                );
                emitter.emit(WriterInput::Event(ScanEvent::Fault(ScanFault { reason: reason.clone() })))?;
                return Err(failed(ScanFailed { key: key.to_owned(), reason }));
            }
            emitter.emit(WriterInput::Tick)?;
            continue;
        }
        last_news = Instant::now();
        for event in events {
            // The consumer still writes the fault (it drains the queue); the writer ends in FAULT.
            let fault = match &event {
                ScanEvent::Fault(fault) => Some(fault.reason.clone()),
                _ => None,
            };
            emitter.emit(WriterInput::Event(event))?;
            if let Some(reason) = fault {
                return Err(failed(ScanFailed { key: key.to_owned(), reason }));
            }
        }
    }
    Ok(())
}

fn consume(writer: &mut ScanWriter, progress: &Mutex<ScanProgress>, input: WriterInput) -> pvloom_core::Result<()> {
    let outcome = match input {
        WriterInput::Tick => writer.tick(Instant::now()),
        WriterInput::Event(event) => {
            let fault = match &event {
                ScanEvent::Fault(fault) => Some(fault.reason.clone()),
                _ => None,
            };
            let outcome = writer.handle(event).and_then(|()| writer.tick(Instant::now()));
            if let Some(reason) = fault {
                progress.lock().fault = Some(reason);
            }
            outcome
        }
    };
    {
        let mut progress = progress.lock();
        progress.points_written = writer.points_written();
        if progress.file.is_none() {
            progress.file = writer.file_path().map(|p| p.to_path_buf());
            progress.entry = writer.entry_name().map(str::to_owned);
            progress.entries = writer.entry_names().to_vec();
        }
        progress.closed = writer.is_closed() && progress.fault.is_none();
    }
    if let Err(err) = outcome {
        let reason = format!("writing the file failed: {err}");
        tracing::error!("{reason}");
        // What was written stays readable; the entry says why it ends here.
        let _ = writer.abort(&reason);
        progress.lock().fault = Some(reason);
        return Err(failed(err));
    }
    Ok(())
}
