//! LDMS metric set images (ldmsd 4.x, protocol 4.2.0.0), sans-I/O.
//!
//! A set is one memory region: the **meta** section (set header, the dictionary of
//! value-descriptor offsets, instance and schema names, the value descriptors, record types
//! and the meta values), followed by the **data** section (the 96-byte data header, the data
//! values and, at its tail, the heap that holds list entries). Every field is little-endian
//! (the byte order of the x86_64 hosts ldmsd runs on; the set header's flags say so).
//!
//! - [`SetMeta::decode`] / [`SetData::decode`] turn images into owned values and report any
//!   inconsistency as a [`SetError`]; they never panic and never read outside the image.
//! - [`Schema::layout`] computes a set's layout the way `ldms.c` does (8-byte value slots),
//!   [`SetMeta::encode`] and [`SetData::encode`] write the images back.
//! - [`LocalSet`] is a set this process produces: its image, written in place.
//!
//! Layouts: `ldms/src/core/ldms_core.h`, `ldms.c`, `ldms_heap.h` (commit 279bd1b8).

use std::sync::Arc;

mod decode;
mod encode;
mod local;

pub use encode::{MetricSpec, Schema, SetInfo, encode_image};
pub use local::{LocalSet, TRANSACTION_BEGIN};

/// Size of the fixed part of the set header; the dictionary starts here.
pub const SET_HDR_SIZE: usize = 140;
/// Size of the data header at the start of the data section.
pub const DATA_HDR_SIZE: usize = 96;
/// Fixed part of a value descriptor, before `name\0unit\0`.
pub const DESC_FIXED_SIZE: usize = 27;
/// Signature at the start of the heap.
pub const HEAP_SIGNATURE: &[u8; 8] = b"BOHEAP0\0";
/// Value-descriptor flag: a data metric.
pub const FLAG_DATA: u8 = 1;
/// Value-descriptor flag: a meta metric.
pub const FLAG_META: u8 = 2;
/// Value-descriptor flag: a record type or a record member.
pub const FLAG_RECORD: u8 = 4;
/// `user_data` that `ldms.c` puts into every record-member descriptor.
pub const RECORD_MEMBER_USER_DATA: u64 = 0x0012_3456_78ab_cdef;
/// Transaction flag of a completed sampler transaction (`LDMS_TRANSACTION_END`).
pub const TRANSACTION_END: u32 = 2;
/// Record-type header flag (`LDMS_RECORD_F_TYPE`).
pub const RECORD_F_TYPE: u32 = 1;
/// Record-instance header flag (`LDMS_RECORD_F_INST`).
pub const RECORD_F_INST: u32 = 2;

/// A metric type with its wire code (`enum ldms_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum ValueType {
    Char = 1,
    U8 = 2,
    S8 = 3,
    U16 = 4,
    S16 = 5,
    U32 = 6,
    S32 = 7,
    U64 = 8,
    S64 = 9,
    F32 = 10,
    D64 = 11,
    CharArray = 12,
    U8Array = 13,
    S8Array = 14,
    U16Array = 15,
    S16Array = 16,
    U32Array = 17,
    S32Array = 18,
    U64Array = 19,
    S64Array = 20,
    F32Array = 21,
    D64Array = 22,
    List = 23,
    ListEntry = 24,
    RecordType = 25,
    RecordInst = 26,
    RecordArray = 27,
    Timestamp = 28,
}

impl ValueType {
    /// All types, in code order.
    pub const ALL: [ValueType; 28] = {
        use ValueType::*;
        [
            Char,
            U8,
            S8,
            U16,
            S16,
            U32,
            S32,
            U64,
            S64,
            F32,
            D64,
            CharArray,
            U8Array,
            S8Array,
            U16Array,
            S16Array,
            U32Array,
            S32Array,
            U64Array,
            S64Array,
            F32Array,
            D64Array,
            List,
            ListEntry,
            RecordType,
            RecordInst,
            RecordArray,
            Timestamp,
        ]
    };

    /// The type with this wire code, if any.
    pub fn from_code(code: u8) -> Option<ValueType> {
        if (1..=28).contains(&code) { Some(Self::ALL[code as usize - 1]) } else { None }
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// True for the eleven array forms (12..=22).
    pub fn is_array(self) -> bool {
        (12..=22).contains(&self.code())
    }

    /// True for the primitive scalars, their arrays and TIMESTAMP: the types a list entry or
    /// a record member may have besides lists and record instances.
    pub fn is_primitive(self) -> bool {
        self.code() <= 22 || self == ValueType::Timestamp
    }

    /// The element type of an array form, or the type itself for a scalar.
    pub fn element(self) -> ValueType {
        if self.is_array() { Self::ALL[self.code() as usize - 12] } else { self }
    }

    /// The array form of a scalar primitive (CHAR..D64).
    pub fn array_of(self) -> Option<ValueType> {
        if (1..=11).contains(&self.code()) { Some(Self::ALL[self.code() as usize + 10]) } else { None }
    }

    /// Size in bytes of one element of a primitive type (or of a TIMESTAMP, `{u32 sec, u32
    /// usec}`); `None` for lists and records.
    pub fn element_size(self) -> Option<usize> {
        use ValueType::*;
        Some(match self.element() {
            Char | U8 | S8 => 1,
            U16 | S16 => 2,
            U32 | S32 | F32 => 4,
            U64 | S64 | D64 | Timestamp => 8,
            _ => return None,
        })
    }

    /// Bytes a primitive value of `count` elements occupies before 8-byte rounding
    /// (a scalar is one element whatever the count).
    pub fn value_size(self, count: u32) -> Option<usize> {
        let n = if self.is_array() { count as usize } else { 1 };
        self.element_size()?.checked_mul(n)
    }
}

/// A transaction timestamp, `struct ldms_timestamp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds.
    pub sec: u32,
    /// Microseconds.
    pub usec: u32,
}

impl Timestamp {
    fn micros(self) -> i128 {
        self.sec as i128 * 1_000_000 + self.usec as i128
    }
    fn from_micros(us: i128) -> Timestamp {
        let us = us.max(0);
        Timestamp { sec: (us / 1_000_000).min(u32::MAX as i128) as u32, usec: (us % 1_000_000) as u32 }
    }
}

/// A value descriptor (`struct ldms_value_desc`), for a metric or a record member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricDesc {
    /// Metric name.
    pub name: String,
    /// Unit: `Some("")` for an empty unit with its NUL (`"name\0\0"`, the usual form),
    /// `None` when the descriptor holds only `"name\0"` (procnetdev2's list).
    pub unit: Option<String>,
    /// Type.
    pub ty: ValueType,
    /// `array_count`: elements of an array, heap bytes reserved for a LIST, elements of a
    /// RECORD_ARRAY; 0 or 1 for scalars.
    pub count: u32,
    /// `data_offset`: from the meta section start (meta metrics, RECORD_TYPE), from the data
    /// header (data metrics), or from the record instance start (record members).
    pub data_offset: u32,
    /// [`FLAG_DATA`], [`FLAG_META`], [`FLAG_RECORD`].
    pub flags: u8,
    /// The opaque `user_data` word.
    pub user_data: u64,
    /// Offset of this descriptor: in the meta section, or from the record type for members.
    pub desc_offset: u32,
    /// For a RECORD_TYPE metric: its members.
    pub record_type: Option<RecordTypeDesc>,
}

impl MetricDesc {
    /// A meta metric (value in the meta section).
    pub fn is_meta(&self) -> bool {
        self.flags & FLAG_META != 0
    }
    /// A data metric.
    pub fn is_data(&self) -> bool {
        self.flags & FLAG_META == 0
    }
}

/// A record type (`struct ldms_record_type`), stored in the meta section.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordTypeDesc {
    /// Size of one record instance, header included.
    pub inst_sz: u32,
    /// Member descriptors (their `data_offset` is the offset inside an instance).
    pub members: Vec<MetricDesc>,
}

/// A decoded meta section.
#[derive(Clone, Debug, PartialEq)]
pub struct SetMeta {
    /// Producer name (`char[64]`).
    pub producer: String,
    /// Metadata generation number.
    pub meta_gn: u64,
    /// LDMS version `[major, minor, patch, flags]`.
    pub version: [u8; 4],
    /// Header flags (2 = little-endian set).
    pub flags: u8,
    /// Meta section size.
    pub meta_sz: u32,
    /// Data section size, heap included.
    pub data_sz: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub perm: u32,
    /// Number of data sections (1 in every capture).
    pub array_card: u32,
    /// Heap size, the tail of the data section.
    pub heap_sz: u32,
    /// Instance name.
    pub instance_name: String,
    /// Schema name.
    pub schema_name: String,
    /// The schema's 32-byte digest, stored after the schema name's NUL (the `digest` that
    /// DIR_REPLY prints in hex); `None` if the name field is too short to hold one.
    pub schema_digest: Option<[u8; 32]>,
    /// The value descriptors, in metric index order (card = len). Shared between sets
    /// with the same layout (see [`intern_descs`]): a thousand sets of one schema hold
    /// one descriptor list.
    pub metrics: Arc<[MetricDesc]>,
    /// Meta values, by metric index (`None` for data metrics and RECORD_TYPE).
    pub values: Vec<Option<MetricValue>>,
}

impl SetMeta {
    /// Number of metrics.
    pub fn card(&self) -> usize {
        self.metrics.len()
    }
    /// Index of the metric with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m.name == name)
    }
    /// Offset of the heap inside the data section.
    pub fn heap_base(&self) -> u32 {
        self.data_sz.saturating_sub(self.heap_sz)
    }
}

/// The data header's transaction (`struct ldms_transaction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// Time of the last transaction end.
    pub ts: Timestamp,
    /// Duration of that transaction.
    pub dur: Timestamp,
    /// Flags ([`TRANSACTION_END`] when not inside a transaction).
    pub flags: u32,
}

impl Transaction {
    /// Transaction end time (`ts`).
    pub fn end(&self) -> Timestamp {
        self.ts
    }
    /// Transaction begin time (`ts - dur`).
    pub fn begin(&self) -> Timestamp {
        Timestamp::from_micros(self.ts.micros() - self.dur.micros())
    }
}

/// The heap descriptor at data header offset 56.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapInfo {
    /// log2 of the grain.
    pub grain_bits: u8,
    /// Grain size in bytes.
    pub grain: u32,
    /// Heap size.
    pub size: u64,
    /// Heap generation number.
    pub gn: u32,
}

/// A decoded data section.
#[derive(Clone, Debug, PartialEq)]
pub struct SetData {
    /// Transaction timestamps and flags.
    pub trans: Transaction,
    /// `set_off` (the data section's offset in the set, = meta_sz for array_card 1).
    pub set_off: u32,
    /// Data generation number.
    pub data_gn: u64,
    /// Data section size.
    pub size: u64,
    /// The meta_gn this data belongs to.
    pub meta_gn: u64,
    /// Current data-section index.
    pub curr_idx: u32,
    /// Heap descriptor.
    pub heap: HeapInfo,
    /// Data values, by metric index (`None` for meta metrics).
    pub values: Vec<Option<MetricValue>>,
}

/// The fields of a data section's header a reader needs on every update, decoded without
/// touching the values (those are decoded on demand).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataHeader {
    /// Transaction timestamps and flags.
    pub trans: Transaction,
    /// Data generation number.
    pub data_gn: u64,
    /// Data section size.
    pub size: u64,
    /// The meta_gn this data belongs to.
    pub meta_gn: u64,
}

impl DataHeader {
    /// Decode the header of a data section of `meta` (`data` must hold the whole section).
    pub fn decode(meta: &SetMeta, data: &[u8]) -> Result<DataHeader, SetError> {
        if data.len() < meta.data_sz as usize || data.len() < DATA_HDR_SIZE {
            return Err(SetError::BadSize(format!(
                "data section of {} bytes, data_sz is {}",
                data.len(),
                meta.data_sz
            )));
        }
        let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().expect("8 bytes"));
        let ts = |o| Timestamp { sec: u32_at(o), usec: u32_at(o + 4) };
        Ok(DataHeader {
            trans: Transaction { ts: ts(0), dur: ts(8), flags: u32_at(16) },
            data_gn: u64_at(24),
            size: u64_at(32),
            meta_gn: u64_at(40),
        })
    }
    /// `ldms_set_is_consistent`: the last transaction ended.
    pub fn is_consistent(&self) -> bool {
        self.trans.flags == TRANSACTION_END
    }
}

impl SetData {
    /// Consistent: the last transaction ended and the data belongs to this metadata.
    pub fn is_consistent(&self, meta: &SetMeta) -> bool {
        self.trans.flags == TRANSACTION_END && self.meta_gn == meta.meta_gn
    }
}

/// One entry of a LIST, at `heap_off` from the heap base.
#[derive(Clone, Debug, PartialEq)]
pub struct ListEntry {
    /// Offset of the entry from the heap base (set by the decoder; ignored by the encoder).
    pub heap_off: u32,
    /// The entry's value.
    pub value: MetricValue,
}

/// A record instance (`struct ldms_record_inst` and its members).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordInst {
    /// `set_data_off`: the instance's offset from the data header (computed by the encoder).
    pub set_data_off: u32,
    /// Metric index of the RECORD_TYPE.
    pub rec_type: u32,
    /// Member values, in member order.
    pub members: Vec<MetricValue>,
}

/// A metric value.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum MetricValue {
    Char(u8),
    U8(u8),
    S8(i8),
    U16(u16),
    S16(i16),
    U32(u32),
    S32(i32),
    U64(u64),
    S64(i64),
    F32(f32),
    D64(f64),
    /// A fixed-size byte array (NULs included).
    CharArray(Vec<u8>),
    U8Array(Vec<u8>),
    S8Array(Vec<i8>),
    U16Array(Vec<u16>),
    S16Array(Vec<i16>),
    U32Array(Vec<u32>),
    S32Array(Vec<i32>),
    U64Array(Vec<u64>),
    S64Array(Vec<i64>),
    F32Array(Vec<f32>),
    D64Array(Vec<f64>),
    Timestamp(Timestamp),
    /// A LIST's entries, in list order.
    List(Vec<ListEntry>),
    /// A record instance (as a list entry).
    RecordInst(RecordInst),
    /// A RECORD_ARRAY.
    RecordArray {
        /// Metric index of the RECORD_TYPE.
        rec_type: u32,
        /// Instance size.
        inst_sz: u32,
        /// The elements.
        elems: Vec<RecordInst>,
    },
}

impl MetricValue {
    /// The value's type.
    pub fn ty(&self) -> ValueType {
        use MetricValue as V;
        use ValueType as T;
        match self {
            V::Char(_) => T::Char,
            V::U8(_) => T::U8,
            V::S8(_) => T::S8,
            V::U16(_) => T::U16,
            V::S16(_) => T::S16,
            V::U32(_) => T::U32,
            V::S32(_) => T::S32,
            V::U64(_) => T::U64,
            V::S64(_) => T::S64,
            V::F32(_) => T::F32,
            V::D64(_) => T::D64,
            V::CharArray(_) => T::CharArray,
            V::U8Array(_) => T::U8Array,
            V::S8Array(_) => T::S8Array,
            V::U16Array(_) => T::U16Array,
            V::S16Array(_) => T::S16Array,
            V::U32Array(_) => T::U32Array,
            V::S32Array(_) => T::S32Array,
            V::U64Array(_) => T::U64Array,
            V::S64Array(_) => T::S64Array,
            V::F32Array(_) => T::F32Array,
            V::D64Array(_) => T::D64Array,
            V::Timestamp(_) => T::Timestamp,
            V::List(_) => T::List,
            V::RecordInst(_) => T::RecordInst,
            V::RecordArray { .. } => T::RecordArray,
        }
    }

    /// Element count: array length, 1 for scalars, list length, record-array length.
    pub fn count(&self) -> usize {
        use MetricValue as V;
        match self {
            V::CharArray(v) | V::U8Array(v) => v.len(),
            V::S8Array(v) => v.len(),
            V::U16Array(v) => v.len(),
            V::S16Array(v) => v.len(),
            V::U32Array(v) => v.len(),
            V::S32Array(v) => v.len(),
            V::U64Array(v) => v.len(),
            V::S64Array(v) => v.len(),
            V::F32Array(v) => v.len(),
            V::D64Array(v) => v.len(),
            V::List(v) => v.len(),
            V::RecordArray { elems, .. } => elems.len(),
            _ => 1,
        }
    }

    /// The same value with every decoder-assigned location (list entry heap offsets, record
    /// `set_data_off`) zeroed, for comparing values independent of heap placement.
    pub fn without_locations(&self) -> MetricValue {
        fn inst(r: &RecordInst) -> RecordInst {
            RecordInst {
                set_data_off: 0,
                rec_type: r.rec_type,
                members: r.members.iter().map(MetricValue::without_locations).collect(),
            }
        }
        match self {
            MetricValue::List(v) => MetricValue::List(
                v.iter().map(|e| ListEntry { heap_off: 0, value: e.value.without_locations() }).collect(),
            ),
            MetricValue::RecordInst(r) => MetricValue::RecordInst(inst(r)),
            MetricValue::RecordArray { rec_type, inst_sz, elems } => MetricValue::RecordArray {
                rec_type: *rec_type,
                inst_sz: *inst_sz,
                elems: elems.iter().map(inst).collect(),
            },
            v => v.clone(),
        }
    }
}

/// Any inconsistency found while decoding or encoding a set image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// A field or value lies (partly) outside the image.
    #[error("{what}: {len} bytes at offset {offset} lie outside the {size}-byte {section}")]
    OutOfBounds {
        /// What was being read or written.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The section's size.
        size: usize,
        /// "meta section", "data section", "heap", ...
        section: &'static str,
    },
    /// The header's meta_sz or data_sz does not fit the image or each other.
    #[error("bad section size: {0}")]
    BadSize(String),
    /// A descriptor carries an unknown type code.
    #[error("metric {index}: unknown type code {code}")]
    BadTypeCode {
        /// Metric index (or member index).
        index: usize,
        /// The code.
        code: u8,
    },
    /// A descriptor is malformed (names, flags, type not allowed there).
    #[error("descriptor {index}: {reason}")]
    BadDescriptor {
        /// Metric index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A list entry was visited twice.
    #[error("heap cycle: list entry at heap offset {offset} visited twice")]
    HeapCycle {
        /// The entry's heap offset.
        offset: u32,
    },
    /// A list's links, tail or count disagree with its entries.
    #[error("inconsistent list: {0}")]
    BadList(String),
    /// Lists nested deeper than [`MAX_LIST_DEPTH`].
    #[error("lists nested deeper than {MAX_LIST_DEPTH}")]
    TooDeep,
    /// A record refers to something that is not a record type, or has bad flags.
    #[error("bad record: {0}")]
    BadRecord(String),
    /// Encoding: a value does not match its descriptor.
    #[error("metric {index}: value does not match the descriptor: {reason}")]
    ValueMismatch {
        /// Metric index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Encoding: the lists do not fit the heap.
    #[error("heap full: {need} more bytes needed, {free} free")]
    HeapFull {
        /// Bytes requested.
        need: usize,
        /// Bytes left.
        free: usize,
    },
}

/// Deepest nesting of lists the decoder follows.
pub const MAX_LIST_DEPTH: usize = 8;

/// Decode a READ_RESP payload read at set offset 0 holding the meta section and optionally
/// the data section (`meta_sz` or `meta_sz + data_sz` bytes).
pub fn decode_image(img: &[u8]) -> Result<(SetMeta, Option<SetData>), SetError> {
    let meta = SetMeta::decode(img)?;
    let ms = meta.meta_sz as usize;
    if img.len() == ms {
        return Ok((meta, None));
    }
    let end =
        ms.checked_add(meta.data_sz as usize).ok_or_else(|| SetError::BadSize("meta_sz + data_sz overflows".into()))?;
    if img.len() < end {
        return Err(SetError::BadSize(format!(
            "image of {} bytes is neither meta_sz {} nor meta_sz + data_sz {}",
            img.len(),
            ms,
            end
        )));
    }
    let data = SetData::decode(&meta, &img[ms..end])?;
    Ok((meta, Some(data)))
}

/// One shared copy of a descriptor list: sets laid out alike (same schema, instance names
/// of the same length) share it instead of each holding a copy. The table holds weak
/// references, so lists no set uses any more are dropped.
pub fn intern_descs(descs: Vec<MetricDesc>) -> Arc<[MetricDesc]> {
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::{Mutex, Weak};
    type Buckets = HashMap<u64, Vec<Weak<[MetricDesc]>>>;
    static TABLE: Mutex<Option<Buckets>> = Mutex::new(None);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    descs.hash(&mut h);
    let key = h.finish();
    let mut guard = TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let table = guard.get_or_insert_with(HashMap::new);
    let bucket = table.entry(key).or_default();
    bucket.retain(|w| w.strong_count() > 0);
    if let Some(found) = bucket.iter().filter_map(Weak::upgrade).find(|a| **a == *descs) {
        return found;
    }
    let shared: Arc<[MetricDesc]> = descs.into();
    bucket.push(Arc::downgrade(&shared));
    if table.len() > 64 && table.len().is_power_of_two() {
        table.retain(|_, b| b.iter().any(|w| w.strong_count() > 0));
    }
    shared
}

/// Round up to a multiple of 8.
pub(crate) fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
