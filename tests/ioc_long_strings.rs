//! Long strings as EPICS base serves them: lsi/lso/printf `VAL` up to `SIZV` (at least 16)
//! bytes, `LEN`/`OLEN`, `VAL$` whole and `VAL` as a 39-byte `DBR_STRING`, a constant INP
//! loaded whole, printf's `%s` (a link read as `DBR_STRING`) and `%ls` (only a char array
//! reads); pvloom ioc and base's IOC serve the same database and every channel must match.

mod support;

use support::{PUT_THEN_READ, TwoIocs};

const DB: &str = r#"
record(lsi, "$(P)LS") { field(SIZV, "80") field(INP, {const: "0123456789012345678901234567890123456789012345678901234567"}) }
record(lsi, "$(P)SMALL") { field(SIZV, "5") field(INP, {const: "a constant longer than sixteen bytes"}) }
record(lso, "$(P)LO") { field(SIZV, "80") field(OUT, "$(P)LI PP") }
record(lsi, "$(P)LI") { field(SIZV, "50") }
record(printf, "$(P)PF") { field(SIZV, "80") field(FMT, "%s and a long tail of text beyond forty bytes") field(INP0, "$(P)LS") }
record(printf, "$(P)PFL") { field(SIZV, "100") field(FMT, "%ls|%s") field(INP0, "$(P)LS") field(INP1, "$(P)LS") }
record(waveform, "$(P)WC") { field(FTVL, "CHAR") field(NELM, "20") field(INP, [104, 105, 0]) }
record(printf, "$(P)PFW") { field(SIZV, "100") field(FMT, "%ls|%s") field(INP0, "$(P)WC") field(INP1, "$(P)WC") }
"#;

const NAMES: &[&str] = &[
    "LS",
    "LS.VAL$",
    "LS.LEN",
    "LS.OLEN",
    "SMALL.VAL$",
    "SMALL.SIZV",
    "SMALL.LEN",
    "LO",
    "LO.VAL$",
    "LO.LEN",
    "LI.VAL$",
    "LI.LEN",
    "LI.OLEN",
    "PF",
    "PF.VAL$",
    "PF.LEN",
    "PFL.VAL$",
    "PFW.VAL$",
];

#[test]
fn long_strings_match_epics_base() {
    let iocs = TwoIocs::start(
        "long_strings",
        &[("strings.db", DB), ("st.cmd", "dbLoadRecords(\"strings.db\", \"P=LS:\")\niocInit\n")],
    );
    let script =
        format!("PUTS = [('LO.VAL$', 'y' * 70), ('PF.PROC', 1), ('PFL.PROC', 1), ('PFW.PROC', 1)]\n{PUT_THEN_READ}");
    let mut args = vec!["LS:".to_owned()];
    args.extend(NAMES.iter().map(|n| n.to_string()));
    let (ours, theirs) = iocs.each(&script, &args);
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    iocs.assert_same(&ours, &theirs, &names);
    assert_eq!(ours["LO.VAL$"][0], serde_json::json!("y".repeat(70)), "SIZV 80 holds the 70 bytes");
    assert_eq!(ours["LI.VAL$"][0], serde_json::json!("y".repeat(49)), "the lso wrote them to an lsi of SIZV 50");
    assert_eq!(ours["PFL.VAL$"][0], serde_json::json!("LNK|012345678901234567890123456789012345678"));
    assert_eq!(ours["PFW.VAL$"][0], serde_json::json!("hi|104"));
}
