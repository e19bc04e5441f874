//! The LDMS commands end to end: `pvloom ldmsd` started with ldmsd's flags on a captured
//! sampler.conf, read with `pvloom ldms ls`; a bad configuration line reported with its
//! file and line; SIGTERM ends the daemon cleanly; `pvloom demo` serves and reads its LDMS
//! sets. Every process started is killed by PID.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PVLOOM: &str = env!("CARGO_BIN_EXE_pvloom");

fn captures() -> &'static Path {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/ldms-captures"));
    assert!(p.is_dir(), "the LDMS captures are missing at {}", p.display());
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, conf: &Path) -> Daemon {
    let child = Command::new(PVLOOM)
        .args(["ldmsd", "-x", &format!("sock:{port}:127.0.0.1"), "-c"])
        .arg(conf)
        .args(["-F", "-v", "ERROR"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pvloom ldmsd");
    let d = Daemon(child);
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "pvloom ldmsd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn ls(port: u16, extra: &[&str]) -> Output {
    Command::new(PVLOOM)
        .args(["ldms", "ls", "-x", "sock", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .output()
        .expect("pvloom ldms ls")
}

#[test]
fn ldmsd_runs_a_captured_conf_and_ldms_ls_reads_it() {
    let port = free_port();
    let _d = start(port, &captures().join("ls-l-two-samplers/sampler.conf"));
    let out = ls(port, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(),
        ["localhost1/meminfo", "localhost1/vmstat"]
    );
    // After a sample, -l shows the set consistent with its metrics, as ldms_ls does.
    std::thread::sleep(Duration::from_millis(1200));
    let out = ls(port, &["-l", "localhost1/meminfo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("localhost1/meminfo: consistent, last update: "), "{text}");
    assert!(text.contains("M u64          component_id                               1"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("D u64          MemTotal ")), "{text}");
}

#[test]
fn a_bad_line_stops_the_start_naming_file_and_line() {
    let dir = std::env::temp_dir().join(format!("pvloom-cli-ldms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "load name=meminfo\nconfig name=meminfo producer=p instance=p/m\nfrobnicate now=1\n")
        .unwrap();
    let out = Command::new(PVLOOM)
        .args(["ldmsd", "-x", &format!("sock:{}:127.0.0.1", free_port()), "-c"])
        .arg(&conf)
        .args(["-F", "--run-for", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.conf:3") && err.contains("frobnicate"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_ends_the_daemon_cleanly() {
    let port = free_port();
    let d = start(port, &captures().join("ls-l-meminfo/sampler.conf"));
    let pid = d.0.id();
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let mut d = d;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = d.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < end, "pvloom ldmsd ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_demo_serves_and_reads_ldms_sets() {
    let out = Command::new(PVLOOM).args(["demo", "--seconds", "2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for set in ["pvloom-demo/ca", "pvloom-demo/loadavg", "pvloom-demo/meminfo"] {
        assert!(text.contains(&format!("LDMS {set}")), "{text}");
    }
    let summary = text.lines().find(|l| l.trim_start().starts_with("LDMS: ")).unwrap_or_default();
    assert!(summary.contains("LDMS: ") && !summary.contains("pvloom-demo/ca 0 pushes"), "{text}");
    assert!(text.contains("0 callback failures"), "{text}");
}

#[test]
fn without_f_the_daemon_detaches_and_keeps_serving() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("pvloom-cli-detach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("ldmsd.pid");
    let out = Command::new(PVLOOM)
        .args(["ldmsd", "-x", &format!("sock:{port}:127.0.0.1"), "-c"])
        .arg(captures().join("ls-l-meminfo/sampler.conf"))
        .arg("-r")
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let end = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file)
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            break pid;
        }
        assert!(Instant::now() < end, "the detached daemon wrote no pid file");
        std::thread::sleep(Duration::from_millis(50));
    };
    let listed = ls(port, &[]);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "localhost1/meminfo", "{listed:?}");
    let end = Instant::now() + Duration::from_secs(10);
    while pid_file.exists() {
        assert!(Instant::now() < end, "the detached daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn pvloom_ldms(args: &[&str], port: u16) -> Command {
    let mut c = Command::new(PVLOOM);
    c.args(["ldms"]).args(&args[..1]).args(["-x", "sock", "-h", "127.0.0.1", "-p", &port.to_string()]);
    c.args(&args[1..]);
    c
}

fn msg_stats(port: u16) -> serde_json::Value {
    let out = pvloom_ldms(&["msg-stats"], port).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A running child killed by PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn publish_a_file_and_stdin_lines_through_ldmsd_to_subscribe() {
    let dir = std::env::temp_dir().join(format!("pvloom-cli-msg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("msg.conf");
    std::fs::write(&conf, "msg_enable\n").unwrap();
    let port = free_port();
    let _d = start(port, &conf);

    let sub = pvloom_ldms(&["subscribe", "-m", "cli", "-c", "4", "--timeout", "30"], port)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sub = Running(sub);
    // Subscribed once the daemon counts a remote client.
    let end = Instant::now() + Duration::from_secs(20);
    while msg_stats(port)["clients"].as_array().is_none_or(|c| c.is_empty()) {
        assert!(Instant::now() < end, "the subscriber never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }

    let file = dir.join("msg.txt");
    std::fs::write(&file, "hello\nworld\n").unwrap();
    let out = pvloom_ldms(&["publish", "-m", "cli", "-t", "string", "-f"], port).arg(&file).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut p = pvloom_ldms(&["publish", "-m", "cli", "-t", "json", "-l"], port)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = p.stdin.take().unwrap();
        stdin.write_all(b"{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n").unwrap();
    }
    let out = p.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");

    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = sub.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "subscribe -c 4 did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    {
        use std::io::Read as _;
        sub.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    }
    assert!(status.success(), "{status:?}: {text}");
    assert_eq!(
        text,
        "msg_tag: cli\nhop : 1\ntype: LDMS_MSG_STRING\ndata: hello\nworld\n\n{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n"
    );

    let stats = msg_stats(port);
    assert_eq!(stats["enabled"], true);
    let ch = stats["channels"].as_array().unwrap().iter().find(|c| c["msg_tag"] == "cli").expect("the channel").clone();
    assert_eq!(ch["rx"]["count"], 4);
    // The data and its NUL, as ldms_msg_publish sends them; ldmsd's stats count the
    // data only, not the channel name.
    let bytes = (12 + 1) + 3 * (9 + 1);
    assert_eq!(ch["rx"]["bytes"], bytes, "{ch}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_to_a_daemon_without_msg_enable_fails_with_enotsup() {
    let dir = std::env::temp_dir().join(format!("pvloom-cli-nomsg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("plain.conf");
    std::fs::write(&conf, "# no msg_enable\n").unwrap();
    let port = free_port();
    let _d = start(port, &conf);
    let file = dir.join("m.txt");
    std::fs::write(&file, "x\n").unwrap();
    let out = pvloom_ldms(&["publish", "-m", "cli", "-f"], port).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error 95"), "{err}");
    let out = pvloom_ldms(&["subscribe", "-m", "cli", "-c", "1", "--timeout", "5"], port).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(msg_stats(port)["enabled"], false);
    let _ = std::fs::remove_dir_all(&dir);
}
