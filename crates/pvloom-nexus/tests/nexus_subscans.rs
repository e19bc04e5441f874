//! A scan with two top masters, published by real blissdata as BLISS publishes an
//! `aloopscan` (stepper chain + timer chain), written by the session writer as two subscan
//! entries N.1 and N.2, each with its own streams, measurement, instrument and plots; an
//! ordinary scan after it in the same file is still one entry. h5py and nexusformat read
//! the file back.

#![recursion_limit = "256"]

mod nexus_support;
mod service_support;
mod support;

use std::time::Duration;

use nexus_support::TempDir;
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::service::NexusSessionWriter;
use serde_json::{Value, json};
use service_support::wait_finished;
use support::Redis;

/// What bliss_subscans.py publishes, entry by entry (n1 points in the first chain, n2 in
/// the second).
fn expect(n1: usize, n2: usize) -> Value {
    let robx: Vec<f64> = (0..n1).map(|i| i as f64 / (n1 - 1) as f64).collect();
    let t1: Vec<f64> = (0..n1).map(|i| 0.1 * i as f64).collect();
    let diode: Vec<f64> = (0..n1).map(|i| 10.0 * (i as f64).cos()).collect();
    let images: Vec<Vec<Vec<u16>>> =
        (0..n1).map(|i| (0..3).map(|r| (0..4).map(|c| (r * 4 + c + 1000 * i) as u16).collect()).collect()).collect();
    let t2: Vec<f64> = (0..n2).map(|i| 0.5 * i as f64).collect();
    let realtime: Vec<f64> = (0..n2).map(|i| 0.5 + 0.001 * i as f64).collect();
    let triggers: Vec<i64> = (0..n2).map(|i| 100 * i as i64 + 7).collect();
    let spectra: Vec<Vec<u32>> = (0..n2).map(|i| (0..16).map(|k| k * (i as u32 + 1)).collect()).collect();
    let title = format!("aloopscan robx 0 1 {n1} 0.1 {n2} 0.5");
    json!({
        "datasets": {
            // Both entries carry the scan's title, times and positioner snapshots.
            "/12.1/title": {"strings": title},
            "/12.2/title": {"strings": title},
            "/12.1/start_time": {"strings": "2026-12-03T06:00:00+00:00"},
            "/12.2/start_time": {"strings": "2026-12-03T06:00:00+00:00"},
            "/12.1/end_time": {"strings": "2026-12-03T06:00:05+00:00"},
            "/12.2/end_time": {"strings": "2026-12-03T06:00:05+00:00"},
            "/12.1/end_reason": {"strings": "SUCCESS"},
            "/12.2/end_reason": {"strings": "SUCCESS"},
            "/12.1/instrument/positioners_start/robx": {"values": 0.0},
            "/12.2/instrument/positioners_start/robx": {"values": 0.0},
            "/12.1/instrument/positioners_start/roby": {"values": 1.25},
            "/12.2/instrument/positioners_start/roby": {"values": 1.25},
            "/12.1/instrument/positioners/robx": {"values": 1.0},
            "/12.2/instrument/positioners/robx": {"values": 1.0},
            "/12.1/instrument/name": {"strings": "beamline"},
            // The stepper chain.
            "/12.1/instrument/robx/value": {"dtype": "<f8", "shape": [n1], "values": robx},
            "/12.1/instrument/subscan1tmr/elapsed_time": {"dtype": "<f8", "shape": [n1], "values": t1},
            "/12.1/instrument/subscan1tmr/epoch": {"dtype": "<f8", "shape": [n1]},
            "/12.1/instrument/simulation_diode_sampling_controller/diode2": {"dtype": "<f8", "shape": [n1], "values": diode},
            "/12.1/instrument/lima_simulator/image": {"dtype": "<u2", "shape": [n1, 3, 4], "values": images},
            "/12.1/measurement/robx": {"shape": [n1], "values": robx},
            "/12.1/measurement/diode2": {"shape": [n1], "values": diode},
            "/12.1/measurement/elapsed_time": {"shape": [n1], "values": t1},
            "/12.1/measurement/image": {"shape": [n1, 3, 4]},
            "/12.1/plot/diode2": {"shape": [n1], "values": diode},
            "/12.1/plot/robx": {"shape": [n1], "values": robx},
            "/12.1/lima_simulator_image/image": {"shape": [n1, 3, 4]},
            // The timer chain.
            "/12.2/instrument/subscan2tmr/elapsed_time": {"dtype": "<f8", "shape": [n2], "values": t2},
            "/12.2/instrument/subscan2tmr/epoch": {"dtype": "<f8", "shape": [n2]},
            "/12.2/instrument/simu1/realtime_det0": {"dtype": "<f8", "shape": [n2], "values": realtime},
            "/12.2/instrument/simu1/triggers_det0": {"dtype": "<i8", "shape": [n2], "values": triggers},
            "/12.2/instrument/simu1/spectrum_det0": {"dtype": "<u4", "shape": [n2, 16], "values": spectra},
            "/12.2/measurement/elapsed_time": {"shape": [n2], "values": t2},
            "/12.2/measurement/realtime_det0": {"shape": [n2], "values": realtime},
            "/12.2/measurement/triggers_det0": {"shape": [n2], "values": triggers},
            "/12.2/measurement/spectrum_det0": {"shape": [n2, 16], "values": spectra},
            "/12.2/plotselect/realtime_det0": {"shape": [n2], "values": realtime},
            "/12.2/plotselect/elapsed_time": {"shape": [n2], "values": t2},
            "/12.2/simu1_spectrum_det0/spectrum_det0": {"shape": [n2, 16]},
        },
        "attrs": {
            // BLISS's writer leaves the root's default on the last subscan it finished.
            "/": {"NX_class": "NXroot", "creator": "pvloom-nexus subscan tests", "default": "12.2"},
            "/12.1": {"NX_class": "NXentry", "default": "plot"},
            "/12.2": {"NX_class": "NXentry", "default": "plotselect"},
            "/12.1/instrument": {"NX_class": "NXinstrument"},
            "/12.2/instrument": {"NX_class": "NXinstrument"},
            "/12.1/instrument/robx": {"NX_class": "NXpositioner"},
            "/12.1/instrument/robx/value": {"units": "mm"},
            "/12.1/instrument/subscan1tmr": {"NX_class": "NXdetector"},
            "/12.1/instrument/lima_simulator": {"NX_class": "NXdetector"},
            "/12.1/instrument/lima_simulator/image": {"interpretation": "image"},
            "/12.2/instrument/simu1": {"NX_class": "NXdetector"},
            "/12.2/instrument/simu1/spectrum_det0": {"interpretation": "spectrum"},
            "/12.2/instrument/subscan2tmr/elapsed_time": {"units": "s"},
            "/12.1/instrument/positioners_start": {"NX_class": "NXcollection"},
            "/12.2/instrument/positioners_start": {"NX_class": "NXcollection"},
            "/12.2/instrument/positioners_start/robx": {"units": "mm"},
            "/12.1/measurement": {"NX_class": "NXcollection"},
            "/12.2/measurement": {"NX_class": "NXcollection"},
            "/12.1/plot": {"NX_class": "NXdata", "signal": "diode2", "axes": ["robx"], "robx_indices": 0},
            "/12.1/lima_simulator_image": {"NX_class": "NXdata", "signal": "image", "interpretation": "image"},
            // No motor in the timer chain: its master's elapsed_time is the axis, and its
            // epoch (a master channel too) no signal.
            "/12.2/plotselect": {
                "NX_class": "NXdata", "signal": "realtime_det0", "auxiliary_signals": ["triggers_det0"],
                "axes": ["elapsed_time"], "elapsed_time_indices": 0,
            },
            "/12.2/simu1_spectrum_det0": {"NX_class": "NXdata", "signal": "spectrum_det0", "interpretation": "spectrum"},
        },
        "links": {
            "/12.1/measurement/robx": "/12.1/instrument/robx/value",
            "/12.1/measurement/elapsed_time": "/12.1/instrument/subscan1tmr/elapsed_time",
            "/12.1/measurement/epoch": "/12.1/instrument/subscan1tmr/epoch",
            "/12.1/measurement/diode2": "/12.1/instrument/simulation_diode_sampling_controller/diode2",
            "/12.1/measurement/image": "/12.1/instrument/lima_simulator/image",
            "/12.1/plot/diode2": "/12.1/instrument/simulation_diode_sampling_controller/diode2",
            "/12.1/plot/robx": "/12.1/instrument/robx/value",
            "/12.1/lima_simulator_image/image": "/12.1/instrument/lima_simulator/image",
            "/12.2/measurement/elapsed_time": "/12.2/instrument/subscan2tmr/elapsed_time",
            "/12.2/measurement/epoch": "/12.2/instrument/subscan2tmr/epoch",
            "/12.2/measurement/realtime_det0": "/12.2/instrument/simu1/realtime_det0",
            "/12.2/measurement/triggers_det0": "/12.2/instrument/simu1/triggers_det0",
            "/12.2/measurement/spectrum_det0": "/12.2/instrument/simu1/spectrum_det0",
            "/12.2/plotselect/realtime_det0": "/12.2/instrument/simu1/realtime_det0",
            "/12.2/plotselect/triggers_det0": "/12.2/instrument/simu1/triggers_det0",
            "/12.2/plotselect/elapsed_time": "/12.2/instrument/subscan2tmr/elapsed_time",
            "/12.2/simu1_spectrum_det0/spectrum_det0": "/12.2/instrument/simu1/spectrum_det0",
        },
        // Each entry holds its own top master's streams only.
        "absent": [
            "/12.3",
            "/12.1/instrument/simu1",
            "/12.1/instrument/subscan2tmr",
            "/12.1/measurement/realtime_det0",
            "/12.1/plotselect",
            "/12.2/instrument/robx",
            "/12.2/instrument/lima_simulator",
            "/12.2/instrument/subscan1tmr",
            "/12.2/measurement/diode2",
            "/12.2/plot",
            "/12.2/plotselect/epoch",
        ],
    })
}

#[test]
fn a_scan_with_two_top_masters_becomes_two_subscan_entries() {
    let redis = Redis::start();
    let dir = TempDir::new("subscans");
    let file = dir.path().join("sample.h5");
    let service = NexusSessionWriter::new(
        &redis.url(),
        Some("beamline"),
        service_support::options(dir.path(), "pvloom-nexus subscan tests", Duration::from_secs(20)),
    );
    service.start().unwrap();
    assert_eq!(service.state(), SubscriberState::On);
    let (n1, n2) = (8, 5);
    let file_s = file.to_str().unwrap();
    let out = redis.py("bliss_subscans.py", &["beamline", file_s, "12", &n1.to_string(), &n2.to_string()]);
    assert!(out.contains("DONE"), "{out}");
    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    let scan = &finished[0];
    assert_eq!(scan.state, SubscriberState::Off, "{scan:?}");
    assert!(scan.progress.closed && scan.progress.fault.is_none(), "{scan:?}");
    assert_eq!(scan.progress.file.as_deref(), Some(file.as_path()));
    assert_eq!(scan.progress.entries, ["12.1", "12.2"]);
    assert_eq!(scan.progress.entry.as_deref(), Some("12.1"));
    // 5 streams of n1 points, 5 of n2.
    assert_eq!(scan.progress.points_written, 5 * n1 as u64 + 5 * n2 as u64);
    nexus_support::check_file(dir.path(), &file, &expect(n1, n2));

    // An ordinary scan after it appends one entry and takes the root's default.
    redis.py("bliss_ascan.py", &["beamline", file_s, "13", "4"]);
    let finished = wait_finished(&service, 2, Duration::from_secs(30));
    service.stop(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(finished[1].progress.entries, ["13.1"], "{:?}", finished[1]);
    assert_eq!(finished[1].state, SubscriberState::Off, "{:?}", finished[1]);
    let after = json!({
        "datasets": {"/13.1/instrument/diode/data": {"shape": [4]}, "/12.2/instrument/simu1/realtime_det0": {"shape": [n2]}},
        "attrs": {"/": {"default": "13.1"}, "/13.1": {"NX_class": "NXentry", "default": "plot"}},
        "absent": ["/13.2"],
    });
    nexus_support::check_file(dir.path(), &file, &after);
    nexus_support::validate(&file, &["12.1", "12.2", "13.1"]);
}
