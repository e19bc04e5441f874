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
    let nu = format!("{}\0{}\0", d.name, d.unit);
    let nl = u8::try_from(nu.len())
        .map_err(|_| SetError::BadDescriptor { index: 0, reason: "name and unit longer than 255 bytes".into() })?;
    let mut b = vec![0u8; round8(DESC_FIXED_SIZE + nu.len())];
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
        for m in &self.metrics {
            w.u32("dict", o, m.desc_offset)?;
            o += 4;
        }
        for name in [&self.instance_name, &self.schema_name] {
            let l = u8::try_from(name.len() + 1).map_err(|_| SetError::BadSize("name longer than 254 bytes".into()))?;
            w.put("name", o, &[l])?;
            w.put("name", o + 1, name.as_bytes())?;
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
