//! What `ldms_ls` prints, as text built from decoded sets and directory entries.
//!
//! The formats follow `ldms/src/ldmsd/ldms_ls.c` (normal format): the verbose directory
//! table (`-v`), the per-set block of `-l` (a header line with the consistency and the
//! transaction time, then one line per metric), and every value form: scalars, arrays,
//! lists (nested, of arrays, of records) and record arrays as aligned tables. Times are
//! printed in UTC (`+0000`), as on the hosts the captures were taken on.

use std::fmt::Write;

use super::types::SetSnapshot;
use crate::request::dir::{DirEntry, perm_string};
use crate::set::{MetricDesc, MetricValue, RecordInst, SetMeta, ValueType};

/// `ldms_metric_type_to_str`.
pub fn type_name(t: ValueType) -> &'static str {
    use ValueType as T;
    match t {
        T::Char => "char",
        T::U8 => "u8",
        T::S8 => "s8",
        T::U16 => "u16",
        T::S16 => "s16",
        T::U32 => "u32",
        T::S32 => "s32",
        T::U64 => "u64",
        T::S64 => "s64",
        T::F32 => "f32",
        T::D64 => "d64",
        T::CharArray => "char[]",
        T::U8Array => "u8[]",
        T::S8Array => "s8[]",
        T::U16Array => "u16[]",
        T::S16Array => "s16[]",
        T::U32Array => "u32[]",
        T::S32Array => "s32[]",
        T::U64Array => "u64[]",
        T::S64Array => "s64[]",
        T::F32Array => "f32[]",
        T::D64Array => "d64[]",
        T::List => "list<>",
        T::ListEntry => "entry",
        T::RecordType => "record_type",
        T::RecordInst => "record_inst",
        T::RecordArray => "record[]",
        T::Timestamp => "timestamp",
    }
}

/// Left-justify `s` in `width` bytes (`%-*s`).
fn pad(out: &mut String, s: &str, width: usize) {
    out.push_str(s);
    for _ in s.len()..width {
        out.push(' ');
    }
}

/// C's `%f`.
fn c_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str(if v.is_sign_negative() { "-nan" } else { "nan" });
    } else if v.is_infinite() {
        out.push_str(if v < 0.0 { "-inf" } else { "inf" });
    } else {
        let _ = write!(out, "{v:.6}");
    }
}

/// A char array as `"%s"` prints it: up to the first NUL, bytes as they are.
fn c_str(out: &mut String, b: &[u8]) {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    out.push_str(&String::from_utf8_lossy(&b[..end]));
}

fn join<T>(out: &mut String, v: &[T], mut f: impl FnMut(&mut String, &T)) {
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, x);
    }
}

/// A primitive value or array (`prim_value_format`); false for other types.
fn prim(out: &mut String, v: &MetricValue) -> bool {
    use MetricValue as V;
    match v {
        V::CharArray(b) => {
            out.push('"');
            c_str(out, b);
            out.push('"');
        }
        V::Char(c) => {
            out.push('\'');
            out.push_str(&String::from_utf8_lossy(&[*c]));
            out.push('\'');
        }
        V::U8(x) => {
            let _ = write!(out, "{x}");
        }
        V::U8Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "0x{x:02x}");
        }),
        V::S8(x) => {
            let _ = write!(out, "{x}");
        }
        V::S8Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::U16(x) => {
            let _ = write!(out, "{x}");
        }
        V::U16Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::S16(x) => {
            let _ = write!(out, "{x}");
        }
        V::S16Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::U32(x) => {
            let _ = write!(out, "{x}");
        }
        V::U32Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::S32(x) => {
            let _ = write!(out, "{x}");
        }
        V::S32Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::U64(x) => {
            let _ = write!(out, "{x}");
        }
        V::U64Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::S64(x) => {
            let _ = write!(out, "{x}");
        }
        V::S64Array(a) => join(out, a, |o, x| {
            let _ = write!(o, "{x}");
        }),
        V::F32(x) => c_float(out, f64::from(*x)),
        V::F32Array(a) => join(out, a, |o, x| c_float(o, f64::from(*x))),
        V::D64(x) => c_float(out, *x),
        V::D64Array(a) => join(out, a, |o, x| c_float(o, *x)),
        V::Timestamp(t) => {
            let _ = write!(out, "{}.{:06}", t.sec, t.usec);
        }
        _ => return false,
    }
    true
}

fn prim_string(v: &MetricValue) -> String {
    let mut s = String::new();
    prim(&mut s, v);
    s
}

/// The member descriptors of the record type at metric `rec_type`.
fn members(meta: &SetMeta, rec_type: u32) -> &[MetricDesc] {
    meta.metrics.get(rec_type as usize).and_then(|m| m.record_type.as_ref()).map_or(&[], |r| r.members.as_slice())
}

/// Records as `ldms_ls` tables them: a header of member names (with units) and one
/// row per record, columns as wide as their widest cell; rows are not newline-ended.
fn record_table(out: &mut String, descs: &[MetricDesc], recs: &[&RecordInst]) {
    let mut width: Vec<usize> = descs
        .iter()
        .map(|d| match d.unit.as_deref() {
            Some(u) if !u.is_empty() => d.name.len() + u.len() + 3,
            _ => d.name.len(),
        })
        .collect();
    for r in recs {
        for (w, v) in width.iter_mut().zip(&r.members) {
            *w = (*w).max(prim_string(v).len());
        }
    }
    out.push_str("  ");
    for (i, d) in descs.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let h = match d.unit.as_deref() {
            Some(u) if !u.is_empty() => format!("{} ({u})", d.name),
            _ => d.name.clone(),
        };
        pad(out, &h, width[i]);
    }
    out.push('\n');
    for (n, r) in recs.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str("  ");
        for (i, v) in r.members.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            pad(out, &prim_string(v), width.get(i).copied().unwrap_or(0));
        }
    }
}

/// A value as `value_format` prints it.
pub fn value(out: &mut String, meta: &SetMeta, v: &MetricValue) {
    match v {
        MetricValue::List(entries) => {
            let recs: Vec<&RecordInst> = entries
                .iter()
                .filter_map(|e| match &e.value {
                    MetricValue::RecordInst(r) => Some(r),
                    _ => None,
                })
                .collect();
            if !recs.is_empty() {
                out.push('\n');
                record_table(out, members(meta, recs[0].rec_type), &recs);
                return;
            }
            out.push('[');
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let t = e.value.ty();
                let bracket = t.is_array() && t != ValueType::CharArray;
                if bracket {
                    out.push('[');
                }
                value(out, meta, &e.value);
                if bracket {
                    out.push(']');
                }
            }
            out.push(']');
        }
        MetricValue::RecordArray { rec_type, elems, .. } => {
            out.push('\n');
            let recs: Vec<&RecordInst> = elems.iter().collect();
            record_table(out, members(meta, *rec_type), &recs);
        }
        MetricValue::RecordInst(_) => {}
        v => {
            prim(out, v);
        }
    }
}

/// One `-l` metric line (`metric_printer_normal`).
pub fn metric_line(out: &mut String, meta: &SetMeta, snap: Option<&SetSnapshot>, index: usize) {
    let Some(d) = meta.metrics.get(index) else { return };
    let kind = if d.is_data() { 'D' } else { 'M' };
    out.push(kind);
    out.push(' ');
    pad(out, type_name(d.ty), 12);
    out.push(' ');
    pad(out, &d.name, 42);
    out.push(' ');
    if d.ty == ValueType::RecordType {
        out.push_str("LDMS_V_RECORD_TYPE");
    } else {
        let v = snap.and_then(|s| s.value(index)).or_else(|| meta.values.get(index).and_then(Option::as_ref));
        if let Some(v) = v {
            value(out, meta, v);
        }
    }
    if let Some(u) = &d.unit {
        out.push(' ');
        out.push_str(u);
    }
    out.push('\n');
}

/// `strftime("%a %b %d %H:%M:%S %Y %z")` in UTC.
pub fn date(sec: u32) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = i64::from(sec) / 86_400;
    let rem = i64::from(sec) % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

/// The `-l` block of one set after an update (`print_cb`, normal format): header line,
/// every metric, and the empty line after. `upd_flags` adds `PUSH `/`LAST `.
pub fn set_block(name: &str, snap: &SetSnapshot, upd_flags: u32) -> String {
    let mut out = String::new();
    let ts = snap.timestamp();
    let state = if snap.is_consistent() { "consistent" } else { "inconsistent" };
    let _ = write!(out, "{name}: {state}, last update: {} [{}us] ", date(ts.sec), ts.usec);
    if upd_flags & crate::request::UPD_F_PUSH != 0 {
        out.push_str("PUSH ");
    }
    if upd_flags & crate::request::UPD_F_PUSH_LAST != 0 {
        out.push_str("LAST ");
    }
    out.push('\n');
    for i in 0..snap.meta.card() {
        metric_line(&mut out, &snap.meta, Some(snap), i);
    }
    out.push('\n');
    out
}

/// The line `ldms_ls` prints when an update failed.
pub fn update_error(errno: i32) -> String {
    format!("    Error {errno:x} updating metric set.\n\n")
}

const RULE: &str = "-------------- ------------------------ ------ ------ ------ ------ ------ ------ ---------- ----------------- ----------------- --------\n";

/// The `-v` table header.
pub fn verbose_header() -> String {
    let mut out = String::new();
    let cols: [(usize, &str); 12] = [
        (14, "Schema"),
        (24, "Instance"),
        (6, "Flags"),
        (6, "Msize"),
        (6, "Dsize"),
        (6, "Hsize"),
        (6, "UID"),
        (6, "GID"),
        (10, "Perm"),
        (17, "Update"),
        (17, "Duration"),
        (8, "Info"),
    ];
    for (i, (w, h)) in cols.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        pad(&mut out, h, *w);
    }
    out.push('\n');
    out.push_str(RULE);
    out
}

/// One `-v` table row (`print_set`).
pub fn verbose_line(e: &DirEntry) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<14} {:<24} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>10} {:>10}.{:06} {:>10}.{:06} ",
        e.schema,
        e.name,
        e.flags,
        e.meta_size,
        e.data_size,
        e.heap_size,
        e.uid as i32,
        e.gid as i32,
        perm_string(e.perm),
        e.timestamp.sec as i32,
        e.timestamp.usec as i32,
        e.duration.sec as i32,
        e.duration.usec as i32
    );
    for i in &e.info {
        let _ = write!(out, "\"{}\"=\"{}\" ", i.key, i.value);
    }
    out.push('\n');
    out
}

/// The `-v` footer with the totals; with `long`, the rule of `=` that precedes the sets.
pub fn verbose_footer(entries: &[DirEntry], long: bool) -> String {
    let meta: u64 = entries.iter().map(|e| u64::from(e.meta_size)).sum();
    let data: u64 = entries.iter().map(|e| u64::from(e.data_size)).sum();
    let mut out = String::from(RULE);
    let _ = writeln!(
        out,
        "Total Sets: {}, Meta Data (kB): {:.2}, Data (kB) {:.2}, Memory (kB): {:.2}",
        entries.len(),
        meta as f64 / 1000.0,
        data as f64 / 1000.0,
        (meta + data) as f64 / 1000.0
    );
    if long {
        out.push_str("\n=======================================================================\n\n");
    }
    out
}

/// The whole `-v` table for `entries` (already in the order ldms_ls lists them).
pub fn verbose_table(entries: &[DirEntry], long: bool) -> String {
    let mut out = verbose_header();
    for e in entries {
        out.push_str(&verbose_line(e));
    }
    out.push_str(&verbose_footer(entries, long));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(date(1_795_436_594), "Mon Nov 23 12:23:14 2026 +0000");
        assert_eq!(date(0), "Thu Jan 01 00:00:00 1970 +0000");
        assert_eq!(date(1_796_152_084), "Tue Dec 01 19:08:04 2026 +0000");
    }

    #[test]
    fn floats_as_c_prints_them() {
        let mut s = String::new();
        c_float(&mut s, -3.25);
        c_float(&mut s, f64::INFINITY);
        assert_eq!(s, "-3.250000inf");
    }
}
