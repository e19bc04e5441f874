//! Field groups several record types share: display, limit alarms,
//! deadbands, binary and multi-bit states, strings.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::super::alarm::{LimitAlarms, check_deadband};
use super::super::value::*;
use super::types::*;
use super::{FieldSpec, Limits};

/// Display properties shared by numeric records: `EGU`, `PREC`, `HOPR`, `LOPR`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Display {
    /// Engineering units.
    pub egu: String,
    /// Display precision.
    pub prec: i16,
    /// Upper display limit.
    pub hopr: f64,
    /// Lower display limit.
    pub lopr: f64,
}

/// Monitor (`MDEL`) and archive (`ADEL`) deadbands with the last posted values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Deadband {
    /// Monitor deadband.
    pub mdel: f64,
    /// Archive deadband.
    pub adel: f64,
    /// Last value posted with `DBE_VALUE`.
    pub mlst: f64,
    /// Last value posted with `DBE_LOG`.
    pub alst: f64,
}

/// Fields of ai, ao and (inside `Calc`) calc records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analog {
    /// `VAL`.
    pub val: f64,
    /// `EGU`, `PREC`, `HOPR`, `LOPR`.
    pub display: Display,
    /// Limit alarms.
    pub limits: LimitAlarms,
    /// Deadbands.
    pub deadband: Deadband,
    /// Upper drive limit (ao only).
    pub drvh: f64,
    /// Lower drive limit (ao only).
    pub drvl: f64,
}

/// Fields of longin, longout, int64in and int64out records. Limits are
/// kept as `f64`, exact for every `i32` (and for `i64` up to 2^53); their
/// field type is `DBF_LONG` or `DBF_INT64`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Long {
    /// `VAL`.
    pub val: i64,
    /// `EGU`, `HOPR`, `LOPR` (`PREC` is unused).
    pub display: Display,
    /// Limit alarms.
    pub limits: LimitAlarms,
    /// Deadbands.
    pub deadband: Deadband,
    /// Upper drive limit (outputs only).
    pub drvh: i64,
    /// Lower drive limit (outputs only).
    pub drvl: i64,
}

/// Fields of bi and bo records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Binary {
    /// `VAL` (0 or 1).
    pub val: u16,
    /// Name of state 0.
    pub znam: String,
    /// Name of state 1.
    pub onam: String,
    /// Severity of state 0.
    pub zsv: u16,
    /// Severity of state 1.
    pub osv: u16,
    /// Change-of-state severity.
    pub cosv: u16,
    /// Last alarmed state.
    pub lalm: u16,
    /// Last posted value.
    pub mlst: u16,
}

/// Fields of mbbi and mbbo records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Multi {
    /// `VAL`: the state index.
    pub val: u16,
    /// State names `ZRST`..`FFST`.
    pub states: [String; 16],
    /// Raw state values `ZRVL`..`FFVL`.
    pub values: [u32; 16],
    /// State severities `ZRSV`..`FFSV`.
    pub severities: [u16; 16],
    /// Severity of an undefined state.
    pub unsv: u16,
    /// Change-of-state severity.
    pub cosv: u16,
    /// Last alarmed state.
    pub lalm: u16,
    /// Last posted value.
    pub mlst: u16,
}

impl Multi {
    /// Number of state strings up to the last non-empty one (mbbi `get_enum_strs`).
    pub fn state_count(&self) -> usize {
        self.states.iter().rposition(|s| !s.is_empty()).map_or(0, |i| i + 1)
    }
}

/// Fields of stringin and stringout records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Text {
    /// `VAL` (at most 39 bytes).
    pub val: String,
    /// Value last posted (`OVAL`).
    pub oval: String,
    /// Monitor post policy (0 = On Change, 1 = Always).
    pub mpst: u16,
    /// Archive post policy (0 = On Change, 1 = Always).
    pub apst: u16,
}

/// The mbbi/mbbo state fields, in state order.
pub(crate) const STATE_STRINGS: [&str; 16] = [
    "ZRST", "ONST", "TWST", "THST", "FRST", "FVST", "SXST", "SVST", "EIST", "NIST", "TEST", "ELST", "TVST", "TTST",
    "FTST", "FFST",
];
pub(crate) const STATE_VALUES: [&str; 16] = [
    "ZRVL", "ONVL", "TWVL", "THVL", "FRVL", "FVVL", "SXVL", "SVVL", "EIVL", "NIVL", "TEVL", "ELVL", "TVVL", "TTVL",
    "FTVL", "FFVL",
];
pub(crate) const STATE_SEVERITIES: [&str; 16] = [
    "ZRSV", "ONSV", "TWSV", "THSV", "FRSV", "FVSV", "SXSV", "SVSV", "EISV", "NISV", "TESV", "ELSV", "TVSV", "TTSV",
    "FTSV", "FFSV",
];

macro_rules! multibit_fields {
    ($($extra:tt)*) => {
        fields! {
            "VAL": E, PP;
            "NOBT": UShort;
            "ZRVL": ULong, PP; "ONVL": ULong, PP; "TWVL": ULong, PP; "THVL": ULong, PP;
            "FRVL": ULong, PP; "FVVL": ULong, PP; "SXVL": ULong, PP; "SVVL": ULong, PP;
            "EIVL": ULong, PP; "NIVL": ULong, PP; "TEVL": ULong, PP; "ELVL": ULong, PP;
            "TVVL": ULong, PP; "TTVL": ULong, PP; "FTVL": ULong, PP; "FFVL": ULong, PP;
            "ZRST": s(26), PP | PROP; "ONST": s(26), PP | PROP; "TWST": s(26), PP | PROP; "THST": s(26), PP | PROP;
            "FRST": s(26), PP | PROP; "FVST": s(26), PP | PROP; "SXST": s(26), PP | PROP; "SVST": s(26), PP | PROP;
            "EIST": s(26), PP | PROP; "NIST": s(26), PP | PROP; "TEST": s(26), PP | PROP; "ELST": s(26), PP | PROP;
            "TVST": s(26), PP | PROP; "TTST": s(26), PP | PROP; "FTST": s(26), PP | PROP; "FFST": s(26), PP | PROP;
            "ZRSV": SEVR, PP; "ONSV": SEVR, PP; "TWSV": SEVR, PP; "THSV": SEVR, PP;
            "FRSV": SEVR, PP; "FVSV": SEVR, PP; "SXSV": SEVR, PP; "SVSV": SEVR, PP;
            "EISV": SEVR, PP; "NISV": SEVR, PP; "TESV": SEVR, PP; "ELSV": SEVR, PP;
            "TVSV": SEVR, PP; "TTSV": SEVR, PP; "FTSV": SEVR, PP; "FFSV": SEVR, PP;
            "UNSV": SEVR, PP;
            "COSV": SEVR, PP;
            "RVAL": ULong, PP;
            "ORAW": ULong, RO;
            "MASK": ULong, RO;
            "MLST": UShort, RO;
            "LALM": UShort, RO;
            "SDEF": S, RO;
            "SHFT": UShort;
            "SIML": InLink;
            "SIMM": SIMM;
            "SIMS": SEVR;
            "SSCN": SCAN, 0, "65535";
            "SDLY": D, 0, "-1.0";
            $($extra)*
        }
    };
}

pub(crate) fn deadband_mask(d: &mut Deadband, val: f64) -> u16 {
    let mut mask = 0;
    let (mdel, adel) = (d.mdel, d.adel);
    if check_deadband(&mut d.mlst, val, mdel) {
        mask |= DBE_VALUE;
    }
    if check_deadband(&mut d.alst, val, adel) {
        mask |= DBE_LOG;
    }
    mask
}

pub(crate) fn get_display(d: &Display, name: &str) -> Option<FieldValue> {
    Some(match name {
        "EGU" => FieldValue::String(d.egu.clone()),
        "PREC" => FieldValue::Int(d.prec.into()),
        "HOPR" => FieldValue::Double(d.hopr),
        "LOPR" => FieldValue::Double(d.lopr),
        _ => return None,
    })
}

pub(crate) fn set_display(d: &mut Display, name: &str, f: f64, t: impl Fn() -> String) -> bool {
    match name {
        "EGU" => d.egu = t(),
        "PREC" => d.prec = f as i16,
        "HOPR" => d.hopr = f,
        "LOPR" => d.lopr = f,
        _ => return false,
    }
    true
}

pub(crate) fn get_limits(l: &LimitAlarms, name: &str) -> Option<FieldValue> {
    Some(match name {
        "HIHI" => FieldValue::Double(l.hihi),
        "HIGH" => FieldValue::Double(l.high),
        "LOW" => FieldValue::Double(l.low),
        "LOLO" => FieldValue::Double(l.lolo),
        "HYST" => FieldValue::Double(l.hyst),
        "LALM" => FieldValue::Double(l.lalm),
        "HHSV" => FieldValue::Enum(l.hhsv),
        "HSV" => FieldValue::Enum(l.hsv),
        "LSV" => FieldValue::Enum(l.lsv),
        "LLSV" => FieldValue::Enum(l.llsv),
        _ => return None,
    })
}

pub(crate) fn set_limits(l: &mut LimitAlarms, name: &str, f: f64) -> bool {
    match name {
        "HIHI" => l.hihi = f,
        "HIGH" => l.high = f,
        "LOW" => l.low = f,
        "LOLO" => l.lolo = f,
        "HYST" => l.hyst = f,
        "HHSV" => l.hhsv = f as u16,
        "HSV" => l.hsv = f as u16,
        "LSV" => l.lsv = f as u16,
        "LLSV" => l.llsv = f as u16,
        _ => return false,
    }
    true
}

pub(crate) fn get_deadband(d: &Deadband, name: &str) -> Option<FieldValue> {
    Some(match name {
        "MDEL" => FieldValue::Double(d.mdel),
        "ADEL" => FieldValue::Double(d.adel),
        "MLST" => FieldValue::Double(d.mlst),
        "ALST" => FieldValue::Double(d.alst),
        _ => return None,
    })
}

pub(crate) fn set_deadband(d: &mut Deadband, name: &str, f: f64) -> bool {
    match name {
        "MDEL" => d.mdel = f,
        "ADEL" => d.adel = f,
        _ => return false,
    }
    true
}

pub(crate) fn get_analog(a: &Analog, name: &str) -> Option<FieldValue> {
    match name {
        "VAL" => Some(FieldValue::Double(a.val)),
        "DRVH" => Some(FieldValue::Double(a.drvh)),
        "DRVL" => Some(FieldValue::Double(a.drvl)),
        _ => get_display(&a.display, name)
            .or_else(|| get_limits(&a.limits, name))
            .or_else(|| get_deadband(&a.deadband, name)),
    }
}

pub(crate) fn set_analog(a: &mut Analog, name: &str, f: f64, t: impl Fn() -> String) -> bool {
    match name {
        "VAL" => a.val = f,
        "DRVH" => a.drvh = f,
        "DRVL" => a.drvl = f,
        _ => {
            return set_display(&mut a.display, name, f, t)
                || set_limits(&mut a.limits, name, f)
                || set_deadband(&mut a.deadband, name, f);
        }
    }
    true
}

/// Fields that share the display limits of `VAL` in ai/ao/longin/longout/calc.
pub(crate) const VALUE_LIKE: [&str; 11] =
    ["VAL", "HIHI", "HIGH", "LOW", "LOLO", "LALM", "ALST", "MLST", "OVAL", "PVAL", "SVAL"];

/// `PREC` as reported for `field`: fields other than `VAL` get a sane 0..15.
pub(crate) fn reported_precision(field: &str, prec: i16) -> i16 {
    if field == "VAL" || (0..=15).contains(&prec) { prec } else { 15 }
}

/// The numeric value of a coerced field value, and the same as an enum index.
pub(crate) fn number_and_index(value: &FieldValue) -> (f64, u16) {
    let f = value.as_f64().unwrap_or(0.0);
    let e = match value {
        FieldValue::Enum(v) => *v,
        _ => f as u16,
    };
    (f, e)
}

/// Limits of ai/ao fields; `drive` are the control limits of an output.
pub(crate) fn analog_limits(a: &Analog, field: &str, field_type: FieldType, drive: Option<(f64, f64)>, l: &mut Limits) {
    let float = matches!(field_type, FieldType::Float | FieldType::Double);
    if float && !matches!(field, "ASLO" | "AOFF" | "SMOO") {
        l.units = a.display.egu.clone();
    }
    l.precision = if float { reported_precision(field, a.display.prec) } else { 0 };
    if VALUE_LIKE.contains(&field) || field == "IVOV" {
        l.display = (a.display.hopr, a.display.lopr);
        l.control = drive.unwrap_or(l.display);
    }
    if field == "VAL" {
        l.alarm = a.limits.reported();
    }
}

pub(crate) fn get_long(l: &Long, name: &str) -> Option<FieldValue> {
    match name {
        "VAL" => Some(FieldValue::Int(l.val)),
        "DRVH" => Some(FieldValue::Int(l.drvh)),
        "DRVL" => Some(FieldValue::Int(l.drvl)),
        _ => get_display(&l.display, name)
            .or_else(|| get_limits(&l.limits, name))
            .or_else(|| get_deadband(&l.deadband, name))
            .map(|v| match v {
                FieldValue::Double(d) => FieldValue::Int(d as i64),
                other => other,
            }),
    }
}

pub(crate) fn set_long(l: &mut Long, name: &str, value: &FieldValue) -> bool {
    let (f, _) = number_and_index(value);
    // Integers are taken as they are: an int64 does not survive a trip through f64.
    let int = match value {
        FieldValue::Int(v) => *v,
        _ => f as i64,
    };
    match name {
        "VAL" => l.val = int,
        "DRVH" => l.drvh = int,
        "DRVL" => l.drvl = int,
        _ => {
            return set_display(&mut l.display, name, f, || value.to_text())
                || set_limits(&mut l.limits, name, f)
                || set_deadband(&mut l.deadband, name, f);
        }
    }
    true
}

/// Limits of longin/longout fields; `drive` are the control limits of an output.
pub(crate) fn long_limits(l: &Long, field: &str, field_type: FieldType, drive: Option<(f64, f64)>, out: &mut Limits) {
    if matches!(field_type, FieldType::Long | FieldType::Int64) {
        out.units = l.display.egu.clone();
    }
    if VALUE_LIKE.contains(&field) {
        out.display = (l.display.hopr, l.display.lopr);
        out.control = drive.unwrap_or(out.display);
    }
    if field == "VAL" {
        out.alarm = l.limits.reported();
    }
}

pub(crate) fn long_loaded(l: &mut Long) {
    l.deadband.mlst = l.val as f64;
    l.deadband.alst = l.val as f64;
    l.limits.lalm = l.val as f64;
}

/// Processing common to longin/longout/int64in/int64out: drive limits of an
/// output, limit alarms, deadbands.
pub(crate) fn process_long(l: &mut Long, output: bool, ctx: &mut super::Process<'_>) -> u16 {
    if output && l.drvh > l.drvl {
        l.val = l.val.clamp(l.drvl, l.drvh);
    }
    if !ctx.raise_udf() {
        l.limits.check(l.val as f64, ctx.alarm);
    }
    deadband_mask(&mut l.deadband, l.val as f64)
}

/// The drive limits of an output as control limits, when they are set.
pub(crate) fn long_drive(l: &Long) -> Option<(f64, f64)> {
    (l.drvh > l.drvl).then_some((l.drvh as f64, l.drvl as f64))
}

pub(crate) fn analog_loaded(a: &mut Analog) {
    a.deadband.mlst = a.val;
    a.deadband.alst = a.val;
    a.limits.lalm = a.val;
}

pub(crate) fn get_binary(b: &Binary, name: &str) -> Option<FieldValue> {
    let text = |s: &str| Some(FieldValue::String(s.to_string()));
    match name {
        "VAL" => Some(FieldValue::Enum(b.val)),
        "ZNAM" => text(&b.znam),
        "ONAM" => text(&b.onam),
        "ZSV" => Some(FieldValue::Enum(b.zsv)),
        "OSV" => Some(FieldValue::Enum(b.osv)),
        "COSV" => Some(FieldValue::Enum(b.cosv)),
        "LALM" => Some(FieldValue::Int(b.lalm.into())),
        "MLST" => Some(FieldValue::Int(b.mlst.into())),
        _ => None,
    }
}

pub(crate) fn set_binary(b: &mut Binary, name: &str, value: &FieldValue) -> bool {
    let (_, e) = number_and_index(value);
    match name {
        "VAL" => b.val = e,
        "ZNAM" => b.znam = value.to_text(),
        "ONAM" => b.onam = value.to_text(),
        "ZSV" => b.zsv = e,
        "OSV" => b.osv = e,
        "COSV" => b.cosv = e,
        _ => return false,
    }
    true
}

/// bi/bo `get_enum_strs`: two states unless only `ZNAM` is set.
pub(crate) fn binary_strings(b: &Binary) -> Vec<&str> {
    let count = if b.onam.is_empty() && !b.znam.is_empty() { 1 } else { 2 };
    [b.znam.as_str(), b.onam.as_str()][..count].to_vec()
}

/// Processing common to bi/bo: state alarms and posting a changed value.
pub(crate) fn process_binary(b: &mut Binary, ctx: &mut super::Process<'_>) -> u16 {
    if !ctx.raise_udf() {
        super::super::alarm::check_binary(b.val, b.zsv, b.osv, b.cosv, &mut b.lalm, ctx.alarm);
    }
    if b.mlst != b.val {
        b.mlst = b.val;
        return DBE_VALUE | DBE_LOG;
    }
    0
}

pub(crate) fn get_multi(m: &Multi, name: &str) -> Option<FieldValue> {
    if let Some(i) = STATE_STRINGS.iter().position(|n| *n == name) {
        return Some(FieldValue::String(m.states[i].clone()));
    }
    if let Some(i) = STATE_VALUES.iter().position(|n| *n == name) {
        return Some(FieldValue::Int(m.values[i].into()));
    }
    if let Some(i) = STATE_SEVERITIES.iter().position(|n| *n == name) {
        return Some(FieldValue::Enum(m.severities[i]));
    }
    match name {
        "VAL" => Some(FieldValue::Enum(m.val)),
        "UNSV" => Some(FieldValue::Enum(m.unsv)),
        "COSV" => Some(FieldValue::Enum(m.cosv)),
        "LALM" => Some(FieldValue::Int(m.lalm.into())),
        "MLST" => Some(FieldValue::Int(m.mlst.into())),
        "SDEF" => Some(FieldValue::Int(i64::from(m.state_count() > 0 || m.values.iter().any(|v| *v != 0)))),
        _ => None,
    }
}

pub(crate) fn set_multi(m: &mut Multi, name: &str, value: &FieldValue) -> bool {
    let (f, e) = number_and_index(value);
    if let Some(i) = STATE_STRINGS.iter().position(|n| *n == name) {
        m.states[i] = value.to_text();
    } else if let Some(i) = STATE_VALUES.iter().position(|n| *n == name) {
        m.values[i] = f as u32;
    } else if let Some(i) = STATE_SEVERITIES.iter().position(|n| *n == name) {
        m.severities[i] = e;
    } else {
        match name {
            "VAL" => m.val = e,
            "UNSV" => m.unsv = e,
            "COSV" => m.cosv = e,
            _ => return false,
        }
    }
    true
}

/// Processing common to mbbi/mbbo: state alarms and posting a changed value.
pub(crate) fn process_multi(m: &mut Multi, ctx: &mut super::Process<'_>) -> u16 {
    if !ctx.raise_udf() {
        super::super::alarm::check_multi(m.val, &m.severities, m.unsv, m.cosv, &mut m.lalm, ctx.alarm);
    }
    if m.mlst != m.val {
        m.mlst = m.val;
        return DBE_VALUE | DBE_LOG;
    }
    0
}

pub(crate) fn get_text(t: &Text, name: &str) -> Option<FieldValue> {
    match name {
        "VAL" => Some(FieldValue::String(t.val.clone())),
        "OVAL" => Some(FieldValue::String(t.oval.clone())),
        "MPST" => Some(FieldValue::Enum(t.mpst)),
        "APST" => Some(FieldValue::Enum(t.apst)),
        _ => None,
    }
}

pub(crate) fn set_text(t: &mut Text, name: &str, value: &FieldValue) -> bool {
    let (_, e) = number_and_index(value);
    match name {
        "VAL" => t.val = value.to_text(),
        "MPST" => t.mpst = e,
        "APST" => t.apst = e,
        _ => return false,
    }
    true
}

/// stringin/stringout processing: post by `MPST`/`APST` ("On Change" or "Always").
pub(crate) fn process_text(t: &mut Text, ctx: &mut super::Process<'_>) -> u16 {
    *ctx.udf = false;
    let changed = t.oval != t.val;
    let mut mask = 0;
    if changed || t.mpst == 1 {
        mask |= DBE_VALUE;
    }
    if changed || t.apst == 1 {
        mask |= DBE_LOG;
    }
    if changed {
        t.oval = t.val.clone();
    }
    mask
}

/// `SELL`, when it is a link, sets `SELN` (fanout, seq, dfanout).
pub(crate) fn read_selection(ctx: &mut super::Process<'_>) {
    if let Some(v) = ctx.input("SELL").and_then(FieldValue::as_f64) {
        ctx.set("SELN", FieldValue::Int(i64::from(v as u16)));
    }
}

/// The links `SELM` selects among 16 (fanout, seq), as a bit mask: All,
/// Specified (`SELN` + `OFFS`) or Mask (`SELN` shifted right by `SHFT`).
/// `None` for a selection out of range, which raises SOFT/INVALID.
pub(crate) fn selected_links(selm: u16, seln: u16, offs: i16, shft: i16) -> Option<u16> {
    match selm {
        0 => Some(0xffff),
        1 => {
            let n = i32::from(seln) + i32::from(offs);
            (0..16).contains(&n).then(|| 1 << n)
        }
        2 if (-15..=15).contains(&shft) => Some(if shft >= 0 { seln >> shft } else { seln << -shft }),
        _ => None,
    }
}

/// An input value as an integer, exact for integers.
pub(crate) fn integer(value: &FieldValue) -> i64 {
    match value {
        FieldValue::Int(v) => *v,
        FieldValue::Enum(v) => i64::from(*v),
        other => other.as_f64().filter(|v| v.is_finite()).map_or(0, |v| v as i64),
    }
}

/// An output record's write to `OUT`, unless `IVOA` forbids it while the
/// record is INVALID ("Set output to IVOV" writes `IVOV`).
pub(crate) fn write_output(ctx: &mut super::Process<'_>, value: FieldValue) {
    let value = if ctx.alarm.nsev >= crate::proto::constants::severity::INVALID {
        match ctx.index("IVOA") {
            1 => return,
            2 => ctx.get("IVOV"),
            _ => value,
        }
    } else {
        value
    };
    ctx.write("OUT", value);
}

/// The link `VAL` comes from: `INP` for an input record, `DOL` for an output.
pub(crate) fn value_link(output: bool) -> &'static str {
    if output { "DOL" } else { "INP" }
}

/// The value this processing takes for `VAL`, as soft device support reads
/// it: `INP`'s for an input, `DOL`'s for an output in closed loop (`OMSL`).
/// Reading it defines the value (`UDF` false).
pub(crate) fn value_input(ctx: &mut super::Process<'_>, output: bool) -> Option<FieldValue> {
    if output && ctx.index("OMSL") != 1 {
        return None;
    }
    let value = ctx.input(value_link(output)).cloned()?;
    *ctx.udf = false;
    Some(value)
}

/// `VAL`'s input link, as the rset's list of links the database reads.
pub(crate) fn value_links(output: bool) -> &'static [&'static str] {
    if output { &["DOL"] } else { &["INP"] }
}

/// Field groups several record types declare alike, in their `.dbd` order: a type's
/// table lists them between its own fields ([`super::RecordTypeDef::fields`]).
///
/// `INPA`..`INPL` (calc, calcout, sel, sub, aSub).
pub(crate) static INPUT_LINKS: &[FieldSpec] = fields! {
    "INPA": InLink;
    "INPB": InLink;
    "INPC": InLink;
    "INPD": InLink;
    "INPE": InLink;
    "INPF": InLink;
    "INPG": InLink;
    "INPH": InLink;
    "INPI": InLink;
    "INPJ": InLink;
    "INPK": InLink;
    "INPL": InLink;
};
/// Arguments `A`..`L` (calc, calcout, sel, sub).
pub(crate) static ARGS: &[FieldSpec] = fields! {
    "A": D, PP;
    "B": D, PP;
    "C": D, PP;
    "D": D, PP;
    "E": D, PP;
    "F": D, PP;
    "G": D, PP;
    "H": D, PP;
    "I": D, PP;
    "J": D, PP;
    "K": D, PP;
    "L": D, PP;
};
/// Arguments as last posted, `LA`..`LL`.
pub(crate) static LAST_ARGS: &[FieldSpec] = fields! {
    "LA": D, RO;
    "LB": D, RO;
    "LC": D, RO;
    "LD": D, RO;
    "LE": D, RO;
    "LF": D, RO;
    "LG": D, RO;
    "LH": D, RO;
    "LI": D, RO;
    "LJ": D, RO;
    "LK": D, RO;
    "LL": D, RO;
};
/// Bits `B0`..`B1F` (mbbiDirect, mbboDirect).
pub(crate) static BIT_FIELDS: &[FieldSpec] = fields! {
    "B0": UChar, PP;
    "B1": UChar, PP;
    "B2": UChar, PP;
    "B3": UChar, PP;
    "B4": UChar, PP;
    "B5": UChar, PP;
    "B6": UChar, PP;
    "B7": UChar, PP;
    "B8": UChar, PP;
    "B9": UChar, PP;
    "BA": UChar, PP;
    "BB": UChar, PP;
    "BC": UChar, PP;
    "BD": UChar, PP;
    "BE": UChar, PP;
    "BF": UChar, PP;
    "B10": UChar, PP;
    "B11": UChar, PP;
    "B12": UChar, PP;
    "B13": UChar, PP;
    "B14": UChar, PP;
    "B15": UChar, PP;
    "B16": UChar, PP;
    "B17": UChar, PP;
    "B18": UChar, PP;
    "B19": UChar, PP;
    "B1A": UChar, PP;
    "B1B": UChar, PP;
    "B1C": UChar, PP;
    "B1D": UChar, PP;
    "B1E": UChar, PP;
    "B1F": UChar, PP;
};
