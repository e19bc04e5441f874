//! State (`stateRecord`): a 20-byte string `VAL`, posted when it changes.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "state", fields: &[FIELDS], new: || Box::new(State) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(20), PP;
    "OVAL": s(20), RO;
};

/// A state record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State;

impl RecordSupport for State {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        *ctx.udf = false;
        let val = ctx.get("VAL");
        if ctx.get("OVAL") == val {
            return 0;
        }
        ctx.fields.insert("OVAL", val);
        DBE_VALUE | DBE_LOG
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::{Int, String as Text};

    #[test]
    fn state_permissive_and_subroutines() {
        let mut db = db(r#"
            record(state, st) { }
            record(permissive, perm) { field(LABL, "door") }
            record(sub, s) { field(SNAM, "mySub") field(INPA, "st") }
            record(aSub, as) { field(SNAM, "myASub") field(FTA, LONG) field(NOA, 4) }
        "#);
        put(&mut db, "st", Text("ready".into()));
        assert_eq!((get(&db, "st"), get(&db, "st.OVAL")), (Text("ready".into()), Text("ready".into())));
        assert_eq!(alarm(&db, "st"), (alarm_status::NO_ALARM, severity::NO_ALARM));
        put(&mut db, "perm.WFLG", Int(1));
        assert_eq!(get(&db, "perm.OFLG"), Int(1));
        process(&mut db, "s");
        assert_eq!(alarm(&db, "s"), (alarm_status::BAD_SUB, severity::INVALID));
        process(&mut db, "as");
        assert_eq!(alarm(&db, "as"), (alarm_status::BAD_SUB, severity::INVALID));
        assert_eq!(get(&db, "as.NOA"), Int(4));
        assert_eq!(get(&db, "as"), Int(33488931), "S_db_BadSub, as base stores it");
    }
}
