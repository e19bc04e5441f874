//! 32-bit integer output (`longoutRecord`): drive limits.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "longout", fields: FIELDS, new: || Box::new(Longout::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "OUT": OutLink;
    "DOL": InLink;
    "OMSL": OMSL;
    "EGU": s(16), PROP;
    "DRVH": L, PP | PROP;
    "DRVL": L, PP | PROP;
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
    "ADEL": L;
    "MDEL": L;
    "LALM": L, RO;
    "ALST": L, RO;
    "MLST": L, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": L;
    "PVAL": L;
    "OOCH": YESNO, 0, "1";
    "OOPT": FieldType::Menu(&MENU_LONGOUT_OOPT);
};

/// The state of a longout record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Longout(pub Long);

impl RecordSupport for Longout {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_long(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_long(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        process_long(&mut self.0, true, ctx)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        long_limits(&self.0, field, field_type, long_drive(&self.0), limits);
    }

    fn value_loaded(&mut self) {
        long_loaded(&mut self.0);
    }
}
