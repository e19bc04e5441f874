//! Calculation with output (`calcoutRecord`): `VAL` = `CALC`; `OOPT` decides
//! whether to write, `DOPT` whether `OVAL` is `VAL` or `OCAL`, `IVOA` what an
//! INVALID record writes, `OEVT` the event posted with each write.
//!
//! `ODLY` > 0 delays the output as base does: the processing computes `VAL`, sets
//! `DLYA` (posted) and stays active (`PACT`); `ODLY` seconds later the database
//! resumes it: `DLYA` back to 0, `OVAL` (with `OCAL` evaluated then), the write, and
//! only then the alarms, `VAL`'s monitors and the forward link.

use crate::proto::constants::{DBE_LOG, DBE_VALUE, alarm_status, severity};
use crate::server::db::calc::CalcExpr;

use super::calc::{CALC_INPUTS, Calc, compile, post_args, set_result, take_inputs};
use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef {
    name: "calcout",
    fields: &[FIELDS, INPUT_LINKS, FIELDS_2, ARGS, FIELDS_3, LAST_ARGS, FIELDS_4],
    new: || Box::new(Calcout::default()),
};

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D;
    "PVAL": D;
    "CALC": s(80), PP, "0";
    "CLCV": L;
};

static FIELDS_2: &[FieldSpec] = fields! {
    "OUT": OutLink;
    "INAV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INBV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INCV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INDV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INEV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INFV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INGV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INHV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INIV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INJV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INKV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "INLV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO, "1";
    "OUTV": FieldType::Menu(&menus::MENU_CALCOUT_INAV), RO;
    "OOPT": FieldType::Menu(&menus::MENU_CALCOUT_OOPT);
    "ODLY": D;
    "DLYA": UShort, RO;
    "DOPT": FieldType::Menu(&menus::MENU_CALCOUT_DOPT);
    "OCAL": s(80), PP, "0";
    "OCLV": L;
    "OEVT": s(40);
    "IVOA": IVOA;
    "IVOV": D;
    "EGU": s(16), PROP;
    "PREC": S, PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "ADEL": D;
    "MDEL": D;
};

static FIELDS_3: &[FieldSpec] = fields! {
    "OVAL": D;
};

static FIELDS_4: &[FieldSpec] = fields! {
    "POVL": D;
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
};

/// The state of a calcout record: a calc record's, plus the output side.
#[derive(Debug, Clone, PartialEq)]
pub struct Calcout {
    /// `VAL`, `CALC`, arguments and input links.
    pub calc: Calc,
    /// The compiled `OCAL` expression.
    pub ocal: CalcExpr,
    /// `VAL` at the previous processing (`PVAL`), for `OOPT`.
    pub pval: f64,
    /// The value written to `OUT` (`OVAL`).
    pub oval: f64,
    /// `OVAL` as last posted (`POVL`).
    pub povl: f64,
    /// The events of `VAL` found when processing started, posted when a delayed
    /// output is done (base's monitor() runs after the delay).
    pub value_events_after_delay: u16,
}

impl Default for Calcout {
    fn default() -> Self {
        Calcout {
            calc: Calc::default(),
            ocal: CalcExpr::zero(),
            pval: 0.0,
            oval: 0.0,
            povl: 0.0,
            value_events_after_delay: 0,
        }
    }
}

/// `OOPT`: whether this processing writes the output.
fn output_wanted(oopt: u16, pval: f64, val: f64, mdel: f64) -> bool {
    match oopt {
        0 => true,
        // A NaN difference counts as a change, as base's `!(|d| <= MDEL)` does.
        1 => matches!((pval - val).abs().partial_cmp(&mdel), Some(std::cmp::Ordering::Greater) | None),
        2 => val == 0.0,
        3 => val != 0.0,
        4 => pval != 0.0 && val == 0.0,
        5 => pval == 0.0 && val != 0.0,
        _ => false,
    }
}

impl Calcout {
    /// `execOutput`: `OVAL` from `DOPT`, then the write unless `IVOA` forbids it.
    fn exec_output(&mut self, ctx: &mut Process<'_>) {
        if ctx.index("DOPT") == 1 {
            self.oval = self.ocal.eval(&self.calc.args, self.oval);
            *ctx.udf = self.oval.is_nan();
        } else {
            self.oval = self.calc.analog.val;
        }
        if *ctx.udf {
            ctx.raise(alarm_status::UDF, ctx.udfs);
        }
        if ctx.alarm.nsev >= severity::INVALID {
            match ctx.index("IVOA") {
                1 => return,
                2 => self.oval = ctx.number("IVOV"),
                _ => {}
            }
        }
        ctx.write("OUT", FieldValue::Double(self.oval));
        let event = ctx.get("OEVT").to_text();
        ctx.post_event(&event);
    }

    /// `monitor()`: the arguments and `OVAL` that changed; the events of `VAL`.
    fn post_changes(&mut self, ctx: &mut Process<'_>, value_mask: u16) -> u16 {
        post_args(&self.calc.args, &mut self.calc.last_args, ctx);
        if self.povl.to_bits() != self.oval.to_bits() {
            ctx.changes.post("OVAL", DBE_VALUE | DBE_LOG);
            self.povl = self.oval;
        }
        value_mask
    }
}

/// `DLYA`: a delayed output is pending. Base posts it with `DBE_VALUE` only.
fn set_delay_active(ctx: &mut Process<'_>, active: bool) {
    ctx.fields.insert("DLYA", FieldValue::Int(active.into()));
    ctx.changes.post("DLYA", DBE_VALUE);
}

impl RecordSupport for Calcout {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        match name {
            "OCAL" => Some(FieldValue::String(self.ocal.source().to_string())),
            "PVAL" => Some(FieldValue::Double(self.pval)),
            "OVAL" => Some(FieldValue::Double(self.oval)),
            "POVL" => Some(FieldValue::Double(self.povl)),
            _ => self.calc.get(name),
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let (f, _) = number_and_index(value);
        match name {
            "OCAL" => self.ocal = compile(name, value)?,
            "PVAL" => self.pval = f,
            "OVAL" => self.oval = f,
            "POVL" => self.povl = f,
            _ => return self.calc.put(name, value),
        }
        Ok(true)
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        let c = &mut self.calc;
        take_inputs(&mut c.args, &c.inputs, ctx);
        let result = c.expr.eval(&c.args, c.analog.val);
        let mask = set_result(&mut c.analog, result, ctx);
        let val = c.analog.val;
        let wanted = output_wanted(ctx.index("OOPT"), self.pval, val, c.analog.deadband.mdel);
        self.pval = val;
        if wanted {
            let delay = ctx.number("ODLY");
            if delay > 0.0 {
                set_delay_active(ctx, true);
                self.value_events_after_delay = mask;
                ctx.resume_after(delay);
                return 0;
            }
            self.exec_output(ctx);
        }
        self.post_changes(ctx, mask)
    }

    fn resume(&mut self, ctx: &mut Process<'_>) -> u16 {
        set_delay_active(ctx, false);
        self.exec_output(ctx);
        let mask = std::mem::take(&mut self.value_events_after_delay);
        self.post_changes(ctx, mask)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        self.calc.limits(field, field_type, limits);
    }

    fn value_is_nan(&self) -> bool {
        self.calc.value_is_nan()
    }

    fn value_loaded(&mut self) {
        self.calc.value_loaded();
        self.pval = self.calc.analog.val;
    }

    fn input_links(&self) -> &'static [&'static str] {
        &CALC_INPUTS
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::Double;

    #[test]
    fn output_options_decide_when_out_is_written() {
        let mut db = db(r#"
            record(ao, dest) { }
            record(calcout, every) { field(CALC, "A*2") field(OUT, "dest PP") }
            record(calcout, change) { field(CALC, "A") field(OOPT, "On Change") field(OUT, "dest") }
            record(calcout, nonzero) { field(CALC, "A") field(OOPT, "Transition To Non-zero") field(OUT, "dest") }
        "#);
        put(&mut db, "every.A", Double(3.0));
        assert_eq!(number(&db, "every"), 6.0);
        assert_eq!(number(&db, "every.OVAL"), 6.0);
        assert_eq!(number(&db, "dest"), 6.0, "PP output processed dest");
        assert_eq!(alarm(&db, "dest"), (alarm_status::NO_ALARM, severity::NO_ALARM));

        put(&mut db, "dest", Double(0.0));
        process(&mut db, "change");
        assert_eq!(number(&db, "dest"), 0.0, "A did not change: VAL 0 = PVAL 0, no write");
        put(&mut db, "change.A", Double(4.0));
        assert_eq!(number(&db, "dest"), 4.0);

        put(&mut db, "nonzero.A", Double(7.0));
        assert_eq!(number(&db, "dest"), 7.0, "0 -> 7 is a transition to non-zero");
        put(&mut db, "dest", Double(1.0));
        put(&mut db, "nonzero.A", Double(8.0));
        assert_eq!(number(&db, "dest"), 1.0, "7 -> 8 is no transition");
        assert_eq!(number(&db, "nonzero.PVAL"), 8.0);
    }

    #[test]
    fn ocal_and_invalid_output_action() {
        let mut db = db(r#"
            record(ao, dest) { }
            record(calcout, c) { field(CALC, "A") field(DOPT, "Use OCAL") field(OCAL, "A+100") field(OUT, "dest")
                                 field(HIHI, 10) field(HHSV, INVALID) field(IVOA, "Set output to IVOV") field(IVOV, -1) }
            record(calcout, quiet) { field(CALC, "A") field(HIHI, 10) field(HHSV, INVALID)
                                     field(IVOA, "Don't drive outputs") field(OUT, "dest") }
        "#);
        put(&mut db, "c.A", Double(1.0));
        assert_eq!(number(&db, "c"), 1.0);
        assert_eq!(number(&db, "dest"), 101.0, "OCAL gives OVAL");
        put(&mut db, "c.A", Double(20.0));
        assert_eq!(alarm(&db, "c"), (alarm_status::HIHI, severity::INVALID));
        assert_eq!(number(&db, "dest"), -1.0, "IVOV written when INVALID");
        put(&mut db, "quiet.A", Double(50.0));
        assert_eq!(number(&db, "dest"), -1.0, "not driven");
    }

    #[test]
    fn a_delayed_output_is_written_odly_later_then_the_forward_link() {
        let mut db = db(r#"
            record(ao, dest) { }
            record(calc, after) { field(CALC, "VAL+1") }
            record(calcout, c) { field(CALC, "A+1") field(ODLY, "1.5") field(OUT, "dest PP") field(FLNK, after) }
        "#);
        put_at(&mut db, "c.A", Double(1.0), at(0.0));
        assert_eq!(number(&db, "c"), 2.0, "VAL is computed at once");
        assert_eq!((number(&db, "c.DLYA"), number(&db, "c.PACT")), (1.0, 1.0));
        assert_eq!(number(&db, "dest"), 0.0, "not written yet");
        assert_eq!(number(&db, "after"), 0.0, "no forward link yet");
        assert_eq!(alarm(&db, "c").1, severity::INVALID, "alarms committed only at the end (UDF still)");
        assert_eq!(db.next_deadline(), Some(at(1.5)));

        assert!(db.run_due(at(1.499)).is_empty(), "nothing due before ODLY");
        let results = db.run_due(at(1.5));
        assert_eq!(number(&db, "dest"), 2.0);
        assert_eq!(number(&db, "after"), 1.0, "the forward link fired after the output");
        assert_eq!((number(&db, "c.DLYA"), number(&db, "c.PACT")), (0.0, 0.0));
        assert_eq!(alarm(&db, "c"), (alarm_status::NO_ALARM, severity::NO_ALARM));
        assert_eq!(stamp(&db, "c"), 1.5, "time stamped again when the output is written");
        assert_eq!(db.next_deadline(), None);
        let (first, changes) = &results[0];
        assert_eq!(*first, db.find("c").unwrap());
        assert_ne!(changes.mask_for("VAL"), 0, "VAL posted after the delay");
        assert_ne!(changes.mask_for("DLYA"), 0);
    }

    #[test]
    fn requests_while_delayed_wait_or_count_as_base_does() {
        let mut db = db(r#"
            record(ao, dest) { }
            record(calcout, c) { field(VAL, "0") field(CALC, "A") field(ODLY, "2") field(OUT, "dest PP") }
            record(calc, poke) { field(CALC, "1") field(FLNK, c) }
        "#);
        process_at(&mut db, "c", at(0.0));
        // A put to a PP field of the active record: stored, processed once it is done (RPRO).
        put_at(&mut db, "c.A", Double(7.0), at(0.5));
        assert_eq!((number(&db, "c.A"), number(&db, "c.RPRO"), number(&db, "c")), (7.0, 1.0, 0.0));
        // Scans and forward links outside a put are refused and counted (LCNT).
        for n in 1..=10 {
            process_at(&mut db, "poke", at(0.6));
            assert_eq!(number(&db, "c.LCNT"), f64::from(n));
        }
        assert_eq!(alarm(&db, "c").0, alarm_status::UDF, "ten refusals pass unnoticed");
        process_at(&mut db, "poke", at(0.7));
        assert_eq!(alarm(&db, "c"), (alarm_status::SCAN, severity::INVALID), "the eleventh raises SCAN");
        process_at(&mut db, "poke", at(0.8));
        assert_eq!(number(&db, "c.LCNT"), 11.0, "once SCAN is raised, no more counting");

        db.run_due(at(2.0));
        assert_eq!(number(&db, "dest"), 0.0, "the first output: VAL 0 computed before the put");
        assert_eq!(number(&db, "c.RPRO"), 0.0);
        assert_eq!(number(&db, "c.PACT"), 1.0, "reprocessed at once: a second delay is under way");
        assert_eq!(number(&db, "c.LCNT"), 0.0);
        assert_eq!(db.next_deadline(), Some(at(4.0)));
        db.run_due(at(4.0));
        assert_eq!(number(&db, "dest"), 7.0);
        assert_eq!(number(&db, "c.PACT"), 0.0);
    }

    #[test]
    fn no_delay_without_odly_or_without_output() {
        let mut db = db(r#"
            record(ao, dest) { }
            record(calcout, zero) { field(CALC, "A") field(ODLY, "0") field(OUT, "dest") }
            record(calcout, never) { field(CALC, "A") field(ODLY, "5") field(OOPT, "When Zero") field(OUT, "dest") }
        "#);
        put(&mut db, "zero.A", Double(3.0));
        assert_eq!(number(&db, "dest"), 3.0);
        put(&mut db, "never.A", Double(4.0));
        assert_eq!((number(&db, "never.PACT"), number(&db, "never.DLYA")), (0.0, 0.0), "no output: no delay");
        assert_eq!(db.next_deadline(), None);
    }
}
