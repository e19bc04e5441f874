//! ScanReader against scans written by blissdata itself.

mod support;

use std::time::{Duration, Instant};

use pvloom_nexus::blissdata::{ReaderOptions, ScanReader};
use pvloom_nexus::model::{Dtype, Encoding, Points, ScanEvent, ScanMeta, ScanState};
use support::Redis;

/// All events until the reader finishes (bounded by `limit`).
fn read_all(reader: &mut ScanReader, limit: Duration) -> Vec<ScanEvent> {
    let deadline = Instant::now() + limit;
    let mut events = Vec::new();
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "reader did not finish; events so far: {events:?}");
        events.extend(reader.next_events(Duration::from_millis(500)).unwrap());
    }
    assert!(reader.next_events(Duration::from_millis(10)).unwrap().is_empty());
    events
}

fn begin(events: &[ScanEvent]) -> &ScanMeta {
    match events.first() {
        Some(ScanEvent::Begin(meta)) => meta,
        other => panic!("first event is not Begin: {other:?}"),
    }
}

fn index_of(meta: &ScanMeta, name: &str) -> usize {
    meta.streams.iter().position(|s| &*s.name == name).unwrap_or_else(|| panic!("no stream {name}"))
}

/// Concatenates one stream's Data events, checking they are contiguous.
fn points_of(events: &[ScanEvent], stream: usize) -> Vec<Points> {
    let mut next = 0;
    let mut out = Vec::new();
    for e in events {
        if let ScanEvent::Data { stream: s, first_index, points } = e
            && *s == stream
        {
            assert_eq!(*first_index, next);
            next += points.len() as u64;
            out.push(points.clone());
        }
    }
    out
}

fn fixed_bytes(events: &[ScanEvent], stream: usize) -> Vec<u8> {
    points_of(events, stream)
        .into_iter()
        .flat_map(|p| match p {
            Points::Fixed { bytes, .. } => bytes,
            other => panic!("not fixed: {other:?}"),
        })
        .collect()
}

fn sealed(events: &[ScanEvent], stream: usize) -> Option<u64> {
    events.iter().find_map(|e| match e {
        ScanEvent::Sealed { stream: s, total } if *s == stream => Some(*total),
        _ => None,
    })
}

fn fault(events: &[ScanEvent]) -> String {
    let faults: Vec<_> = events.iter().filter(|e| matches!(e, ScanEvent::Fault(_))).collect();
    assert_eq!(faults.len(), 1, "{events:?}");
    match events.last() {
        Some(ScanEvent::Fault(f)) => f.reason.clone(),
        other => panic!("last event is not the fault: {other:?}"),
    }
}

#[test]
fn a_full_scan_written_by_blissdata() {
    let redis = Redis::start();
    let mut writer = redis.spawn_py("write_scan.py", &["full"]);
    let key = writer.wait_line("KEY ");
    let mut reader = ScanReader::open(&redis.url(), &key).unwrap();
    let events = read_all(&mut reader, Duration::from_secs(20));
    writer.wait_line("DONE");

    let meta = begin(&events);
    assert_eq!(meta.key, key);
    assert_eq!(meta.identity.name, "ascan");
    assert_eq!(meta.identity.number, 42);
    assert_eq!(meta.identity.session, "demo_session");
    assert_eq!(meta.identity.path, "/data/x/demo.h5");
    assert_eq!(meta.identity.data_policy, "no_policy");
    assert_eq!(meta.info["filename"], "/data/x/demo.h5");
    assert_eq!(meta.info["npoints"], 4);
    assert_eq!(meta.info["title"], "ascan robz 0 1 4 0.1");

    let states: Vec<_> =
        events.iter().filter_map(|e| if let ScanEvent::State(s) = e { Some(*s) } else { None }).collect();
    use ScanState::*;
    assert_eq!(states, [Created, Prepared, Started, Stopped, Closed]);
    assert_eq!(events.last(), Some(&ScanEvent::State(Closed)));
    let info: Vec<_> = events.iter().filter_map(|e| if let ScanEvent::Info(i) = e { Some(i) } else { None }).collect();
    assert_eq!(info.len(), 1, "one info update, at close");
    assert_eq!(info[0]["end_reason"], "SUCCESS");
    assert_eq!(info[0]["end_time"], "2026-01-01T00:00:00");
    assert_eq!(info[0]["filename"], "/data/x/demo.h5");

    let timer = index_of(meta, "timer:elapsed_time");
    assert_eq!(meta.streams[timer].encoding, Encoding::Numeric { dtype: Dtype::parse("<f8").unwrap(), shape: vec![] });
    assert_eq!(meta.streams[timer].info["unit"], "s");
    let t: Vec<f64> =
        fixed_bytes(&events, timer).chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(t, [0.0, 0.1, 0.2, 0.3]);
    assert_eq!(sealed(&events, timer), Some(4));

    let diode = index_of(meta, "diode:diode");
    assert_eq!(meta.streams[diode].encoding, Encoding::Numeric { dtype: Dtype::parse("<i4").unwrap(), shape: vec![] });
    let d: Vec<i32> =
        fixed_bytes(&events, diode).chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(d, [-7, 3, 13, 23]);
    assert_eq!(sealed(&events, diode), Some(4));

    let image = index_of(meta, "lima:image");
    assert_eq!(
        meta.streams[image].encoding,
        Encoding::Numeric { dtype: Dtype::parse("<u2").unwrap(), shape: vec![4, 5] }
    );
    let im: Vec<u16> =
        fixed_bytes(&events, image).chunks(2).map(|c| u16::from_le_bytes(c.try_into().unwrap())).collect();
    let expected: Vec<u16> = (0..4).flat_map(|i| (0..20).map(move |j| j + 100 * i)).collect();
    assert_eq!(im, expected);
    assert_eq!(sealed(&events, image), Some(4));

    let spec = index_of(meta, "mca:spectrum");
    assert_eq!(meta.streams[spec].encoding, Encoding::Numeric { dtype: Dtype::parse("<f4").unwrap(), shape: vec![-1] });
    let points: Vec<(Vec<usize>, Vec<f32>)> = points_of(&events, spec)
        .into_iter()
        .flat_map(|p| match p {
            Points::Variable(v) => v,
            other => panic!("not variable: {other:?}"),
        })
        .map(|(shape, b)| (shape, b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
        .collect();
    let expected: Vec<(Vec<usize>, Vec<f32>)> =
        (0..4).map(|i| (vec![i + 1], (0..=i).map(|k| k as f32 * 1.5).collect())).collect();
    assert_eq!(points, expected);
    assert_eq!(sealed(&events, spec), Some(4));

    let js = index_of(meta, "meta:json");
    assert_eq!(meta.streams[js].encoding, Encoding::Json);
    let values: Vec<serde_json::Value> = points_of(&events, js)
        .into_iter()
        .flat_map(|p| match p {
            Points::Json(v) => v,
            other => panic!("not json: {other:?}"),
        })
        .collect();
    let expected: Vec<_> =
        (0..4).map(|i| serde_json::json!({"i": i, "name": format!("p{i}"), "list": [i, null]})).collect();
    assert_eq!(values, expected);
    assert_eq!(sealed(&events, js), Some(4));
}

#[test]
fn a_killed_writer_ends_in_a_fault_after_the_idle_timeout() {
    let redis = Redis::start();
    let mut writer = redis.spawn_py("write_scan.py", &["killed"]);
    let key = writer.wait_line("KEY ");
    writer.wait_line("STARTED");
    writer.kill();
    let options = ReaderOptions { idle_timeout: Some(Duration::from_millis(700)), ..Default::default() };
    let mut reader = ScanReader::open_with(&redis.url(), &key, options).unwrap();
    let events = read_all(&mut reader, Duration::from_secs(15));
    let meta = begin(&events);
    let timer = index_of(meta, "timer:elapsed_time");
    let t: Vec<f64> =
        fixed_bytes(&events, timer).chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(t, [0.5, 1.5]);
    assert_eq!(sealed(&events, timer), None);
    let reason = fault(&events);
    assert!(reason.contains(&key) && reason.contains("not closed"), "{reason}");
}

fn bad_case(case: &str) -> (String, String) {
    let redis = Redis::start();
    let key = redis.py("bad_scan.py", &[case]).trim().strip_prefix("KEY ").unwrap().to_owned();
    let options = ReaderOptions { idle_timeout: Some(Duration::from_secs(3)), ..Default::default() };
    let mut reader = ScanReader::open_with(&redis.url(), &key, options).unwrap();
    let events = read_all(&mut reader, Duration::from_secs(10));
    (key, fault(&events))
}

#[test]
fn a_malformed_document_is_a_fault() {
    let (key, reason) = bad_case("doc");
    assert!(reason.contains(&key) && reason.contains("field data_streams is not an object"), "{reason}");
}

#[test]
fn an_unknown_encoding_is_a_fault() {
    let (key, reason) = bad_case("encoding");
    assert!(
        reason.contains(&key) && reason.contains("data_streams.c:c.encoding.type: unknown encoding \"zarr\""),
        "{reason}"
    );
}

#[test]
fn a_wrong_dtype_is_a_fault() {
    let (key, reason) = bad_case("dtype");
    assert!(reason.contains(&key) && reason.contains("dtype_str") && reason.contains("<x9"), "{reason}");
}

#[test]
fn a_payload_of_the_wrong_length_is_a_fault() {
    let (_, reason) = bad_case("length");
    assert!(reason.contains("stream c:c") && reason.contains("32 bytes for 3 points"), "{reason}");
}

#[test]
fn a_stream_never_sealed_after_the_close_is_a_fault() {
    let redis = Redis::start();
    let key = redis.py("bad_scan.py", &["unsealed"]).trim().strip_prefix("KEY ").unwrap().to_owned();
    let options = ReaderOptions { seal_timeout: Duration::from_millis(500), ..Default::default() };
    let mut reader = ScanReader::open_with(&redis.url(), &key, options).unwrap();
    let events = read_all(&mut reader, Duration::from_secs(10));
    let meta = begin(&events);
    let c = index_of(meta, "c:c");
    let values: Vec<f64> =
        fixed_bytes(&events, c).chunks(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(values, [0.0, 0.0]);
    assert!(!events.contains(&ScanEvent::State(ScanState::Closed)), "{events:?}");
    let reason = fault(&events);
    assert!(reason.contains(&key) && reason.contains("not sealed") && reason.contains("c:c"), "{reason}");
}

#[test]
fn redis_gone_mid_scan_is_a_fault_within_the_reconnect_window() {
    let mut redis = Redis::start();
    let mut writer = redis.spawn_py("write_scan.py", &["killed"]);
    let key = writer.wait_line("KEY ");
    writer.wait_line("STARTED");
    let window = Duration::from_millis(1500);
    let options = ReaderOptions { reconnect_window: window, ..Default::default() };
    let mut reader = ScanReader::open_with(&redis.url(), &key, options).unwrap();
    let mut events = Vec::new();
    // Until the points written so far are in.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.iter().any(|e| matches!(e, ScanEvent::Data { .. })) {
        assert!(Instant::now() < deadline, "{events:?}");
        events.extend(reader.next_events(Duration::from_millis(200)).unwrap());
    }
    writer.kill();
    redis.kill();
    let gone = Instant::now();
    events.extend(read_all(&mut reader, Duration::from_secs(10)));
    let took = gone.elapsed();
    assert!(took >= window && took < window + Duration::from_secs(3), "{took:?}");
    let reason = fault(&events);
    assert!(reason.contains(&key) && reason.contains("unreachable") && reason.contains(&redis.url()), "{reason}");
}

#[test]
fn redis_back_from_an_older_snapshot_is_a_fault_naming_what_was_lost() {
    let mut redis = Redis::start();
    let mut writer = redis.spawn_py("bliss_restart.py", &["s", "/unused/old.h5", "11", "20"]);
    let key = writer.wait_line("KEY ");
    writer.wait_line("HALF");
    // The snapshot has the first half and the scan STARTED; then the scan runs to its end.
    redis.save();
    writer.send_line("GO");
    writer.wait_line("DONE");
    let options = ReaderOptions { max_entries_per_read: 4, ..Default::default() };
    let mut reader = ScanReader::open_with(&redis.url(), &key, options).unwrap();
    let mut events = Vec::new();
    // Read past the snapshot (the CLOSED state and more than half of the points) but not
    // to the end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while points_of(&events, 0).iter().map(|p| p.len()).sum::<usize>() <= 12 {
        assert!(Instant::now() < deadline && !reader.is_finished(), "{events:?}");
        events.extend(reader.next_events(Duration::from_millis(200)).unwrap());
    }
    assert!(!reader.is_finished());
    redis.restart_from_last_save();
    events.extend(read_all(&mut reader, Duration::from_secs(10)));
    let reason = fault(&events);
    assert!(reason.contains(&key) && reason.contains("lost entries") && reason.contains("esrf:stream:"), "{reason}");
    assert!(!events.contains(&ScanEvent::State(ScanState::Closed)), "{events:?}");
}
