//! Multi-bit binary input direct (`mbbiDirectRecord`): `VAL` (from `INP`) and its bits `B0`..`B1F`.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "mbbiDirect", fields: &[FIELDS, BIT_FIELDS], new: || Box::new(MbbDirect::new(false)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "NOBT": S, RO;
    "INP": InLink;
    "RVAL": ULong, PP;
    "ORAW": ULong, RO;
    "MASK": ULong, RO;
    "MLST": L, RO;
    "SHFT": UShort;
    "SIOL": InLink;
    "SVAL": L;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

pub(crate) const BITS: [&str; 32] = [
    "B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "BA", "BB", "BC", "BD", "BE", "BF", "B10", "B11",
    "B12", "B13", "B14", "B15", "B16", "B17", "B18", "B19", "B1A", "B1B", "B1C", "B1D", "B1E", "B1F",
];

/// The state of an mbbiDirect or mbboDirect record.
#[derive(Debug, Clone, PartialEq)]
pub struct MbbDirect {
    /// `VAL`.
    pub val: i32,
    /// The bits `B0`..`B1F` as last posted.
    pub bits: u32,
    /// `VAL` as last posted (`MLST`).
    pub mlst: i32,
    /// An output record (mbboDirect) rather than an input (mbbiDirect).
    pub output: bool,
}

impl MbbDirect {
    pub(super) fn new(output: bool) -> Self {
        MbbDirect { val: 0, bits: 0, mlst: 0, output }
    }
}

impl RecordSupport for MbbDirect {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        if let Some(bit) = BITS.iter().position(|b| *b == name) {
            return Some(FieldValue::Int(i64::from((self.bits >> bit) & 1)));
        }
        match name {
            "VAL" => Some(FieldValue::Int(self.val.into())),
            "MLST" => Some(FieldValue::Int(self.mlst.into())),
            _ => None,
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        if let Some(bit) = BITS.iter().position(|b| *b == name) {
            // mbbiDirect's bits follow VAL when it processes; mbboDirect's special()
            // sets or clears the bit written in VAL.
            if !self.output {
                return Ok(false);
            }
            if value.as_f64().unwrap_or(0.0) != 0.0 {
                self.val |= 1 << bit;
            } else {
                self.val &= !(1 << bit);
            }
            self.bits = self.val as u32;
            return Ok(true);
        }
        if name == "VAL" {
            self.val = integer(value) as i32;
            return Ok(true);
        }
        Ok(false)
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            self.val = integer(&v) as i32;
        }
        ctx.raise_udf();
        let bits = self.val as u32;
        for (bit, name) in BITS.iter().enumerate() {
            if (bits ^ self.bits) & (1 << bit) != 0 {
                ctx.changes.post(name, DBE_VALUE | DBE_LOG);
            }
        }
        self.bits = bits;
        let mut mask = 0;
        if self.mlst != self.val {
            self.mlst = self.val;
            mask = DBE_VALUE | DBE_LOG;
        }
        if self.output {
            write_output(ctx, FieldValue::Int(self.val.into()));
        }
        mask
    }

    fn value_loaded(&mut self) {
        self.bits = self.val as u32;
        self.mlst = self.val;
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
