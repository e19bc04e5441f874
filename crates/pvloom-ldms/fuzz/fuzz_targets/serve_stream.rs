//! Arbitrary bytes, after a recorded valid handshake, into a set server connection with a
//! small registry: no panic, and no READ_RESP byte that is not the set's.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pvloom_core::endpoint::StreamEndpoint;
use pvloom_ldms::server::{ServerConfig, ServerConn, SetRegistry};
use pvloom_ldms::set::{LocalSet, MetricSpec, Schema, SetInfo, Timestamp, ValueType};
use pvloom_ldms::zap::{FrameDecoder, Msg};

/// CONNECT and ACK_ACCEPTED as ldms_ls sent them (ls-l-meminfo c2s @0..124).
const HANDSHAKE: &[u8] = include_bytes!("../../../../../shared/ldms-captures/ls-l-meminfo/c2s.bin");

fn set(name: &str) -> LocalSet {
    let schema = Schema {
        name: "fz".into(),
        metrics: vec![
            MetricSpec::new("component_id", ValueType::U64, 1, true),
            MetricSpec::new("a", ValueType::U64, 1, false),
            MetricSpec::new("arr", ValueType::U32Array, 5, false),
        ],
        digest: None,
        meta_sz: None,
        heap_sz: None,
    };
    let info = SetInfo { producer: "p".into(), instance: name.into(), uid: 0, gid: 0, perm: 0o440, meta_gn: 1 };
    LocalSet::new(&schema, &info).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let reg = SetRegistry::new();
    // The read target keeps its image; the other one changes (pushes, dir updates).
    let fixed = reg
        .publish_with(set("localhost1/meminfo"), pvloom_ldms::server::PublishOptions { map_key: Some(2), ..Default::default() })
        .unwrap();
    let moving = reg.publish(set("localhost1/vmstat")).unwrap();
    let img = fixed.read(|s| s.image().to_vec());
    let now = Instant::now();
    let mut conn = ServerConn::new(reg.clone(), ServerConfig { max_queued: 1 << 20, ..ServerConfig::default() }, now);
    let mut out = BytesMut::new();
    conn.handle_input(now, &HANDSHAKE[..124]);
    for (i, chunk) in data.chunks(97).enumerate() {
        if conn.wants_input() {
            conn.handle_input(now, chunk);
        }
        let t = Timestamp { sec: i as u32, usec: 0 };
        moving.transaction(t, t, |_| ());
        if i == 3 {
            moving.unpublish();
        }
        conn.poll_transmit(now, usize::MAX, &mut out);
        while conn.poll_event().is_some() {}
        if conn.poll_close().is_some() {
            break;
        }
    }
    conn.handle_timeout(now + Duration::from_secs(60));
    conn.poll_transmit(now, usize::MAX, &mut out);
    let mut dec = FrameDecoder::new();
    dec.push(&out).unwrap();
    while let Ok(Some(f)) = dec.next_frame() {
        if let Msg::ReadResp(r) = &f.msg {
            if r.status != 0 {
                assert!(r.data.is_empty(), "error READ_RESP with data");
            } else if !r.data.is_empty() {
                assert!(img.windows(r.data.len()).any(|w| w == &r.data[..]), "READ_RESP bytes from outside the set");
            }
        }
    }
});
