//! Constant and JSON constant links as EPICS base 7 loads them (`{const: …}`, bare JSON
//! arrays, numbers; into scalar, string and array records, input and output records), served
//! by `pvloom ioc` and by EPICS base's own IOC (tests/peers/base_iocsh.py) from the same
//! database: pyepics must read the same values, severities, statuses and element counts.

mod support;

use std::process::Command;

use support::{Proc, Scratch, free_port, free_udp_port, root, venv_python};

const DB: &str = r#"
record(ai, "$(P)AI") { field(INP, {const: 2.5}) }
record(ai, "$(P)AIQ") { field(INP, "{const: -1e3}") }
record(ai, "$(P)AINUM") { field(INP, "7.25") }
record(ai, "$(P)AIARR") { field(INP, [6.5, 1]) }
record(ao, "$(P)AO") { field(DOL, {const: 1.25}) field(OMSL, "closed_loop") }
record(calc, "$(P)CALC") { field(INPA, {const: 4}) field(INPB, [3, 9]) field(INPC, {const: true}) field(CALC, "A+B+C") field(PINI, "YES") }
record(calc, "$(P)CALCNP") { field(INPA, {const: 4}) field(CALC, "A*2") }
record(stringin, "$(P)SI") { field(INP, {const: "from json"}) }
record(stringin, "$(P)SIARR") { field(INP, ["first", "second"]) }
record(lsi, "$(P)LSI") { field(SIZV, "40") field(INP, {const: "a long string constant"}) }
record(longin, "$(P)LI") { field(INP, {const: 42}) }
record(mbbi, "$(P)MBBI") { field(INP, {const: 2}) field(ZRST, "a") field(ONST, "b") field(TWST, "c") }
record(bi, "$(P)BI") { field(INP, "1") field(ZNAM, "off") field(ONAM, "on") }
record(waveform, "$(P)WF") { field(FTVL, "DOUBLE") field(NELM, "4") field(INP, [1, 2, 3]) }
record(waveform, "$(P)WFLONG") { field(INP, {const: [10, 20, 30, 40, 50, 60]}) field(NELM, "4") field(FTVL, "LONG") }
record(waveform, "$(P)WFSTR") { field(FTVL, "STRING") field(NELM, "3") field(INP, ["x", "y"]) }
record(aai, "$(P)AAI") { field(FTVL, "SHORT") field(NELM, "5") field(INP, {const: [7, 8]}) }
record(printf, "$(P)PF") { field(FMT, "%s-%d-%.1f") field(INP0, {const: "txt"}) field(INP1, {const: 5}) field(INP2, [2.5]) field(PINI, "YES") }
"#;

const SCRIPT: &str = r#"
import json, sys, epics
P = sys.argv[1]
assert epics.caput(P + "CALCNP.PROC", 1, wait=True, timeout=5) == 1
out = {}
for name in sys.argv[2:]:
    pv = epics.PV(P + name, form='ctrl')
    assert pv.wait_for_connection(5), name
    v = pv.get(use_monitor=False, as_string=(pv.type.endswith('enum')), timeout=5)
    if hasattr(v, 'tolist'):
        v = v.tolist()
    out[name] = [v, pv.severity, pv.status, pv.nelm]
print(json.dumps(out))
"#;

const NAMES: &[&str] = &[
    "AI",
    "AI.UDF",
    "AIQ",
    "AINUM",
    "AIARR",
    "AO",
    "CALC",
    "CALC.A",
    "CALC.B",
    "CALC.C",
    "CALCNP",
    "SI",
    "SIARR",
    "LSI",
    "LI",
    "MBBI",
    "BI",
    "WF",
    "WF.NORD",
    "WFLONG",
    "WFLONG.NORD",
    "WFSTR",
    "WFSTR.NORD",
    "AAI",
    "AAI.NORD",
    "PF",
];

fn read(env: &[(&str, String)]) -> serde_json::Value {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(SCRIPT)
        .arg("LNK:")
        .args(NAMES)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

#[test]
fn constant_and_json_constant_links_load_as_in_epics_base() {
    let dir = Scratch::new("links");
    std::fs::write(dir.0.join("links.db"), DB).unwrap();
    std::fs::write(dir.0.join("st.cmd"), "dbLoadRecords(\"links.db\", \"P=LNK:\")\niocInit\n").unwrap();
    let env = support::loopback_env(free_port(), free_udp_port());
    let base_env = support::loopback_env(free_port(), free_udp_port());
    let mut ioc = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_pvloom"))
            .current_dir(&dir.0)
            .args(["ioc", "st.cmd"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    ioc.wait_line("served on port");
    let mut base = Proc::spawn(
        Command::new(venv_python())
            .current_dir(&dir.0)
            .arg(root().join("tests/peers/base_iocsh.py"))
            .arg("st.cmd")
            .envs(base_env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    base.wait_line("SCRIPT-DONE");

    let ours = read(&env);
    let theirs = read(&base_env);
    let differences: Vec<String> = NAMES
        .iter()
        .filter(|n| ours[**n] != theirs[**n])
        .map(|n| format!("{n}: pvloom {} base {}", ours[*n], theirs[*n]))
        .collect();
    assert!(
        differences.is_empty(),
        "differences from base:\n{}\nbase stderr:\n{}",
        differences.join("\n"),
        base.stderr()
    );
    // The comparison means something only if the constants were loaded.
    assert_eq!(ours["AI"][0], serde_json::json!(2.5));
    assert_eq!(ours["CALC"][0], serde_json::json!(8.0), "4 + 3 + true");
    assert_eq!(ours["SI"][0], serde_json::json!("from json"));
    assert_eq!(ours["WF"][0], serde_json::json!([1.0, 2.0, 3.0]));
    assert_eq!(ours["PF"][0], serde_json::json!("txt-5-2.5"));
    drop(ioc);
}
