//! Channel filters and long strings as EPICS base serves them: the same database under
//! `pvloom ioc` and under base's own IOC (tests/peers/base_iocsh.py, on epicscorelibs),
//! the same pyepics script against each — reads through `arr` (JSON, bare keys and the
//! `[s:i:e]` shorthand), `ts` and `dbnd`, monitors through `dbnd` (abs, rel), `FIELD$`
//! reads and writes of string and link fields, and the names base refuses.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Scratch, free_port, free_udp_port, root, venv_python};

const DB: &str = r#"
record(waveform, "F:WF") { field(FTVL, "DOUBLE") field(NELM, "10") }
record(ao, "F:AO") { field(VAL, "1.0") field(EGU, "mm") field(DESC, "a setpoint") }
record(stringout, "F:SO") { field(VAL, "hello") }
record(calc, "F:C") { field(INPA, "F:AO CP") field(CALC, "A*2") }
"#;

/// Names read once each (value, count, native type); `null` where base does not connect.
const READS: &[&str] = &[
    "F:WF",
    r#"F:WF.{"arr":{"s":2,"e":5}}"#,
    "F:WF.{arr:{s:2,e:5}}",
    r#"F:WF.VAL{"arr":{"s":1,"e":-2,"i":3}}"#,
    "F:WF.[2:5]",
    "F:WF.VAL[1:3:9]",
    "F:WF.[4]",
    "F:WF.[-2:]",
    "F:WF.[:3]",
    r#"F:WF.{"arr":{"s":-3}}"#,
    r#"F:WF.{"arr":{"s":8,"e":2}}"#,
    r#"F:WF.{"arr":{"s":20}}"#,
    r#"F:AO.{"arr":{"s":1}}"#,
    r#"F:AO.{"dbnd":{"abs":0.5}}"#,
    "F:SO.VAL$",
    "F:SO.$",
    "F:SO.NAME$",
    "F:AO.EGU$",
    "F:AO.DESC$",
    "F:C.INPA$",
    "F:AO$",
    "F:WF.VAL$",
    "F:AO.VAL$",
    r#"F:AO.{"bogus":{}}"#,
    r#"F:AO.{"arr":{"s":2"#,
    r#"F:WF{"arr":{"s":2}}"#,
];

const SCRIPT: &str = r#"
import json, sys, time, epics
reads, out = json.loads(sys.argv[1]), {}
epics.caput("F:WF", [float(i) for i in range(10)], wait=True)
# All searched at once, one deadline for all: a name base refuses costs no more than the
# wait, and a loaded machine gets the whole of it for the names that do connect.
pvs = {name: epics.PV(name, auto_monitor=False) for name in reads}
deadline = time.time() + 5
while not all(pv.connected for pv in pvs.values()) and time.time() < deadline:
    time.sleep(0.05)
for name, pv in pvs.items():
    if not pv.connected:
        out[name] = None
        continue
    v = pv.get(use_monitor=False, timeout=5)
    out[name] = [v.tolist() if hasattr(v, "tolist") else v, pv.nelm, pv.type]

def monitored(name, puts):
    epics.caput("F:AO", 1.0, wait=True)
    got = []
    pv = epics.PV(name, callback=lambda value=None, **k: got.append(value))
    assert pv.wait_for_connection(5), name
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.01)
    for v in puts:
        epics.caput("F:AO", v, wait=True)
        time.sleep(0.2)  # apart enough that no update coalesces with the next (pvloom keeps the newest)
    time.sleep(0.3)
    pv.clear_callbacks(); pv.disconnect()
    return got

out["mon abs"] = monitored('F:AO.{"dbnd":{"abs":0.5}}', [1.2, 1.4, 1.6, 1.7, 2.2, 2.0, 1.5])
out["mon rel"] = monitored('F:AO.{"dbnd":{"rel":10}}', [1.05, 1.2, 1.25, 1.4, 2.0, 2.1, 2.3])
out["mon d"] = monitored('F:AO.{dbnd:{d:1}}', [1.2, 1.6, 2.7, 3.0])
out["mon arr"] = monitored('F:AO.[0]', [4.0])

# ts: the time of the read, not the record's (F:SO never processed: the EPICS epoch).
pv = epics.PV('F:SO.{"ts":{}}', form="time", auto_monitor=False)
pv.wait_for_connection(5)
pv.get(use_monitor=False)
out["ts recent"] = abs(pv.timestamp - time.time()) < 5
plain = epics.PV("F:SO", form="time", auto_monitor=False)
plain.wait_for_connection(5)
plain.get(use_monitor=False)
out["plain ts"] = plain.timestamp

# FIELD$ writes: chars up to the NUL, truncated to the field.
long_so = epics.PV("F:SO.VAL$"); long_so.wait_for_connection(5)
long_so.put(b"abc", wait=True); out["so after abc"] = epics.caget("F:SO")
long_so.put("x" * 60, wait=True); out["so after 60"] = epics.caget("F:SO")
epics.caput("F:C.INPA$", b"F:AO.EGU NPP", wait=True); out["inpa"] = epics.caget("F:C.INPA")
# A put through arr writes the whole field.
epics.caput("F:WF.[2:5]", [10.0, 11.0], wait=True); out["wf after arr put"] = epics.caget("F:WF").tolist()
print(json.dumps(out))
"#;

/// A process killed (by its PID, through `Child`) when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Proc { child, lines }
    }

    fn wait_line(&self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(marker) => return,
                Ok(_) => {}
                Err(_) => panic!("no {marker:?} line"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_script(env: &[(&str, String)]) -> serde_json::Value {
    let reads = serde_json::to_string(READS).unwrap();
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(reads)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

/// A client environment pointing at one IOC.
type CaEnv = Vec<(&'static str, String)>;

/// `pvloom ioc st.cmd` and base's IOC on the same directory, and an environment for each.
fn serve_both(dir: &Path) -> (Proc, Proc, CaEnv, CaEnv) {
    let (env, base_env) =
        (support::loopback_env(free_port(), free_udp_port()), support::loopback_env(free_port(), free_udp_port()));
    let ours = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_pvloom"))
            .current_dir(dir)
            .args(["ioc", "st.cmd"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    ours.wait_line("served on port");
    let base = Proc::spawn(
        Command::new(venv_python())
            .current_dir(dir)
            .arg(root().join("tests/peers/base_iocsh.py"))
            .arg("st.cmd")
            .envs(base_env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    base.wait_line("SCRIPT-DONE");
    (ours, base, env, base_env)
}

#[test]
fn filters_and_long_strings_serve_what_epics_base_serves() {
    let dir = Scratch::new("filters");
    dir.file("f.db", DB);
    dir.file("st.cmd", "dbLoadRecords(\"f.db\")\niocInit\n");
    let (_ours, _base, env, base_env) = serve_both(&dir.0);
    let (got, want) = (run_script(&env), run_script(&base_env));
    for (key, theirs) in want.as_object().unwrap() {
        assert_eq!(&got[key], theirs, "{key}: pvloom {} vs base {}", got[key], theirs);
    }
    // And what that is, spelled out for the main cases.
    assert_eq!(got[r#"F:WF.{"arr":{"s":2,"e":5}}"#], serde_json::json!([[2.0, 3.0, 4.0, 5.0], 4, "time_double"]));
    assert_eq!(got["F:WF.VAL[1:3:9]"][0], serde_json::json!([1.0, 4.0, 7.0]));
    assert_eq!(got["F:SO.VAL$"], serde_json::json!([[104, 101, 108, 108, 111, 0], 40, "time_char"]));
    let link: Vec<u8> = serde_json::from_value(got["F:C.INPA$"][0].clone()).unwrap();
    assert_eq!((link.as_slice(), &got["F:C.INPA$"][1]), (&b"F:AO CP NMS\0"[..], &serde_json::json!(1024)));
    assert_eq!(got["inpa"], "F:AO.EGU NPP NMS");
    assert!(got["F:AO$"].is_null() && got[r#"F:AO.{"bogus":{}}"#].is_null());
    assert_eq!(got["mon abs"], serde_json::json!([1.0, 1.6, 2.2, 1.5]));
    assert_eq!(got["ts recent"], true);
    assert_eq!(got["so after 60"].as_str().map(str::len), Some(39));
    assert_eq!(got["wf after arr put"], serde_json::json!([10.0, 11.0]));
}
