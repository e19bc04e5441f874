//! `pvloom record` end to end: a counter served by `pvloom ioc` and a test_sampler set
//! served by `pvloom ldmsd`, recorded into one NeXus file; h5py (from `.venv`) reads it
//! back: every monitor update of the counter is there, in order, with its timestamp, and
//! every set sample with its transaction time. Every process started is killed by PID.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PVLOOM: &str = env!("CARGO_BIN_EXE_pvloom");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PVLOOM_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(p.exists(), "{} is missing: run ./test.sh, which creates .venv with h5py", p.display());
    p
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CHECK: &str = r#"
import sys, json, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
entry = f["1.1"]
inst = entry["instrument"]
count = inst["REC:COUNT"]["value"][()]
epoch = inst["REC:COUNT"]["epoch"][()]
ts = inst["h_rec"]["timestamp"][()]
v3 = inst["h_rec"]["v3"][()]
print(json.dumps({
    "count": count.tolist(), "epoch": epoch.tolist(), "ts": ts.tolist(), "v3": v3.tolist(),
    "title": entry["title"][()].decode(), "end_time": entry["end_time"][()].decode(),
    "nx_class": entry.attrs["NX_class"].decode() if isinstance(entry.attrs["NX_class"], bytes) else entry.attrs["NX_class"],
}))
"#;

/// 1990-01-01 in Unix seconds: the time of a record that never processed.
const EPICS_EPOCH_UNIX: f64 = 631_152_000.0;

#[test]
fn record_writes_every_ca_monitor_update_and_ldms_sample() {
    let dir = std::env::temp_dir().join(format!("pvloom-cli-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("counter.db");
    std::fs::write(&db, "record(calc, \"REC:COUNT\") { field(SCAN, \".1 second\") field(CALC, \"VAL+1\") }\n").unwrap();
    let (ca_port, repeater) = (free_port(), free_udp_port());
    let env = support::loopback_env(ca_port, repeater);
    let _ioc = Killed(
        Command::new(PVLOOM).arg("ioc").arg(&db).envs(env.clone()).stdout(Stdio::null()).spawn().expect("pvloom ioc"),
    );
    wait_listening(ca_port, "pvloom ioc");
    let conf = dir.join("sampler.conf");
    let metrics: Vec<String> =
        std::iter::once("component_id:m:u64:0".to_owned()).chain((0..8).map(|i| format!("v{i}:d:u64:{i}"))).collect();
    std::fs::write(
        &conf,
        format!(
            "load name=test_sampler\nconfig name=test_sampler action=add_schema schema=rec metrics={}\n\
             config name=test_sampler action=add_set schema=rec instance=h/rec producer=h component_id=1\n\
             start name=test_sampler interval=100000 offset=0\n",
            metrics.join(",")
        ),
    )
    .unwrap();
    let ldms_port = free_port();
    let _ldmsd = Killed(
        Command::new(PVLOOM)
            .args(["ldmsd", "-x", &format!("sock:{ldms_port}:127.0.0.1"), "-c"])
            .arg(&conf)
            .args(["-F", "-v", "ERROR"])
            .stdout(Stdio::null())
            .spawn()
            .expect("pvloom ldmsd"),
    );
    wait_listening(ldms_port, "pvloom ldmsd");
    let out_file = dir.join("rec.h5");
    let _ = std::fs::remove_file(&out_file);
    let record = Command::new(PVLOOM)
        .args(["record", "--ca", "REC:COUNT", "--ldms", &format!("127.0.0.1:{ldms_port}/h/rec")])
        .args(["--ldms-interval", "0.05", "--seconds", "2.5", "--title", "counter and set", "--out"])
        .arg(&out_file)
        .envs(env)
        .output()
        .expect("pvloom record");
    let stdout = String::from_utf8_lossy(&record.stdout);
    assert!(record.status.success(), "{record:?}");
    assert!(stdout.contains("recorded ") && stdout.contains("::/1.1"), "{stdout}");

    let check = Command::new(python()).arg("-c").arg(CHECK).arg(&out_file).output().expect("python");
    assert!(check.status.success(), "h5py could not read the file: {}", String::from_utf8_lossy(&check.stderr));
    let got: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let mut count: Vec<f64> = serde_json::from_value(got["count"].clone()).unwrap();
    let mut epoch: Vec<f64> = serde_json::from_value(got["epoch"].clone()).unwrap();
    // A recorder that subscribes before the first scan gets the never-processed record,
    // stamped with the EPICS epoch (1990-01-01) as EPICS base stamps it: a real point.
    if epoch.first() == Some(&EPICS_EPOCH_UNIX) {
        count.remove(0);
        epoch.remove(0);
    }
    // The counter processes every 0.1 s: ~25 updates in 2.5 s, each one exactly once.
    assert!(count.len() >= 15, "{count:?}");
    assert!(count.windows(2).all(|w| w[1] == w[0] + 1.0), "an update is missing or repeated: {count:?}");
    assert_eq!(epoch.len(), count.len());
    assert!(epoch.windows(2).all(|w| w[1] > w[0]), "{epoch:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - epoch[0]).abs() < 60.0, "the CA timestamps are not epoch seconds: {}", epoch[0]);
    // The set samples every 0.1 s and is read every 0.05 s: each sample once.
    let ts: Vec<f64> = serde_json::from_value(got["ts"].clone()).unwrap();
    let v3: Vec<u64> = serde_json::from_value(got["v3"].clone()).unwrap();
    assert!(ts.len() >= 15, "{ts:?}");
    assert!(ts.windows(2).all(|w| w[1] > w[0]), "a sample is repeated: {ts:?}");
    assert_eq!(v3.len(), ts.len());
    assert!(v3.windows(2).all(|w| w[1] > w[0]), "test_sampler's values grow each sample: {v3:?}");
    assert_eq!(got["title"], "counter and set");
    assert_eq!(got["nx_class"], "NXentry");
    assert!(!got["end_time"].as_str().unwrap().is_empty(), "{got}");
    let _ = std::fs::remove_dir_all(&dir);
}
