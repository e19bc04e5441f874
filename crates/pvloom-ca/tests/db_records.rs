//! Record behaviour: puts, processing, alarms, calc, and DBR conversion.

use std::time::{Duration, SystemTime};

use pvloom_ca::proto::constants::{DBE_ALARM, DBE_LOG, DBE_PROPERTY, DBE_VALUE, alarm_status, severity};
use pvloom_ca::proto::dbr::{DbrClass, DbrData, DbrType, Metadata, NativeType, Value};
use pvloom_ca::server::db::{FieldType, FieldValue, GetError, Macros, PutError, Record, RecordType, parse_db};

fn record(text: &str) -> Record {
    let defs = parse_db(text, "test.db", &Macros::new()).unwrap();
    defs.into_iter().next().unwrap().into_record()
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn stat_sevr(r: &Record) -> (u16, u16) {
    (r.alarm().stat, r.alarm().sevr)
}

#[test]
fn ai_crossing_limits_with_hysteresis() {
    let mut ai = record(
        r#"record(ai, "T") { field(HIHI, 90) field(HIGH, 70) field(LOW, 10) field(LOLO, 0)
           field(HHSV, MAJOR) field(HSV, MINOR) field(LSV, MINOR) field(LLSV, MAJOR) field(HYST, 2) }"#,
    );
    assert_eq!(stat_sevr(&ai), (alarm_status::UDF, severity::INVALID), "never processed");
    let steps = [
        (50.0, alarm_status::NO_ALARM, severity::NO_ALARM),
        (71.0, alarm_status::HIGH, severity::MINOR),
        (69.0, alarm_status::HIGH, severity::MINOR),
        (67.5, alarm_status::NO_ALARM, severity::NO_ALARM),
        (95.0, alarm_status::HIHI, severity::MAJOR),
        (88.5, alarm_status::HIHI, severity::MAJOR),
        (87.0, alarm_status::HIGH, severity::MINOR),
        (-1.0, alarm_status::LOLO, severity::MAJOR),
        (1.5, alarm_status::LOLO, severity::MAJOR),
        (2.5, alarm_status::LOW, severity::MINOR),
    ];
    for (i, (value, stat, sevr)) in steps.into_iter().enumerate() {
        let before = stat_sevr(&ai);
        let changes = ai.put_field_at("VAL", FieldValue::Double(value), t(i as u64)).unwrap();
        assert!(changes.processed);
        assert_eq!(stat_sevr(&ai), (stat, sevr), "VAL {value}");
        let alarm_changed = before != (stat, sevr);
        assert_eq!(changes.mask_for("VAL") & DBE_ALARM != 0, alarm_changed, "VAL {value}");
        assert_eq!(changes.mask_for("STAT") != 0, alarm_changed);
        assert_eq!(changes.mask_for("VAL") & (DBE_VALUE | DBE_LOG), DBE_VALUE | DBE_LOG);
        assert_eq!(ai.time().secs, (1_700_000_000 + i as u64 - 631_152_000) as u32);
    }
    // Same value again: no monitor (MDEL 0), no alarm change.
    let changes = ai.put_field("VAL", FieldValue::Double(2.5)).unwrap();
    assert_eq!(changes.mask_for("VAL"), 0);
    // Metadata change: DBE_PROPERTY for every channel of the record, and the put field is posted.
    let changes = ai.put_field("EGU", FieldValue::String("K".into())).unwrap();
    assert_eq!(changes.mask_for("VAL"), DBE_PROPERTY);
    assert_eq!(changes.mask_for("EGU"), DBE_VALUE | DBE_LOG | DBE_PROPERTY);
    assert!(!changes.processed);
}

#[test]
fn ai_deadbands() {
    let mut ai = record(r#"record(ai, "T") { field(MDEL, 1) field(ADEL, 5) }"#);
    ai.put_field("VAL", FieldValue::Double(0.5)).unwrap();
    let c = ai.put_field("VAL", FieldValue::Double(1.2)).unwrap();
    assert_eq!(c.mask_for("VAL"), DBE_VALUE, "moved 1.2 from the initial 0: beyond MDEL, within ADEL");
    let c = ai.put_field("VAL", FieldValue::Double(1.9)).unwrap();
    assert_eq!(c.mask_for("VAL"), 0);
    let c = ai.put_field("VAL", FieldValue::Double(6.0)).unwrap();
    assert_eq!(c.mask_for("VAL"), DBE_VALUE | DBE_LOG);
}

#[test]
fn bi_and_mbbi_state_severities() {
    let mut bi =
        record(r#"record(bi, "D") { field(ZNAM, Closed) field(ONAM, Open) field(OSV, MAJOR) field(COSV, MINOR) }"#);
    bi.put_field("VAL", FieldValue::String("Open".into())).unwrap();
    assert_eq!(stat_sevr(&bi), (alarm_status::STATE, severity::MAJOR));
    bi.put_field("VAL", FieldValue::Enum(0)).unwrap();
    assert_eq!(stat_sevr(&bi), (alarm_status::COS, severity::MINOR), "change of state");
    bi.put_field("VAL", FieldValue::Enum(0)).unwrap();
    assert_eq!(stat_sevr(&bi), (alarm_status::NO_ALARM, severity::NO_ALARM));
    assert_eq!(
        bi.put_field("VAL", FieldValue::String("Ajar".into())),
        Err(PutError::BadChoice { field: "VAL", value: "Ajar".into() })
    );
    bi.put_field("VAL", FieldValue::String("1".into())).unwrap();
    assert_eq!(bi.get_field("VAL"), Some(FieldValue::Enum(1)), "a state index as a string");

    let mut mbbi = record(
        r#"record(mbbi, "M") { field(ZRST, Off) field(ONST, Low) field(TWST, High) field(TWSV, MAJOR) field(UNSV, INVALID) }"#,
    );
    mbbi.put_field("VAL", FieldValue::String("High".into())).unwrap();
    assert_eq!(stat_sevr(&mbbi), (alarm_status::STATE, severity::MAJOR));
    mbbi.put_field("VAL", FieldValue::Int(1)).unwrap();
    assert_eq!(stat_sevr(&mbbi), (alarm_status::NO_ALARM, severity::NO_ALARM));
    mbbi.put_field("VAL", FieldValue::Int(16)).unwrap();
    assert_eq!(stat_sevr(&mbbi), (alarm_status::STATE, severity::INVALID), "unknown state → UNSV");
    assert_eq!(mbbi.enum_strings("VAL").unwrap(), vec!["Off", "Low", "High"]);
    assert!(mbbi.put_field("VAL", FieldValue::String("5".into())).is_err(), "index beyond the defined states");
}

#[test]
fn outputs_clamp_and_read_only_fields_refuse() {
    let mut ao = record(r#"record(ao, "A") { field(DRVH, 10) field(DRVL, -10) }"#);
    ao.put_field("VAL", FieldValue::Double(25.0)).unwrap();
    assert_eq!(ao.get_field("VAL"), Some(FieldValue::Double(10.0)));
    ao.put_field("VAL", FieldValue::String("-30".into())).unwrap();
    assert_eq!(ao.get_field("VAL"), Some(FieldValue::Double(-10.0)));
    assert!(!ao.udf());
    let mut lo = record(r#"record(longout, "L") { field(DRVH, 5) field(DRVL, 1) }"#);
    lo.put_field("VAL", FieldValue::Double(9.7)).unwrap();
    assert_eq!(lo.get_field("VAL"), Some(FieldValue::Int(5)));
    for field in ["NAME", "STAT", "SEVR", "UDF", "NORD"] {
        let mut wf = record(r#"record(waveform, "W") { field(NELM, 4) }"#);
        let result = wf.put_field(field, FieldValue::Int(1));
        if field == "UDF" {
            assert!(result.is_ok(), "UDF is writable in EPICS");
        } else {
            assert!(matches!(result, Err(PutError::ReadOnly(_))), "{field}: {result:?}");
        }
    }
    assert!(matches!(ao.put_field("NOPE", FieldValue::Int(1)), Err(PutError::NoSuchField(_))));
    assert!(matches!(ao.put_field("HOPR", FieldValue::String("x".into())), Err(PutError::BadValue { .. })));
    assert!(matches!(ao.put_field("SCAN", FieldValue::Enum(42)), Err(PutError::BadChoice { .. })));
    let c = ao.put_field("SCAN", FieldValue::String(".5 second".into())).unwrap();
    assert!(c.scan_changed);
    assert_eq!(ao.scan_period(), Some(Duration::from_millis(500)));
    // A periodic record is not processed by a put (dbPutField only processes passive records).
    let c = ao.put_field("VAL", FieldValue::Double(3.0)).unwrap();
    assert!(!c.processed);
    assert_eq!(ao.get_field("VAL"), Some(FieldValue::Double(3.0)));
    let c = ao.put_field("PROC", FieldValue::Int(1)).unwrap();
    assert!(c.processed);
}

#[test]
fn string_and_waveform_records() {
    let mut si = record(r#"record(stringin, "S")"#);
    let c = si.put_field("VAL", FieldValue::String("x".repeat(60))).unwrap();
    assert_eq!(si.get_field("VAL"), Some(FieldValue::String("x".repeat(39))), "truncated at runtime");
    assert_eq!(c.mask_for("VAL"), DBE_VALUE | DBE_LOG | DBE_ALARM, "first processing clears UDF alarm");
    assert_eq!(stat_sevr(&si), (0, 0));

    let mut wf = record(r#"record(waveform, "W") { field(FTVL, USHORT) field(NELM, 4) }"#);
    assert_eq!(wf.field_type("VAL"), Some(FieldType::UShort));
    assert_eq!(wf.native_type("VAL"), Some(NativeType::Long));
    let c = wf.put_field("VAL", FieldValue::Array(Value::Double(vec![1.0, 70000.0, -1.0]))).unwrap();
    assert_eq!(wf.get_field("VAL"), Some(FieldValue::Array(Value::Long(vec![1, 4464, 65535]))));
    assert_eq!(wf.get_field("NORD"), Some(FieldValue::Int(3)));
    assert_eq!(c.mask_for("NORD"), DBE_VALUE | DBE_LOG);
    assert!(c.mask_for("VAL") & DBE_VALUE != 0);
    assert!(matches!(
        wf.put_field("VAL", FieldValue::Array(Value::Long(vec![0; 5]))),
        Err(PutError::TooManyElements { max: 4, .. })
    ));
}

#[test]
fn calc_record_evaluates_expressions() {
    let table: &[(&str, [f64; 3], f64)] = &[
        ("A+B*2", [1.0, 3.0, 0.0], 7.0),
        ("A>B?A:B", [4.0, 9.0, 0.0], 9.0),
        ("ABS(-3)+MAX(1,2,3)", [0.0; 3], 6.0),
        ("MIN(A,B,C)", [4.0, -2.0, 7.0], -2.0),
        ("(A+B)/C", [1.0, 2.0, 4.0], 0.75),
        ("A**2 + B^2", [3.0, 4.0, 0.0], 25.0),
        ("A#B && !C", [1.0, 2.0, 0.0], 1.0),
        ("FLOOR(A)+CEIL(B)+NINT(C)", [1.7, 1.2, 2.5], 6.0),
        ("SQRT(A)*LOG(100)", [9.0, 0.0, 0.0], 6.0),
        ("VAL+1", [0.0; 3], 3.0), // processed by each of the three puts
    ];
    for (expr, args, expected) in table {
        let mut calc = record(&format!("record(calc, c) {{ field(CALC, \"{expr}\") }}"));
        for (i, name) in ["A", "B", "C"].iter().enumerate() {
            calc.put_field(name, FieldValue::Double(args[i])).unwrap();
        }
        let calc_val = calc.get_field("VAL").unwrap().as_f64().unwrap();
        assert!((calc_val - expected).abs() < 1e-12, "{expr}: {calc_val} != {expected}");
    }
    let mut calc = record(r#"record(calc, c) { field(CALC, "A/B") field(INPA, "other") }"#);
    // INPB is no link: what was read for it is ignored, B stays 0.
    calc.process_with(&[("INPA", FieldValue::Double(1.0)), ("INPB", FieldValue::Double(99.0))], t(0));
    assert_eq!(calc.get_field("VAL"), Some(FieldValue::Double(f64::INFINITY)));
    assert_eq!(calc.get_field("A"), Some(FieldValue::Double(1.0)));
    calc.put_field("A", FieldValue::Double(0.0)).unwrap();
    assert!(calc.udf(), "0/0 is NaN: undefined");
    assert_eq!(stat_sevr(&calc), (alarm_status::UDF, severity::INVALID));
    assert!(matches!(calc.put_field("CALC", FieldValue::String("A+".into())), Err(PutError::BadValue { .. })));
    assert_eq!(calc.get_field("CALC"), Some(FieldValue::String("A/B".into())), "a bad expression is not kept");
}

fn sample_records() -> Vec<Record> {
    let text = r#"
        record(ai, ai) { field(VAL, 3.25) field(EGU, mm) field(PREC, 3) field(HOPR, 10) field(LOPR, -10)
                         field(HIHI, 9) field(HHSV, MAJOR) field(PINI, YES) }
        record(ao, ao) { field(VAL, 1.5) field(DRVH, 5) field(DRVL, -5) field(HOPR, 8) field(EGU, "V") }
        record(bi, bi) { field(ZNAM, Off) field(ONAM, On) field(VAL, 1) }
        record(bo, bo) { field(ZNAM, Low) field(ONAM, High) }
        record(longin, li) { field(VAL, 42) field(HOPR, 100) field(EGU, counts) field(HIGH, 50) field(HSV, MINOR) }
        record(longout, lo) { field(VAL, 7) field(HOPR, 20) field(LOPR, 2) }
        record(stringin, si) { field(VAL, "12.5") }
        record(stringout, so) { field(VAL, hello) }
        record(mbbi, mbbi) { field(ZRST, a) field(ONST, b) field(TWST, c) field(VAL, 2) }
        record(mbbo, mbbo) { field(ZRST, x) field(ONST, "") field(TWST, z) field(VAL, 1) }
        record(waveform, wf) { field(FTVL, FLOAT) field(NELM, 5) field(VAL, [1.5, 2.5]) field(HOPR, 3) }
        record(calc, calc) { field(CALC, "A+1") field(A, 2) }
        record(calcout, calcout) { field(CALC, "A*2") field(A, 2) field(PREC, 1) }
        record(seq, seq) { field(DO0, 1) }
        record(fanout, fanout) { }
        record(dfanout, dfanout) { field(VAL, 2) field(EGU, V) }
        record(int64in, int64in) { field(VAL, 1234567890123) field(EGU, counts) }
        record(int64out, int64out) { field(VAL, -3) field(DRVH, 10) field(DRVL, -10) }
        record(lsi, lsi) { field(SIZV, 100) field(VAL, "12") }
        record(lso, lso) { field(VAL, "4.5") }
        record(mbbiDirect, mbbiDirect) { field(VAL, 5) }
        record(mbboDirect, mbboDirect) { field(VAL, 6) }
        record(aai, aai) { field(FTVL, SHORT) field(NELM, 3) field(VAL, [1, 2]) }
        record(aao, aao) { field(FTVL, DOUBLE) field(NELM, 3) field(PREC, 2) field(VAL, [0.5]) }
        record(subArray, subArray) { field(FTVL, LONG) field(MALM, 8) field(NELM, 3) }
        record(sel, sel) { field(A, 1) field(B, 2) field(SELM, "High Signal") }
        record(permissive, permissive) { field(VAL, 1) }
        record(state, state) { field(VAL, "12") }
        record(sub, sub) { field(VAL, 3) }
        record(aSub, aSub) { field(VAL, 3) }
        record(event, event) { field(VAL, "12") }
        record(histogram, histogram) { field(NELM, 3) field(ULIM, 3) field(SGNL, 1.5) }
        record(printf, printf) { field(FMT, "%d") field(INP0, "12") }
        record(compress, compress) { field(NSAM, 4) field(PREC, 1) }
    "#;
    let defs = parse_db(text, "all.db", &Macros::new()).unwrap();
    let mut records: Vec<Record> = defs.into_iter().map(|d| d.into_record()).collect();
    for r in &mut records {
        r.process(t(5));
    }
    records
}

#[test]
fn dbr_data_for_every_record_type_and_class() {
    let records = sample_records();
    assert_eq!(records.len(), RecordType::all().count());
    for record in &records {
        let native = record.native_type("VAL").unwrap();
        for class in DbrClass::FAMILIES {
            for requested in NativeType::ALL {
                let data_type = DbrType::from_parts(requested, class).unwrap();
                let result = record.dbr_data("VAL", data_type, None);
                let data = match result {
                    Ok(data) => data,
                    Err(GetError::Convert(_)) => {
                        assert_eq!(native, NativeType::String, "{} {data_type}", record.name());
                        assert_eq!(record.name(), "so", "only a non-numeric string fails");
                        continue;
                    }
                    Err(e) => panic!("{} {data_type}: {e}", record.name()),
                };
                assert_eq!(data.value.native_type(), requested);
                assert!(data.metadata.fits(data_type), "{} {data_type}: {:?}", record.name(), data.metadata);
                let count = data.count().unwrap();
                let bytes = data.encode(data_type).unwrap_or_else(|e| panic!("{} {data_type}: {e}", record.name()));
                let decoded = DbrData::decode(data_type, count, &bytes).unwrap();
                // NaN alarm limits do not compare equal; compare the bytes instead.
                assert_eq!(decoded.encode(data_type).unwrap(), bytes, "{} {data_type}", record.name());
                if class != DbrClass::Plain {
                    let alarm = decoded.metadata.alarm().unwrap();
                    assert_eq!((alarm.status, alarm.severity), stat_sevr(record));
                }
                if class == DbrClass::Time {
                    assert_eq!(decoded.metadata.timestamp(), Some(record.time()));
                }
            }
        }
    }
}

fn find<'a>(records: &'a [Record], name: &str) -> &'a Record {
    records.iter().find(|r| r.name() == name).unwrap()
}

#[test]
fn dbr_metadata_follows_epics() {
    let records = sample_records();
    let ai = find(&records, "ai");
    let ctrl = ai.dbr_data("VAL", DbrType::CtrlDouble, None).unwrap();
    let Metadata::Control { info, control, .. } = &ctrl.metadata else { panic!() };
    assert_eq!(info.units, "mm");
    assert_eq!(info.precision, 3);
    assert_eq!((info.upper_disp_limit, info.lower_disp_limit), (10.0, -10.0));
    assert_eq!(info.upper_alarm_limit, 9.0);
    assert!(info.upper_warning_limit.is_nan(), "HSV is NO_ALARM: the limit is reported as NaN");
    assert_eq!((control.upper_ctrl_limit, control.lower_ctrl_limit), (10.0, -10.0), "ai: HOPR/LOPR");
    assert_eq!(ctrl.value, Value::Double(vec![3.25]));
    let text = ai.dbr_data("VAL", DbrType::String, None).unwrap();
    assert_eq!(text.value, Value::String(vec!["3.250".into()]), "formatted with PREC");

    let ao = find(&records, "ao");
    let Metadata::Control { control, .. } = ao.dbr_data("VAL", DbrType::CtrlDouble, None).unwrap().metadata else {
        panic!()
    };
    assert_eq!((control.upper_ctrl_limit, control.lower_ctrl_limit), (5.0, -5.0), "ao: DRVH/DRVL");

    let lo = find(&records, "lo");
    let Metadata::Control { control, .. } = lo.dbr_data("VAL", DbrType::CtrlLong, None).unwrap().metadata else {
        panic!()
    };
    assert_eq!((control.upper_ctrl_limit, control.lower_ctrl_limit), (20.0, 2.0), "DRVH==DRVL: HOPR/LOPR");

    let li = find(&records, "li");
    assert_eq!(li.field_type("HOPR"), Some(FieldType::Long));
    assert_eq!(li.native_type("VAL"), Some(NativeType::Long));
    assert_eq!(stat_sevr(li), (alarm_status::NO_ALARM, 0));

    let bi = find(&records, "bi");
    let gr = bi.dbr_data("VAL", DbrType::GrEnum, None).unwrap();
    let strings = gr.metadata.enum_strings().unwrap();
    assert!(strings.len() == 2 && strings[0] == "Off" && strings[1] == "On", "{strings:?}");
    assert_eq!(bi.dbr_data("VAL", DbrType::String, None).unwrap().value, Value::String(vec!["On".into()]));
    let mbbo = find(&records, "mbbo");
    let strings = mbbo.dbr_data("VAL", DbrType::CtrlEnum, None).unwrap().metadata;
    assert_eq!(strings.enum_strings().unwrap().len(), 3, "up to the last defined state");
    let scan = mbbo.dbr_data("SCAN", DbrType::CtrlEnum, None).unwrap().metadata;
    assert_eq!(scan.enum_strings().unwrap()[3], "10 second");
    let stat = mbbo.dbr_data("STAT", DbrType::String, None).unwrap();
    assert_eq!(stat.value, Value::String(vec!["NO_ALARM".into()]));

    let wf = find(&records, "wf");
    assert_eq!(wf.dbr_data("VAL", DbrType::Float, None).unwrap().value, Value::Float(vec![1.5, 2.5]));
    assert_eq!(
        wf.dbr_data("VAL", DbrType::Double, Some(4)).unwrap().value,
        Value::Double(vec![1.5, 2.5, 0.0, 0.0]),
        "zero-filled up to the count asked for"
    );
    assert_eq!(wf.dbr_data("VAL", DbrType::Double, Some(6)), Err(GetError::BadCount { count: 6, max: 5 }));
    let nord = wf.dbr_data("NORD", DbrType::GrDouble, None).unwrap();
    assert_eq!(nord.metadata.graphic().unwrap().upper_disp_limit, 5.0);

    let desc = ai.dbr_data("DESC", DbrType::CtrlString, None).unwrap();
    assert!(matches!(desc.metadata, Metadata::Status(_)));
    let class = ai.dbr_data("VAL", DbrType::ClassName, None).unwrap();
    assert_eq!(class.value, Value::String(vec!["ai".into()]));
    let ack = ai.dbr_data("VAL", DbrType::StsackString, None).unwrap();
    assert!(matches!(ack.metadata, Metadata::StatusAck { ackt: 1, .. }));
    assert_eq!(ai.dbr_data("NOPE", DbrType::Double, None), Err(GetError::NoSuchField("NOPE".into())));
    assert_eq!(ai.native_type("PREC"), Some(NativeType::Short));
    assert_eq!(ai.native_type("DESC"), Some(NativeType::String));
    assert_eq!(ai.native_type("SCAN"), Some(NativeType::Enum));
    assert_eq!(ai.native_type("INP"), Some(NativeType::String));
    assert_eq!(find(&records, "wf").native_type("NELM"), Some(NativeType::Double), "ULONG → DOUBLE");
}

#[test]
fn put_dbr_converts_from_every_native_type() {
    let mut records = sample_records();
    let samples = [
        (DbrType::String, Value::String(vec!["4".into()])),
        (DbrType::Short, Value::Short(vec![4])),
        (DbrType::Float, Value::Float(vec![4.0])),
        (DbrType::Enum, Value::Enum(vec![4])),
        (DbrType::Char, Value::Char(vec![4])),
        (DbrType::Long, Value::Long(vec![4])),
        (DbrType::Double, Value::Double(vec![4.0])),
    ];
    for name in ["ai", "ao", "longin", "li", "lo", "calc", "si", "so", "wf"] {
        let Some(record) = records.iter_mut().find(|r| r.name() == name) else { continue };
        for (data_type, value) in &samples {
            record
                .put_dbr(if name == "calc" { "A" } else { "VAL" }, *data_type, &DbrData::plain(value.clone()))
                .unwrap_or_else(|e| panic!("{name} {data_type}: {e}"));
            let field = if name == "calc" { "A" } else { "VAL" };
            let back = record.dbr_data(field, DbrType::Double, None).unwrap().value;
            assert_eq!(back.to_f64_vec().unwrap()[0], 4.0, "{name} {data_type}");
        }
    }
    let bo = records.iter_mut().find(|r| r.name() == "bo").unwrap();
    bo.put_dbr("VAL", DbrType::String, &DbrData::plain(Value::String(vec!["High".into()]))).unwrap();
    assert_eq!(bo.get_field("VAL"), Some(FieldValue::Enum(1)));
    let err = bo.put_dbr("VAL", DbrType::String, &DbrData::plain(Value::String(vec!["Medium".into()])));
    assert!(matches!(err, Err(PutError::BadChoice { .. })));
    let so = records.iter_mut().find(|r| r.name() == "so").unwrap();
    so.put_dbr("VAL", DbrType::Double, &DbrData::plain(Value::Double(vec![2.5]))).unwrap();
    assert_eq!(so.get_field("VAL"), Some(FieldValue::String("2.5".into())));
    let si = records.iter_mut().find(|r| r.name() == "ai").unwrap();
    assert!(si.put_dbr("VAL", DbrType::String, &DbrData::plain(Value::String(vec!["abc".into()]))).is_err());
    assert!(matches!(
        si.put_dbr("VAL", DbrType::ClassName, &DbrData::plain(Value::String(vec!["x".into()]))),
        Err(PutError::BadType(_))
    ));
}

#[test]
fn alarm_acknowledgement() {
    let mut ai = record(r#"record(ai, "T") { field(HIHI, 1) field(HHSV, MAJOR) }"#);
    ai.put_field("VAL", FieldValue::Double(5.0)).unwrap();
    assert_eq!(ai.alarm().acks, severity::MAJOR);
    ai.put_dbr("VAL", DbrType::PutAcks, &DbrData::plain(Value::Enum(vec![severity::MAJOR]))).unwrap();
    assert_eq!(ai.alarm().acks, 0);
    ai.put_dbr("VAL", DbrType::PutAckt, &DbrData::plain(Value::Enum(vec![0]))).unwrap();
    assert!(!ai.alarm().ackt);
}
