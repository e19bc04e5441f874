//! A reader following a running scan: an h5py SWMR reader (a Python child process) sees
//! each new batch of points while the scan runs, and the scan's end. The bound here is
//! generous (a loaded CI machine runs many tests at once); the lag itself (0.5 s is the
//! target) is measured by bench/nexus and printed here.

mod nexus_support;

use std::process::Command;
use std::time::{Duration, Instant};

use nexus_support::*;
use pvloom_nexus::model::ScanEvent;

#[test]
fn swmr_reader_follows_the_running_scan() {
    let dir = TempDir::new("swmr");
    let file = dir.path().join("follow.h5");
    let (n, batch) = (60usize, 5usize);
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 4, n, vec![])))).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(script("check_nexus_swmr_follow.py")).args([
        file.to_str().unwrap(),
        "/4.1/instrument/timer/elapsed_time",
        &n.to_string(),
        "0.1",
        "25",
    ]);
    let reader = ChildGuard::spawn(cmd);
    let mut seen = Vec::new();
    assert!(
        reader.wait_line(Duration::from_secs(15), &mut seen, |l| l == "open").is_some(),
        "the reader did not open the file: {seen:?}"
    );
    let mut worst = Duration::ZERO;
    for from in (0..n).step_by(batch) {
        let to = (from + batch).min(n);
        for e in ascan_points(from, to, n) {
            w.handle(e).unwrap();
        }
        let written = Instant::now();
        let mut got = None;
        while written.elapsed() < Duration::from_secs(10) {
            w.tick(Instant::now()).unwrap();
            if let Ok(l) = reader.lines.recv_timeout(Duration::from_millis(10)) {
                let len: Option<usize> = l.strip_prefix("len ").and_then(|s| s.parse().ok());
                if len.is_some_and(|len| len >= to) {
                    got = Some(written.elapsed());
                    break;
                }
                seen.push(l);
            }
        }
        let lag =
            got.unwrap_or_else(|| panic!("the reader did not see point {} within 10 s; it said {seen:?}", to - 1));
        worst = worst.max(lag);
    }
    assert!(
        reader.wait_line(Duration::from_secs(5), &mut seen, |l| l == "done").is_some(),
        "reader did not finish: {seen:?}"
    );
    eprintln!("worst reader lag {worst:?}");
    w.handle(closed()).unwrap();
    let end = reader
        .wait_line(Duration::from_secs(5), &mut seen, |l| l.starts_with("end "))
        .unwrap_or_else(|| panic!("the reader did not see the end: {seen:?}"));
    assert_eq!(end, "end SUCCESS");
    check_file(dir.path(), &file, &ascan_expect("4.1", n));
}
