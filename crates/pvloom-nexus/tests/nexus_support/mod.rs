//! Shared helpers of the NeXus writer tests: synthetic BLISS-like scans, temp dirs, and the
//! Python (h5py, nexusformat) checks.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pvloom_nexus::model::{Dtype, Encoding, Points, ScanEvent, ScanIdentity, ScanMeta, ScanState, StreamDesc};
use pvloom_nexus::nexus::{ScanWriter, WriterConfig};
use serde_json::{Value, json};

/// The Python with h5py and nexusformat: `PVLOOM_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("PVLOOM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    assert!(
        p.exists(),
        "no Python for the NeXus checks at {}: set PVLOOM_PYTHON to a Python with h5py and nexusformat \
         (e.g. PVLOOM_PYTHON=/tmp/venv-nexus/bin/python) or create <workspace>/.venv",
        p.display()
    );
    p
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("pvloom-nexus-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a Python script with a bound; returns (success, stdout, stderr).
pub fn run_py(name: &str, args: &[&str], limit: Duration) -> (bool, String, String) {
    let mut child = Command::new(python())
        .arg(script(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (o, e) = (t_out.join().unwrap(), t_err.join().unwrap());
    assert!(status.is_some(), "{name} timed out after {limit:?}\nstdout:\n{o}\nstderr:\n{e}");
    (status.unwrap().success(), o, e)
}

/// Checks `file` against `expect` (see check_nexus_file.py); panics with the failures.
pub fn check_file(dir: &Path, file: &Path, expect: &Value) -> usize {
    let e = dir.join(format!("expect-{}.json", std::process::id()));
    std::fs::write(&e, serde_json::to_vec_pretty(expect).unwrap()).unwrap();
    let (ok, out, err) =
        run_py("check_nexus_file.py", &[file.to_str().unwrap(), e.to_str().unwrap()], Duration::from_secs(20));
    let line = out
        .lines()
        .find(|l| l.starts_with("checks="))
        .unwrap_or_else(|| panic!("no summary from check_nexus_file.py\n{out}\n{err}"));
    assert!(ok && line.ends_with("failures=0"), "{file:?} does not match:\n{out}\n{err}");
    let checks: usize = line["checks=".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(checks > 0, "no checks ran");
    checks
}

/// Validates against the NeXus base classes and returns the report. Panics on any error
/// except the one BLISS's layout has by design: entry names `N.k` break NeXus's naming
/// rule (`^[a-zA-Z_][a-zA-Z0-9_]*$`), and nexusformat reports each as `"N.k" is an invalid
/// name`; those are allowed for the entries named in `entries`, and must be all there is.
pub fn validate(file: &Path, entries: &[&str]) -> String {
    let (_ok, out, err) = run_py("check_nexus_validate.py", &[file.to_str().unwrap()], Duration::from_secs(25));
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with("warnings="))
        .unwrap_or_else(|| panic!("no summary from the validator\n{out}\n{err}"));
    let errors: usize = line
        .rsplit("errors=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("validator failed:\n{out}\n{err}"));
    let error_lines: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("ERROR|")).map(str::trim).collect();
    assert_eq!(error_lines.len(), errors, "error count and error lines disagree:\n{out}");
    let unexpected: Vec<&&str> =
        error_lines.iter().filter(|l| !entries.iter().any(|e| **l == format!("\"{e}\" is an invalid name"))).collect();
    assert!(unexpected.is_empty(), "nexusformat reports errors in {file:?}: {unexpected:?}\n{out}\n{err}");
    out
}

pub fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn stream(name: &str, dtype: &str, shape: &[i64], unit: Option<&str>) -> StreamDesc {
    let mut info = serde_json::Map::new();
    if let Some(u) = unit {
        info.insert("unit".into(), json!(u));
    }
    StreamDesc {
        name: Arc::from(name),
        encoding: Encoding::Numeric { dtype: Dtype::parse(dtype).unwrap(), shape: shape.to_vec() },
        info,
    }
}

pub fn json_stream(name: &str) -> StreamDesc {
    StreamDesc { name: Arc::from(name), encoding: Encoding::Json, info: serde_json::Map::new() }
}

/// The info document of a BLISS `ascan sy 0 1 n-1 0.1`.
pub fn ascan_info(file: &Path, number: u64, npoints: usize) -> Value {
    json!({
        "title": format!("ascan sy 0 1 {} 0.1", npoints - 1),
        "type": "ascan",
        "npoints": npoints,
        "count_time": 0.1,
        "filename": file.to_str().unwrap(),
        "scan_nb": number,
        "start_time": "2026-12-03T04:50:00.123456+00:00",
        "positioners": {
            "positioners_start": {"sy": 0.0, "sz": 1.5},
            "positioners_end": {"sy": 1.0, "sz": 1.5},
            "positioners_units": {"sy": "mm", "sz": "mm"}
        },
        "acquisition_chain": {"axis": {"master": {"scalars": ["axis:sy"]}, "scalars": ["timer:elapsed_time", "diode:diode"]}},
        "plots": [{"kind": "curve-plot", "name": "plot", "items": [{"kind": "curve", "x": "axis:sy", "y": "diode:diode"}]}]
    })
}

pub fn ascan_meta(file: &Path, number: u64, npoints: usize, extra: Vec<StreamDesc>) -> ScanMeta {
    let mut streams = vec![
        stream("axis:sy", "<f8", &[], Some("mm")),
        stream("timer:elapsed_time", "<f8", &[], Some("s")),
        stream("diode:diode", "<f8", &[], None),
    ];
    streams.extend(extra);
    ScanMeta {
        key: format!("esrf:scan:test{number}"),
        identity: ScanIdentity { name: "ascan".into(), number, session: "demo".into(), ..Default::default() },
        info: ascan_info(file, number, npoints),
        streams,
    }
}

pub fn sy(i: usize, n: usize) -> f64 {
    i as f64 / (n.max(2) - 1) as f64
}

pub fn elapsed(i: usize) -> f64 {
    0.1 * i as f64
}

pub fn diode(i: usize) -> f64 {
    100.0 * (i as f64).sin()
}

/// The data events of points `from..to` of the three ascan scalars.
pub fn ascan_points(from: usize, to: usize, n: usize) -> Vec<ScanEvent> {
    let mk = |stream: usize, f: &dyn Fn(usize) -> f64| ScanEvent::Data {
        stream,
        first_index: from as u64,
        points: Points::Fixed { count: to - from, bytes: f64_bytes(&(from..to).map(f).collect::<Vec<_>>()) },
    };
    vec![mk(0, &|i| sy(i, n)), mk(1, &elapsed), mk(2, &diode)]
}

pub fn writer(dir: &Path) -> ScanWriter {
    ScanWriter::new(WriterConfig {
        flush_interval: Duration::from_millis(100),
        swmr: true,
        default_dir: dir.to_owned(),
        creator: "pvloom-nexus tests".into(),
    })
}

/// The expectations of a finished ascan entry `entry` of `n` points.
pub fn ascan_expect(entry: &str, n: usize) -> Value {
    let sy: Vec<f64> = (0..n).map(|i| sy(i, n)).collect();
    let el: Vec<f64> = (0..n).map(elapsed).collect();
    let di: Vec<f64> = (0..n).map(diode).collect();
    let e = format!("/{entry}");
    json!({
        "datasets": {
            format!("{e}/title"): {"strings": format!("ascan sy 0 1 {} 0.1", n - 1)},
            format!("{e}/start_time"): {"strings": "2026-12-03T04:50:00.123456+00:00"},
            format!("{e}/instrument/sy/value"): {"dtype": "<f8", "shape": [n], "values": sy},
            format!("{e}/instrument/timer/elapsed_time"): {"dtype": "<f8", "shape": [n], "values": el},
            format!("{e}/instrument/diode/data"): {"dtype": "<f8", "shape": [n], "values": di},
            format!("{e}/measurement/sy"): {"shape": [n], "values": sy},
            format!("{e}/measurement/diode"): {"shape": [n], "values": di},
            format!("{e}/plot/diode"): {"shape": [n]},
            format!("{e}/instrument/positioners_start/sy"): {"values": 0.0},
            format!("{e}/instrument/positioners_start/sz"): {"values": 1.5},
        },
        "attrs": {
            "/": {"NX_class": "NXroot", "creator": "pvloom-nexus tests", "HDF5_Version": "$version", "NeXus_version": "*", "file_name": "*", "file_time": "*", "default": "*"},
            e.clone(): {"NX_class": "NXentry", "default": "plot"},
            format!("{e}/instrument"): {"NX_class": "NXinstrument"},
            format!("{e}/instrument/sy"): {"NX_class": "NXpositioner"},
            format!("{e}/instrument/diode"): {"NX_class": "NXdetector"},
            format!("{e}/instrument/timer"): {"NX_class": "NXdetector"},
            format!("{e}/instrument/sy/value"): {"units": "mm"},
            format!("{e}/instrument/timer/elapsed_time"): {"units": "s"},
            format!("{e}/instrument/positioners_start"): {"NX_class": "NXcollection"},
            format!("{e}/instrument/positioners_start/sy"): {"units": "mm"},
            format!("{e}/measurement"): {"NX_class": "NXcollection"},
            format!("{e}/plot"): {"NX_class": "NXdata", "signal": "diode", "axes": ["sy"], "sy_indices": 0},
        },
        "links": {
            format!("{e}/measurement/sy"): format!("{e}/instrument/sy/value"),
            format!("{e}/measurement/elapsed_time"): format!("{e}/instrument/timer/elapsed_time"),
            format!("{e}/measurement/diode"): format!("{e}/instrument/diode/data"),
            format!("{e}/plot/diode"): format!("{e}/instrument/diode/data"),
            format!("{e}/plot/sy"): format!("{e}/instrument/sy/value"),
        }
    })
}

/// Merges expectation documents (objects merged key by key).
pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(ao), Value::Object(bo)) = (a.as_object_mut(), b) {
        for (k, v) in bo {
            match ao.get_mut(&k) {
                Some(existing) if existing.is_object() && v.is_object() => {
                    let old = existing.take();
                    *existing = merge(old, v);
                }
                _ => {
                    ao.insert(k, v);
                }
            }
        }
    }
    a
}

pub fn closed() -> ScanEvent {
    ScanEvent::State(ScanState::Closed)
}

/// A child process killed (SIGKILL, by its PID) when dropped, with its stdout lines on a
/// channel.
pub struct ChildGuard {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command) -> ChildGuard {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn child");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildGuard { child, lines: rx }
    }

    /// The next line satisfying `pred` within `limit` (earlier lines are returned through
    /// `seen`).
    pub fn wait_line(&self, limit: Duration, seen: &mut Vec<String>, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return Some(l),
                Ok(l) => seen.push(l),
                Err(_) => return None,
            }
        }
    }

    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// This test binary re-run with only `test` selected and `env` set: the child half of a
/// crash test.
pub fn self_child(test: &str, env: (&str, &str)) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]).env(env.0, env.1);
    cmd
}
