//! Output and input links of the common record types, and the record types beyond
//! them (calcout, seq, fanout, dfanout, int64in/out,
//! lsi/lso, mbbiDirect/mbboDirect, aai/aao, subArray, sel, state, permissive, event, sub,
//! aSub, histogram, printf, compress) served
//! by `pvloom ioc` and by EPICS base's own IOC (tests/peers/base_iocsh.py) from the same
//! st.cmd and database: after the same puts and processing, pyepics must read the same
//! values, severities, statuses and element counts from both.

mod support;

use support::TwoIocs;

const DB: &str = r#"
record(ao, "$(P)SRC") { field(VAL, "2") field(PINI, "YES") }
record(ao, "$(P)DEST") { }
record(calcout, "$(P)CO") {
    field(INPA, "$(P)SRC") field(CALC, "A*3") field(OOPT, "On Change")
    field(DOPT, "Use OCAL") field(OCAL, "VAL+1") field(OUT, "$(P)DEST PP")
    field(HIGH, "5") field(HSV, "MINOR")
}
record(calcout, "$(P)CO0") { field(CALC, "A") field(OOPT, "Transition To Zero") field(OUT, "$(P)DEST0 PP") }
record(ao, "$(P)DEST0") { field(VAL, "-1") field(PINI, "YES") }
record(ao, "$(P)S0") { }
record(ao, "$(P)S1") { }
record(seq, "$(P)SEQ") { field(DOL0, "$(P)SRC") field(LNK0, "$(P)S0 PP") field(DO1, "7") field(LNK1, "$(P)S1") }
record(calc, "$(P)CNT0") { field(CALC, "VAL+1") }
record(calc, "$(P)CNT1") { field(CALC, "VAL+1") }
record(fanout, "$(P)FAN") { field(SELM, "Specified") field(SELN, "1") field(LNK0, "$(P)CNT0") field(LNK1, "$(P)CNT1") }
record(fanout, "$(P)FANBAD") { field(SELM, "Specified") field(SELN, "20") }
record(ao, "$(P)D1") { }
record(ao, "$(P)D2") { }
record(dfanout, "$(P)DF") { field(OUTA, "$(P)D1") field(OUTB, "$(P)D2 PP") field(HIHI, "4") field(HHSV, "MAJOR") }
record(int64in, "$(P)I64I") { field(HIGH, "100") field(HSV, "MINOR") }
record(int64out, "$(P)I64O") { field(OUT, "$(P)I64I PP") field(DRVH, "1000") field(DRVL, "-1000") }
record(lsi, "$(P)LSI") { field(SIZV, "64") }
record(lso, "$(P)LSO") { field(SIZV, "64") field(OUT, "$(P)LSI PP") }
record(mbbiDirect, "$(P)MBBID") { }
record(mbboDirect, "$(P)MBBOD") { field(OUT, "$(P)MBBID PP") }
record(aai, "$(P)AAI") { field(FTVL, "DOUBLE") field(NELM, "8") field(FLNK, "$(P)SUBA") }
record(aao, "$(P)AAO") { field(FTVL, "DOUBLE") field(NELM, "8") field(OUT, "$(P)AAI PP") }
record(subArray, "$(P)SUBA") { field(FTVL, "DOUBLE") field(INP, "$(P)AAI") field(MALM, "8") field(NELM, "3") field(INDX, "2") }
record(sel, "$(P)SEL") { field(SELM, "High Signal") field(INPA, "$(P)S0") field(INPB, "$(P)S1") }
record(sel, "$(P)SELN") { field(SELM, "Specified") field(NVL, "1") field(INPA, "$(P)S0") field(INPB, "$(P)S1") }
record(state, "$(P)STATE") { }
record(permissive, "$(P)PERM") { field(LABL, "door") }
record(event, "$(P)EV") { field(VAL, "tick") }
record(calc, "$(P)TICKS") { field(SCAN, "Event") field(EVNT, "tick") field(CALC, "VAL+1") }
record(sub, "$(P)SUB") { field(SNAM, "noSuchSubroutine") }
record(aSub, "$(P)ASUB") { field(SNAM, "noSuchSubroutine") }
record(histogram, "$(P)HIST") { field(NELM, "4") field(LLIM, "0") field(ULIM, "8") field(SVL, "$(P)SRC") }
record(ai, "$(P)AIN") { field(INP, "$(P)AOUT") }
record(ao, "$(P)AOUT") { field(OUT, "$(P)AIN PP") field(DRVH, "50") field(DRVL, "0") }
record(bo, "$(P)BOUT") { field(OUT, "$(P)BIN PP") field(ZNAM, "off") field(ONAM, "on") }
record(bi, "$(P)BIN") { field(ZNAM, "off") field(ONAM, "on") field(OSV, "MINOR") }
record(stringout, "$(P)SOUT") { field(OUT, "$(P)SIN PP") }
record(stringin, "$(P)SIN") { }
record(longout, "$(P)LOUT") { field(OMSL, "closed_loop") field(DOL, "$(P)I64I") field(OUT, "$(P)MBBIN PP") }
record(mbbi, "$(P)MBBIN") { field(ZRST, "zero") field(ONST, "one") field(TWST, "two") field(TWSV, "MAJOR") }
record(calc, "$(P)CPCALC") { field(INPA, "$(P)SRC CP") field(CALC, "A*10") }
record(ai, "$(P)AICONST") { field(INP, "3.5") field(PINI, "YES") }
record(compress, "$(P)RING") { field(ALG, "Circular Buffer") field(NSAM, "3") field(INP, "$(P)SRC") }
record(compress, "$(P)LIFO") { field(ALG, "Circular Buffer") field(BALG, "LIFO Buffer") field(NSAM, "3") field(INP, "$(P)SRC") }
record(compress, "$(P)MEAN") { field(ALG, "N to 1 Average") field(N, "2") field(NSAM, "4") field(INP, "$(P)SRC") }
record(compress, "$(P)HIGH") { field(ALG, "N to 1 High Value") field(N, "2") field(NSAM, "4") field(INP, "$(P)AAI") }
record(printf, "$(P)PF") {
    field(SIZV, "80") field(FMT, "%s:%5.2f|%-4d|%04x|%.3e|%g|%d") field(INP0, "$(P)STATE") field(INP1, "$(P)SRC")
    field(INP2, "$(P)I64I") field(INP3, "255") field(INP4, "$(P)S0") field(INP5, "0.0001")
}
"#;

/// Puts (each waiting for completion) in order, then every channel read.
const SCRIPT: &str = r#"
import json, sys, epics
P = sys.argv[1]
puts = [
    ("CO.PROC", 1), ("SRC", 4), ("CO.PROC", 1), ("CO0.A", 3), ("CO0.A", 0),
    ("SEQ.PROC", 1), ("FAN.PROC", 1), ("FAN.PROC", 1), ("FANBAD.PROC", 1), ("DF", 5),
    ("I64O", 123), ("I64O", 5000), ("LSO", "a longer string, 30 bytes"), ("MBBOD", 10), ("MBBOD.B0", 1),
    ("AAO", [1.5, 2, 3, 4, 5]), ("SEL.PROC", 1), ("SELN.PROC", 1), ("STATE", "running"),
    ("PERM", 1), ("PERM.WFLG", 1), ("EV.PROC", 1), ("EV.PROC", 1), ("SUB.PROC", 1), ("ASUB.PROC", 1),
    ("HIST.PROC", 1), ("HIST.SGNL", 6.5), ("HIST.PROC", 1), ("PF.PROC", 1), ("HIGH.PROC", 1),
    ("AOUT", 75), ("BOUT", 1), ("SOUT", "hello"), ("I64I", 2), ("LOUT.PROC", 1),
]
for v in (1, 6, 2, 7, 3):
    assert epics.caput(P + "SRC", v, wait=True, timeout=5) == 1, v
    for name in ("RING", "LIFO", "MEAN"):
        # No wait: base completes a put callback only when compress stores a sample
        # (recGblFwdLink), which N-to-1 does every N-th time; the read after it
        # on the same circuit is answered after the put is done.
        epics.caput(P + name + ".PROC", 1)
        epics.caget(P + name + ".NUSE", timeout=5)
for name, value in puts:
    assert epics.caput(P + name, value, wait=True, timeout=5) == 1, name
# Base processes a CP link's record from its CA link monitor, a moment later.
import time
time.sleep(0.5)
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
    "CO",
    "CO.OVAL",
    "CO.PVAL",
    "CO.A",
    "DEST",
    "CO0",
    "DEST0",
    "S0",
    "S1",
    "SEQ",
    "CNT0",
    "CNT1",
    "FAN",
    "FAN.SELN",
    "FANBAD",
    "DF",
    "D1",
    "D2",
    "I64I",
    "I64O",
    "LSI",
    "LSO",
    "LSO.LEN",
    "MBBOD",
    "MBBOD.B0",
    "MBBOD.B3",
    "MBBID",
    "MBBID.B1",
    "MBBID.B2",
    "AAO",
    "AAO.NORD",
    "AAI",
    "AAI.NORD",
    "SUBA",
    "SUBA.NORD",
    "SEL",
    "SEL.SELN",
    "SELN",
    "STATE",
    "PERM",
    "PERM.OFLG",
    "PERM.LABL",
    "EV",
    "TICKS",
    "SUB",
    "ASUB",
    "HIST",
    "HIST.WDTH",
    "PF",
    "PF.LEN",
    "RING",
    "RING.NUSE",
    "LIFO",
    "MEAN",
    "MEAN.NUSE",
    "MEAN.CVB",
    "HIGH",
    "AIN",
    "AOUT",
    "BIN",
    "SIN",
    "LOUT",
    "MBBIN",
    "AICONST",
    "CPCALC",
];

#[test]
fn new_record_types_behave_as_epics_base() {
    let iocs = TwoIocs::start(
        "records",
        &[("records.db", DB), ("st.cmd", "dbLoadRecords(\"records.db\", \"P=REC:\")\niocInit\n")],
    );
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let args: Vec<String> = std::iter::once("REC:".to_owned()).chain(names.iter().cloned()).collect();
    let (ours, theirs) = iocs.each(SCRIPT, &args);
    iocs.assert_same(&ours, &theirs, &names);
    // The comparison means something only if processing happened as intended.
    // OCAL's VAL is the previous OVAL (calcPerform's result argument): 0+1, then 1+1.
    assert_eq!(ours["DEST"][0], serde_json::json!(2.0), "CO wrote OCAL through its PP link");
    assert_eq!(ours["CO"][0], serde_json::json!(12.0));
    assert_eq!(ours["TICKS"][0], serde_json::json!(2.0), "two events processed TICKS");
    assert_eq!(ours["SUB"][1], serde_json::json!(3), "no subroutine: INVALID");
    assert_eq!(ours["AIN"][0], serde_json::json!(50.0), "ao clamped to DRVH, written to ai");
    assert_eq!(ours["MBBIN"][1], serde_json::json!(2), "state two: MAJOR");

    assert_eq!(ours["RING"][0], serde_json::json!([2.0, 7.0, 3.0]));
    assert_eq!(ours["HIST"][0], serde_json::json!([0.0, 2.0, 0.0, 1.0]), "SVL 4 twice, SGNL 6.5 once");
    assert!(ours["PF"][0].as_str().is_some_and(|s| s.starts_with("running: 4.00|1000|00ff|")), "{}", ours["PF"]);
    assert_eq!(ours["SUBA"][0], serde_json::json!([3.0, 4.0, 5.0]));
    assert_eq!(ours["FANBAD"][1], serde_json::json!(3), "INVALID");
}
