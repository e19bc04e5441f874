//! The header line and the rows store_csv writes (`store_csv.c` `store`, `store_metric`,
//! `store_time_job_app`; `store_csv_common.c` `csv_row_format_header`,
//! `__primitive_metric_header`, commit 279bd1b8).

use std::fmt::Write;

use pvloom_ldms::set::{MetricDesc, MetricValue, SetData, SetMeta, Timestamp, ValueType};

use super::{CsvOptions, StoreError};
use crate::store_csv::cfmt::g;

/// Header cell(s) of one primitive column (`__primitive_metric_header`).
fn prim_header(out: &mut String, o: &CsvOptions, name: &str, ty: ValueType, count: usize) {
    let q = if o.ietfcsv { "\"" } else { "" };
    let numeric_array = ty.is_array() && ty != ValueType::CharArray;
    if numeric_array && o.expand_array {
        for j in 0..count {
            if o.userdata {
                let _ = write!(out, ",{q}{name}{j}.userdata{q},{q}{name}{j}.value{q}");
            } else {
                let _ = write!(out, ",{q}{name}{j}{q}");
            }
        }
    } else if o.userdata {
        let _ = write!(out, ",{q}{name}.userdata{q},{q}{name}.value{q}");
    } else {
        let _ = write!(out, ",{q}{name}{q}");
    }
}

/// The first entry of a LIST column, or an error (store_csv cannot lay out an empty list).
fn first_entry<'a>(d: &MetricDesc, v: Option<&'a MetricValue>) -> Result<Option<&'a MetricValue>, StoreError> {
    match v {
        Some(MetricValue::List(l)) => Ok(l.first().map(|e| &e.value)),
        _ => Err(StoreError::Unsupported(format!("no list value for {}", d.name))),
    }
}

/// The header line, `\n` included: `#Time,Time_usec,ProducerName,` then each column.
/// `None` when a list column is empty (the real store then writes nothing yet).
pub fn header(o: &CsvOptions, meta: &SetMeta, data: &SetData, cols: &[usize]) -> Result<Option<String>, StoreError> {
    let q = if o.ietfcsv { "\"" } else { "" };
    let mut out = String::from("#");
    let t = if o.time_msec { "Time_msec" } else { "Time" };
    let _ = write!(out, "{q}{t}{q},{q}Time_usec{q},{q}ProducerName{q}");
    for &i in cols {
        let d = &meta.metrics[i];
        match d.ty {
            ValueType::RecordType => {}
            ValueType::Timestamp => {
                let ms = if o.time_msec { "_msec" } else { "" };
                let _ = write!(out, ",{q}{}{ms}{q},{q}{}_usec{q}", d.name, d.name);
            }
            ValueType::List => {
                let Some(first) = first_entry(d, data.values[i].as_ref())? else { return Ok(None) };
                prim_header(&mut out, o, &format!("{}_entry_idx", d.name), ValueType::U64, 1);
                match first {
                    MetricValue::RecordInst(r) => {
                        let rt = meta.metrics.get(r.rec_type as usize).and_then(|m| m.record_type.as_ref());
                        let rt = rt.ok_or_else(|| StoreError::Unsupported("record of an unknown type".into()))?;
                        for m in &rt.members {
                            prim_header(&mut out, o, &format!("{}_{}", d.name, m.name), m.ty, m.count as usize);
                        }
                    }
                    MetricValue::List(_) => return Err(StoreError::Unsupported("a list of lists".into())),
                    v => prim_header(&mut out, o, &d.name, v.ty(), v.count()),
                }
            }
            ty => prim_header(&mut out, o, &d.name, ty, d.count as usize),
        }
    }
    out.push('\n');
    Ok(Some(out))
}

/// `,value` (or `,udata,value`) of a scalar.
fn scalar(out: &mut String, o: &CsvOptions, udata: u64, v: impl std::fmt::Display) {
    if o.userdata {
        let _ = write!(out, ",{udata}");
    }
    let _ = write!(out, ",{v}");
}

/// `,value` (or `,udata,value`) of one value (`store_metric`).
fn value(out: &mut String, o: &CsvOptions, udata: u64, v: &MetricValue) {
    use MetricValue as V;
    let q = if o.ietfcsv { "\"" } else { "" };
    let ud = |out: &mut String| {
        if o.userdata {
            let _ = write!(out, ",{udata}");
        }
    };
    macro_rules! array {
        ($xs:expr, $f:expr) => {{
            if o.expand_array {
                for x in $xs.iter() {
                    ud(out);
                    out.push(',');
                    $f(out, *x);
                }
            } else {
                ud(out);
                for (k, x) in $xs.iter().enumerate() {
                    out.push(if k == 0 { ',' } else { o.array_sep });
                    if k == 0 {
                        out.push(o.array_lquote);
                    }
                    $f(out, *x);
                }
                out.push(o.array_rquote);
            }
        }};
    }
    fn int<T: std::fmt::Display>(out: &mut String, x: T) {
        let _ = write!(out, "{x}");
    }
    let f32s = |out: &mut String, x: f32| out.push_str(&g(x as f64, 9));
    let d64s = |out: &mut String, x: f64| out.push_str(&g(x, 17));
    match v {
        V::CharArray(b) => {
            ud(out);
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            let _ = write!(out, ",{q}{}{q}", String::from_utf8_lossy(&b[..end]));
        }
        V::Char(c) => scalar(out, o, udata, *c as char),
        V::U8(x) => scalar(out, o, udata, x),
        V::S8(x) => scalar(out, o, udata, x),
        V::U16(x) => scalar(out, o, udata, x),
        V::S16(x) => scalar(out, o, udata, x),
        V::U32(x) => scalar(out, o, udata, x),
        V::S32(x) => scalar(out, o, udata, x),
        V::U64(x) => scalar(out, o, udata, x),
        V::S64(x) => scalar(out, o, udata, x),
        V::F32(x) => scalar(out, o, udata, g(*x as f64, 9)),
        V::D64(x) => scalar(out, o, udata, g(*x, 17)),
        V::U8Array(xs) => array!(xs, int),
        V::S8Array(xs) => array!(xs, int),
        V::U16Array(xs) => array!(xs, int),
        V::S16Array(xs) => array!(xs, int),
        V::U32Array(xs) => array!(xs, int),
        V::S32Array(xs) => array!(xs, int),
        V::U64Array(xs) => array!(xs, int),
        // store_csv's S64 array branch (not expanded) hard-codes `"` and `,` instead of the
        // configured quotes and separator.
        V::S64Array(xs) if !o.expand_array => {
            ud(out);
            for (k, x) in xs.iter().enumerate() {
                let _ = if k == 0 { write!(out, ",\"{x}") } else { write!(out, ",{x}") };
            }
            out.push('"');
        }
        V::S64Array(xs) => array!(xs, int),
        V::F32Array(xs) => array!(xs, f32s),
        V::D64Array(xs) => array!(xs, d64s),
        V::Timestamp(t) => {
            ud(out);
            let _ = write!(out, ",{}.{:06},{}", t.sec, t.usec, t.usec);
        }
        V::RecordInst(r) => {
            for m in &r.members {
                value(out, o, udata, m);
            }
        }
        V::List(_) | V::RecordArray { .. } => {
            ud(out);
            out.push(',');
        }
    }
}

/// Append the row(s) for one update to `out`: one row, or one per entry of the (single)
/// list column, each starting `sec.usec,usec,producer`. Nothing for an empty list.
pub fn rows(
    out: &mut String,
    o: &CsvOptions,
    meta: &SetMeta,
    data: &SetData,
    cols: &[usize],
    ts: Timestamp,
) -> Result<usize, StoreError> {
    let lists: Vec<usize> = cols.iter().copied().filter(|&i| meta.metrics[i].ty == ValueType::List).collect();
    if lists.len() > 1 {
        return Err(StoreError::Unsupported(format!(
            "set '{}' has more than one list; store it with a decomposition",
            meta.instance_name
        )));
    }
    let n = match lists.first() {
        Some(&i) => match &data.values[i] {
            Some(MetricValue::List(l)) => l.len(),
            _ => 0,
        },
        None => 1,
    };
    for row in 0..n {
        if o.time_msec {
            let _ = write!(out, "{},{}", ts.sec as u64 * 1000 + ts.usec as u64 / 1000, ts.usec % 1000);
        } else {
            let _ = write!(out, "{}.{:06},{}", ts.sec, ts.usec, ts.usec);
        }
        let _ = write!(out, ",{}", meta.producer);
        for &i in cols {
            let d = &meta.metrics[i];
            let v = if d.is_meta() { meta.values[i].as_ref() } else { data.values[i].as_ref() };
            match (d.ty, v) {
                (ValueType::RecordType, _) => {}
                (ValueType::List, Some(MetricValue::List(l))) => {
                    value(out, o, d.user_data, &MetricValue::U64(row as u64));
                    value(out, o, d.user_data, &l[row].value);
                }
                (_, Some(v)) => value(out, o, d.user_data, v),
                (_, None) => {
                    return Err(StoreError::Unsupported(format!("no value for {}", d.name)));
                }
            }
        }
        out.push('\n');
    }
    Ok(n)
}
