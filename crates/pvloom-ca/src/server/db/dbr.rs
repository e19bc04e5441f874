//! Conversion between record fields and the crate's DBR model, as
//! EPICS' `dbGet`/`dbPut` do for a CA server.

use std::time::SystemTime;

use crate::proto::constants::{MAX_ENUM_STATES, MAX_ENUM_STRING_SIZE, MAX_STRING_SIZE, MAX_UNITS_SIZE};
use crate::proto::dbr::{
    Alarm, CaString, ControlLimits, ConvertError, DbrClass, DbrData, DbrType, GraphicInfo, Metadata, NativeType, Value,
};

use super::rec::Limits;
use super::record::{Changes, PutError, Record, truncate_value};
use super::value::{FieldType, FieldValue, truncate_to};

/// Why a field cannot be read as the requested DBR type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// The record has no such field.
    #[error("no field {0:?}")]
    NoSuchField(String),
    /// More elements were asked for than the field holds (`ECA_BADCOUNT`).
    #[error("{count} elements asked for, the field holds at most {max}")]
    BadCount {
        /// Elements requested.
        count: u32,
        /// Capacity of the field.
        max: u32,
    },
    /// The type cannot be read (`DBR_PUT_ACKT`, `DBR_PUT_ACKS`).
    #[error("{0} cannot be read")]
    BadType(DbrType),
    /// The value does not convert (e.g. a non-numeric string read as a number).
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// `getMaxRangeValues`: the default limits of a field type.
fn type_range(field_type: FieldType) -> (f64, f64) {
    match field_type {
        FieldType::Char => (127.0, -128.0),
        FieldType::UChar => (255.0, 0.0),
        FieldType::Short => (32767.0, -32768.0),
        FieldType::UShort | FieldType::Enum => (65535.0, 0.0),
        FieldType::Long => (2147483647.0, -2147483648.0),
        FieldType::ULong => (4294967295.0, 0.0),
        FieldType::Int64 => (9223372036854775808.0, -9223372036854775808.0),
        FieldType::UInt64 => (18446744073709551615.0, 0.0),
        FieldType::Float => (1e30, -1e30),
        FieldType::Double => (1e300, -1e300),
        _ => (0.0, 0.0),
    }
}

impl Record {
    /// The CA type of a channel to field `name`.
    pub fn native_type(&self, name: &str) -> Option<NativeType> {
        self.field_type(name).map(FieldType::native)
    }

    fn limits(&self, field: &str, field_type: FieldType) -> Limits {
        let range = type_range(field_type);
        let mut limits =
            Limits { units: String::new(), precision: 0, display: range, alarm: [f64::NAN; 4], control: range };
        self.support().limits(field, field_type, &mut limits);
        limits
    }

    /// Builds the DBR payload for reading field `name` as `data_type`:
    /// the value converted to the type's native type, with the metadata
    /// of the type's class (alarm, timestamp, units, precision, display,
    /// alarm and control limits, enum state strings, acknowledgement).
    ///
    /// `count` is the element count the client asked for: `None` or `Some(0)`
    /// gives the elements the field currently holds (a waveform's `NORD`),
    /// more than those are zero-filled, more than the field's capacity is an error.
    pub fn dbr_data(&self, name: &str, data_type: DbrType, count: Option<u32>) -> Result<DbrData, GetError> {
        let field_type = self.field_type(name).ok_or_else(|| GetError::NoSuchField(name.to_string()))?;
        let max = self.element_count(name).unwrap_or(1);
        let class = data_type.class();
        let alarm = self.alarm().dbr();
        match class {
            DbrClass::PutAckt | DbrClass::PutAcks => return Err(GetError::BadType(data_type)),
            DbrClass::ClassName => {
                return Ok(DbrData::plain(Value::String(vec![self.record_type().name().into()])));
            }
            _ => {}
        }
        let value = self.field_as(name, field_type, data_type.native())?;
        let value = match count {
            Some(c) if c > max => return Err(GetError::BadCount { count: c, max }),
            Some(c) if c > 0 => truncate_value(&value, c as usize),
            _ => value,
        };
        let metadata = match class {
            DbrClass::Plain | DbrClass::PutAckt | DbrClass::PutAcks | DbrClass::ClassName => Metadata::None,
            DbrClass::Status => Metadata::Status(alarm),
            DbrClass::Time => Metadata::Time { alarm, stamp: self.time() },
            DbrClass::StsackString => {
                Metadata::StatusAck { alarm, ackt: u16::from(self.alarm().ackt), acks: self.alarm().acks }
            }
            DbrClass::Graphic | DbrClass::Control => self.display_metadata(name, field_type, data_type, alarm),
        };
        Ok(DbrData::new(metadata, value))
    }

    fn display_metadata(&self, name: &str, field_type: FieldType, data_type: DbrType, alarm: Alarm) -> Metadata {
        match data_type.native() {
            NativeType::String => Metadata::Status(alarm),
            NativeType::Enum => {
                let strings = self
                    .enum_strings(name)
                    .unwrap_or_default()
                    .into_iter()
                    .take(MAX_ENUM_STATES)
                    .map(|s| CaString::from(truncate_to(s, MAX_ENUM_STRING_SIZE - 1)))
                    .collect();
                Metadata::Enum { alarm, strings }
            }
            _ => {
                let limits = self.limits(name, field_type);
                let info = GraphicInfo {
                    units: truncate_to(&limits.units, MAX_UNITS_SIZE - 1).into(),
                    precision: limits.precision,
                    upper_disp_limit: limits.display.0,
                    lower_disp_limit: limits.display.1,
                    upper_alarm_limit: limits.alarm[0],
                    upper_warning_limit: limits.alarm[1],
                    lower_warning_limit: limits.alarm[2],
                    lower_alarm_limit: limits.alarm[3],
                };
                if data_type.class() == DbrClass::Graphic {
                    Metadata::Graphic { alarm, info }
                } else {
                    let control =
                        ControlLimits { upper_ctrl_limit: limits.control.0, lower_ctrl_limit: limits.control.1 };
                    Metadata::Control { alarm, info, control }
                }
            }
        }
    }

    /// The field's value converted to `target`.
    fn field_as(&self, name: &str, field_type: FieldType, target: NativeType) -> Result<Value, GetError> {
        let value = self.get_field(name).ok_or_else(|| GetError::NoSuchField(name.to_string()))?;
        let native = field_type.native();
        // Enum and menu values read as strings give their state string (get_enum_str).
        if let (FieldValue::Enum(index), NativeType::String) = (&value, target) {
            let text = self
                .enum_strings(name)
                .and_then(|s| s.get(usize::from(*index)).map(|s| s.to_string()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| index.to_string());
            return Ok(Value::String(vec![CaString::from(truncate_to(&text, MAX_STRING_SIZE - 1))]));
        }
        // Floating-point values read as strings honour the precision.
        if let (FieldValue::Double(v), NativeType::String) = (&value, target) {
            let precision = self.limits(name, field_type).precision.clamp(0, 17) as usize;
            return Ok(Value::String(vec![CaString::from(format_double(*v, precision))]));
        }
        let own = match value {
            FieldValue::String(s) => Value::String(vec![CaString::from(truncate_to(&s, MAX_STRING_SIZE - 1))]),
            FieldValue::Enum(v) => Value::Enum(vec![v]),
            FieldValue::Array(a) => a,
            FieldValue::Int(v) => match native {
                NativeType::Short => Value::Short(vec![v as i16]),
                NativeType::Char => Value::Char(vec![v as u8]),
                NativeType::Long => Value::Long(vec![v as i32]),
                _ => Value::Double(vec![v as f64]),
            },
            FieldValue::Double(v) => match native {
                NativeType::Float => Value::Float(vec![v as f32]),
                _ => Value::Double(vec![v]),
            },
        };
        Ok(own.convert(target)?)
    }

    /// Writes field `name` from a DBR payload (any type), timestamping
    /// processing with the current time. See [`Record::put_dbr_at`].
    pub fn put_dbr(&mut self, name: &str, data_type: DbrType, data: &DbrData) -> Result<Changes, PutError> {
        self.put_dbr_at(name, data_type, data, SystemTime::now())
    }

    /// Writes field `name` from a DBR payload as `dbPut` does: numbers
    /// convert to the field's type, strings are parsed, a string written to
    /// an enum names a state (or is its index), `DBR_PUT_ACKT`/`DBR_PUT_ACKS`
    /// acknowledge alarms. The metadata of `data` is ignored.
    pub fn put_dbr_at(
        &mut self,
        name: &str,
        data_type: DbrType,
        data: &DbrData,
        now: SystemTime,
    ) -> Result<Changes, PutError> {
        if self.field_type(name).is_none() {
            return Err(PutError::NoSuchField(name.to_string()));
        }
        let first = |value: &Value| -> Result<FieldValue, PutError> {
            let none = || PutError::BadValue { field: "VAL", reason: "no elements".into() };
            Ok(match value {
                Value::String(v) => FieldValue::String(v.first().ok_or_else(none)?.to_string_lossy().into_owned()),
                Value::Short(v) => FieldValue::Int((*v.first().ok_or_else(none)?).into()),
                Value::Char(v) => FieldValue::Int((*v.first().ok_or_else(none)?).into()),
                Value::Long(v) => FieldValue::Int((*v.first().ok_or_else(none)?).into()),
                Value::Enum(v) => FieldValue::Enum(*v.first().ok_or_else(none)?),
                Value::Float(v) => FieldValue::Double((*v.first().ok_or_else(none)?).into()),
                Value::Double(v) => FieldValue::Double(*v.first().ok_or_else(none)?),
            })
        };
        match data_type.class() {
            DbrClass::PutAckt => {
                let FieldValue::Enum(v) = first(&data.value)? else { unreachable!("enum payload") };
                return Ok(self.put_ackt(v != 0));
            }
            DbrClass::PutAcks => {
                let FieldValue::Enum(v) = first(&data.value)? else { unreachable!("enum payload") };
                return Ok(self.put_acks(v));
            }
            DbrClass::StsackString | DbrClass::ClassName => return Err(PutError::BadType(data_type)),
            _ => {}
        }
        let value = if self.is_array(name) { FieldValue::Array(data.value.clone()) } else { first(&data.value)? };
        self.put_field_at(name, value, now)
    }
}

/// Formats a double with `precision` decimals like EPICS' `cvtDoubleToString`:
/// fixed notation for moderate magnitudes, exponential otherwise.
fn format_double(v: f64, precision: usize) -> String {
    let text = if v == 0.0 || (1e-4..1e15).contains(&v.abs()) || !v.is_finite() {
        format!("{v:.precision$}")
    } else {
        format!("{v:.precision$e}")
    };
    truncate_to(&text, MAX_STRING_SIZE - 1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_with_precision() {
        assert_eq!(format_double(1.23456, 2), "1.23");
        assert_eq!(format_double(0.0, 3), "0.000");
        assert_eq!(format_double(1.5e20, 2), "1.50e20");
        assert_eq!(format_double(f64::NAN, 2), "NaN");
    }

    #[test]
    fn type_ranges() {
        assert_eq!(type_range(FieldType::Short), (32767.0, -32768.0));
        assert_eq!(type_range(FieldType::Double), (1e300, -1e300));
    }
}
