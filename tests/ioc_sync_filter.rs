//! The `sync` channel filter against EPICS base's own IOC: the same database, the same
//! named state changed through each IOC's shell on stdin (`dbStateSet`/`dbStateClear`)
//! between puts, and a pyepics client monitoring the record through every sync mode;
//! both IOCs must send the same updates, and those base's filter documents.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use support::{Proc, TwoIocs, venv_python};

const DB: &str = r#"record(ao, "$(P)X") { }
"#;

const ST_CMD: &str = "dbStateCreate(\"gate\")\ndbLoadRecords(\"sync.db\", \"P=SYN:\")\niocInit\n";

/// Monitors every channel named on its command line; on stdin, `put V` (a put to X,
/// returned once X's own monitor saw it and the filtered ones had time to follow) and
/// `dump` (every channel's updates as JSON).
const CLIENT: &str = r#"
import json, sys, time, epics
names = sys.argv[1:]
seen = {n: [] for n in names}
def on_update(pvname=None, value=None, **kw):
    seen[pvname].append(value)
pvs = [epics.PV(n, callback=on_update, auto_monitor=True) for n in names]
for pv in pvs:
    assert pv.wait_for_connection(5), pv.pvname
time.sleep(0.5)
print("ready", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[0] == "put":
        v = float(words[1])
        assert epics.caput(names[0], v, wait=True, timeout=5) == 1
        deadline = time.time() + 5
        while v not in seen[names[0]] and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        print("ok", flush=True)
    elif words[0] == "dump":
        print(json.dumps(seen), flush=True)
"#;

const MODES: &[&str] = &["while", "unless", "first", "last", "before", "after"];

fn channels() -> Vec<String> {
    let mut names = vec!["SYN:X".to_owned()];
    for (i, mode) in MODES.iter().enumerate() {
        // Both spellings base takes: {m:…, s:…} and the mode as the state's key.
        names.push(if i % 2 == 0 {
            format!("SYN:X.{{sync:{{m:\"{mode}\",s:\"gate\"}}}}")
        } else {
            format!("SYN:X.{{\"sync\":{{\"{mode}\":\"gate\"}}}}")
        });
    }
    names
}

/// Runs the steps against one IOC; returns each channel's updates.
fn run(ioc: &mut Proc, env: &[(&str, String)], base: bool) -> serde_json::Value {
    let names = channels();
    let mut client = Command::new(venv_python())
        .arg("-c")
        .arg(CLIENT)
        .args(&names)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_client = client.stdin.take().unwrap();
    let mut from_client = BufReader::new(client.stdout.take().unwrap());
    let mut reply = |want: &str| {
        let mut line = String::new();
        from_client.read_line(&mut line).unwrap();
        assert!(line.starts_with(want), "client said {line:?}, wanted {want:?}");
        line
    };
    reply("ready");
    let steps = [
        "put 1",
        "put 2",
        "dbStateSet gate",
        "put 3",
        "put 4",
        "dbStateClear gate",
        "put 5",
        "put 6",
        "dbStateSet gate",
        "put 7",
    ];
    for step in steps {
        if step.starts_with("put") {
            writeln!(to_client, "{step}").unwrap();
            to_client.flush().unwrap();
            reply("ok");
        } else {
            ioc.send_line(step);
            if base {
                ioc.wait_line(&format!("CMD-DONE {step}"));
            } else {
                ioc.send_line(&format!("echo CMD-DONE {step}"));
                ioc.wait_line(&format!("CMD-DONE {step}"));
            }
        }
    }
    writeln!(to_client, "dump").unwrap();
    to_client.flush().unwrap();
    let dump = reply("{");
    drop(to_client);
    let _ = client.kill();
    let _ = client.wait();
    serde_json::from_str(&dump).unwrap()
}

#[test]
fn sync_filter_modes_follow_named_states_as_in_epics_base() {
    let mut iocs = TwoIocs::start_with_shells("sync", &[("sync.db", DB), ("st.cmd", ST_CMD)]);
    let ours = run(&mut iocs.ioc, &iocs.env, false);
    let theirs = run(&mut iocs.base, &iocs.base_env, true);
    let names = channels();
    iocs.assert_same(&ours, &theirs, &names);
    // What base's filter documents, so the comparison is not of two empty lists.
    let expect = [
        ("while", serde_json::json!([3.0, 4.0, 7.0])),
        ("unless", serde_json::json!([0.0, 1.0, 2.0, 5.0, 6.0])),
        ("first", serde_json::json!([3.0, 7.0])),
        ("last", serde_json::json!([4.0])),
        ("before", serde_json::json!([2.0, 6.0])),
        ("after", serde_json::json!([5.0])),
    ];
    for ((mode, want), name) in expect.iter().zip(&names[1..]) {
        assert_eq!(&ours[name.as_str()], want, "{mode}");
    }
    // A state that was never created makes no channel, as in base.
    let out = Command::new(venv_python())
        .arg("-c")
        .arg("import epics,sys; pv=epics.PV('SYN:X.{sync:{m:\"while\",s:\"nosuch\"}}'); print(pv.wait_for_connection(1.5))")
        .envs(iocs.env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "False");
}
