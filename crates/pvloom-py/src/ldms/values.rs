//! Metric values between Python and [`MetricValue`], as the real API shapes them:
//! numbers as `int`/`float`, CHAR as a one-character `str`, CHAR arrays as `str` (up
//! to the first NUL), other arrays as lists, TIMESTAMP as float seconds, LIST as a list
//! of entry values, record instances as dicts (member name → value), RECORD_ARRAY as a
//! list of dicts.

use pvloom_ldms::set::{ListEntry, MetricDesc, MetricValue, RecordInst, SetMeta, Timestamp, ValueType};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

/// The Python value of `v` (`meta` names record members).
pub(crate) fn to_py<'py>(py: Python<'py>, v: &MetricValue, meta: &SetMeta) -> PyResult<Bound<'py, PyAny>> {
    use MetricValue as V;
    Ok(match v {
        V::Char(c) => char_str(py, &[*c]).into_any(),
        V::U8(x) => x.into_pyobject(py)?.into_any(),
        V::S8(x) => x.into_pyobject(py)?.into_any(),
        V::U16(x) => x.into_pyobject(py)?.into_any(),
        V::S16(x) => x.into_pyobject(py)?.into_any(),
        V::U32(x) => x.into_pyobject(py)?.into_any(),
        V::S32(x) => x.into_pyobject(py)?.into_any(),
        V::U64(x) => x.into_pyobject(py)?.into_any(),
        V::S64(x) => x.into_pyobject(py)?.into_any(),
        V::F32(x) => f64::from(*x).into_pyobject(py)?.into_any(),
        V::D64(x) => x.into_pyobject(py)?.into_any(),
        V::CharArray(b) => char_str(py, b).into_any(),
        V::U8Array(a) => PyList::new(py, a)?.into_any(),
        V::S8Array(a) => PyList::new(py, a)?.into_any(),
        V::U16Array(a) => PyList::new(py, a)?.into_any(),
        V::S16Array(a) => PyList::new(py, a)?.into_any(),
        V::U32Array(a) => PyList::new(py, a)?.into_any(),
        V::S32Array(a) => PyList::new(py, a)?.into_any(),
        V::U64Array(a) => PyList::new(py, a)?.into_any(),
        V::S64Array(a) => PyList::new(py, a)?.into_any(),
        V::F32Array(a) => PyList::new(py, a.iter().map(|x| f64::from(*x)))?.into_any(),
        V::D64Array(a) => PyList::new(py, a)?.into_any(),
        V::Timestamp(t) => (f64::from(t.sec) + f64::from(t.usec) * 1e-6).into_pyobject(py)?.into_any(),
        V::List(entries) => {
            let items = entries.iter().map(|e| to_py(py, &e.value, meta)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        V::RecordInst(r) => record_to_py(py, r, meta)?.into_any(),
        V::RecordArray { elems, .. } => {
            let items = elems.iter().map(|r| record_to_py(py, r, meta)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
    })
}

/// Bytes up to the first NUL, as text (Latin-1 for what is not UTF-8).
fn char_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let bytes = &bytes[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => PyString::new(py, s),
        Err(_) => PyString::new(py, &bytes.iter().map(|&b| b as char).collect::<String>()),
    }
}

fn members(meta: &SetMeta, rec_type: u32) -> &[MetricDesc] {
    meta.metrics.get(rec_type as usize).and_then(|d| d.record_type.as_ref()).map_or(&[][..], |rt| rt.members.as_slice())
}

fn record_to_py<'py>(py: Python<'py>, r: &RecordInst, meta: &SetMeta) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (i, v) in r.members.iter().enumerate() {
        let name = members(meta, r.rec_type).get(i).map_or_else(|| i.to_string(), |m| m.name.clone());
        d.set_item(name, to_py(py, v, meta)?)?;
    }
    Ok(d)
}

/// A zero value of a primitive type (`count` elements for arrays).
pub(crate) fn zero(ty: ValueType, count: u32) -> Option<MetricValue> {
    use MetricValue as V;
    use ValueType as T;
    let n = count as usize;
    Some(match ty {
        T::Char => V::Char(0),
        T::U8 => V::U8(0),
        T::S8 => V::S8(0),
        T::U16 => V::U16(0),
        T::S16 => V::S16(0),
        T::U32 => V::U32(0),
        T::S32 => V::S32(0),
        T::U64 => V::U64(0),
        T::S64 => V::S64(0),
        T::F32 => V::F32(0.0),
        T::D64 => V::D64(0.0),
        T::CharArray => V::CharArray(vec![0; n]),
        T::U8Array => V::U8Array(vec![0; n]),
        T::S8Array => V::S8Array(vec![0; n]),
        T::U16Array => V::U16Array(vec![0; n]),
        T::S16Array => V::S16Array(vec![0; n]),
        T::U32Array => V::U32Array(vec![0; n]),
        T::S32Array => V::S32Array(vec![0; n]),
        T::U64Array => V::U64Array(vec![0; n]),
        T::S64Array => V::S64Array(vec![0; n]),
        T::F32Array => V::F32Array(vec![0.0; n]),
        T::D64Array => V::D64Array(vec![0.0; n]),
        T::Timestamp => V::Timestamp(Timestamp::default()),
        _ => return None,
    })
}

fn char_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    if let Ok(b) = value.extract::<Vec<u8>>() {
        return Ok(b);
    }
    Err(PyTypeError::new_err("a char value must be str or bytes"))
}

fn timestamp(value: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    if let Ok((sec, usec)) = value.extract::<(u32, u32)>() {
        return Ok(Timestamp { sec, usec });
    }
    if let Ok(d) = value.cast::<PyDict>() {
        let get = |k: &str| -> PyResult<u32> { d.get_item(k)?.map_or(Ok(0), |v| v.extract()) };
        return Ok(Timestamp { sec: get("sec")?, usec: get("usec")? });
    }
    let f: f64 = value.extract()?;
    if !(0.0..4.3e9).contains(&f) {
        return Err(PyValueError::new_err(format!("timestamp {f} out of range")));
    }
    let usec = ((f.fract() * 1e6).round() as u32).min(999_999);
    Ok(Timestamp { sec: f.trunc() as u32, usec })
}

/// `value` as a primitive of type `ty`: a scalar, or an array of `count` elements
/// (`count: None`: as many as given). A shorter array keeps the tail of `current`.
pub(crate) fn primitive(
    value: &Bound<'_, PyAny>,
    ty: ValueType,
    count: Option<u32>,
    current: Option<&MetricValue>,
) -> PyResult<MetricValue> {
    use MetricValue as V;
    use ValueType as T;
    macro_rules! array {
        ($t:ty, $variant:ident) => {{
            let mut given: Vec<$t> = value.extract()?;
            if let Some(n) = count {
                let n = n as usize;
                if given.len() > n {
                    return Err(PyValueError::new_err(format!("{} elements for an array of {n}", given.len())));
                }
                if given.len() < n {
                    let tail: Vec<$t> = match current {
                        Some(V::$variant(cur)) if cur.len() == n => cur[given.len()..].to_vec(),
                        _ => vec![<$t>::default(); n - given.len()],
                    };
                    given.extend(tail);
                }
            }
            V::$variant(given)
        }};
    }
    Ok(match ty {
        T::Char => {
            let b = if let Ok(i) = value.extract::<u8>() { vec![i] } else { char_bytes(value)? };
            if b.len() > 1 {
                return Err(PyValueError::new_err("a CHAR metric takes one character"));
            }
            V::Char(b.first().copied().unwrap_or(0))
        }
        T::U8 => V::U8(value.extract()?),
        T::S8 => V::S8(value.extract()?),
        T::U16 => V::U16(value.extract()?),
        T::S16 => V::S16(value.extract()?),
        T::U32 => V::U32(value.extract()?),
        T::S32 => V::S32(value.extract()?),
        T::U64 => V::U64(value.extract()?),
        T::S64 => V::S64(value.extract()?),
        T::F32 => V::F32(value.extract::<f64>()? as f32),
        T::D64 => V::D64(value.extract()?),
        T::Timestamp => V::Timestamp(timestamp(value)?),
        T::CharArray => {
            let mut b = char_bytes(value)?;
            if let Some(n) = count {
                let n = n as usize;
                if b.len() > n {
                    return Err(PyValueError::new_err(format!("{} bytes for a char[{n}]", b.len())));
                }
                b.resize(n, 0);
            }
            V::CharArray(b)
        }
        T::U8Array => array!(u8, U8Array),
        T::S8Array => array!(i8, S8Array),
        T::U16Array => array!(u16, U16Array),
        T::S16Array => array!(i16, S16Array),
        T::U32Array => array!(u32, U32Array),
        T::S32Array => array!(i32, S32Array),
        T::U64Array => array!(u64, U64Array),
        T::S64Array => array!(i64, S64Array),
        T::F32Array => array!(f32, F32Array),
        T::D64Array => array!(f64, D64Array),
        other => return Err(PyTypeError::new_err(format!("{other:?} is not a primitive type"))),
    })
}

/// A record instance of record type `rec_type` from a dict (member name → value; a
/// member left out is zero).
fn record_from_py(d: &Bound<'_, PyDict>, rec_type: u32, meta: &SetMeta) -> PyResult<RecordInst> {
    let descs = members(meta, rec_type);
    if descs.is_empty() {
        return Err(PyValueError::new_err(format!("metric {rec_type} is not a record type")));
    }
    for key in d.keys() {
        let key: String = key.extract()?;
        if !descs.iter().any(|m| m.name == key) {
            return Err(PyValueError::new_err(format!("record type {rec_type} has no member {key:?}")));
        }
    }
    let members = descs
        .iter()
        .map(|m| match d.get_item(&m.name)? {
            Some(v) => primitive(&v, m.ty, Some(m.count), None),
            None => zero(m.ty, m.count).ok_or_else(|| PyValueError::new_err("bad record member type")),
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(RecordInst { set_data_off: 0, rec_type, members })
}

/// The index of a RECORD_TYPE metric named by `key` (its name or index), or the only one.
fn record_type(meta: &SetMeta, key: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    let types: Vec<usize> =
        meta.metrics.iter().enumerate().filter(|(_, m)| m.ty == ValueType::RecordType).map(|(i, _)| i).collect();
    let found = match key {
        Some(k) if k.is_instance_of::<PyString>() => {
            let name: String = k.extract()?;
            types.iter().copied().find(|&i| meta.metrics[i].name == name)
        }
        Some(k) => {
            let i: usize = k.extract()?;
            types.contains(&i).then_some(i)
        }
        None => types.first().copied(),
    };
    found.map(|i| i as u32).ok_or_else(|| PyValueError::new_err("no such record type in the set"))
}

/// One LIST entry: `(type, value)` (type a `V_*` code; `V_RECORD_INST` takes a dict,
/// with an optional third item naming the record type), or a dict (a record instance).
fn entry_from_py(item: &Bound<'_, PyAny>, meta: &SetMeta) -> PyResult<MetricValue> {
    if let Ok(d) = item.cast::<PyDict>() {
        return Ok(MetricValue::RecordInst(record_from_py(d, record_type(meta, None)?, meta)?));
    }
    let t = item.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("a list entry is (type, value) or a dict"))?;
    if t.len() < 2 {
        return Err(PyTypeError::new_err("a list entry is (type, value)"));
    }
    let code: u8 = t.get_item(0)?.extract()?;
    let ty = ValueType::from_code(code).ok_or_else(|| PyValueError::new_err(format!("bad type {code}")))?;
    let value = t.get_item(1)?;
    match ty {
        ValueType::RecordInst => {
            let rt = if t.len() > 2 { Some(t.get_item(2)?) } else { None };
            let d = value.cast::<PyDict>().map_err(|_| PyTypeError::new_err("a record entry takes a dict"))?;
            Ok(MetricValue::RecordInst(record_from_py(d, record_type(meta, rt.as_ref())?, meta)?))
        }
        ValueType::List => {
            let items = value.try_iter()?.map(|i| entry_from_py(&i?, meta)).collect::<PyResult<Vec<_>>>()?;
            Ok(MetricValue::List(items.into_iter().map(|value| ListEntry { heap_off: 0, value }).collect()))
        }
        ty => primitive(&value, ty, None, None),
    }
}

/// `value` for metric `index` of `meta`, whose current value is `current`.
pub(crate) fn from_py(
    value: &Bound<'_, PyAny>,
    index: usize,
    meta: &SetMeta,
    current: Option<&MetricValue>,
) -> PyResult<MetricValue> {
    let desc = meta.metrics.get(index).ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(index))?;
    match desc.ty {
        ValueType::List => {
            let items = value.try_iter()?.map(|i| entry_from_py(&i?, meta)).collect::<PyResult<Vec<_>>>()?;
            Ok(MetricValue::List(items.into_iter().map(|value| ListEntry { heap_off: 0, value }).collect()))
        }
        ValueType::RecordArray => {
            let Some(MetricValue::RecordArray { rec_type, inst_sz, elems }) = current else {
                return Err(PyValueError::new_err("the record array's layout is unknown"));
            };
            let given: Vec<Bound<'_, PyAny>> = value.try_iter()?.collect::<PyResult<_>>()?;
            if given.len() > elems.len() {
                return Err(PyValueError::new_err(format!("{} records for an array of {}", given.len(), elems.len())));
            }
            let mut out = elems.clone();
            for (slot, item) in out.iter_mut().zip(&given) {
                let d = item.cast::<PyDict>().map_err(|_| PyTypeError::new_err("a record is a dict"))?;
                let mut r = record_from_py(d, *rec_type, meta)?;
                r.set_data_off = slot.set_data_off;
                *slot = r;
            }
            Ok(MetricValue::RecordArray { rec_type: *rec_type, inst_sz: *inst_sz, elems: out })
        }
        ValueType::RecordType => Err(PyTypeError::new_err("a record type metric cannot be written")),
        ty => primitive(value, ty, Some(desc.count), current),
    }
}
