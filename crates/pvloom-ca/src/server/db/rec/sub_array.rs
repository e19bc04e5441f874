//! Sub-array (`subArrayRecord`): `NELM` elements from index `INDX` of the first `MALM` elements `INP` holds.
//! The state and processing are the waveform's ([`Waveform`]) in the role of this type.

use super::types::*;
use super::waveform::{ArrayRole, Waveform};
use super::{FieldSpec, RecordTypeDef};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef {
    name: "subArray",
    fields: &[FIELDS],
    new: || Box::new(Waveform::with_role(ArrayRole::Sub { malm: 1, indx: 0 })),
};

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "PREC": S, PROP;
    "FTVL": FieldType::Menu(&MENU_FTYPE), RO;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "MALM": ULong, RO, "1";
    "NELM": ULong, PP, "1";
    "INDX": ULong, PP;
    "BUSY": S, RO;
    "NORD": L, RO;
};

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::dbr::Value;
    use crate::server::db::FieldValue::{Array, Int};

    #[test]
    fn arrays_flow_through_aao_aai_and_subarray() {
        let mut db = db(r#"
            record(aao, out) { field(FTVL, DOUBLE) field(NELM, 6) field(OUT, "in PP") }
            record(aai, in) { field(FTVL, LONG) field(NELM, 4) field(FLNK, part) }
            record(subArray, part) { field(FTVL, DOUBLE) field(INP, "in") field(MALM, 4) field(NELM, 2) field(INDX, 1) }
        "#);
        put(&mut db, "out", Array(Value::Double(vec![1.5, 2.0, 3.0, 4.0, 5.0])));
        assert_eq!(get(&db, "out.NORD"), Int(5));
        assert_eq!(get(&db, "in"), Array(Value::Long(vec![1, 2, 3, 4])), "NELM 4 of the 5 written");
        assert_eq!(get(&db, "part"), Array(Value::Double(vec![2.0, 3.0])), "2 elements from index 1");
        put(&mut db, "part.INDX", Int(3));
        assert_eq!(get(&db, "part"), Array(Value::Double(vec![4.0])), "only one left from index 3");
        assert_eq!(get(&db, "part.NORD"), Int(1));
        put(&mut db, "part.INDX", Int(9));
        assert_eq!(get(&db, "part.NORD"), Int(0));
    }
}
