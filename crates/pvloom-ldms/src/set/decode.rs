//! Decoding of meta and data sections.

use super::*;

/// A bounds-checked little-endian reader over one section.
#[derive(Clone, Copy)]
pub(crate) struct Sect<'a> {
    pub buf: &'a [u8],
    pub name: &'static str,
}

impl<'a> Sect<'a> {
    pub fn bytes(&self, what: &'static str, off: u64, len: u64) -> Result<&'a [u8], SetError> {
        let err = || SetError::OutOfBounds { what, offset: off, len, size: self.buf.len(), section: self.name };
        let end = off.checked_add(len).ok_or_else(err)?;
        if end > self.buf.len() as u64 {
            return Err(err());
        }
        Ok(&self.buf[off as usize..end as usize])
    }
    pub fn u8(&self, what: &'static str, off: u64) -> Result<u8, SetError> {
        Ok(self.bytes(what, off, 1)?[0])
    }
    pub fn u32(&self, what: &'static str, off: u64) -> Result<u32, SetError> {
        let b = self.bytes(what, off, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&self, what: &'static str, off: u64) -> Result<u64, SetError> {
        let b = self.bytes(what, off, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Decode a value descriptor at `off`.
fn decode_desc(s: Sect<'_>, off: u64, index: usize) -> Result<MetricDesc, SetError> {
    let user_data = s.u64("value descriptor", off)?;
    let data_offset = s.u32("value descriptor", off + 8)?;
    let count = s.u32("value descriptor", off + 12)?;
    let code = s.u8("value descriptor", off + 24)?;
    let flags = s.u8("value descriptor", off + 25)?;
    let nul = s.u8("value descriptor", off + 26)?;
    let nu = s.bytes("descriptor name and unit", off + 27, nul as u64)?;
    let ty = ValueType::from_code(code).ok_or(SetError::BadTypeCode { index, code })?;
    // "name\0unit\0"; a descriptor may also end right after the name's NUL (no unit).
    let cut = nu.iter().position(|&c| c == 0).unwrap_or(nu.len());
    let name = cstr(&nu[..cut]);
    let rest = nu.get(cut + 1..).unwrap_or(&[]);
    let unit = if rest.is_empty() { None } else { Some(cstr(rest)) };
    if name.is_empty() {
        return Err(SetError::BadDescriptor { index, reason: "empty name".into() });
    }
    Ok(MetricDesc { name, unit, ty, count, data_offset, flags, user_data, desc_offset: off as u32, record_type: None })
}

fn decode_record_type(s: Sect<'_>, rt: u64, index: usize) -> Result<RecordTypeDesc, SetError> {
    let flags = s.u32("record type", rt)?;
    if flags != RECORD_F_TYPE {
        return Err(SetError::BadRecord(format!("record type of metric {index} has flags {flags}")));
    }
    let n = s.u32("record type", rt + 8)?;
    let inst_sz = s.u32("record type", rt + 12)?;
    // Each member needs at least a dict slot and a descriptor, so n is bounded by the image.
    s.bytes("record type dict", rt + 16, n as u64 * 4)?;
    let mut members = Vec::with_capacity(n as usize);
    for j in 0..n as u64 {
        let d = s.u32("record type dict", rt + 16 + 4 * j)?;
        let mut m = decode_desc(s, rt + d as u64, j as usize)?;
        m.desc_offset = d;
        if !m.ty.is_primitive() {
            return Err(SetError::BadRecord(format!("member {j} of record type {index} has type {:?}", m.ty)));
        }
        let size = m.ty.value_size(m.count).unwrap_or(0) as u64;
        if m.data_offset as u64 + size > inst_sz as u64 {
            return Err(SetError::BadRecord(format!("member {j} of record type {index} ends past inst_sz {inst_sz}")));
        }
        members.push(m);
    }
    Ok(RecordTypeDesc { inst_sz, members })
}

/// Decode a primitive value (scalar, array, timestamp) of `count` elements at `off`.
pub(crate) fn prim(s: Sect<'_>, off: u64, ty: ValueType, count: u32) -> Result<MetricValue, SetError> {
    use MetricValue as V;
    let size = ty
        .value_size(count)
        .ok_or_else(|| SetError::BadDescriptor { index: 0, reason: format!("{ty:?} is not a primitive type") })?;
    let b = s.bytes("value", off, size as u64)?;
    macro_rules! arr {
        ($t:ty, $n:expr) => {
            b.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size"))).collect()
        };
    }
    Ok(match ty {
        ValueType::Char => V::Char(b[0]),
        ValueType::U8 => V::U8(b[0]),
        ValueType::S8 => V::S8(b[0] as i8),
        ValueType::U16 => V::U16(u16::from_le_bytes([b[0], b[1]])),
        ValueType::S16 => V::S16(i16::from_le_bytes([b[0], b[1]])),
        ValueType::U32 => V::U32(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ValueType::S32 => V::S32(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ValueType::F32 => V::F32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ValueType::U64 => V::U64(u64::from_le_bytes(b.try_into().expect("8 bytes"))),
        ValueType::S64 => V::S64(i64::from_le_bytes(b.try_into().expect("8 bytes"))),
        ValueType::D64 => V::D64(f64::from_le_bytes(b.try_into().expect("8 bytes"))),
        ValueType::Timestamp => V::Timestamp(Timestamp {
            sec: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            usec: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }),
        ValueType::CharArray => V::CharArray(b.to_vec()),
        ValueType::U8Array => V::U8Array(b.to_vec()),
        ValueType::S8Array => V::S8Array(b.iter().map(|&c| c as i8).collect()),
        ValueType::U16Array => V::U16Array(arr!(u16, 2)),
        ValueType::S16Array => V::S16Array(arr!(i16, 2)),
        ValueType::U32Array => V::U32Array(arr!(u32, 4)),
        ValueType::S32Array => V::S32Array(arr!(i32, 4)),
        ValueType::F32Array => V::F32Array(arr!(f32, 4)),
        ValueType::U64Array => V::U64Array(arr!(u64, 8)),
        ValueType::S64Array => V::S64Array(arr!(i64, 8)),
        ValueType::D64Array => V::D64Array(arr!(f64, 8)),
        _ => unreachable!("value_size is None for non-primitive types"),
    })
}

impl SetMeta {
    /// Decode the meta section at the start of `img` (`img` may also hold the data section).
    pub fn decode(img: &[u8]) -> Result<SetMeta, SetError> {
        let whole = Sect { buf: img, name: "image" };
        let meta_sz = whole.u32("set header meta_sz", 84)?;
        let s = Sect { buf: whole.bytes("meta section", 0, meta_sz as u64)?, name: "meta section" };
        let hdr = s.bytes("set header", 0, SET_HDR_SIZE as u64)?;
        let producer = cstr(&hdr[..64]);
        let meta_gn = s.u64("set header", 64)?;
        let version = [hdr[72], hdr[73], hdr[74], hdr[75]];
        let flags = hdr[76];
        let card = s.u32("set header", 80)?;
        let data_sz = s.u32("set header", 88)?;
        let uid = s.u32("set header", 92)?;
        let gid = s.u32("set header", 96)?;
        let perm = s.u32("set header", 100)?;
        let array_card = s.u32("set header", 104)?;
        let heap_sz = s.u32("set header", 108)?;
        if heap_sz > data_sz {
            return Err(SetError::BadSize(format!("heap_sz {heap_sz} exceeds data_sz {data_sz}")));
        }
        if heap_sz > 0 && ((data_sz - heap_sz) as usize) < DATA_HDR_SIZE {
            return Err(SetError::BadSize(format!(
                "heap at data offset {} overlaps the data header",
                data_sz - heap_sz
            )));
        }
        let dict = SET_HDR_SIZE as u64;
        s.bytes("dict", dict, card as u64 * 4)?;
        let mut o = dict + card as u64 * 4;
        let il = s.u8("instance name", o)?;
        let instance_name = cstr(s.bytes("instance name", o + 1, il as u64)?);
        o += 1 + il as u64;
        let sl = s.u8("schema name", o)?;
        let sfield = s.bytes("schema name", o + 1, sl as u64)?;
        let schema_name = cstr(sfield);
        let schema_digest = sfield
            .get(schema_name.len() + 1..schema_name.len() + 33)
            .map(|d| <[u8; 32]>::try_from(d).expect("32 bytes"));

        let mut metrics = Vec::with_capacity(card as usize);
        for i in 0..card as usize {
            let d = s.u32("dict", dict + 4 * i as u64)?;
            let mut m = decode_desc(s, d as u64, i)?;
            if m.ty == ValueType::ListEntry || m.ty == ValueType::RecordInst {
                return Err(SetError::BadDescriptor { index: i, reason: format!("{:?} cannot be a metric", m.ty) });
            }
            if m.ty == ValueType::RecordType {
                if !m.is_meta() {
                    return Err(SetError::BadDescriptor {
                        index: i,
                        reason: "RECORD_TYPE outside the meta section".into(),
                    });
                }
                m.record_type = Some(decode_record_type(s, m.data_offset as u64, i)?);
            } else if m.is_meta() && !m.ty.is_primitive() {
                return Err(SetError::BadDescriptor {
                    index: i,
                    reason: format!("{:?} cannot be a meta metric", m.ty),
                });
            }
            metrics.push(m);
        }
        let mut values = Vec::with_capacity(metrics.len());
        for m in &metrics {
            values.push(if m.is_meta() && m.ty.is_primitive() {
                Some(prim(s, m.data_offset as u64, m.ty, m.count)?)
            } else {
                None
            });
        }
        Ok(SetMeta {
            producer,
            meta_gn,
            version,
            flags,
            meta_sz,
            data_sz,
            uid,
            gid,
            perm,
            array_card,
            heap_sz,
            instance_name,
            schema_name,
            schema_digest,
            metrics: intern_descs(metrics),
            values,
        })
    }
}

struct DataCtx<'a, 'm> {
    s: Sect<'a>,
    meta: &'m SetMeta,
    heap_base: u64,
    visited: std::collections::HashSet<u32>,
}

impl DataCtx<'_, '_> {
    fn record_type(&self, rec_type: u32) -> Result<&RecordTypeDesc, SetError> {
        self.meta
            .metrics
            .get(rec_type as usize)
            .and_then(|m| m.record_type.as_ref())
            .ok_or_else(|| SetError::BadRecord(format!("rec_type {rec_type} is not a RECORD_TYPE metric")))
    }

    fn record_inst(&self, off: u64, want_type: Option<u32>) -> Result<RecordInst, SetError> {
        let flags = self.s.u32("record instance", off)?;
        let set_data_off = self.s.u32("record instance", off + 8)?;
        let rec_type = self.s.u32("record instance", off + 12)?;
        if flags != RECORD_F_INST {
            return Err(SetError::BadRecord(format!("record instance at data offset {off} has flags {flags}")));
        }
        if want_type.is_some_and(|w| w != rec_type) {
            return Err(SetError::BadRecord(format!(
                "record instance at data offset {off} has rec_type {rec_type}, expected {want_type:?}"
            )));
        }
        let rt = self.record_type(rec_type)?;
        self.s.bytes("record instance", off, rt.inst_sz.max(16) as u64)?;
        let members = rt
            .members
            .iter()
            .map(|m| prim(self.s, off + m.data_offset as u64, m.ty, m.count))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordInst { set_data_off, rec_type, members })
    }

    fn list(&mut self, off: u64, depth: usize) -> Result<Vec<ListEntry>, SetError> {
        if depth > MAX_LIST_DEPTH {
            return Err(SetError::TooDeep);
        }
        let head = self.s.u32("list head", off)?;
        let tail = self.s.u32("list tail", off + 4)?;
        let count = self.s.u32("list count", off + 8)?;
        let heap_sz = self.meta.heap_sz as u64;
        let mut out = Vec::new();
        let (mut e, mut prev_e) = (head, 0u32);
        while e != 0 {
            if !self.visited.insert(e) {
                return Err(SetError::HeapCycle { offset: e });
            }
            if e as u64 + 12 > heap_sz {
                return Err(SetError::OutOfBounds {
                    what: "list entry",
                    offset: e as u64,
                    len: 12,
                    size: heap_sz as usize,
                    section: "heap",
                });
            }
            let eo = self.heap_base + e as u64;
            let next = self.s.u32("list entry", eo)?;
            let prev = self.s.u32("list entry", eo + 4)?;
            let tc = self.s.u32("list entry", eo + 8)?;
            if prev != prev_e {
                return Err(SetError::BadList(format!("entry at heap offset {e} has prev {prev}, expected {prev_e}")));
            }
            let code = (tc & 0xff) as u8;
            let ecount = tc >> 8;
            let ty = ValueType::from_code(code).ok_or(SetError::BadTypeCode { index: out.len(), code })?;
            let vo = eo + 12;
            let value = match ty {
                ValueType::List => MetricValue::List(self.list(vo, depth + 1)?),
                ValueType::RecordInst => MetricValue::RecordInst(self.record_inst(vo, None)?),
                t if t.is_primitive() => prim(self.s, vo, t, ecount)?,
                t => return Err(SetError::BadList(format!("entry at heap offset {e} has type {t:?}"))),
            };
            if vo + value_extent(&value, self) > self.heap_base + heap_sz {
                return Err(SetError::BadList(format!("entry at heap offset {e} ends past the heap")));
            }
            out.push(ListEntry { heap_off: e, value });
            prev_e = e;
            e = next;
        }
        if tail != prev_e {
            return Err(SetError::BadList(format!("tail {tail} but the last entry is at {prev_e}")));
        }
        if count as usize != out.len() {
            return Err(SetError::BadList(format!("count {count} but {} entries", out.len())));
        }
        Ok(out)
    }
}

/// Bytes a list entry's value occupies (for the heap bound check).
fn value_extent(v: &MetricValue, ctx: &DataCtx<'_, '_>) -> u64 {
    match v {
        MetricValue::List(_) => 12,
        MetricValue::RecordInst(r) => ctx.record_type(r.rec_type).map_or(16, |t| t.inst_sz as u64),
        v => v.ty().value_size(v.count() as u32).unwrap_or(0) as u64,
    }
}

impl SetData {
    /// Decode a data section (`data` is exactly the `data_sz` bytes at `meta_sz`, or at least
    /// the data header and values) with the metadata it belongs to.
    pub fn decode(meta: &SetMeta, data: &[u8]) -> Result<SetData, SetError> {
        if data.len() < meta.data_sz as usize {
            return Err(SetError::BadSize(format!(
                "data section of {} bytes, data_sz is {}",
                data.len(),
                meta.data_sz
            )));
        }
        let s = Sect { buf: &data[..meta.data_sz as usize], name: "data section" };
        s.bytes("data header", 0, DATA_HDR_SIZE as u64)?;
        let ts = |o| -> Result<Timestamp, SetError> {
            Ok(Timestamp { sec: s.u32("data header", o)?, usec: s.u32("data header", o + 4)? })
        };
        let trans = Transaction { ts: ts(0)?, dur: ts(8)?, flags: s.u32("data header", 16)? };
        let hg = s.u32("data header", 56)?;
        let heap = HeapInfo {
            grain_bits: (hg & 0xff) as u8,
            grain: hg >> 8,
            size: s.u64("data header", 64)?,
            gn: s.u32("data header", 72)?,
        };
        let mut ctx = DataCtx { s, meta, heap_base: meta.heap_base() as u64, visited: Default::default() };
        let mut values = Vec::with_capacity(meta.metrics.len());
        for m in meta.metrics.iter() {
            if m.is_meta() {
                values.push(None);
                continue;
            }
            let off = m.data_offset as u64;
            let v = match m.ty {
                ValueType::List => MetricValue::List(ctx.list(off, 0)?),
                ValueType::RecordArray => {
                    let inst_sz = s.u32("record array", off)?;
                    let rec_type = s.u32("record array", off + 4)?;
                    let len = s.u32("record array", off + 8)?;
                    let rt = ctx.record_type(rec_type)?;
                    if rt.inst_sz != inst_sz {
                        return Err(SetError::BadRecord(format!(
                            "record array inst_sz {inst_sz}, record type says {}",
                            rt.inst_sz
                        )));
                    }
                    s.bytes("record array", off + 12, inst_sz as u64 * len as u64)?;
                    let elems = (0..len as u64)
                        .map(|k| ctx.record_inst(off + 12 + k * inst_sz as u64, Some(rec_type)))
                        .collect::<Result<Vec<_>, _>>()?;
                    MetricValue::RecordArray { rec_type, inst_sz, elems }
                }
                t => prim(s, off, t, m.count)?,
            };
            values.push(Some(v));
        }
        Ok(SetData {
            trans,
            set_off: s.u32("data header", 20)?,
            data_gn: s.u64("data header", 24)?,
            size: s.u64("data header", 32)?,
            meta_gn: s.u64("data header", 40)?,
            curr_idx: s.u32("data header", 48)?,
            heap,
            values,
        })
    }
}
