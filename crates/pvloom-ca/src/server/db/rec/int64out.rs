//! 64-bit integer output (`int64outRecord`): drive limits; `DOL` in closed loop, `VAL` written to `OUT`.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "int64out", fields: FIELDS, new: || Box::new(Int64out::default()) };

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

/// The state of an int64out record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Int64out(pub Long);

impl RecordSupport for Int64out {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_long(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_long(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if ctx.index("OMSL") == 1
            && let Some(v) = ctx.input("DOL")
        {
            self.0.val = integer(v);
            *ctx.udf = false;
        }
        let mask = process_long(&mut self.0, true, ctx);
        write_output(ctx, FieldValue::Int(self.0.val));
        mask
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        long_limits(&self.0, field, field_type, long_drive(&self.0), limits);
    }

    fn value_loaded(&mut self) {
        long_loaded(&mut self.0);
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["DOL"]
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == "DOL").then_some("VAL")
    }
}

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
