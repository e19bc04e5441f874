//! ScanPublisher: read back by blissdata's own reader, and by ScanReader.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pvloom_nexus::blissdata::{ScanPublisher, ScanReader};
use pvloom_nexus::model::{Dtype, Encoding, Points, ScanEvent, ScanIdentity, ScanMeta, ScanState, StreamDesc};
use serde_json::json;
use support::Redis;

fn scan_events() -> Vec<ScanEvent> {
    let stream = |name: &str, encoding: Encoding| StreamDesc {
        name: Arc::from(name),
        encoding,
        info: serde_json::Map::from_iter([("unit".to_owned(), json!("mm"))]),
    };
    let meta = ScanMeta {
        key: String::new(),
        identity: ScanIdentity {
            name: "loopscan".into(),
            number: 17,
            session: "pvloom".into(),
            data_policy: "no_policy".into(),
            path: "/tmp/pvloom.h5".into(),
            ..Default::default()
        },
        info: json!({"title": "loopscan 3 0.1", "npoints": 3, "filename": "/tmp/pvloom.h5"}),
        streams: vec![
            stream("axis:x", Encoding::Numeric { dtype: Dtype::parse("<f8").unwrap(), shape: vec![] }),
            stream("cam:image", Encoding::Numeric { dtype: Dtype::parse("<u2").unwrap(), shape: vec![2, 3] }),
            stream("mca:spec", Encoding::Numeric { dtype: Dtype::parse("<i4").unwrap(), shape: vec![-1] }),
            stream("meta:json", Encoding::Json),
        ],
    };
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u16s = |v: std::ops::Range<u16>| v.flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let i32s = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    vec![
        ScanEvent::Begin(Box::new(meta)),
        ScanEvent::State(ScanState::Prepared),
        ScanEvent::State(ScanState::Started),
        ScanEvent::Data { stream: 0, first_index: 0, points: Points::Fixed { count: 2, bytes: f64s(&[0.25, 0.5]) } },
        ScanEvent::Data { stream: 1, first_index: 0, points: Points::Fixed { count: 3, bytes: u16s(0..18) } },
        ScanEvent::Data {
            stream: 2,
            first_index: 0,
            points: Points::Variable(vec![(vec![1], i32s(&[-1])), (vec![3], i32s(&[1, 2, 3]))]),
        },
        ScanEvent::Data { stream: 3, first_index: 0, points: Points::Json(vec![json!({"a": 1}), json!([1, "x"])]) },
        ScanEvent::Data { stream: 0, first_index: 2, points: Points::Fixed { count: 1, bytes: f64s(&[0.75]) } },
        ScanEvent::Data { stream: 2, first_index: 2, points: Points::Variable(vec![(vec![0], vec![])]) },
        ScanEvent::Sealed { stream: 0, total: 3 },
        ScanEvent::Sealed { stream: 1, total: 3 },
        ScanEvent::State(ScanState::Stopped),
        ScanEvent::Info(
            json!({"title": "loopscan 3 0.1", "npoints": 3, "filename": "/tmp/pvloom.h5", "end_reason": "SUCCESS"}),
        ),
        ScanEvent::State(ScanState::Closed),
    ]
}

fn publish(redis: &Redis) -> String {
    let mut publisher = ScanPublisher::connect(&redis.url()).unwrap();
    let mut key = None;
    for event in scan_events() {
        if let Some(k) = publisher.publish(&event).unwrap() {
            key = Some(k);
        }
    }
    key.expect("Begin answers the key")
}

#[test]
fn blissdata_reads_what_the_publisher_wrote() {
    let redis = Redis::start();
    let key = publish(&redis);
    assert!(key.starts_with("esrf:scan:") && key.len() == "esrf:scan:".len() + 26, "{key}");
    let out = redis.py("read_scan.py", &[&key]);
    let scan: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(scan["state"], 4);
    assert_eq!(scan["name"], "loopscan");
    assert_eq!(scan["number"], 17);
    assert_eq!(scan["session"], "pvloom");
    assert_eq!(scan["indexed"], true);
    assert_eq!(scan["info"]["end_reason"], "SUCCESS");
    assert_eq!(scan["info"]["filename"], "/tmp/pvloom.h5");
    let s = &scan["streams"];
    assert_eq!(s["axis:x"]["dtype"], "float64");
    assert_eq!(s["axis:x"]["len"], 3);
    assert_eq!(s["axis:x"]["values"], json!([0.25, 0.5, 0.75]));
    assert_eq!(s["cam:image"]["dtype"], "uint16");
    assert_eq!(s["cam:image"]["shape"], json!([2, 3]));
    assert_eq!(
        s["cam:image"]["values"],
        json!([[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]], [[12, 13, 14], [15, 16, 17]]])
    );
    assert_eq!(s["mca:spec"]["dtype"], "int32");
    assert_eq!(s["mca:spec"]["shape"], json!([-1]));
    assert_eq!(s["mca:spec"]["len"], 3);
    assert_eq!(s["mca:spec"]["values"], json!([[-1], [1, 2, 3], []]));
    assert_eq!(s["meta:json"]["len"], 2);
    assert_eq!(s["meta:json"]["values"], json!([{"a": 1}, [1, "x"]]));
}

#[test]
fn scan_reader_reads_what_the_publisher_wrote() {
    let redis = Redis::start();
    let key = publish(&redis);
    let mut reader = ScanReader::open(&redis.url(), &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "{got:?}");
        got.extend(reader.next_events(Duration::from_millis(500)).unwrap());
    }
    let sent = scan_events();
    // Begin: the same scan, under its new key; read after the scan closed, it carries the
    // final info, so no Info event follows.
    let ScanEvent::Begin(meta) = &got[0] else { panic!("{got:?}") };
    let ScanEvent::Begin(sent_meta) = &sent[0] else { unreachable!() };
    let ScanEvent::Info(final_info) = &sent[12] else { unreachable!() };
    assert_eq!(**meta, ScanMeta { key: key.clone(), info: final_info.clone(), ..(**sent_meta).clone() });
    let states: Vec<_> = got.iter().filter_map(|e| if let ScanEvent::State(s) = e { Some(*s) } else { None }).collect();
    use ScanState::*;
    assert_eq!(states, [Created, Prepared, Started, Stopped, Closed]);
    assert_eq!(got.last(), Some(&ScanEvent::State(Closed)));
    assert!(!got.iter().any(|e| matches!(e, ScanEvent::Info(_))), "{got:?}");
    // Per stream, the same points (batched differently perhaps) and the seals with totals.
    for stream in 0..4 {
        let concat = |events: &[ScanEvent]| {
            let mut all: Option<Points> = None;
            for e in events {
                if let ScanEvent::Data { stream: s, points, .. } = e
                    && *s == stream
                {
                    all = Some(match (all, points.clone()) {
                        (None, p) => p,
                        (Some(Points::Fixed { count, mut bytes }), Points::Fixed { count: c, bytes: b }) => {
                            bytes.extend(b);
                            Points::Fixed { count: count + c, bytes }
                        }
                        (Some(Points::Variable(mut a)), Points::Variable(b)) => {
                            a.extend(b);
                            Points::Variable(a)
                        }
                        (Some(Points::Json(mut a)), Points::Json(b)) => {
                            a.extend(b);
                            Points::Json(a)
                        }
                        other => panic!("mixed points {other:?}"),
                    });
                }
            }
            all
        };
        assert_eq!(concat(&got), concat(&sent), "stream {stream}");
        let total = concat(&sent).map(|p| p.len() as u64).unwrap();
        assert!(got.contains(&ScanEvent::Sealed { stream, total }), "stream {stream} sealed at {total}: {got:?}");
    }
}

#[test]
fn the_publisher_refuses_a_database_blissdata_did_not_set_up() {
    let redis = Redis::start_bare();
    let err = ScanPublisher::connect(&redis.url()).err().expect("no protocol version").to_string();
    assert!(err.contains("_PROTOCOL_VERSION_") && err.contains(&redis.url()), "{err}");
}
