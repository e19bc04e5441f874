//! Fanout (`fanoutRecord`): processes the records its selected forward
//! links `LNK0`..`LNKF` name.

use crate::proto::constants::{alarm_status, severity};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "fanout", fields: &[FIELDS], new: || Box::new(Fanout) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "SELM": FieldType::Menu(&menus::MENU_FANOUT_SELM);
    "SELN": UShort, 0, "1";
    "SELL": InLink;
    "OFFS": S, 0, "0";
    "SHFT": S, 0, "-1";
    "LNK0": FwdLink;
    "LNK1": FwdLink;
    "LNK2": FwdLink;
    "LNK3": FwdLink;
    "LNK4": FwdLink;
    "LNK5": FwdLink;
    "LNK6": FwdLink;
    "LNK7": FwdLink;
    "LNK8": FwdLink;
    "LNK9": FwdLink;
    "LNKA": FwdLink;
    "LNKB": FwdLink;
    "LNKC": FwdLink;
    "LNKD": FwdLink;
    "LNKE": FwdLink;
    "LNKF": FwdLink;
};

const LNK: [&str; 16] = [
    "LNK0", "LNK1", "LNK2", "LNK3", "LNK4", "LNK5", "LNK6", "LNK7", "LNK8", "LNK9", "LNKA", "LNKB", "LNKC", "LNKD",
    "LNKE", "LNKF",
];

/// A fanout record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fanout;

impl RecordSupport for Fanout {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        read_selection(ctx);
        let selm = ctx.index("SELM");
        match selected_links(selm, ctx.index("SELN"), ctx.number("OFFS") as i16, ctx.number("SHFT") as i16) {
            Some(mask) => {
                ctx.follow.process_links.extend((0..16).filter(|n| mask & (1 << n) != 0).map(|n| LNK[n]));
            }
            None => ctx.raise(alarm_status::SOFT, severity::INVALID),
        }
        *ctx.udf = false;
        0
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["SELL"]
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == "SELL").then_some("SELN")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::{Double, Int};

    #[test]
    fn selected_links_process_their_records() {
        let mut db = db(r#"
            record(calc, a) { field(CALC, "VAL+1") }
            record(calc, b) { field(CALC, "VAL+1") }
            record(ao, sel) { field(VAL, 1) }
            record(fanout, all) { field(LNK0, "a") field(LNK5, "b") }
            record(fanout, pick) { field(SELM, "Specified") field(SELL, "sel") field(LNK0, "a") field(LNK1, "b") }
            record(fanout, mask) { field(SELM, "Mask") field(SHFT, 0) field(SELN, 3) field(LNK0, "a") field(LNK1, "b") }
        "#);
        process(&mut db, "all");
        assert_eq!((number(&db, "a"), number(&db, "b")), (1.0, 1.0));
        process(&mut db, "pick");
        assert_eq!((number(&db, "a"), number(&db, "b")), (1.0, 2.0), "SELL gave SELN 1");
        assert_eq!(get(&db, "pick.SELN"), Int(1));
        process(&mut db, "mask");
        assert_eq!((number(&db, "a"), number(&db, "b")), (2.0, 3.0));
        put(&mut db, "sel", Double(40.0));
        process(&mut db, "pick");
        assert_eq!(alarm(&db, "pick"), (alarm_status::SOFT, severity::INVALID));
    }
}
