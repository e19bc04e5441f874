//! The writer service end to end: real blissdata (its own writer, in a Python child)
//! publishes BLISS-shaped scans into a private Redis; `NexusSessionWriter` picks up every
//! scan of its session and writes NeXus; h5py and nexusformat read the files back. A scan
//! whose publisher dies mid-way is closed by the end timeout, marked, and readable.

mod nexus_support;
mod service_support;
mod support;

use std::time::Duration;

use nexus_support::TempDir;
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::service::NexusSessionWriter;
use serde_json::json;
use service_support::wait_finished;
use support::Redis;

fn ascan_expect(entry: &str, n: usize) -> serde_json::Value {
    let sy: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
    let diode: Vec<f64> = (0..n).map(|i| 100.0 * (i as f64).sin()).collect();
    let e = format!("/{entry}");
    let last_image: Vec<Vec<u16>> =
        (0..4).map(|r| (0..5).map(|c| (r * 5 + c) as u16 + 100 * (n as u16 - 1)).collect()).collect();
    json!({
        "datasets": {
            format!("{e}/title"): {"strings": format!("ascan sy 0 1 {} 0.01", n - 1)},
            format!("{e}/instrument/sy/value"): {"dtype": "<f8", "shape": [n], "values": sy},
            format!("{e}/instrument/diode/data"): {"dtype": "<f8", "shape": [n], "values": diode},
            format!("{e}/instrument/timer/elapsed_time"): {"dtype": "<f8", "shape": [n]},
            format!("{e}/instrument/lima/image"): {"dtype": "<u2", "shape": [n, 4, 5]},
            format!("{e}/measurement/diode"): {"shape": [n], "values": diode},
            format!("{e}/instrument/positioners_start/sz"): {"values": 2.5},
            format!("{e}/end_time"): {"strings": "2026-12-03T05:00:10+00:00"},
        },
        "attrs": {
            "/": {"NX_class": "NXroot", "creator": "pvloom-nexus service tests"},
            e.clone(): {"NX_class": "NXentry", "default": "plot"},
            format!("{e}/instrument/sy"): {"NX_class": "NXpositioner"},
            format!("{e}/instrument/diode"): {"NX_class": "NXdetector"},
            format!("{e}/plot"): {"NX_class": "NXdata", "signal": "diode", "axes": ["sy"]},
        },
        "links": {
            format!("{e}/measurement/diode"): format!("{e}/instrument/diode/data"),
        },
        "last_image": last_image,
    })
}

#[test]
fn session_writer_records_every_scan_of_its_session() {
    let redis = Redis::start();
    let dir = TempDir::new("service");
    let file = dir.path().join("sample.h5");
    let other_file = dir.path().join("other.h5");
    let service = NexusSessionWriter::new(
        &redis.url(),
        Some("beamline"),
        service_support::options(dir.path(), "pvloom-nexus service tests", Duration::from_secs(20)),
    );
    service.start().unwrap();
    assert_eq!(service.state(), SubscriberState::On);

    // Two scans of the session into one file, one of another session elsewhere.
    let file_s = file.to_str().unwrap();
    redis.py("bliss_ascan.py", &["beamline", file_s, "7", "12"]);
    redis.py("bliss_ascan.py", &["other", other_file.to_str().unwrap(), "1", "3"]);
    redis.py("bliss_ascan.py", &["beamline", file_s, "8", "30"]);
    let finished = wait_finished(&service, 2, Duration::from_secs(30));
    service.stop(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(finished.len(), 2, "{finished:?}");
    for scan in &finished {
        assert_eq!(scan.state, SubscriberState::Off, "{scan:?}");
        assert!(scan.progress.closed && scan.progress.fault.is_none(), "{scan:?}");
        assert_eq!(scan.progress.file.as_deref(), Some(file.as_path()));
    }
    let entries: Vec<&str> = finished.iter().filter_map(|s| s.progress.entry.as_deref()).collect();
    assert_eq!(entries, ["7.1", "8.1"]);
    // 4 streams x npoints.
    assert_eq!(finished[0].progress.points_written, 4 * 12);
    assert_eq!(finished[1].progress.points_written, 4 * 30);
    assert!(!other_file.exists(), "a scan of another session was written");

    for (entry, n) in [("7.1", 12), ("8.1", 30)] {
        let mut expect = ascan_expect(entry, n);
        expect.as_object_mut().unwrap().remove("last_image");
        nexus_support::check_file(dir.path(), &file, &expect);
    }
    nexus_support::validate(&file, &["7.1", "8.1"]);
}

#[test]
fn a_scan_whose_publisher_dies_is_closed_by_the_end_timeout_and_readable() {
    let redis = Redis::start();
    let dir = TempDir::new("service-hang");
    let file = dir.path().join("hang.h5");
    let service = NexusSessionWriter::new(
        &redis.url(),
        None,
        service_support::options(dir.path(), "pvloom-nexus service tests", Duration::from_millis(1500)),
    );
    service.start().unwrap();
    let mut publisher = redis.spawn_py("bliss_ascan.py", &["any", file.to_str().unwrap(), "3", "20", "hang"]);
    publisher.wait_line("HALF");
    publisher.kill();
    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    service.stop(Some(Duration::from_secs(10))).unwrap();
    let scan = &finished[0];
    assert_eq!(scan.state, SubscriberState::Fault, "{scan:?}");
    let fault = scan.progress.fault.as_deref().unwrap_or_default();
    assert!(!fault.is_empty(), "no cause given: {scan:?}");
    assert!(scan.error.as_deref().unwrap_or_default().contains(fault), "{scan:?}");
    // 11 points of each of 4 streams were sent before the publisher hung.
    assert_eq!(scan.progress.points_written, 4 * 11, "{scan:?}");
    let expect = json!({
        "datasets": {
            "/3.1/instrument/diode/data": {"shape": [11]},
            "/3.1/instrument/lima/image": {"shape": [11, 4, 5]},
        },
        "attrs": {"/3.1": {"NX_class": "NXentry"}},
    });
    nexus_support::check_file(dir.path(), &file, &expect);
    let (ok, out, err) =
        nexus_support::run_py("check_nexus_end_reason.py", &[file.to_str().unwrap(), "/3.1"], Duration::from_secs(20));
    assert!(ok, "{out}\n{err}");
    assert!(out.trim().starts_with("FAILURE"), "end_reason should say why: {out}");
    assert!(out.contains(fault) || out.contains("end timeout") || out.contains("seal"), "{out} vs {fault}");
}
