//! Multi-bit binary output direct (`mbboDirectRecord`): `VAL` and its bits `B0`..`B1F` (writing a bit sets it in `VAL`); `DOL` in closed loop, `VAL` written to `OUT`.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::mbbi_direct::BITS;
use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "mbboDirect", fields: FIELDS, new: || Box::new(MbboDirect::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "OMSL": OMSL, PP;
    "NOBT": S, RO;
    "DOL": InLink;
    "OUT": OutLink;
    "RVAL": ULong, RO | PP;
    "ORAW": ULong, RO;
    "RBV": ULong, RO;
    "ORBV": ULong, RO;
    "MASK": ULong, RO;
    "MLST": L, RO;
    "OBIT": L, RO;
    "SHFT": UShort;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": L;
    "B0": UChar, PP;
    "B1": UChar, PP;
    "B2": UChar, PP;
    "B3": UChar, PP;
    "B4": UChar, PP;
    "B5": UChar, PP;
    "B6": UChar, PP;
    "B7": UChar, PP;
    "B8": UChar, PP;
    "B9": UChar, PP;
    "BA": UChar, PP;
    "BB": UChar, PP;
    "BC": UChar, PP;
    "BD": UChar, PP;
    "BE": UChar, PP;
    "BF": UChar, PP;
    "B10": UChar, PP;
    "B11": UChar, PP;
    "B12": UChar, PP;
    "B13": UChar, PP;
    "B14": UChar, PP;
    "B15": UChar, PP;
    "B16": UChar, PP;
    "B17": UChar, PP;
    "B18": UChar, PP;
    "B19": UChar, PP;
    "B1A": UChar, PP;
    "B1B": UChar, PP;
    "B1C": UChar, PP;
    "B1D": UChar, PP;
    "B1E": UChar, PP;
    "B1F": UChar, PP;
};

/// The state of an mbboDirect record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MbboDirect {
    /// `VAL`.
    pub val: i32,
    /// The bits `B0`..`B1F` as last posted.
    pub bits: u32,
    /// `VAL` as last posted (`MLST`).
    pub mlst: i32,
}

impl RecordSupport for MbboDirect {
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
            // mbboDirect's special(): a bit written sets or clears that bit of VAL.
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
        if ctx.index("OMSL") == 1
            && let Some(v) = ctx.input("DOL")
        {
            self.val = integer(v) as i32;
            *ctx.udf = false;
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
        write_output(ctx, FieldValue::Int(self.val.into()));
        mask
    }

    fn value_loaded(&mut self) {
        self.bits = self.val as u32;
        self.mlst = self.val;
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["DOL"]
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == "DOL").then_some("VAL")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::server::db::FieldValue::Int;

    #[test]
    fn bits_follow_val_and_set_it() {
        let mut db = db(r#"
            record(mbbiDirect, in) { field(INP, "out") }
            record(mbboDirect, out) { field(OUT, "in PP") }
        "#);
        put(&mut db, "out", Int(0b1010));
        assert_eq!((get(&db, "out.B1"), get(&db, "out.B3"), get(&db, "out.B0")), (Int(1), Int(1), Int(0)));
        assert_eq!(get(&db, "in"), Int(10));
        assert_eq!(get(&db, "in.B3"), Int(1));
        put(&mut db, "out.B0", Int(1));
        assert_eq!(get(&db, "out"), Int(11), "writing B0 sets bit 0 of VAL");
        assert_eq!(get(&db, "in.B0"), Int(1));
        put(&mut db, "out.B1F", Int(1));
        assert_eq!(get(&db, "out"), Int(i64::from(11_i32 | i32::MIN)));
    }
}
