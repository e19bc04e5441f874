//! Sequence (`seqRecord`): for each selected group `n` (0..F), reads `DOLn`
//! into `DOn` and writes `DOn` to `LNKn`. The delays `DLYn` are kept but not
//! waited for (the database has no timer), and every `DOLn` is read before
//! the first write rather than group by group.

use crate::proto::constants::{alarm_status, severity};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "seq", fields: &[FIELDS], new: || Box::new(Seq) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "SELM": FieldType::Menu(&menus::MENU_SEQ_SELM);
    "SELN": UShort, 0, "1";
    "SELL": InLink;
    "OFFS": S, 0, "0";
    "SHFT": S, 0, "-1";
    "OLDN": UShort;
    "PREC": S;
    "DLY0": D;
    "DOL0": InLink;
    "DO0": D;
    "LNK0": OutLink;
    "DLY1": D;
    "DOL1": InLink;
    "DO1": D;
    "LNK1": OutLink;
    "DLY2": D;
    "DOL2": InLink;
    "DO2": D;
    "LNK2": OutLink;
    "DLY3": D;
    "DOL3": InLink;
    "DO3": D;
    "LNK3": OutLink;
    "DLY4": D;
    "DOL4": InLink;
    "DO4": D;
    "LNK4": OutLink;
    "DLY5": D;
    "DOL5": InLink;
    "DO5": D;
    "LNK5": OutLink;
    "DLY6": D;
    "DOL6": InLink;
    "DO6": D;
    "LNK6": OutLink;
    "DLY7": D;
    "DOL7": InLink;
    "DO7": D;
    "LNK7": OutLink;
    "DLY8": D;
    "DOL8": InLink;
    "DO8": D;
    "LNK8": OutLink;
    "DLY9": D;
    "DOL9": InLink;
    "DO9": D;
    "LNK9": OutLink;
    "DLYA": D;
    "DOLA": InLink;
    "DOA": D;
    "LNKA": OutLink;
    "DLYB": D;
    "DOLB": InLink;
    "DOB": D;
    "LNKB": OutLink;
    "DLYC": D;
    "DOLC": InLink;
    "DOC": D;
    "LNKC": OutLink;
    "DLYD": D;
    "DOLD": InLink;
    "DOD": D;
    "LNKD": OutLink;
    "DLYE": D;
    "DOLE": InLink;
    "DOE": D;
    "LNKE": OutLink;
    "DLYF": D;
    "DOLF": InLink;
    "DOF": D;
    "LNKF": OutLink;
};

const DOL: [&str; 16] = [
    "DOL0", "DOL1", "DOL2", "DOL3", "DOL4", "DOL5", "DOL6", "DOL7", "DOL8", "DOL9", "DOLA", "DOLB", "DOLC", "DOLD",
    "DOLE", "DOLF",
];
const DO: [&str; 16] =
    ["DO0", "DO1", "DO2", "DO3", "DO4", "DO5", "DO6", "DO7", "DO8", "DO9", "DOA", "DOB", "DOC", "DOD", "DOE", "DOF"];
const LNK: [&str; 16] = [
    "LNK0", "LNK1", "LNK2", "LNK3", "LNK4", "LNK5", "LNK6", "LNK7", "LNK8", "LNK9", "LNKA", "LNKB", "LNKC", "LNKD",
    "LNKE", "LNKF",
];
/// `SELL` first, then `DOL0`..`DOLF`.
static INPUTS: [&str; 17] = [
    "SELL", "DOL0", "DOL1", "DOL2", "DOL3", "DOL4", "DOL5", "DOL6", "DOL7", "DOL8", "DOL9", "DOLA", "DOLB", "DOLC",
    "DOLD", "DOLE", "DOLF",
];

/// A seq record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seq;

impl RecordSupport for Seq {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        let selm = ctx.index("SELM");
        if selm != 0 {
            read_selection(ctx);
        }
        let Some(mask) = selected_links(selm, ctx.index("SELN"), ctx.number("OFFS") as i16, ctx.number("SHFT") as i16)
        else {
            ctx.raise(alarm_status::SOFT, severity::INVALID);
            *ctx.udf = false;
            return 0;
        };
        for n in (0..16).filter(|n| mask & (1 << n) != 0) {
            if !ctx.link_set(LNK[n]) && !ctx.link_set(DOL[n]) {
                continue;
            }
            if let Some(v) = ctx.input(DOL[n]).and_then(FieldValue::as_f64) {
                ctx.set(DO[n], FieldValue::Double(v));
            }
            let value = FieldValue::Double(ctx.number(DO[n]));
            ctx.write(LNK[n], value);
        }
        *ctx.udf = false;
        0
    }

    fn input_links(&self) -> &'static [&'static str] {
        &INPUTS
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        if link_field == "SELL" {
            return Some("SELN");
        }
        DOL.iter().position(|d| *d == link_field).map(|n| DO[n])
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::Int;

    #[test]
    fn selected_groups_copy_dol_to_lnk() {
        let mut db = db(r#"
            record(ao, src) { field(VAL, 2.5) }
            record(ao, a) { }
            record(ao, b) { }
            record(ao, c) { }
            record(seq, all) { field(DOL0, "src") field(LNK0, "a PP") field(DO1, 7) field(LNK1, "b") field(DOL2, "3") field(LNK2, "c") }
            record(seq, one) { field(SELM, "Specified") field(SELN, 2) field(DO2, 9) field(LNK2, "c") field(DO1, 8) field(LNK1, "b") }
            record(seq, bad) { field(SELM, "Specified") field(SELN, 16) }
        "#);
        process(&mut db, "all");
        assert_eq!(number(&db, "all.DO0"), 2.5);
        assert_eq!(number(&db, "a"), 2.5);
        assert_eq!(number(&db, "b"), 7.0);
        assert_eq!(number(&db, "all.DO2"), 3.0, "constant DOL loaded at init");
        assert_eq!(number(&db, "c"), 3.0);
        process(&mut db, "one");
        assert_eq!(number(&db, "c"), 9.0);
        assert_eq!(number(&db, "b"), 7.0, "group 1 not selected");
        put(&mut db, "one.SELM", Int(2));
        put(&mut db, "one.SHFT", Int(0));
        put(&mut db, "one.SELN", Int(0b110));
        process(&mut db, "one");
        assert_eq!(number(&db, "b"), 8.0, "mask selects groups 1 and 2");
        process(&mut db, "bad");
        assert_eq!(alarm(&db, "bad"), (alarm_status::SOFT, severity::INVALID));
    }
}
