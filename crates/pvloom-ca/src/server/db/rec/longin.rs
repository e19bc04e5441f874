//! 32-bit integer input (`longinRecord`).

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "longin", fields: &[FIELDS], new: || Box::new(LongRecord::new(false)) };

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

/// The state of a longin, longout, int64in or int64out record.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRecord {
    /// `VAL`, display, limits, deadbands, drive limits.
    pub long: Long,
    /// 64-bit `VAL` (int64in, int64out) rather than 32-bit.
    pub wide: bool,
    /// An output record (longout) rather than an input (longin).
    pub output: bool,
    /// longout's `PVAL`: `VAL` at the last processing (`OOPT` compares with it).
    pub pval: i64,
    /// longout: not processed yet (`OOPT` On Change writes the first time).
    pub first: bool,
    /// longout: `OUT` was written since the last processing (with `OOCH` YES, On Change
    /// writes to the new target).
    pub out_changed: bool,
}

impl LongRecord {
    pub(super) fn new(output: bool) -> Self {
        LongRecord { long: Long::default(), wide: false, output, pval: 0, first: true, out_changed: false }
    }

    /// longout's `OOPT`: whether this processing writes `OUT` (int64out always does).
    fn output_wanted(&self, ctx: &Process<'_>) -> bool {
        if self.wide {
            return true;
        }
        let (val, pval) = (self.long.val, self.pval);
        match ctx.index("OOPT") {
            1 => self.first || (self.out_changed && ctx.index("OOCH") == 1) || val != pval,
            2 => val == 0,
            3 => val != 0,
            4 => val == 0 && pval != 0,
            5 => val != 0 && pval == 0,
            _ => true,
        }
    }

    pub(super) fn wide(output: bool) -> Self {
        LongRecord { wide: true, ..LongRecord::new(output) }
    }
}

impl RecordSupport for LongRecord {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        if name == "PVAL" && self.output && !self.wide {
            return Some(FieldValue::Int(self.pval));
        }
        get_long(&self.long, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        if name == "OUT" && self.output {
            // A redirected output: `OOCH` decides at the next processing.
            self.out_changed = true;
            return Ok(false);
        }
        Ok(set_long(&mut self.long, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            let v = integer(&v);
            self.long.val = if self.wide { v } else { i64::from(v as i32) };
        }
        let mask = process_long(&mut self.long, self.output, ctx);
        if self.output {
            if self.output_wanted(ctx) {
                write_output(ctx, FieldValue::Int(self.long.val));
            }
            self.pval = self.long.val;
            (self.first, self.out_changed) = (false, false);
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
