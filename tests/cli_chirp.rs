//! The chirp commands end to end: `pvloom chirp echo` answers `pvloom chirp send`, in
//! asynchronous and synchronous mode, and exits by itself after `--count`; `pvloom demo`
//! times requests to its chirp echo. Every process started is killed by PID.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PVLOOM: &str = env!("CARGO_BIN_EXE_pvloom");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port no one listens on, and the sockets that keep it so while they live: the local
/// end of a connection holds the port (no `bind` to port 0 hands it out), and with no
/// listener a connect to it is refused. A port from [`free_port`] could be taken by a
/// parallel test's listener between two sends.
fn port_nobody_listens_on() -> ((TcpStream, TcpStream), u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (remote, _) = listener.accept().unwrap();
    let port = local.local_addr().unwrap().port();
    ((local, remote), port)
}

/// A child process killed (by its PID) and reaped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn echo_and_send(mode: &str, count: u64) {
    let port = free_port();
    let child = Command::new(PVLOOM)
        .args(["chirp", "echo", "--port", &port.to_string(), mode, "--count", &count.to_string(), "--seconds", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("pvloom chirp echo");
    let mut echo = Process(child);
    let mut stdout = BufReader::new(echo.0.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    assert!(banner.starts_with(&format!("chirp echo on 0.0.0.0:{port}")), "{banner}");
    let mut args =
        vec!["chirp".to_owned(), "send".into(), format!("127.0.0.1:{port}"), "--count".into(), count.to_string()];
    args.extend(["--size".into(), "100".into()]);
    if mode == "--sync" {
        args.push("--sync".into());
    }
    let out = Command::new(PVLOOM).args(&args).output().expect("pvloom chirp send");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("sent {count} of {count} messages of 100 bytes")), "{text}");
    assert!(text.contains(&format!("\n{count} echoed in ")), "{text}");
    assert!(text.contains("msg/s") && text.contains("round trips/s"), "{text}");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = echo.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "the echo did not exit after --count");
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest: Vec<String> = stdout.lines().map_while(Result::ok).collect();
    assert!(status.success());
    assert!(
        rest.last().is_some_and(|l| l.starts_with(&format!("echoed {count} messages")) && l.ends_with(" 0 failed")),
        "{rest:?}"
    );
}

#[test]
fn echo_answers_send_async() {
    echo_and_send("--async", 5_000);
}

#[test]
fn echo_answers_send_sync() {
    echo_and_send("--sync", 300);
}

#[test]
fn send_to_nobody_fails() {
    let (_held, port) = port_nobody_listens_on();
    let out = Command::new(PVLOOM)
        .args(["chirp", "send", &format!("127.0.0.1:{port}"), "--count", "2", "--wait", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 sends failed"), "{out:?}");
}

#[test]
fn the_demo_times_its_chirp_echo() {
    let out = Command::new(PVLOOM).args(["demo", "--seconds", "1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("chirp echo node on 127.0.0.1:"), "{text}");
    assert!(
        text.contains("chirp: 20 of 20 requests answered") && text.contains("chirp: 100 of 100 requests answered"),
        "{text}"
    );
}
