//! `pvloom.nexus`'s native half: the NeXus writer services of `pvloom-nexus` — a scan
//! writer per blissdata scan, the session writer, and recordings of CA PVs and LDMS sets.
//! Every blocking call releases the GIL and takes a timeout.

use std::path::PathBuf;
use std::time::Duration;

use pvloom_core::Runtime;
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::nexus::WriterConfig;
use pvloom_nexus::record::{LdmsSource, RecordSpec};
use pvloom_nexus::service::{
    FinishedScan, NexusRecording, NexusScanWriter, NexusSessionWriter, RecordProgress, ScanProgress, ScanWriterOptions,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{PvloomError, to_py};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyScanWriter>()?;
    m.add_class::<PySessionWriter>()?;
    m.add_class::<PyRecording>()?;
    Ok(())
}

fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| PyValueError::new_err(format!("{what} must be >= 0 seconds")))
        })
        .transpose()
}

/// Runs a blocking call with its timeout (seconds, None: no limit) and the GIL released.
fn released(
    py: Python<'_>,
    timeout: Option<f64>,
    call: impl FnOnce(Option<Duration>) -> pvloom_core::Result<()> + Send,
) -> PyResult<()> {
    let timeout = seconds(timeout, "timeout")?;
    py.detach(|| call(timeout)).map_err(to_py)
}

fn state_name(state: SubscriberState) -> &'static str {
    state.name()
}

fn options(
    directory: PathBuf,
    end_timeout: f64,
    flush_interval: f64,
    swmr: bool,
    parallel: bool,
) -> PyResult<ScanWriterOptions> {
    let defaults = ScanWriterOptions::default();
    Ok(ScanWriterOptions {
        writer: WriterConfig {
            flush_interval: seconds(Some(flush_interval), "flush_interval")?.unwrap_or_default(),
            swmr,
            default_dir: directory,
            creator: format!("pvloom {}", env!("CARGO_PKG_VERSION")),
        },
        end_timeout: seconds(Some(end_timeout), "end_timeout")?.unwrap_or_default(),
        mode: if parallel { defaults.mode } else { pvloom_core::subscriber::Mode::Sequential },
        ..defaults
    })
}

fn scan_progress<'py>(py: Python<'py>, p: &ScanProgress) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("points_written", p.points_written)?;
    d.set_item("file", p.file.as_ref().map(|f| f.display().to_string()))?;
    d.set_item("entry", p.entry.as_deref())?;
    d.set_item("entries", p.entries.clone())?;
    d.set_item("fault", p.fault.as_deref())?;
    d.set_item("closed", p.closed)?;
    Ok(d)
}

fn finished_scan<'py>(py: Python<'py>, s: &FinishedScan) -> PyResult<Bound<'py, PyDict>> {
    let d = scan_progress(py, &s.progress)?;
    d.set_item("key", &s.key)?;
    d.set_item("state", state_name(s.state))?;
    d.set_item("error", s.error.as_deref())?;
    Ok(d)
}

fn record_progress<'py>(py: Python<'py>, p: &RecordProgress) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("points_written", p.points_written)?;
    d.set_item("updates", p.updates)?;
    d.set_item("dropped", p.dropped)?;
    d.set_item("lag", p.lag.as_secs_f64())?;
    d.set_item("file", p.file.as_ref().map(|f| f.display().to_string()))?;
    d.set_item("entry", p.entry.as_deref())?;
    d.set_item("scan_key", p.scan_key.as_deref())?;
    Ok(d)
}

/// One blissdata scan written as NeXus while it runs: a Subscriber (INIT/ON/OFF/FAULT)
/// whose listener reads Redis and whose consumer writes HDF5 (in parallel by default).
#[pyclass(name = "ScanWriter", module = "pvloom._pvloom", frozen)]
pub struct PyScanWriter {
    inner: NexusScanWriter,
}

#[pymethods]
impl PyScanWriter {
    #[new]
    #[pyo3(signature = (redis_url, scan_key, directory=".".into(), end_timeout=60.0, flush_interval=0.5, swmr=true, parallel=true))]
    fn new(
        redis_url: &str,
        scan_key: &str,
        directory: PathBuf,
        end_timeout: f64,
        flush_interval: f64,
        swmr: bool,
        parallel: bool,
    ) -> PyResult<Self> {
        let options = options(directory, end_timeout, flush_interval, swmr, parallel)?;
        Ok(PyScanWriter { inner: NexusScanWriter::new(redis_url, scan_key, options) })
    }

    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// "INIT", "ON", "OFF" or "FAULT".
    #[getter]
    fn state(&self) -> &'static str {
        state_name(self.inner.state())
    }

    /// The cause of a FAULT, or None.
    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.error().map(|e| e.to_string())
    }

    /// Seconds ON so far (or in all), None before start.
    #[getter]
    fn duration(&self) -> Option<f64> {
        self.inner.duration().map(|d| d.as_secs_f64())
    }

    /// points_written, file, entry (the first), entries (one per subscan), fault, closed.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        scan_progress(py, &self.inner.progress())
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.start()).map_err(to_py)
    }

    #[pyo3(signature = (wait=true, timeout=None))]
    fn stop(&self, py: Python<'_>, wait: bool, timeout: Option<f64>) -> PyResult<()> {
        released(py, timeout, |timeout| self.inner.stop(wait, timeout))
    }

    #[pyo3(signature = (wait=true, timeout=None))]
    fn kill(&self, py: Python<'_>, wait: bool, timeout: Option<f64>) -> PyResult<()> {
        released(py, timeout, |timeout| self.inner.kill(wait, timeout))
    }

    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        released(py, timeout, |timeout| self.inner.join(timeout))
    }

    fn done(&self) -> bool {
        self.inner.done()
    }
}

/// The session writer service: one ScanWriter per new scan of `session` (None: every
/// session); finished writers are purged and listed by `finished()`.
#[pyclass(name = "SessionWriter", module = "pvloom._pvloom", frozen)]
pub struct PySessionWriter {
    inner: NexusSessionWriter,
}

#[pymethods]
impl PySessionWriter {
    #[new]
    #[pyo3(signature = (redis_url, session=None, directory=".".into(), end_timeout=60.0, flush_interval=0.5, swmr=true))]
    fn new(
        redis_url: &str,
        session: Option<&str>,
        directory: PathBuf,
        end_timeout: f64,
        flush_interval: f64,
        swmr: bool,
    ) -> PyResult<Self> {
        let options = options(directory, end_timeout, flush_interval, swmr, true)?;
        Ok(PySessionWriter { inner: NexusSessionWriter::new(redis_url, session, options) })
    }

    #[getter]
    fn state(&self) -> &'static str {
        state_name(self.inner.state())
    }

    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.error().map(|e| e.to_string())
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.start()).map_err(to_py)
    }

    /// Stop watching and stop every running scan writer.
    #[pyo3(signature = (timeout=None))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        released(py, timeout, |timeout| self.inner.stop(timeout))
    }

    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        released(py, timeout, |timeout| self.inner.join(timeout))
    }

    /// The scans being written: a list of (key, progress dict).
    fn running<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyDict>)>> {
        let running = py.detach(|| self.inner.running());
        running.iter().map(|(k, p)| Ok((k.clone(), scan_progress(py, p)?))).collect()
    }

    /// The scans that ended, oldest first: dicts with key, state, error and progress.
    fn finished<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let finished = py.detach(|| self.inner.finished());
        finished.iter().map(|s| finished_scan(py, s)).collect()
    }
}

/// CA PVs and LDMS sets recorded into a NeXus file as one scan (and, with `redis_url`,
/// published as a blissdata scan). Recording starts at construction.
#[pyclass(name = "Recording", module = "pvloom._pvloom", frozen)]
pub struct PyRecording {
    inner: NexusRecording,
    _runtime: Runtime,
}

#[pymethods]
impl PyRecording {
    #[new]
    #[pyo3(signature = (out, ca=Vec::new(), ldms=Vec::new(), title="pvloom record".to_owned(), number=1, session="pvloom".to_owned(), ldms_interval=1.0, connect_timeout=5.0, redis_url=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        out: PathBuf,
        ca: Vec<String>,
        ldms: Vec<String>,
        title: String,
        number: u64,
        session: String,
        ldms_interval: f64,
        connect_timeout: f64,
        redis_url: Option<String>,
    ) -> PyResult<Self> {
        let ldms = ldms
            .iter()
            .map(|s| s.parse::<LdmsSource>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let spec = RecordSpec {
            ca,
            ldms,
            ldms_interval: seconds(Some(ldms_interval), "ldms_interval")?.unwrap_or_default(),
            filename: out.display().to_string(),
            title,
            number,
            session,
            connect_timeout: seconds(Some(connect_timeout), "connect_timeout")?.unwrap_or_default(),
            ca_config: None,
        };
        let writer = WriterConfig {
            default_dir: out.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")),
            creator: format!("pvloom {}", env!("CARGO_PKG_VERSION")),
            ..WriterConfig::default()
        };
        py.detach(move || {
            let runtime = Runtime::new().map_err(|e| e.to_string())?;
            let inner = NexusRecording::start(&runtime.handle(), &spec, writer, redis_url.as_deref())
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(PyRecording { inner, _runtime: runtime })
        })
        .map_err(PvloomError::new_err)
    }

    #[getter]
    fn state(&self) -> &'static str {
        state_name(self.inner.state())
    }

    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.error().map(|e| e.to_string())
    }

    /// points_written, updates, dropped, lag (s), file, entry, scan_key.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        record_progress(py, &self.inner.progress())
    }

    /// End the recording: seals, STOPPED, CLOSED, the file closed.
    #[pyo3(signature = (timeout=None))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        released(py, timeout, |timeout| self.inner.stop(timeout))
    }
}
