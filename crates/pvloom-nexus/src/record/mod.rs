//! pvloom's own streams recorded as a scan: CA monitors and LDMS set updates become
//! [`ScanEvent`]s, so the NeXus writer (and the blissdata publisher) treat a recording
//! exactly as a BLISS scan.
//!
//! Every CA PV `P` gives two streams, `P:value` and `P:epoch` (the update's EPICS
//! timestamp as seconds since 1970); every LDMS set `S` gives `S:timestamp` (the
//! transaction's end) and one stream per metric, `S:<metric>`. Points are appended in the
//! order the updates arrive; the recording's start and stop are the scan's states.

mod ca;
mod ldms;
mod point;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use pvloom_core::RuntimeHandle;
use serde_json::json;

use crate::model::{ScanEvent, ScanIdentity, ScanMeta, ScanState, StreamDesc};
pub use ldms::LdmsSource;
use point::{Batcher, Sample};

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("CA: {0}")]
    Ca(#[from] pvloom_ca::client::CaError),
    #[error("LDMS {source_name}: {message}")]
    Ldms { source_name: String, message: String },
    #[error("LDMS source {0:?}: expected HOST:PORT/SET")]
    BadLdmsSource(String),
    #[error("nothing to record: give at least one CA PV or LDMS set")]
    Empty,
    #[error("blissdata publisher: {0}")]
    Redis(String),
}

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    pub ca: Vec<String>,
    pub ldms: Vec<LdmsSource>,
    /// How often LDMS sets are updated (an update that brings no new data is not a point).
    pub ldms_interval: Duration,
    /// The file the scan's info names (the NeXus writer's `filename`).
    pub filename: String,
    pub title: String,
    /// The scan number: the entry is `N.1`.
    pub number: u64,
    pub session: String,
    /// How long to wait for every PV and set to answer before recording starts.
    pub connect_timeout: Duration,
    /// The CA client's configuration; `None`: from the environment (`EPICS_CA_*`).
    pub ca_config: Option<pvloom_ca::client::ClientConfig>,
}

/// Counters shared with the callbacks.
#[derive(Default)]
pub struct RecordStats {
    /// Updates taken into the recording.
    pub updates: AtomicU64,
    /// Updates lost because the recording's queue was full (the writer fell behind).
    pub dropped: AtomicU64,
}

/// A running recording: its sources feed a bounded queue; [`Recorder::next_events`]
/// turns what arrived into `Data` events.
pub struct Recorder {
    meta: ScanMeta,
    rx: flume::Receiver<Vec<Sample>>,
    batcher: Batcher,
    stats: Arc<RecordStats>,
    started: Option<Vec<ScanEvent>>,
    _ca: Option<ca::CaRecording>,
    ldms: Vec<ldms::LdmsRecording>,
}

/// Updates that may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 1 << 18;

fn iso_now() -> String {
    chrono::DateTime::<chrono::Local>::from(SystemTime::now()).to_rfc3339()
}

impl Recorder {
    /// Connect to every source, learn its streams, and start recording.
    pub fn start(runtime: &RuntimeHandle, spec: &RecordSpec) -> Result<Recorder, RecordError> {
        if spec.ca.is_empty() && spec.ldms.is_empty() {
            return Err(RecordError::Empty);
        }
        let (tx, rx) = flume::bounded(QUEUE);
        let stats = Arc::new(RecordStats::default());
        let mut streams: Vec<StreamDesc> = Vec::new();
        let ca = if spec.ca.is_empty() {
            None
        } else {
            Some(ca::CaRecording::start(
                &spec.ca,
                spec.ca_config.clone(),
                spec.connect_timeout,
                &mut streams,
                tx.clone(),
                stats.clone(),
            )?)
        };
        let mut ldms_recordings = Vec::new();
        for source in &spec.ldms {
            ldms_recordings.push(ldms::LdmsRecording::start(
                runtime,
                source,
                spec.ldms_interval,
                spec.connect_timeout,
                &mut streams,
                tx.clone(),
                stats.clone(),
            )?);
        }
        let info = json!({
            "title": spec.title,
            "type": "pvloom record",
            "filename": spec.filename,
            "scan_nb": spec.number,
            "session_name": spec.session,
            "start_time": iso_now(),
            "npoints": 0,
            "positioners": {},
            "sources": { "ca": spec.ca, "ldms": spec.ldms.iter().map(|s| s.to_string()).collect::<Vec<_>>() },
        });
        let meta = ScanMeta {
            key: format!("pvloom:record:{}", spec.title),
            identity: ScanIdentity {
                name: spec.title.clone(),
                number: spec.number,
                session: spec.session.clone(),
                ..ScanIdentity::default()
            },
            info,
            streams,
        };
        let batcher = Batcher::new(&meta.streams);
        let started = vec![
            ScanEvent::Begin(Box::new(meta.clone())),
            ScanEvent::State(ScanState::Prepared),
            ScanEvent::State(ScanState::Started),
        ];
        Ok(Recorder { meta, rx, batcher, stats, started: Some(started), _ca: ca, ldms: ldms_recordings })
    }

    /// The scan as recorded.
    pub fn meta(&self) -> &ScanMeta {
        &self.meta
    }

    /// Updates taken and dropped so far.
    pub fn stats(&self) -> &RecordStats {
        &self.stats
    }

    /// Points per stream so far.
    pub fn points(&self) -> &[u64] {
        self.batcher.counts()
    }

    /// Waits up to `timeout` for updates; returns the scan's first events on the first
    /// call, then one `Data` event per stream that got points.
    pub fn next_events(&mut self, timeout: Duration) -> Vec<ScanEvent> {
        if let Some(started) = self.started.take() {
            return started;
        }
        if let Ok(update) = self.rx.recv_timeout(timeout) {
            update.into_iter().for_each(|s| self.batcher.push(s));
            // Whatever else is waiting goes in the same batch.
            for update in self.rx.try_iter().take(QUEUE) {
                update.into_iter().for_each(|s| self.batcher.push(s));
            }
        }
        self.batcher.drain()
    }

    /// Stop the sources and end the scan: the last points, a seal per stream, the final
    /// info (end_time, npoints), STOPPED and CLOSED.
    pub fn finish(mut self) -> Vec<ScanEvent> {
        self._ca = None;
        for recording in self.ldms.drain(..) {
            recording.stop();
        }
        let mut events = self.started.take().unwrap_or_default();
        for update in self.rx.try_iter() {
            update.into_iter().for_each(|s| self.batcher.push(s));
        }
        events.extend(self.batcher.drain());
        events.push(ScanEvent::State(ScanState::Stopped));
        for (stream, &total) in self.batcher.counts().iter().enumerate() {
            events.push(ScanEvent::Sealed { stream, total });
        }
        let mut info = self.meta.info.clone();
        info["end_time"] = json!(iso_now());
        info["end_reason"] = json!("SUCCESS");
        info["npoints"] = json!(self.batcher.counts().iter().copied().max().unwrap_or(0));
        info["dropped_updates"] = json!(self.stats.dropped.load(Ordering::Relaxed));
        events.push(ScanEvent::Info(info));
        events.push(ScanEvent::State(ScanState::Closed));
        events
    }
}
