//! ldmsd's own numbers for a schema (`ldms.c`, commit 279bd1b8): the schema digest, the
//! meta section size it allocates (an estimate made from the schema, larger than the
//! layout needs) and the heap size.

use pvloom_ldms::set::{MetricSpec, Schema, ValueType};

use super::digest::sha256;

/// `sizeof(struct ldms_set_hdr)`: its fields end at 140, where the dictionary starts, but
/// the struct holds a u64 so the compiler pads it to 144 (this is what makes meminfo's
/// meta_sz 2976 and procnetdev2's 2272).
const SET_HDR: usize = 144;
/// `sizeof(struct ldms_value_desc)` (27 bytes packed to 28).
const VALUE_DESC: usize = 28;
/// `sizeof(struct ldms_record_type)` and `sizeof(struct ldms_record_inst)`.
const RECORD_HDR: usize = 16;
/// `sizeof(struct ldms_list)`.
const LIST_SZ: usize = 16;
/// `sizeof(struct ldms_list_entry)`.
const LIST_ENTRY: usize = 12;
/// Heap grain, and the allocation prefix the heap puts before each block.
const GRAIN: usize = 64;
const ALLOC_PREFIX: usize = 4;
/// `LDMS_HEAP_MIN_SIZE`: heaps are multiples of this.
const HEAP_MIN: usize = 512;
/// `LDMS_LIST_HEAP`: the heap a LIST of count 0 reserves.
const LIST_HEAP: usize = 512;
/// Length of the digest stored after the schema name.
const DIGEST_LEN: usize = 32;

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Size of a descriptor slot (`__ldms_metric_size_get`: name, NUL, unit and NUL if any).
fn desc_sz(m: &MetricSpec) -> usize {
    round8(VALUE_DESC + m.name.len() + 1 + m.unit.as_ref().map_or(0, |u| u.len() + 1))
}

/// Value size (`__ldms_value_size_get`, rounded to 8).
fn value_sz(m: &MetricSpec) -> usize {
    round8(match m.ty {
        ValueType::List => LIST_SZ,
        ValueType::RecordType => RECORD_HDR,
        t => t.value_size(m.count).unwrap_or(0),
    })
}

/// Size of one record instance of a RECORD_TYPE spec (header and member slots).
pub fn record_inst_sz(rt: &MetricSpec) -> usize {
    RECORD_HDR + rt.members.iter().map(value_sz).sum::<usize>()
}

/// Heap bytes one record instance takes as a list entry (`ldms_record_heap_size_get`).
pub fn record_heap_sz(rt: &MetricSpec) -> usize {
    (record_inst_sz(rt) + LIST_ENTRY + ALLOC_PREFIX).div_ceil(GRAIN) * GRAIN
}

/// The schema digest: SHA-256 over each metric's name and 4-byte type code, in order, a
/// RECORD_TYPE's members before the record type itself (`__schema_mdef_add`).
pub fn digest(metrics: &[MetricSpec]) -> [u8; 32] {
    let mut buf = Vec::new();
    let mut put = |m: &MetricSpec| {
        buf.extend_from_slice(m.name.as_bytes());
        buf.extend_from_slice(&(m.ty.code() as u32).to_le_bytes());
    };
    for m in metrics {
        for mm in &m.members {
            put(mm);
        }
        put(m);
    }
    sha256(&buf)
}

/// The meta section size ldmsd allocates (`compute_set_sizes`): the header, per metric a
/// dictionary entry, its descriptor slot and (meta metrics) its value; a record type's
/// member descriptors counted twice (once in its value, once more by
/// `ldms_schema_record_add`), the names with their length bytes and the digest.
pub fn meta_sz(schema_name: &str, instance: &str, metrics: &[MetricSpec]) -> usize {
    let mut s = SET_HDR;
    for m in metrics {
        s += desc_sz(m) + 4;
        if m.ty == ValueType::RecordType {
            let members: usize = m.members.iter().map(|mm| desc_sz(mm) + 4).sum();
            s += RECORD_HDR + 2 * members;
        } else if m.meta {
            s += value_sz(m);
        }
    }
    round8(s + schema_name.len() + 2 + DIGEST_LEN + instance.len() + 2)
}

/// The heap size: the LIST reservations (512 for a count of 0) rounded up to 512.
pub fn heap_sz(metrics: &[MetricSpec]) -> usize {
    let h: usize = metrics
        .iter()
        .filter(|m| m.ty == ValueType::List)
        .map(|m| if m.count == 0 { LIST_HEAP } else { m.count as usize })
        .sum();
    h.div_ceil(HEAP_MIN) * HEAP_MIN
}

/// A [`Schema`] with ldmsd's digest, meta size and heap size for a set named `instance`.
pub fn ldmsd_schema(name: &str, instance: &str, metrics: Vec<MetricSpec>) -> Schema {
    let heap = heap_sz(&metrics);
    Schema {
        name: name.to_string(),
        digest: Some(digest(&metrics)),
        meta_sz: Some(meta_sz(name, instance, &metrics) as u32),
        heap_sz: Some(heap as u32),
        metrics,
    }
}
