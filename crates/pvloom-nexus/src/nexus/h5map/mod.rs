//! BLISS's `h5maps`: the file tree a scan asks for (`scan.info["h5maps"][<file>]`, the
//! `blissdata.h5map` model), written as it says instead of this crate's own layout.
//!
//! At Begin the whole tree is created — groups, valued datasets, links, and the stream
//! datasets (empty, extendable, appended to while SWMR readers follow) — before the file
//! enters SWMR mode, which allows no new objects. The mapping BLISS regenerates at the end
//! is applied once the file is out of SWMR mode (`Mapping::update`): new items added, changed ones
//! rewritten, removed ones deleted, as blisswriter does; stream datasets stay as streamed.
//! Long doubles are written on x86-64 only (their format is x87's there); elsewhere each
//! is named in one warning, as is anything else left out.

mod model;

use std::ffi::CString;
use std::path::Path;

use serde_json::Value;

pub use model::MappingError;
use model::{Array, Binary, Data, Item, Values};

use super::dtype::h5_type;
use super::error::NexusError;
use super::h5::{self, Id};
use super::layout::{Kind, kind_of};
use super::structure::{Created, stream_dataset};
use crate::model::ScanMeta;

/// One file's mapping.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mapping {
    root: Item,
}

/// A stream dataset the mapping asks for.
pub(crate) struct StreamSink {
    /// Index into the scan's streams.
    pub stream: usize,
    pub created: Created,
    pub kind: Kind,
}

impl Mapping {
    /// The mapping of the file `file` in the scan info, if the info has one. Only that file's
    /// mapping is read (and so can be malformed): others are other writers' business.
    pub(crate) fn of(info: &Value, file: &Path) -> Result<Option<Mapping>, MappingError> {
        let maps = match info.get("h5maps") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(maps)) => maps,
            Some(_) => return Err(MappingError { path: "h5maps".into(), why: "must be an object of files".into() }),
        };
        let Some((_, v)) = maps.iter().find(|(k, _)| Path::new(k.as_str()) == file) else { return Ok(None) };
        model::parse_root(v)
            .map(|root| Some(Mapping { root }))
            .map_err(|e| MappingError { path: format!("{}::{}", file.display(), e.path), why: e.why })
    }

    /// The root's child groups (the scan's entries, `N.1`…).
    pub(crate) fn entries(&self) -> Vec<String> {
        match &self.root {
            Item::Group { children, .. } => {
                children.iter().filter(|(_, c)| matches!(c, Item::Group { .. })).map(|(n, _)| n.clone()).collect()
            }
            _ => vec![],
        }
    }

    /// Checks that every stream the mapping names is one of the scan's (blisswriter fails
    /// such a scan too): before anything is written.
    pub(crate) fn check_streams(&self, meta: &ScanMeta) -> Result<(), MappingError> {
        let mut missing = None;
        walk(&self.root, "/", &mut |path, item| {
            if let Some(s) = item.stream()
                && missing.is_none()
                && !meta.streams.iter().any(|d| &*d.name == s)
            {
                missing = Some(MappingError { path: path.to_owned(), why: format!("no stream {s:?} in the scan") });
            }
        });
        missing.map_or(Ok(()), Err)
    }

    /// Writes the whole tree into `file` (a new or an existing file: groups that exist are
    /// reused, as h5py's `require_group` does); returns the stream datasets.
    pub(crate) fn write(&self, file: &Id, meta: &ScanMeta) -> Result<Vec<StreamSink>, NexusError> {
        let mut sinks = Vec::new();
        let Item::Group { attrs, children } = &self.root else { unreachable!("the root is a group") };
        write_attrs(file, attrs, "/")?;
        for (name, child) in children {
            write_item(file, name, child, &join("/", name), Some((meta, &mut sinks)))?;
        }
        Ok(sinks)
    }

    /// Brings the written tree (`self`, as written at Begin) to `new`, the mapping at the end,
    /// in `file` opened again after SWMR: what blisswriter's end does.
    pub(crate) fn update(&self, new: &Mapping, file: &Id) -> Result<(), NexusError> {
        update_item(file, None, "/", Some(&self.root), &new.root)
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.ends_with('/') { format!("{parent}{name}") } else { format!("{parent}/{name}") }
}

fn walk(item: &Item, path: &str, f: &mut dyn FnMut(&str, &Item)) {
    f(path, item);
    if let Item::Group { children, .. } = item {
        for (name, c) in children {
            walk(c, &join(path, name), f);
        }
    }
}

fn hyperslab(s: &model::Selection) -> h5::Hyperslab {
    h5::Hyperslab { start: s.start.clone(), stride: s.stride.clone(), count: s.count.clone(), block: s.block.clone() }
}

fn skipped(path: &str, what: &str) {
    tracing::warn!(path, "h5maps: {what} is not written");
}

fn write_attrs(loc: &Id, attrs: &[(String, Data)], path: &str) -> Result<(), NexusError> {
    for (name, data) in attrs {
        write_attr(loc, name, data, path)?;
    }
    Ok(())
}

/// An array as HDF5 memory: its type, and its elements packed C-order in that type (strings
/// as pointers into the returned `CString`s, which must outlive the write).
struct Packed {
    h5_type: Id,
    size: usize,
    bytes: Vec<u8>,
    _strings: Vec<CString>,
}

fn pack(a: &Array) -> Result<Packed, NexusError> {
    Ok(match &a.values {
        Values::Numeric { dtype, bytes } => {
            Packed { h5_type: h5_type(*dtype)?, size: dtype.element.size(), bytes: bytes.clone(), _strings: vec![] }
        }
        Values::LongDouble { complex, bytes } => {
            let t = h5::long_double_type(*complex)?;
            let size = if *complex { 32 } else { 16 };
            Packed { h5_type: t, size, bytes: bytes.clone(), _strings: vec![] }
        }
        Values::Strings(s) => {
            let strings: Vec<CString> = s.iter().map(|v| h5::cstr(v)).collect();
            let bytes = strings.iter().flat_map(|c| (c.as_ptr() as usize).to_ne_bytes()).collect();
            Packed { h5_type: h5::vlen_str()?, size: std::mem::size_of::<usize>(), bytes, _strings: strings }
        }
        Values::Compound(columns) => {
            let packed: Vec<Packed> = columns.iter().map(|(_, c)| pack(c)).collect::<Result<_, _>>()?;
            let size: usize = packed.iter().map(|p| p.size).sum();
            let mut offsets = Vec::with_capacity(packed.len());
            let mut at = 0;
            for p in &packed {
                offsets.push(at);
                at += p.size;
            }
            let members: Vec<(&str, usize, &Id)> = columns
                .iter()
                .zip(&offsets)
                .zip(&packed)
                .map(|(((n, _), &o), p)| (n.as_str(), o, &p.h5_type))
                .collect();
            let h5_type = h5::compound_type(size, &members)?;
            // Records: element i of every column, side by side.
            let n: u64 = a.shape.iter().product();
            let mut bytes = Vec::with_capacity(n as usize * size);
            for i in 0..n as usize {
                for p in &packed {
                    bytes.extend_from_slice(&p.bytes[i * p.size..(i + 1) * p.size]);
                }
            }
            let strings = packed.into_iter().flat_map(|p| p._strings).collect();
            Packed { h5_type, size, bytes, _strings: strings }
        }
    })
}

fn write_attr(loc: &Id, name: &str, data: &Data, path: &str) -> Result<(), NexusError> {
    match data {
        Data::Array(a) => {
            let p = pack(a)?;
            h5::attr_raw(loc, name, &p.h5_type, &p.bytes, &a.shape)
        }
        Data::Skipped(what) => {
            skipped(&format!("{path}@{name}"), what);
            Ok(())
        }
        // Refused when parsed.
        Data::Stream(_) => Ok(()),
    }
}

type Streams<'a> = Option<(&'a ScanMeta, &'a mut Vec<StreamSink>)>;

/// Creates `item` as `name` in `parent`. `streams`: where stream datasets are created (at
/// Begin); without it (at the end, after SWMR) a new stream dataset is skipped, as
/// blisswriter cannot add one then either.
fn write_item(parent: &Id, name: &str, item: &Item, path: &str, streams: Streams) -> Result<(), NexusError> {
    match item {
        Item::Group { attrs, children } => {
            let g =
                if h5::exists(parent, name) { h5::open_group(parent, name)? } else { h5::create_group(parent, name)? };
            write_attrs(&g, attrs, path)?;
            let mut streams = streams;
            for (n, c) in children {
                let s = streams.as_mut().map(|(m, v)| (*m, &mut **v));
                write_item(&g, n, c, &join(path, n), s)?;
            }
        }
        Item::Dataset { attrs, value } => {
            let d = match value {
                Data::Array(a) => {
                    let p = pack(a)?;
                    h5::dataset_raw(parent, name, &p.h5_type, &a.shape, &p.bytes)?
                }
                Data::Skipped(what) => {
                    skipped(path, what);
                    return Ok(());
                }
                Data::Stream(stream) => {
                    let Some((meta, sinks)) = streams else {
                        tracing::warn!(path, stream, "h5maps: a stream dataset first mapped at the end is not written");
                        return Ok(());
                    };
                    // `check_streams` ran before anything was written.
                    let index = meta.streams.iter().position(|d| &*d.name == stream).expect("checked stream");
                    let desc = &meta.streams[index];
                    let kind = kind_of(&desc.encoding);
                    // Only what the mapping asks for: no `<name>_shape` companion.
                    let created = stream_dataset(parent, name, &desc.encoding, &kind, false)?;
                    write_attrs(&created.dataset, attrs, path)?;
                    sinks.push(StreamSink { stream: index, created, kind });
                    return Ok(());
                }
            };
            write_attrs(&d, attrs, path)?;
        }
        Item::ExternalBinary { attrs, dtype, shape, files } => {
            let t = match dtype {
                Binary::Dtype(dtype) => h5_type(*dtype)?,
                Binary::LongDouble { complex, big: false } if model::LONG_DOUBLE_IS_X87 => {
                    h5::long_double_type(*complex)?
                }
                Binary::LongDouble { .. } => {
                    skipped(path, "an external binary dataset of long doubles not in this machine's format");
                    return Ok(());
                }
            };
            let files: Vec<_> = files.iter().map(|f| (f.name.clone(), f.offset, f.size)).collect();
            let d = h5::dataset_external(parent, name, &t, shape, &files)?;
            write_attrs(&d, attrs, path)?;
        }
        Item::Virtual { attrs, dtype, shape, sources } => {
            let t = match dtype {
                Binary::Dtype(dtype) => h5_type(*dtype)?,
                Binary::LongDouble { complex, big: false } if model::LONG_DOUBLE_IS_X87 => {
                    h5::long_double_type(*complex)?
                }
                Binary::LongDouble { .. } => {
                    skipped(path, "a virtual dataset of long doubles not in this machine's format");
                    return Ok(());
                }
            };
            let sources: Vec<h5::VirtualSource> = sources
                .iter()
                .map(|v| h5::VirtualSource {
                    vspace: hyperslab(&v.vspace),
                    file: v.file.clone(),
                    dataset: v.dataset.clone(),
                    // The source's own extent is not in the mapping: the smallest holding
                    // the selection (HDF5 reads the source's real extent when read).
                    src_extent: v.src.extent(),
                    src: hyperslab(&v.src),
                })
                .collect();
            let d = h5::dataset_virtual(parent, name, &t, shape, &sources)?;
            write_attrs(&d, attrs, path)?;
        }
        Item::SoftLink { target } => h5::soft_link_plain(parent, name, target)?,
        Item::ExternalLink { file, target } => h5::external_link(parent, name, file, target)?,
    }
    Ok(())
}

/// Makes `name` in `parent` (the root when `parent` is `None`) go from `old` to `new`.
fn update_item(file: &Id, parent: Option<&Id>, path: &str, old: Option<&Item>, new: &Item) -> Result<(), NexusError> {
    let name = path.rsplit('/').next().unwrap_or_default();
    if old == Some(new) {
        return Ok(());
    }
    let Some(old) = old else {
        let parent = parent.expect("the root always has an old mapping");
        return write_item(parent, name, new, path, None);
    };
    match (old, new) {
        (Item::Group { attrs: oa, children: oc }, Item::Group { attrs: na, children: nc }) => {
            let g = match parent {
                None => h5::open_group(file, "/")?,
                Some(p) => h5::open_group(p, name)?,
            };
            update_attrs(&g, oa, na, path)?;
            for (n, c) in nc {
                let before = oc.iter().find(|(k, _)| k == n).map(|(_, v)| v);
                update_item(file, Some(&g), &join(path, n), before, c)?;
            }
            for (n, c) in oc {
                if !nc.iter().any(|(k, _)| k == n) {
                    remove(&g, n, c, &join(path, n))?;
                }
            }
            Ok(())
        }
        (o, n) if o.stream().is_some() || n.stream().is_some() => {
            if o.stream() == n.stream() {
                // Same stream: only the attributes changed (blisswriter writes a stream
                // dataset's attributes at the end).
                let d = h5::open_dataset(parent.expect("not the root"), name)?;
                update_attrs(&d, o.attrs(), n.attrs(), path)
            } else {
                tracing::warn!(path, "h5maps: a stream dataset cannot change at the end: kept as streamed");
                Ok(())
            }
        }
        (o, n) => {
            let parent = parent.expect("not the root");
            if h5::exists(parent, name) {
                remove(parent, name, o, path)?;
            }
            write_item(parent, name, n, path, None)
        }
    }
}

fn remove(parent: &Id, name: &str, old: &Item, path: &str) -> Result<(), NexusError> {
    if old.stream().is_some() {
        tracing::warn!(path, "h5maps: a stream dataset left out at the end is kept");
        return Ok(());
    }
    if h5::exists(parent, name) { h5::delete_link(parent, name) } else { Ok(()) }
}

fn update_attrs(loc: &Id, old: &[(String, Data)], new: &[(String, Data)], path: &str) -> Result<(), NexusError> {
    for (name, data) in new {
        let before = old.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if before != Some(data) || !h5::attr_exists(loc, name) {
            write_attr(loc, name, data, path)?;
        }
    }
    for (name, _) in old {
        if !new.iter().any(|(k, _)| k == name) {
            h5::delete_attr(loc, name)?;
        }
    }
    Ok(())
}
