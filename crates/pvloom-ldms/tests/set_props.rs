//! Property tests: arbitrary bytes never make the decoder panic; mutated real images neither.

use proptest::prelude::*;
use pvloom_ldms::set::{SetData, SetMeta, decode_image};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_image(&b);
        let _ = SetMeta::decode(&b);
    }

    #[test]
    fn mutated_image_never_panics(at in 0usize..4096, val in any::<u8>(), at2 in 0usize..4096, val2 in any::<u8>()) {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/list-record/s2c.bin");
        let s = std::fs::read(p).expect("capture missing");
        // record_sampler meta+data image: READ_RESP at s2c @17220, payload at +36, 6 720 bytes.
        let mut img = s[17256..17256 + 6720].to_vec();
        let (meta, _) = decode_image(&img).expect("original decodes");
        let i = at % img.len();
        img[i] = val;
        let j = 3128 + at2 % (img.len() - 3128);
        img[j] = val2;
        let _ = decode_image(&img);
        if let Ok(m) = SetMeta::decode(&img) {
            let _ = m.encode();
        }
        let _ = SetData::decode(&meta, &img[3128..]);
    }
}

mod round_trip {
    use proptest::prelude::*;
    use pvloom_ldms::set::{
        ListEntry, MetricSpec, MetricValue, RecordInst, Schema, SetData, SetInfo, Timestamp, Transaction, ValueType,
        decode_image, encode_image,
    };

    /// Small deterministic generator for the values (the structure comes from proptest).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f32(&mut self) -> f32 {
            let v = f32::from_bits(self.next() as u32);
            if v.is_nan() { 1.5 } else { v }
        }
        fn f64(&mut self) -> f64 {
            let v = f64::from_bits(self.next());
            if v.is_nan() { -2.25 } else { v }
        }
    }

    fn value(r: &mut Rng, ty: ValueType, count: u32) -> MetricValue {
        use MetricValue as V;
        let n = count as usize;
        match ty {
            ValueType::Char => V::Char(r.next() as u8),
            ValueType::U8 => V::U8(r.next() as u8),
            ValueType::S8 => V::S8(r.next() as i8),
            ValueType::U16 => V::U16(r.next() as u16),
            ValueType::S16 => V::S16(r.next() as i16),
            ValueType::U32 => V::U32(r.next() as u32),
            ValueType::S32 => V::S32(r.next() as i32),
            ValueType::U64 => V::U64(r.next()),
            ValueType::S64 => V::S64(r.next() as i64),
            ValueType::F32 => V::F32(r.f32()),
            ValueType::D64 => V::D64(r.f64()),
            ValueType::Timestamp => V::Timestamp(Timestamp { sec: r.next() as u32, usec: r.next() as u32 % 1_000_000 }),
            ValueType::CharArray => V::CharArray((0..n).map(|_| r.next() as u8).collect()),
            ValueType::U8Array => V::U8Array((0..n).map(|_| r.next() as u8).collect()),
            ValueType::S8Array => V::S8Array((0..n).map(|_| r.next() as i8).collect()),
            ValueType::U16Array => V::U16Array((0..n).map(|_| r.next() as u16).collect()),
            ValueType::S16Array => V::S16Array((0..n).map(|_| r.next() as i16).collect()),
            ValueType::U32Array => V::U32Array((0..n).map(|_| r.next() as u32).collect()),
            ValueType::S32Array => V::S32Array((0..n).map(|_| r.next() as i32).collect()),
            ValueType::U64Array => V::U64Array((0..n).map(|_| r.next()).collect()),
            ValueType::S64Array => V::S64Array((0..n).map(|_| r.next() as i64).collect()),
            ValueType::F32Array => V::F32Array((0..n).map(|_| r.f32()).collect()),
            ValueType::D64Array => V::D64Array((0..n).map(|_| r.f64()).collect()),
            t => unreachable!("{t:?}"),
        }
    }

    fn prim_type() -> impl Strategy<Value = (ValueType, u32)> {
        (1u8..=23).prop_flat_map(|c| {
            let ty = if c == 23 { ValueType::Timestamp } else { ValueType::from_code(c).unwrap() };
            let counts = if ty.is_array() { 1u32..7 } else { 1u32..2 };
            (Just(ty), counts)
        })
    }

    type PrimType = (ValueType, u32);

    #[derive(Debug, Clone)]
    struct Shape {
        prims: Vec<((ValueType, u32), bool)>,
        list: Option<((ValueType, u32), usize, usize)>, // entry type, entries, nested sub-lists
        record: Option<(Vec<PrimType>, usize, usize)>,  // members, list insts, array len
        seed: u64,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        (
            proptest::collection::vec((prim_type(), any::<bool>()), 0..8),
            proptest::option::of((prim_type(), 0usize..5, 0usize..3)),
            proptest::option::of((proptest::collection::vec(prim_type(), 1..5), 0usize..4, 0usize..4)),
            1u64..u64::MAX,
        )
            .prop_map(|(prims, list, record, seed)| Shape { prims, list, record, seed })
    }

    fn build(s: &Shape) -> (Schema, Vec<Option<MetricValue>>) {
        let mut r = Rng(s.seed);
        let mut metrics = Vec::new();
        let mut values = Vec::new();
        for (i, ((ty, count), meta)) in s.prims.iter().enumerate() {
            metrics.push(MetricSpec::new(&format!("m{i}"), *ty, *count, *meta));
            values.push(Some(value(&mut r, *ty, *count)));
        }
        if let Some(((ty, count), n, sub)) = s.list {
            metrics.push(MetricSpec::new("list", ValueType::List, 4096, false));
            let mut entries: Vec<ListEntry> =
                (0..n).map(|_| ListEntry { heap_off: 0, value: value(&mut r, ty, count) }).collect();
            if sub > 0 {
                entries =
                    (0..sub).map(|_| ListEntry { heap_off: 0, value: MetricValue::List(entries.clone()) }).collect();
            }
            values.push(Some(MetricValue::List(entries)));
        }
        if let Some((members, insts, alen)) = &s.record {
            let rt = metrics.len() as u32;
            let mut spec = MetricSpec::new("rec", ValueType::RecordType, 0, true);
            spec.members = members
                .iter()
                .enumerate()
                .map(|(j, (t, c))| MetricSpec::new(&format!("f{j}"), *t, *c, false))
                .collect();
            metrics.push(spec);
            values.push(None);
            let inst = |r: &mut Rng| RecordInst {
                set_data_off: 0,
                rec_type: rt,
                members: members.iter().map(|(t, c)| value(r, *t, *c)).collect(),
            };
            metrics.push(MetricSpec::new("rec_list", ValueType::List, 4096, false));
            values.push(Some(MetricValue::List(
                (0..*insts).map(|_| ListEntry { heap_off: 0, value: MetricValue::RecordInst(inst(&mut r)) }).collect(),
            )));
            let mut arr = MetricSpec::new("rec_array", ValueType::RecordArray, *alen as u32, false);
            arr.record_type = Some(rt);
            metrics.push(arr);
            let elems: Vec<RecordInst> = (0..*alen).map(|_| inst(&mut r)).collect();
            values.push(Some(MetricValue::RecordArray { rec_type: rt, inst_sz: 0, elems }));
        }
        (Schema { name: "prop_schema".into(), metrics, digest: None, meta_sz: None, heap_sz: None }, values)
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(s in shape()) {
            let (schema, values) = build(&s);
            let info = SetInfo {
                producer: "prod".into(), instance: "prod/set".into(), uid: 1, gid: 2, perm: 0o440, meta_gn: 3,
            };
            let mut meta = schema.layout(&info).unwrap();
            let mut data = SetData::empty(&meta, 9, Transaction {
                ts: Timestamp { sec: 100, usec: 5 }, dur: Timestamp { sec: 0, usec: 7 }, flags: 2,
            });
            for (i, v) in values.iter().enumerate() {
                if meta.metrics[i].is_meta() {
                    meta.values[i] = v.clone();
                } else {
                    data.values[i] = v.clone();
                }
            }
            // RECORD_ARRAY inst_sz comes from the record type.
            for v in data.values.iter_mut().flatten() {
                if let MetricValue::RecordArray { rec_type, inst_sz, .. } = v {
                    *inst_sz = meta.metrics[*rec_type as usize].record_type.as_ref().unwrap().inst_sz;
                }
            }
            let img = encode_image(&meta, &data).unwrap();
            prop_assert_eq!(img.len(), (meta.meta_sz + meta.data_sz) as usize);
            let (m2, d2) = decode_image(&img).unwrap();
            prop_assert_eq!(&m2, &meta);
            let d2 = d2.unwrap();
            prop_assert!(d2.is_consistent(&m2));
            let strip = |d: &SetData| -> Vec<Option<MetricValue>> {
                d.values.iter().map(|v| v.as_ref().map(|v| v.without_locations())).collect()
            };
            prop_assert_eq!(strip(&d2), strip(&data));
            prop_assert_eq!(d2.trans, data.trans);
            prop_assert_eq!(d2.trans.begin(), Timestamp { sec: 99, usec: 999_998 });
            // A second encode of the decoded set gives the same bytes.
            prop_assert_eq!(encode_image(&m2, &d2).unwrap(), img);
        }
    }
}
