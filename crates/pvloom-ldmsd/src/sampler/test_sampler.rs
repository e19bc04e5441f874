//! `test_sampler` (`sampler/examples/test_sampler/test_sampler.c`): sets whose schemas are
//! written in the configuration, one `config` line at a time.
//!
//! - `action=add_schema schema=S metrics=NAME:m|d:TYPE:INIT[:COUNT[:UNIT]],...` (`delim=`
//!   replaces `:`), or `num_metrics=N [type=T] [init_value=V]` for `metric_0..N-1` (data,
//!   default U64, init 0, no unit). Only primitive types and their arrays are supported here
//!   (not the `[...]` list and `{...}` record forms).
//! - `action=add_set schema=S instance=I producer=P [component_id=C] [job_id=J]`: one set,
//!   every metric at its initial value (an array: each element), then `component_id` and
//!   `job_id` overwritten when given and non-zero. Owner and group are this process's (or
//!   `uid=`/`gid=`), permissions 0440 (or `perm=`).
//! - `action=default [schema=my_schema] [num_metrics=10]`: a schema of U64 data metrics
//!   `metric_N`, unit `unit`, initial value 1 (no set).
//! - `action=add_lists schema=S [value_types=t,...] [max_len=n,...] [min_len=n,...]`:
//!   meta `component_id`, `job_id`, `app_id`, the record type `test_record` (every
//!   primitive type, arrays of 4), `round`, then per list `list_N_len` and `list_N`.
//!
//! Each sample: a classic set's data metrics become their first element as an integer plus
//! one (every element of an array; a char `'a' + v % 26`, a char array such chars and a final
//! NUL; meta metrics never change). A lists set's `round` grows by one and each list is
//! refilled with a random number of entries in `min_len..=max_len`, entry `j` holding
//! `round + j` in every element.

use std::collections::HashMap;
use std::time::Instant;

use pvloom_ldms::set::{ListEntry, LocalSet, MetricSpec, MetricValue, RecordInst, SetInfo, Timestamp, ValueType};

use super::base::BaseConfig;
use super::values::{as_u64, filled, int_scalar, type_by_name};
use super::{Sampler, SamplerError, end_time, sizing};
use crate::config::PluginConfig;

const PLUGIN: &str = "test_sampler";
/// Array length of the record members and array list entries of `add_lists`.
pub const ARRAY_COUNT: u32 = 4;
/// Default `max_len` of `add_lists`.
pub const LIST_MAX_LENGTH: usize = 5;
/// Name of the record type `add_lists` creates.
pub const RECORD_TYPE: &str = "test_record";

fn err(msg: impl Into<String>) -> SamplerError {
    SamplerError::Config { plugin: PLUGIN, msg: msg.into() }
}

/// One list of an `add_lists` schema.
#[derive(Clone, Debug)]
struct ListInfo {
    /// Metric index of the list (its length metric is the one before).
    index: usize,
    /// Entry type (RECORD_INST for records of `test_record`).
    ty: ValueType,
    /// Elements of an array entry.
    count: usize,
    min_len: usize,
    max_len: usize,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Metrics from `add_schema` or `default`: data metric indices, types and counts.
    Classic { data: Vec<(usize, ValueType, usize)> },
    /// `add_lists`.
    Lists { rec_type: usize, round: usize, lists: Vec<ListInfo> },
}

#[derive(Clone, Debug)]
struct TsSchema {
    metrics: Vec<MetricSpec>,
    /// Initial value of each metric, as a scalar of its element type (None: lists, records).
    inits: Vec<Option<MetricValue>>,
    kind: Kind,
}

/// The test_sampler plugin: any number of schemas and sets.
#[derive(Debug)]
pub struct TestSampler {
    schemas: HashMap<String, TsSchema>,
    rng: u64,
}

impl Default for TestSampler {
    fn default() -> Self {
        Self::new()
    }
}

/// `%u` / `%i` as sscanf reads them into a C integer: optional sign, decimal digits (`%i`:
/// also `0x` hex and leading-0 octal); the result wraps like the C conversion. No digits: 0.
fn c_int(s: &str, auto_base: bool) -> u64 {
    let s = s.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if auto_base && (s.starts_with("0x") || s.starts_with("0X")) {
        (16, &s[2..])
    } else if auto_base && s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let mut v: u64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        v = v.saturating_mul(radix as u64).saturating_add(d as u64);
    }
    if neg { v.wrapping_neg() } else { v }
}

/// `strtod`: the longest leading part that is a number; 0 if none.
fn c_float(s: &str) -> f64 {
    let s = s.trim_start();
    (1..=s.len()).rev().filter(|&n| s.is_char_boundary(n)).find_map(|n| s[..n].parse::<f64>().ok()).unwrap_or(0.0)
}

/// The initial value text as `__metric_init_value_set` stores it for `ty`, as a scalar of the
/// element type.
fn init_value(ty: ValueType, text: &str) -> Result<MetricValue, SamplerError> {
    use ValueType as T;
    Ok(match ty.element() {
        T::Char => MetricValue::Char(text.bytes().next().unwrap_or(0)),
        T::F32 => MetricValue::F32(c_float(text) as f32),
        T::D64 => MetricValue::D64(c_float(text)),
        t @ (T::U8 | T::U16 | T::U32 | T::U64) => int_scalar(t, c_int(text, false)).expect("integer type"),
        t @ (T::S8 | T::S16 | T::S32 | T::S64) => int_scalar(t, c_int(text, true)).expect("integer type"),
        t => return Err(err(format!("Unrecognized/not supported type '{}'", t.code()))),
    })
}

/// What a sample stores into a metric of `ty` × `count` for the integer `v`.
fn sample_value(ty: ValueType, count: usize, v: u64) -> Option<MetricValue> {
    let ch = b'a' + (v % 26) as u8;
    Some(match ty {
        ValueType::Char => MetricValue::Char(ch),
        ValueType::CharArray => {
            let mut a = vec![ch; count];
            if let Some(last) = a.last_mut() {
                *last = 0;
            }
            MetricValue::CharArray(a)
        }
        t if t.is_primitive() && t != ValueType::Timestamp => filled(t, count, &int_scalar(t, v)?),
        _ => return None,
    })
}

/// One `NAME:MTYPE:VTYPE:INIT[:COUNT[:UNIT]]` metric definition.
fn parse_metric(def: &str, delim: char) -> Result<(MetricSpec, MetricValue), SamplerError> {
    let bad = || err(format!("add_schema: bad metric definition '{def}'"));
    let mut f = def.split(delim);
    let mut next = || f.next().filter(|t| !t.is_empty());
    let name = next().ok_or_else(bad)?;
    let meta = match next().ok_or_else(bad)?.to_ascii_lowercase().as_str() {
        "d" | "data" => false,
        "m" | "meta" => true,
        _ => return Err(bad()),
    };
    let vtype = next().ok_or_else(bad)?;
    let ty = type_by_name(vtype).ok_or_else(|| err(format!("add_schema: unknown type '{vtype}'")))?;
    if !ty.is_primitive() || ty == ValueType::Timestamp {
        return Err(err(format!("add_schema: type '{vtype}' of '{name}' is not supported")));
    }
    let init = init_value(ty, next().ok_or_else(bad)?)?;
    let count = next().map_or(1, |c| c_int(c, false) as u32);
    let unit = next().unwrap_or("");
    let count = if ty.is_array() { count } else { 1 };
    let mut spec = MetricSpec::new(name, ty, count, meta);
    spec.unit = Some(unit.to_string());
    Ok((spec, init))
}

/// The record type `add_lists` defines: every primitive type named by its C enum name, unit
/// `unit`, scalars of count 1 and arrays of [`ARRAY_COUNT`].
pub fn test_record() -> MetricSpec {
    let members = ValueType::ALL[..22]
        .iter()
        .map(|&t| {
            let name = format!("LDMS_V_{}", c_type_name(t));
            let count = if t.is_array() { ARRAY_COUNT } else { 1 };
            MetricSpec { unit: Some("unit".into()), ..MetricSpec::new(&name, t, count, false) }
        })
        .collect();
    MetricSpec { unit: None, members, ..MetricSpec::new(RECORD_TYPE, ValueType::RecordType, 0, true) }
}

/// `CHAR`, `U8`, ..., `D64_ARRAY`: the suffix of a type's `LDMS_V_` enum name.
pub fn c_type_name(t: ValueType) -> String {
    let e = format!("{:?}", t.element()).to_ascii_uppercase();
    if t.is_array() { format!("{e}_ARRAY") } else { e }
}

/// Heap bytes `n` entries of a primitive list take (`ldms_list_heap_size_get`).
pub fn list_heap(ty: ValueType, n: usize, count: usize) -> usize {
    let count = if ty.is_array() { count } else { 1 };
    let value = match ty {
        ValueType::List => 16,
        t => t.value_size(count as u32).unwrap_or(0).div_ceil(8) * 8,
    };
    n * (value + 12 + 4).div_ceil(64) * 64
}

/// Comma-separated integers, the last one repeated for the lists not given.
fn per_list(v: Option<&str>, n: usize, dflt: usize) -> Vec<usize> {
    let given: Vec<usize> = v
        .map(|s| s.split(',').filter(|t| !t.is_empty()).map(|t| c_int(t, false) as usize).collect())
        .unwrap_or_default();
    (0..n).map(|i| given.get(i).or(given.last()).copied().unwrap_or(dflt)).collect()
}

impl TestSampler {
    /// A test_sampler with no schema yet.
    pub fn new() -> TestSampler {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        TestSampler { schemas: HashMap::new(), rng: seed | 1 }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33
    }

    fn new_schema_name(&self, cfg: &PluginConfig) -> Result<String, SamplerError> {
        let name = cfg.schema.clone().ok_or_else(|| err("Need schema_name"))?;
        if self.schemas.contains_key(&name) {
            return Err(err(format!("Schema '{name}' already exists.")));
        }
        Ok(name)
    }

    fn classic(metrics: Vec<MetricSpec>, inits: Vec<MetricValue>) -> TsSchema {
        let data =
            metrics.iter().enumerate().filter(|(_, m)| !m.meta).map(|(i, m)| (i, m.ty, m.count as usize)).collect();
        TsSchema { metrics, inits: inits.into_iter().map(Some).collect(), kind: Kind::Classic { data } }
    }

    fn add_schema(&mut self, cfg: &PluginConfig) -> Result<(), SamplerError> {
        let name = self.new_schema_name(cfg)?;
        if cfg.get("set_array_card").is_some_and(|c| c_int(c, true) != 1) {
            return Err(err("set_array_card other than 1 is not supported"));
        }
        let delim = cfg.get("delim").and_then(|d| d.chars().next()).unwrap_or(':');
        let (metrics, inits) = if let Some(list) = cfg.get("metrics") {
            if list.contains(['[', '{']) {
                return Err(err("add_schema: list and record metric definitions are not supported"));
            }
            list.split(',').map(|d| parse_metric(d, delim)).collect::<Result<Vec<_>, _>>()?.into_iter().unzip()
        } else {
            let n = cfg.get("num_metrics").ok_or_else(|| err("Either metrics or num_metrics must be given"))?;
            let ty = match cfg.get("type") {
                Some(t) => type_by_name(t).ok_or_else(|| err(format!("unknown type '{t}'")))?,
                None => ValueType::U64,
            };
            let init = init_value(ty, cfg.get("init_value").unwrap_or("0"))?;
            let mut metrics = Vec::new();
            for i in 0..c_int(n, false) as usize {
                metrics.push(MetricSpec { unit: None, ..MetricSpec::new(&format!("metric_{i}"), ty, 1, false) });
            }
            let inits = vec![init; metrics.len()];
            (metrics, inits)
        };
        self.schemas.insert(name, Self::classic(metrics, inits));
        Ok(())
    }

    fn add_default(&mut self, cfg: &PluginConfig) -> Result<(), SamplerError> {
        let name = cfg.schema.clone().unwrap_or_else(|| "my_schema".into());
        if self.schemas.contains_key(&name) {
            return Err(err(format!("Schema '{name}' already exists.")));
        }
        let n = cfg.get("num_metrics").map_or(10, |v| c_int(v, false) as usize);
        let metrics: Vec<MetricSpec> = (0..n)
            .map(|i| MetricSpec {
                unit: Some("unit".into()),
                ..MetricSpec::new(&format!("metric_{i}"), ValueType::U64, 1, false)
            })
            .collect();
        let inits = vec![MetricValue::U64(1); n];
        self.schemas.insert(name, Self::classic(metrics, inits));
        Ok(())
    }

    fn add_lists(&mut self, cfg: &PluginConfig) -> Result<(), SamplerError> {
        let name = cfg.schema.clone().filter(|s| !s.is_empty()).ok_or_else(|| err("schema is required."))?;
        let types: Vec<ValueType> = match cfg.get("value_types") {
            None => vec![ValueType::RecordInst],
            Some(v) => v
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| type_by_name(t).ok_or_else(|| err(format!("unrecognized value type '{t}'"))))
                .collect::<Result<_, _>>()?,
        };
        if types.iter().any(|t| !(t.is_primitive() || *t == ValueType::RecordInst) || *t == ValueType::Timestamp) {
            return Err(err("add_lists: value types must be primitive or record"));
        }
        let max = per_list(cfg.get("max_len"), types.len(), LIST_MAX_LENGTH);
        let min = per_list(cfg.get("min_len"), types.len(), 1);
        if min.iter().zip(&max).any(|(a, b)| a > b) {
            return Err(err("add_lists: min_len is larger than max_len"));
        }
        let u64m = |n: &str, meta: bool, unit: &str| MetricSpec {
            unit: Some(unit.into()),
            ..MetricSpec::new(n, ValueType::U64, 1, meta)
        };
        let rt = test_record();
        let rec_heap = sizing::record_heap_sz(&rt);
        let mut metrics = vec![u64m("component_id", true, ""), u64m("job_id", true, ""), u64m("app_id", true, ""), rt];
        let rec_type = metrics.len() - 1;
        metrics.push(u64m("round", false, "round"));
        let round = metrics.len() - 1;
        let mut lists = Vec::new();
        for (j, &ty) in types.iter().enumerate() {
            metrics.push(u64m(&format!("list_{}_len", j + 1), false, ""));
            let count = if ty.is_array() { ARRAY_COUNT as usize } else { 1 };
            let heap = if ty == ValueType::RecordInst { max[j] * rec_heap } else { list_heap(ty, max[j], count) };
            metrics.push(MetricSpec {
                unit: Some(String::new()),
                ..MetricSpec::new(&format!("list_{}", j + 1), ValueType::List, heap as u32, false)
            });
            lists.push(ListInfo { index: metrics.len() - 1, ty, count, min_len: min[j], max_len: max[j] });
        }
        if self.schemas.contains_key(&name) {
            return Err(err(format!("Schema '{name}' already exists.")));
        }
        let inits = (0..metrics.len())
            .map(|i| match metrics[i].ty {
                ValueType::U64 => Some(MetricValue::U64(if i == round { 0 } else { 1 })),
                _ => None,
            })
            .collect();
        self.schemas.insert(name, TsSchema { metrics, inits, kind: Kind::Lists { rec_type, round, lists } });
        Ok(())
    }

    /// A list's entries, entry `j` filled with `v(j)`.
    fn entries(schema: &TsSchema, rec_type: usize, l: &ListInfo, n: usize, v: impl Fn(usize) -> u64) -> Vec<ListEntry> {
        (0..n)
            .map(|j| {
                let value = if l.ty == ValueType::RecordInst {
                    let members = schema.metrics[rec_type]
                        .members
                        .iter()
                        .map(|m| sample_value(m.ty, m.count as usize, v(j)).expect("primitive member"))
                        .collect();
                    MetricValue::RecordInst(RecordInst { set_data_off: 0, rec_type: rec_type as u32, members })
                } else {
                    sample_value(l.ty, l.count, v(j)).expect("primitive entry")
                };
                ListEntry { heap_off: 0, value }
            })
            .collect()
    }

    fn add_set(&mut self, cfg: &PluginConfig) -> Result<LocalSet, SamplerError> {
        let sname = cfg.schema.clone().ok_or_else(|| err("Need schema name"))?;
        if cfg.instance.is_none() {
            return Err(err("Need set name"));
        }
        let schema = self.schemas.get(&sname).ok_or_else(|| err(format!("Schema '{sname}' does not exist.")))?;
        if cfg.producer.is_none() {
            return Err(err("Need producer name"));
        }
        let base = BaseConfig::from_config(PLUGIN, cfg, &sname)?;
        let job_id = match cfg.get("job_id") {
            Some(j) => j.parse::<u64>().map_err(|_| err(format!("invalid jobid {j}")))?,
            None => 0,
        };
        let layout = sizing::ldmsd_schema(&sname, &base.instance, schema.metrics.clone());
        let info = SetInfo {
            producer: base.producer.clone(),
            instance: base.instance.clone(),
            uid: base.uid,
            gid: base.gid,
            perm: base.perm,
            meta_gn: 1,
        };
        let mut set = LocalSet::new(&layout, &info)?;
        for (i, m) in schema.metrics.iter().enumerate() {
            let Some(init) = &schema.inits[i] else { continue };
            match m.ty {
                ValueType::CharArray => {
                    let mut a = vec![0u8; m.count as usize];
                    if let (Some(first), MetricValue::Char(c)) = (a.first_mut(), init) {
                        *first = *c;
                    }
                    set.set(i, &MetricValue::CharArray(a))?;
                }
                t if t.is_array() => {
                    for e in 0..m.count as usize {
                        set.set_elem(i, e, init)?;
                    }
                }
                t => set.set(i, &filled(t, 1, init))?,
            }
        }
        if let Kind::Lists { rec_type, lists, .. } = &schema.kind {
            let firsts: Vec<(usize, Vec<ListEntry>)> = lists
                .iter()
                .map(|l| {
                    // The record type's first member (a char) holds 'a': every member gets 97.
                    let v = if l.ty == ValueType::RecordInst { b'a' as u64 } else { 0 };
                    (l.index, Self::entries(schema, *rec_type, l, l.max_len, |_| v))
                })
                .collect();
            fill_lists(&mut set, None, firsts, false)?;
        }
        for (name, v) in [("component_id", base.component_id), ("job_id", job_id)] {
            if v == 0 {
                continue;
            }
            let Some(i) = set.meta().index_of(name) else { continue };
            let (ty, count) = (set.meta().metrics[i].ty, set.meta().metrics[i].count as usize);
            let Some(x) = int_scalar(ty, v) else { continue };
            if ty.is_array() {
                for e in 0..count {
                    set.set_elem(i, e, &x)?;
                }
            } else {
                set.set(i, &x)?;
            }
        }
        Ok(set)
    }
}

/// Store the lists (and `round`, and with `lengths` each list's length into the metric before
/// it). ldmsd's heap holds `heap_sz / 64` grains after its 8-byte signature, running 8 bytes
/// past the set's end, so lists at their `max_len` fill it exactly; pvloom's heap stays inside
/// the set and holds one grain less. When the entries do not fit, the longest list is
/// shortened by one entry until they do.
fn fill_lists(
    set: &mut LocalSet,
    round: Option<(usize, u64)>,
    mut lists: Vec<(usize, Vec<ListEntry>)>,
    lengths: bool,
) -> Result<(), SamplerError> {
    loop {
        let attempt = lists.clone();
        let r = set.update_values(|vals| {
            if let Some((i, r)) = round {
                vals[i] = Some(MetricValue::U64(r));
            }
            for (i, e) in attempt {
                if lengths {
                    vals[i - 1] = Some(MetricValue::U64(e.len() as u64));
                }
                vals[i] = Some(MetricValue::List(e));
            }
        });
        match r {
            Err(pvloom_ldms::set::SetError::HeapFull { .. }) => {
                let Some(longest) = lists.iter_mut().filter(|(_, e)| !e.is_empty()).max_by_key(|(_, e)| e.len()) else {
                    return Ok(r?);
                };
                longest.1.pop();
            }
            r => return Ok(r?),
        }
    }
}

impl Sampler for TestSampler {
    fn plugin(&self) -> &'static str {
        PLUGIN
    }

    /// One `config` line: `add_schema`, `default` and `add_lists` create no set; `add_set`
    /// creates one. A line without `action=` does nothing.
    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        match cfg.get("action") {
            None => Ok(Vec::new()),
            Some("add_schema") => self.add_schema(cfg).map(|_| Vec::new()),
            Some("default") => self.add_default(cfg).map(|_| Vec::new()),
            Some("add_lists") => self.add_lists(cfg).map(|_| Vec::new()),
            Some("add_set") => Ok(vec![self.add_set(cfg)?]),
            Some("add_stream") => Err(err("action add_stream is not supported")),
            Some(a) => Err(err(format!("Unrecognized action '{a}'."))),
        }
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        let t0 = Instant::now();
        let sname = &set.meta().schema_name;
        let schema = self.schemas.get(sname).ok_or(SamplerError::State("set of an unknown schema"))?;
        match &schema.kind {
            Kind::Classic { data } => {
                set.transaction_begin(now);
                let mut r = Ok(());
                for &(i, ty, count) in data {
                    let cur = match set.get(i) {
                        Ok(v) => v,
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    };
                    if let Some(v) = sample_value(ty, count, as_u64(&cur).wrapping_add(1))
                        && let Err(e) = set.set(i, &v)
                    {
                        r = Err(e);
                        break;
                    }
                }
                set.transaction_end(end_time(now, t0));
                Ok(r?)
            }
            Kind::Lists { rec_type, round, lists } => {
                let (rec_type, round_idx) = (*rec_type, *round);
                let round = as_u64(&set.get(round_idx)?).wrapping_add(1);
                let lists = lists.clone();
                let lens: Vec<usize> =
                    lists.iter().map(|l| (self.rand() as usize) % (l.max_len + 1 - l.min_len) + l.min_len).collect();
                let schema = &self.schemas[&set.meta().schema_name];
                let filled: Vec<(usize, Vec<ListEntry>)> = lists
                    .iter()
                    .zip(&lens)
                    .map(|(l, &n)| (l.index, Self::entries(schema, rec_type, l, n, |j| round + j as u64)))
                    .collect();
                set.transaction_begin(now);
                let r = fill_lists(set, Some((round_idx, round)), filled, true);
                set.transaction_end(end_time(now, t0));
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_number_forms() {
        assert_eq!(c_int("250", false), 250);
        assert_eq!(c_int("-120", true) as i8, -120);
        assert_eq!(c_int("0x10", true), 16);
        assert_eq!(c_int("010", true), 8);
        assert_eq!(c_int("18446744073709551610", false), u64::MAX - 5);
        assert_eq!(c_float("1000.5xyz"), 1000.5);
        assert_eq!(sample_value(ValueType::CharArray, 3, 98), Some(MetricValue::CharArray(b"uu\0".to_vec())));
        assert_eq!(list_heap(ValueType::U64, 4, 1), 256);
        assert_eq!(list_heap(ValueType::List, 3, 1), 192);
        assert_eq!(sizing::record_heap_sz(&test_record()), 320);
    }
}
