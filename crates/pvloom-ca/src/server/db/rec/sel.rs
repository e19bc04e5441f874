//! Select (`selRecord`): `VAL` is input `SELN` of `A`..`L` (Specified), or
//! the highest, lowest or median of those that are not NaN.

use crate::proto::constants::{alarm_status, severity};
use crate::server::db::calc::NUM_ARGS;
use crate::server::db::record::CalcInput;

use super::calc::{get_args, post_args, put_args, take_inputs};
use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef {
    name: "sel",
    fields: &[FIELDS, INPUT_LINKS, FIELDS_2, ARGS, LAST_ARGS, FIELDS_3],
    new: || Box::new(Sel::default()),
};

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, RO;
    "SELM": FieldType::Menu(&menus::MENU_SEL_SELM);
    "SELN": UShort;
    "PREC": S;
    "NVL": InLink;
};

static FIELDS_2: &[FieldSpec] = fields! {
    "EGU": s(16), PROP;
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
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
    "NLST": UShort, RO;
};

/// `NVL` first, then `INPA`..`INPL`.
static INPUTS: [&str; 13] =
    ["NVL", "INPA", "INPB", "INPC", "INPD", "INPE", "INPF", "INPG", "INPH", "INPI", "INPJ", "INPK", "INPL"];

/// The state of a sel record.
#[derive(Debug, Clone, PartialEq)]
pub struct Sel {
    /// `VAL`, display, limits and deadbands.
    pub analog: Analog,
    /// Inputs `A`..`L`.
    pub args: [f64; NUM_ARGS],
    /// Inputs as last posted (`LA`..`LL`).
    pub last_args: [f64; NUM_ARGS],
    /// Input links `INPA`..`INPL`.
    pub inputs: [CalcInput; NUM_ARGS],
}

impl Default for Sel {
    /// init_record sets every input to NaN (undefined) before loading constant links.
    fn default() -> Self {
        Sel {
            analog: Analog::default(),
            args: [f64::NAN; NUM_ARGS],
            last_args: [f64::NAN; NUM_ARGS],
            inputs: std::array::from_fn(|_| CalcInput::None),
        }
    }
}

/// `do_sel`: the selected value and the new `SELN` (High/Low: the input
/// chosen; Median: how many inputs are defined). `None`: SELN out of range.
fn select(selm: u16, seln: u16, args: &[f64; NUM_ARGS]) -> Option<(f64, u16)> {
    let defined = || args.iter().enumerate().filter(|(_, v)| !v.is_nan());
    match selm {
        0 => args.get(usize::from(seln)).map(|v| (*v, seln)),
        1 => Some(
            defined().fold((f64::NEG_INFINITY, seln), |best, (i, &v)| if best.0 < v { (v, i as u16) } else { best }),
        ),
        2 => Some(defined().fold((f64::INFINITY, seln), |best, (i, &v)| if best.0 > v { (v, i as u16) } else { best })),
        _ => {
            let mut order: Vec<f64> = defined().map(|(_, &v)| v).collect();
            order.sort_by(f64::total_cmp);
            Some((order.get(order.len() / 2).copied().unwrap_or(f64::NAN), order.len() as u16))
        }
    }
}

impl RecordSupport for Sel {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_args(&self.args, &self.last_args, name).or_else(|| get_analog(&self.analog, name))
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        if let Some(stored) = put_args(&mut self.args, &mut self.inputs, name, value)? {
            return Ok(stored);
        }
        let (f, _) = number_and_index(value);
        Ok(set_analog(&mut self.analog, name, f, || value.to_text()))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = ctx.input("NVL").and_then(FieldValue::as_f64) {
            ctx.set("SELN", FieldValue::Int(i64::from(v as u16)));
        }
        take_inputs(&mut self.args, &self.inputs, ctx);
        match select(ctx.index("SELM"), ctx.index("SELN"), &self.args) {
            Some((val, seln)) => {
                self.analog.val = val;
                *ctx.udf = val.is_nan();
                ctx.set("SELN", FieldValue::Int(seln.into()));
            }
            None => ctx.raise(alarm_status::SOFT, severity::INVALID),
        }
        if !ctx.raise_udf() {
            self.analog.limits.check(self.analog.val, ctx.alarm);
        }
        post_args(&self.args, &mut self.last_args, ctx);
        deadband_mask(&mut self.analog.deadband, self.analog.val)
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        analog_limits(&self.analog, field, field_type, None, limits);
    }

    fn value_is_nan(&self) -> bool {
        self.analog.val.is_nan()
    }

    fn value_loaded(&mut self) {
        analog_loaded(&mut self.analog);
    }

    fn init_record(&mut self) {
        // As base: every input undefined, whatever the file set, but for constant links.
        for (arg, input) in self.args.iter_mut().zip(&self.inputs) {
            *arg = match input {
                CalcInput::Constant(v) => *v,
                _ => f64::NAN,
            };
        }
    }

    fn input_links(&self) -> &'static [&'static str] {
        &INPUTS
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == "NVL").then_some("SELN")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::proto::constants::{alarm_status, severity};
    use crate::server::db::FieldValue::Int;

    #[test]
    fn selection_modes() {
        let mut db = db(r#"
            record(ao, x) { field(VAL, 5) }
            record(ao, y) { field(VAL, -2) }
            record(ao, z) { field(VAL, 9) }
            record(sel, high) { field(SELM, "High Signal") field(INPA, "x") field(INPB, "y") field(INPC, "z") }
            record(sel, low) { field(SELM, "Low Signal") field(INPA, "x") field(INPB, "y") field(INPC, "z") }
            record(sel, median) { field(SELM, "Median Signal") field(INPA, "x") field(INPB, "y") field(INPC, "z") }
            record(sel, pick) { field(NVL, "1") field(INPA, "x") field(INPB, "y") }
        "#);
        for name in ["high", "low", "median", "pick"] {
            process(&mut db, name);
        }
        assert_eq!((number(&db, "high"), get(&db, "high.SELN")), (9.0, Int(2)));
        assert_eq!((number(&db, "low"), get(&db, "low.SELN")), (-2.0, Int(1)));
        assert_eq!((number(&db, "median"), get(&db, "median.SELN")), (5.0, Int(3)), "SELN counts the inputs");
        assert_eq!(number(&db, "pick"), -2.0, "constant NVL 1 selects B");
        put(&mut db, "pick.SELN", Int(12));
        process(&mut db, "pick");
        assert_eq!(alarm(&db, "pick"), (alarm_status::SOFT, severity::INVALID));
    }
}
