//! Streams beyond scalars: a uint16 [4,5] image, a variable-shape spectrum (padded), a
//! JSON stream, and big-endian / bool / complex / half-float dtypes, read back with h5py.

mod nexus_support;

use nexus_support::*;
use pvloom_nexus::model::{Points, ScanEvent};
use serde_json::{Value, json};

fn image_pixel(i: usize, r: usize, c: usize) -> u16 {
    (i * 100 + r * 5 + c) as u16
}

fn spectrum(i: usize) -> Vec<f32> {
    (0..(2 + 3 * (i % 3))).map(|k| (i * 10 + k) as f32 * 0.5).collect()
}

#[test]
fn images_spectra_json_and_every_dtype() {
    let dir = TempDir::new("streams");
    let file = dir.path().join("streams.h5");
    let n = 6;
    let extra = vec![
        stream("lima:image", "<u2", &[4, 5], None),
        stream("mca:spectrum", "<f4", &[-1], None),
        json_stream("events:log"),
        stream("be:counts", ">i4", &[], None),
        stream("be:temp", ">f8", &[], Some("K")),
        stream("be:frame", ">u2", &[2, 3], None),
        stream("flags:ok", "|b1", &[], None),
        stream("iq:z", "<c16", &[], None),
        stream("half:h", "<f2", &[], None),
    ];
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 12, n, extra)))).unwrap();
    for (from, to) in [(0, 2), (2, 6)] {
        for e in ascan_points(from, to, n) {
            w.handle(e).unwrap();
        }
        let count = to - from;
        let data = |stream, points| ScanEvent::Data { stream, first_index: from as u64, points };
        let img: Vec<u8> = (from..to)
            .flat_map(|i| (0..4).flat_map(move |r| (0..5).map(move |c| image_pixel(i, r, c))))
            .flat_map(u16::to_le_bytes)
            .collect();
        w.handle(data(3, Points::Fixed { count, bytes: img })).unwrap();
        let spectra = (from..to)
            .map(|i| {
                let s = spectrum(i);
                (vec![s.len()], s.iter().flat_map(|v| v.to_le_bytes()).collect())
            })
            .collect();
        w.handle(data(4, Points::Variable(spectra))).unwrap();
        let logs = (from..to)
            .map(|i| if i % 2 == 0 { json!(format!("point {i}")) } else { json!({"i": i, "ok": true}) })
            .collect();
        w.handle(data(5, Points::Json(logs))).unwrap();
        let be_i: Vec<u8> = (from..to).flat_map(|i| (-(i as i32) * 1000).to_be_bytes()).collect();
        w.handle(data(6, Points::Fixed { count, bytes: be_i })).unwrap();
        let be_f: Vec<u8> = (from..to).flat_map(|i| (273.15 + i as f64).to_be_bytes()).collect();
        w.handle(data(7, Points::Fixed { count, bytes: be_f })).unwrap();
        let be_frame: Vec<u8> =
            (from..to).flat_map(|i| (0..6).map(move |k| (i * 6 + k) as u16)).flat_map(u16::to_be_bytes).collect();
        w.handle(data(8, Points::Fixed { count, bytes: be_frame })).unwrap();
        let flags: Vec<u8> = (from..to).map(|i| (i % 3 == 0) as u8).collect();
        w.handle(data(9, Points::Fixed { count, bytes: flags })).unwrap();
        let z: Vec<u8> = (from..to).flat_map(|i| [i as f64, -(i as f64) / 2.0]).flat_map(f64::to_le_bytes).collect();
        w.handle(data(10, Points::Fixed { count, bytes: z })).unwrap();
        // Half floats of small integers and halves are exact: 1.0 = 0x3c00, 0.5 = 0x3800.
        let halves: Vec<u8> = (from..to).flat_map(|i| [0u16, 0x3800, 0x3c00][i % 3].to_le_bytes()).collect();
        w.handle(data(11, Points::Fixed { count, bytes: halves })).unwrap();
    }
    // A wrongly sized batch is refused, and the scan goes on.
    let bad =
        w.handle(ScanEvent::Data { stream: 3, first_index: 6, points: Points::Fixed { count: 1, bytes: vec![0; 3] } });
    assert!(bad.is_err(), "a batch of the wrong size must be refused");
    w.handle(closed()).unwrap();
    assert_eq!(w.points_written(), 12 * n as u64);

    let max = (0..n).map(|i| spectrum(i).len()).max().unwrap();
    let images: Vec<Vec<Vec<u16>>> =
        (0..n).map(|i| (0..4).map(|r| (0..5).map(|c| image_pixel(i, r, c)).collect()).collect()).collect();
    let padded: Vec<Vec<Value>> = (0..n)
        .map(|i| {
            let s = spectrum(i);
            (0..max).map(|k| s.get(k).map(|v| json!(v)).unwrap_or(json!(f64::NAN.to_string()))).collect()
        })
        .collect();
    // JSON cannot carry NaN: the check compares floats with equal_nan, and numpy parses "nan".
    let logs: Vec<String> =
        (0..n).map(|i| if i % 2 == 0 { format!("point {i}") } else { format!(r#"{{"i":{i},"ok":true}}"#) }).collect();
    let expect = json!({
        "datasets": {
            "/12.1/instrument/lima/image": {"dtype": "<u2", "shape": [n, 4, 5], "values": images},
            "/12.1/measurement/image": {"shape": [n, 4, 5]},
            "/12.1/instrument/mca/spectrum": {"dtype": "<f4", "shape": [n, max], "values": padded},
            "/12.1/instrument/mca/spectrum_shape": {"dtype": "<i8", "shape": [n, 1], "values": (0..n).map(|i| vec![spectrum(i).len()]).collect::<Vec<_>>()},
            "/12.1/instrument/events/log": {"shape": [n], "strings": logs},
            "/12.1/instrument/be/counts": {"dtype": ">i4", "values": (0..n).map(|i| -(i as i64) * 1000).collect::<Vec<_>>()},
            "/12.1/instrument/be/temp": {"dtype": ">f8", "values": (0..n).map(|i| 273.15 + i as f64).collect::<Vec<_>>()},
            "/12.1/instrument/be/frame": {"dtype": ">u2", "shape": [n, 2, 3], "values": (0..n).map(|i| (0..2).map(|r| (0..3).map(|c| i * 6 + r * 3 + c).collect::<Vec<_>>()).collect::<Vec<_>>()).collect::<Vec<_>>()},
            "/12.1/instrument/flags/ok": {"dtype": "|b1", "values": (0..n).map(|i| i % 3 == 0).collect::<Vec<_>>()},
            "/12.1/instrument/iq/z": {"dtype": "<c16", "values": (0..n).map(|i| vec![i as f64, -(i as f64) / 2.0]).collect::<Vec<_>>()},
            "/12.1/instrument/half/h": {"dtype": "<f2", "values": (0..n).map(|i| [0.0, 0.5, 1.0][i % 3]).collect::<Vec<_>>()},
        },
        "attrs": {
            "/12.1/lima_image": {"NX_class": "NXdata", "signal": "image", "interpretation": "image"},
            "/12.1/mca_spectrum": {"NX_class": "NXdata", "signal": "spectrum", "interpretation": "spectrum"},
            "/12.1/instrument/lima/image": {"interpretation": "image"},
            "/12.1/instrument/be/temp": {"units": "K"},
        },
        "links": {
            "/12.1/lima_image/image": "/12.1/instrument/lima/image",
            "/12.1/measurement/spectrum": "/12.1/instrument/mca/spectrum",
            "/12.1/measurement/log": "/12.1/instrument/events/log",
        }
    });
    check_file(dir.path(), &file, &expect);
    validate(&file, &["12.1"]);
}
