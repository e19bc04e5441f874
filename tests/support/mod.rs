//! What the CLI tests share.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Loopback only, no automatic address lists: servers and clients see nothing else.
pub fn loopback_env(port: u16, repeater: u16) -> Vec<(&'static str, String)> {
    vec![
        ("EPICS_CA_SERVER_PORT", port.to_string()),
        ("EPICS_CAS_SERVER_PORT", port.to_string()),
        ("EPICS_CA_REPEATER_PORT", repeater.to_string()),
        ("EPICS_CAS_INTF_ADDR_LIST", "127.0.0.1".into()),
        ("EPICS_CAS_BEACON_ADDR_LIST", "127.0.0.1".into()),
        ("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO".into()),
        ("EPICS_CA_AUTO_ADDR_LIST", "NO".into()),
        ("EPICS_CA_ADDR_LIST", format!("127.0.0.1:{port}")),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
}

/// The repository root.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.venv`'s interpreter, where ./test.sh installed the real peers.
pub fn venv_python() -> std::path::PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "run ./test.sh first: it creates .venv with the real peers");
    python
}

/// A port free for both TCP and UDP (a CA server needs both).
pub fn free_port() -> u16 {
    use std::net::{Ipv4Addr, TcpListener, UdpSocket};
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A scratch directory for one test's files, removed at the end.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pvloom-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `text` to `name` under the directory (making its parents); its path.
    pub fn file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process whose stdout lines and stderr text are collected; killed (by its PID,
/// through `Child`) when dropped.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(command: &mut Command) -> Proc {
        Proc::spawn_with_stdin(command, Stdio::null())
    }

    /// As [`spawn`](Proc::spawn), with a pipe to its stdin ([`send_line`](Proc::send_line)).
    pub fn spawn_piped(command: &mut Command) -> Proc {
        Proc::spawn_with_stdin(command, Stdio::piped())
    }

    fn spawn_with_stdin(command: &mut Command, stdin: Stdio) -> Proc {
        let mut child = command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (stdout, stderr) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        let (mut pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, lines) = mpsc::channel();
        let (out, sink) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Proc { child, lines, stdout, stderr }
    }

    /// The first stdout line containing `marker`, within 10 s.
    pub fn wait_line(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no {marker:?} line; stdout:\n{}\nstderr:\n{}",
                    self.stdout.lock().unwrap(),
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    pub fn stderr(&self) -> String {
        strip_ansi(&self.stderr.lock().unwrap())
    }

    /// Writes `line` and a newline to its stdin (see [`spawn_piped`](Proc::spawn_piped)).
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("spawned with spawn_piped");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).unwrap();
    }

    pub fn stdout(&self) -> String {
        strip_ansi(&self.stdout.lock().unwrap())
    }

    /// The exit status within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Base colours its iocsh output; compare text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the Python `script` (with `.venv`'s interpreter) with `args` in `env`; its last
/// stdout line, a JSON document. Fails the test if the script fails.
pub fn run_python(script: &str, args: &[String], env: &[(&str, String)]) -> serde_json::Value {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

/// EPICS base's own IOC (tests/peers/base_iocsh.py) on `dir`'s st.cmd in `env`, once
/// its script ran; with `shell`, its stdin is a pipe to its iocsh ([`Proc::send_line`]).
pub fn start_base_ioc(dir: &std::path::Path, env: &[(&str, String)], shell: bool) -> Proc {
    let mut command = Command::new(venv_python());
    command
        .current_dir(dir)
        .arg(root().join("tests/peers/base_iocsh.py"))
        .arg("st.cmd")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut base = if shell { Proc::spawn_piped(&mut command) } else { Proc::spawn(&mut command) };
    base.wait_line("SCRIPT-DONE");
    base
}

/// `pvloom ioc st.cmd` on `dir` in `env`, once it serves; with `shell`, its stdin is a
/// pipe to its iocsh.
pub fn start_pvloom_ioc(dir: &std::path::Path, env: &[(&str, String)], shell: bool) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pvloom"));
    command.current_dir(dir).args(["ioc", "st.cmd"]).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut ioc = if shell { Proc::spawn_piped(&mut command) } else { Proc::spawn(&mut command) };
    ioc.wait_line("served on port");
    ioc
}

/// `pvloom ioc st.cmd` and EPICS base's own IOC serving the same IOC directory, each on
/// its own loopback ports; both killed when dropped.
pub struct TwoIocs {
    pub dir: Scratch,
    pub ioc: Proc,
    pub base: Proc,
    pub env: Vec<(&'static str, String)>,
    pub base_env: Vec<(&'static str, String)>,
}

impl TwoIocs {
    /// Writes `files` (name, text; an `st.cmd` among them) into a scratch directory and
    /// starts both IOCs on its st.cmd, waiting until each serves.
    pub fn start(test: &str, files: &[(&str, &str)]) -> TwoIocs {
        TwoIocs::start_with(test, files, false)
    }

    /// As [`start`](TwoIocs::start), each IOC's stdin a pipe to its shell.
    pub fn start_with_shells(test: &str, files: &[(&str, &str)]) -> TwoIocs {
        TwoIocs::start_with(test, files, true)
    }

    fn start_with(test: &str, files: &[(&str, &str)], shell: bool) -> TwoIocs {
        let dir = Scratch::new(test);
        for (name, text) in files {
            dir.file(name, text);
        }
        let env = loopback_env(free_port(), free_udp_port());
        let base_env = loopback_env(free_port(), free_udp_port());
        let ioc = start_pvloom_ioc(&dir.0, &env, shell);
        let base = start_base_ioc(&dir.0, &base_env, shell);
        TwoIocs { dir, ioc, base, env, base_env }
    }

    /// Runs the Python `script` with `args` against each IOC: its JSON from pvloom's and
    /// from base's.
    pub fn each(&self, script: &str, args: &[String]) -> (serde_json::Value, serde_json::Value) {
        (run_python(script, args, &self.env), run_python(script, args, &self.base_env))
    }

    /// Fails the test listing every name whose entry differs between the two documents.
    pub fn assert_same(&self, ours: &serde_json::Value, theirs: &serde_json::Value, names: &[String]) {
        let differences: Vec<String> = names
            .iter()
            .filter(|n| ours[n.as_str()] != theirs[n.as_str()])
            .map(|n| format!("{n}: pvloom {} base {}", ours[n.as_str()], theirs[n.as_str()]))
            .collect();
        assert!(
            differences.is_empty(),
            "differences from base:\n{}\nbase stderr:\n{}",
            differences.join("\n"),
            self.base.stderr()
        );
    }
}

/// A pyepics script for [`TwoIocs::each`]: makes the puts `PUTS` lists (name, value; each
/// waited for), then reads every channel named after the prefix in argv as
/// `[value, severity, status, count]` (NaN as "NaN") and prints them as JSON.
pub const PUT_THEN_READ: &str = r#"
import json, sys, epics
P = sys.argv[1]
for name, value in PUTS:
    assert epics.caput(P + name, value, wait=True, timeout=5) == 1, name
out = {}
for name in sys.argv[2:]:
    pv = epics.PV(P + name, form='ctrl')
    assert pv.wait_for_connection(5), name
    try:
        v = pv.get(use_monitor=False, as_string=(pv.type.endswith('enum') or pv.type.endswith('char')), timeout=5)
        alarm = [pv.severity, pv.status]
    except epics.ca.ChannelAccessGetFailure as e:
        v, alarm = "get failed: " + str(e), [None, None]
    if hasattr(v, 'tolist'):
        v = v.tolist()
    if isinstance(v, float) and v != v:
        v = "NaN"  # JSON has no NaN
    out[name] = [v] + alarm + [pv.nelm]
print(json.dumps(out))
"#;
