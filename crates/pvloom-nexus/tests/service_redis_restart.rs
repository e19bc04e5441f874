//! The session writer across Redis going away mid-scan, with real blissdata publishing:
//! a brief disconnect (the writer's connections killed, Redis up) and a restart with the
//! data kept are read through to the scan's end; a restart that lost the data ends the scan
//! in FAULT naming the cause, its file readable. In every case the session writer stays ON
//! and records the next scan.

mod nexus_support;
mod service_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use nexus_support::TempDir;
use pvloom_core::subscriber::SubscriberState;
use pvloom_nexus::blissdata::CLIENT_NAME;
use pvloom_nexus::service::NexusSessionWriter;
use serde_json::json;
use service_support::wait_finished;
use support::{Proc, Redis};

const NPOINTS: usize = 20;
const HALF: usize = NPOINTS / 2;

/// Starts bliss_restart.py and waits until the writer has written its first half: the
/// scan is then being read when Redis goes away.
fn publish_half(redis: &Redis, service: &NexusSessionWriter, file: &Path, number: u64) -> (Proc, String) {
    let mut publisher = redis
        .spawn_py("bliss_restart.py", &["beamline", file.to_str().unwrap(), &number.to_string(), &NPOINTS.to_string()]);
    let key = publisher.wait_line("KEY ");
    publisher.wait_line("HALF");
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let running = service.running();
        let written = running.iter().find(|(k, _)| *k == key).map_or(0, |(_, p)| p.points_written);
        if written >= 3 * HALF as u64 {
            break;
        }
        assert!(Instant::now() < end, "the writer did not write the first half of {key}: {running:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (publisher, key)
}

fn sy(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 / (NPOINTS - 1) as f64).collect()
}

fn diode(n: usize) -> Vec<f64> {
    (0..n).map(|i| 100.0 * (i as f64).sin()).collect()
}

fn current(n: usize) -> Vec<f64> {
    (0..n).map(|i| 200.0 - 0.5 * i as f64).collect()
}

fn end_reason(file: &Path, entry: &str) -> String {
    let (ok, out, err) =
        nexus_support::run_py("check_nexus_end_reason.py", &[file.to_str().unwrap(), entry], Duration::from_secs(20));
    assert!(ok, "{out}\n{err}");
    out.trim().to_owned()
}

/// After the trouble: the service is still ON and records a new scan into `file`.
fn records_the_next_scan(redis: &Redis, service: &NexusSessionWriter, file: &Path, number: u64, seen: usize) {
    assert_eq!(service.state(), SubscriberState::On, "{:?}", service.error());
    redis.py("bliss_ascan.py", &["beamline", file.to_str().unwrap(), &number.to_string(), "4"]);
    let finished = wait_finished(service, seen + 1, Duration::from_secs(30));
    let next = &finished[seen];
    assert_eq!(next.state, SubscriberState::Off, "{next:?}");
    assert_eq!(next.progress.entries, [format!("{number}.1")], "{next:?}");
    assert_eq!(next.progress.points_written, 4 * 4, "{next:?}");
}

#[test]
fn a_brief_disconnect_is_reconnected_and_the_scan_completes() {
    let redis = Redis::start();
    let dir = TempDir::new("disconnect");
    let file = dir.path().join("blip.h5");
    let service = NexusSessionWriter::new(
        &redis.url(),
        Some("beamline"),
        service_support::options(dir.path(), "pvloom-nexus restart tests", Duration::from_secs(20)),
    );
    service.start().unwrap();
    let (mut publisher, key) = publish_half(&redis, &service, &file, 5);

    // Cut every connection of the writer (the watcher's and the scan reader's), not BLISS's.
    let mut conn = redis.conn();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    let ours: Vec<&str> = clients
        .lines()
        .filter(|l| l.split(' ').any(|f| f == format!("name={CLIENT_NAME}")))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert!(ours.len() >= 2, "the watcher and the reader should be connected: {clients}");
    for id in &ours {
        let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(*id).query(&mut conn).unwrap();
        assert_eq!(killed, 1);
    }
    publisher.send_line("GO");
    publisher.wait_line("DONE");

    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    let scan = &finished[0];
    assert_eq!(scan.key, key);
    assert_eq!(scan.state, SubscriberState::Off, "{scan:?}");
    assert!(scan.progress.closed && scan.progress.fault.is_none(), "{scan:?}");
    assert_eq!(scan.progress.points_written, 4 * NPOINTS as u64, "{scan:?}");
    let expect = json!({
        "datasets": {
            "/5.1/instrument/sy/value": {"shape": [NPOINTS], "values": sy(NPOINTS)},
            "/5.1/instrument/diode/data": {"shape": [NPOINTS], "values": diode(NPOINTS)},
            "/5.1/instrument/machinfo/current": {"shape": [NPOINTS], "values": current(NPOINTS)},
            "/5.1/end_reason": {"strings": "SUCCESS"},
        },
    });
    nexus_support::check_file(dir.path(), &file, &expect);
    records_the_next_scan(&redis, &service, &file, 6, 1);
    service.stop(Some(Duration::from_secs(10))).unwrap();
}

#[test]
fn redis_restarted_with_its_data_mid_scan_is_read_on_to_the_end() {
    let mut redis = Redis::start();
    let dir = TempDir::new("restart-kept");
    let file = dir.path().join("kept.h5");
    let service = NexusSessionWriter::new(
        &redis.url(),
        Some("beamline"),
        service_support::options(dir.path(), "pvloom-nexus restart tests", Duration::from_secs(20)),
    );
    service.start().unwrap();
    let (mut publisher, key) = publish_half(&redis, &service, &file, 7);

    redis.restart(true);
    // BLISS's side of the scan died with its connections; another blissdata process
    // publishes the stream left, seals and closes the scan.
    publisher.send_line("QUIT");
    publisher.wait_ok();
    let ncurrent = 12;
    let out = redis.py("bliss_resume.py", &[&key, &ncurrent.to_string()]);
    assert!(out.contains("DONE"), "{out}");

    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    let scan = &finished[0];
    assert_eq!(scan.state, SubscriberState::Off, "{scan:?}");
    assert!(scan.progress.closed && scan.progress.fault.is_none(), "{scan:?}");
    assert_eq!(scan.progress.points_written, 3 * HALF as u64 + ncurrent as u64, "{scan:?}");
    let expect = json!({
        "datasets": {
            "/7.1/instrument/sy/value": {"shape": [HALF], "values": sy(HALF)},
            "/7.1/instrument/diode/data": {"shape": [HALF], "values": diode(HALF)},
            "/7.1/instrument/machinfo/current": {"shape": [ncurrent], "values": current(ncurrent)},
            "/7.1/end_reason": {"strings": "DELETION"},
        },
    });
    nexus_support::check_file(dir.path(), &file, &expect);
    records_the_next_scan(&redis, &service, &file, 8, 1);
    service.stop(Some(Duration::from_secs(10))).unwrap();
}

#[test]
fn redis_restarted_without_its_data_ends_the_scan_in_fault_and_the_file_stays_readable() {
    let mut redis = Redis::start();
    let dir = TempDir::new("restart-lost");
    let file = dir.path().join("lost.h5");
    let service = NexusSessionWriter::new(
        &redis.url(),
        Some("beamline"),
        service_support::options(dir.path(), "pvloom-nexus restart tests", Duration::from_secs(20)),
    );
    service.start().unwrap();
    let (mut publisher, key) = publish_half(&redis, &service, &file, 9);

    redis.restart(false);
    publisher.send_line("QUIT");
    publisher.wait_ok();

    let finished = wait_finished(&service, 1, Duration::from_secs(30));
    let scan = &finished[0];
    assert_eq!(scan.key, key);
    assert_eq!(scan.state, SubscriberState::Fault, "{scan:?}");
    let fault = scan.progress.fault.as_deref().unwrap_or_default();
    assert!(fault.contains("gone from Redis") && fault.contains(&key), "the cause should be named: {scan:?}");
    assert!(scan.error.as_deref().unwrap_or_default().contains("gone from Redis"), "{scan:?}");
    assert_eq!(scan.progress.points_written, 3 * HALF as u64, "{scan:?}");
    let expect = json!({
        "datasets": {
            "/9.1/instrument/sy/value": {"shape": [HALF], "values": sy(HALF)},
            "/9.1/instrument/diode/data": {"shape": [HALF], "values": diode(HALF)},
            "/9.1/instrument/machinfo/current": {"shape": [0]},
        },
    });
    nexus_support::check_file(dir.path(), &file, &expect);
    let reason = end_reason(&file, "/9.1");
    assert!(reason.starts_with("FAILURE") && reason.contains("gone from Redis"), "{reason}");

    // The empty Redis is set up for blissdata again, as BLISS does when it reconnects.
    redis.py("init_db.py", &[]);
    records_the_next_scan(&redis, &service, &file, 10, 1);
    service.stop(Some(Duration::from_secs(10))).unwrap();
}
