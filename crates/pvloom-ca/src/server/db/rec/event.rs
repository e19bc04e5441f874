//! Event (`eventRecord`): processing posts the event `VAL` names (read from
//! `INP` when that is a link); records with `SCAN` Event and that `EVNT` then
//! process, right after this record rather than on base's event task.

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "event", fields: &[FIELDS], new: || Box::new(Event) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(40);
    "INP": InLink;
    "SIOL": InLink;
    "SVAL": s(40);
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// An event record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event;

impl RecordSupport for Event {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(name) = ctx.input("INP").map(|v| v.to_text()) {
            ctx.set("VAL", crate::server::db::value::FieldValue::String(name));
        }
        let name = ctx.get("VAL").to_text();
        ctx.post_event(&name);
        *ctx.udf = false;
        0
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["INP"]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::server::db::FieldValue::{Double, String as Text};

    #[test]
    fn posted_events_process_event_scanned_records() {
        let mut db = db(r#"
            record(event, ev) { field(VAL, "tick") }
            record(calc, counter) { field(SCAN, "Event") field(EVNT, "tick") field(CALC, "VAL+1") }
            record(calc, other) { field(SCAN, "Event") field(EVNT, "tock") field(CALC, "VAL+1") }
            record(calcout, co) { field(CALC, "A") field(OEVT, "tock") }
        "#);
        process(&mut db, "ev");
        process(&mut db, "ev");
        assert_eq!((number(&db, "counter"), number(&db, "other")), (2.0, 0.0));
        put(&mut db, "co.A", Double(1.0));
        assert_eq!(number(&db, "other"), 1.0, "calcout's OEVT posted with its output");
        put(&mut db, "ev.VAL", Text("tock".into()));
        process(&mut db, "ev");
        assert_eq!(number(&db, "other"), 2.0);
    }
}
