//! [`ScanWriter`]: one scan's events in, one NXentry out.

use std::ffi::{c_char, c_void};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::NexusError;
use super::h5::{self, Id};
use super::h5map::Mapping;
use super::layout::{self, Kind, Layout};
use super::points;
use super::registry::Claim;
use super::structure::{self, Created};
use crate::model::{Encoding, Points, ScanEvent, ScanMeta, ScanState};

/// How the writer writes.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Points are flushed to the file at least this often (readers see them then).
    pub flush_interval: Duration,
    /// Write in SWMR mode, so readers can follow a running scan.
    pub swmr: bool,
    /// Where a scan whose info names no `filename` goes: `<default_dir>/<session or name>.h5`.
    pub default_dir: PathBuf,
    /// The root's `creator` attribute.
    pub creator: String,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            flush_interval: Duration::from_millis(500),
            swmr: true,
            default_dir: PathBuf::from("."),
            creator: format!("pvloom-nexus {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

struct Sink {
    created: Created,
    encoding: Encoding,
    kind: Kind,
    /// Points along axis 0.
    len: u64,
    /// Current extent of the other axes (variable-shape streams grow them).
    inner: Vec<usize>,
}

impl Sink {
    fn new(created: Created, encoding: Encoding, kind: Kind) -> Sink {
        let inner = match &kind {
            Kind::Fixed(s) => s.clone(),
            Kind::Variable(r) => vec![0; *r],
            Kind::Json => vec![],
        };
        Sink { created, encoding, kind, len: 0, inner }
    }
}

/// The NXentries of a scan (open), their names, and their stream datasets.
type Entries = (Vec<Id>, Vec<String>, Vec<Sink>);

/// A file whose writes failed, with what of it was open and its claim: held for the life
/// of the process, never closed (see [`ScanWriter::finish`]).
struct FailedFile {
    _file: Id,
    _entries: Vec<Id>,
    _sinks: Option<Vec<Sink>>,
    _claim: Claim,
}

static FAILED_FILES: parking_lot::Mutex<Vec<FailedFile>> = parking_lot::Mutex::new(Vec::new());

struct Scan {
    file: Option<Id>,
    /// One NXentry per subscan (one for most scans), in name order.
    entries: Vec<Id>,
    /// Every stream dataset.
    sinks: Vec<Sink>,
    /// Indexed by the scan's stream index: its datasets in `sinks` (one in this crate's
    /// layout; none or several under an h5maps mapping).
    routes: Vec<Vec<usize>>,
    /// The h5maps mapping written at Begin, and the file name it is mapped under.
    mapping: Option<(Mapping, PathBuf)>,
    info: Value,
    swmr_on: bool,
    dirty: bool,
    last_flush: Instant,
    _claim: Claim,
}

/// Writes one scan as one NXentry, or one per subscan (see the module documentation for
/// the layout).
pub struct ScanWriter {
    config: WriterConfig,
    scan: Option<Scan>,
    path: Option<PathBuf>,
    entries: Vec<String>,
    points: u64,
    closed: bool,
}

impl ScanWriter {
    pub fn new(config: WriterConfig) -> ScanWriter {
        ScanWriter { config, scan: None, path: None, entries: Vec::new(), points: 0, closed: false }
    }

    /// Consumes one event.
    pub fn handle(&mut self, event: ScanEvent) -> Result<(), NexusError> {
        let _g = h5::lock();
        if self.closed {
            return Err(NexusError::Event("the scan is already closed".into()));
        }
        match event {
            ScanEvent::Begin(meta) => self.begin(*meta),
            ScanEvent::State(ScanState::Closed) => {
                let reason =
                    self.scan()?.info.get("end_reason").and_then(Value::as_str).unwrap_or("SUCCESS").to_owned();
                self.finish(&reason)
            }
            ScanEvent::State(_) => self.scan().map(|_| ()),
            ScanEvent::Info(info) => {
                self.scan_mut()?.info = info;
                Ok(())
            }
            ScanEvent::Data { stream, first_index, points } => {
                self.data(stream, first_index, points)?;
                self.tick(Instant::now())
            }
            ScanEvent::Sealed { stream, total } => {
                let scan = self.scan_mut()?;
                let route = scan.routes.get(stream).ok_or_else(|| NexusError::Event(format!("no stream {stream}")))?;
                if let Some(sink) = route.iter().map(|&i| &scan.sinks[i]).find(|s| s.len != total) {
                    tracing::warn!(
                        stream,
                        total,
                        written = sink.len,
                        "stream sealed with a different point count than written"
                    );
                }
                Ok(())
            }
            ScanEvent::Fault(fault) => self.finish(&format!("FAILURE: {}", fault.reason)),
        }
    }

    /// Flushes if the flush interval passed since the last flush.
    pub fn tick(&mut self, now: Instant) -> Result<(), NexusError> {
        let _g = h5::lock();
        let interval = self.config.flush_interval;
        let Some(scan) = self.scan.as_mut() else { return Ok(()) };
        if scan.dirty && now.saturating_duration_since(scan.last_flush) >= interval {
            Self::flush(scan)?;
        }
        Ok(())
    }

    /// Closes the scan as failed with `reason`, flushing what was written. Idempotent.
    pub fn abort(&mut self, reason: &str) -> Result<(), NexusError> {
        let _g = h5::lock();
        if self.closed || self.scan.is_none() {
            self.closed = true;
            return Ok(());
        }
        self.finish(&format!("FAILURE: {reason}"))
    }

    /// Points written so far, all streams together.
    pub fn points_written(&self) -> u64 {
        self.points
    }

    pub fn file_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The scan's first NXentry (`N.1` for a new scan number).
    pub fn entry_name(&self) -> Option<&str> {
        self.entries.first().map(String::as_str)
    }

    /// Every NXentry of the scan: one per subscan (`N.1`, `N.2`, …), in order.
    pub fn entry_names(&self) -> &[String] {
        &self.entries
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn scan(&self) -> Result<&Scan, NexusError> {
        self.scan.as_ref().ok_or_else(|| NexusError::Event("no Begin before this event".into()))
    }

    fn scan_mut(&mut self) -> Result<&mut Scan, NexusError> {
        self.scan.as_mut().ok_or_else(|| NexusError::Event("no Begin before this event".into()))
    }

    fn target(&self, meta: &ScanMeta) -> PathBuf {
        if let Some(f) = meta.info.get("filename").and_then(Value::as_str).filter(|f| !f.is_empty()) {
            return PathBuf::from(f);
        }
        // No `filename`: the one file the scan's h5maps maps, when it maps exactly one.
        if let Some(maps) = meta.info.get("h5maps").and_then(Value::as_object)
            && maps.len() == 1
            && let Some(f) = maps.keys().next().filter(|f| !f.is_empty())
        {
            return PathBuf::from(f);
        }
        let stem = if meta.identity.session.is_empty() { &meta.identity.name } else { &meta.identity.session };
        let stem = if stem.is_empty() { "scan" } else { stem };
        self.config.default_dir.join(format!("{}.h5", layout::clean(stem)))
    }

    fn begin(&mut self, meta: ScanMeta) -> Result<(), NexusError> {
        if self.scan.is_some() {
            return Err(NexusError::Event("a second Begin for one writer".into()));
        }
        let wanted = self.target(&meta);
        // A mapping is checked whole before the file is touched: a malformed one fails the
        // scan with nothing written.
        let mapping = Mapping::of(&meta.info, &wanted)?;
        if let Some(m) = &mapping {
            m.check_streams(&meta)?;
        }
        if let Some(dir) = wanted.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| NexusError::Dir { path: dir.to_owned(), source })?;
        }
        let stem = wanted.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let alt = wanted.with_file_name(format!("{stem}_{}.h5", meta.identity.number));
        let claim_alt = |why: &str| {
            tracing::warn!(file = %wanted.display(), instead = %alt.display(), why, "writing this scan to a sibling file");
            Claim::try_claim(&alt).ok_or_else(|| {
                NexusError::Event(format!("{} ({why}) and {} are both in use", wanted.display(), alt.display()))
            })
        };
        let (path, claim, opened) = match Claim::try_claim(&wanted) {
            Some(c) => match open_or_create(&wanted) {
                Ok(opened) => (wanted.clone(), c, opened),
                // An existing file that will not open for writing (e.g. still marked by a
                // killed SWMR writer, or not HDF5): leave it alone.
                Err(e) => {
                    let c = claim_alt(&e.to_string())?;
                    (alt.clone(), c, open_or_create(&alt)?)
                }
            },
            None => {
                let c = claim_alt("file in use by another scan of this process")?;
                (alt.clone(), c, open_or_create(&alt)?)
            }
        };
        let (file, existing) = opened;
        let (entries, entry_names, sinks, routes) = match &mapping {
            Some(m) => {
                let (sinks, routes) = mapped_sinks(m, &file, &meta)?;
                // The writer's own root attributes, as blisswriter stamps its files.
                if !h5::attr_exists(&file, "HDF5_Version") {
                    h5::attr_str(&file, "HDF5_Version", &h5::lib_version())?;
                }
                if !h5::attr_exists(&file, "file_time") {
                    h5::attr_str(&file, "file_time", &structure::now_iso())?;
                }
                h5::attr_str(&file, "file_update_time", &structure::now_iso())?;
                (Vec::new(), m.entries(), sinks, routes)
            }
            None => {
                let (entries, entry_names, sinks) = self.create_entries(&file, &meta)?;
                // BLISS's writer marks each subscan default up to the root as it finishes them in
                // order, so the root's `default` ends on the last subscan.
                let default_entry = entry_names.last().cloned().unwrap_or_default();
                structure::root(&file, &path, &self.config.creator, &default_entry, !existing)?;
                let routes = (0..sinks.len()).map(|i| vec![i]).collect();
                (entries, entry_names, sinks, routes)
            }
        };
        h5::flush(&file)?;
        if self.config.swmr {
            h5::start_swmr(&file)?;
        }
        tracing::info!(
            file = %path.display(), entries = ?entry_names, swmr = self.config.swmr, h5maps = mapping.is_some(),
            "scan entry created"
        );
        self.path = Some(path);
        self.entries = entry_names;
        self.scan = Some(Scan {
            file: Some(file),
            entries,
            sinks,
            routes,
            mapping: mapping.map(|m| (m, wanted)),
            info: meta.info,
            swmr_on: self.config.swmr,
            dirty: false,
            last_flush: Instant::now(),
            _claim: claim,
        });
        Ok(())
    }

    /// The entries of this crate's layout: one per subscan, each with its streams.
    fn create_entries(&self, file: &Id, meta: &ScanMeta) -> Result<Entries, NexusError> {
        let mut slots: Vec<Option<Sink>> = meta.streams.iter().map(|_| None).collect();
        let mut entries = Vec::new();
        let mut entry_names = Vec::new();
        for sub in layout::subscans(meta) {
            // Each subscan takes the next free `N.k`: N.1, N.2, … in a file without scan N.
            let entry_name = structure::entry_name(file, meta.identity.number);
            let sub_meta = layout::subscan_meta(meta, &sub);
            let plan: Layout = layout::plan_subscan(&sub_meta, &sub);
            let entry = h5::create_group(file, &entry_name)?;
            let created = structure::create_entry(&entry, &sub_meta, &plan, &meta.info)?;
            for ((created, place), (&global, desc)) in
                created.into_iter().zip(plan.streams).zip(sub.streams.iter().zip(&sub_meta.streams))
            {
                slots[global] = Some(Sink::new(created, desc.encoding.clone(), place.kind));
            }
            entries.push(entry);
            entry_names.push(entry_name);
        }
        let sinks = slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| NexusError::Event(format!("stream {i} is in no entry"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((entries, entry_names, sinks))
    }

    fn data(&mut self, stream: usize, first: u64, batch: Points) -> Result<(), NexusError> {
        let scan = self.scan_mut()?;
        let route = scan.routes.get(stream).ok_or_else(|| NexusError::Event(format!("no stream {stream}")))?;
        let n = batch.len() as u64;
        if n == 0 || route.is_empty() {
            // A stream the h5maps mapping does not place is not written.
            return Ok(());
        }
        for &i in route {
            append(&mut scan.sinks[i], stream, first, &batch)?;
        }
        scan.dirty = true;
        self.points += n;
        Ok(())
    }

    fn flush(scan: &mut Scan) -> Result<(), NexusError> {
        if let Some(file) = &scan.file {
            if scan.swmr_on {
                for s in &scan.sinks {
                    h5::flush_dataset(&s.created.dataset)?;
                }
            }
            h5::flush(file)?;
        }
        scan.dirty = false;
        scan.last_flush = Instant::now();
        Ok(())
    }

    /// Ends the entry: flush, write the end over its placeholders (in place, so SWMR
    /// readers keep following), flush, close. The writer is closed afterwards even if
    /// this fails.
    fn finish(&mut self, reason: &str) -> Result<(), NexusError> {
        self.closed = true;
        let Some(mut scan) = self.scan.take() else { return Ok(()) };
        let path = self.path.clone().unwrap_or_default();
        let entry_name = self.entries.join(",");
        let flushed = Self::flush(&mut scan);
        // A dataset whose data could not be flushed fails its close half way (it flushes
        // again), leaving a torn object in HDF5's tables that the next file's
        // H5Fstart_swmr_write walked into and crashed on: after a failed flush, nothing of
        // this file is closed (see the end of this function).
        let sinks = std::mem::take(&mut scan.sinks);
        let kept_sinks = if flushed.is_err() { Some(sinks) } else { None };
        let entries = std::mem::take(&mut scan.entries);
        let file = scan.file.take().expect("an open scan has its file");
        // Each step is tried even if an earlier one failed (a full disk may still take the
        // few bytes of the end); the first error is the one returned.
        let mut ended = Ok(());
        let mut late_positions = Vec::new();
        // Under an h5maps mapping `entries` is empty: the end is the end mapping, applied below.
        for (entry, name) in entries.iter().zip(&self.entries) {
            match structure::write_end(entry, &scan.info, reason) {
                Ok(late) if !late.is_empty() => late_positions.push((name.clone(), late)),
                Ok(_) => {}
                Err(e) => ended = ended.and(Err(e)),
            }
        }
        let flushed_end = h5::flush(&file);
        let write_failed = flushed.is_err() || ended.is_err() || flushed_end.is_err();
        let closed = if write_failed {
            // HDF5's close of a file it could not flush fails half way through tearing the
            // file down (the truncate to its allocated end fails again), as a dataset's
            // does: such a file, its groups and datasets stay open, untouched, and claimed
            // (later scans of this process go to a sibling file); what reached the disk
            // before the failure is what a reader sees.
            tracing::warn!(file = %path.display(), "writes to the file failed: it is left open and unused");
            FAILED_FILES.lock().push(FailedFile {
                _file: file,
                _entries: entries,
                _sinks: kept_sinks,
                _claim: scan._claim,
            });
            Ok(())
        } else {
            drop((entries, kept_sinks));
            h5::close_file(file).and_then(|()| match &scan.mapping {
                Some((begin, mapped_as)) => update_mapping(&path, begin, mapped_as, &scan.info),
                None => add_late_positions(&path, &scan.info, &late_positions),
            })
        };
        let result = flushed.and(ended).and(flushed_end).and(closed);
        match &result {
            Ok(()) => {
                tracing::info!(file = %path.display(), entry = %entry_name, reason, points = self.points, "scan entry closed")
            }
            Err(e) => {
                tracing::error!(file = %path.display(), entry = %entry_name, error = %e, "closing the scan entry failed")
            }
        }
        result
    }
}

/// Appends points `first..` of `stream` to one of its datasets.
fn append(sink: &mut Sink, stream: usize, first: u64, batch: &Points) -> Result<(), NexusError> {
    let n = batch.len() as u64;
    let bad = |m: String| NexusError::Event(format!("stream {stream}: {m}"));
    let dset = &sink.created.dataset;
    let t = &sink.created.h5_type;
    match (&sink.kind, &batch) {
        (Kind::Fixed(shape), Points::Fixed { count, bytes }) => {
            points::check_fixed(*count, bytes, sink.encoding.point_size().unwrap_or(0)).map_err(bad)?;
            let end = sink.len.max(first + n);
            let mut dims = vec![end];
            dims.extend(shape.iter().map(|&d| d as u64));
            if end != sink.len {
                h5::set_extent(dset, &dims)?;
            }
            let mut start = vec![first];
            start.extend(shape.iter().map(|_| 0));
            dims[0] = n;
            h5::write_block(dset, t, &start, &dims, bytes.as_ptr() as *const c_void)?;
            sink.len = end;
        }
        (Kind::Variable(rank), Points::Variable(pts)) => {
            let Encoding::Numeric { dtype, .. } = &sink.encoding else { unreachable!("variable streams are numeric") };
            let elem = dtype.element.size();
            let mut block = vec![0usize; *rank];
            for (shape, bytes) in pts {
                points::check_variable(shape, bytes, *rank, elem).map_err(bad)?;
                block = points::grow_shape(&block, shape);
            }
            let grown = points::grow_shape(&sink.inner, &block);
            let end = sink.len.max(first + n);
            if end != sink.len || grown != sink.inner {
                let mut dims = vec![end];
                dims.extend(grown.iter().map(|&d| d as u64));
                h5::set_extent(dset, &dims)?;
                if let Some(s) = &sink.created.shapes {
                    h5::set_extent(s, &[end, *rank as u64])?;
                }
            }
            sink.inner = grown;
            // One block for the batch, each point padded to the batch's largest shape.
            let fill = super::dtype::fill_value(*dtype);
            let mut buf = Vec::new();
            let mut shapes = Vec::with_capacity(pts.len() * rank);
            for (shape, bytes) in pts {
                buf.extend(points::pad_point(bytes, shape, &block, elem, &fill));
                shapes.extend(shape.iter().map(|&d| d as i64));
            }
            if block.iter().all(|&d| d > 0) {
                let mut count = vec![n];
                count.extend(block.iter().map(|&d| d as u64));
                let mut start = vec![first];
                start.extend(block.iter().map(|_| 0));
                h5::write_block(dset, t, &start, &count, buf.as_ptr() as *const c_void)?;
            }
            if let Some(s) = &sink.created.shapes
                && *rank > 0
            {
                let it = super::dtype::h5_type(crate::model::Dtype::little(crate::model::ElementType::I64))?;
                let le: Vec<u8> = shapes.iter().flat_map(|v| v.to_le_bytes()).collect();
                h5::write_block(s, &it, &[first, 0], &[n, *rank as u64], le.as_ptr() as *const c_void)?;
            }
            sink.len = end;
        }
        (Kind::Json, Points::Json(values)) => {
            let end = sink.len.max(first + n);
            if end != sink.len {
                h5::set_extent(dset, &[end])?;
            }
            let texts: Vec<_> = values.iter().map(|v| h5::cstr(&points::json_text(v))).collect();
            let ptrs: Vec<*const c_char> = texts.iter().map(|c| c.as_ptr()).collect();
            h5::write_block(dset, t, &[first], &[n], ptrs.as_ptr() as *const c_void)?;
            sink.len = end;
        }
        (kind, _) => return Err(bad(format!("points do not match the stream's encoding ({kind:?})"))),
    }
    Ok(())
}

/// Writes an h5maps mapping's tree; returns its stream datasets and, per stream, which
/// of them it feeds.
fn mapped_sinks(m: &Mapping, file: &Id, meta: &ScanMeta) -> Result<(Vec<Sink>, Vec<Vec<usize>>), NexusError> {
    let mut routes = vec![Vec::new(); meta.streams.len()];
    let mut sinks = Vec::new();
    for s in m.write(file, meta)? {
        routes[s.stream].push(sinks.len());
        sinks.push(Sink::new(s.created, meta.streams[s.stream].encoding.clone(), s.kind));
    }
    for (desc, r) in meta.streams.iter().zip(&routes) {
        if r.is_empty() {
            tracing::info!(stream = %desc.name, "h5maps: stream not in the file's mapping, not written");
        }
    }
    Ok((sinks, routes))
}

/// The mapping BLISS regenerates at the end, applied in the closed file opened again
/// (SWMR mode allows no new objects), as blisswriter applies it.
fn update_mapping(path: &Path, begin: &Mapping, mapped_as: &Path, info: &Value) -> Result<(), NexusError> {
    let Some(end) = Mapping::of(info, mapped_as)? else { return Ok(()) };
    if &end == begin {
        return Ok(());
    }
    tracing::info!(file = %path.display(), "h5maps: the end mapping differs: applied after SWMR");
    let file = h5::open_file(path, false)?;
    let updated =
        begin.update(&end, &file).and_then(|()| h5::attr_str(&file, "file_update_time", &structure::now_iso()));
    updated.and(h5::close_file(file))
}

/// Motors first seen in the end positions: SWMR mode allows no new objects, so the
/// closed file is opened again (as a later scan appending to it is) to add them.
fn add_late_positions(path: &Path, info: &serde_json::Value, late: &[(String, Vec<String>)]) -> Result<(), NexusError> {
    if late.is_empty() {
        return Ok(());
    }
    let file = h5::open_file(path, false)?;
    let mut added = Ok(());
    for (entry, motors) in late {
        tracing::info!(entry, ?motors, "end positions of motors not known at the start added after SWMR");
        added = added.and(h5::open_group(&file, entry).and_then(|g| structure::add_late_positions(&g, info, motors)));
    }
    added.and(h5::close_file(file))
}

/// Opens an existing HDF5 file read-write, or creates a new one; `true` if it existed.
/// An existing file that is not HDF5 is an error (never truncated).
fn open_or_create(path: &Path) -> Result<(Id, bool), NexusError> {
    if path.exists() {
        let name = h5::cstr(&path.to_string_lossy());
        if unsafe { hdf5_metno_sys::h5f::H5Fis_hdf5(name.as_ptr()) } <= 0 {
            return Err(NexusError::Event(format!("{} exists and is not an HDF5 file", path.display())));
        }
        Ok((h5::open_file(path, false)?, true))
    } else {
        Ok((h5::open_file(path, true)?, false))
    }
}

impl Drop for ScanWriter {
    fn drop(&mut self) {
        if !self.closed
            && self.scan.is_some()
            && let Err(e) = self.abort("writer dropped before the scan ended")
        {
            tracing::error!(error = %e, "closing the scan entry on drop failed");
        }
    }
}
