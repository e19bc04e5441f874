//! 32-bit integer input (`longinRecord`).

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "longin", fields: FIELDS, new: || Box::new(Longin::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": L, PROP;
    "LOPR": L, PROP;
    "HIHI": L, PP | PROP;
    "LOLO": L, PP | PROP;
    "HIGH": L, PP | PROP;
    "LOW": L, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": L;
    "AFTC": D;
    "AFVL": D, RO;
    "ADEL": L;
    "MDEL": L;
    "LALM": L, RO;
    "ALST": L, RO;
    "MLST": L, RO;
    "SIOL": InLink;
    "SVAL": L;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of a longin record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Longin(pub Long);

impl RecordSupport for Longin {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_long(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_long(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        process_long(&mut self.0, false, ctx)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        long_limits(&self.0, field, field_type, None, limits);
    }

    fn value_loaded(&mut self) {
        long_loaded(&mut self.0);
    }
}
