//! The `.db` parser: a realistic database with every record type, macros
//! and includes, and bad inputs that must be refused with file, line and reason.

use std::io;
use std::time::{Duration, SystemTime};

use pvloom_ca::server::db::{
    Calc, CalcInput, Database, FieldType, FieldValue, Macros, ParseOptions, RecordType, SeverityMode, parse_db,
    parse_db_with,
};

const MAIN: &str = r#"
# Beamline front end, loaded with P=XF:31ID{,R=}Sim:
record(ai, "$(P)$(R)Temp-I") {
    field(DESC, "Sample temperature")
    field(SCAN, "1 second")
    field(PINI, "YES")
    field(VAL,  "21.5")
    field(EGU,  "degC")
    field(PREC, "2")
    field(HOPR, "100")
    field(LOPR, "-20")
    field(HIHI, "90") field(HIGH, "70")
    field(LOW,  "5")  field(LOLO, "0")
    field(HHSV, "MAJOR") field(HSV, "MINOR")
    field(LSV,  "MINOR") field(LLSV, "MAJOR")
    field(HYST, "0.5")
    field(MDEL, "0.1")
    field(ADEL, "1")
    field(INP,  "21.5")
    info(autosaveFields, "VAL HIHI")
    alias("$(P)$(R)T")
}

record(ao, "$(P)$(R)Heater-SP") {
    field(DESC, "Heater set point")
    field(EGU, "W")
    field(PREC, "1")
    field(DRVH, "50")
    field(DRVL, "0")
    field(HOPR, 60)
    field(LOPR, 0)
    field(OMSL, "supervisory")
    field(FLNK, "$(P)$(R)Heater-RB")
}

record(bi, "$(P)$(R)Door-Sts") {
    field(ZNAM, "Closed")
    field(ONAM, "Open")
    field(ZSV,  "NO_ALARM")
    field(OSV,  "MAJOR")
    field(COSV, "MINOR")
}

record(bo, "$(P)$(R)Shutter-Cmd") {
    field(ZNAM, "Close")
    field(ONAM, "Open")
    field(VAL, "1")
}

record(longin, "$(P)$(R)Count-I") {
    field(EGU, "cts")
    field(HOPR, "1000") field(LOPR, "0")
    field(HIHI, "900") field(HHSV, "MAJOR")
    field(HYST, "10")
    field(SCAN, "Passive")
}

record(longout, "$(P)$(R)Gain-SP") {
    field(DRVH, "10")
    field(DRVL, "1")
    field(VAL, "0x4")
}

record(stringin, "$(P)$(R)Name-I") {
    field(VAL, "sample \"A\"\t1")
}

record(stringout, "$(P)$(R)Note-SP") {
    field(VAL, "${NOTE=none}")
}

record(mbbi, "$(P)$(R)Mode-Sts") {
    field(ZRST, "Off")   field(ZRVL, "0")
    field(ONST, "Slow")  field(ONVL, "1")
    field(TWST, "Fast")  field(TWVL, "2") field(TWSV, "MINOR")
    field(UNSV, "INVALID")
    field(COSV, "NO_ALARM")
}

record(mbbo, "$(P)$(R)Mode-Sel") {
    field(ZRST, "Off")
    field(ONST, "On")
    field(FFST, "Max")
    field(FFSV, "MAJOR")
}

record(waveform, "$(P)$(R)Spectrum-I") {
    field(FTVL, "DOUBLE")
    field(NELM, "2048")
    field(EGU, "counts")
    field(PREC, "3")
    field(HOPR, "1e6")
    field(SCAN, ".1 second")
    field(PHAS, "2")
}

record(waveform, "$(P)$(R)Label-I") {
    field(FTVL, "CHAR")
    field(NELM, 256)
}

record(calc, "$(P)$(R)Power-Calc") {
    field(CALC, "A*B + C")
    field(INPA, "$(P)$(R)Heater-SP NPP MS")
    field(INPB, "$(P)$(R)Temp-I.HOPR")
    field(INPC, "2.5")
    field(EGU, "W")
    field(HIGH, "100") field(HSV, "MINOR")
    field(SCAN, "1 second")
}

include "heater.db"

alias("$(P)$(R)Temp-I", "$(P)$(R)Temperature")

# Amend an earlier record; duplicates of the same type merge.
record("*", "$(P)$(R)Door-Sts") { field(DESC, "Hutch door") }
record(bi, "$(P)$(R)Door-Sts") { field(ZSV, "MINOR") }
"#;

const HEATER: &str = r#"
record(ai, "$(P)$(R)Heater-RB") {
    field(DESC, "Heater readback")
    field(EGU, "W")
}
"#;

fn loader(name: &str) -> io::Result<String> {
    match name {
        "heater.db" => Ok(HEATER.to_string()),
        "loop.db" => Ok("include \"loop.db\"\n".to_string()),
        "bad.db" => Ok("record(ai, \"x\") {\n  field(NOPE, 1)\n}\n".to_string()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
    }
}

fn load_main() -> Database {
    let macros = Macros::parse("P=XF:31ID{,R=}Sim:").unwrap();
    let options = ParseOptions::with_loader(&loader);
    let defs = parse_db_with(MAIN, "main.db", &macros, &options).unwrap();
    assert_eq!(defs.len(), 14);
    let types: std::collections::BTreeSet<RecordType> = defs.iter().map(|d| d.record_type).collect();
    // The realistic database uses the twelve types every IOC has; the others are tested in their modules.
    assert_eq!(types.len(), 12, "every common record type appears");
    Database::from_defs(defs, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)).unwrap()
}

fn get(db: &Database, channel: &str) -> FieldValue {
    let (id, field) = db.resolve(channel).unwrap_or_else(|| panic!("{channel} resolves"));
    db.record(id).get_field(field).unwrap()
}

#[test]
fn realistic_database_loads() {
    let db = load_main();
    let p = "XF:31ID{}Sim:";
    assert_eq!(get(&db, &format!("{p}Temp-I")), FieldValue::Double(21.5));
    assert_eq!(get(&db, &format!("{p}Temp-I.DESC")), FieldValue::String("Sample temperature".into()));
    assert_eq!(get(&db, &format!("{p}Temp-I.EGU")), FieldValue::String("degC".into()));
    assert_eq!(get(&db, &format!("{p}Temp-I.PREC")), FieldValue::Int(2));
    assert_eq!(get(&db, &format!("{p}Temp-I.HHSV")), FieldValue::Enum(2));
    assert_eq!(get(&db, &format!("{p}Temp-I.SCAN")), FieldValue::Enum(6));
    assert_eq!(get(&db, &format!("{p}T.VAL")), FieldValue::Double(21.5), "record alias");
    assert_eq!(get(&db, &format!("{p}Temperature")), FieldValue::Double(21.5), "top-level alias");
    let temp = db.record(db.find(&format!("{p}Temp-I")).unwrap());
    assert_eq!(temp.info(), &[("autosaveFields".to_string(), "VAL HIHI".to_string())]);
    assert_eq!(temp.scan_period(), Some(Duration::from_secs(1)));
    // PINI processed it: alarm computed, timestamp set.
    assert_eq!((temp.alarm().stat, temp.alarm().sevr), (0, 0));
    assert_eq!(temp.time().secs, 1_700_000_000 - 631_152_000);

    assert_eq!(get(&db, &format!("{p}Heater-SP.DRVH")), FieldValue::Double(50.0));
    assert_eq!(get(&db, &format!("{p}Heater-SP.FLNK")), FieldValue::String(format!("{p}Heater-RB")));
    assert_eq!(get(&db, &format!("{p}Heater-RB.DESC")), FieldValue::String("Heater readback".into()));
    assert_eq!(get(&db, &format!("{p}Door-Sts.DESC")), FieldValue::String("Hutch door".into()));
    assert_eq!(get(&db, &format!("{p}Door-Sts.ZSV")), FieldValue::Enum(1), "later definition wins");
    assert_eq!(get(&db, &format!("{p}Shutter-Cmd")), FieldValue::Enum(1));
    assert_eq!(get(&db, &format!("{p}Count-I.HIHI")), FieldValue::Int(900));
    assert_eq!(get(&db, &format!("{p}Gain-SP")), FieldValue::Int(4), "hex literal");
    assert_eq!(get(&db, &format!("{p}Name-I")), FieldValue::String("sample \"A\"\t1".into()));
    assert_eq!(get(&db, &format!("{p}Note-SP")), FieldValue::String("none".into()), "macro default");
    assert_eq!(get(&db, &format!("{p}Mode-Sts.TWST")), FieldValue::String("Fast".into()));
    assert_eq!(get(&db, &format!("{p}Mode-Sel.FFSV")), FieldValue::Enum(2));
    assert_eq!(get(&db, &format!("{p}Spectrum-I.NELM")), FieldValue::Int(2048));
    assert_eq!(get(&db, &format!("{p}Spectrum-I.NORD")), FieldValue::Int(0));
    assert_eq!(get(&db, &format!("{p}Spectrum-I.FTVL")), FieldValue::Enum(10));
    assert_eq!(get(&db, &format!("{p}Label-I.FTVL")), FieldValue::Enum(1));
    assert_eq!(get(&db, &format!("{p}Power-Calc.CALC")), FieldValue::String("A*B + C".into()));
    assert_eq!(get(&db, &format!("{p}Power-Calc.C")), FieldValue::Double(2.5), "constant input");

    let spectrum = db.record(db.find(&format!("{p}Spectrum-I")).unwrap());
    assert_eq!(spectrum.field_type("VAL"), Some(FieldType::Double));
    assert_eq!(spectrum.element_count("VAL"), Some(2048));
    let calc = db.record(db.find(&format!("{p}Power-Calc")).unwrap());
    let inputs = calc.input_links();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].1.record, format!("{p}Heater-SP"));
    assert_eq!(inputs[0].1.severity_mode, SeverityMode::Ms);
    assert_eq!(inputs[1].1.field, "HOPR");
    let c = calc.support().as_any().downcast_ref::<Calc>().expect("calc");
    assert_eq!(c.inputs[2], CalcInput::Constant(2.5));

    let periodic = db.periodic();
    assert_eq!(periodic[0].0, Duration::from_millis(100));
    assert_eq!(periodic[1].0, Duration::from_secs(1));
    assert_eq!(periodic[1].1.len(), 2);
}

#[test]
fn calc_reads_links_and_forward_links_process() {
    let mut db = load_main();
    let p = "XF:31ID{}Sim:";
    let sp = db.find(&format!("{p}Heater-SP")).unwrap();
    let calc = db.find(&format!("{p}Power-Calc")).unwrap();
    let now = SystemTime::now();
    let results = db.put_field(sp, "VAL", FieldValue::Double(80.0), now).unwrap();
    assert_eq!(results.len(), 2, "the FLNK target was processed too");
    assert_eq!(db.record(sp).get_field("VAL"), Some(FieldValue::Double(50.0)), "clamped to DRVH");
    db.process(calc, now);
    // A = 50 (Heater-SP), B = 100 (Temp-I.HOPR), C = 2.5
    assert_eq!(db.record(calc).get_field("VAL"), Some(FieldValue::Double(5002.5)));
    assert_eq!(db.record(calc).alarm().stat, pvloom_ca::proto::constants::alarm_status::HIGH);
}

#[test]
fn include_without_loader_names_the_file() {
    let err = parse_db("\n\ninclude \"other.db\"\n", "top.db", &Macros::new()).unwrap_err();
    assert_eq!((err.file.as_str(), err.line), ("top.db", 3));
    assert!(err.reason.contains("other.db") && err.reason.contains("loader"), "{err}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let options = ParseOptions::with_loader(&loader);
    let err = parse_db_with("include \"bad.db\"", "top.db", &Macros::new(), &options).unwrap_err();
    assert_eq!((err.file.as_str(), err.line), ("bad.db", 2));
    assert!(err.reason.contains("NOPE"));
    let err = parse_db_with("include \"loop.db\"", "top.db", &Macros::new(), &options).unwrap_err();
    assert!(err.reason.contains("too deeply"), "{err}");
    let err = parse_db_with("include \"missing.db\"", "top.db", &Macros::new(), &options).unwrap_err();
    assert!(err.reason.contains("no such file"), "{err}");
}

/// (input, line, words the reason must contain)
const BAD: &[(&str, usize, &[&str])] = &[
    ("record(foo, \"x\") {}", 1, &["unknown record type", "foo"]),
    ("record(ai, \"x\") {\n  field(VALUE, 1)\n}", 2, &["no field", "VALUE"]),
    ("record(ai, \"x\") {\n  field(DESC, \"unterminated)\n}", 2, &["unterminated string"]),
    ("record(ai, \"x\") {\n  field(DESC, \"a\")\n", 3, &["missing '}'", "opened at line 1"]),
    ("record(ai, \"$(P)x\") {}", 1, &["macro", "P", "undefined"]),
    ("record(ai, \"x\") {\n\n  field(HOPR, \"ten\")\n}", 3, &["HOPR", "not a number"]),
    ("record(ai, \"x\")\nrecord(ao, \"x\")", 2, &["redefined", "ao"]),
    ("record(waveform, \"w\") {\n  field(NELM, \"100000000\")\n}", 2, &["NELM", "limit"]),
    ("record(ai, \"x\") {\n  field(DESC, \"01234567890123456789012345678901234567890\")\n}", 2, &["too long", "DESC"]),
    ("record(ai, \"x\") {\n  field(SCAN, \"3 second\")\n}", 2, &["SCAN", "choice"]),
    ("record(calc, \"c\") {\n  field(CALC, \"A+*B\")\n}", 2, &["CALC", "column 3"]),
    ("record(ai, \"x\") {\n  field(DESC, $(A))\n}", 2, &["recursive"]),
    ("record(ai, \"x\") {\n  field(DESC, \"a\") @\n}", 2, &["invalid character '@'"]),
    ("record(ai, \"bad name\") {}", 1, &["bad character", "bad name"]),
    ("alias(\"nothing\", \"other\")", 1, &["unknown record", "nothing"]),
    ("record(ai, \"x\") {}\nrecord(ai, \"y\") { alias(\"x\") }", 2, &["already"]),
    ("record(longin, \"l\") {\n  field(VAL, \"1.5\")\n}", 2, &["VAL", "integer"]),
    ("record(ai, \"x\") {\n  field(STAT, \"HIHI\")\n}", 2, &["read-only"]),
    ("record(ai, \"x\") {\n  field(INP, \"a\")\n  field\n}", 4, &["expected '('"]),
    ("menu(foo) { choice(a, \"b\") }", 1, &["dbd"]),
    ("record(\"*\", \"ghost\") {}", 1, &["not found"]),
    ("record(calc, \"c\") {\n  field(INPA, \"rec.VAL BOGUS\")\n}", 2, &["modifier", "BOGUS"]),
    ("record(bi, \"b\") {\n  field(ZSV, \"SEVERE\")\n}", 2, &["ZSV", "choice"]),
];

#[test]
fn bad_inputs_are_refused_with_file_line_and_reason() {
    let macros = Macros::parse("A=$(B),B=$(A)").unwrap();
    for (input, line, words) in BAD {
        let err = match parse_db(input, "bad.db", &macros) {
            Ok(defs) => panic!("{input:?} was accepted: {defs:?}"),
            Err(e) => e,
        };
        assert_eq!(err.file, "bad.db", "{input:?}");
        assert_eq!(err.line, *line, "{input:?}: {err}");
        for word in *words {
            assert!(err.reason.contains(word), "{input:?}: {err} should mention {word:?}");
        }
        assert!(err.column >= 1);
        assert!(err.to_string().starts_with(&format!("bad.db:{line}:")), "{err}");
    }
}

#[test]
fn runaway_macros_and_huge_inputs_are_bounded() {
    let mut macros = Macros::new().with("M0", "xxxxxxxxxxxxxxxx");
    for i in 1..64 {
        macros.set(&format!("M{i}"), &format!("$(M{})$(M{})", i - 1, i - 1));
    }
    let err = parse_db("record(ai, \"$(M63)\")", "big.db", &macros).unwrap_err();
    assert!(err.reason.contains("too long"), "{err}");
    let options = ParseOptions { max_file_len: 100, ..ParseOptions::default() };
    let text = format!("# {}\n", "x".repeat(200));
    assert!(parse_db_with(&text, "big.db", &Macros::new(), &options).unwrap_err().reason.contains("larger"));
    let options = ParseOptions { max_elements: 10, ..ParseOptions::default() };
    let err = parse_db_with("record(waveform, w) { field(NELM, 11) }", "w.db", &Macros::new(), &options).unwrap_err();
    assert!(err.reason.contains("limit of 10"), "{err}");
}

#[test]
fn waveform_initial_values_and_bare_words() {
    let text = "record(waveform, XF:wf) { field(FTVL, LONG) field(NELM, 8) field(VAL, [1, 2, 3]) }\n\
                record(waveform, XF:one) { field(FTVL, SHORT) }";
    let defs = parse_db(text, "wf.db", &Macros::new()).unwrap();
    let wf = defs[0].record();
    assert_eq!(wf.get_field("VAL"), Some(FieldValue::Array(pvloom_ca::proto::dbr::Value::Long(vec![1, 2, 3]))));
    assert_eq!(wf.get_field("NORD"), Some(FieldValue::Int(3)));
    assert!(!wf.udf());
    let one = defs[1].record();
    assert_eq!(one.get_field("NORD"), Some(FieldValue::Int(1)), "a one-element waveform starts with NORD 1");
}
