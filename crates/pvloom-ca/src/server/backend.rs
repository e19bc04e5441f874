//! What the server asks of a process variable, and the simplest one: a value in memory.

use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use pvloom_core::completion::Completion;

use crate::proto::constants::{DBE_ALARM, DBE_LOG, DBE_VALUE, ECA_BADTYPE, ECA_PUTFAIL};
use crate::proto::{
    Alarm, CaString, ControlLimits, DbrClass, DbrData, DbrType, EpicsTime, GraphicInfo, Metadata, Value,
};

/// The ECA status of a refused read or write.
pub type Status = u32;

/// A process variable as the server sees it. Implementations are shared by every
/// client's I/O thread, so they lock internally and never block for long.
pub trait PvBackend: Send + Sync + 'static {
    /// The native DBR type (plain class).
    fn native_type(&self) -> DbrType;
    /// Elements of the value (its maximum, for arrays).
    fn element_count(&self) -> u32;
    /// The value and metadata as `data_type`, `count` elements (0: all).
    ///
    /// # Errors
    /// An ECA status, e.g. `ECA_BADTYPE`.
    fn read(&self, data_type: DbrType, count: u32) -> Result<DbrData, Status>;
    /// Write a value sent as `data_type`; returns the events it caused (DBE_* mask).
    ///
    /// # Errors
    /// An ECA status, e.g. `ECA_PUTFAIL`, `ECA_NOWTACCESS`.
    fn write(&self, data_type: DbrType, data: &DbrData) -> Result<u16, Status>;
    /// As [`write`](Self::write), for a client that asked to be told when the write is
    /// done (`WRITE_NOTIFY`): with a completion when processing the write started goes on
    /// after this call (a delayed record in its chain), which completes with the status
    /// to answer once it is over; `None`: done now.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    fn write_notify(&self, data_type: DbrType, data: &DbrData) -> Result<(u16, Option<Completion<Status>>), Status> {
        self.write(data_type, data).map(|events| (events, None))
    }
    /// False when no client may write it, whatever the access rules say.
    fn writable(&self) -> bool {
        true
    }

    /// The access security group (a record's ASG field); `None`: DEFAULT.
    fn access_group(&self) -> Option<String> {
        None
    }

    /// A fresh gate for one new subscription, when updates may be held back or
    /// replaced (a channel's `dbnd` and `sync` filters); `None`: every update goes out.
    fn monitor_gate(&self) -> Option<Box<dyn MonitorGate>> {
        None
    }
}

/// Decides, per subscription, what goes out for each update; keeps what it needs to
/// (the last value sent, the last update held back). Called with each update as read
/// for that subscription.
pub trait MonitorGate: Send {
    /// What goes to the client for `data`: `data` itself, an earlier update the gate
    /// held back (sync's `before` and `last`), or nothing.
    fn pass(&mut self, data: DbrData) -> Option<DbrData>;
}

/// Hook run on every client write of a [`SimplePv`]: it may accept the value, change
/// it (a clamp), or refuse it.
pub type PutHook = Arc<dyn Fn(&Value) -> Result<Value, PutHookError> + Send + Sync>;

/// Why a [`PutHook`] refused a client's value; the client sees the matching ECA status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutHookError {
    /// The value is not acceptable (the client sees `ECA_PUTFAIL`).
    #[error("value refused: {0}")]
    Refused(String),
    /// The value has a type the PV cannot take (the client sees `ECA_BADTYPE`).
    #[error("wrong type: {0}")]
    BadType(String),
}

impl PutHookError {
    /// The ECA status a client is answered with.
    pub fn status(&self) -> Status {
        match self {
            PutHookError::Refused(_) => ECA_PUTFAIL,
            PutHookError::BadType(_) => ECA_BADTYPE,
        }
    }
}

/// How to describe a PV defined in code (caproto's `pvproperty`).
#[derive(Clone)]
pub struct PvSpec {
    /// Initial value; its type is the PV's native type.
    pub value: Value,
    /// Maximum elements (arrays); at least the initial value's length.
    pub max_length: Option<u32>,
    /// Engineering units.
    pub units: String,
    /// Display precision.
    pub precision: i16,
    /// Display limits (low, high).
    pub display_limits: (f64, f64),
    /// Control limits (low, high); writes are clamped to them when they differ.
    pub control_limits: (f64, f64),
    /// Alarm limits (lolo, low, high, hihi): warnings MINOR, alarms MAJOR.
    pub alarm_limits: Option<(f64, f64, f64, f64)>,
    /// State names of an ENUM.
    pub enum_strings: Vec<String>,
    /// Refuse client writes.
    pub read_only: bool,
    /// Run on client writes.
    pub put_hook: Option<PutHook>,
}

impl PvSpec {
    /// A PV holding `value`, with no metadata.
    pub fn new(value: Value) -> Self {
        PvSpec {
            value,
            max_length: None,
            units: String::new(),
            precision: 0,
            display_limits: (0.0, 0.0),
            control_limits: (0.0, 0.0),
            alarm_limits: None,
            enum_strings: Vec::new(),
            read_only: false,
            put_hook: None,
        }
    }
}

struct SimpleState {
    value: Value,
    stamp: EpicsTime,
    alarm: Alarm,
}

/// Elements a PV holds: fixed at creation, as an EPICS waveform's NELM, because clients
/// are told the count when their channel is created.
fn capacity_of(spec: &PvSpec) -> u32 {
    spec.max_length.unwrap_or(spec.value.len() as u32).max(spec.value.len() as u32).max(1)
}

/// A PV whose value lives in memory: defined in code, written by clients, posted by
/// the program.
pub struct SimplePv {
    spec: PvSpec,
    state: Mutex<SimpleState>,
}

fn now() -> EpicsTime {
    EpicsTime::from_system_time(SystemTime::now()).unwrap_or(EpicsTime::EPOCH)
}

impl SimplePv {
    /// A PV from its description.
    pub fn new(spec: PvSpec) -> Self {
        let value = spec.value.clone();
        let pv = SimplePv { state: Mutex::new(SimpleState { value, stamp: now(), alarm: Alarm::default() }), spec };
        let alarm = pv.alarm_of(&pv.state.lock().value);
        pv.state.lock().alarm = alarm;
        pv
    }

    /// The current value.
    pub fn value(&self) -> Value {
        self.state.lock().value.clone()
    }

    /// Set the value (from the program); returns the events it caused.
    pub fn set(&self, value: Value) -> u16 {
        let value = truncate(value, capacity_of(&self.spec));
        let alarm = self.alarm_of(&value);
        let mut state = self.state.lock();
        let mut mask = DBE_VALUE | DBE_LOG;
        if alarm != state.alarm {
            mask |= DBE_ALARM;
        }
        state.value = value;
        state.alarm = alarm;
        state.stamp = now();
        mask
    }

    fn alarm_of(&self, value: &Value) -> Alarm {
        let Some((lolo, low, high, hihi)) = self.spec.alarm_limits else { return Alarm::default() };
        let Some(x) = value.to_f64_vec().and_then(|v| v.first().copied()) else { return Alarm::default() };
        use crate::proto::constants::{alarm_status as st, severity as sv};
        let (status, severity) = if x >= hihi {
            (st::HIHI, sv::MAJOR)
        } else if x <= lolo {
            (st::LOLO, sv::MAJOR)
        } else if x >= high {
            (st::HIGH, sv::MINOR)
        } else if x <= low {
            (st::LOW, sv::MINOR)
        } else {
            (st::NO_ALARM, sv::NO_ALARM)
        };
        Alarm { status, severity }
    }

    fn graphic(&self) -> GraphicInfo {
        let (lolo, low, high, hihi) = self.spec.alarm_limits.unwrap_or((f64::NAN, f64::NAN, f64::NAN, f64::NAN));
        GraphicInfo {
            units: self.spec.units.as_str().into(),
            precision: self.spec.precision,
            upper_disp_limit: self.spec.display_limits.1,
            lower_disp_limit: self.spec.display_limits.0,
            upper_alarm_limit: hihi,
            upper_warning_limit: high,
            lower_warning_limit: low,
            lower_alarm_limit: lolo,
        }
    }
}

/// The metadata of `class` from the parts every PV has.
pub fn metadata_for(
    class: DbrClass,
    native_is_enum: bool,
    alarm: Alarm,
    stamp: EpicsTime,
    graphic: impl FnOnce() -> GraphicInfo,
    control: impl FnOnce() -> ControlLimits,
    enum_strings: impl FnOnce() -> Vec<CaString>,
) -> Metadata {
    match class {
        DbrClass::Plain => Metadata::None,
        DbrClass::Status => Metadata::Status(alarm),
        DbrClass::Time => Metadata::Time { alarm, stamp },
        DbrClass::Graphic | DbrClass::Control if native_is_enum => Metadata::Enum { alarm, strings: enum_strings() },
        DbrClass::Graphic => Metadata::Graphic { alarm, info: graphic() },
        DbrClass::Control => Metadata::Control { alarm, info: graphic(), control: control() },
        DbrClass::StsackString => Metadata::StatusAck { alarm, ackt: 0, acks: 0 },
        _ => Metadata::Status(alarm),
    }
}

/// The first `count` elements (0: all).
pub fn truncate(value: Value, count: u32) -> Value {
    if count == 0 || count as usize >= value.len() {
        return value;
    }
    let n = count as usize;
    match value {
        Value::String(mut v) => {
            v.truncate(n);
            Value::String(v)
        }
        Value::Short(mut v) => {
            v.truncate(n);
            Value::Short(v)
        }
        Value::Float(mut v) => {
            v.truncate(n);
            Value::Float(v)
        }
        Value::Enum(mut v) => {
            v.truncate(n);
            Value::Enum(v)
        }
        Value::Char(mut v) => {
            v.truncate(n);
            Value::Char(v)
        }
        Value::Long(mut v) => {
            v.truncate(n);
            Value::Long(v)
        }
        Value::Double(mut v) => {
            v.truncate(n);
            Value::Double(v)
        }
    }
}

impl PvBackend for SimplePv {
    fn native_type(&self) -> DbrType {
        DbrType::from_parts(self.spec.value.native_type(), DbrClass::Plain).unwrap_or(DbrType::Double)
    }

    fn element_count(&self) -> u32 {
        capacity_of(&self.spec)
    }

    fn read(&self, data_type: DbrType, count: u32) -> Result<DbrData, Status> {
        let (value, alarm, stamp) = {
            let state = self.state.lock();
            (state.value.clone(), state.alarm, state.stamp)
        };
        let value = if data_type.native() == crate::proto::NativeType::String
            && value.native_type() == crate::proto::NativeType::Enum
        {
            // An enum read as a string gives its state name, as EPICS does.
            let names = match &value {
                Value::Enum(indices) => indices
                    .iter()
                    .map(|&i| self.spec.enum_strings.get(usize::from(i)).map_or_else(|| i.to_string(), Clone::clone))
                    .map(|s| CaString::from(s.as_str()))
                    .collect(),
                _ => Vec::new(),
            };
            Value::String(names)
        } else {
            value.convert(data_type.native()).map_err(|_| ECA_BADTYPE)?
        };
        let metadata = metadata_for(
            data_type.class(),
            self.spec.value.native_type() == crate::proto::NativeType::Enum,
            alarm,
            stamp,
            || self.graphic(),
            || ControlLimits {
                upper_ctrl_limit: self.spec.control_limits.1,
                lower_ctrl_limit: self.spec.control_limits.0,
            },
            || self.spec.enum_strings.iter().map(|s| CaString::from(s.as_str())).collect(),
        );
        let metadata = if metadata.fits(data_type) { metadata } else { Metadata::Status(alarm) };
        Ok(DbrData::new(metadata, truncate(value, count)))
    }

    fn write(&self, _data_type: DbrType, data: &DbrData) -> Result<u16, Status> {
        if self.spec.read_only {
            return Err(crate::proto::constants::ECA_NOWTACCESS);
        }
        let native = self.spec.value.native_type();
        let mut value = match (&data.value, native) {
            (Value::String(names), crate::proto::NativeType::Enum) => {
                let mut indices = Vec::with_capacity(names.len());
                for name in names {
                    let text = name.to_string_lossy();
                    match self.spec.enum_strings.iter().position(|s| *s == text) {
                        Some(i) => indices.push(i as u16),
                        None => indices.push(text.trim().parse::<u16>().map_err(|_| ECA_PUTFAIL)?),
                    }
                }
                Value::Enum(indices)
            }
            (value, native) => value.convert(native).map_err(|_| ECA_BADTYPE)?,
        };
        let (low, high) = self.spec.control_limits;
        if low < high
            && let Some(numbers) = value.to_f64_vec()
        {
            let clamped: Vec<f64> = numbers.iter().map(|x| x.clamp(low, high)).collect();
            value = Value::Double(clamped).convert(native).map_err(|_| ECA_BADTYPE)?;
        }
        if let Some(hook) = &self.spec.put_hook {
            value = hook(&value).map_err(|err| {
                tracing::info!("put refused by hook: {err}");
                err.status()
            })?;
        }
        let max = self.element_count() as usize;
        if value.len() > max {
            value = truncate(value, max as u32);
        }
        Ok(self.set(value))
    }

    fn writable(&self) -> bool {
        !self.spec.read_only
    }
}
