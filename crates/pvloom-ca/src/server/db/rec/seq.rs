//! Sequence (`seqRecord`): for each selected group `n` (0..F) in order, waits
//! `DLYn` seconds, reads `DOLn` into `DOn` and writes `DOn` to `LNKn`.
//!
//! As base's seqRecord, every group runs after the processing, from the database's
//! deadlines (base's callback task, even without delay): the record stays active
//! (`PACT`) from the processing until the last group is written; then its alarms are
//! committed, `VAL` posted and the forward link followed. Only groups with a link
//! that is not constant (in `DOLn` or `LNKn`) take part.

use crate::proto::constants::{alarm_status, severity};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::Constant;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "seq", fields: &[FIELDS], new: || Box::new(Seq::default()) };

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

static DOL: [&str; 16] = [
    "DOL0", "DOL1", "DOL2", "DOL3", "DOL4", "DOL5", "DOL6", "DOL7", "DOL8", "DOL9", "DOLA", "DOLB", "DOLC", "DOLD",
    "DOLE", "DOLF",
];
const DO: [&str; 16] =
    ["DO0", "DO1", "DO2", "DO3", "DO4", "DO5", "DO6", "DO7", "DO8", "DO9", "DOA", "DOB", "DOC", "DOD", "DOE", "DOF"];
const DLY: [&str; 16] = [
    "DLY0", "DLY1", "DLY2", "DLY3", "DLY4", "DLY5", "DLY6", "DLY7", "DLY8", "DLY9", "DLYA", "DLYB", "DLYC", "DLYD",
    "DLYE", "DLYF",
];
const LNK: [&str; 16] = [
    "LNK0", "LNK1", "LNK2", "LNK3", "LNK4", "LNK5", "LNK6", "LNK7", "LNK8", "LNK9", "LNKA", "LNKB", "LNKC", "LNKD",
    "LNKE", "LNKF",
];
/// `SELL` first, then `DOL0`..`DOLF`.
static INPUTS: [&str; 17] = [
    "SELL", "DOL0", "DOL1", "DOL2", "DOL3", "DOL4", "DOL5", "DOL6", "DOL7", "DOL8", "DOL9", "DOLA", "DOLB", "DOLC",
    "DOLD", "DOLE", "DOLF",
];

/// A seq record keeps its fields generically; its state is the sequence under way.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seq {
    /// The groups this processing runs, in order.
    groups: Vec<usize>,
    /// The position in `groups` of the group whose turn it is.
    next: usize,
}

/// True when link field `name` holds a link to a record (not empty, not a constant):
/// base's `!dbLinkIsConstant`.
fn names_a_record(ctx: &Process<'_>, name: &'static str) -> bool {
    let text = ctx.get(name).to_text();
    !text.trim().is_empty() && Constant::parse(&text).is_none()
}

impl Seq {
    /// `asyncFinish`: the value is defined; alarms and `VAL` follow in the record.
    fn finish(&mut self, ctx: &mut Process<'_>) -> u16 {
        self.groups.clear();
        self.next = 0;
        *ctx.udf = false;
        0
    }

    /// Waits for the group whose turn it is, or finishes when none is left.
    fn wait_for_next_group(&mut self, ctx: &mut Process<'_>) -> u16 {
        match self.groups.get(self.next) {
            Some(&n) => {
                let delay = ctx.number(DLY[n]);
                ctx.resume_after(delay);
                0
            }
            None => self.finish(ctx),
        }
    }
}

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
            return self.finish(ctx);
        };
        self.groups = (0..16)
            .filter(|&n| mask & (1 << n) != 0 && (names_a_record(ctx, LNK[n]) || names_a_record(ctx, DOL[n])))
            .collect();
        self.next = 0;
        self.wait_for_next_group(ctx)
    }

    fn resume(&mut self, ctx: &mut Process<'_>) -> u16 {
        let Some(&n) = self.groups.get(self.next) else { return self.finish(ctx) };
        if let Some(v) = ctx.input(DOL[n]).and_then(FieldValue::as_f64) {
            ctx.set(DO[n], FieldValue::Double(v));
        }
        let value = FieldValue::Double(ctx.number(DO[n]));
        ctx.write(LNK[n], value);
        self.next += 1;
        self.wait_for_next_group(ctx)
    }

    fn input_links(&self) -> &'static [&'static str] {
        &INPUTS
    }

    fn links_read_before_processing(&self) -> &'static [&'static str] {
        &INPUTS[..1]
    }

    fn links_read_before_resuming(&self) -> &'static [&'static str] {
        match self.groups.get(self.next) {
            Some(&n) => std::slice::from_ref(&DOL[n]),
            None => &[],
        }
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
    use crate::server::db::FieldValue::{Double, Int};

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

    #[test]
    fn groups_run_in_order_each_after_its_delay() {
        let mut db = db(r#"
            record(ao, src) { field(VAL, 1) }
            record(ao, a) { }
            record(ao, b) { }
            record(calc, after) { field(CALC, "VAL+1") }
            record(seq, s) { field(DLY0, 0.5) field(DOL0, "src") field(LNK0, "a PP")
                             field(DLY2, 1) field(DOL2, "src") field(LNK2, "b PP") field(FLNK, after) }
        "#);
        process_at(&mut db, "s", at(0.0));
        assert_eq!((number(&db, "a"), number(&db, "s.PACT")), (0.0, 1.0), "group 0 waits DLY0");
        assert_eq!(db.next_deadline(), Some(at(0.5)));
        db.run_due(at(0.5));
        assert_eq!((number(&db, "a"), number(&db, "b")), (1.0, 0.0));
        assert_eq!(stamp(&db, "s"), 0.5, "time stamped at each group");
        assert_eq!(db.next_deadline(), Some(at(1.5)), "group 2's delay counts from group 0's write");
        // DOLn is read when its group's turn comes.
        put_at(&mut db, "src", Double(9.0), at(1.0));
        db.run_due(at(1.5));
        assert_eq!((number(&db, "b"), number(&db, "s.DO2")), (9.0, 9.0));
        assert_eq!(number(&db, "s.PACT"), 0.0);
        assert_eq!(number(&db, "after"), 1.0, "forward link after the last group");
        assert_eq!(alarm(&db, "s"), (alarm_status::NO_ALARM, severity::NO_ALARM));
    }

    #[test]
    fn groups_without_delay_still_run_after_the_processing() {
        let mut db = db(r#"
            record(ao, a) { }
            record(seq, s) { field(DO0, 4) field(LNK0, "a") field(DO1, 5) field(DOL1, "6") }
        "#);
        let id = db.find("s").unwrap();
        db.process(id, at(0.0));
        assert_eq!(number(&db, "a"), 0.0, "as base's callback task: after the processing");
        assert_eq!(db.next_deadline(), Some(at(0.0)));
        db.run_due(at(0.0));
        assert_eq!(number(&db, "a"), 4.0);
        assert_eq!(number(&db, "s.PACT"), 0.0, "group 1 has only constants: skipped");
    }

    #[test]
    fn seqs_starting_each_other_without_delay_do_not_hold_the_database() {
        let mut db = db(r#"
            record(ao, a) { }
            record(seq, s1) { field(DO0, 1) field(LNK0, "a") field(FLNK, s2) }
            record(seq, s2) { field(DO0, 2) field(LNK0, "a") field(FLNK, s1) }
        "#);
        process_at(&mut db, "s1", at(0.0));
        assert!(db.next_deadline().is_some_and(|t| t <= at(0.0)), "the ping-pong goes on, one call at a time");
    }
}
