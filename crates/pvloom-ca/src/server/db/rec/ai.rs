//! Analog input (`aiRecord`): limit alarms and deadbands on `VAL`.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "ai", fields: FIELDS, new: || Box::new(Ai::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "INP": InLink;
    "PREC": S, PROP;
    "LINR": CONVERT, PP;
    "EGUF": D, PP;
    "EGUL": D, PP;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "AOFF": D, PP;
    "ASLO": D, PP, "1";
    "SMOO": D;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "AFTC": D;
    "ADEL": D;
    "MDEL": D;
    "LALM": D, RO;
    "AFVL": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
    "ESLO": D, PP, "1";
    "EOFF": D, PP;
    "ROFF": ULong, PP;
    "RVAL": L, PP;
    "ORAW": L, RO;
    "SIOL": InLink;
    "SVAL": D;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of an ai record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ai(pub Analog);

impl RecordSupport for Ai {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_analog(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let (f, _) = number_and_index(value);
        Ok(set_analog(&mut self.0, name, f, || value.to_text()))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        let a = &mut self.0;
        if !ctx.raise_udf() {
            a.limits.check(a.val, ctx.alarm);
        }
        deadband_mask(&mut a.deadband, a.val)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        analog_limits(&self.0, field, field_type, None, limits);
    }

    fn value_is_nan(&self) -> bool {
        self.0.val.is_nan()
    }

    fn value_loaded(&mut self) {
        analog_loaded(&mut self.0);
    }
}
