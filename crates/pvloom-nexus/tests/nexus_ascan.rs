//! A 1-D ascan written whole: every value, dtype, link, attribute and plot attribute read
//! back with h5py, and the file validated against the NeXus base classes.

mod nexus_support;

use nexus_support::*;
use pvloom_nexus::model::{ScanEvent, ScanState};
use serde_json::json;

#[test]
fn ascan_file_reads_back_and_validates() {
    let dir = TempDir::new("ascan");
    let file = dir.path().join("sample/demo_0001.h5");
    let n = 11;
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 7, n, vec![])))).unwrap();
    w.handle(ScanEvent::State(ScanState::Started)).unwrap();
    for (from, to) in [(0, 3), (3, 4), (4, 11)] {
        for e in ascan_points(from, to, n) {
            w.handle(e).unwrap();
        }
    }
    for s in 0..3 {
        w.handle(ScanEvent::Sealed { stream: s, total: n as u64 }).unwrap();
    }
    let mut info = ascan_info(&file, 7, n);
    info["end_time"] = json!("2026-12-03T04:50:02.000000+00:00");
    info["end_reason"] = json!("SUCCESS");
    info["positioners"]["positioners_end"]["sy"] = json!(1.0);
    w.handle(ScanEvent::Info(info)).unwrap();
    assert!(!w.is_closed());
    w.handle(closed()).unwrap();
    assert!(w.is_closed());
    assert_eq!(w.points_written(), 3 * n as u64);
    assert_eq!(w.file_path(), Some(file.as_path()));
    assert_eq!(w.entry_name(), Some("7.1"));
    assert!(w.handle(closed()).is_err(), "events after the end are refused");

    let expect = merge(
        ascan_expect("7.1", n),
        json!({
            "datasets": {
                "/7.1/end_time": {"strings": "2026-12-03T04:50:02.000000+00:00"},
                "/7.1/end_reason": {"strings": "SUCCESS"},
                "/7.1/instrument/positioners/sy": {"values": 1.0},
                "/7.1/instrument/positioners/sz": {"values": 1.5},
            },
            "attrs": {"/": {"default": "7.1", "file_name": file.to_str().unwrap()}, "/7.1/instrument/positioners": {"NX_class": "NXcollection"}},
        }),
    );
    check_file(dir.path(), &file, &expect);
    validate(&file, &["7.1"]);
}

#[test]
fn default_file_name_and_default_plot() {
    // No filename and no plots in the info: <default_dir>/<session>.h5, scalars vs the motor.
    let dir = TempDir::new("defaults");
    let n = 4;
    let mut meta = ascan_meta(std::path::Path::new("unused"), 3, n, vec![]);
    let info = meta.info.as_object_mut().unwrap();
    info.remove("filename");
    info.remove("plots");
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(meta))).unwrap();
    for e in ascan_points(0, n, n) {
        w.handle(e).unwrap();
    }
    w.handle(closed()).unwrap();
    let file = dir.path().join("demo.h5");
    assert_eq!(w.file_path(), Some(file.as_path()));
    let expect = json!({
        "attrs": {
            "/3.1": {"default": "plotselect"},
            "/3.1/plotselect": {"NX_class": "NXdata", "signal": "elapsed_time", "auxiliary_signals": ["diode"], "axes": ["sy"], "sy_indices": 0},
        },
        "datasets": {"/3.1/end_reason": {"strings": "SUCCESS"}, "/3.1/plotselect/diode": {"shape": [n]}},
        "links": {"/3.1/plotselect/sy": "/3.1/instrument/sy/value"},
    });
    check_file(dir.path(), &file, &expect);
    validate(&file, &["3.1"]);
}

#[test]
fn without_swmr_the_same_file() {
    let dir = TempDir::new("noswmr");
    let file = dir.path().join("plain.h5");
    let n = 6;
    let mut w = pvloom_nexus::nexus::ScanWriter::new(pvloom_nexus::nexus::WriterConfig {
        swmr: false,
        creator: "pvloom-nexus tests".into(),
        ..Default::default()
    });
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 8, n, vec![])))).unwrap();
    for e in ascan_points(0, n, n) {
        w.handle(e).unwrap();
    }
    w.handle(closed()).unwrap();
    check_file(
        dir.path(),
        &file,
        &merge(ascan_expect("8.1", n), json!({"datasets": {"/8.1/end_reason": {"strings": "SUCCESS"}}})),
    );
    validate(&file, &["8.1"]);
}

#[test]
fn end_positions_of_string_motors_and_of_motors_first_seen_at_the_end() {
    // In SWMR mode the end can only overwrite: a string position is rewritten in place (a
    // fixed-size string), a motor first seen at the end is added once the file is out of
    // SWMR mode; the file then takes the next scan as usual.
    let dir = TempDir::new("late_positions");
    let file = dir.path().join("late.h5");
    let n = 3;
    let mut meta = ascan_meta(&file, 9, n, vec![]);
    meta.info["positioners"] = json!({
        "positioners_start": {"sy": 0.0, "sz": 1.5, "mono": "Si111"},
        "positioners_units": {"sy": "mm", "sz": "mm", "th": "deg"},
    });
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(meta.clone()))).unwrap();
    for e in ascan_points(0, n, n) {
        w.handle(e).unwrap();
    }
    let mut info = meta.info.clone();
    info["positioners"]["positioners_end"] =
        json!({"sy": 1.0, "sz": "2.5", "mono": "Si311 (a longer name than at the start)", "th": 4.25, "shutter": "in"});
    w.handle(ScanEvent::Info(info)).unwrap();
    w.handle(closed()).unwrap();
    assert!(w.is_closed());

    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 10, n, vec![])))).unwrap();
    for e in ascan_points(0, n, n) {
        w.handle(e).unwrap();
    }
    w.handle(closed()).unwrap();

    let p = "/9.1/instrument/positioners";
    let expect = merge(
        ascan_expect("10.1", n),
        json!({
            "datasets": {
                format!("{p}/sy"): {"values": 1.0},
                format!("{p}/sz"): {"values": 2.5},
                format!("{p}/mono"): {"strings": "Si311 (a longer name than at the start)"},
                format!("{p}/th"): {"values": 4.25},
                format!("{p}/shutter"): {"strings": "in"},
                "/9.1/instrument/positioners_start/mono": {"strings": "Si111"},
                "/9.1/end_reason": {"strings": "SUCCESS"},
                "/10.1/instrument/positioners/sy": {"values": 1.0},
            },
            "attrs": {format!("{p}/th"): {"units": "deg"}, format!("{p}/sy"): {"units": "mm"}, "/": {"default": "10.1"}},
        }),
    );
    check_file(dir.path(), &file, &expect);
    validate(&file, &["9.1", "10.1"]);
}
