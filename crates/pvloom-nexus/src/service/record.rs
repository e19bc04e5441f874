//! `NexusRecording`: a [`Recorder`] (CA monitors, LDMS sets) written to NeXus by a
//! [`Subscriber`] — the recorder listens, the writer consumes — and, optionally, published
//! as a blissdata scan so that blissdata's own readers see it too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pvloom_core::RuntimeHandle;
use pvloom_core::subscriber::{Emitter, Mode, Subscriber, SubscriberState};

use crate::blissdata::ScanPublisher;
use crate::model::ScanEvent;
use crate::nexus::{ScanWriter, WriterConfig};
use crate::record::{RecordError, RecordSpec, Recorder};

/// What a recording has done so far.
#[derive(Clone, Debug, Default)]
pub struct RecordProgress {
    /// Points of all streams together in the file.
    pub points_written: u64,
    /// Source updates taken (a CA monitor update, an LDMS set update with new data).
    pub updates: u64,
    /// Updates lost because the writer fell behind the recording's bounded queue.
    pub dropped: u64,
    /// From a batch leaving the recorder to its points being in the file, for the
    /// latest batch.
    pub lag: Duration,
    pub file: Option<PathBuf>,
    pub entry: Option<String>,
    /// The blissdata scan key, when published to Redis.
    pub scan_key: Option<String>,
}

/// A running recording.
pub struct NexusRecording {
    subscriber: Subscriber<(ScanEvent, Instant)>,
    progress: Arc<Mutex<RecordProgress>>,
}

fn failed(err: impl std::error::Error + Send + Sync + 'static) -> pvloom_core::Error {
    pvloom_core::Error::Failed(Arc::new(err))
}

impl NexusRecording {
    /// Connect to every source, then record until [`Self::stop`]. With `redis`, the scan
    /// is also published there as blissdata publishes scans.
    pub fn start(
        runtime: &RuntimeHandle,
        spec: &RecordSpec,
        writer: WriterConfig,
        redis: Option<&str>,
    ) -> Result<NexusRecording, RecordError> {
        let recorder = Recorder::start(runtime, spec)?;
        let publisher = match redis {
            Some(url) => Some(ScanPublisher::connect(url).map_err(|e| RecordError::Redis(e.to_string()))?),
            None => None,
        };
        let progress = Arc::new(Mutex::new(RecordProgress::default()));
        let listener = {
            let progress = progress.clone();
            move |emitter: &Emitter<(ScanEvent, Instant)>| listen(recorder, &progress, emitter)
        };
        let consumer = {
            let progress = progress.clone();
            let mut writer = ScanWriter::new(writer);
            let mut publisher = publisher;
            move |(event, emitted): (ScanEvent, Instant)| -> pvloom_core::Result<()> {
                if let Some(publisher) = publisher.as_mut()
                    && let Some(key) = publisher.publish(&event).map_err(failed)?
                {
                    progress.lock().scan_key = Some(key);
                }
                let outcome = writer.handle(event).and_then(|()| writer.tick(Instant::now()));
                let mut progress = progress.lock();
                progress.points_written = writer.points_written();
                progress.lag = emitted.elapsed();
                if progress.file.is_none() {
                    progress.file = writer.file_path().map(|p| p.to_path_buf());
                    progress.entry = writer.entry_name().map(str::to_owned);
                }
                drop(progress);
                if let Err(err) = outcome {
                    let _ = writer.abort(&format!("writing the file failed: {err}"));
                    return Err(failed(err));
                }
                Ok(())
            }
        };
        let subscriber = Subscriber::new("pvloom record", Mode::Parallel { capacity: 256 }, listener, consumer);
        subscriber.start(true, None).map_err(|e| RecordError::Redis(e.to_string()))?;
        Ok(NexusRecording { subscriber, progress })
    }

    /// What was recorded so far.
    pub fn progress(&self) -> RecordProgress {
        self.progress.lock().clone()
    }

    /// ON while recording; OFF once stopped and closed; FAULT with [`Self::error`].
    pub fn state(&self) -> SubscriberState {
        self.subscriber.state()
    }

    pub fn error(&self) -> Option<pvloom_core::Error> {
        self.subscriber.error()
    }

    /// End the recording: the last points, seals, STOPPED and CLOSED are written, and the
    /// file is closed.
    pub fn stop(&self, timeout: Option<Duration>) -> pvloom_core::Result<()> {
        self.subscriber.stop(true, timeout)
    }
}

fn listen(
    mut recorder: Recorder,
    progress: &Mutex<RecordProgress>,
    emitter: &Emitter<(ScanEvent, Instant)>,
) -> pvloom_core::Result<()> {
    let note = |recorder: &Recorder| {
        let mut progress = progress.lock();
        progress.updates = recorder.stats().updates.load(Ordering::Relaxed);
        progress.dropped = recorder.stats().dropped.load(Ordering::Relaxed);
    };
    while !emitter.should_stop() {
        for event in recorder.next_events(Duration::from_millis(50)) {
            emitter.emit((event, Instant::now()))?;
        }
        note(&recorder);
    }
    note(&recorder);
    for event in recorder.finish() {
        emitter.emit((event, Instant::now()))?;
    }
    Ok(())
}
