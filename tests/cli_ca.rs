//! `pvloom ca get|put|info|monitor` against EPICS base's server (pythonSoftIOC).

mod support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Ioc {
    child: Child,
    port: u16,
    repeater: u16,
}

impl Drop for Ioc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
}

fn start_ioc() -> Ioc {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "run ./test.sh first: it creates .venv with the real peers");
    let (port, repeater) = (free_port(), free_port());
    let mut child = Command::new(python)
        .arg(root().join("tests/peers/softioc_ioc.py"))
        .arg("CLI:")
        .envs(support::loopback_env(port, repeater))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.contains("READY")));
    std::thread::spawn(move || for _ in lines {});
    assert!(ready, "softIoc did not start");
    Ioc { child, port, repeater }
}

fn pvloom(ioc: &Ioc, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pvloom"))
        .args(args)
        .envs(support::loopback_env(ioc.port, ioc.repeater))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ca_tools_print_like_epics_base() {
    let ioc = start_ioc();
    let (ok, out, _) = pvloom(&ioc, &["ca", "get", "CLI:AI", "CLI:SI", "CLI:MBBI", "CLI:WF1K"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("{:<30} 1.5", "CLI:AI"));
    assert_eq!(lines[1], format!("{:<30} hello", "CLI:SI"));
    assert_eq!(lines[2], format!("{:<30} one", "CLI:MBBI"));
    assert!(lines[3].starts_with(&format!("{:<30} 1000 0 1 2 3", "CLI:WF1K")));

    let (ok, out, _) = pvloom(&ioc, &["ca", "get", "-t", "-n", "CLI:MBBI"]);
    assert!(ok);
    assert_eq!(out.trim(), "1");

    let (ok, out, _) = pvloom(&ioc, &["ca", "put", "CLI:AO", "4.5"]);
    assert!(ok);
    assert_eq!(out, format!("Old : {:<30} 2.5\nNew : {:<30} 4.5\n", "CLI:AO", "CLI:AO"));

    let (ok, out, _) = pvloom(&ioc, &["ca", "get", "-d", "DBR_CTRL_DOUBLE", "CLI:AI"]);
    assert!(ok);
    assert!(out.contains("    Units:            mm") && out.contains("    Hi alarm limit:   8"), "{out}");

    let (ok, out, _) = pvloom(&ioc, &["ca", "info", "CLI:AI.NAME"]);
    assert!(ok);
    assert!(out.contains("    Access:           read, no write"), "{out}");

    let (ok, _, err) = pvloom(&ioc, &["ca", "put", "CLI:AI.NAME", "x"]);
    assert!(!ok);
    assert!(err.contains("Write access denied"), "{err}");

    let (ok, _, err) = pvloom(&ioc, &["ca", "get", "-w", "0.3", "CLI:missing"]);
    assert!(!ok);
    assert!(err.contains("'CLI:missing' not found"), "{err}");

    let (ok, out, _) = pvloom(&ioc, &["ca", "monitor", "--seconds", "0.6", "CLI:COUNTER"]);
    assert!(ok);
    assert!(out.lines().count() >= 3, "{out}");
    assert!(out.lines().all(|l| l.starts_with("CLI:COUNTER")));
    let _ = Duration::ZERO;
}

#[test]
fn ioc_serves_a_db_file_and_reports_bad_lines() {
    let dir = std::env::temp_dir().join(format!("pvloom-ioc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.db");
    std::fs::write(&bad, "record(ai, \"$(P)X\") {\n  field(EGU, \"mm\")\n  field(BOGUS, \"1\")\n}\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_pvloom")).args(["ioc", bad.to_str().unwrap(), "-m", "P=A:"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.db:3:") && err.contains("BOGUS"), "{err}");

    let (port, repeater) = (free_port(), free_port());
    let ioc_env = support::loopback_env(port, repeater);
    let mut ioc = Command::new(env!("CARGO_BIN_EXE_pvloom"))
        .args(["ioc", root().join("tests/data/every_record.db").to_str().unwrap(), "-m", "P=CLI2:", "--seconds", "30"])
        .envs(ioc_env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(ioc.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("records served on port"));
    let fake = Ioc { child: ioc, port, repeater };
    let (ok, out, _) = pvloom(&fake, &["ca", "get", "CLI2:AI", "CLI2:AI.EGU", "CLI2:MBBO"]);
    assert!(ok, "{out}");
    assert_eq!(out, format!("{:<30} 1.5\n{:<30} mm\n{:<30} blue\n", "CLI2:AI", "CLI2:AI.EGU", "CLI2:MBBO"));
    let _ = std::fs::remove_dir_all(dir);
}
