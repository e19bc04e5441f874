//! Channel filters and long strings as EPICS base serves them: the same database under
//! `pvloom ioc` and under base's own IOC (tests/peers/base_iocsh.py, on epicscorelibs),
//! the same pyepics script against each — reads through `arr` (JSON, bare keys and the
//! `[s:i:e]` shorthand), `ts` and `dbnd`, monitors through `dbnd` (abs, rel), `FIELD$`
//! reads and writes of string and link fields, and the names base refuses.

mod support;

use support::TwoIocs;

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
# Read back without pyepics' cached monitor value: the put went through another
# channel, and the monitor's update may still be on its way.
def read(name):
    return epics.caget(name, use_monitor=False)
long_so.put(b"abc", wait=True); out["so after abc"] = read("F:SO")
long_so.put("x" * 60, wait=True); out["so after 60"] = read("F:SO")
epics.caput("F:C.INPA$", b"F:AO.EGU NPP", wait=True); out["inpa"] = read("F:C.INPA")
# A put through arr writes the whole field.
epics.caput("F:WF.[2:5]", [10.0, 11.0], wait=True); out["wf after arr put"] = read("F:WF").tolist()
print(json.dumps(out))
"#;

fn run_script(env: &[(&str, String)]) -> serde_json::Value {
    support::run_python(SCRIPT, &[serde_json::to_string(READS).unwrap()], env)
}

#[test]
fn filters_and_long_strings_serve_what_epics_base_serves() {
    let iocs = TwoIocs::start("filters", &[("f.db", DB), ("st.cmd", "dbLoadRecords(\"f.db\")\niocInit\n")]);
    let (got, want) = (run_script(&iocs.env), run_script(&iocs.base_env));
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
