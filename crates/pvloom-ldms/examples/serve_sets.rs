//! Serves a few sets over LDMS `sock` on 127.0.0.1 for checks with the real tools:
//!
//! ```text
//! cargo run -p pvloom-ldms --example serve_sets -- 11000
//! ldms_ls -x sock -h 127.0.0.1 -p 11000 -l -v
//! ```
//!
//! `host1/meminfo` is the image recorded from ldmsd in the ls-l-meminfo capture (its
//! `MemFree` counts up); `host1/types` has one metric of each primitive type and arrays,
//! all changed every second in one transaction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pvloom_core::Runtime;
use pvloom_ldms::server::{LdmsServer, ServerConfig, SetRegistry};
use pvloom_ldms::set::{LocalSet, MetricSpec, MetricValue, Schema, SetInfo, Timestamp, ValueType};
use pvloom_ldms::zap::{FrameDecoder, Msg};

fn now() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp { sec: d.as_secs() as u32, usec: d.subsec_micros() }
}

/// The first whole set image a READ_RESP carries in a capture's server stream.
fn captured_image(path: &str) -> Option<Vec<u8>> {
    let s2c = std::fs::read(path).ok()?;
    let mut dec = FrameDecoder::new();
    dec.push(&s2c).ok()?;
    while let Ok(Some(f)) = dec.next_frame() {
        if let Msg::ReadResp(r) = f.msg
            && r.data.len() > 92
        {
            let sz = |o: usize| u32::from_le_bytes(r.data[o..o + 4].try_into().unwrap()) as usize;
            if sz(84) + sz(88) == r.data.len() {
                return Some(r.data.to_vec());
            }
        }
    }
    None
}

fn types_set() -> LocalSet {
    use ValueType as T;
    let m = |n: &str, t, c, meta| MetricSpec::new(n, t, c, meta);
    let schema = Schema {
        name: "pvloom_types".into(),
        metrics: vec![
            m("component_id", T::U64, 1, true),
            m("c", T::Char, 1, false),
            m("u8", T::U8, 1, false),
            m("s8", T::S8, 1, false),
            m("u16", T::U16, 1, false),
            m("s16", T::S16, 1, false),
            m("u32", T::U32, 1, false),
            m("s32", T::S32, 1, false),
            m("u64", T::U64, 1, false),
            m("s64", T::S64, 1, false),
            m("f32", T::F32, 1, false),
            m("d64", T::D64, 1, false),
            m("str", T::CharArray, 16, false),
            m("u32a", T::U32Array, 4, false),
            m("d64a", T::D64Array, 3, false),
        ],
        digest: None,
        meta_sz: None,
        heap_sz: None,
    };
    let info =
        SetInfo { producer: "host1".into(), instance: "host1/types".into(), uid: 0, gid: 0, perm: 0o444, meta_gn: 1 };
    let mut s = LocalSet::new(&schema, &info).unwrap();
    s.set(0, &MetricValue::U64(7)).unwrap();
    s
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(11000);
    let rt = Runtime::builder().io_threads(2).name("serve-sets").build()?;
    let registry = SetRegistry::new();
    let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures/ls-l-meminfo/s2c.bin");
    let meminfo = captured_image(capture).map(|img| {
        let mut s = LocalSet::from_image(img).expect("captured image");
        s.set_info("updt_hint_us", "1000000:0");
        registry.publish(s).expect("publish meminfo")
    });
    let types = registry.publish(types_set()).expect("publish types");
    let server =
        LdmsServer::bind(rt.handle(), ([127, 0, 0, 1], port).into(), registry.clone(), ServerConfig::default())?;
    println!("serving {:?} on {}", registry.names(), server.local_addr());
    let mut n: u64 = 0;
    loop {
        n += 1;
        let t = now();
        types.transaction(t, now(), |s| {
            let v = n as i64;
            let _ = s.set(1, &MetricValue::Char(b'a' + (n % 26) as u8));
            let _ = s.set(2, &MetricValue::U8(n as u8));
            let _ = s.set(3, &MetricValue::S8(-(n as i8 & 0x3f)));
            let _ = s.set(4, &MetricValue::U16(n as u16 * 3));
            let _ = s.set(5, &MetricValue::S16(-(n as i16)));
            let _ = s.set(6, &MetricValue::U32(n as u32 * 1000));
            let _ = s.set(7, &MetricValue::S32(-(v as i32) * 1000));
            let _ = s.set(8, &MetricValue::U64(n << 33));
            let _ = s.set(9, &MetricValue::S64(-v << 33));
            let _ = s.set(10, &MetricValue::F32(n as f32 * 0.5));
            let _ = s.set(11, &MetricValue::D64(n as f64 / 3.0));
            let mut text = format!("tick {n}").into_bytes();
            text.resize(16, 0);
            let _ = s.set(12, &MetricValue::CharArray(text));
            let _ = s.set(13, &MetricValue::U32Array(vec![n as u32, 1, 2, 3]));
            let _ = s.set(14, &MetricValue::D64Array(vec![0.25, n as f64, -1.5]));
        });
        if let Some(h) = &meminfo {
            h.transaction(t, now(), |s| {
                if let Some(i) = s.meta().index_of("MemFree") {
                    let _ = s.set_u64(i, 23_000_000 + n);
                }
            });
        }
        if n.is_multiple_of(10) {
            println!("tick {n}: {} connections", server.connections());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
