//! Shared by the integration tests: the Python with libchirp, child processes killed by
//! PID, free ports, certificates made on the spot, a manual clock that wakes the runtime.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::dh::Dh;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};
use pvloom_core::{ManualClock, Runtime};

fn has_libchirp(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import libchirp.pool"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The interpreter with libchirp: `PVLOOM_CHIRP_PYTHON`, else the workspace's `.venv`.
/// Without it the test fails with the way to install it.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("PVLOOM_CHIRP_PYTHON") {
        let path = PathBuf::from(path);
        assert!(has_libchirp(&path), "PVLOOM_CHIRP_PYTHON={} cannot import libchirp.pool", path.display());
        return path;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        has_libchirp(&venv),
        "no Python with libchirp: run ./test.sh, or CFLAGS='-DFIPS_mode_set(x)=((void)0)' .venv/bin/pip install \
         libchirp==1.2.1b3 (needs libuv1-dev libffi-dev libssl-dev), or set PVLOOM_CHIRP_PYTHON"
    );
    venv
}

/// A child process killed (by its PID) and reaped when dropped.
pub struct Process(pub Child);

impl Process {
    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// Read lines from `out` until one starts with `prefix`; the rest of that line.
pub fn wait_line(out: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended before saying {prefix:?}");
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
}

/// A fresh directory under the system's temporary one, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pvloom-chirp-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// libchirp's TLS files: CERT_CHAIN_PEM (leaf certificate, CA certificate, leaf key)
/// and DH_PARAMS_PEM.
pub struct Certs {
    pub chain: PathBuf,
    pub dh: PathBuf,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn certificate(subject: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", subject).unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    builder.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
    builder.set_pubkey(key).unwrap();
    match issuer {
        None => {
            builder.set_issuer_name(&name).unwrap();
            builder.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
            builder.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap()).unwrap();
            builder.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            builder.set_issuer_name(ca.subject_name()).unwrap();
            builder.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
            builder.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    builder.build()
}

/// A CA and one node certificate signed by it, written as libchirp wants them.
pub fn make_certs(dir: &Path, name: &str) -> Certs {
    let ca_key = key();
    let ca = certificate(&format!("{name} test CA"), &ca_key, None);
    let node_key = key();
    let node = certificate("chirp node", &node_key, Some((&ca, &ca_key)));
    let mut chain = node.to_pem().unwrap();
    chain.extend(ca.to_pem().unwrap());
    chain.extend(node_key.private_key_to_pem_pkcs8().unwrap());
    let chain_path = dir.join(format!("{name}-chain.pem"));
    std::fs::write(&chain_path, chain).unwrap();
    let dh_path = dir.join(format!("{name}-dh.pem"));
    std::fs::write(&dh_path, Dh::get_2048_256().unwrap().params_to_pem().unwrap()).unwrap();
    Certs { chain: chain_path, dh: dh_path }
}

/// A runtime on a manual clock, and a way to move it: timers fire only when the
/// clock moved and the I/O threads woke.
pub struct VirtualTime {
    pub clock: ManualClock,
    pub runtime: Runtime,
    threads: usize,
}

impl VirtualTime {
    pub fn new(io_threads: usize) -> Self {
        let clock = ManualClock::new();
        let runtime = Runtime::builder()
            .io_threads(io_threads)
            .delivery(pvloom_core::Delivery::ordered(2))
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        VirtualTime { clock, runtime, threads: io_threads }
    }

    /// Advance by `by` in `steps` equal steps, waking every I/O thread after each (and
    /// giving real time for sockets to move between them).
    pub fn advance(&self, by: Duration, steps: u32) {
        for _ in 0..steps {
            self.clock.advance(by / steps);
            for thread in 0..self.threads {
                let (tx, rx) = std::sync::mpsc::channel();
                let _ = self.runtime.handle().run_on(thread, move |_| {
                    let _ = tx.send(());
                });
                let _ = rx.recv_timeout(Duration::from_secs(5));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
