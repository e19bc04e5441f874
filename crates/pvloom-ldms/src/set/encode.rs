//! Encoding of set images from [`SetMeta`] / [`SetData`] (their stored offsets give the layout).

use super::*;

struct W<'a> {
    buf: &'a mut [u8],
    name: &'static str,
}

impl W<'_> {
    fn put(&mut self, what: &'static str, off: u64, b: &[u8]) -> Result<(), SetError> {
        let size = self.buf.len();
        let err = || SetError::OutOfBounds { what, offset: off, len: b.len() as u64, size, section: self.name };
        let end = off.checked_add(b.len() as u64).ok_or_else(err)?;
        if end > size as u64 {
            return Err(err());
        }
        self.buf[off as usize..end as usize].copy_from_slice(b);
        Ok(())
    }
    fn u32(&mut self, what: &'static str, off: u64, v: u32) -> Result<(), SetError> {
        self.put(what, off, &v.to_le_bytes())
    }
    fn u64(&mut self, what: &'static str, off: u64, v: u64) -> Result<(), SetError> {
        self.put(what, off, &v.to_le_bytes())
    }
}

fn prim_bytes(v: &MetricValue) -> Option<Vec<u8>> {
    use MetricValue as V;
    macro_rules! a {
        ($v:expr) => {
            $v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
    }
    Some(match v {
        V::Char(x) | V::U8(x) => vec![*x],
        V::S8(x) => vec![*x as u8],
        V::U16(x) => x.to_le_bytes().to_vec(),
        V::S16(x) => x.to_le_bytes().to_vec(),
        V::U32(x) => x.to_le_bytes().to_vec(),
        V::S32(x) => x.to_le_bytes().to_vec(),
        V::U64(x) => x.to_le_bytes().to_vec(),
        V::S64(x) => x.to_le_bytes().to_vec(),
        V::F32(x) => x.to_le_bytes().to_vec(),
        V::D64(x) => x.to_le_bytes().to_vec(),
        V::CharArray(x) | V::U8Array(x) => x.clone(),
        V::S8Array(x) => x.iter().map(|&c| c as u8).collect(),
        V::U16Array(x) => a!(x),
        V::S16Array(x) => a!(x),
        V::U32Array(x) => a!(x),
        V::S32Array(x) => a!(x),
        V::U64Array(x) => a!(x),
        V::S64Array(x) => a!(x),
        V::F32Array(x) => a!(x),
        V::D64Array(x) => a!(x),
        V::Timestamp(t) => [t.sec.to_le_bytes(), t.usec.to_le_bytes()].concat(),
        _ => return None,
    })
}

/// Check a primitive value against a descriptor's type and count, and return its bytes.
fn prim_for(index: usize, d: &MetricDesc, v: &MetricValue) -> Result<Vec<u8>, SetError> {
    let bad = |reason: String| SetError::ValueMismatch { index, reason };
    if v.ty() != d.ty {
        return Err(bad(format!("{:?} value for a {:?} metric", v.ty(), d.ty)));
    }
    if d.ty.is_array() && v.count() != d.count as usize {
        return Err(bad(format!("{} elements, count is {}", v.count(), d.count)));
    }
    prim_bytes(v).ok_or_else(|| bad("not a primitive value".into()))
}

fn desc_bytes(d: &MetricDesc) -> Result<Vec<u8>, SetError> {
    let nu = match &d.unit {
        Some(u) => format!("{}\0{u}\0", d.name),
        None => format!("{}\0", d.name),
    };
    let nl = u8::try_from(nu.len())
        .map_err(|_| SetError::BadDescriptor { index: 0, reason: "name and unit longer than 255 bytes".into() })?;
    // The slot is sizeof(struct ldms_value_desc) (27 rounded to 28 by the 4-byte packing)
    // plus name and unit, rounded to 8: `component_id` takes 48, `d_d64_array` 48.
    let mut b = vec![0u8; round8((DESC_FIXED_SIZE + 1) + nu.len()).max(DESC_FIXED_SIZE + nu.len())];
    b[0..8].copy_from_slice(&d.user_data.to_le_bytes());
    b[8..12].copy_from_slice(&d.data_offset.to_le_bytes());
    b[12..16].copy_from_slice(&d.count.to_le_bytes());
    b[24] = d.ty.code();
    b[25] = d.flags;
    b[26] = nl;
    b[27..27 + nu.len()].copy_from_slice(nu.as_bytes());
    Ok(b)
}

impl SetMeta {
    /// Encode the meta section (`meta_sz` bytes), writing every descriptor, record type and
    /// meta value at its stored offset.
    pub fn encode(&self) -> Result<Vec<u8>, SetError> {
        let mut buf = vec![0u8; self.meta_sz as usize];
        let mut w = W { buf: &mut buf, name: "meta section" };
        let mut p = [0u8; 64];
        let pb = self.producer.as_bytes();
        let n = pb.len().min(63);
        p[..n].copy_from_slice(&pb[..n]);
        w.put("set header", 0, &p)?;
        w.u64("set header", 64, self.meta_gn)?;
        w.put("set header", 72, &self.version)?;
        w.put("set header", 76, &[self.flags])?;
        w.u32("set header", 80, self.card() as u32)?;
        w.u32("set header", 84, self.meta_sz)?;
        w.u32("set header", 88, self.data_sz)?;
        w.u32("set header", 92, self.uid)?;
        w.u32("set header", 96, self.gid)?;
        w.u32("set header", 100, self.perm)?;
        w.u32("set header", 104, self.array_card)?;
        w.u32("set header", 108, self.heap_sz)?;
        let mut o = SET_HDR_SIZE as u64;
        for m in self.metrics.iter() {
            w.u32("dict", o, m.desc_offset)?;
            o += 4;
        }
        for (k, name) in [&self.instance_name, &self.schema_name].into_iter().enumerate() {
            let digest = if k == 1 { self.schema_digest } else { None };
            let l = name.len() + 1 + digest.map_or(0, |_| 33);
            let l = u8::try_from(l).map_err(|_| SetError::BadSize("name longer than 254 bytes".into()))?;
            w.put("name", o, &[l])?;
            w.put("name", o + 1, name.as_bytes())?;
            if let Some(d) = digest {
                w.put("schema digest", o + 2 + name.len() as u64, &d)?;
            }
            o += 1 + l as u64;
        }
        for (i, m) in self.metrics.iter().enumerate() {
            w.put("value descriptor", m.desc_offset as u64, &desc_bytes(m)?)?;
            if let Some(rt) = &m.record_type {
                let b = m.data_offset as u64;
                w.u32("record type", b, RECORD_F_TYPE)?;
                w.u32("record type", b + 8, rt.members.len() as u32)?;
                w.u32("record type", b + 12, rt.inst_sz)?;
                for (j, mm) in rt.members.iter().enumerate() {
                    w.u32("record type dict", b + 16 + 4 * j as u64, mm.desc_offset)?;
                    w.put("member descriptor", b + mm.desc_offset as u64, &desc_bytes(mm)?)?;
                }
            } else if let Some(v) = self.values.get(i).and_then(|v| v.as_ref()) {
                w.put("meta value", m.data_offset as u64, &prim_for(i, m, v)?)?;
            }
        }
        Ok(buf)
    }
}

struct Heap {
    base: u64,
    size: u64,
    next: u64,
}

impl Heap {
    /// Allocate `n` bytes in 64-byte grains, each allocation preceded by its size in grains.
    fn alloc(&mut self, w: &mut W<'_>, n: usize) -> Result<u32, SetError> {
        let grains = (4 + n).div_ceil(64) as u64;
        let free = self.size.saturating_sub(self.next) as usize;
        if self.next + grains * 64 > self.size {
            return Err(SetError::HeapFull { need: n, free });
        }
        w.u32("heap allocation", self.base + self.next, grains as u32)?;
        let e = self.next + 4;
        self.next += grains * 64;
        Ok(e as u32)
    }
}

impl SetData {
    /// Encode the data section (`meta.data_sz` bytes). List entries are laid out afresh in
    /// the heap (their `heap_off` and records' `set_data_off` are recomputed).
    pub fn encode(&self, meta: &SetMeta) -> Result<Vec<u8>, SetError> {
        let mut buf = vec![0u8; meta.data_sz as usize];
        let mut w = W { buf: &mut buf, name: "data section" };
        let t = &self.trans;
        for (o, v) in [(0, t.ts.sec), (4, t.ts.usec), (8, t.dur.sec), (12, t.dur.usec)] {
            w.u32("data header", o, v)?;
        }
        w.u32("data header", 16, t.flags)?;
        w.u32("data header", 20, self.set_off)?;
        w.u64("data header", 24, self.data_gn)?;
        w.u64("data header", 32, self.size)?;
        w.u64("data header", 40, self.meta_gn)?;
        w.u32("data header", 48, self.curr_idx)?;
        let h = &self.heap;
        w.u32("data header", 56, h.grain_bits as u32 | (h.grain << 8))?;
        w.u64("data header", 64, h.size)?;
        w.u32("data header", 72, h.gn)?;
        let mut heap = Heap { base: meta.heap_base() as u64, size: meta.heap_sz as u64, next: 8 };
        if meta.heap_sz > 0 {
            w.put("heap signature", heap.base, HEAP_SIGNATURE)?;
        }
        for (i, m) in meta.metrics.iter().enumerate() {
            let Some(v) = self.values.get(i).and_then(|v| v.as_ref()) else {
                continue;
            };
            let off = m.data_offset as u64;
            match v {
                MetricValue::List(l) => list(&mut w, &mut heap, meta, i, off, l)?,
                MetricValue::RecordArray { rec_type, elems, .. } => {
                    let rt = record_type(meta, i, *rec_type)?;
                    w.u32("record array", off, rt.inst_sz)?;
                    w.u32("record array", off + 4, *rec_type)?;
                    w.u32("record array", off + 8, elems.len() as u32)?;
                    for (k, r) in elems.iter().enumerate() {
                        let o = off + 12 + k as u64 * rt.inst_sz as u64;
                        record(&mut w, meta, i, o, r)?;
                    }
                }
                v => w.put("data value", off, &prim_for(i, m, v)?)?,
            }
        }
        Ok(buf)
    }
}

fn record_type(meta: &SetMeta, index: usize, rt: u32) -> Result<&RecordTypeDesc, SetError> {
    meta.metrics
        .get(rt as usize)
        .and_then(|m| m.record_type.as_ref())
        .ok_or_else(|| SetError::ValueMismatch { index, reason: format!("rec_type {rt} is not a RECORD_TYPE metric") })
}

fn record(w: &mut W<'_>, meta: &SetMeta, index: usize, off: u64, r: &RecordInst) -> Result<(), SetError> {
    let rt = record_type(meta, index, r.rec_type)?;
    if rt.members.len() != r.members.len() {
        return Err(SetError::ValueMismatch {
            index,
            reason: format!("{} record members, type has {}", r.members.len(), rt.members.len()),
        });
    }
    w.u32("record instance", off, RECORD_F_INST)?;
    w.u32("record instance", off + 8, off as u32)?;
    w.u32("record instance", off + 12, r.rec_type)?;
    for (m, v) in rt.members.iter().zip(&r.members) {
        w.put("record member", off + m.data_offset as u64, &prim_for(index, m, v)?)?;
    }
    Ok(())
}

fn list(
    w: &mut W<'_>,
    heap: &mut Heap,
    meta: &SetMeta,
    index: usize,
    off: u64,
    l: &[ListEntry],
) -> Result<(), SetError> {
    let mut prev = 0u32;
    let mut head = 0u32;
    for e in l {
        let (ty, count, size) = match &e.value {
            MetricValue::List(_) => (ValueType::List, 1, 16),
            MetricValue::RecordInst(r) => {
                (ValueType::RecordInst, 1, record_type(meta, index, r.rec_type)?.inst_sz as usize)
            }
            v => {
                let b = prim_bytes(v).ok_or_else(|| SetError::ValueMismatch {
                    index,
                    reason: format!("{:?} cannot be a list entry", v.ty()),
                })?;
                (v.ty(), v.count() as u32, round8(b.len()))
            }
        };
        if count >= 1 << 24 {
            return Err(SetError::ValueMismatch { index, reason: "list entry count exceeds 24 bits".into() });
        }
        let ent = heap.alloc(w, 12 + size)?;
        let eo = heap.base + ent as u64;
        w.u32("list entry", eo + 4, prev)?;
        w.u32("list entry", eo + 8, ty.code() as u32 | (count << 8))?;
        match &e.value {
            MetricValue::List(sub) => list(w, heap, meta, index, eo + 12, sub)?,
            MetricValue::RecordInst(r) => record(w, meta, index, eo + 12, r)?,
            v => w.put("list entry value", eo + 12, &prim_bytes(v).unwrap_or_default())?,
        }
        if prev == 0 {
            head = ent;
        } else {
            w.u32("list entry", heap.base + prev as u64, ent)?;
        }
        prev = ent;
    }
    w.u32("list", off, head)?;
    w.u32("list", off + 4, prev)?;
    w.u32("list", off + 8, l.len() as u32)
}

/// One metric of a [`Schema`].
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSpec {
    /// Name.
    pub name: String,
    /// Unit (`Some("")` for none, as ldmsd writes it; `None` leaves out the unit's NUL).
    pub unit: Option<String>,
    /// Type (not LIST_ENTRY or RECORD_INST).
    pub ty: ValueType,
    /// Array length; heap bytes reserved for a LIST; elements of a RECORD_ARRAY.
    pub count: u32,
    /// A meta metric (primitive types and RECORD_TYPE only; RECORD_TYPE is always meta).
    pub meta: bool,
    /// RECORD_TYPE: its members (primitive types).
    pub members: Vec<MetricSpec>,
    /// RECORD_ARRAY: metric index of its RECORD_TYPE.
    pub record_type: Option<u32>,
}

impl MetricSpec {
    /// A primitive metric (`count` elements for an array type).
    pub fn new(name: &str, ty: ValueType, count: u32, meta: bool) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            unit: Some(String::new()),
            ty,
            count,
            meta,
            members: Vec::new(),
            record_type: None,
        }
    }
}

/// A schema: the metric list a set is laid out from.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// Schema name.
    pub name: String,
    /// Metrics, in index order.
    pub metrics: Vec<MetricSpec>,
    /// The schema digest to store after the name (ldmsd stores a 32-byte digest; computing
    /// it is not done here).
    pub digest: Option<[u8; 32]>,
    /// Meta section size to allocate, if larger than what the layout needs. ldmsd's own
    /// sizing is an estimate made before the instance name is known and often exceeds the
    /// end of the last meta value (meminfo: 8 bytes, procnetdev2: 904 bytes).
    pub meta_sz: Option<u32>,
    /// Heap size; if `None`, the LIST reservations plus one 64-byte grain, rounded to 64.
    pub heap_sz: Option<u32>,
}

/// The per-set fields of a set header.
#[derive(Clone, Debug, PartialEq)]
pub struct SetInfo {
    /// Producer name.
    pub producer: String,
    /// Instance name.
    pub instance: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permissions (e.g. 0o440).
    pub perm: u32,
    /// Metadata generation number.
    pub meta_gn: u64,
}

fn bad(index: usize, reason: impl Into<String>) -> SetError {
    SetError::BadDescriptor { index, reason: reason.into() }
}

fn slot(index: usize, ty: ValueType, count: u32) -> Result<usize, SetError> {
    let n = ty.value_size(count).ok_or_else(|| bad(index, format!("{ty:?} has no fixed size")))?;
    Ok(round8(n.max(1)))
}

impl Schema {
    /// Lay a set out the way `ldms.c` does: descriptors (8-aligned) after the names, then the
    /// meta values and record types in metric order, each in 8-byte slots; data values after
    /// the 96-byte data header (LIST 16 bytes, RECORD_ARRAY `12 + n × inst_sz` rounded), then
    /// the heap. The returned metadata has no meta values yet (`values` all `None`).
    pub fn layout(&self, info: &SetInfo) -> Result<SetMeta, SetError> {
        let card = self.metrics.len();
        let name_len = |s: &str| {
            if s.len() > 254 { Err(SetError::BadSize("name longer than 254 bytes".into())) } else { Ok(s.len() + 1) }
        };
        let mut o = SET_HDR_SIZE + 4 * card + 1 + name_len(&info.instance)? + 1;
        o += name_len(&self.name)? + self.digest.map_or(0, |_| 33);
        o = round8(o);
        let mut descs = Vec::with_capacity(card);
        for (i, s) in self.metrics.iter().enumerate() {
            use ValueType as T;
            if matches!(s.ty, T::ListEntry | T::RecordInst) {
                return Err(bad(i, format!("{:?} cannot be a metric", s.ty)));
            }
            let meta = s.meta || s.ty == T::RecordType;
            if meta && !(s.ty.is_primitive() || s.ty == T::RecordType) {
                return Err(bad(i, format!("{:?} cannot be a meta metric", s.ty)));
            }
            let d = MetricDesc {
                name: s.name.clone(),
                unit: s.unit.clone(),
                ty: s.ty,
                count: if s.ty == T::RecordType { 0 } else { s.count },
                data_offset: 0,
                flags: if s.ty == T::RecordType {
                    FLAG_META | FLAG_RECORD
                } else if meta {
                    FLAG_META
                } else {
                    FLAG_DATA
                },
                user_data: 0,
                desc_offset: o as u32,
                record_type: None,
            };
            o += desc_bytes(&d)?.len();
            descs.push(d);
        }
        // Meta values and record types.
        for (i, s) in self.metrics.iter().enumerate() {
            if s.ty == ValueType::RecordType {
                let rt_off = o;
                let n = s.members.len();
                // Member descriptors follow the dict directly (procnetdev2: 17 members, first at +84).
                let mut mo = 16 + 4 * n;
                let mut io = 16usize;
                let mut members = Vec::with_capacity(n);
                for (j, m) in s.members.iter().enumerate() {
                    if !m.ty.is_primitive() {
                        return Err(bad(i, format!("member {j} has type {:?}", m.ty)));
                    }
                    let md = MetricDesc {
                        name: m.name.clone(),
                        unit: m.unit.clone(),
                        ty: m.ty,
                        count: m.count,
                        data_offset: io as u32,
                        flags: FLAG_DATA | FLAG_RECORD,
                        user_data: RECORD_MEMBER_USER_DATA,
                        desc_offset: mo as u32,
                        record_type: None,
                    };
                    io += slot(i, m.ty, m.count)?;
                    mo += desc_bytes(&md)?.len();
                    members.push(md);
                }
                descs[i].data_offset = rt_off as u32;
                descs[i].record_type = Some(RecordTypeDesc { inst_sz: io as u32, members });
                o = rt_off + mo;
            } else if descs[i].is_meta() {
                descs[i].data_offset = o as u32;
                o += slot(i, s.ty, s.count)?;
            }
        }
        let meta_sz = round8(o).max(self.meta_sz.unwrap_or(0) as usize);
        // Data values.
        let mut d = DATA_HDR_SIZE;
        let mut reserve = 0usize;
        for (i, s) in self.metrics.iter().enumerate() {
            if descs[i].is_meta() {
                continue;
            }
            descs[i].data_offset = d as u32;
            d += match s.ty {
                ValueType::List => {
                    reserve += s.count as usize;
                    16
                }
                ValueType::RecordArray => {
                    let rt = s.record_type.ok_or_else(|| bad(i, "RECORD_ARRAY without a type"))?;
                    let inst = descs
                        .get(rt as usize)
                        .and_then(|m| m.record_type.as_ref())
                        .ok_or_else(|| bad(i, format!("metric {rt} is not a RECORD_TYPE")))?
                        .inst_sz as usize;
                    round8(12 + inst * s.count as usize)
                }
                t => slot(i, t, s.count)?,
            };
        }
        let heap_sz = match self.heap_sz {
            Some(h) => h as usize,
            None if reserve > 0 => (reserve + 64).div_ceil(64) * 64,
            None => 0,
        };
        let data_sz = d + heap_sz;
        let too_big = |_| SetError::BadSize("set larger than 4 GiB".into());
        Ok(SetMeta {
            producer: info.producer.clone(),
            meta_gn: info.meta_gn,
            version: [4, 2, 0, 0],
            flags: 2,
            meta_sz: u32::try_from(meta_sz).map_err(too_big)?,
            data_sz: u32::try_from(data_sz).map_err(too_big)?,
            uid: info.uid,
            gid: info.gid,
            perm: info.perm,
            array_card: 1,
            heap_sz: u32::try_from(heap_sz).map_err(too_big)?,
            instance_name: info.instance.clone(),
            schema_name: self.name.clone(),
            schema_digest: self.digest,
            values: vec![None; card],
            metrics: intern_descs(descs),
        })
    }
}

impl SetData {
    /// A data section for `meta` with no values yet: header fields as ldmsd would have them
    /// after a completed transaction (set_off = meta_sz, 64-byte heap grains).
    pub fn empty(meta: &SetMeta, data_gn: u64, trans: Transaction) -> SetData {
        SetData {
            trans,
            set_off: meta.meta_sz,
            data_gn,
            size: meta.data_sz as u64,
            meta_gn: meta.meta_gn,
            curr_idx: 0,
            heap: if meta.heap_sz > 0 {
                HeapInfo { grain_bits: 6, grain: 64, size: meta.heap_sz as u64, gn: 0 }
            } else {
                HeapInfo::default()
            },
            values: vec![None; meta.metrics.len()],
        }
    }
}

/// Encode a whole set image, meta section then data section.
pub fn encode_image(meta: &SetMeta, data: &SetData) -> Result<Vec<u8>, SetError> {
    // Exactly sized: a served set lives as this buffer, and growing it by appending
    // would leave up to twice the image allocated for every set.
    let mut img = Vec::with_capacity(meta.meta_sz as usize + meta.data_sz as usize);
    img.extend(meta.encode()?);
    img.extend(data.encode(meta)?);
    Ok(img)
}
