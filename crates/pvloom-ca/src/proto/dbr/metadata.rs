//! The metadata blocks that precede the value in STS/TIME/GR/CTRL payloads.

use bytes::BufMut;

use crate::proto::constants::{MAX_ENUM_STATES, MAX_ENUM_STRING_SIZE, MAX_UNITS_SIZE};
use crate::proto::dbr::time::EpicsTime;
use crate::proto::dbr::types::{DbrClass, DbrType, NativeType};
use crate::proto::dbr::value::CaString;
use crate::proto::dbr::wire::{Reader, put_text};
use crate::proto::error::DbrError;

/// Alarm state of a value (see [`constants::severity`](crate::proto::constants::severity)
/// and [`constants::alarm_status`](crate::proto::constants::alarm_status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Alarm {
    /// Alarm condition (`epicsAlarmCondition`).
    pub status: u16,
    /// Alarm severity (`epicsAlarmSeverity`).
    pub severity: u16,
}

/// Display metadata of GR and CTRL payloads of numeric types.
///
/// Limits are widened to `f64` whatever the channel's type; on encode they
/// are cast back with saturating `as` casts. Widening is exact for every
/// native type, so decode → encode reproduces the wire bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphicInfo {
    /// Engineering units (at most 7 bytes).
    pub units: CaString,
    /// Display precision. Only FLOAT and DOUBLE carry it on the wire; it is
    /// ignored when encoding other types and decoded as 0 for them.
    pub precision: i16,
    /// Upper display limit.
    pub upper_disp_limit: f64,
    /// Lower display limit.
    pub lower_disp_limit: f64,
    /// Upper alarm (HIHI) limit.
    pub upper_alarm_limit: f64,
    /// Upper warning (HIGH) limit.
    pub upper_warning_limit: f64,
    /// Lower warning (LOW) limit.
    pub lower_warning_limit: f64,
    /// Lower alarm (LOLO) limit.
    pub lower_alarm_limit: f64,
}

/// Control limits, the part CTRL payloads add to GR ones.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ControlLimits {
    /// Upper control (drive) limit.
    pub upper_ctrl_limit: f64,
    /// Lower control (drive) limit.
    pub lower_ctrl_limit: f64,
}

/// The metadata of a DBR payload. Which variant a type carries:
///
/// | types | variant |
/// |---|---|
/// | plain, PUT_ACKT, PUT_ACKS, CLASS_NAME | [`Metadata::None`] |
/// | STS_*, GR_STRING, CTRL_STRING | [`Metadata::Status`] |
/// | TIME_* | [`Metadata::Time`] |
/// | GR_* (numeric) | [`Metadata::Graphic`] |
/// | CTRL_* (numeric) | [`Metadata::Control`] |
/// | GR_ENUM, CTRL_ENUM | [`Metadata::Enum`] |
/// | STSACK_STRING | [`Metadata::StatusAck`] |
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Metadata {
    /// No metadata.
    #[default]
    None,
    /// Alarm only.
    Status(Alarm),
    /// Alarm and timestamp.
    Time {
        /// Alarm state.
        alarm: Alarm,
        /// Time of the value.
        stamp: EpicsTime,
    },
    /// Alarm and display information.
    Graphic {
        /// Alarm state.
        alarm: Alarm,
        /// Units, precision and limits.
        info: GraphicInfo,
    },
    /// Alarm, display information and control limits.
    Control {
        /// Alarm state.
        alarm: Alarm,
        /// Units, precision and limits.
        info: GraphicInfo,
        /// Drive limits.
        control: ControlLimits,
    },
    /// Alarm and the state names of an enum (at most 16, each at most 25 bytes).
    Enum {
        /// Alarm state.
        alarm: Alarm,
        /// State names, in index order.
        strings: Vec<CaString>,
    },
    /// Alarm plus alarm acknowledgement state.
    StatusAck {
        /// Alarm state.
        alarm: Alarm,
        /// Whether transient alarms need acknowledging.
        ackt: u16,
        /// Highest unacknowledged severity.
        acks: u16,
    },
}

/// Which metadata layout a type uses; private mirror of the table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    None,
    Status,
    Time,
    Graphic,
    Control,
    Enum,
    StatusAck,
}

fn layout_of(data_type: DbrType) -> Layout {
    let native = data_type.native();
    match data_type.class() {
        DbrClass::Plain | DbrClass::PutAckt | DbrClass::PutAcks | DbrClass::ClassName => Layout::None,
        DbrClass::Status => Layout::Status,
        DbrClass::Time => Layout::Time,
        DbrClass::StsackString => Layout::StatusAck,
        DbrClass::Graphic | DbrClass::Control if native == NativeType::String => Layout::Status,
        DbrClass::Graphic | DbrClass::Control if native == NativeType::Enum => Layout::Enum,
        DbrClass::Graphic => Layout::Graphic,
        DbrClass::Control => Layout::Control,
    }
}

impl Metadata {
    /// Name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Metadata::None => "no",
            Metadata::Status(_) => "status",
            Metadata::Time { .. } => "time",
            Metadata::Graphic { .. } => "graphic",
            Metadata::Control { .. } => "control",
            Metadata::Enum { .. } => "enum",
            Metadata::StatusAck { .. } => "status-ack",
        }
    }

    fn layout(&self) -> Layout {
        match self {
            Metadata::None => Layout::None,
            Metadata::Status(_) => Layout::Status,
            Metadata::Time { .. } => Layout::Time,
            Metadata::Graphic { .. } => Layout::Graphic,
            Metadata::Control { .. } => Layout::Control,
            Metadata::Enum { .. } => Layout::Enum,
            Metadata::StatusAck { .. } => Layout::StatusAck,
        }
    }

    /// True when this variant is the one `data_type` carries.
    pub fn fits(&self, data_type: DbrType) -> bool {
        self.layout() == layout_of(data_type)
    }

    /// Alarm state, when present.
    pub fn alarm(&self) -> Option<Alarm> {
        match self {
            Metadata::None => None,
            Metadata::Status(alarm)
            | Metadata::Time { alarm, .. }
            | Metadata::Graphic { alarm, .. }
            | Metadata::Control { alarm, .. }
            | Metadata::Enum { alarm, .. }
            | Metadata::StatusAck { alarm, .. } => Some(*alarm),
        }
    }

    /// Timestamp, when present.
    pub fn timestamp(&self) -> Option<EpicsTime> {
        match self {
            Metadata::Time { stamp, .. } => Some(*stamp),
            _ => None,
        }
    }

    /// Display information, when present.
    pub fn graphic(&self) -> Option<&GraphicInfo> {
        match self {
            Metadata::Graphic { info, .. } | Metadata::Control { info, .. } => Some(info),
            _ => None,
        }
    }

    /// Control limits, when present.
    pub fn control(&self) -> Option<ControlLimits> {
        match self {
            Metadata::Control { control, .. } => Some(*control),
            _ => None,
        }
    }

    /// Enum state names, when present.
    pub fn enum_strings(&self) -> Option<&[CaString]> {
        match self {
            Metadata::Enum { strings, .. } => Some(strings),
            _ => None,
        }
    }

    /// Reads the metadata block of `data_type` from the start of `reader`.
    pub(crate) fn decode(data_type: DbrType, reader: &mut Reader<'_>) -> Result<Self, DbrError> {
        let layout = layout_of(data_type);
        if layout == Layout::None {
            return Ok(Metadata::None);
        }
        let alarm = Alarm { status: reader.u16()?, severity: reader.u16()? };
        let native = data_type.native();
        let metadata = match layout {
            Layout::None => Metadata::None,
            Layout::Status => Metadata::Status(alarm),
            Layout::Time => Metadata::Time { alarm, stamp: EpicsTime::new(reader.u32()?, reader.u32()?) },
            Layout::StatusAck => Metadata::StatusAck { alarm, ackt: reader.u16()?, acks: reader.u16()? },
            Layout::Enum => {
                let declared = reader.i16()?;
                let used = usize::try_from(declared)
                    .ok()
                    .filter(|&n| n <= MAX_ENUM_STATES)
                    .ok_or(DbrError::InvalidEnumStringCount(i32::from(declared)))?;
                let mut strings = Vec::with_capacity(used);
                for index in 0..MAX_ENUM_STATES {
                    let text = reader.lenient_text(MAX_ENUM_STRING_SIZE)?;
                    if index < used {
                        strings.push(text);
                    }
                }
                Metadata::Enum { alarm, strings }
            }
            Layout::Graphic | Layout::Control => {
                let precision = if has_precision(native) {
                    let precision = reader.i16()?;
                    reader.u16()?; // RISC_pad0
                    precision
                } else {
                    0
                };
                let units = reader.lenient_text(MAX_UNITS_SIZE)?;
                let mut limit = || read_limit(native, reader);
                let info = GraphicInfo {
                    units,
                    precision,
                    upper_disp_limit: limit()?,
                    lower_disp_limit: limit()?,
                    upper_alarm_limit: limit()?,
                    upper_warning_limit: limit()?,
                    lower_warning_limit: limit()?,
                    lower_alarm_limit: limit()?,
                };
                if layout == Layout::Graphic {
                    Metadata::Graphic { alarm, info }
                } else {
                    let control = ControlLimits { upper_ctrl_limit: limit()?, lower_ctrl_limit: limit()? };
                    Metadata::Control { alarm, info, control }
                }
            }
        };
        reader.skip_to(data_type.value_offset())?;
        Ok(metadata)
    }

    /// Writes the metadata block of `data_type`, pads included.
    pub(crate) fn encode<B: BufMut>(&self, data_type: DbrType, buf: &mut B) -> Result<(), DbrError> {
        if !self.fits(data_type) {
            return Err(DbrError::MetadataMismatch { data_type, metadata: self.kind() });
        }
        let native = data_type.native();
        let mut written = 0usize;
        if let Some(alarm) = self.alarm() {
            buf.put_u16(alarm.status);
            buf.put_u16(alarm.severity);
            written += 4;
        }
        match self {
            Metadata::None | Metadata::Status(_) => {}
            Metadata::Time { stamp, .. } => {
                buf.put_u32(stamp.secs);
                buf.put_u32(stamp.nanos);
                written += 8;
            }
            Metadata::StatusAck { ackt, acks, .. } => {
                buf.put_u16(*ackt);
                buf.put_u16(*acks);
                written += 4;
            }
            Metadata::Enum { strings, .. } => {
                if strings.len() > MAX_ENUM_STATES {
                    return Err(DbrError::InvalidEnumStringCount(i32::try_from(strings.len()).unwrap_or(i32::MAX)));
                }
                // Bounded by MAX_ENUM_STATES just above.
                buf.put_i16(strings.len() as i16);
                let empty = CaString::default();
                for index in 0..MAX_ENUM_STATES {
                    let text = strings.get(index).unwrap_or(&empty);
                    put_text(buf, text, MAX_ENUM_STRING_SIZE, "enum state")?;
                }
                written += 2 + MAX_ENUM_STATES * MAX_ENUM_STRING_SIZE;
            }
            Metadata::Graphic { info, .. } | Metadata::Control { info, .. } => {
                if has_precision(native) {
                    buf.put_i16(info.precision);
                    buf.put_u16(0);
                    written += 4;
                }
                put_text(buf, &info.units, MAX_UNITS_SIZE, "units")?;
                written += MAX_UNITS_SIZE;
                let mut limits = vec![
                    info.upper_disp_limit,
                    info.lower_disp_limit,
                    info.upper_alarm_limit,
                    info.upper_warning_limit,
                    info.lower_warning_limit,
                    info.lower_alarm_limit,
                ];
                if let Some(control) = self.control() {
                    limits.extend([control.upper_ctrl_limit, control.lower_ctrl_limit]);
                }
                for limit in limits {
                    written += write_limit(native, limit, buf);
                }
            }
        }
        buf.put_bytes(0, data_type.value_offset().saturating_sub(written));
        Ok(())
    }
}

fn has_precision(native: NativeType) -> bool {
    matches!(native, NativeType::Float | NativeType::Double)
}

fn read_limit(native: NativeType, reader: &mut Reader<'_>) -> Result<f64, DbrError> {
    Ok(match native {
        NativeType::Char => f64::from(reader.u8()?),
        NativeType::Short => f64::from(reader.i16()?),
        NativeType::Long => f64::from(reader.i32()?),
        NativeType::Float => f64::from(reader.f32()?),
        // Enum and String have no limits; layout_of never routes them here.
        NativeType::Double | NativeType::Enum | NativeType::String => reader.f64()?,
    })
}

/// Writes one limit in the channel's element type; returns bytes written.
fn write_limit<B: BufMut>(native: NativeType, limit: f64, buf: &mut B) -> usize {
    match native {
        NativeType::Char => {
            buf.put_u8(limit as u8);
            1
        }
        NativeType::Short => {
            buf.put_i16(limit as i16);
            2
        }
        NativeType::Long => {
            buf.put_i32(limit as i32);
            4
        }
        NativeType::Float => {
            buf.put_f32(limit as f32);
            4
        }
        NativeType::Double | NativeType::Enum | NativeType::String => {
            buf.put_f64(limit);
            8
        }
    }
}
