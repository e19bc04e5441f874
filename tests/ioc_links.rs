//! Constant and JSON constant links as EPICS base 7 loads them (`{const: …}`, bare JSON
//! arrays, numbers; into scalar, string and array records, input and output records), served
//! by `pvloom ioc` and by EPICS base's own IOC (tests/peers/base_iocsh.py) from the same
//! database: pyepics must read the same values, severities, statuses and element counts.

mod support;

use support::{PUT_THEN_READ, TwoIocs};

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
record(sel, "$(P)SEL") { field(SELM, "High Signal") field(A, "5") field(INPB, {const: 2}) field(C, "1") field(PINI, "YES") }
record(printf, "$(P)PF") { field(FMT, "%s-%d-%.1f") field(INP0, {const: "txt"}) field(INP1, {const: 5}) field(INP2, [2.5]) field(PINI, "YES") }
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
    "SEL",
    "SEL.A",
    "SEL.B",
    "SEL.C",
];

#[test]
fn constant_and_json_constant_links_load_as_in_epics_base() {
    let iocs =
        TwoIocs::start("links", &[("links.db", DB), ("st.cmd", "dbLoadRecords(\"links.db\", \"P=LNK:\")\niocInit\n")]);
    let script = format!("PUTS = [('CALCNP.PROC', 1)]\n{PUT_THEN_READ}");
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let args: Vec<String> = std::iter::once("LNK:".to_owned()).chain(names.iter().cloned()).collect();
    let (ours, theirs) = iocs.each(&script, &args);
    iocs.assert_same(&ours, &theirs, &names);
    // The comparison means something only if the constants were loaded.
    assert_eq!(ours["AI"][0], serde_json::json!(2.5));
    assert_eq!(ours["CALC"][0], serde_json::json!(8.0), "4 + 3 + true");
    assert_eq!(ours["SI"][0], serde_json::json!("from json"));
    assert_eq!(ours["WF"][0], serde_json::json!([1.0, 2.0, 3.0]));
    assert_eq!(ours["PF"][0], serde_json::json!("txt-5-2.5"));
    assert_eq!(ours["SEL"][0], serde_json::json!(2.0), "sel's init leaves only constant inputs defined");
}
