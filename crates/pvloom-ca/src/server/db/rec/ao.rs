//! Analog output (`aoRecord`): drive limits, limit alarms, deadbands.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "ao", fields: FIELDS, new: || Box::new(Ao::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "OVAL": D;
    "OUT": OutLink;
    "OROC": D;
    "DOL": InLink;
    "OMSL": OMSL;
    "OIF": FieldType::Menu(&MENU_AO_OIF);
    "PREC": S, PROP;
    "LINR": CONVERT, PP;
    "EGUF": D, PP;
    "EGUL": D, PP;
    "EGU": s(16), PROP;
    "ROFF": ULong, PP;
    "EOFF": D, PP;
    "ESLO": D, PP, "1";
    "DRVH": D, PP | PROP;
    "DRVL": D, PP | PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "AOFF": D, PP;
    "ASLO": D, PP;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "ADEL": D;
    "MDEL": D;
    "RVAL": L, PP;
    "ORAW": L, RO;
    "RBV": L, RO;
    "ORBV": L, RO;
    "PVAL": D, RO;
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": D;
};

/// The state of an ao record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ao(pub Analog);

impl RecordSupport for Ao {
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
        if a.drvh > a.drvl {
            a.val = a.val.clamp(a.drvl, a.drvh);
        }
        if !ctx.raise_udf() {
            a.limits.check(a.val, ctx.alarm);
        }
        deadband_mask(&mut a.deadband, a.val)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        analog_limits(&self.0, field, field_type, Some((self.0.drvh, self.0.drvl)), limits);
    }

    fn value_is_nan(&self) -> bool {
        self.0.val.is_nan()
    }

    fn value_loaded(&mut self) {
        analog_loaded(&mut self.0);
    }
}
