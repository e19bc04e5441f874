//! The session writer on a full disk (a file-size limit on its process, as a quota'd or
//! nearly full filesystem refuses writes): the scan whose file hits the limit ends in
//! FAULT naming the OS cause, with its points so far readable; a scan of the same
//! session into another file is recorded whole; the session writer stays ON.

mod nexus_support;
mod service_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use nexus_support::{ChildGuard, TempDir, self_child};
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::service::NexusSessionWriter;
use serde_json::json;
use support::Redis;

const CHILD_ENV: &str = "PVLOOM_NEXUS_CHILD_FULL_SESSION";
/// The largest file the child may write.
const FILE_LIMIT: u64 = 1024 * 1024;

/// Child: the session writer under the file-size limit, until two scans have ended; one
/// JSON line per ended scan, then the service's state.
fn child(spec: &str) {
    let (url, dir) = spec.split_once('|').expect("URL|DIR");
    // SAFETY: plain libc calls on this process before any file is written: SIGXFSZ
    // ignored so that a write past the limit fails with EFBIG instead of killing us.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit { rlim_cur: FILE_LIMIT, rlim_max: FILE_LIMIT };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let options = service_support::options(Path::new(dir), "pvloom-nexus full disk test", Duration::from_secs(20));
    let service = NexusSessionWriter::new(url, Some("beamline"), options);
    service.start().unwrap();
    println!("ready");
    let end = Instant::now() + Duration::from_secs(90);
    while service.finished().len() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    for scan in service.finished() {
        let line = json!({
            "entry": scan.progress.entry,
            "state": format!("{:?}", scan.state),
            "fault": scan.progress.fault,
            "points": scan.progress.points_written,
        });
        println!("scan {line}");
    }
    println!("service {:?}", service.state());
    let _ = service.stop(Some(Duration::from_secs(10)));
}

#[test]
fn a_full_disk_faults_its_scan_and_spares_the_others() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    let redis = Redis::start();
    let dir = TempDir::new("fulldisk");
    let spec = format!("{}|{}", redis.url(), dir.path().display());
    let mut writer =
        ChildGuard::spawn(self_child("a_full_disk_faults_its_scan_and_spares_the_others", (CHILD_ENV, &spec)));
    let mut seen = Vec::new();
    // The harness's "test NAME ... " has no newline of its own: "ready" ends that line.
    writer
        .wait_line(Duration::from_secs(20), &mut seen, |l| l.ends_with("ready"))
        .unwrap_or_else(|| panic!("the session writer did not start: {seen:?}"));

    // 20 000 points of an ascan are about 1.3 MB of data: past the limit. 12 are not.
    let big = dir.path().join("big.h5");
    let small = dir.path().join("small.h5");
    redis.py("bliss_ascan.py", &["beamline", big.to_str().unwrap(), "1", "20000"]);
    redis.py("bliss_ascan.py", &["beamline", small.to_str().unwrap(), "2", "12"]);

    let mut scans = Vec::new();
    while scans.len() < 2 {
        let line =
            writer.wait_line(Duration::from_secs(100), &mut seen, |l| l.starts_with("scan ")).unwrap_or_else(|| {
                let exit = writer.child.try_wait().ok().flatten();
                panic!("the writer reported {} of 2 scans: {seen:?} (exit: {exit:?})", scans.len())
            });
        scans.push(serde_json::from_str::<serde_json::Value>(&line["scan ".len()..]).unwrap());
    }
    let service = writer.wait_line(Duration::from_secs(10), &mut seen, |l| l.starts_with("service ")).unwrap();
    assert_eq!(service, format!("service {:?}", SubscriberState::On), "the session writer lives on");

    let by_entry = |e: &str| scans.iter().find(|s| s["entry"] == e).unwrap_or_else(|| panic!("no {e}: {scans:?}"));
    let failed = by_entry("1.1");
    assert_eq!(failed["state"], format!("{:?}", SubscriberState::Fault), "{failed}");
    let fault = failed["fault"].as_str().unwrap_or_default();
    assert!(fault.contains("File too large"), "the FAULT names the OS cause: {fault}");
    let written = failed["points"].as_u64().unwrap();
    assert!(written > 0 && written < 4 * 20_000, "some points, not all: {failed}");
    assert!(std::fs::metadata(&big).unwrap().len() <= FILE_LIMIT);

    let spared = by_entry("2.1");
    assert_eq!(spared["state"], format!("{:?}", SubscriberState::Off), "{spared}");
    assert!(spared["fault"].is_null() && spared["points"] == 4 * 12, "{spared}");

    // Both files open (the full one, never closed, as a killed writer's: in SWMR read
    // mode). The full one holds a prefix of the scan, then the fill value (NaN) where the
    // points of the failed flush never reached the disk; the other file all of its scan.
    let sy = |n: usize| (0..n).map(|i| i as f64 / (n - 1) as f64).collect::<Vec<_>>();
    nexus_support::check_file(
        dir.path(),
        &big,
        &json!({"swmr": true, "datasets": {"/1.1/instrument/sy/value": {"min_len": 1, "prefix_then_fill": true, "values": sy(20_000)}}}),
    );
    nexus_support::check_file(
        dir.path(),
        &small,
        &json!({
            "datasets": {
                "/2.1/instrument/sy/value": {"shape": [12], "values": sy(12)},
                "/2.1/end_reason": {"strings": "SUCCESS"},
            }
        }),
    );
}
