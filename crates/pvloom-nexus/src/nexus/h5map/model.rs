//! The `h5maps` mapping model (blissdata 2.4.5's `blissdata.h5map`), parsed from the scan
//! info's JSON and checked as blissdata's pydantic models check it: whatever they refuse is
//! a [`MappingError`] here.

use serde_json::{Map, Value};

use crate::model::{Dtype, ElementType};

/// A mapping blissdata's models would refuse, with the path of the offending item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("h5maps item {path}: {why}")]
pub struct MappingError {
    pub path: String,
    pub why: String,
}

fn bad<T>(path: &str, why: impl Into<String>) -> Result<T, MappingError> {
    Err(MappingError { path: path.to_owned(), why: why.into() })
}

/// Attributes (or children), in the mapping's order.
pub type Named<T> = Vec<(String, T)>;

/// One HDF5 item of the mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Group {
        attrs: Named<Data>,
        children: Named<Item>,
    },
    Dataset {
        attrs: Named<Data>,
        value: Data,
    },
    /// Raw data in files outside HDF5 (`H5Pset_external`).
    ExternalBinary {
        attrs: Named<Data>,
        dtype: Binary,
        shape: Vec<u64>,
        files: Vec<ExternalFile>,
    },
    /// A virtual dataset: selections of other datasets (`H5Pset_virtual`).
    Virtual {
        attrs: Named<Data>,
        dtype: Binary,
        shape: Vec<u64>,
        sources: Vec<VirtualSource>,
    },
    SoftLink {
        target: String,
    },
    ExternalLink {
        file: String,
        target: String,
    },
}

impl Item {
    pub fn attrs(&self) -> &[(String, Data)] {
        match self {
            Item::Group { attrs, .. }
            | Item::Dataset { attrs, .. }
            | Item::ExternalBinary { attrs, .. }
            | Item::Virtual { attrs, .. } => attrs,
            _ => &[],
        }
    }

    /// The stream a dataset is fed from.
    pub fn stream(&self) -> Option<&str> {
        match self {
            Item::Dataset { value: Data::Stream(s), .. } => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExternalFile {
    pub name: String,
    pub offset: u64,
    /// `None`: to the end of the file (`H5F_UNLIMITED`).
    pub size: Option<u64>,
}

/// A hyperslab: `count` blocks of `block` (default 1) every `stride` (default 1) from `start`.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub start: Vec<u64>,
    pub stride: Option<Vec<u64>>,
    pub count: Vec<u64>,
    pub block: Option<Vec<u64>>,
}

impl Selection {
    /// The smallest extent holding the selection.
    pub fn extent(&self) -> Vec<u64> {
        (0..self.start.len())
            .map(|k| {
                let stride = self.stride.as_ref().map_or(1, |s| s[k]);
                let block = self.block.as_ref().map_or(1, |b| b[k]);
                self.start[k] + self.count[k].saturating_sub(1) * stride + block
            })
            .collect()
    }

    /// How many elements it selects.
    pub fn elements(&self) -> u64 {
        let block: u64 = self.block.as_ref().map_or(1, |b| b.iter().product());
        self.count.iter().product::<u64>() * block
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualSource {
    /// Where in the virtual dataset.
    pub vspace: Selection,
    pub file: String,
    pub dataset: String,
    /// What of the source dataset.
    pub src: Selection,
}

/// A data item: a value (dataset contents or attribute), or a stream reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Array(Array),
    Stream(String),
    /// A value this writer does not write (a long double not in x87 format): why, for the warning.
    Skipped(String),
}

/// A binary dtype of `inline_b64` and external datasets: a numpy dtype, or a long double
/// (`<f16`, `<c32`; `complex` for the latter) in the given byte order.
#[derive(Clone, Debug, PartialEq)]
pub enum Binary {
    Dtype(Dtype),
    LongDouble { complex: bool, big: bool },
}

/// A decoded value: C-order elements of `shape` (`[]` for a scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<u64>,
    pub values: Values,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Elements of `dtype`, in its byte order.
    Numeric { dtype: Dtype, bytes: Vec<u8> },
    /// Written as variable-length UTF-8 strings, as h5py writes numpy's `str`.
    Strings(Vec<String>),
    /// numpy's `float128`/`complex256` (`complex`: `r`, `i` pairs): x87 extended precision
    /// in 16 little-endian bytes, HDF5's native long double on x86-64.
    LongDouble { complex: bool, bytes: Vec<u8> },
    /// A structured array: named columns of the array's shape, each element one record.
    Compound(Vec<(String, Array)>),
}

fn key_path(parent: &str, name: &str) -> String {
    if parent.ends_with('/') { format!("{parent}{name}") } else { format!("{parent}/{name}") }
}

/// Parses one file's mapping; its top item must be a group (the file's root).
pub fn parse_root(v: &Value) -> Result<Item, MappingError> {
    match parse_item(v, "/")? {
        g @ Item::Group { .. } => Ok(g),
        _ => bad("/", "the file's mapping must be a group"),
    }
}

const H5_TYPES: [&str; 6] =
    ["group", "dataset", "external_binary_dataset", "soft_link", "external_link", "virtual_dataset"];

fn parse_item(v: &Value, path: &str) -> Result<Item, MappingError> {
    // A dataset may be given by its bare value: anything but an object whose `type` is an
    // HDF5 item type is a dataset's value.
    let Some(obj) = v.as_object() else {
        return Ok(Item::Dataset { attrs: vec![], value: parse_data(v, path)? });
    };
    let ty = match obj.get("type") {
        Some(Value::String(t)) if H5_TYPES.contains(&t.as_str()) => t.as_str(),
        None => "dataset",
        Some(_) => return Ok(Item::Dataset { attrs: vec![], value: parse_data(v, path)? }),
    };
    match ty {
        "group" => {
            let attrs = parse_attrs(obj, path)?;
            let mut children = Vec::new();
            match obj.get("children") {
                None => {}
                Some(Value::Object(map)) => {
                    for (name, child) in map {
                        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                            return bad(path, format!("child name {name:?} is not one HDF5 link name"));
                        }
                        children.push((name.clone(), parse_item(child, &key_path(path, name))?));
                    }
                }
                Some(_) => return bad(path, "`children` must be an object"),
            }
            Ok(Item::Group { attrs, children })
        }
        "dataset" => {
            let value = obj.get("value").ok_or_else(|| MappingError { path: path.into(), why: "no `value`".into() })?;
            Ok(Item::Dataset { attrs: parse_attrs(obj, path)?, value: parse_data(value, path)? })
        }
        "external_binary_dataset" => {
            let attrs = parse_attrs(obj, path)?;
            let dtype = parse_binary(str_field(obj, "dtype", path)?, path)?;
            let shape = shape_field(obj.get("shape"), path)?
                .ok_or_else(|| MappingError { path: path.into(), why: "no `shape`".into() })?;
            let Some(Value::Array(list)) = obj.get("files") else { return bad(path, "`files` must be a list") };
            if list.is_empty() {
                return bad(path, "`files` must not be empty");
            }
            let mut files = Vec::with_capacity(list.len());
            for f in list {
                let Some(f) = f.as_object() else { return bad(path, "a file must be an object") };
                let offset = f
                    .get("offset")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| MappingError { path: path.into(), why: "a file's offset must be ≥ 0".into() })?;
                let size = match f.get("size") {
                    None | Some(Value::Null) => None,
                    Some(s) => Some(s.as_u64().ok_or_else(|| MappingError {
                        path: path.into(),
                        why: "a file's size must be ≥ 0 or null".into(),
                    })?),
                };
                files.push(ExternalFile { name: str_field(f, "name", path)?.to_owned(), offset, size });
            }
            Ok(Item::ExternalBinary { attrs, dtype, shape, files })
        }
        "virtual_dataset" => {
            let attrs = parse_attrs(obj, path)?;
            let dtype = parse_binary(str_field(obj, "dtype", path)?, path)?;
            let shape = shape_field(obj.get("shape"), path)?
                .ok_or_else(|| MappingError { path: path.into(), why: "no `shape`".into() })?;
            let Some(Value::Array(list)) = obj.get("virtual_sources") else {
                return bad(path, "`virtual_sources` must be a list");
            };
            if list.is_empty() {
                return bad(path, "`virtual_sources` must not be empty");
            }
            let mut sources = Vec::with_capacity(list.len());
            for v in list {
                let Some(v) = v.as_object() else { return bad(path, "a virtual source must be an object") };
                let vspace = selection(v.get("vspace"), path)?;
                if vspace.start.len() != shape.len() {
                    return bad(path, format!("a vspace of rank {} in shape {shape:?}", vspace.start.len()));
                }
                let src = selection(v.get("src_space"), path)?;
                if vspace.elements() != src.elements() {
                    return bad(path, "a virtual source selects as many elements as its vspace");
                }
                sources.push(VirtualSource {
                    vspace,
                    file: str_field(v, "src_file", path)?.to_owned(),
                    dataset: str_field(v, "src_dataset", path)?.to_owned(),
                    src,
                });
            }
            Ok(Item::Virtual { attrs, dtype, shape, sources })
        }
        "soft_link" => Ok(Item::SoftLink { target: str_field(obj, "target_path", path)?.to_owned() }),
        _ => Ok(Item::ExternalLink {
            file: str_field(obj, "target_file", path)?.to_owned(),
            target: str_field(obj, "target_path", path)?.to_owned(),
        }),
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, MappingError> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| MappingError { path: path.into(), why: format!("`{key}` must be a string") })
}

fn selection(v: Option<&Value>, path: &str) -> Result<Selection, MappingError> {
    let Some(Value::Object(o)) = v else { return bad(path, "a selection must be an object") };
    let list = |k: &str| shape_field(o.get(k), path);
    let start = list("start")?.ok_or_else(|| MappingError { path: path.into(), why: "no `start`".into() })?;
    let count = list("count")?.ok_or_else(|| MappingError { path: path.into(), why: "no `count`".into() })?;
    let (stride, block) = (list("stride")?, list("block")?);
    let rank = start.len();
    if count.len() != rank
        || stride.as_ref().is_some_and(|s| s.len() != rank)
        || block.as_ref().is_some_and(|b| b.len() != rank)
    {
        return bad(path, "a selection's start, count, stride and block differ in rank");
    }
    Ok(Selection { start, stride, count, block })
}

fn shape_field(v: Option<&Value>, path: &str) -> Result<Option<Vec<u64>>, MappingError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(dims)) => dims
            .iter()
            .map(|d| d.as_u64().ok_or_else(|| MappingError { path: path.into(), why: format!("bad shape {v:?}") }))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => bad(path, format!("bad shape {other}")),
    }
}

fn parse_attrs(obj: &Map<String, Value>, path: &str) -> Result<Named<Data>, MappingError> {
    match obj.get("attributes") {
        None => Ok(vec![]),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let at = format!("{path}@{k}");
                match parse_data(v, &at)? {
                    // blisswriter decodes every attribute; a stream has no value to decode.
                    Data::Stream(_) => bad(&at, "an attribute cannot be a stream"),
                    d => Ok((k.clone(), d)),
                }
            })
            .collect(),
        Some(_) => bad(path, "`attributes` must be an object"),
    }
}

fn parse_data(v: &Value, path: &str) -> Result<Data, MappingError> {
    let Some(obj) = v.as_object() else { return raw(v, path).map(Data::Array) };
    match obj.get("type").and_then(Value::as_str) {
        Some("stream") => Ok(Data::Stream(str_field(obj, "stream", path)?.to_owned())),
        Some("inline") => inline(obj, path),
        Some("inline_b64") => inline_b64(obj, path),
        Some("compound") => compound(obj, path),
        Some(t) => bad(path, format!("unknown data item type {t:?}")),
        None => bad(path, "an object value needs a `type` (inline, inline_b64, stream, compound)"),
    }
}

/// `compound`: `[name, value]` columns of one shape (inline, inline_b64, raw or compound).
fn compound(obj: &Map<String, Value>, path: &str) -> Result<Data, MappingError> {
    let Some(Value::Array(list)) = obj.get("columns") else { return bad(path, "`columns` must be a list") };
    if list.is_empty() {
        return bad(path, "a compound needs at least one column");
    }
    let mut columns: Vec<(String, Array)> = Vec::with_capacity(list.len());
    for c in list {
        let (name, v) = match c.as_array().map(Vec::as_slice) {
            Some([Value::String(n), v]) => (n, v),
            _ => return bad(path, "a column must be a [name, value] pair"),
        };
        if columns.iter().any(|(n, _)| n == name) {
            return bad(path, format!("two columns named {name:?}"));
        }
        let at = format!("{path}[{name}]");
        let array = match parse_data(v, &at)? {
            Data::Array(a) => a,
            Data::Stream(_) => return bad(&at, "a compound column cannot be a stream"),
            Data::Skipped(what) => return Ok(Data::Skipped(format!("a compound with {what}"))),
        };
        if let Some((_, first)) = columns.first()
            && first.shape != array.shape
        {
            return bad(path, format!("columns of shapes {:?} and {:?}", first.shape, array.shape));
        }
        columns.push((name.clone(), array));
    }
    let shape = columns[0].1.shape.clone();
    Ok(Data::Array(Array { shape, values: Values::Compound(columns) }))
}

/// Nested lists as a shape and their leaves, C-order; refuses ragged lists.
fn nested<'a>(v: &'a Value, path: &str) -> Result<(Vec<u64>, Vec<&'a Value>), MappingError> {
    fn shape_of(v: &Value) -> Vec<u64> {
        let mut s = Vec::new();
        let mut at = v;
        while let Value::Array(a) = at {
            s.push(a.len() as u64);
            match a.first() {
                Some(first) => at = first,
                None => break,
            }
        }
        s
    }
    fn walk<'a>(v: &'a Value, shape: &[u64], out: &mut Vec<&'a Value>) -> bool {
        match (v, shape.split_first()) {
            (Value::Array(a), Some((&n, rest))) => a.len() as u64 == n && a.iter().all(|x| walk(x, rest, out)),
            (Value::Array(_), None) => false,
            (_, Some(_)) => false,
            (leaf, None) => {
                out.push(leaf);
                true
            }
        }
    }
    let shape = shape_of(v);
    let mut leaves = Vec::new();
    if !walk(v, &shape, &mut leaves) {
        return bad(path, "nested lists of different lengths (not an array)");
    }
    Ok((shape, leaves))
}

fn numeric(dtype: Dtype, shape: Vec<u64>, bytes: Vec<u8>) -> Array {
    Array { shape, values: Values::Numeric { dtype, bytes } }
}

/// A raw JSON value, typed as numpy types it (bool < int64 < float64 < str across a list).
fn raw(v: &Value, path: &str) -> Result<Array, MappingError> {
    let (shape, leaves) = nested(v, path)?;
    let (mut any_str, mut any_float, mut any_int) = (false, false, false);
    for l in &leaves {
        match l {
            Value::String(_) => any_str = true,
            Value::Number(n) if n.is_i64() => any_int = true,
            Value::Number(n) if n.is_u64() => return bad(path, format!("{n} is out of int64's range")),
            Value::Number(_) => any_float = true,
            Value::Bool(_) => {}
            Value::Null => return bad(path, "null is no value"),
            _ => return bad(path, "an object inside a list is no value"),
        }
    }
    let as_f64 = |l: &Value| match l {
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => other.as_f64().unwrap_or(f64::NAN),
    };
    Ok(if any_str {
        let text = |l: &Value| match l {
            Value::String(s) => s.clone(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Number(n) if n.is_i64() => n.to_string(),
            Value::Number(n) => py_float(n.as_f64().unwrap_or(f64::NAN)),
            other => other.to_string(),
        };
        Array { shape, values: Values::Strings(leaves.iter().map(|l| text(l)).collect()) }
    } else if any_float || leaves.is_empty() {
        // An empty list is float64, as numpy makes it.
        let bytes = leaves.iter().flat_map(|l| as_f64(l).to_le_bytes()).collect();
        numeric(Dtype::little(ElementType::F64), shape, bytes)
    } else if any_int {
        let bytes = leaves
            .iter()
            .flat_map(|l| {
                match l {
                    Value::Bool(b) => i64::from(*b),
                    other => other.as_i64().unwrap_or(0),
                }
                .to_le_bytes()
            })
            .collect();
        numeric(Dtype::little(ElementType::I64), shape, bytes)
    } else {
        let bytes = leaves.iter().map(|l| u8::from(l.as_bool() == Some(true))).collect();
        numeric(Dtype::little(ElementType::Bool), shape, bytes)
    })
}

/// A float as Python's `str` writes it (`1.0`, `2.5`, `1e+20`, `1e-05`): how numpy turns
/// numbers into strings in a list that has strings.
fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let fixed = x.to_string();
        if fixed.contains('.') { fixed } else { format!("{fixed}.0") }
    } else {
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// `inline`: values of a numpy dtype name (`int8`, `float32`, `complex64`, `bool`…).
fn inline(obj: &Map<String, Value>, path: &str) -> Result<Data, MappingError> {
    use ElementType::*;
    let name = str_field(obj, "dtype", path)?;
    let element = match name {
        "bool" => Bool,
        "int8" => I8,
        "int16" => I16,
        "int32" => I32,
        "int64" => I64,
        "uint8" => U8,
        "uint16" => U16,
        "uint32" => U32,
        "uint64" => U64,
        "float16" => F16,
        "float32" => F32,
        "float64" => F64,
        "complex64" => C64,
        "complex128" => C128,
        "float128" | "complex256" => return long_double_inline(obj, name == "complex256", path),
        other => return bad(path, format!("unknown inline dtype {other:?}")),
    };
    let value = obj.get("value").ok_or_else(|| MappingError { path: path.into(), why: "no `value`".into() })?;
    let (shape, leaves) = nested(value, path)?;
    let mut bytes = Vec::with_capacity(leaves.len() * element.size());
    for l in leaves {
        convert(l, element, &mut bytes).map_err(|why| MappingError { path: path.into(), why })?;
    }
    Ok(Data::Array(numeric(Dtype::little(element), shape, bytes)))
}

/// One leaf as numpy's `np.array(leaf, dtype)` converts it, little-endian.
fn convert(l: &Value, element: ElementType, out: &mut Vec<u8>) -> Result<(), String> {
    use ElementType::*;
    let bad = || format!("{l} is not a {element:?} value");
    match element {
        // A string is true when not empty, as numpy casts one.
        Bool => out.push(u8::from(match l {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
            Value::String(s) => !s.is_empty(),
            _ => return Err(bad()),
        })),
        I8 | I16 | I32 | I64 | U8 | U16 | U32 | U64 => {
            let x: i128 = match l {
                Value::Bool(b) => i128::from(*b),
                Value::Number(n) if n.is_i64() => i128::from(n.as_i64().unwrap_or(0)),
                Value::Number(n) if n.is_u64() => i128::from(n.as_u64().unwrap_or(0)),
                Value::Number(n) => {
                    let f = n.as_f64().ok_or_else(bad)?;
                    if !f.is_finite() {
                        return Err(bad());
                    }
                    f.trunc() as i128
                }
                Value::String(s) => s.trim().parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            let bits = element.size() as u32 * 8;
            let signed = matches!(element, I8 | I16 | I32 | I64);
            let (lo, hi) =
                if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
            if x < lo || x > hi {
                return Err(format!("{x} is out of bounds for {element:?}"));
            }
            out.extend_from_slice(&x.to_le_bytes()[..element.size()]);
        }
        F16 | F32 | F64 => {
            let x = float_of(l).ok_or_else(bad)?;
            match element {
                F16 => out.extend_from_slice(&f16_bits(x).to_le_bytes()),
                F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
                _ => out.extend_from_slice(&x.to_le_bytes()),
            }
        }
        C64 | C128 => {
            let (re, im) = match l {
                Value::String(s) => complex_of(s).ok_or_else(bad)?,
                other => (float_of(other).ok_or_else(bad)?, 0.0),
            };
            if element == C64 {
                out.extend_from_slice(&(re as f32).to_le_bytes());
                out.extend_from_slice(&(im as f32).to_le_bytes());
            } else {
                out.extend_from_slice(&re.to_le_bytes());
                out.extend_from_slice(&im.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Whether numpy's `float128` here is x87 extended precision (what [`Values::LongDouble`]
/// holds): on x86-64 it is; elsewhere long doubles are not written.
pub(crate) const LONG_DOUBLE_IS_X87: bool = cfg!(target_arch = "x86_64");

fn long_double_inline(obj: &Map<String, Value>, complex: bool, path: &str) -> Result<Data, MappingError> {
    if !LONG_DOUBLE_IS_X87 {
        return Ok(Data::Skipped("a long double value (not x87 here)".into()));
    }
    let value = obj.get("value").ok_or_else(|| MappingError { path: path.into(), why: "no `value`".into() })?;
    let (shape, leaves) = nested(value, path)?;
    let mut bytes = Vec::with_capacity(leaves.len() * 32);
    for l in leaves {
        let bad = || MappingError { path: path.into(), why: format!("{l} is not a long double value") };
        let (re, im) = match l {
            Value::String(s) if complex => complex_of(s).ok_or_else(bad)?,
            other => (float_of(other).ok_or_else(bad)?, 0.0),
        };
        bytes.extend_from_slice(&x87(re));
        if complex {
            bytes.extend_from_slice(&x87(im));
        }
    }
    Ok(Data::Array(Array { shape, values: Values::LongDouble { complex, bytes } }))
}

/// `x` as an x87 80-bit extended float (exact: every f64 is one), padded to 16 bytes.
fn x87(x: f64) -> [u8; 16] {
    let bits = x.to_bits();
    let sign = (bits >> 63) as u16;
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (e, m): (u16, u64) = match exp {
        0 if frac == 0 => (0, 0),
        0 => {
            // Subnormal: normalise (x87 has the range to hold it as a normal number).
            let shift = frac.leading_zeros() - 11;
            ((1 - 1023 + 16383 - shift as i32) as u16, (frac << shift) << 11)
        }
        0x7ff => (0x7fff, (1 << 63) | (frac << 11)),
        _ => ((exp - 1023 + 16383) as u16, (1 << 63) | (frac << 11)),
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&m.to_le_bytes());
    out[8..10].copy_from_slice(&((sign << 15) | e).to_le_bytes());
    out
}

fn float_of(l: &Value) -> Option<f64> {
    match l {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Python's complex text: `(1+2j)`, `1-2j`, `2j`, `nan`, `(nan+infj)`.
fn complex_of(s: &str) -> Option<(f64, f64)> {
    let s = s.trim();
    let s = s.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(s);
    let Some(body) = s.strip_suffix('j') else { return Some((s.parse().ok()?, 0.0)) };
    // The imaginary part starts at the last sign not at the start and not after an exponent.
    let b = body.as_bytes();
    let split = (1..b.len()).rev().find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E'));
    match split {
        Some(i) => Some((body[..i].parse().ok()?, body[i..].parse().ok()?)),
        None => Some((0.0, body.parse().ok()?)),
    }
}

/// IEEE half-precision bits of `x`, rounded to nearest even.
fn f16_bits(x: f64) -> u16 {
    let f = x as f32;
    let bits = f.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if f.is_nan() {
        return sign | 0x7e00;
    }
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mant = bits & 0x7f_ffff;
    if exp >= 31 {
        return sign | 0x7c00;
    }
    if exp <= 0 {
        if exp < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - exp) as u32;
        let half = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = u32::from(rest > mid || (rest == mid && half & 1 == 1));
        return sign | (half + round) as u16;
    }
    let half = ((exp as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    let round = u32::from(rest > 0x1000 || (rest == 0x1000 && half & 1 == 1));
    sign | (half + round) as u16
}

/// A numpy array-interface type string as blissdata allows it (`|u1`, `b1`, `<f8`, `>i4`,
/// `<c16`; `<f16`/`<c32` are long doubles).
fn parse_binary(s: &str, path: &str) -> Result<Binary, MappingError> {
    if matches!(s, "<f16" | ">f16" | "<c32" | ">c32") {
        return Ok(Binary::LongDouble { complex: s.ends_with("c32"), big: s.starts_with('>') });
    }
    let full = if matches!(s, "i1" | "u1" | "b1") { format!("|{s}") } else { s.to_owned() };
    let ok = matches!(full.as_bytes().first(), Some(b'<' | b'>' | b'|'));
    match Dtype::parse(&full) {
        Ok(d) if ok && !(full.starts_with('|') && d.element.size() != 1) => Ok(Binary::Dtype(d)),
        _ => bad(path, format!("unknown binary dtype {s:?}")),
    }
}

fn inline_b64(obj: &Map<String, Value>, path: &str) -> Result<Data, MappingError> {
    let binary = parse_binary(str_field(obj, "dtype", path)?, path)?;
    let bytes = base64(str_field(obj, "value", path)?)
        .ok_or_else(|| MappingError { path: path.into(), why: "`value` is not base64".into() })?;
    let dtype = match binary {
        Binary::Dtype(d) => d,
        Binary::LongDouble { complex, big } => {
            let size = if complex { 32 } else { 16 };
            let n = bytes.len() as u64;
            let shape = shape_field(obj.get("shape"), path)?.unwrap_or_else(|| vec![n / size]);
            if !n.is_multiple_of(size) || shape.iter().product::<u64>() * size != n {
                return bad(path, format!("{n} bytes do not fill shape {shape:?} of {size}-byte long doubles"));
            }
            if big || !LONG_DOUBLE_IS_X87 {
                return Ok(Data::Skipped("a long double value not in this machine's format".into()));
            }
            return Ok(Data::Array(Array { shape, values: Values::LongDouble { complex, bytes } }));
        }
    };
    let size = dtype.element.size() as u64;
    let n = bytes.len() as u64;
    if !n.is_multiple_of(size) {
        return bad(path, format!("{n} bytes are no whole number of {dtype} elements"));
    }
    let shape = shape_field(obj.get("shape"), path)?.unwrap_or_else(|| vec![n / size]);
    if shape.iter().product::<u64>() * size != n {
        return bad(path, format!("{n} bytes do not fill shape {shape:?} of {dtype}"));
    }
    Ok(Data::Array(numeric(dtype, shape, bytes)))
}

/// Standard base64 (with `=` padding, line breaks allowed: Python's `encodebytes` output).
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b'\n' | b'\r' | b' ' | b'\t' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (pad <= 2 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Result<Data, MappingError> {
        parse_data(&v, "/x")
    }

    fn nums(d: Data) -> (String, Vec<u64>, Vec<u8>) {
        match d {
            Data::Array(Array { shape, values: Values::Numeric { dtype, bytes } }) => (dtype.to_string(), shape, bytes),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn raw_values_take_numpy_types() {
        assert_eq!(nums(data(json!(3)).unwrap()), ("<i8".into(), vec![], 3i64.to_le_bytes().to_vec()));
        assert_eq!(nums(data(json!([true, 1.5])).unwrap()).0, "<f8");
        assert_eq!(nums(data(json!([[1, 2], [3, 4]])).unwrap()).1, vec![2, 2]);
        assert_eq!(nums(data(json!([])).unwrap()).0, "<f8");
        assert_eq!(nums(data(json!(false)).unwrap()), ("|b1".into(), vec![], vec![0]));
        let Data::Array(a) = data(json!(["a", 1, true, 2.5, 1e20, 1.0, 1e-5])).unwrap() else { panic!() };
        let want = ["a", "1", "True", "2.5", "1e+20", "1.0", "1e-05"];
        assert_eq!(a.values, Values::Strings(want.iter().map(|s| s.to_string()).collect()));
        assert!(data(json!([[1], [2, 3]])).is_err());
        assert!(data(json!(null)).is_err());
        assert!(data(json!([1, null])).is_err());
        assert!(data(json!({"value": 1})).is_err());
        assert!(data(json!({"type": "zarr"})).is_err());
    }

    #[test]
    fn inline_values_convert_as_numpy_does() {
        let d = data(json!({"type": "inline", "dtype": "int8", "value": [1, "5", 1.7, true]})).unwrap();
        assert_eq!(nums(d).2, vec![1, 5, 1, 1]);
        assert!(data(json!({"type": "inline", "dtype": "int8", "value": 300})).is_err());
        let d = nums(data(json!({"type": "inline", "dtype": "float32", "value": "nan"})).unwrap());
        assert!(f32::from_le_bytes(d.2[..4].try_into().unwrap()).is_nan());
        let d = nums(data(json!({"type": "inline", "dtype": "complex128", "value": "(1+2j)"})).unwrap());
        assert_eq!(d.2, [1f64.to_le_bytes(), 2f64.to_le_bytes()].concat());
        assert_eq!(complex_of("1.5e-3-2j"), Some((1.5e-3, -2.0)));
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.5), 0xc100);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        if LONG_DOUBLE_IS_X87 {
            let Data::Array(a) = data(json!({"type": "inline", "dtype": "float128", "value": [1, -2.5]})).unwrap()
            else {
                panic!()
            };
            // 1.0 and -2.5 in x87 extended precision.
            let want: Vec<u8> = [(0x8000_0000_0000_0000u64, 0x3fffu16), (0xa000_0000_0000_0000, 0xc000)]
                .iter()
                .flat_map(|&(m, e)| [m.to_le_bytes().to_vec(), e.to_le_bytes().to_vec(), vec![0; 6]].concat())
                .collect();
            assert_eq!(a.values, Values::LongDouble { complex: false, bytes: want });
        }
        assert!(data(json!({"type": "inline", "dtype": "str", "value": "a"})).is_err());
    }

    #[test]
    fn base64_values_are_decoded_and_shaped() {
        // numpy.arange(3, dtype=">u2").tobytes(), as Python's base64.encodebytes writes it.
        let d = nums(data(json!({"type": "inline_b64", "dtype": ">u2", "value": "AAAAAQAC\n"})).unwrap());
        assert_eq!(d, (">u2".into(), vec![3], vec![0, 0, 0, 1, 0, 2]));
        let d = data(json!({"type": "inline_b64", "dtype": "u1", "shape": [2, 2], "value": "AQIDBA=="})).unwrap();
        assert_eq!(nums(d).1, vec![2, 2]);
        assert!(data(json!({"type": "inline_b64", "dtype": "<u2", "shape": [2], "value": "AQID"})).is_err());
        assert!(data(json!({"type": "inline_b64", "dtype": "<f8", "value": "!!"})).is_err());
        assert!(data(json!({"type": "inline_b64", "dtype": "|f8", "value": ""})).is_err());
    }

    #[test]
    fn compounds_have_named_columns_of_one_shape() {
        let d = data(json!({"type": "compound", "columns": [["a", [1, 2]], ["b", {"type": "inline", "dtype": "float32", "value": [1, 2]}]]}))
            .unwrap();
        let Data::Array(Array { shape, values: Values::Compound(cols) }) = d else { panic!() };
        assert_eq!(shape, vec![2]);
        assert_eq!(cols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(data(json!({"type": "compound", "columns": [["a", [1, 2]], ["b", [1]]]})).is_err());
        assert!(data(json!({"type": "compound", "columns": [["a", 1], ["a", 2]]})).is_err());
        assert!(data(json!({"type": "compound", "columns": []})).is_err());
        assert!(data(json!({"type": "compound", "columns": [["a", {"type": "stream", "stream": "s"}]]})).is_err());
    }

    #[test]
    fn items_parse_and_bad_ones_name_their_path() {
        let m = json!({"type": "group", "attributes": {"NX_class": "NXroot"}, "children": {
            "1.1": {"type": "group", "children": {
                "title": "ascan",
                "n": {"type": "dataset", "attributes": {"units": "mm"}, "value": 2},
                "d": {"type": "stream", "stream": "diode:diode"},
                "l": {"type": "soft_link", "target_path": "/1.1/d"},
                "e": {"type": "external_link", "target_file": "o.h5", "target_path": "/x"},
                "v": {"type": "virtual_dataset", "dtype": "<f8", "shape": [4], "virtual_sources": [
                    {"vspace": {"start": [0], "count": [4]}, "src_file": ".", "src_dataset": "/x",
                     "src_space": {"start": [0, 0], "count": [2, 2]}}]},
            }},
        }});
        let Item::Group { attrs, children } = parse_root(&m).unwrap() else { panic!() };
        assert_eq!(attrs[0].0, "NX_class");
        let Item::Group { children: c, .. } = &children[0].1 else { panic!() };
        assert_eq!(c.len(), 6);
        let get = |n: &str| &c.iter().find(|(k, _)| k == n).unwrap().1;
        assert_eq!(get("d").stream(), Some("diode:diode"));
        assert_eq!(get("n").attrs()[0].0, "units");
        assert_eq!(get("l"), &Item::SoftLink { target: "/1.1/d".into() });
        let Item::Virtual { sources, .. } = get("v") else { panic!() };
        assert_eq!(sources[0].src.extent(), vec![2, 2]);
        let e = parse_root(&json!({"type": "group", "children": {"a": {"type": "group", "children": {
            "b": {"type": "dataset", "attributes": {"x": {"type": "stream", "stream": "s"}}, "value": 1}}}}}))
        .unwrap_err();
        assert_eq!(e.path, "/a/b@x");
        assert!(parse_root(&json!(5)).is_err());
        assert!(parse_root(&json!({"type": "group", "children": {"a": {"type": "soft_link"}}})).is_err());
        assert!(parse_root(&json!({"type": "group", "children": {"a/b": 1}})).is_err());
        assert!(parse_root(&json!({"type": "group", "children": {"a": {"type": "dataset"}}})).is_err());
    }
}
