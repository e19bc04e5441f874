//! Creating an entry's whole structure at Begin (SWMR forbids new objects later), and its
//! end-of-scan part once SWMR is over.

use serde_json::Value;

use super::dtype::h5_type;
use super::error::NexusError;
use super::h5::{self, Id};
use super::layout::{Kind, Layout};
use crate::model::{Dtype, ElementType, Encoding, ScanMeta};

/// The NeXus version the layout follows.
pub const NEXUS_VERSION: &str = "v2020.10";

/// `end_reason` while the scan runs (what a killed writer leaves).
pub const RUNNING: &str = "RUNNING";

pub(crate) fn group(loc: &Id, name: &str, class: &str) -> Result<Id, NexusError> {
    let g = if h5::exists(loc, name) { h5::open_group(loc, name)? } else { h5::create_group(loc, name)? };
    h5::attr_str(&g, "NX_class", class)?;
    Ok(g)
}

fn f64_type() -> Result<Id, NexusError> {
    h5_type(Dtype::little(ElementType::F64))
}

fn i64_type() -> Result<Id, NexusError> {
    h5_type(Dtype::little(ElementType::I64))
}

/// A JSON value as a scalar dataset: numbers as float64, booleans and strings as given,
/// anything else as its JSON text.
pub(crate) fn value_dataset(loc: &Id, name: &str, v: &Value) -> Result<Id, NexusError> {
    match v {
        Value::Number(n) if n.is_i64() => {
            h5::dataset_raw(loc, name, &i64_type()?, &[], &n.as_i64().unwrap_or(0).to_le_bytes())
        }
        Value::Number(n) => {
            h5::dataset_raw(loc, name, &f64_type()?, &[], &n.as_f64().unwrap_or(f64::NAN).to_le_bytes())
        }
        Value::Null => h5::dataset_raw(loc, name, &f64_type()?, &[], &f64::NAN.to_le_bytes()),
        Value::String(s) => h5::dataset_str(loc, name, s),
        other => h5::dataset_str(loc, name, &other.to_string()),
    }
}

/// Root attributes of a new file (or of one a scan appends to: `default` moves to the new
/// entry, `file_time` to now).
pub(crate) fn root(file: &Id, path: &std::path::Path, creator: &str, entry: &str, new: bool) -> Result<(), NexusError> {
    if new {
        h5::attr_str(file, "NX_class", "NXroot")?;
        h5::attr_str(file, "creator", creator)?;
        h5::attr_str(file, "file_name", &path.to_string_lossy())?;
        h5::attr_str(file, "HDF5_Version", &h5::lib_version())?;
        h5::attr_str(file, "NeXus_version", NEXUS_VERSION)?;
    }
    h5::attr_str(file, "file_time", &now_iso())?;
    h5::attr_str(file, "default", entry)
}

pub(crate) fn now_iso() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// The first free entry name `N.k`, k from 1.
pub(crate) fn entry_name(file: &Id, number: u64) -> String {
    (1u64..).map(|k| format!("{number}.{k}")).find(|n| !h5::exists(file, n)).expect("a free name")
}

/// The datasets a stream is written to.
pub(crate) struct Created {
    pub dataset: Id,
    /// Per-point shapes of a variable-shape stream.
    pub shapes: Option<Id>,
    pub h5_type: Id,
}

fn chunk_points(point_bytes: usize) -> u64 {
    ((1 << 16) / point_bytes.max(1)).clamp(1, 4096) as u64
}

/// Creates the entry's structure; returns the stream datasets, in stream order.
pub(crate) fn create_entry(
    entry: &Id,
    meta: &ScanMeta,
    layout: &Layout,
    info: &Value,
) -> Result<Vec<Created>, NexusError> {
    h5::attr_str(entry, "NX_class", "NXentry")?;
    if let Some(p) = layout.plots.first() {
        h5::attr_str(entry, "default", &p.name)?;
    }
    let title = info.get("title").and_then(Value::as_str).unwrap_or(&meta.identity.name);
    h5::dataset_str(entry, "title", title)?;
    let start = info.get("start_time").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(now_iso);
    h5::dataset_str(entry, "start_time", &start)?;
    // Placeholders the end overwrites in place (SWMR allows writes, not new objects).
    h5::dataset_rewritable_str(entry, "end_time", "")?;
    h5::dataset_rewritable_str(entry, "end_reason", RUNNING)?;
    let instrument = group(entry, "instrument", "NXinstrument")?;
    h5::dataset_str(&instrument, "name", meta.identity.session.as_str())?;
    let mut created = Vec::with_capacity(meta.streams.len());
    for (desc, place) in meta.streams.iter().zip(&layout.streams) {
        let g = group(entry, &place.group, if place.motor { "NXpositioner" } else { "NXdetector" })?;
        let c = stream_dataset(&g, &place.dataset, &desc.encoding, &place.kind, true)?;
        if let Some(unit) = desc.info.get("unit").or_else(|| desc.info.get("units")).and_then(Value::as_str) {
            h5::attr_str(&c.dataset, "units", unit)?;
        }
        h5::attr_str(
            &c.dataset,
            "interpretation",
            match &place.kind {
                Kind::Fixed(s) if s.len() == 2 => "image",
                Kind::Fixed(s) if s.len() == 1 => "spectrum",
                Kind::Variable(2) => "image",
                Kind::Variable(_) => "spectrum",
                _ => "scalar",
            },
        )?;
        created.push(c);
    }
    // Motor positions at the start.
    let positions = info.pointer("/positioners/positioners_start").cloned().unwrap_or(Value::Null);
    positioners(&instrument, "positioners_start", &positions, info, false)?;
    // End positions: the start ones until the end overwrites them in place.
    positioners(&instrument, "positioners", &positions, info, true)?;
    // measurement: a link to every stream's data.
    let measurement = group(entry, "measurement", "NXcollection")?;
    let entry_path = entry_path(entry)?;
    for place in &layout.streams {
        h5::soft_link(&measurement, &place.measurement, &format!("{entry_path}/{}", place.path()))?;
    }
    // Plots.
    for plot in &layout.plots {
        let g = group(entry, &plot.name, "NXdata")?;
        let name = |i: usize| layout.streams[i].measurement.clone();
        for &i in plot.signals.iter().chain(&plot.axes) {
            h5::soft_link(&g, &name(i), &format!("{entry_path}/{}", layout.streams[i].path()))?;
        }
        h5::attr_str(&g, "signal", &name(plot.signals[0]))?;
        if plot.signals.len() > 1 {
            let aux: Vec<String> = plot.signals[1..].iter().map(|&i| name(i)).collect();
            let aux: Vec<&str> = aux.iter().map(String::as_str).collect();
            h5::attr_strs(&g, "auxiliary_signals", &aux, false)?;
        }
        if !plot.axes.is_empty() {
            let axes: Vec<String> = plot.axes.iter().map(|&i| name(i)).collect();
            let axes: Vec<&str> = axes.iter().map(String::as_str).collect();
            h5::attr_strs(&g, "axes", &axes, false)?;
            for (k, a) in axes.iter().enumerate() {
                h5::attr_raw(&g, &format!("{a}_indices"), &i64_type()?, &(k as i64).to_le_bytes(), &[])?;
            }
        }
        if let Some(interp) = plot.interpretation {
            h5::attr_str(&g, "interpretation", interp)?;
        }
    }
    Ok(created)
}

/// The empty, extendable dataset `name` in `g` that a stream's points are appended to.
/// `shapes`: a variable-shape stream also gets its `<name>_shape` companion.
pub(crate) fn stream_dataset(
    g: &Id,
    name: &str,
    encoding: &Encoding,
    kind: &Kind,
    shapes: bool,
) -> Result<Created, NexusError> {
    Ok(match (encoding, kind) {
        (Encoding::Numeric { dtype, .. }, Kind::Fixed(shape)) => {
            let t = h5_type(*dtype)?;
            let mut dims = vec![0u64];
            dims.extend(shape.iter().map(|&d| d as u64));
            let mut chunk = vec![chunk_points(encoding.point_size().unwrap_or(1))];
            chunk.extend(shape.iter().map(|&d| d.max(1) as u64));
            let d = h5::dataset_extendable(g, name, &t, &dims, &chunk, None)?;
            Created { dataset: d, shapes: None, h5_type: t }
        }
        (Encoding::Numeric { dtype, .. }, Kind::Variable(rank)) => {
            let t = h5_type(*dtype)?;
            let dims = vec![0u64; rank + 1];
            let mut chunk = vec![1u64];
            chunk.extend(std::iter::repeat_n(if *rank == 1 { 1024 } else { 64 }, *rank));
            let fill = super::dtype::fill_value(*dtype);
            let d = h5::dataset_extendable(g, name, &t, &dims, &chunk, Some(&fill))?;
            let s = if shapes {
                h5::attr_str(&d, "shapes", &format!("{name}_shape"))?;
                let it = i64_type()?;
                Some(h5::dataset_extendable(
                    g,
                    &format!("{name}_shape"),
                    &it,
                    &[0, *rank as u64],
                    &[256, (*rank).max(1) as u64],
                    None,
                )?)
            } else {
                None
            };
            Created { dataset: d, shapes: s, h5_type: t }
        }
        _ => {
            let t = h5::vlen_str()?;
            let d = h5::dataset_extendable(g, name, &t, &[0], &[64], None)?;
            Created { dataset: d, shapes: None, h5_type: t }
        }
    })
}

fn entry_path(entry: &Id) -> Result<String, NexusError> {
    let mut buf = vec![0u8; 1024];
    let n = unsafe { hdf5_metno_sys::h5i::H5Iget_name(entry.raw(), buf.as_mut_ptr() as *mut _, buf.len()) };
    if n < 0 {
        return Err(h5::error("H5Iget_name"));
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// An NXcollection of motor positions (`name: value`, with `units` from
/// `positioners.positioners_units`). `rewritable`: strings are fixed-size, so the end can
/// overwrite them while SWMR readers follow.
pub(crate) fn positioners(
    instrument: &Id,
    name: &str,
    positions: &Value,
    info: &Value,
    rewritable: bool,
) -> Result<(), NexusError> {
    let g = group(instrument, name, "NXcollection")?;
    if let Some(map) = positions.as_object() {
        for (motor, v) in map {
            add_position(&g, motor, v, info, rewritable)?;
        }
    }
    Ok(())
}

/// One motor's position in a positioners collection, unless it is there already.
fn add_position(g: &Id, motor: &str, v: &Value, info: &Value, rewritable: bool) -> Result<(), NexusError> {
    let name = super::layout::clean(motor);
    if h5::exists(g, &name) {
        return Ok(());
    }
    let d = match v {
        Value::String(s) if rewritable => h5::dataset_rewritable_str(g, &name, s)?,
        _ => value_dataset(g, &name, v)?,
    };
    if let Some(unit) =
        info.pointer("/positioners/positioners_units").and_then(|u| u.get(motor)).and_then(Value::as_str)
    {
        h5::attr_str(&d, "units", unit)?;
    }
    Ok(())
}

/// The end of an entry, written over the placeholders Begin created: `end_time`,
/// `end_reason`, end positions in `instrument/positioners`. Returns the end positions of
/// motors not known at the start: SWMR mode allows no new objects, so they are added by
/// [`add_late_positions`] once the file is out of SWMR mode.
pub(crate) fn write_end(entry: &Id, info: &Value, end_reason: &str) -> Result<Vec<String>, NexusError> {
    let end = info.get("end_time").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(now_iso);
    h5::rewrite_rewritable_str(entry, "end_time", &end)?;
    h5::rewrite_rewritable_str(entry, "end_reason", end_reason)?;
    let Some(map) = info.pointer("/positioners/positioners_end").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let g = h5::open_group(entry, "instrument/positioners")?;
    let mut late = Vec::new();
    for (motor, v) in map {
        let name = super::layout::clean(motor);
        if !h5::exists(&g, &name) {
            late.push(motor.clone());
            continue;
        }
        if h5::is_string_dataset(&g, &name)? {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            h5::rewrite_rewritable_str(&g, &name, &text)?;
        } else {
            // A numeric placeholder takes a number; a string that is no number is NaN.
            let x = match v {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::String(s) => s.trim().parse().unwrap_or_else(|_| {
                    tracing::warn!(motor, value = %s, "a motor numeric at the start ends on a string: written as NaN");
                    f64::NAN
                }),
                Value::Bool(b) => f64::from(u8::from(*b)),
                _ => f64::NAN,
            };
            h5::rewrite_raw(&g, &name, &f64_type()?, &x.to_le_bytes())?;
        }
    }
    Ok(late)
}

/// Adds the end positions of `motors` (motors first seen at the end) to the entry's
/// `instrument/positioners`, in a file no longer in SWMR mode.
pub(crate) fn add_late_positions(entry: &Id, info: &Value, motors: &[String]) -> Result<(), NexusError> {
    let g = h5::open_group(entry, "instrument/positioners")?;
    let end = info.pointer("/positioners/positioners_end");
    for motor in motors {
        if let Some(v) = end.and_then(|m| m.get(motor)) {
            add_position(&g, motor, v, info, false)?;
        }
    }
    Ok(())
}
