//! 64-bit integer input (`int64inRecord`): `INP` read into `VAL`, limit alarms, deadbands.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "int64in", fields: FIELDS, new: || Box::new(Int64Record::new(false)) };

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

/// The state of an int64in or int64out record.
#[derive(Debug, Clone, PartialEq)]
pub struct Int64Record {
    /// `VAL`, display, limits, deadbands, drive limits.
    pub long: Long,
    /// An output record (int64out) rather than an input (int64in).
    pub output: bool,
}

impl Int64Record {
    pub(super) fn new(output: bool) -> Self {
        Int64Record { long: Long::default(), output }
    }
}

impl RecordSupport for Int64Record {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_long(&self.long, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_long(&mut self.long, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            self.long.val = integer(&v);
        }
        let mask = process_long(&mut self.long, self.output, ctx);
        if self.output {
            write_output(ctx, FieldValue::Int(self.long.val));
        }
        mask
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        let drive = if self.output { long_drive(&self.long) } else { None };
        long_limits(&self.long, field, field_type, drive, limits);
    }

    fn value_loaded(&mut self) {
        long_loaded(&mut self.long);
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
