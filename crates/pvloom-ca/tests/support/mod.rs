//! Real peers for interop tests: EPICS base's server (pythonSoftIOC) and caproto's,
//! started from the project's `.venv` on loopback with their own free ports, and
//! killed when the guard drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pvloom_ca::client::{ClientConfig, Context};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn venv_python() -> PathBuf {
    let python = workspace_root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run ./test.sh, which creates .venv with the real peers", python.display());
    python
}

/// A port free for both TCP and UDP on loopback (a CA server needs both).
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
}

/// A free UDP port (for the repeater).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// pythonSoftIOC: EPICS base's rsrv.
    SoftIoc,
    /// caproto's asyncio server.
    Caproto,
}

pub struct Peer {
    child: Child,
    pub kind: ServerKind,
    pub port: u16,
    pub repeater_port: u16,
    pub prefix: String,
}

impl Peer {
    pub fn start(kind: ServerKind, prefix: &str) -> Peer {
        Self::start_on(kind, prefix, free_port(), free_udp_port())
    }

    pub fn start_on(kind: ServerKind, prefix: &str, port: u16, repeater_port: u16) -> Peer {
        let script = match kind {
            ServerKind::SoftIoc => "softioc_ioc.py",
            ServerKind::Caproto => "caproto_ioc.py",
        };
        let mut child = Command::new(venv_python())
            .arg(workspace_root().join("tests/peers").join(script))
            .arg(prefix)
            .envs(server_env(port, repeater_port))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the peer server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("READY") {
                    let _ = tx.send(());
                }
            }
        });
        let mut peer = Peer { child, kind, port, repeater_port, prefix: prefix.to_owned() };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            peer.kill();
            panic!("{kind:?} server did not start");
        }
        // caproto prints READY just before binding; wait for the TCP port.
        for _ in 0..200 {
            if std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return peer;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        peer.kill();
        panic!("{kind:?} server is not listening on {port}");
    }

    pub fn pv(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client configured to reach only this server.
    pub fn client(&self) -> Context {
        self.client_with(1)
    }

    pub fn client_with(&self, max_workers: usize) -> Context {
        Context::builder()
            .config(client_config(self.port, self.repeater_port))
            .max_workers(max_workers)
            .build()
            .unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn server_env(port: u16, repeater_port: u16) -> Vec<(String, String)> {
    [
        ("EPICS_CA_SERVER_PORT", port.to_string()),
        ("EPICS_CAS_SERVER_PORT", port.to_string()),
        ("EPICS_CA_REPEATER_PORT", repeater_port.to_string()),
        ("EPICS_CAS_INTF_ADDR_LIST", "127.0.0.1".into()),
        ("EPICS_CAS_BEACON_ADDR_LIST", "127.0.0.1".into()),
        ("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO".into()),
        ("EPICS_CA_AUTO_ADDR_LIST", "NO".into()),
        ("EPICS_CA_ADDR_LIST", format!("127.0.0.1:{port}")),
        ("EPICS_CA_MAX_ARRAY_BYTES", "100000000".into()),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn client_config(port: u16, repeater_port: u16) -> ClientConfig {
    ClientConfig {
        addr_list: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)],
        auto_addr_list: false,
        server_port: port,
        repeater_port,
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

/// Resident memory of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
