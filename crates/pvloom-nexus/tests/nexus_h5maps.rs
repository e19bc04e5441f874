//! Scans whose info carries BLISS's `h5maps` (built with blissdata's own h5map models, by
//! tests/py/bliss_h5maps.py): the session writer writes exactly the mapped tree — groups,
//! valued datasets, links, external binary data, stream datasets — and the end mapping's
//! changes after SWMR; h5py checks it all against blissdata's decoding of the mapping
//! (tests/py/check_h5map_file.py). A SWMR reader follows a mapped stream while the scan
//! runs; a malformed mapping fails its scan alone; a later scan mapped into the same file
//! adds its entry.

mod nexus_support;
mod service_support;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nexus_support::{ChildGuard, TempDir, python, run_py, script};
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::model::{Dtype, Encoding, Points, ScanEvent, ScanIdentity, ScanMeta, StreamDesc};
use pvloom_nexus::service::NexusSessionWriter;
use serde_json::json;
use service_support::wait_finished;
use support::Redis;

fn service(redis: &Redis, dir: &Path, session: &str) -> NexusSessionWriter {
    let service = NexusSessionWriter::new(
        &redis.url(),
        Some(session),
        service_support::options(dir, "pvloom-nexus h5maps tests", Duration::from_secs(20)),
    );
    service.start().unwrap();
    service
}

/// `appended`: the file holds other scans' entries too.
fn check_mapped(file: &Path, expect: &Path, appended: bool) {
    let mut args = vec![file.to_str().unwrap(), expect.to_str().unwrap()];
    if appended {
        args.push("appended");
    }
    let (ok, out, err) = run_py("check_h5map_file.py", &args, Duration::from_secs(30));
    assert!(ok && out.contains("failures=0"), "{file:?} is not the mapped tree:\n{out}\n{err}");
    eprintln!("{file:?}: {}", out.trim());
}

#[test]
fn the_mapped_tree_is_written_and_the_end_mapping_applied() {
    let redis = Redis::start();
    let dir = TempDir::new("h5maps");
    let file = dir.path().join("mapped.h5");
    let expect = dir.path().join("expect.json");
    let service = service(&redis, dir.path(), "h5");
    let n = 25;
    redis.py("bliss_h5maps.py", &["h5", file.to_str().unwrap(), "3", &n.to_string(), expect.to_str().unwrap()]);
    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    let scan = &finished[0];
    assert_eq!(scan.state, SubscriberState::Off, "{scan:?}");
    assert!(scan.progress.closed && scan.progress.fault.is_none(), "{scan:?}");
    assert_eq!(scan.progress.file.as_deref(), Some(file.as_path()));
    assert_eq!(scan.progress.entry.as_deref(), Some("3.1"));
    // 4 mapped streams (one of them in two places, counted once); the unmapped one is not written.
    assert_eq!(scan.progress.points_written, 4 * n as u64, "{scan:?}");
    check_mapped(&file, &expect, false);
    // A later scan mapped into the same file adds its entry; the first stays whole.
    let expect4 = dir.path().join("expect4.json");
    redis.py("bliss_h5maps.py", &["h5", file.to_str().unwrap(), "4", "7", expect4.to_str().unwrap()]);
    let finished = wait_finished(&service, 2, Duration::from_secs(30));
    service.stop(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(finished[1].state, SubscriberState::Off, "{finished:?}");
    check_mapped(&file, &expect4, true);
    let (ok, out, err) = run_py(
        "check_h5map_file.py",
        &[file.to_str().unwrap(), expect.to_str().unwrap(), "appended"],
        Duration::from_secs(30),
    );
    // Only the root's attributes (now the second mapping's `default`) differ.
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.iter().all(|l| l.starts_with("FAIL /@default")), "{ok} {out}\n{err}");
}

#[test]
fn a_swmr_reader_follows_a_mapped_stream_while_the_scan_runs() {
    let redis = Redis::start();
    let dir = TempDir::new("h5maps-swmr");
    let file = dir.path().join("follow.h5");
    let expect = dir.path().join("expect.json");
    let service = service(&redis, dir.path(), "h5swmr");
    let n = 60;
    let mut publisher = redis.spawn_py(
        "bliss_h5maps.py",
        &["h5swmr", file.to_str().unwrap(), "5", &n.to_string(), expect.to_str().unwrap(), "wait"],
    );
    publisher.wait_line("KEY");
    let mut cmd = Command::new(python());
    cmd.arg(script("check_nexus_swmr_follow.py")).args([
        file.to_str().unwrap(),
        "/5.1/instrument/sy/value",
        &n.to_string(),
        "0.1",
        "30",
        "noend",
    ]);
    let reader = ChildGuard::spawn(cmd);
    let mut seen = Vec::new();
    // The publisher holds the scan open (not stopped, not closed) until told: every point
    // the reader sees, it sees while the scan runs.
    let done = reader.wait_line(Duration::from_secs(40), &mut seen, |l| l == "done");
    assert!(done.is_some(), "the reader did not see all {n} points while the scan ran: {seen:?}");
    let partial = seen
        .iter()
        .filter_map(|l| l.strip_prefix("len ").and_then(|s| s.parse::<usize>().ok()))
        .filter(|&k| k > 0 && k < n)
        .count();
    assert!(partial > 0, "the reader saw no partial scan: {seen:?}");
    publisher.wait_line("SENT");
    publisher.send_line("end");
    publisher.wait_line("DONE");
    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    service.stop(Some(Duration::from_secs(10))).unwrap();
    let scan = &finished[0];
    assert_eq!(scan.state, SubscriberState::Off, "{scan:?}");
    check_mapped(&file, &expect, false);
}

#[test]
fn a_malformed_mapping_faults_its_scan_and_spares_the_others() {
    let redis = Redis::start();
    let dir = TempDir::new("h5maps-bad");
    let service = service(&redis, dir.path(), "h5bad");
    let cases = ["ragged", "stream", "type"];
    for (k, case) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad_{case}.h5"));
        let expect = dir.path().join(format!("bad_{case}.json"));
        let number = (k + 1).to_string();
        redis.py(
            "bliss_h5maps.py",
            &["h5bad", file.to_str().unwrap(), &number, "4", expect.to_str().unwrap(), &format!("bad:{case}")],
        );
    }
    let good = dir.path().join("good.h5");
    let expect = dir.path().join("good.json");
    // No `filename` in its info: the file is h5maps' one key.
    redis.py("bliss_h5maps.py", &["h5bad", good.to_str().unwrap(), "9", "6", expect.to_str().unwrap(), "nofilename"]);
    let finished = wait_finished(&service, 4, Duration::from_secs(40));
    service.stop(Some(Duration::from_secs(10))).unwrap();
    let why = |case: &str| match case {
        "ragged" => "matrix",
        "stream" => "no:such",
        _ => "zarr_array",
    };
    for case in cases {
        let file = dir.path().join(format!("bad_{case}.h5"));
        let scan = finished
            .iter()
            .find(|s| s.error.as_deref().unwrap_or_default().contains(why(case)))
            .unwrap_or_else(|| panic!("no scan failed naming {:?}: {finished:?}", why(case)));
        assert_eq!(scan.state, SubscriberState::Fault, "{scan:?}");
        let fault = scan.progress.fault.as_deref().unwrap_or_default();
        assert!(fault.contains("malformed h5maps"), "{case}: {fault}");
        assert!(!file.exists(), "{case}: a file was written for a malformed mapping");
    }
    let ok: Vec<_> = finished.iter().filter(|s| s.state == SubscriberState::Off).collect();
    assert_eq!(ok.len(), 1, "{finished:?}");
    assert_eq!(ok[0].progress.file.as_deref(), Some(good.as_path()));
    check_mapped(&good, &expect, false);
}

/// A scan of one float64 stream `c:c`, its file mapped by `mapping`.
fn mapped_meta(file: &Path, mapping: serde_json::Value) -> ScanMeta {
    let name = file.to_str().unwrap();
    ScanMeta {
        key: "esrf:scan:h5maps".into(),
        identity: ScanIdentity { name: "ct".into(), number: 1, session: "s".into(), ..ScanIdentity::default() },
        info: json!({"filename": name, "h5maps": {name: mapping}}),
        streams: vec![StreamDesc {
            name: "c:c".into(),
            encoding: Encoding::Numeric { dtype: Dtype::parse("<f8").unwrap(), shape: vec![] },
            info: Default::default(),
        }],
    }
}

#[test]
fn a_malformed_end_mapping_fails_the_end_and_keeps_the_file() {
    let dir = TempDir::new("h5maps-bad-end");
    let file = dir.path().join("end.h5");
    let begin = json!({"type": "group", "children": {"1.1": {"type": "group", "children": {
        "c": {"type": "stream", "stream": "c:c"}, "title": "ct"}}}});
    let meta = mapped_meta(&file, begin);
    let mut end_info = meta.info.clone();
    end_info["h5maps"][file.to_str().unwrap()]["children"]["1.1"]["children"]["end_time"] = json!({"type": "inline"});
    let mut w = nexus_support::writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(meta))).unwrap();
    let bytes: Vec<u8> = [1.0f64, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    w.handle(ScanEvent::Data { stream: 0, first_index: 0, points: Points::Fixed { count: 3, bytes } }).unwrap();
    w.handle(ScanEvent::Info(end_info)).unwrap();
    let err = w.handle(nexus_support::closed()).unwrap_err().to_string();
    assert!(err.contains("malformed h5maps") && err.contains("/1.1/end_time"), "{err}");
    assert!(w.is_closed());
    // What Begin wrote stays, closed and readable.
    let expect = json!({"datasets": {"/1.1/c": {"dtype": "<f8", "shape": [3], "values": [1.0, 2.0, 3.0]},
                                     "/1.1/title": {"strings": "ct"}},
                        "absent": ["/1.1/end_time"]});
    nexus_support::check_file(dir.path(), &file, &expect);
}

#[test]
fn a_mapping_naming_a_missing_stream_writes_nothing() {
    let dir = TempDir::new("h5maps-no-stream");
    let file = dir.path().join("none.h5");
    let mapping = json!({"type": "group", "children": {"d": {"type": "stream", "stream": "d:d"}}});
    let mut w = nexus_support::writer(dir.path());
    let err = w.handle(ScanEvent::Begin(Box::new(mapped_meta(&file, mapping)))).unwrap_err().to_string();
    assert!(err.contains("malformed h5maps") && err.contains("\"d:d\""), "{err}");
    assert!(!file.exists());
}
