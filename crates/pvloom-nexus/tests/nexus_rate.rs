//! Write rate of a long scan (scalars and images, small batches, SWMR on, flushing every
//! 0.1 s), reported on stderr; the file is then checked to hold every point.

mod nexus_support;

use std::time::Instant;

use nexus_support::*;
use pvloom_nexus::model::{Points, ScanEvent};
use serde_json::json;

#[test]
fn long_scan_write_rate() {
    let dir = TempDir::new("rate");
    let file = dir.path().join("rate.h5");
    let (n, batch) = (5_000usize, 100usize);
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 1, n, vec![stream("lima:image", "<u2", &[64, 64], None)]))))
        .unwrap();
    // Only the writer's time counts (making the data is slow in a debug build).
    let mut spent = std::time::Duration::ZERO;
    let mut bytes = 0usize;
    for from in (0..n).step_by(batch) {
        let mut events = ascan_points(from, from + batch, n);
        let img: Vec<u8> = (from..from + batch)
            .flat_map(|i| (0..4096).map(move |k| (i ^ k) as u16))
            .flat_map(u16::to_le_bytes)
            .collect();
        bytes += 3 * 8 * batch + img.len();
        events.push(ScanEvent::Data {
            stream: 3,
            first_index: from as u64,
            points: Points::Fixed { count: batch, bytes: img },
        });
        let t = Instant::now();
        for e in events {
            w.handle(e).unwrap();
        }
        w.tick(Instant::now()).unwrap();
        spent += t.elapsed();
    }
    let t = Instant::now();
    w.handle(closed()).unwrap();
    spent += t.elapsed();
    let secs = spent.as_secs_f64();
    eprintln!(
        "wrote {} points ({:.1} MB) in {secs:.2} s: {:.0} points/s, {:.1} MB/s",
        w.points_written(),
        bytes as f64 / 1e6,
        w.points_written() as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    assert_eq!(w.points_written(), 4 * n as u64);
    let expect = json!({
        "datasets": {
            "/1.1/instrument/sy/value": {"shape": [n], "values": (0..n).map(|i| sy(i, n)).collect::<Vec<_>>()},
            "/1.1/instrument/lima/image": {"shape": [n, 64, 64], "dtype": "<u2"},
        }
    });
    check_file(dir.path(), &file, &expect);
}
