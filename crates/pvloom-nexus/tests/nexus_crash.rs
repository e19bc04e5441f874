//! The file survives its writer: a writer process killed with SIGKILL mid-scan leaves a
//! file h5py opens (SWMR) with every point flushed; a full disk (a file-size limit) makes
//! writes fail with the OS cause and leaves the flushed points readable.
//!
//! Each test re-runs this binary as its child (selected by name, mode in an env var).

mod nexus_support;

use std::time::{Duration, Instant};

use nexus_support::*;
use pvloom_nexus::model::{Points, ScanEvent};
use pvloom_nexus::nexus::{ScanWriter, WriterConfig};
use serde_json::json;

const KILL_ENV: &str = "PVLOOM_NEXUS_CHILD_KILL";
const FULL_ENV: &str = "PVLOOM_NEXUS_CHILD_FULL";

fn eager_writer(dir: &std::path::Path) -> ScanWriter {
    ScanWriter::new(WriterConfig {
        flush_interval: Duration::ZERO,
        ..WriterConfig { default_dir: dir.to_owned(), ..Default::default() }
    })
}

/// Child: writes an endless ascan, one flushed batch at a time, reporting each.
fn kill_child(file: &str) {
    let file = std::path::Path::new(file);
    let n = 1_000_000;
    let mut w = eager_writer(file.parent().unwrap());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(file, 1, n, vec![])))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut from = 0;
    while Instant::now() < deadline {
        for e in ascan_points(from, from + 10, n) {
            w.handle(e).unwrap();
        }
        from += 10;
        println!("flushed {from}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn killed_writer_leaves_a_readable_file() {
    if let Ok(file) = std::env::var(KILL_ENV) {
        return kill_child(&file);
    }
    let dir = TempDir::new("killed");
    let file = dir.path().join("killed.h5");
    let mut child =
        ChildGuard::spawn(self_child("killed_writer_leaves_a_readable_file", (KILL_ENV, file.to_str().unwrap())));
    let mut seen = Vec::new();
    let line = child
        .wait_line(Duration::from_secs(20), &mut seen, |l| {
            l.strip_prefix("flushed ").and_then(|s| s.parse::<usize>().ok()).is_some_and(|n| n >= 50)
        })
        .unwrap_or_else(|| panic!("the child did not write 50 points: {seen:?}"));
    child.kill(); // SIGKILL mid-scan
    let flushed: usize = line["flushed ".len()..].parse().unwrap();
    let n = 1_000_000;
    let expect = json!({
        "swmr": true,
        "datasets": {
            "/1.1/instrument/sy/value": {"min_len": flushed, "prefix": true, "values": (0..flushed).map(|i| sy(i, n)).collect::<Vec<_>>()},
            "/1.1/instrument/diode/data": {"min_len": flushed, "prefix": true, "values": (0..flushed).map(diode).collect::<Vec<_>>()},
            "/1.1/title": {"strings": format!("ascan sy 0 1 {} 0.1", n - 1)},
            "/1.1/end_reason": {"strings": "RUNNING"},
            "/1.1/end_time": {"strings": ""},
        },
        "attrs": {"/1.1/plot": {"NX_class": "NXdata", "signal": "diode"}},
    });
    check_file(dir.path(), &file, &expect);
    // The next scan cannot open the file the killed writer left marked: it goes to a
    // sibling file, and the killed file is left as it is.
    let mut w = writer(dir.path());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(&file, 2, 5, vec![])))).unwrap();
    for e in ascan_points(0, 5, 5) {
        w.handle(e).unwrap();
    }
    w.handle(ScanEvent::State(pvloom_nexus::model::ScanState::Closed)).unwrap();
    let sibling = dir.path().join("killed_2.h5");
    assert_eq!(w.file_path(), Some(sibling.as_path()));
    check_file(dir.path(), &sibling, &ascan_expect("2.1", 5));
    check_file(
        dir.path(),
        &file,
        &json!({"swmr": true, "absent": ["/2.1"], "datasets": {"/1.1/end_reason": {"strings": "RUNNING"}}}),
    );
}

/// Child: a 256 KiB file-size limit, then images until a write fails.
fn full_child(file: &str) {
    let file = std::path::Path::new(file);
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit { rlim_cur: 256 * 1024, rlim_max: 256 * 1024 };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let n = 10_000;
    let mut w = eager_writer(file.parent().unwrap());
    w.handle(ScanEvent::Begin(Box::new(ascan_meta(file, 3, n, vec![stream("lima:image", "<u2", &[32, 32], None)]))))
        .unwrap();
    for from in (0..n).step_by(4) {
        let mut events = ascan_points(from, from + 4, n);
        let img: Vec<u8> =
            (from..from + 4).flat_map(|i| (0..1024).map(move |k| (i + k) as u16)).flat_map(u16::to_le_bytes).collect();
        events.push(ScanEvent::Data {
            stream: 3,
            first_index: from as u64,
            points: Points::Fixed { count: 4, bytes: img },
        });
        for e in events {
            if let Err(e) = w.handle(e) {
                println!("error: {e}");
                println!("os: {:?}", e.os_error().and_then(|o| o.raw_os_error()));
                let abort = w.abort("disk full");
                println!("abort: {:?}", abort.err().map(|e| e.to_string()));
                return;
            }
        }
        println!("flushed {}", from + 4);
    }
    println!("no error");
}

#[test]
fn full_disk_fails_with_the_os_cause() {
    if let Ok(file) = std::env::var(FULL_ENV) {
        return full_child(&file);
    }
    let dir = TempDir::new("full");
    let file = dir.path().join("full.h5");
    let child = ChildGuard::spawn(self_child("full_disk_fails_with_the_os_cause", (FULL_ENV, file.to_str().unwrap())));
    let mut seen = Vec::new();
    let error = child
        .wait_line(Duration::from_secs(25), &mut seen, |l| l.starts_with("error: ") || l == "no error")
        .unwrap_or_else(|| panic!("the child neither failed nor finished: {seen:?}"));
    assert!(error.contains("File too large"), "the error names the OS cause: {error}");
    let os = child.wait_line(Duration::from_secs(5), &mut seen, |l| l.starts_with("os: ")).unwrap();
    assert_eq!(os, format!("os: Some({})", libc::EFBIG));
    // The abort after the failure returns (Ok or another error), it does not hang or panic.
    let abort =
        child.wait_line(Duration::from_secs(5), &mut seen, |l| l.starts_with("abort: ")).expect("abort returned");
    eprintln!("{error}\n{abort}");
    let flushed: usize =
        seen.iter().filter_map(|l| l.strip_prefix("flushed ")).filter_map(|s| s.parse().ok()).max().unwrap_or(0);
    assert!(flushed > 0, "some points were written before the limit: {seen:?}");
    let expect = json!({
        "swmr": true,
        "datasets": {
            "/3.1/instrument/timer/elapsed_time": {"min_len": flushed, "prefix": true, "values": (0..flushed).map(elapsed).collect::<Vec<_>>()},
        },
    });
    check_file(dir.path(), &file, &expect);
}
