//! Long string output (`lsoRecord`): a string of up to `SIZV` - 1 bytes; `DOL` in closed loop, `VAL` written to `OUT`.
//! Channels see `VAL` and `OVAL` as strings (as `DBR_STRING`, at most 39
//! bytes); a `.db` file can set at most 40 bytes of `VAL`.

use super::lsi::LongString;
use super::types::*;
use super::{FieldSpec, RecordTypeDef, menus};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "lso", fields: &[FIELDS], new: || Box::new(LongString::new(true)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(41), PP;
    "OVAL": s(41), RO;
    "SIZV": UShort, RO, "41";
    "LEN": ULong, RO;
    "OLEN": ULong, RO;
    "DOL": InLink;
    "IVOA": IVOA;
    "IVOV": s(40);
    "OMSL": OMSL;
    "OUT": OutLink;
    "MPST": FieldType::Menu(&menus::MENU_POST);
    "APST": FieldType::Menu(&menus::MENU_POST);
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SIOL": OutLink;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::server::db::FieldType;
    use crate::server::db::FieldValue::{Int, String as Text};

    #[test]
    fn long_strings_are_bounded_by_sizv() {
        let mut db = db(r#"
            record(lsi, in) { field(SIZV, 8) field(INP, "out") }
            record(lsi, small) { field(SIZV, 3) }
            record(lso, out) { field(SIZV, 100) field(OUT, "in PP") }
        "#);
        let in_id = db.find("in").unwrap();
        assert_eq!(db.record(in_id).field_type("VAL"), Some(FieldType::String { size: 16 }), "at least 16");
        assert_eq!(get(&db, "small.SIZV"), Int(16));
        assert_eq!(get(&db, "in.LEN"), Int(0), "no value yet");
        put(&mut db, "out", Text("hello, world".into()));
        assert_eq!(get(&db, "out"), Text("hello, world".into()));
        assert_eq!(get(&db, "out.LEN"), Int(13), "with the nul");
        assert_eq!(get(&db, "in"), Text("hello, world".into()), "SIZV 16 holds 15 bytes");
        assert_eq!(get(&db, "in.LEN"), Int(13));
        put(&mut db, "out", Text("a string longer than fifteen bytes".into()));
        assert_eq!(get(&db, "in"), Text("a string longer".into()));
        assert_eq!(get(&db, "in.OVAL"), Text("a string longer".into()));
        assert_eq!(get(&db, "in.LEN"), Int(16));
    }
}
