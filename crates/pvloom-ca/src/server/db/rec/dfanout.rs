//! Data fanout (`dfanoutRecord`): writes `VAL` (from `DOL` in closed loop)
//! to its selected output links `OUTA`..`OUTH`.

use crate::proto::constants::{alarm_status, severity};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "dfanout", fields: &[FIELDS], new: || Box::new(Dfanout::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "SELM": FieldType::Menu(&menus::MENU_DFANOUT_SELM);
    "SELN": UShort, 0, "1";
    "SELL": InLink;
    "OUTA": OutLink;
    "OUTB": OutLink;
    "OUTC": OutLink;
    "OUTD": OutLink;
    "OUTE": OutLink;
    "OUTF": OutLink;
    "OUTG": OutLink;
    "OUTH": OutLink;
    "DOL": InLink;
    "OMSL": OMSL;
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
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
};

const OUT: [&str; 8] = ["OUTA", "OUTB", "OUTC", "OUTD", "OUTE", "OUTF", "OUTG", "OUTH"];

/// The state of a dfanout record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dfanout(pub Analog);

impl RecordSupport for Dfanout {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_analog(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let (f, _) = number_and_index(value);
        Ok(set_analog(&mut self.0, name, f, || value.to_text()))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        let a = &mut self.0;
        if ctx.index("OMSL") == 1
            && let Some(v) = ctx.input("DOL").and_then(FieldValue::as_f64)
        {
            a.val = v;
            *ctx.udf = v.is_nan();
        }
        read_selection(ctx);
        if !ctx.raise_udf() {
            a.limits.check(a.val, ctx.alarm);
        }
        let seln = ctx.index("SELN");
        // dfanout counts SELN from 1 (0 selects nothing) and has no OFFS or SHFT.
        let mask: u16 = match ctx.index("SELM") {
            0 => 0xff,
            1 if seln > 8 => {
                ctx.raise(alarm_status::SOFT, severity::INVALID);
                0
            }
            1 if seln == 0 => 0,
            1 => 1 << (seln - 1),
            2 => seln,
            _ => {
                ctx.raise(alarm_status::SOFT, severity::INVALID);
                0
            }
        };
        for n in (0..8).filter(|n| mask & (1 << n) != 0) {
            ctx.write(OUT[n], FieldValue::Double(a.val));
        }
        deadband_mask(&mut a.deadband, a.val)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        analog_limits(&self.0, field, field_type, None, limits);
    }

    fn value_is_nan(&self) -> bool {
        self.0.val.is_nan()
    }

    fn value_loaded(&mut self) {
        analog_loaded(&mut self.0);
    }

    fn input_links(&self) -> &'static [&'static str] {
        &["DOL", "SELL"]
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        match link_field {
            "DOL" => Some("VAL"),
            "SELL" => Some("SELN"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::{Double, Int};

    #[test]
    fn value_goes_to_selected_outputs() {
        let mut db = db(r#"
            record(ao, src) { field(VAL, 4) }
            record(ao, x) { }
            record(ao, y) { }
            record(dfanout, d) { field(OMSL, "closed_loop") field(DOL, "src") field(OUTA, "x") field(OUTB, "y PP")
                                 field(HIGH, 3) field(HSV, MINOR) }
            record(dfanout, s) { field(SELM, "Specified") field(SELN, 2) field(OUTA, "x") field(OUTB, "y") }
        "#);
        process(&mut db, "d");
        assert_eq!((number(&db, "d"), number(&db, "x"), number(&db, "y")), (4.0, 4.0, 4.0));
        assert_eq!(alarm(&db, "d"), (alarm_status::HIGH, severity::MINOR));
        put(&mut db, "s", Double(6.0));
        assert_eq!((number(&db, "x"), number(&db, "y")), (4.0, 6.0), "SELN 2 is OUTB");
        put(&mut db, "s.SELN", Int(9));
        put(&mut db, "s", Double(7.0));
        assert_eq!(alarm(&db, "s"), (alarm_status::SOFT, severity::INVALID));
    }
}
