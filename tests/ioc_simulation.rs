//! Simulation mode (`SIMM`, `SIML`, `SIOL`, `SIMS`) against EPICS base's own IOC: inputs
//! read `SIOL` instead of `INP` (a constant `SIOL` is `SVAL`), outputs write `SIOL`
//! instead of `OUT`, `SIML` switches the mode, the `SIMM` alarm at `SIMS` severity.

mod support;

use support::{PUT_THEN_READ, TwoIocs};

const DB: &str = r#"
record(ai, "$(P)AI") { field(INP, "$(P)REAL") field(SIOL, "$(P)FAKE") field(SIML, "$(P)MODE") field(SIMS, "MINOR") }
record(ao, "$(P)REAL") { field(VAL, "1") field(PINI, "YES") }
record(ao, "$(P)FAKE") { field(VAL, "42") field(PINI, "YES") }
record(bo, "$(P)MODE") { field(ZNAM, "off") field(ONAM, "on") }
record(ai, "$(P)AICONST") { field(INP, "$(P)REAL") field(SIOL, "7.5") field(SIMM, "YES") }
record(ao, "$(P)AO") { field(OUT, "$(P)REALOUT PP") field(SIOL, "$(P)FAKEOUT PP") field(SIML, "$(P)MODE") field(SIMS, "MAJOR") }
record(ao, "$(P)REALOUT") { }
record(ao, "$(P)FAKEOUT") { }
record(stringin, "$(P)SI") { field(INP, "$(P)SREAL") field(SIOL, "$(P)SFAKE") field(SIMM, "YES") field(SIMS, "MAJOR") }
record(stringout, "$(P)SREAL") { field(VAL, "real") field(PINI, "YES") }
record(stringout, "$(P)SFAKE") { field(VAL, "fake") field(PINI, "YES") }
record(longout, "$(P)LO") { field(OUT, "$(P)LREAL PP") field(SIOL, "$(P)LFAKE PP") field(SIMM, "YES") }
record(longin, "$(P)LREAL") { }
record(longin, "$(P)LFAKE") { }
record(bi, "$(P)BI") { field(INP, "$(P)MODE") field(SIOL, "1") field(SIMM, "YES") field(ZNAM, "z") field(ONAM, "o") }
"#;

const NAMES: &[&str] = &[
    "AI",
    "AI.SIMM",
    "AI.SVAL",
    "AICONST",
    "AICONST.SVAL",
    "AO",
    "REALOUT",
    "FAKEOUT",
    "SI",
    "LREAL",
    "LFAKE",
    "BI",
    "MODE",
];

#[test]
fn simulation_mode_redirects_as_in_epics_base() {
    let iocs =
        TwoIocs::start("simulation", &[("sim.db", DB), ("st.cmd", "dbLoadRecords(\"sim.db\", \"P=SIM:\")\niocInit\n")]);
    let puts = "PUTS = [('AI.PROC', 1), ('MODE', 1), ('AI.PROC', 1), ('AO', 5), ('MODE', 0), ('AO', 6), \
                ('MODE', 1), ('AICONST.PROC', 1), ('SI.PROC', 1), ('LO', 9), ('BI.PROC', 1)]";
    let script = format!("{puts}\n{PUT_THEN_READ}");
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let args: Vec<String> = std::iter::once("SIM:".to_owned()).chain(names.iter().cloned()).collect();
    let (ours, theirs) = iocs.each(&script, &args);
    iocs.assert_same(&ours, &theirs, &names);
    assert_eq!(ours["AI"][0], serde_json::json!(42.0), "SIML on: the value from SIOL");
    assert_eq!((&ours["FAKEOUT"][0], &ours["REALOUT"][0]), (&serde_json::json!(5.0), &serde_json::json!(6.0)));
    assert_eq!(ours["SI"][0], serde_json::json!("fake"));
}
