//! Scans that end badly: a Fault mid-way, an abort (end timeout), and a writer dropped
//! mid-scan: every point so far is in the file and the entry says why it ended.

mod nexus_support;

use nexus_support::*;
use pvloom_nexus::model::{ScanEvent, ScanFault};
use serde_json::json;

#[test]
fn fault_mid_scan_keeps_points_and_marks_the_entry() {
    let dir = TempDir::new("fault");
    let file = dir.path().join("fault.h5");
    let n = 20;
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 9, n, vec![])))).unwrap();
    for e in ascan_points(0, 7, n) {
        w.handle(e).unwrap();
    }
    w.handle(ScanEvent::Fault(ScanFault { reason: "redis connection lost".into() })).unwrap();
    assert!(w.is_closed());
    assert_eq!(w.points_written(), 21);
    // abort after the end is a no-op.
    w.abort("again").unwrap();
    let sy: Vec<f64> = (0..7).map(|i| sy(i, n)).collect();
    let expect = json!({
        "datasets": {
            "/9.1/end_reason": {"strings": "FAILURE: redis connection lost"},
            "/9.1/end_time": {"shape": []},
            "/9.1/instrument/sy/value": {"shape": [7], "values": sy},
            "/9.1/instrument/diode/data": {"shape": [7], "values": (0..7).map(diode).collect::<Vec<_>>()},
            "/9.1/instrument/positioners/sy": {"values": 1.0},
        },
        "attrs": {"/9.1/plot": {"signal": "diode"}},
    });
    check_file(dir.path(), &file, &expect);
    validate(&file, &["9.1"]);
}

#[test]
fn abort_and_drop_close_the_entry_as_failed() {
    let dir = TempDir::new("abort");
    let file = dir.path().join("abort.h5");
    let n = 10;
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 1, n, vec![])))).unwrap();
    for e in ascan_points(0, 3, n) {
        w.handle(e).unwrap();
    }
    w.abort("no end event within 60 s").unwrap();
    w.abort("no end event within 60 s").unwrap();
    assert!(w.is_closed());
    assert!(w.handle(closed()).is_err());
    {
        let mut d = writer(dir.path());
        d.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 2, n, vec![])))).unwrap();
        for e in ascan_points(0, 4, n) {
            d.handle(e).unwrap();
        }
    }
    let expect = json!({
        "datasets": {
            "/1.1/end_reason": {"strings": "FAILURE: no end event within 60 s"},
            "/1.1/instrument/timer/elapsed_time": {"shape": [3], "values": (0..3).map(elapsed).collect::<Vec<_>>()},
            "/2.1/end_reason": {"strings": "FAILURE: writer dropped before the scan ended"},
            "/2.1/instrument/timer/elapsed_time": {"shape": [4], "values": (0..4).map(elapsed).collect::<Vec<_>>()},
        },
    });
    check_file(dir.path(), &file, &expect);
}

#[test]
fn events_before_begin_are_refused() {
    let dir = TempDir::new("nobegin");
    let mut w = writer(dir.path());
    let err = w.handle(ascan_points(0, 1, 2).remove(0)).unwrap_err();
    assert!(err.to_string().contains("no Begin"), "{err}");
    assert_eq!(w.file_path(), None);
    assert_eq!(w.points_written(), 0);
}

#[test]
fn a_file_that_is_not_hdf5_is_never_overwritten() {
    let dir = TempDir::new("nothdf5");
    let file = dir.path().join("notes.h5");
    std::fs::write(&file, b"not an HDF5 file").unwrap();
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 4, 3, vec![])))).unwrap();
    w.handle(closed()).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"not an HDF5 file");
    let sibling = dir.path().join("notes_4.h5");
    assert_eq!(w.file_path(), Some(sibling.as_path()));
    check_file(
        dir.path(),
        &sibling,
        &json!({"datasets": {"/4.1/instrument/sy/value": {"shape": [0]}, "/4.1/end_reason": {"strings": "SUCCESS"}}}),
    );
}
