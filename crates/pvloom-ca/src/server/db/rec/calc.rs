//! Calculation (`calcRecord`): `VAL` = `CALC` of arguments `A`..`L`, read
//! from input links `INPA`..`INPL` before each processing.

use crate::proto::constants::{DBE_LOG, DBE_VALUE, alarm_status};
use crate::server::db::calc::{CalcExpr, NUM_ARGS};
use crate::server::db::record::{CalcInput, Link};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef = RecordTypeDef {
    name: "calc",
    fields: &[FIELDS, INPUT_LINKS, FIELDS_2, ARGS, LAST_ARGS, FIELDS_3],
    new: || Box::new(Calc::default()),
};

/// The calc input link fields, `INPA`..`INPL`.
pub(crate) const CALC_INPUTS: [&str; NUM_ARGS] =
    ["INPA", "INPB", "INPC", "INPD", "INPE", "INPF", "INPG", "INPH", "INPI", "INPJ", "INPK", "INPL"];
pub(crate) const CALC_ARGS: [&str; NUM_ARGS] = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L"];
pub(crate) const CALC_LAST: [&str; NUM_ARGS] = ["LA", "LB", "LC", "LD", "LE", "LF", "LG", "LH", "LI", "LJ", "LK", "LL"];

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D;
    "CALC": s(80), PP, "0";
};

static FIELDS_2: &[FieldSpec] = fields! {
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
    "AFTC": D;
    "AFVL": D, RO;
    "HYST": D;
    "ADEL": D;
    "MDEL": D;
};

static FIELDS_3: &[FieldSpec] = fields! {
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
};

/// Fields of calc records.
#[derive(Debug, Clone, PartialEq)]
pub struct Calc {
    /// `VAL`, display, limits and deadbands.
    pub analog: Analog,
    /// The compiled `CALC` expression.
    pub expr: CalcExpr,
    /// Arguments `A`..`L`.
    pub args: [f64; NUM_ARGS],
    /// Arguments as last posted (`LA`..`LL`).
    pub last_args: [f64; NUM_ARGS],
    /// Input links `INPA`..`INPL`.
    pub inputs: [CalcInput; NUM_ARGS],
}

impl Default for Calc {
    fn default() -> Self {
        Calc {
            analog: Analog::default(),
            expr: CalcExpr::zero(),
            args: [0.0; NUM_ARGS],
            last_args: [0.0; NUM_ARGS],
            inputs: std::array::from_fn(|_| CalcInput::None),
        }
    }
}

/// Reads arguments `A`..`L`, last posted arguments `LA`..`LL`, or `None`.
pub(crate) fn get_args(args: &[f64; NUM_ARGS], last: &[f64; NUM_ARGS], name: &str) -> Option<FieldValue> {
    if let Some(i) = CALC_ARGS.iter().position(|n| *n == name) {
        return Some(FieldValue::Double(args[i]));
    }
    CALC_LAST.iter().position(|n| *n == name).map(|i| FieldValue::Double(last[i]))
}

/// Stores argument `A`..`L` or input link `INPA`..`INPL` (a constant link
/// loads its argument once). `Some(true)`: stored; `Some(false)`: a link,
/// whose text is kept generically too; `None`: neither.
pub(crate) fn put_args(
    args: &mut [f64; NUM_ARGS],
    inputs: &mut [CalcInput; NUM_ARGS],
    name: &'static str,
    value: &FieldValue,
) -> Result<Option<bool>, PutError> {
    if let Some(i) = CALC_ARGS.iter().position(|n| *n == name) {
        args[i] = value.as_f64().unwrap_or(0.0);
        return Ok(Some(true));
    }
    let Some(i) = CALC_INPUTS.iter().position(|n| *n == name) else { return Ok(None) };
    let input = Link::parse_input(&value.to_text())
        .map_err(|err| PutError::BadValue { field: name, reason: err.to_string() })?;
    if let CalcInput::Constant(v) = input {
        args[i] = v;
    }
    inputs[i] = input;
    Ok(Some(false))
}

/// Copies the values the database read from links into the arguments
/// (constants and client-written arguments stay).
pub(crate) fn take_inputs(args: &mut [f64; NUM_ARGS], inputs: &[CalcInput; NUM_ARGS], ctx: &Process<'_>) {
    for (i, link_field) in CALC_INPUTS.iter().enumerate() {
        if let (CalcInput::Link(_), Some(value)) = (&inputs[i], ctx.input(link_field)) {
            args[i] = value.as_f64().unwrap_or(f64::NAN);
        }
    }
}

/// Posts the arguments that changed since last posted (`LA`..`LL` follow).
pub(crate) fn post_args(args: &[f64; NUM_ARGS], last: &mut [f64; NUM_ARGS], ctx: &mut Process<'_>) {
    for ((name, arg), last) in CALC_ARGS.iter().zip(args).zip(last.iter_mut()) {
        if arg.to_bits() != last.to_bits() {
            ctx.changes.post(name, DBE_VALUE | DBE_LOG);
            *last = *arg;
        }
    }
}

/// Compiles a `CALC`-like expression field.
pub(crate) fn compile(name: &'static str, value: &FieldValue) -> Result<CalcExpr, PutError> {
    CalcExpr::compile(&value.to_text()).map_err(|err| PutError::BadValue { field: name, reason: format!("CALC {err}") })
}

/// Limits of calc/calcout fields.
pub(crate) fn calc_limits(a: &Analog, field: &str, field_type: FieldType, limits: &mut Limits) {
    if matches!(field_type, FieldType::Float | FieldType::Double) {
        limits.units = a.display.egu.clone();
        limits.precision = reported_precision(field, a.display.prec);
    }
    if VALUE_LIKE.contains(&field) {
        limits.display = (a.display.hopr, a.display.lopr);
        limits.control = limits.display;
    }
    if field == "VAL" {
        limits.alarm = a.limits.reported();
    }
}

/// Sets `VAL` to an evaluation result: NaN leaves it undefined (UDF alarm),
/// else limit alarms apply. Returns the deadband mask of `VAL`.
pub(crate) fn set_result(a: &mut Analog, result: f64, ctx: &mut Process<'_>) -> u16 {
    a.val = result;
    *ctx.udf = result.is_nan();
    if *ctx.udf {
        ctx.alarm.raise(alarm_status::UDF, ctx.udfs);
    } else {
        a.limits.check(result, ctx.alarm);
    }
    deadband_mask(&mut a.deadband, result)
}

impl RecordSupport for Calc {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        if name == "CALC" {
            return Some(FieldValue::String(self.expr.source().to_string()));
        }
        get_args(&self.args, &self.last_args, name).or_else(|| get_analog(&self.analog, name))
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        if let Some(stored) = put_args(&mut self.args, &mut self.inputs, name, value)? {
            return Ok(stored);
        }
        if name == "CALC" {
            self.expr = compile(name, value)?;
            return Ok(true);
        }
        let (f, _) = number_and_index(value);
        Ok(set_analog(&mut self.analog, name, f, || value.to_text()))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        take_inputs(&mut self.args, &self.inputs, ctx);
        let result = self.expr.eval(&self.args, self.analog.val);
        let mask = set_result(&mut self.analog, result, ctx);
        post_args(&self.args, &mut self.last_args, ctx);
        mask
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        calc_limits(&self.analog, field, field_type, limits);
    }

    fn value_is_nan(&self) -> bool {
        self.analog.val.is_nan()
    }

    fn value_loaded(&mut self) {
        self.analog.deadband.mlst = self.analog.val;
        self.analog.deadband.alst = self.analog.val;
    }

    fn input_links(&self) -> &'static [&'static str] {
        &CALC_INPUTS
    }
}
