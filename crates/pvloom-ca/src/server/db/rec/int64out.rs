//! 64-bit integer output (`int64outRecord`): drive limits; `DOL` in closed loop, `VAL` written to `OUT`.

use super::longin::LongRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "int64out", fields: &[FIELDS], new: || Box::new(LongRecord::wide(true)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": Int64, PP;
    "OUT": OutLink;
    "DOL": InLink;
    "OMSL": OMSL;
    "EGU": s(16), PROP;
    "DRVH": Int64, PP | PROP;
    "DRVL": Int64, PP | PROP;
    "HOPR": Int64, PROP;
    "LOPR": Int64, PROP;
    "HIHI": Int64, PP | PROP;
    "LOLO": Int64, PP | PROP;
    "HIGH": Int64, PP | PROP;
    "LOW": Int64, PP | PROP;
    "HHSV": SEVR, PP;
    "LLSV": SEVR, PP;
    "HSV": SEVR, PP;
    "LSV": SEVR, PP;
    "HYST": Int64;
    "ADEL": Int64;
    "MDEL": Int64;
    "LALM": Int64, RO;
    "ALST": Int64, RO;
    "MLST": Int64, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": Int64;
};

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::Int;

    #[test]
    fn sixty_four_bit_values_pass_exactly() {
        let big = (1_i64 << 60) + 1;
        let mut db = db(r#"
            record(int64in, in) { field(INP, "out") field(HIGH, 100) field(HSV, MINOR) }
            record(int64out, out) { field(OUT, "in PP") field(DRVH, 2000000000000000000) field(DRVL, -5) }
            record(int64out, closed) { field(OMSL, "closed_loop") field(DOL, "in") }
        "#);
        put(&mut db, "out", Int(big));
        assert_eq!(get(&db, "out"), Int(big), "below DRVH");
        assert_eq!(get(&db, "in"), Int(big), "in processed through the PP link, read INP");
        assert_eq!(alarm(&db, "in"), (alarm_status::HIGH, severity::MINOR));
        put(&mut db, "out", Int(-100));
        assert_eq!(get(&db, "out"), Int(-5), "clamped to DRVL");
        process(&mut db, "closed");
        assert_eq!(get(&db, "closed"), Int(-5));
    }
}
