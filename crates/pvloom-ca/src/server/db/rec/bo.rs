//! Binary output (`boRecord`): state alarms.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "bo", fields: FIELDS, new: || Box::new(Bo::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": E, PP;
    "OMSL": OMSL;
    "DOL": InLink;
    "OUT": OutLink;
    "HIGH": D;
    "ZNAM": s(26), PP | PROP;
    "ONAM": s(26), PP | PROP;
    "RVAL": ULong, PP;
    "ORAW": ULong, RO;
    "MASK": ULong, RO;
    "ZSV": SEVR, PP;
    "OSV": SEVR, PP;
    "COSV": SEVR, PP;
    "RBV": ULong, RO;
    "ORBV": ULong, RO;
    "MLST": UShort, RO;
    "LALM": UShort, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": UShort;
};

/// The state of a bo record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bo(pub Binary);

impl RecordSupport for Bo {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_binary(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_binary(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        process_binary(&mut self.0, ctx)
    }

    fn enum_strings(&self, _name: &str) -> Option<Vec<&str>> {
        Some(binary_strings(&self.0))
    }

    fn value_loaded(&mut self) {
        self.0.mlst = self.0.val;
        self.0.lalm = self.0.val;
    }
}
