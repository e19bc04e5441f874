//! Multi-bit binary output direct (`mbboDirectRecord`): `VAL` and its bits `B0`..`B1F` (writing a bit sets it in `VAL`); `DOL` in closed loop, `VAL` written to `OUT`.

use super::mbbi_direct::MbbDirect;
use super::shared::*;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "mbboDirect", fields: &[FIELDS, BIT_FIELDS], new: || Box::new(MbbDirect::new(true)) };

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
};

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
