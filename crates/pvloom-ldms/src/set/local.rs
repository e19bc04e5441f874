//! A set this process produces: one image in memory, written in place.
//!
//! Peers read a set with READ_REQ on byte ranges of its image, so the image itself is the
//! source of truth; there is no second, decoded copy to keep in step. Primitive values are
//! written straight into their slots without allocating, which is what a sampler filling
//! thousands of metrics per interval needs. Lists and records live in the heap, whose layout
//! changes with every write, so those go through a decode → change → encode of the data
//! section.

use super::decode::{Sect, prim};
use super::*;

/// A set owned by this process (a sampler's set, or one an aggregator keeps).
#[derive(Clone, Debug)]
pub struct LocalSet {
    meta: SetMeta,
    image: Vec<u8>,
    info: Vec<(String, String)>,
    /// Bumped by every set info change, so a watcher can tell without comparing copies.
    info_gn: u64,
}

const META_GN_OFF: usize = 64;
const DATA_TS_OFF: usize = 0;
const DATA_DUR_OFF: usize = 8;
const DATA_FLAGS_OFF: usize = 16;
const DATA_GN_OFF: usize = 24;
const DATA_META_GN_OFF: usize = 40;
const HEAP_GN_OFF: usize = 72;
/// `LDMS_TRANSACTION_BEGIN`.
pub const TRANSACTION_BEGIN: u32 = 1;

impl LocalSet {
    /// Lay out a new set from `schema` with every value zero, as `ldms_set_new` leaves it:
    /// data gn 0, no transaction begun yet (flags END, so an untouched set reads consistent).
    pub fn new(schema: &Schema, info: &SetInfo) -> Result<LocalSet, SetError> {
        let mut meta = schema.layout(info)?;
        let trans = Transaction { flags: TRANSACTION_END, ..Transaction::default() };
        let data = SetData::empty(&meta, 0, trans);
        let mut image = encode_image(&meta, &data)?;
        lay_out_record_arrays(schema, &meta, &mut image);
        // The image holds the values; a copy per set would cost more than the image.
        meta.values = Vec::new();
        Ok(LocalSet { meta, image, info: Vec::new(), info_gn: 0 })
    }

    /// Adopt an image read from a peer (an aggregator's copy of a remote set).
    pub fn from_image(mut image: Vec<u8>) -> Result<LocalSet, SetError> {
        image.shrink_to_fit();
        let mut meta = SetMeta::decode(&image)?;
        meta.values = Vec::new();
        let want = meta.meta_sz as usize + meta.data_sz as usize;
        if image.len() != want {
            return Err(SetError::BadSize(format!("image of {} bytes, meta_sz + data_sz is {want}", image.len())));
        }
        SetData::decode(&meta, &image[meta.meta_sz as usize..])?;
        Ok(LocalSet { meta, image, info: Vec::new(), info_gn: 0 })
    }

    /// The layout (descriptors, names, sizes). Its `values` are not kept: read them with
    /// [`LocalSet::get`] or [`LocalSet::data`].
    pub fn meta(&self) -> &SetMeta {
        &self.meta
    }
    /// Instance name.
    pub fn name(&self) -> &str {
        &self.meta.instance_name
    }
    /// The whole image: meta section, then data section.
    pub fn image(&self) -> &[u8] {
        &self.image
    }
    /// The meta section.
    pub fn meta_bytes(&self) -> &[u8] {
        &self.image[..self.meta.meta_sz as usize]
    }
    /// The data section.
    pub fn data_bytes(&self) -> &[u8] {
        &self.image[self.meta.meta_sz as usize..]
    }
    /// Overwrite the data section with one read from the set's producer (same layout).
    pub fn replace_data(&mut self, data: &[u8]) -> Result<(), SetError> {
        let ms = self.meta.meta_sz as usize;
        if data.len() != self.image.len() - ms {
            return Err(SetError::BadSize(format!(
                "data section of {} bytes, data_sz is {}",
                data.len(),
                self.meta.data_sz
            )));
        }
        self.image[ms..].copy_from_slice(data);
        Ok(())
    }

    /// Set info key/value pairs (sent with LOOKUP and DIR, not part of the image).
    pub fn info(&self) -> &[(String, String)] {
        &self.info
    }
    /// Set or replace one set info pair.
    pub fn set_info(&mut self, key: &str, value: &str) {
        match self.info.iter_mut().find(|(k, _)| k == key) {
            Some(kv) if kv.1 == value => return,
            Some(kv) => kv.1 = value.to_string(),
            None => self.info.push((key.to_string(), value.to_string())),
        }
        self.info_gn += 1;
    }

    /// Changes of the set info so far (a counter, compared before and after a write).
    pub fn info_gn(&self) -> u64 {
        self.info_gn
    }
    /// Remove one set info pair; true if it was there.
    pub fn unset_info(&mut self, key: &str) -> bool {
        let n = self.info.len();
        self.info.retain(|(k, _)| k != key);
        let removed = n != self.info.len();
        self.info_gn += u64::from(removed);
        removed
    }

    fn data_u32(&self, off: usize) -> u32 {
        let o = self.meta.meta_sz as usize + off;
        u32::from_le_bytes(self.image[o..o + 4].try_into().expect("4 bytes"))
    }
    fn data_u64(&self, off: usize) -> u64 {
        let o = self.meta.meta_sz as usize + off;
        u64::from_le_bytes(self.image[o..o + 8].try_into().expect("8 bytes"))
    }
    fn put_data(&mut self, off: usize, b: &[u8]) {
        let o = self.meta.meta_sz as usize + off;
        self.image[o..o + b.len()].copy_from_slice(b);
    }

    /// Data generation number: bumped by every data write and every transaction end.
    pub fn data_gn(&self) -> u64 {
        self.data_u64(DATA_GN_OFF)
    }
    /// Metadata generation number: bumped by every meta write.
    pub fn meta_gn(&self) -> u64 {
        u64::from_le_bytes(self.image[META_GN_OFF..META_GN_OFF + 8].try_into().expect("8 bytes"))
    }
    /// The data header's transaction.
    pub fn transaction(&self) -> Transaction {
        let ts = |o| Timestamp { sec: self.data_u32(o), usec: self.data_u32(o + 4) };
        Transaction { ts: ts(DATA_TS_OFF), dur: ts(DATA_DUR_OFF), flags: self.data_u32(DATA_FLAGS_OFF) }
    }
    /// The rule `ldms_ls` applies: the last transaction ended and the data belongs to the
    /// current metadata.
    pub fn is_consistent(&self) -> bool {
        self.data_u32(DATA_FLAGS_OFF) == TRANSACTION_END && self.data_u64(DATA_META_GN_OFF) == self.meta_gn()
    }

    /// Begin a transaction at `now`: readers see the set inconsistent until it ends.
    pub fn transaction_begin(&mut self, now: Timestamp) {
        self.put_data(DATA_FLAGS_OFF, &TRANSACTION_BEGIN.to_le_bytes());
        self.put_data(DATA_TS_OFF, &now.sec.to_le_bytes());
        self.put_data(DATA_TS_OFF + 4, &now.usec.to_le_bytes());
    }

    /// End the transaction at `now`: timestamp, duration since its begin, flags END, gn + 1.
    pub fn transaction_end(&mut self, now: Timestamp) {
        let begin = Timestamp { sec: self.data_u32(DATA_TS_OFF), usec: self.data_u32(DATA_TS_OFF + 4) };
        let dur = Timestamp::from_micros(now.micros() - begin.micros());
        self.put_data(DATA_DUR_OFF, &dur.sec.to_le_bytes());
        self.put_data(DATA_DUR_OFF + 4, &dur.usec.to_le_bytes());
        self.put_data(DATA_TS_OFF, &now.sec.to_le_bytes());
        self.put_data(DATA_TS_OFF + 4, &now.usec.to_le_bytes());
        self.put_data(DATA_FLAGS_OFF, &TRANSACTION_END.to_le_bytes());
        self.bump_data_gn();
    }

    fn bump_data_gn(&mut self) {
        let gn = self.data_gn().wrapping_add(1);
        self.put_data(DATA_GN_OFF, &gn.to_le_bytes());
    }

    fn bump_meta_gn(&mut self) {
        let gn = self.meta_gn().wrapping_add(1);
        self.image[META_GN_OFF..META_GN_OFF + 8].copy_from_slice(&gn.to_le_bytes());
        self.put_data(DATA_META_GN_OFF, &gn.to_le_bytes());
        self.meta.meta_gn = gn;
    }

    fn desc(&self, index: usize) -> Result<&MetricDesc, SetError> {
        self.meta.metrics.get(index).ok_or_else(|| SetError::ValueMismatch {
            index,
            reason: format!("no such metric (card {})", self.meta.card()),
        })
    }

    /// Absolute image offset of a primitive metric's slot and its byte length.
    fn slot(&self, index: usize) -> Result<(usize, usize, &MetricDesc), SetError> {
        let d = self.desc(index)?;
        let len = d.ty.value_size(d.count).ok_or_else(|| SetError::ValueMismatch {
            index,
            reason: format!("{:?} is not a primitive metric", d.ty),
        })?;
        let base = if d.is_meta() { 0 } else { self.meta.meta_sz as usize };
        let off = base + d.data_offset as usize;
        if off + len > self.image.len() {
            return Err(SetError::OutOfBounds {
                what: "metric value",
                offset: off as u64,
                len: len as u64,
                size: self.image.len(),
                section: "set image",
            });
        }
        Ok((off, len, d))
    }

    /// Write a primitive value (scalar or whole array) of metric `index`. A data metric
    /// bumps the data gn, a meta metric the meta gn, as `ldms_metric_set` does.
    pub fn set(&mut self, index: usize, v: &MetricValue) -> Result<(), SetError> {
        let (off, len, d) = self.slot(index)?;
        if v.ty() != d.ty || (d.ty.is_array() && v.count() != d.count as usize) {
            return Err(SetError::ValueMismatch {
                index,
                reason: format!("{:?} of {} for a {:?} of {}", v.ty(), v.count(), d.ty, d.count),
            });
        }
        let meta = d.is_meta();
        write_prim(&mut self.image[off..off + len], v);
        if meta {
            self.bump_meta_gn()
        } else {
            self.bump_data_gn()
        }
        Ok(())
    }

    /// Write a u64 to a U64 metric (the common sampler case, without building a value).
    pub fn set_u64(&mut self, index: usize, v: u64) -> Result<(), SetError> {
        self.set(index, &MetricValue::U64(v))
    }

    /// Write `values` to the U64 data metrics `first`, `first + 1`, ... in one pass: as
    /// many [`set_u64`](Self::set_u64) calls (the data gn moves by one per value), for
    /// samplers that fill a run of counters each sample. Nothing is written if one of the
    /// metrics is not a U64 data metric.
    pub fn set_u64s(&mut self, first: usize, values: &[u64]) -> Result<(), SetError> {
        let ms = self.meta.meta_sz as usize;
        let end = first
            .checked_add(values.len())
            .ok_or(SetError::ValueMismatch { index: first, reason: "metric index overflow".into() })?;
        let descs = self.meta.metrics.get(first..end).ok_or_else(|| SetError::ValueMismatch {
            index: end.saturating_sub(1),
            reason: format!("no such metric (card {})", self.meta.card()),
        })?;
        for (i, d) in descs.iter().enumerate() {
            let off = ms + d.data_offset as usize;
            if d.ty != ValueType::U64 || d.is_meta() || off + 8 > self.image.len() {
                return Err(SetError::ValueMismatch {
                    index: first + i,
                    reason: format!("{:?} is not a U64 data metric", d.ty),
                });
            }
        }
        for (d, v) in self.meta.metrics[first..end].iter().zip(values) {
            let off = ms + d.data_offset as usize;
            self.image[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        let gn = self.data_gn().wrapping_add(values.len() as u64);
        self.put_data(DATA_GN_OFF, &gn.to_le_bytes());
        Ok(())
    }

    /// Write `values` to the U64 members `first_member`, ... of the record instance at data
    /// offset `inst_off` (its `set_data_off`, as [`data`](Self::data) decodes it), in place:
    /// `ldms_record_set_u64` for a run of members, the heap's layout untouched. The data gn
    /// moves by one per value.
    pub fn set_record_u64s(&mut self, inst_off: u32, first_member: usize, values: &[u64]) -> Result<(), SetError> {
        let bad = |reason: String| SetError::BadRecord(reason);
        let ms = self.meta.meta_sz as usize;
        let at = ms + inst_off as usize;
        if at + 16 > self.image.len() {
            return Err(bad(format!("record instance at data offset {inst_off} is outside the set")));
        }
        let word = |o: usize| u32::from_le_bytes(self.image[o..o + 4].try_into().expect("4 bytes"));
        let (flags, rec_type) = (word(at), word(at + 12));
        if flags != super::RECORD_F_INST {
            return Err(bad(format!("no record instance at data offset {inst_off} (flags {flags})")));
        }
        let rt = self
            .meta
            .metrics
            .get(rec_type as usize)
            .and_then(|m| m.record_type.as_ref())
            .ok_or_else(|| bad(format!("rec_type {rec_type} is not a RECORD_TYPE metric")))?;
        if at + rt.inst_sz as usize > self.image.len() {
            return Err(bad(format!("record instance at data offset {inst_off} runs past the set")));
        }
        let members = first_member
            .checked_add(values.len())
            .and_then(|end| rt.members.get(first_member..end))
            .ok_or_else(|| bad(format!("members {first_member}.. past the record's {}", rt.members.len())))?;
        for (i, m) in members.iter().enumerate() {
            if m.ty != ValueType::U64 || at + m.data_offset as usize + 8 > self.image.len() {
                return Err(bad(format!("member {} is a {:?} inside the set, not a U64", first_member + i, m.ty)));
            }
        }
        for (m, v) in members.iter().zip(values) {
            let off = at + m.data_offset as usize;
            self.image[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        let gn = self.data_gn().wrapping_add(values.len() as u64);
        self.put_data(DATA_GN_OFF, &gn.to_le_bytes());
        Ok(())
    }

    /// Write element `elem` of an array metric.
    pub fn set_elem(&mut self, index: usize, elem: usize, v: &MetricValue) -> Result<(), SetError> {
        let (off, _, d) = self.slot(index)?;
        let bad = |reason: String| SetError::ValueMismatch { index, reason };
        if !d.ty.is_array() || Some(d.ty) != v.ty().array_of() || elem >= d.count as usize {
            return Err(bad(format!("element {elem} of a {:?}[{}] from a {:?}", d.ty, d.count, v.ty())));
        }
        let es = d.ty.element_size().unwrap_or(1);
        let meta = d.is_meta();
        let at = off + elem * es;
        write_prim(&mut self.image[at..at + es], v);
        if meta {
            self.bump_meta_gn()
        } else {
            self.bump_data_gn()
        }
        Ok(())
    }

    /// Read a primitive value of metric `index`.
    pub fn get(&self, index: usize) -> Result<MetricValue, SetError> {
        let (off, _, d) = self.slot(index)?;
        prim(Sect { buf: &self.image, name: "set image" }, off as u64, d.ty, d.count)
    }

    /// Decode the whole data section (lists and records included).
    pub fn data(&self) -> Result<SetData, SetError> {
        SetData::decode(&self.meta, self.data_bytes())
    }

    /// Change data values that live in the heap (lists, record arrays) or any others: the
    /// data section is decoded, `change` edits the values by metric index, and the section is
    /// encoded again with the heap laid out afresh (heap gn and data gn + 1). If the result
    /// does not fit (heap full, a value of the wrong type) the set is left as it was.
    pub fn update_values(&mut self, change: impl FnOnce(&mut [Option<MetricValue>])) -> Result<(), SetError> {
        let mut data = self.data()?;
        change(&mut data.values);
        for (i, m) in self.meta.metrics.iter().enumerate() {
            if m.is_meta() && data.values[i].is_some() {
                return Err(SetError::ValueMismatch { index: i, reason: "meta metric in the data section".into() });
            }
        }
        data.heap.gn = data.heap.gn.wrapping_add(1);
        data.data_gn = data.data_gn.wrapping_add(1);
        let bytes = data.encode(&self.meta)?;
        let ms = self.meta.meta_sz as usize;
        self.image[ms..].copy_from_slice(&bytes);
        debug_assert_eq!(self.data_u32(HEAP_GN_OFF), data.heap.gn);
        Ok(())
    }
}

/// Give every RECORD_ARRAY its header and its instances their record headers (members
/// stay zero), as `ldms_set_new` does: an all-zero array is not a valid record array.
fn lay_out_record_arrays(schema: &Schema, meta: &SetMeta, image: &mut [u8]) {
    let ms = meta.meta_sz as usize;
    let mut put = |at: usize, v: u32| image[ms + at..ms + at + 4].copy_from_slice(&v.to_le_bytes());
    for (spec, desc) in schema.metrics.iter().zip(meta.metrics.iter()) {
        let Some(rt) = spec.record_type.filter(|_| spec.ty == ValueType::RecordArray) else { continue };
        let Some(inst_sz) = meta.metrics.get(rt as usize).and_then(|m| m.record_type.as_ref()).map(|r| r.inst_sz)
        else {
            continue;
        };
        let off = desc.data_offset as usize;
        put(off, inst_sz);
        put(off + 4, rt);
        put(off + 8, spec.count);
        for k in 0..spec.count as usize {
            let at = off + 12 + k * inst_sz as usize;
            put(at, RECORD_F_INST);
            put(at + 4, 0);
            put(at + 8, at as u32);
            put(at + 12, rt);
        }
    }
}

/// Write a primitive value's little-endian bytes into `dst` (exactly its size).
fn write_prim(dst: &mut [u8], v: &MetricValue) {
    use MetricValue as V;
    fn each<const N: usize, T: Copy>(dst: &mut [u8], xs: &[T], le: impl Fn(T) -> [u8; N]) {
        for (c, x) in dst.chunks_exact_mut(N).zip(xs) {
            c.copy_from_slice(&le(*x));
        }
    }
    match v {
        V::Char(x) | V::U8(x) => dst[0] = *x,
        V::S8(x) => dst[0] = *x as u8,
        V::U16(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::S16(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::U32(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::S32(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::U64(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::S64(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::F32(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::D64(x) => dst.copy_from_slice(&x.to_le_bytes()),
        V::Timestamp(t) => {
            dst[..4].copy_from_slice(&t.sec.to_le_bytes());
            dst[4..8].copy_from_slice(&t.usec.to_le_bytes());
        }
        V::CharArray(x) | V::U8Array(x) => dst[..x.len()].copy_from_slice(x),
        V::S8Array(x) => each(dst, x, |c: i8| [c as u8]),
        V::U16Array(x) => each(dst, x, u16::to_le_bytes),
        V::S16Array(x) => each(dst, x, i16::to_le_bytes),
        V::U32Array(x) => each(dst, x, u32::to_le_bytes),
        V::S32Array(x) => each(dst, x, i32::to_le_bytes),
        V::U64Array(x) => each(dst, x, u64::to_le_bytes),
        V::S64Array(x) => each(dst, x, i64::to_le_bytes),
        V::F32Array(x) => each(dst, x, f32::to_le_bytes),
        V::D64Array(x) => each(dst, x, f64::to_le_bytes),
        V::List(_) | V::RecordInst(_) | V::RecordArray { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema {
            name: "s".into(),
            metrics: vec![
                MetricSpec::new("component_id", ValueType::U64, 1, true),
                MetricSpec::new("a", ValueType::U64, 1, false),
                MetricSpec::new("arr", ValueType::F32Array, 3, false),
                MetricSpec { name: "l".into(), ..MetricSpec::new("l", ValueType::List, 256, false) },
            ],
            digest: None,
            meta_sz: None,
            heap_sz: None,
        }
    }

    fn info() -> SetInfo {
        SetInfo { producer: "p".into(), instance: "p/s".into(), uid: 0, gid: 0, perm: 0o444, meta_gn: 1 }
    }

    #[test]
    fn writes_in_place_and_tracks_generations() {
        let mut s = LocalSet::new(&schema(), &info()).unwrap();
        assert!(s.is_consistent());
        assert_eq!((s.meta_gn(), s.data_gn()), (1, 0));
        s.set(0, &MetricValue::U64(7)).unwrap();
        assert_eq!(s.meta_gn(), 2);
        s.transaction_begin(Timestamp { sec: 10, usec: 900_000 });
        assert!(!s.is_consistent());
        s.set_u64(1, 42).unwrap();
        s.set_elem(2, 1, &MetricValue::F32(1.5)).unwrap();
        s.transaction_end(Timestamp { sec: 11, usec: 100_000 });
        assert!(s.is_consistent());
        assert_eq!(s.data_gn(), 3);
        let t = s.transaction();
        assert_eq!((t.ts, t.dur), (Timestamp { sec: 11, usec: 100_000 }, Timestamp { sec: 0, usec: 200_000 }));
        assert_eq!(s.get(1).unwrap(), MetricValue::U64(42));
        assert_eq!(s.get(2).unwrap(), MetricValue::F32Array(vec![0.0, 1.5, 0.0]));
        let (meta, data) = decode_image(s.image()).unwrap();
        assert_eq!(meta.values[0], Some(MetricValue::U64(7)));
        assert_eq!(data.unwrap().values[1], Some(MetricValue::U64(42)));
    }

    #[test]
    fn refuses_wrong_types_and_indices() {
        let mut s = LocalSet::new(&schema(), &info()).unwrap();
        assert!(s.set(1, &MetricValue::U32(1)).is_err());
        assert!(s.set(9, &MetricValue::U64(1)).is_err());
        assert!(s.set(2, &MetricValue::F32Array(vec![1.0])).is_err());
        assert!(s.set_elem(2, 3, &MetricValue::F32(1.0)).is_err());
        assert!(s.set(3, &MetricValue::U64(1)).is_err());
        assert_eq!(s.data_gn(), 0);
    }

    #[test]
    fn lists_go_through_the_heap() {
        let mut s = LocalSet::new(&schema(), &info()).unwrap();
        s.set_u64(1, 5).unwrap();
        let entries = (0..3).map(|i| ListEntry { heap_off: 0, value: MetricValue::U64(i) }).collect::<Vec<_>>();
        s.update_values(|v| v[3] = Some(MetricValue::List(entries.clone()))).unwrap();
        let d = s.data().unwrap();
        let Some(MetricValue::List(l)) = &d.values[3] else { panic!("no list") };
        assert_eq!(
            l.iter().map(|e| e.value.clone()).collect::<Vec<_>>(),
            entries.iter().map(|e| e.value.clone()).collect::<Vec<_>>()
        );
        assert_eq!(d.values[1], Some(MetricValue::U64(5)));
        let huge = (0..1000).map(|i| ListEntry { heap_off: 0, value: MetricValue::U64(i) }).collect::<Vec<_>>();
        let before = s.image().to_vec();
        assert!(matches!(s.update_values(|v| v[3] = Some(MetricValue::List(huge))), Err(SetError::HeapFull { .. })));
        assert_eq!(s.image(), &before[..]);
    }

    #[test]
    fn runs_of_u64s_and_record_members_in_place() {
        let mut s = LocalSet::new(&schema(), &info()).unwrap();
        s.set_u64s(1, &[11]).unwrap();
        assert_eq!((s.get(1).unwrap(), s.data_gn()), (MetricValue::U64(11), 1));
        let before = s.image().to_vec();
        assert!(s.set_u64s(0, &[1, 2]).is_err(), "component_id is a meta metric");
        assert!(s.set_u64s(1, &[1, 2]).is_err(), "metric 2 is an F32 array");
        assert!(s.set_u64s(3, &[1, 2]).is_err(), "past the last metric");
        assert_eq!(s.image(), &before[..], "a refused run writes nothing");

        let name = MetricSpec::new("name", ValueType::CharArray, 4, false);
        let counters = ["x", "y", "z"].map(|n| MetricSpec::new(n, ValueType::U64, 1, false));
        let mut members = vec![name];
        members.extend(counters);
        let rt = MetricSpec { members, ..MetricSpec::new("rt", ValueType::RecordType, 0, true) };
        let schema = Schema {
            name: "r".into(),
            metrics: vec![rt, MetricSpec::new("l", ValueType::List, 512, false)],
            digest: None,
            meta_sz: None,
            heap_sz: None,
        };
        let mut s = LocalSet::new(&schema, &info()).unwrap();
        let inst = |b: &[u8]| RecordInst {
            set_data_off: 0,
            rec_type: 0,
            members: vec![
                MetricValue::CharArray(b.to_vec()),
                MetricValue::U64(0),
                MetricValue::U64(0),
                MetricValue::U64(0),
            ],
        };
        let entries = [b"a\0\0\0", b"b\0\0\0"]
            .map(|n| ListEntry { heap_off: 0, value: MetricValue::RecordInst(inst(n)) })
            .to_vec();
        s.update_values(|v| v[1] = Some(MetricValue::List(entries))).unwrap();
        let offsets: Vec<u32> = match &s.data().unwrap().values[1] {
            Some(MetricValue::List(l)) => l
                .iter()
                .map(|e| match &e.value {
                    MetricValue::RecordInst(r) => r.set_data_off,
                    v => panic!("{v:?}"),
                })
                .collect(),
            v => panic!("{v:?}"),
        };
        let (gn, heap_gn) = (s.data_gn(), s.data().unwrap().heap.gn);
        s.set_record_u64s(offsets[1], 1, &[7, 8, 9]).unwrap();
        s.set_record_u64s(offsets[0], 3, &[5]).unwrap();
        assert_eq!(s.data_gn(), gn + 4, "one per value, as ldms_record_set_u64");
        let d = s.data().unwrap();
        assert_eq!(d.heap.gn, heap_gn, "the heap is not laid out again");
        let Some(MetricValue::List(l)) = &d.values[1] else { panic!() };
        let values = |i: usize| match &l[i].value {
            MetricValue::RecordInst(r) => r.members[1..].to_vec(),
            v => panic!("{v:?}"),
        };
        assert_eq!(values(0), [MetricValue::U64(0), MetricValue::U64(0), MetricValue::U64(5)]);
        assert_eq!(values(1), [MetricValue::U64(7), MetricValue::U64(8), MetricValue::U64(9)]);
        let before = s.image().to_vec();
        assert!(s.set_record_u64s(0, 1, &[1]).is_err(), "no record instance at the data header");
        assert!(s.set_record_u64s(offsets[0], 0, &[1]).is_err(), "member 0 is the name");
        assert!(s.set_record_u64s(offsets[0], 2, &[1, 2, 3]).is_err(), "past the last member");
        assert!(s.set_record_u64s(u32::MAX, 1, &[1]).is_err(), "outside the set");
        assert_eq!(s.image(), &before[..]);
    }

    #[test]
    fn adopts_a_peer_image() {
        let mut s = LocalSet::new(&schema(), &info()).unwrap();
        s.set_u64(1, 9).unwrap();
        let copy = LocalSet::from_image(s.image().to_vec()).unwrap();
        assert_eq!(copy.get(1).unwrap(), MetricValue::U64(9));
        assert!(LocalSet::from_image(s.image()[..100].to_vec()).is_err());
    }
}
