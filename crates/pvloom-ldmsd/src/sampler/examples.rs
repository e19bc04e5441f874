//! The example samplers of `sampler/examples/`: `array_example` (arrays whose elements all
//! differ), `list_sampler` (a LIST of every primitive type and a LIST of LISTs) and
//! `record_sampler` (a record type, a LIST of record instances and a RECORD_ARRAY). All three
//! use sampler_base ([`BaseConfig`]) and make one set.

use std::time::Instant;

use pvloom_ldms::set::{ListEntry, LocalSet, MetricSpec, MetricValue, RecordInst, Timestamp, ValueType};

use super::base::{BASE_METRICS, BaseConfig};
use super::test_sampler::{c_type_name, list_heap};
use super::values::{c_string, per_element};
use super::{Sampler, SamplerError, check_configured, check_unconfigured, end_time, sizing};
use crate::config::PluginConfig;

fn deprecated_set(plugin: &'static str, cfg: &PluginConfig) -> Result<(), SamplerError> {
    match cfg.get("set") {
        Some(_) => Err(SamplerError::Config { plugin, msg: "config argument set has been deprecated".into() }),
        None => Ok(()),
    }
}

/// The twelve primitive scalar and array types (`CHAR` .. `D64_ARRAY`) in enum order.
fn primitive_types() -> &'static [ValueType] {
    &ValueType::ALL[..22]
}

/// `array_example`: after the common metrics, ten arrays of 10 elements (`u8_array` ..
/// `double_array`), or `num_metrics=N [num_ele=E] [type=T]` arrays `array_0..` of one type.
/// Sample `k` (from 0, wrapping at 256) writes element `i` as `k + i` (unsigned), `k - i`
/// (signed) or `k + i / 10` (floating point), one element at a time.
#[derive(Debug, Default)]
pub struct ArrayExample {
    arrays: Vec<(ValueType, usize)>,
    off: u8,
    configured: bool,
}

/// array_example's default arrays.
pub const ARRAY_EXAMPLE_METRICS: [(&str, ValueType); 10] = [
    ("u8_array", ValueType::U8Array),
    ("s8_array", ValueType::S8Array),
    ("u16_array", ValueType::U16Array),
    ("s16_array", ValueType::S16Array),
    ("u32_array", ValueType::U32Array),
    ("s32_array", ValueType::S32Array),
    ("u64_array", ValueType::U64Array),
    ("s64_array", ValueType::S64Array),
    ("float_array", ValueType::F32Array),
    ("double_array", ValueType::D64Array),
];

impl ArrayExample {
    /// An unconfigured array_example.
    pub fn new() -> ArrayExample {
        ArrayExample::default()
    }
}

impl Sampler for ArrayExample {
    fn plugin(&self) -> &'static str {
        "array_example"
    }

    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        check_unconfigured(self.configured)?;
        let base = BaseConfig::from_config("array_example", cfg, "array_example")?;
        let mut specs = Vec::new();
        match cfg.get("num_metrics").map(|v| v.trim().parse::<i64>().unwrap_or(0)) {
            Some(n) if n >= 0 => {
                let ne = cfg.get("num_ele").and_then(|v| v.trim().parse::<i64>().ok()).filter(|&e| e >= 0);
                let ne = ne.unwrap_or(10) as u32;
                let ty = match cfg.get("type") {
                    Some(t) => super::values::type_by_name(t).ok_or_else(|| SamplerError::Config {
                        plugin: "array_example",
                        msg: format!("unknown type {t}"),
                    })?,
                    None => ValueType::U64,
                };
                let ty = ty.array_of().unwrap_or(ty);
                if !ty.is_array() {
                    return Err(SamplerError::Config { plugin: "array_example", msg: "type must be an array".into() });
                }
                for i in 0..n {
                    specs.push(MetricSpec::new(&format!("array_{i}"), ty, ne, false));
                }
            }
            _ => specs.extend(ARRAY_EXAMPLE_METRICS.iter().map(|(n, t)| MetricSpec::new(n, *t, 10, false))),
        }
        self.arrays = specs.iter().map(|s| (s.ty, s.count as usize)).collect();
        let set = base.create_set(BaseConfig::metrics(specs))?;
        self.configured = true;
        Ok(vec![set])
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        check_configured(self.configured)?;
        let t0 = Instant::now();
        let off = self.off as i64;
        set.transaction_begin(now);
        let mut r = Ok(());
        'all: for (k, &(ty, n)) in self.arrays.iter().enumerate() {
            let signed =
                matches!(ty, ValueType::S8Array | ValueType::S16Array | ValueType::S32Array | ValueType::S64Array);
            for i in 0..n {
                let iv = i as i64;
                let whole =
                    per_element(ty, 1, |_| if signed { off - iv } else { off + iv }, |_| iv as f64 / 10.0 + off as f64);
                let Some(elem) = whole.and_then(first_element) else { continue };
                if let Err(e) = set.set_elem(BASE_METRICS + k, i, &elem) {
                    r = Err(e);
                    break 'all;
                }
            }
        }
        self.off = self.off.wrapping_add(1);
        set.transaction_end(end_time(now, t0));
        Ok(r?)
    }
}

/// The first element of a one-element array value, as a scalar.
fn first_element(v: MetricValue) -> Option<MetricValue> {
    use MetricValue as V;
    Some(match v {
        V::CharArray(a) => V::Char(*a.first()?),
        V::U8Array(a) => V::U8(*a.first()?),
        V::S8Array(a) => V::S8(*a.first()?),
        V::U16Array(a) => V::U16(*a.first()?),
        V::S16Array(a) => V::S16(*a.first()?),
        V::U32Array(a) => V::U32(*a.first()?),
        V::S32Array(a) => V::S32(*a.first()?),
        V::U64Array(a) => V::U64(*a.first()?),
        V::S64Array(a) => V::S64(*a.first()?),
        V::F32Array(a) => V::F32(*a.first()?),
        V::D64Array(a) => V::D64(*a.first()?),
        _ => return None,
    })
}

/// Which example's `value_setter` (they differ in a few types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setter {
    List,
    Record,
}

/// The value the example samplers store for `item` into a `ty` with `n` array elements.
fn example_value(who: Setter, ty: ValueType, n: usize, item: i64) -> MetricValue {
    use MetricValue as V;
    use ValueType as T;
    let rec = who == Setter::Record;
    let ints = |f: &dyn Fn(i64) -> i64| per_element(ty, n, |i| f(i as i64), |_| 0.0).expect("primitive");
    match ty {
        T::Char => V::Char(b'a'.wrapping_add(if rec { item % 2 } else { item } as u8)),
        T::U8 => V::U8(item as u8),
        T::S8 => V::S8(if rec { -(item % 128) } else { -item } as i8),
        T::U16 => V::U16((item + 1000) as u16),
        T::S16 => V::S16((-(item + 1000)) as i16),
        T::U32 => V::U32((item + 100_000) as u32),
        T::S32 => V::S32((-(item + 100_000)) as i32),
        T::U64 => V::U64((item + 200_000) as u64),
        T::S64 => V::S64(-(item + 200_000)),
        T::F32 => V::F32(item as f32),
        T::D64 => V::D64(item as f64),
        T::CharArray => c_string(&format!("a_{item}"), n),
        T::U8Array => ints(&|i| item + i),
        T::S8Array => ints(&|i| -(item + i)),
        T::U16Array => ints(&|i| 1000 + item + i),
        T::S16Array => ints(&|i| -(1000 + item + i)),
        T::U32Array => ints(&|i| 100_000 + item + i),
        T::S32Array => ints(&|i| -(100_000 + item + i)),
        T::U64Array => ints(&|i| 500_000 + item + i),
        T::S64Array => ints(&|i| -(500_000 + item + i)),
        T::F32Array if rec => V::F32Array((0..n).map(|i| 0.5f32 + item as f32 + i as f32).collect()),
        T::F32Array => V::F32Array((0..n).map(|i| (item + i as i64) as f32).collect()),
        T::D64Array if rec => V::D64Array((0..n).map(|i| 0.75 + item as f64 + i as f64).collect()),
        T::D64Array => V::D64Array((0..n).map(|i| (1_000_000 + item + i as i64) as f32 as f64).collect()),
        _ => V::U64(0),
    }
}

/// Entries per list of the list and record samplers.
pub const ITEM_COUNT: usize = 3;

/// `list_sampler`: after the common metrics, one LIST per primitive type (named
/// `LDMS_V_CHAR` .. `LDMS_V_D64_ARRAY`, 3 entries, arrays of 4) and `list_o_lists`, three
/// lists each holding one char (`'a'`, `'b'`, `'c'`: lists are homogeneous, so the other
/// types the C code appends are refused). The values are the same every sample.
#[derive(Debug, Default)]
pub struct ListSampler {
    configured: bool,
}

/// Array length of list_sampler's array entries.
pub const LIST_ARRAY_COUNT: usize = 4;

impl ListSampler {
    /// An unconfigured list_sampler.
    pub fn new() -> ListSampler {
        ListSampler::default()
    }
}

impl Sampler for ListSampler {
    fn plugin(&self) -> &'static str {
        "list_sampler"
    }

    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        check_unconfigured(self.configured)?;
        deprecated_set("list_sampler", cfg)?;
        let base = BaseConfig::from_config("list_sampler", cfg, "list_sampler")?;
        let mut total = list_heap(ValueType::List, ITEM_COUNT, 1);
        let mut specs = Vec::new();
        for &t in primitive_types() {
            let heap = list_heap(t, ITEM_COUNT, LIST_ARRAY_COUNT);
            total += heap;
            let name = format!("LDMS_V_{}", c_type_name(t));
            specs.push(MetricSpec { unit: None, ..MetricSpec::new(&name, ValueType::List, heap as u32, false) });
        }
        specs.push(MetricSpec { unit: None, ..MetricSpec::new("list_o_lists", ValueType::List, total as u32, false) });
        let set = base.create_set(BaseConfig::metrics(specs))?;
        self.configured = true;
        Ok(vec![set])
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        check_configured(self.configured)?;
        let t0 = Instant::now();
        let n = |t: ValueType| if t.is_array() { LIST_ARRAY_COUNT } else { 1 };
        let entry = |value| ListEntry { heap_off: 0, value };
        let lists: Vec<MetricValue> = primitive_types()
            .iter()
            .map(|&t| {
                MetricValue::List(
                    (0..ITEM_COUNT).map(|item| entry(example_value(Setter::List, t, n(t), item as i64))).collect(),
                )
            })
            .collect();
        let lol = MetricValue::List(
            (0..ITEM_COUNT)
                .map(|item| {
                    let c = example_value(Setter::List, ValueType::Char, 1, item as i64);
                    entry(MetricValue::List(vec![entry(c)]))
                })
                .collect(),
        );
        set.transaction_begin(now);
        let r = set.update_values(|v| {
            for (k, l) in lists.into_iter().enumerate() {
                v[BASE_METRICS + k] = Some(l);
            }
            v[BASE_METRICS + primitive_types().len()] = Some(lol);
        });
        set.transaction_end(end_time(now, t0));
        Ok(r?)
    }
}

/// `record_sampler`: after the common metrics `round` (U32, +1 per sample), the record type
/// `device_record` (every primitive type, unit `unit`, arrays of 8; with `with_name=1` also
/// `name`, `char[16]`), `device_list` (a LIST of 3 records holding `round + i`, named `list<i>`)
/// and `device_array` (a RECORD_ARRAY of 3 holding `round + i + 3`, named `arr<i>`).
#[derive(Debug, Default)]
pub struct RecordSampler {
    with_name: bool,
    members: Vec<(ValueType, usize)>,
    configured: bool,
}

/// Array length of record_sampler's array members.
pub const RECORD_ARRAY_COUNT: u32 = 8;
/// Length of the `name` member.
pub const RECORD_NAME_LEN: u32 = 16;

impl RecordSampler {
    /// An unconfigured record_sampler.
    pub fn new() -> RecordSampler {
        RecordSampler::default()
    }

    /// The `device_record` type.
    pub fn record_type(with_name: bool) -> MetricSpec {
        let mut members: Vec<MetricSpec> = primitive_types()
            .iter()
            .map(|&t| {
                let count = if t.is_array() { RECORD_ARRAY_COUNT } else { 0 };
                let name = format!("LDMS_V_{}", c_type_name(t));
                MetricSpec { unit: Some("unit".into()), ..MetricSpec::new(&name, t, count, false) }
            })
            .collect();
        if with_name {
            members.push(MetricSpec::new("name", ValueType::CharArray, RECORD_NAME_LEN, false));
        }
        MetricSpec { unit: None, members, ..MetricSpec::new("device_record", ValueType::RecordType, 0, true) }
    }

    fn inst(&self, rec_type: u32, item: i64, name: String) -> RecordInst {
        let mut members: Vec<MetricValue> = self
            .members
            .iter()
            .take(primitive_types().len())
            .map(|&(t, n)| example_value(Setter::Record, t, n, item))
            .collect();
        if self.with_name {
            members.push(c_string(&name, RECORD_NAME_LEN as usize));
        }
        RecordInst { set_data_off: 0, rec_type, members }
    }
}

impl Sampler for RecordSampler {
    fn plugin(&self) -> &'static str {
        "record_sampler"
    }

    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        check_unconfigured(self.configured)?;
        deprecated_set("record_sampler", cfg)?;
        self.with_name = cfg.get("with_name").is_some_and(|v| v.trim().parse::<i64>().unwrap_or(0) != 0);
        let base = BaseConfig::from_config("record_sampler", cfg, "record_sampler")?;
        let rt = Self::record_type(self.with_name);
        self.members = rt.members.iter().map(|m| (m.ty, m.count as usize)).collect();
        let heap = list_heap(ValueType::List, ITEM_COUNT, 1) + ITEM_COUNT * sizing::record_heap_sz(&rt);
        let rec_type = (BASE_METRICS + 1) as u32;
        let specs = vec![
            MetricSpec::new("round", ValueType::U32, 1, false),
            rt,
            MetricSpec { unit: None, ..MetricSpec::new("device_list", ValueType::List, heap as u32, false) },
            MetricSpec {
                unit: None,
                record_type: Some(rec_type),
                ..MetricSpec::new("device_array", ValueType::RecordArray, ITEM_COUNT as u32, false)
            },
        ];
        let set = base.create_set(BaseConfig::metrics(specs))?;
        self.configured = true;
        Ok(vec![set])
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        check_configured(self.configured)?;
        let t0 = Instant::now();
        let round_idx = BASE_METRICS;
        let rec_type = (BASE_METRICS + 1) as u32;
        let round = match set.get(round_idx)? {
            MetricValue::U32(r) => r.wrapping_add(1),
            _ => 1,
        };
        let n = ITEM_COUNT as i64;
        let list: Vec<ListEntry> = (0..n)
            .map(|i| ListEntry {
                heap_off: 0,
                value: MetricValue::RecordInst(self.inst(rec_type, round as i64 + i, format!("list{i}"))),
            })
            .collect();
        let elems: Vec<RecordInst> =
            (0..n).map(|i| self.inst(rec_type, round as i64 + i + n, format!("arr{i}"))).collect();
        let inst_sz = set.meta().metrics[rec_type as usize].record_type.as_ref().map_or(0, |r| r.inst_sz);
        set.transaction_begin(now);
        let r = set.update_values(|v| {
            v[round_idx] = Some(MetricValue::U32(round));
            v[BASE_METRICS + 2] = Some(MetricValue::List(list));
            v[BASE_METRICS + 3] = Some(MetricValue::RecordArray { rec_type, inst_sz, elems });
        });
        set.transaction_end(end_time(now, t0));
        Ok(r?)
    }
}
