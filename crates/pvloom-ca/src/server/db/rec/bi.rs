//! Binary input (`biRecord`): state alarms.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "bi", fields: &[FIELDS], new: || Box::new(BinaryRecord::new(false)) };

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

/// The state of a bi or bo record.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryRecord {
    /// `VAL`, state names and severities.
    pub binary: Binary,
    /// An output record (bo) rather than an input (bi).
    pub output: bool,
}

impl BinaryRecord {
    pub(super) fn new(output: bool) -> Self {
        BinaryRecord { binary: Binary::default(), output }
    }
}

impl RecordSupport for BinaryRecord {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_binary(&self.binary, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_binary(&mut self.binary, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            self.binary.val = u16::from(integer(&v) != 0);
        }
        let mask = process_binary(&mut self.binary, ctx);
        if self.output {
            write_output(ctx, FieldValue::Enum(self.binary.val));
        }
        mask
    }

    fn enum_strings(&self, _name: &str) -> Option<Vec<&str>> {
        Some(binary_strings(&self.binary))
    }

    fn value_loaded(&mut self) {
        self.binary.mlst = self.binary.val;
        self.binary.lalm = self.binary.val;
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
