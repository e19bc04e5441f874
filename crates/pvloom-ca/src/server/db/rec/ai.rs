//! Analog input (`aiRecord`): limit alarms and deadbands on `VAL`.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "ai", fields: &[FIELDS], new: || Box::new(AnalogRecord::new(false)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "INP": InLink;
    "PREC": S, PROP;
    "LINR": CONVERT, PP;
    "EGUF": D, PP;
    "EGUL": D, PP;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "AOFF": D, PP;
    "ASLO": D, PP, "1";
    "SMOO": D;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "AFTC": D;
    "ADEL": D;
    "MDEL": D;
    "LALM": D, RO;
    "AFVL": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
    "ESLO": D, PP, "1";
    "EOFF": D, PP;
    "ROFF": ULong, PP;
    "RVAL": L, PP;
    "ORAW": L, RO;
    "SIOL": InLink;
    "SVAL": D;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of an ai or ao record.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalogRecord {
    /// `VAL`, display, limits, deadbands, drive limits.
    pub analog: Analog,
    /// An output record (ao) rather than an input (ai).
    pub output: bool,
    /// ao's `OVAL`: the value written, `VAL` reached by steps of at most `OROC`.
    pub oval: f64,
    /// ao's `PVAL`: `VAL` at the last processing (`OIF` Incremental adds `DOL` to it).
    pub pval: f64,
    /// ai: the last read of `INP` succeeded, so `SMOO` smooths the next one.
    pub read_before: bool,
}

impl AnalogRecord {
    pub(super) fn new(output: bool) -> Self {
        AnalogRecord { analog: Analog::default(), output, oval: 0.0, pval: 0.0, read_before: false }
    }

    /// ao's `convert`: the drive limits on `value`, which becomes `VAL` and `PVAL`; then
    /// `OVAL` moves toward it by at most `OROC`, and `RVAL` follows `OVAL` (`LINR`,
    /// `ESLO`/`EOFF`, `ASLO`/`AOFF`, `ROFF`).
    fn convert_output(&mut self, ctx: &mut Process<'_>, mut value: f64) {
        let a = &mut self.analog;
        if a.drvh > a.drvl {
            value = value.clamp(a.drvl, a.drvh);
        }
        a.val = value;
        self.pval = value;
        let oroc = ctx.number("OROC");
        if oroc != 0.0 {
            let diff = value - self.oval;
            if diff < 0.0 && oroc < -diff {
                value = self.oval - oroc;
            } else if diff >= 0.0 && oroc < diff {
                value = self.oval + oroc;
            }
        }
        if self.oval.to_bits() != value.to_bits() {
            ctx.changes.post("OVAL", DBE_VALUE | DBE_LOG);
        }
        self.oval = value;
        let mut raw = value;
        if matches!(ctx.index("LINR"), 2 | 3) {
            let eslo = ctx.number("ESLO");
            raw = if eslo == 0.0 { 0.0 } else { (raw - ctx.number("EOFF")) / eslo };
        }
        raw -= ctx.number("AOFF");
        let aslo = ctx.number("ASLO");
        if aslo != 0.0 {
            raw /= aslo;
        }
        raw -= ctx.number("ROFF");
        // Rounded to the nearest 32-bit integer, saturating, as base does.
        let rval = if raw >= 0.0 {
            if raw >= f64::from(i32::MAX) - 0.5 { i32::MAX } else { (raw + 0.5) as i32 }
        } else if raw > 0.5 - f64::from(i32::MAX) - 1.0 {
            (raw - 0.5) as i32
        } else {
            i32::MIN
        };
        if ctx.number("RVAL") as i64 != i64::from(rval) {
            ctx.set("RVAL", FieldValue::Int(i64::from(rval)));
        }
        ctx.fields.insert("ORAW", FieldValue::Int(i64::from(rval)));
    }
}

impl RecordSupport for AnalogRecord {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        match name {
            "OVAL" if self.output => Some(FieldValue::Double(self.oval)),
            "PVAL" if self.output => Some(FieldValue::Double(self.pval)),
            _ => get_analog(&self.analog, name),
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let (f, _) = number_and_index(value);
        if self.output && name == "OVAL" {
            self.oval = f;
            return Ok(true);
        }
        Ok(set_analog(&mut self.analog, name, f, || value.to_text()))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if self.output {
            // Closed loop: DOL's value (added to PVAL when OIF is Incremental); else VAL.
            let value = match value_input(ctx, true).and_then(|v| v.as_f64()) {
                Some(v) if ctx.index("OIF") == 1 => self.pval + v,
                Some(v) => v,
                None => self.analog.val,
            };
            self.convert_output(ctx, value);
            *ctx.udf = self.analog.val.is_nan();
        } else if let Some(v) = value_input(ctx, false).and_then(|v| v.as_f64()) {
            // SMOO: a first-order filter over successive reads (from the second one).
            let smoo = ctx.number("SMOO");
            let old = self.analog.val;
            self.analog.val =
                if smoo != 0.0 && self.read_before && old.is_finite() { v * (1.0 - smoo) + old * smoo } else { v };
            self.read_before = true;
            *ctx.udf = v.is_nan();
        }
        let a = &mut self.analog;
        if !ctx.raise_udf() {
            a.limits.check(a.val, ctx.alarm);
        }
        let mask = deadband_mask(&mut a.deadband, a.val);
        if self.output {
            write_output(ctx, FieldValue::Double(self.oval));
        }
        mask
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        let drive = self.output.then_some((self.analog.drvh, self.analog.drvl));
        analog_limits(&self.analog, field, field_type, drive, limits);
    }

    fn value_is_nan(&self) -> bool {
        self.analog.val.is_nan()
    }

    fn value_loaded(&mut self) {
        analog_loaded(&mut self.analog);
        (self.oval, self.pval) = (self.analog.val, self.analog.val);
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
