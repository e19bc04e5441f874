//! Binary input (`biRecord`): state alarms.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "bi", fields: FIELDS, new: || Box::new(Bi::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "INP": InLink;
    "VAL": E, PP;
    "ZSV": SEVR, PP;
    "OSV": SEVR, PP;
    "COSV": SEVR, PP;
    "ZNAM": s(26), PP | PROP;
    "ONAM": s(26), PP | PROP;
    "RVAL": ULong, PP;
    "ORAW": ULong, RO;
    "MASK": ULong, RO;
    "LALM": UShort, RO;
    "MLST": UShort, RO;
    "SIOL": InLink;
    "SVAL": ULong;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of a bi record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bi(pub Binary);

impl RecordSupport for Bi {
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
