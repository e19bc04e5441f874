//! Array (`waveformRecord`): `NELM` elements of type `FTVL`, `NORD` valid.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};
use crate::proto::dbr::Value;
use crate::server::db::record::{hash_value, truncate_value, wrap_elements, zeros};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Limits, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "waveform", fields: &[FIELDS], new: || Box::new(Waveform::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "RARM": S, PP;
    "PREC": S, PROP;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "NELM": ULong, RO, "1";
    "FTVL": FieldType::Menu(&MENU_FTYPE), RO;
    "BUSY": S, RO;
    "NORD": ULong, RO;
    "SIOL": InLink;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "MPST": FieldType::Menu(&MENU_WAVEFORM_POST);
    "APST": FieldType::Menu(&MENU_WAVEFORM_POST);
    "HASH": ULong;
};

/// Fields of waveform records.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    /// The `NORD` valid elements, in the CA native type of `FTVL`.
    pub data: Value,
    /// Element type (`menuFtype` index).
    pub ftvl: u16,
    /// Capacity.
    pub nelm: u32,
    /// `EGU`, `PREC`, `HOPR`, `LOPR`.
    pub display: Display,
    /// Monitor post policy (0 = Always, 1 = On Change).
    pub mpst: u16,
    /// Archive post policy (0 = Always, 1 = On Change).
    pub apst: u16,
    /// Which array record this is: where processing takes the array from.
    pub role: ArrayRole,
    hash: u64,
}

/// What processing does with an array record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrayRole {
    /// waveform, aai: `INP` is read into `VAL`.
    #[default]
    Input,
    /// aao: `DOL` is read in closed loop, `VAL` is written to `OUT`.
    Output,
    /// subArray: `NELM` elements from index `INDX` of the first `MALM` that `INP` holds.
    Sub {
        /// Elements of the source array (`MALM`).
        malm: u32,
        /// First element taken (`INDX`).
        indx: u32,
    },
}

impl Default for Waveform {
    /// As `init_record` leaves a waveform with the `.dbd` defaults: one UCHAR element.
    fn default() -> Self {
        Waveform::with_role(ArrayRole::Input)
    }
}

impl Waveform {
    /// An array record of `role` with the `.dbd` defaults.
    pub fn with_role(role: ArrayRole) -> Self {
        let data = Value::Char(vec![0]);
        Waveform { data, ftvl: 2, nelm: 1, display: Display::default(), mpst: 0, apst: 0, role, hash: 0 }
    }

    /// Takes at most `limit` elements read from a link as the new value.
    fn take(&mut self, value: &FieldValue, limit: usize) {
        let array = match value {
            FieldValue::Array(a) => a.clone(),
            FieldValue::String(s) => Value::String(vec![s.as_str().into()]),
            FieldValue::Int(v) => Value::Double(vec![*v as f64]),
            FieldValue::Double(v) => Value::Double(vec![*v]),
            FieldValue::Enum(v) => Value::Enum(vec![*v]),
        };
        let element = self.element_type();
        if let Ok(converted) = array.convert(element.native()) {
            let n = converted.len().min(limit);
            self.data = wrap_elements(element, truncate_value(&converted, n));
        }
    }

    /// Reads this processing's input into `VAL`, as the soft device support of the role does.
    fn read_input(&mut self, ctx: &mut Process<'_>) {
        match self.role {
            ArrayRole::Input => {
                if let Some(v) = ctx.input("INP") {
                    self.take(v, self.nelm as usize);
                }
            }
            ArrayRole::Output => {
                if ctx.index("OMSL") == 1
                    && let Some(v) = ctx.input("DOL")
                {
                    self.take(v, self.nelm as usize);
                }
            }
            ArrayRole::Sub { malm, indx } => {
                let Some(v) = ctx.input("INP") else { return };
                let before = self.nord();
                let wanted = (indx.saturating_add(self.nelm)).min(malm) as usize;
                self.take(v, wanted);
                let available = self.data.len().saturating_sub(indx as usize);
                let count = available.min(self.nelm as usize);
                self.data = subrange(&self.data, indx as usize, count);
                if before != self.nord() {
                    ctx.changes.post("NORD", DBE_VALUE | DBE_LOG);
                }
            }
        }
    }

    /// Elements `VAL` holds at most: a subArray's buffer holds `MALM` (its cvt_dbaddr), others `NELM`.
    pub fn capacity(&self) -> u32 {
        match self.role {
            ArrayRole::Sub { malm, .. } => malm,
            _ => self.nelm,
        }
    }

    /// Number of valid elements.
    pub fn nord(&self) -> u32 {
        self.data.len() as u32
    }

    /// The element type.
    pub fn element_type(&self) -> FieldType {
        FieldType::from_ftvl(self.ftvl)
    }
}

impl RecordSupport for Waveform {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        use FieldValue::{Enum, Int};
        match name {
            "VAL" => Some(FieldValue::Array(self.data.clone())),
            "NELM" => Some(Int(self.nelm.into())),
            "NORD" => Some(Int(self.nord().into())),
            "FTVL" => Some(Enum(self.ftvl)),
            "MPST" => Some(Enum(self.mpst)),
            "APST" => Some(Enum(self.apst)),
            "MALM" | "INDX" => match self.role {
                ArrayRole::Sub { malm, indx } => Some(Int(if name == "MALM" { malm } else { indx }.into())),
                _ => None,
            },
            _ => get_display(&self.display, name),
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let (f, e) = number_and_index(value);
        Ok(match name {
            "NELM" | "FTVL" => {
                if name == "NELM" {
                    self.nelm = (f as u32).max(1);
                } else {
                    self.ftvl = if e > 11 { 2 } else { e };
                }
                // As init_record: NORD is 1 for a one-element array, else 0.
                let native = self.element_type().native();
                self.data = zeros(native, usize::from(self.nelm == 1));
                true
            }
            "MPST" => {
                self.mpst = e;
                true
            }
            "APST" => {
                self.apst = e;
                true
            }
            "MALM" | "INDX" => match &mut self.role {
                ArrayRole::Sub { malm, indx } => {
                    if name == "MALM" {
                        *malm = (f as u32).max(1);
                    } else {
                        *indx = f as u32;
                    }
                    true
                }
                _ => false,
            },
            _ => set_display(&mut self.display, name, f, || value.to_text()),
        })
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        self.read_input(ctx);
        *ctx.udf = false;
        let hash = hash_value(&self.data);
        let changed = hash != self.hash;
        self.hash = hash;
        let mut mask = 0;
        if self.mpst == 0 || changed {
            mask |= DBE_VALUE;
        }
        if self.apst == 0 || changed {
            mask |= DBE_LOG;
        }
        if self.role == ArrayRole::Output {
            write_output(ctx, FieldValue::Array(self.data.clone()));
        }
        mask
    }

    fn input_links(&self) -> &'static [&'static str] {
        match self.role {
            ArrayRole::Output => &["DOL"],
            _ => &["INP"],
        }
    }

    fn loads_read_only(&self, name: &str) -> bool {
        name == "MALM"
    }

    fn limits(&self, field: &str, field_type: FieldType, limits: &mut Limits) {
        let float = matches!(field_type, FieldType::Float | FieldType::Double);
        let element = self.element_type();
        if matches!(field, "HOPR" | "LOPR")
            || (field == "VAL" && !matches!(element, FieldType::String { .. } | FieldType::Enum))
        {
            limits.units = self.display.egu.clone();
        }
        limits.precision = if field == "VAL" {
            self.display.prec
        } else if float {
            reported_precision(field, self.display.prec)
        } else {
            0
        };
        match field {
            "VAL" => {
                limits.display = (self.display.hopr, self.display.lopr);
                limits.control = limits.display;
            }
            "NORD" => {
                limits.display = (f64::from(self.nelm), 0.0);
                limits.control = limits.display;
            }
            "BUSY" => {
                limits.display = (1.0, 0.0);
                limits.control = limits.display;
            }
            _ => {}
        }
    }

    fn field_type(&self, name: &str) -> Option<FieldType> {
        (name == "VAL").then(|| self.element_type())
    }

    fn element_count(&self, name: &str) -> u32 {
        if name == "VAL" { self.capacity() } else { 1 }
    }

    fn is_array(&self, name: &str) -> bool {
        name == "VAL"
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        // waveform and aai soft support load a constant INP at init (dbLoadLinkArray).
        (self.role == ArrayRole::Input && link_field == "INP").then_some("VAL")
    }

    fn put_array(&mut self, name: &str, value: Value) -> Option<Result<(), PutError>> {
        if name != "VAL" {
            return None;
        }
        if value.len() > self.capacity() as usize {
            return Some(Err(PutError::TooManyElements { field: "VAL", count: value.len(), max: self.capacity() }));
        }
        let element = self.element_type();
        Some(match value.convert(element.native()) {
            Ok(converted) => {
                self.data = wrap_elements(element, converted);
                Ok(())
            }
            Err(e) => Err(PutError::BadValue { field: "VAL", reason: e.to_string() }),
        })
    }
}

/// Elements `start..start + count` of `value` (fewer when it is shorter).
fn subrange(value: &Value, start: usize, count: usize) -> Value {
    fn take<T: Clone>(v: &[T], start: usize, count: usize) -> Vec<T> {
        v.iter().skip(start).take(count).cloned().collect()
    }
    match value {
        Value::String(v) => Value::String(take(v, start, count)),
        Value::Short(v) => Value::Short(take(v, start, count)),
        Value::Float(v) => Value::Float(take(v, start, count)),
        Value::Enum(v) => Value::Enum(take(v, start, count)),
        Value::Char(v) => Value::Char(take(v, start, count)),
        Value::Long(v) => Value::Long(take(v, start, count)),
        Value::Double(v) => Value::Double(take(v, start, count)),
    }
}
