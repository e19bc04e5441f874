//! Output records' write rules against EPICS base's own IOC: ao's `OROC` ramp, `OIF`
//! Incremental in closed loop, `OVAL`/`PVAL`/`RVAL`; longout's `OOPT` modes and `OOCH`;
//! and ai's `SMOO` smoothing of what it reads.
//! pvloom ioc and base's IOC serve the same database, a pyepics client makes the same
//! puts to both, and every channel read after them must match.

mod support;

use support::TwoIocs;

const DB: &str = r#"
record(ao, "$(P)RAMP") { field(OROC, "2") field(OUT, "$(P)RAMPED PP") field(PREC, "3") }
record(ai, "$(P)RAMPED") { }
record(ao, "$(P)STEP") { field(DOL, "$(P)DELTA") field(OMSL, "closed_loop") field(OIF, "Incremental") field(DRVH, "25") field(DRVL, "-25") }
record(ao, "$(P)DELTA") { field(VAL, "4") field(PINI, "YES") }
record(ao, "$(P)CONV") { field(LINR, "LINEAR") field(ESLO, "0.5") field(EOFF, "1") field(VAL, "3") }
record(ao, "$(P)LOADED") { field(VAL, "7.5") }
record(ai, "$(P)SMOOTH") { field(INP, "$(P)DELTA") field(SMOO, "0.75") }
record(ao, "$(P)BARE") { field(FLNK, "$(P)NOTPASSIVE") }
record(calc, "$(P)NOTPASSIVE") { field(SCAN, "Event") field(EVNT, "never") field(CALC, "VAL+1") }
"#;

const MODES: &[&str] =
    &["Every Time", "On Change", "When Zero", "When Non-zero", "Transition To Zero", "Transition To Non-zero"];

fn db() -> String {
    let mut db = DB.to_owned();
    for (i, mode) in MODES.iter().enumerate() {
        db.push_str(&format!(
            "record(longout, \"$(P)LO{i}\") {{ field(OOPT, \"{mode}\") field(OUT, \"$(P)CNT{i}.A PP\") }}\n\
             record(calc, \"$(P)CNT{i}\") {{ field(CALC, \"VAL+1\") }}\n"
        ));
    }
    // OOCH: a redirected OUT is written at the next processing (YES) or not (NO).
    db.push_str(
        "record(longout, \"$(P)REDIR\") { field(OOPT, \"On Change\") field(OUT, \"$(P)CNTA.A PP\") }\n\
         record(longout, \"$(P)NOREDIR\") { field(OOPT, \"On Change\") field(OOCH, \"NO\") field(OUT, \"$(P)CNTC.A PP\") }\n\
         record(calc, \"$(P)CNTA\") { field(CALC, \"VAL+1\") }\n\
         record(calc, \"$(P)CNTB\") { field(CALC, \"VAL+1\") }\n\
         record(calc, \"$(P)CNTC\") { field(CALC, \"VAL+1\") }\n\
         record(calc, \"$(P)CNTD\") { field(CALC, \"VAL+1\") }\n",
    );
    db
}

const SCRIPT: &str = r#"
import json, sys, epics
P = sys.argv[1]
def put(name, value):
    assert epics.caput(P + name, value, wait=True, timeout=5) == 1, name
put("RAMP", 5)          # OVAL 2: one step of OROC
put("RAMP.PROC", 1)     # 4
put("RAMP", -1)         # 2
for _ in range(3):
    put("STEP.PROC", 1) # 4, 8, 12 (PVAL + DOL)
put("DELTA", 20)
put("STEP.PROC", 1)     # 25: the drive limit
put("CONV.PROC", 1)
put("SMOOTH.PROC", 1)   # 20: the first read is taken whole
put("DELTA", 4)
put("SMOOTH.PROC", 1)   # 4 * 0.25 + 20 * 0.75
put("SMOOTH.PROC", 1)
put("BARE.PROC", 1)     # no VAL ever set: 0, defined; its FLNK skips a record not passive
for i in range(6):
    for v in (0, 0, 5, 5, 0, 3):
        put("LO%d" % i, v)
put("REDIR", 1); put("REDIR.OUT", P + "CNTB.A PP"); put("REDIR", 1)
put("NOREDIR", 1); put("NOREDIR.OUT", P + "CNTD.A PP"); put("NOREDIR", 1)
out = {}
for name in sys.argv[2:]:
    v = epics.caget(P + name, timeout=5)
    if hasattr(v, 'tolist'):
        v = v.tolist()
    out[name] = v
print(json.dumps(out))
"#;

fn names() -> Vec<String> {
    let mut names: Vec<String> = [
        "RAMP",
        "RAMP.OVAL",
        "RAMP.PVAL",
        "RAMP.RVAL",
        "RAMPED",
        "STEP",
        "STEP.OVAL",
        "STEP.PVAL",
        "CONV",
        "CONV.OVAL",
        "CONV.RVAL",
        "LOADED.OVAL",
        "SMOOTH",
        "BARE",
        "BARE.SEVR",
        "NOTPASSIVE",
        "LOADED.PVAL",
        "CNTA",
        "CNTB",
        "CNTC",
        "CNTD",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..MODES.len() {
        names.push(format!("CNT{i}"));
        names.push(format!("LO{i}.PVAL"));
    }
    names
}

#[test]
fn output_rules_match_epics_base() {
    let db = db();
    let iocs = TwoIocs::start(
        "outputs",
        &[("outputs.db", &db), ("st.cmd", "dbLoadRecords(\"outputs.db\", \"P=OUT:\")\niocInit\n")],
    );
    let names = names();
    let args: Vec<String> = std::iter::once("OUT:".to_owned()).chain(names.iter().cloned()).collect();
    let (ours, theirs) = iocs.each(SCRIPT, &args);
    iocs.assert_same(&ours, &theirs, &names);
    assert_eq!(ours["RAMP.OVAL"], serde_json::json!(2.0), "5 from 0 by steps of 2, then back toward -1");
    assert_eq!(ours["STEP"], serde_json::json!(25.0));
    assert_eq!(ours["CNT0"], serde_json::json!(6.0), "Every Time: six writes");
    assert_eq!(ours["SMOOTH"], serde_json::json!(13.0), "20 taken whole, then 16 and 13 smoothed toward 4");
}
