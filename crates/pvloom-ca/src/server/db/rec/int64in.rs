//! 64-bit integer input (`int64inRecord`): `INP` read into `VAL`, limit alarms, deadbands.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "int64in", fields: FIELDS, new: || Box::new(Int64in::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": Int64, PP;
    "INP": InLink;
    "EGU": s(16), PROP;
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
    "AFTC": D;
    "AFVL": D, RO;
    "ADEL": Int64;
    "MDEL": Int64;
    "LALM": Int64, RO;
    "ALST": Int64, RO;
    "MLST": Int64, RO;
    "SIOL": InLink;
    "SVAL": Int64;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of an int64in record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Int64in(pub Long);

impl RecordSupport for Int64in {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_long(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_long(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = ctx.input("INP") {
            self.0.val = integer(v);
            *ctx.udf = false;
        }
        process_long(&mut self.0, false, ctx)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        long_limits(&self.0, field, field_type, None, limits);
    }

    fn value_loaded(&mut self) {
        long_loaded(&mut self.0);
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["INP"]
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == "INP").then_some("VAL")
    }
}
