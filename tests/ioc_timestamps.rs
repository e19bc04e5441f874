//! Time stamps as `TSE` and `TSEL` give them (`recGblGetTimeStamp`), served by
//! `pvloom ioc` and by EPICS base's own IOC (tests/peers/base_iocsh.py) from the same
//! database: after the same processing, each record's time stamp must relate the same way
//! on both — the processing time, the source record's time, or untouched (the EPICS
//! epoch: a soft IOC has no event time provider) — with the same severity and status,
//! and `TSE`/`TSEL` must read back the same.

mod support;

use support::TwoIocs;

const DB: &str = r#"
record(ao, "$(P)SRC") { field(VAL, "1") }
record(ao, "$(P)EVENT") { field(VAL, "-2") }
record(ao, "$(P)ZERO") { field(VAL, "0") }
record(ai, "$(P)NOW") { field(INP, "$(P)SRC") }
record(ai, "$(P)BEST") { field(INP, "$(P)SRC") field(TSE, "-1") }
record(ai, "$(P)EVENT5") { field(INP, "$(P)SRC") field(TSE, "5") }
record(ai, "$(P)BAD") { field(INP, "$(P)SRC") field(TSE, "-3") }
record(ai, "$(P)DEVICE") { field(INP, "$(P)SRC") field(TSE, "-2") }
record(ai, "$(P)DEVICEC") { field(INP, "3") field(TSE, "-2") }
record(longin, "$(P)DEVLI") { field(INP, "$(P)SRC") field(TSE, "-2") }
record(stringin, "$(P)DEVSI") { field(INP, "$(P)SRC") field(TSE, "-2") }
record(calc, "$(P)CALCDEV") { field(CALC, "1") field(TSE, "-2") }
record(ao, "$(P)AODEV") { field(VAL, "0") field(TSE, "-2") }
record(ai, "$(P)TSELTIME") { field(INP, "$(P)SRC") field(TSEL, "$(P)SRC.TIME") }
record(calc, "$(P)CALCTIME") { field(CALC, "2") field(TSEL, "$(P)SRC.TIME") }
record(ai, "$(P)TSELVAL") { field(INP, "$(P)SRC") field(TSEL, "$(P)EVENT") }
record(ai, "$(P)TSELZERO") { field(INP, "$(P)SRC") field(TSE, "5") field(TSEL, "$(P)ZERO") }
record(ai, "$(P)TSELNOTIME") { field(INP, "$(P)SRC") field(TSEL, "$(P)NOPE.TIME") }
record(ai, "$(P)TSELNO") { field(INP, "$(P)SRC") field(TSEL, "$(P)NOPE") }
"#;

/// Processes `SRC`, waits, processes every other record; prints for each its time
/// stamp's relation, severity, status, and the `TSE`/`TSEL` read back.
const SCRIPT: &str = r#"
import json, sys, time, epics
P = sys.argv[1]
EPICS_EPOCH = 631152000.0
def read(name):
    pv = epics.PV(P + name, form='time')
    assert pv.wait_for_connection(5), name
    pv.get(use_monitor=False, timeout=5)
    return pv.timestamp, pv.severity, pv.status
assert epics.caput(P + "SRC.PROC", 1, wait=True, timeout=5) == 1
source = read("SRC")[0]
time.sleep(0.5)
began = time.time()
out = {}
for name in sys.argv[2:]:
    assert epics.caput(P + name + ".PROC", 1, wait=True, timeout=5) == 1
for name in sys.argv[2:]:
    stamp, severity, status = read(name)
    if stamp == EPICS_EPOCH:
        relation = "epoch"
    elif stamp == source:
        relation = "source"
    elif began - 0.05 <= stamp <= time.time() + 0.05:
        relation = "now"
    else:
        relation = "other %r" % stamp
    tse = epics.caget(P + name + ".TSE", use_monitor=False, timeout=5)
    tsel = epics.caget(P + name + ".TSEL", use_monitor=False, timeout=5)
    out[name] = [relation, severity, status, tse, tsel.replace(P, "")]
print(json.dumps(out))
"#;

const NAMES: &[&str] = &[
    "NOW",
    "BEST",
    "EVENT5",
    "BAD",
    "DEVICE",
    "DEVICEC",
    "DEVLI",
    "DEVSI",
    "CALCDEV",
    "AODEV",
    "TSELTIME",
    "CALCTIME",
    "TSELVAL",
    "TSELZERO",
    "TSELNOTIME",
    "TSELNO",
];

#[test]
fn tse_and_tsel_stamp_records_as_epics_base_does() {
    let iocs =
        TwoIocs::start("timestamps", &[("ts.db", DB), ("st.cmd", "dbLoadRecords(\"ts.db\", \"P=TS:\")\niocInit\n")]);
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let args: Vec<String> = std::iter::once("TS:".to_owned()).chain(names.iter().cloned()).collect();
    let (ours, theirs) = iocs.each(SCRIPT, &args);
    iocs.assert_same(&ours, &theirs, &names);
    // The comparison means something only if the cases differ from each other.
    assert_eq!(ours["NOW"][0], "now");
    assert_eq!(ours["BEST"][0], "epoch");
    assert_eq!(ours["DEVICE"][0], "source");
    assert_eq!(ours["TSELTIME"][0], "source");
    assert_eq!(ours["TSELVAL"][3], -2, "TSE read through TSEL");
}
