//! What the CLI tests share.
#![allow(dead_code)]

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
