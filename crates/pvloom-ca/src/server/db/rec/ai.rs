//! Analog input (`aiRecord`): limit alarms and deadbands on `VAL`.

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
}

impl AnalogRecord {
    pub(super) fn new(output: bool) -> Self {
        AnalogRecord { analog: Analog::default(), output }
    }
}

impl RecordSupport for AnalogRecord {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_analog(&self.analog, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let (f, _) = number_and_index(value);
        Ok(set_analog(&mut self.analog, name, f, || value.to_text()))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        let a = &mut self.analog;
        if let Some(v) = value_input(ctx, self.output).and_then(|v| v.as_f64()) {
            a.val = v;
            *ctx.udf = v.is_nan();
        }
        if self.output && a.drvh > a.drvl {
            a.val = a.val.clamp(a.drvl, a.drvh);
        }
        if !ctx.raise_udf() {
            a.limits.check(a.val, ctx.alarm);
        }
        let mask = deadband_mask(&mut a.deadband, a.val);
        if self.output {
            write_output(ctx, FieldValue::Double(a.val));
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
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
