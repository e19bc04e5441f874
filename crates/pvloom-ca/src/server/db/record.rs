//! Record types, their fields, and record processing.

use std::time::{Duration, SystemTime};

use crate::proto::constants::{DBE_ALARM, DBE_LOG, DBE_PROPERTY, DBE_VALUE, alarm_status, severity};
use crate::proto::dbr::{EpicsTime, NativeType, Value};

use super::alarm::AlarmState;
use super::rec::{FieldSpec, FieldStore, Follow, Process, RecordSupport, RecordType, STATE_STRINGS};
use super::value::*;

/// Requests to process an active record that pass unnoticed before it raises a SCAN
/// alarm (base's `MAX_LOCK`).
pub const MAX_BUSY_REQUESTS: u8 = 10;

/// An input link of a calc record, parsed from its text.
#[derive(Debug, Clone, PartialEq)]
pub enum CalcInput {
    /// No link.
    None,
    /// A constant, loaded into the argument once.
    Constant(f64),
    /// A database link to another record's field.
    Link(Link),
}

/// A database link `REC[.FIELD] [NPP|PP|CA|CP|CPP] [NMS|MS|MSS|MSI]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Target record name.
    pub record: String,
    /// Target field (`VAL` when not given).
    pub field: String,
    /// Process the target before reading it if it is passive (`PP`).
    pub process_passive: bool,
    /// Process this record whenever the target posts a value (`CP`, `CPP`).
    pub process_on_change: bool,
    /// How alarm severity propagates: `NMS`, `MS`, `MSS` or `MSI`.
    pub severity_mode: SeverityMode,
}

/// Maximize-severity modes of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeverityMode {
    /// Do not propagate.
    #[default]
    Nms,
    /// Propagate severity with status LINK.
    Ms,
    /// Propagate severity and status.
    Mss,
    /// Propagate only INVALID severity.
    Msi,
}

/// A constant link's value as base 7 reads link text: a number, a JSON array (`[1, 2]`,
/// `["a", "b"]`), or a JSON `{const: …}` link holding a number, boolean, string or array.
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    /// A number (booleans are 0 and 1).
    Number(f64),
    /// A string.
    Text(String),
    /// An array of numbers (possibly empty).
    Numbers(Vec<f64>),
    /// An array of strings.
    Texts(Vec<String>),
}

impl Constant {
    /// The constant in link text, if it is one.
    pub fn parse(text: &str) -> Option<Constant> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        if let Some(v) = parse_number(t) {
            return Some(Constant::Number(v));
        }
        if !t.starts_with(['{', '[']) {
            return None;
        }
        match super::relaxed_json::parse(t)? {
            serde_json::Value::Object(map) if map.len() == 1 => Constant::from_json(map.get("const")?),
            array @ serde_json::Value::Array(_) => Constant::from_json(&array),
            _ => None,
        }
    }

    fn from_json(value: &serde_json::Value) -> Option<Constant> {
        use serde_json::Value as J;
        let number = |v: &J| match v {
            J::Number(n) => n.as_f64(),
            J::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        };
        match value {
            J::String(s) => Some(Constant::Text(s.clone())),
            J::Array(items) if items.iter().all(J::is_string) => {
                let texts: Vec<String> = items.iter().filter_map(J::as_str).map(str::to_owned).collect();
                Some(if texts.is_empty() { Constant::Numbers(Vec::new()) } else { Constant::Texts(texts) })
            }
            J::Array(items) => Some(Constant::Numbers(items.iter().map(number).collect::<Option<Vec<f64>>>()?)),
            other => number(other).map(Constant::Number),
        }
    }

    /// The value a scalar numeric field takes from it (an array's first element, a string
    /// read as a number); `None` when it has none, and the field keeps its value.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            Constant::Number(v) => Some(*v),
            Constant::Text(s) => parse_number(s),
            Constant::Numbers(v) => v.first().copied(),
            Constant::Texts(v) => v.first().and_then(|s| parse_number(s)),
        }
    }

    /// The value it loads into a field: for an array field of `capacity` elements the
    /// array's first `capacity` elements, else its first element; strings stay strings
    /// (the field converts them).
    pub fn field_value(&self, capacity: Option<usize>) -> Option<FieldValue> {
        let Some(n) = capacity else {
            return Some(match self {
                Constant::Number(v) => FieldValue::Double(*v),
                Constant::Text(s) => FieldValue::String(s.clone()),
                Constant::Numbers(v) => FieldValue::Double(*v.first()?),
                Constant::Texts(v) => FieldValue::String(v.first()?.clone()),
            });
        };
        let texts = |v: &[String]| Value::String(v.iter().take(n).map(|s| s.as_str().into()).collect());
        Some(FieldValue::Array(match self {
            Constant::Number(v) => Value::Double(vec![*v]),
            Constant::Text(s) => texts(std::slice::from_ref(s)),
            Constant::Numbers(v) => Value::Double(v.iter().take(n).copied().collect()),
            Constant::Texts(v) => texts(v),
        }))
    }
}

impl Link {
    /// Parses link text into an input: empty → none, a number or a JSON constant
    /// (`{const: …}`, `[…]`) → constant, otherwise a database link. Hardware (`@`, `#`)
    /// and other JSON links are refused.
    pub fn parse_input(text: &str) -> Result<CalcInput, LinkError> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(CalcInput::None);
        }
        if let Some(constant) = Constant::parse(t) {
            return Ok(CalcInput::Constant(constant.scalar().unwrap_or(0.0)));
        }
        if t.starts_with(['@', '#', '{', '[']) {
            return Err(LinkError::Unsupported(t.to_string()));
        }
        let mut words = t.split_whitespace();
        let target = words.next().unwrap_or_default();
        let (record, field) = match target.split_once('.') {
            Some((r, f)) => (r, f),
            None => (target, "VAL"),
        };
        if record.is_empty() || field.is_empty() {
            return Err(LinkError::Malformed(t.to_string()));
        }
        let mut link = Link {
            record: record.to_string(),
            field: field.to_string(),
            process_passive: false,
            process_on_change: false,
            severity_mode: SeverityMode::Nms,
        };
        for word in words {
            match word {
                "NPP" | "CA" => {}
                "PP" => link.process_passive = true,
                "CP" => link.process_on_change = true,
                "CPP" => {
                    link.process_on_change = true;
                    link.process_passive = true
                }
                "NMS" => link.severity_mode = SeverityMode::Nms,
                "MS" => link.severity_mode = SeverityMode::Ms,
                "MSS" => link.severity_mode = SeverityMode::Mss,
                "MSI" => link.severity_mode = SeverityMode::Msi,
                other => return Err(LinkError::BadModifier { modifier: other.to_string(), link: t.to_string() }),
            }
        }
        Ok(CalcInput::Link(link))
    }
}

/// Why link text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A hardware (`@`, `#`) or JSON link other than `const`: only constants and database
    /// links are served.
    #[error("link {0:?} is not supported: only constants ({{const: …}}, […]) and database links are")]
    Unsupported(String),
    /// No record or field name.
    #[error("bad link {0:?}")]
    Malformed(String),
    /// A word that is no process or severity modifier.
    #[error("bad link modifier {modifier:?} in {link:?}")]
    BadModifier {
        /// The word.
        modifier: String,
        /// The whole link text.
        link: String,
    },
}

/// Why a field cannot be set from database-file text (`field(NAME, "text")`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The record type has no such field.
    #[error("record type {record_type} has no field {field:?}")]
    NoSuchField {
        /// The record's type.
        record_type: RecordType,
        /// The field named.
        field: String,
    },
    /// `NAME` comes from the record header only.
    #[error("the NAME field cannot be set")]
    NameField,
    /// A read-only field (other than `NELM` and `FTVL`, which a file sets).
    #[error("field {0} is read-only")]
    ReadOnly(String),
    /// Text longer than the string field holds.
    #[error("string of {length} bytes is too long for {field} (at most {max})")]
    StringTooLong {
        /// The field.
        field: String,
        /// Bytes given.
        length: usize,
        /// Bytes the field holds.
        max: usize,
    },
    /// `NELM` that is no integer.
    #[error("bad NELM {0:?}")]
    BadNelm(String),
    /// `NELM` above the configured element limit.
    #[error("NELM {nelm} exceeds the limit of {max} elements")]
    NelmTooLarge {
        /// `NELM` given.
        nelm: i64,
        /// The limit.
        max: u32,
    },
    /// An integer (or enum) field given something else.
    #[error("bad value for field {field}: {text:?} is not an integer")]
    NotAnInteger {
        /// The field.
        field: String,
        /// The text given.
        text: String,
    },
    /// A waveform `VAL` that is not a `[..]` list.
    #[error("waveform VAL must be a [..] list")]
    NotAList,
    /// The value is refused as a put would refuse it.
    #[error("{}", load_message(.0))]
    Refused(PutError),
}

/// A put's refusal worded for a database file.
fn load_message(err: &PutError) -> String {
    err.to_string().replacen("bad value for ", "bad value for field ", 1)
}

/// Why a write to a field was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PutError {
    /// The record has no such field.
    #[error("no field {0:?}")]
    NoSuchField(String),
    /// The field may not be written.
    #[error("field {0} is read-only")]
    ReadOnly(&'static str),
    /// The value cannot be converted to the field's type.
    #[error("bad value for {field}: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A string names no state or menu choice.
    #[error("{value:?} is not a choice of {field}")]
    BadChoice {
        /// The field.
        field: &'static str,
        /// The string given.
        value: String,
    },
    /// More elements than the field holds.
    #[error("{count} elements do not fit {field} (at most {max})")]
    TooManyElements {
        /// The field.
        field: &'static str,
        /// Elements given.
        count: usize,
        /// Capacity.
        max: u32,
    },
    /// The DBR type cannot be written (e.g. CLASS_NAME).
    #[error("{0} cannot be written")]
    BadType(crate::proto::dbr::DbrType),
}

/// What a put or a processing changed: the monitor events the server
/// should post, per field of the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    fields: Vec<(&'static str, u16)>,
    /// Metadata changed: every channel of the record gets `DBE_PROPERTY`.
    pub property: bool,
    /// The record was processed.
    pub processed: bool,
    /// `SCAN` or `PHAS` changed: the server should reschedule the record.
    pub scan_changed: bool,
}

/// The result of a put, as the brief of the server names it.
pub type PutEffect = Changes;

impl Changes {
    /// Adds `mask` to the events of `field`.
    pub fn post(&mut self, field: &'static str, mask: u16) {
        if mask == 0 {
            return;
        }
        match self.fields.iter_mut().find(|(f, _)| *f == field) {
            Some((_, m)) => *m |= mask,
            None => self.fields.push((field, mask)),
        }
    }

    /// The events for subscribers of `field` (including `DBE_PROPERTY`).
    pub fn mask_for(&self, field: &str) -> u16 {
        let own = self.fields.iter().find(|(f, _)| *f == field).map_or(0, |(_, m)| *m);
        own | if self.property { DBE_PROPERTY } else { 0 }
    }

    /// The per-field events (without the record-wide `DBE_PROPERTY`).
    pub fn posts(&self) -> &[(&'static str, u16)] {
        &self.fields
    }

    /// True when nothing needs posting.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && !self.property
    }

    /// Merges another set of changes into this one.
    pub fn merge(&mut self, other: Changes) {
        for (field, mask) in other.fields {
            self.post(field, mask);
        }
        self.property |= other.property;
        self.processed |= other.processed;
        self.scan_changed |= other.scan_changed;
    }
}

/// One record: common fields, type-specific fields, alarm state, timestamp.
#[derive(Debug)]
pub struct Record {
    name: String,
    desc: String,
    scan: u16,
    pini: u16,
    phas: i16,
    udf: bool,
    udfs: u16,
    alarm: AlarmState,
    time: EpicsTime,
    /// `PACT`: an asynchronous processing (calcout's `ODLY`, seq's groups) is under way.
    pact: bool,
    /// `RPRO`: a put asked for processing while active; processed again at the end.
    rpro: bool,
    /// `LCNT`: processing requests refused while active, since the last processing.
    lcnt: u8,
    record_type: RecordType,
    support: Box<dyn RecordSupport>,
    extras: FieldStore,
    info: Vec<(String, String)>,
    aliases: Vec<String>,
    /// The input links processing reads, parsed once: dropped whenever a link field
    /// is written (parsing them at every processing was a fifth of a calc chain's cost).
    links_to_read: std::sync::OnceLock<ReadLinks>,
}

/// Input link fields that name a record, with their links.
pub(crate) type ReadLinks = std::sync::Arc<[(&'static str, Link)]>;

impl Clone for Record {
    fn clone(&self) -> Self {
        Record {
            name: self.name.clone(),
            desc: self.desc.clone(),
            support: self.support.clone_box(),
            extras: self.extras.clone(),
            info: self.info.clone(),
            aliases: self.aliases.clone(),
            links_to_read: self.links_to_read.clone(),
            ..*self
        }
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        let common = |r: &Record| {
            (r.scan, r.pini, r.phas, r.udf, r.udfs, r.alarm, r.time, r.pact, r.rpro, r.lcnt, r.record_type)
        };
        common(self) == common(other)
            && (&self.name, &self.desc, &self.extras, &self.info, &self.aliases)
                == (&other.name, &other.desc, &other.extras, &other.info, &other.aliases)
            && self.support.eq_dyn(other.support.as_ref())
    }
}

impl Record {
    /// A record of `record_type` with every field at its default, as EPICS
    /// creates it before the database sets any field.
    pub fn new(record_type: RecordType, name: &str) -> Record {
        let mut record = Record {
            name: name.to_string(),
            desc: String::new(),
            scan: 0,
            pini: 0,
            phas: 0,
            udf: true,
            udfs: severity::INVALID,
            alarm: AlarmState::default(),
            time: EpicsTime::EPOCH,
            pact: false,
            rpro: false,
            lcnt: 0,
            record_type,
            support: record_type.new_support(),
            extras: FieldStore::new(),
            info: Vec::new(),
            aliases: Vec::new(),
            links_to_read: std::sync::OnceLock::new(),
        };
        record.init_alarm();
        record
    }

    /// Sets a field from database-file text (`field(NAME, "text")`), with
    /// the load-time rules: strings too long for the field are refused, and
    /// setting `VAL` clears `UDF`. `max_elements` bounds a waveform's `NELM`.
    pub fn load_field(&mut self, name: &str, text: &str, max_elements: u32) -> Result<(), LoadError> {
        let rtype = self.record_type();
        let spec =
            rtype.field(name).ok_or_else(|| LoadError::NoSuchField { record_type: rtype, field: name.to_string() })?;
        if name == "NAME" {
            return Err(LoadError::NameField);
        }
        if spec.read_only() && !matches!(name, "NELM" | "FTVL") && !self.support.loads_read_only(name) {
            return Err(LoadError::ReadOnly(name.to_string()));
        }
        if let FieldType::String { size } = spec.field_type
            && text.len() >= usize::from(size)
        {
            return Err(LoadError::StringTooLong {
                field: name.to_string(),
                length: text.len(),
                max: usize::from(size) - 1,
            });
        }
        if self.support.is_array(name) {
            return self.load_array(spec.name, text);
        }
        if name == "NELM" {
            let nelm = parse_integer(text).ok_or_else(|| LoadError::BadNelm(text.to_string()))?;
            if nelm > i64::from(max_elements) {
                return Err(LoadError::NelmTooLarge { nelm, max: max_elements });
            }
        }
        let not_an_integer = || LoadError::NotAnInteger { field: name.to_string(), text: text.to_string() };
        if spec.field_type.is_integer() && parse_integer(text).is_none() {
            // dbPutStringNum parses integers strictly: no fractions or junk.
            return Err(not_an_integer());
        }
        let value = if spec.field_type == FieldType::Enum {
            // dbPutStringNum: a plain number, whatever states are defined.
            let v = parse_integer(text).ok_or_else(not_an_integer)?;
            FieldValue::Enum(v as u16)
        } else {
            coerce(spec, FieldValue::String(text.to_string()), Some(self)).map_err(LoadError::Refused)?
        };
        self.store(spec, value).map_err(LoadError::Refused)?;
        if name == "VAL" {
            self.udf = self.support.value_is_nan();
            self.support.value_loaded();
        }
        Ok(())
    }

    fn load_array(&mut self, name: &'static str, text: &str) -> Result<(), LoadError> {
        let t = text.trim();
        let inner = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or(LoadError::NotAList)?;
        let items: Vec<String> = if inner.trim().is_empty() {
            Vec::new()
        } else {
            inner.split(',').map(|s| s.trim().trim_matches('"').to_string()).collect()
        };
        let value = Value::String(items.into_iter().map(Into::into).collect());
        self.put_array(name, value).map_err(LoadError::Refused)?;
        self.udf = false;
        Ok(())
    }

    /// What `init_record` does once every field of the file is set: the type's own
    /// initialisation, then constant input links loaded into the fields they
    /// initialise (`recGblInitConstantLink`; soft device support's `dbLoadLink`,
    /// `dbLoadLinkArray` for array records). A constant the field cannot take leaves
    /// it as it was, as in base.
    pub(crate) fn init_record(&mut self) {
        self.support.init_record();
        // A constant SIOL is the simulated value, in SVAL from the start.
        if let (Some(FieldValue::String(text)), Some(sval)) = (self.extras.get("SIOL"), self.spec("SVAL"))
            && let Some(value) = Constant::parse(text).and_then(|c| c.field_value(None))
            && let Ok(value) = coerce(sval, value, Some(self))
        {
            let _ = self.store(sval, value);
        }
        for spec in self.record_type().fields() {
            if spec.field_type != FieldType::InLink {
                continue;
            }
            let Some(target) = self.support.constant_target(spec.name) else { continue };
            let Some(FieldValue::String(text)) = self.extras.get(spec.name) else { continue };
            let Some(constant) = Constant::parse(text) else { continue };
            let capacity = self.support.is_array(target).then(|| self.support.element_count(target) as usize);
            let Some(value) = constant.field_value(capacity) else { continue };
            let loaded = match value {
                FieldValue::Array(array) => self.put_array(target, array).is_ok(),
                scalar => match self.spec(target).map(|t| (t, coerce(t, scalar, Some(self)))) {
                    Some((target_spec, Ok(value))) => self.store(target_spec, value).is_ok(),
                    _ => false,
                },
            };
            if loaded && target == "VAL" {
                self.udf = self.support.value_is_nan();
                self.support.value_loaded();
            }
        }
    }

    /// Sets the initial severity as `iocInit` does: a record whose value is
    /// undefined starts with `STAT` UDF and `SEVR` = `UDFS`.
    pub(crate) fn init_alarm(&mut self) {
        if self.alarm.stat == alarm_status::UDF && self.alarm.nsev == 0 {
            self.alarm.sevr = if self.udf { self.udfs } else { severity::NO_ALARM };
        }
    }

    /// Adds an `info(name, value)` item.
    pub fn add_info(&mut self, name: &str, value: &str) {
        match self.info.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.info.push((name.to_string(), value.to_string())),
        }
    }

    /// Adds an alias name.
    pub fn add_alias(&mut self, alias: &str) {
        if !self.aliases.iter().any(|a| a == alias) {
            self.aliases.push(alias.to_string());
        }
    }

    /// The record's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The record's type.
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }

    /// The type-specific state (downcast with [`RecordSupport::as_any`]).
    pub fn support(&self) -> &dyn RecordSupport {
        self.support.as_ref()
    }

    /// `DESC`.
    pub fn desc(&self) -> &str {
        &self.desc
    }

    /// `SCAN` as a `menuScan` index.
    pub fn scan(&self) -> u16 {
        self.scan
    }

    /// The scan period of a periodic record.
    pub fn scan_period(&self) -> Option<Duration> {
        scan_period(self.scan)
    }

    /// True when the record has `SCAN` Event and `EVNT` names `event`.
    pub fn scans_on_event(&self, event: &str) -> bool {
        const SCAN_EVENT: u16 = 1;
        self.scan == SCAN_EVENT
            && matches!(self.extras.get("EVNT"), Some(FieldValue::String(name)) if name.trim() == event.trim())
    }

    /// `PHAS`: order among records of the same scan period.
    pub fn phase(&self) -> i16 {
        self.phas
    }

    /// True when the record is processed once at start-up (`PINI` YES).
    pub fn pini(&self) -> bool {
        self.pini == 1
    }

    /// `UDF`: the value was never defined.
    pub fn udf(&self) -> bool {
        self.udf
    }

    /// The alarm state (`STAT`, `SEVR`, ...).
    pub fn alarm(&self) -> &AlarmState {
        &self.alarm
    }

    /// Time of the last processing (`TIME`).
    pub fn time(&self) -> EpicsTime {
        self.time
    }

    /// `info(...)` items, in file order.
    pub fn info(&self) -> &[(String, String)] {
        &self.info
    }

    /// Alias names.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The forward link target (`FLNK`), if any.
    pub fn forward_link(&self) -> Option<String> {
        match self.extras.get("FLNK") {
            Some(FieldValue::String(s)) if !s.trim().is_empty() => {
                let target = s.split_whitespace().next().unwrap_or_default();
                Some(target.split('.').next().unwrap_or(target).to_string())
            }
            _ => None,
        }
    }

    /// True when `DISA` equals `DISV`: processing is disabled.
    pub fn disabled(&self) -> bool {
        // Neither set: DISA 0 and DISV 1, the defaults (the common case, asked at every
        // processing).
        if !self.extras.contains_key("DISA") && !self.extras.contains_key("DISV") {
            return false;
        }
        self.get_field("DISA") == self.get_field("DISV")
    }

    /// What dbProcess does to a disabled record: `STAT` DISABLE with severity
    /// `DISS` (once), nothing processed.
    pub(crate) fn mark_disabled(&mut self) -> Changes {
        let mut changes = Changes::default();
        if self.alarm.stat == alarm_status::DISABLE {
            return changes;
        }
        let diss = match self.get_field("DISS") {
            Some(FieldValue::Enum(v)) => v,
            _ => 0,
        };
        self.alarm.stat = alarm_status::DISABLE;
        self.alarm.sevr = diss;
        self.alarm.nsta = 0;
        self.alarm.nsev = 0;
        changes.post("STAT", DBE_VALUE | DBE_ALARM);
        changes.post("SEVR", DBE_VALUE);
        changes.post("VAL", DBE_ALARM);
        changes
    }

    /// Raises a pending alarm that the next processing commits
    /// (`recGblSetSevr`), e.g. a link alarm found by the server.
    pub fn raise_alarm(&mut self, stat: u16, sevr: u16) {
        self.alarm.raise(stat, sevr);
    }

    /// Splits a channel name `NAME.FIELD` into record and field (`VAL` by default).
    pub fn split_channel(channel: &str) -> (&str, &str) {
        match channel.split_once('.') {
            Some((record, field)) if !field.is_empty() => (record, field),
            Some((record, _)) => (record, "VAL"),
            None => (channel, "VAL"),
        }
    }

    fn spec(&self, name: &str) -> Option<&'static FieldSpec> {
        self.record_type().field(name)
    }

    /// The database type of field `name` (an array's `VAL` follows `FTVL`).
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        let spec = self.spec(name)?;
        Some(self.support.field_type(name).unwrap_or(spec.field_type))
    }

    /// How many elements field `name` holds at most (`NELM` for an array's `VAL`, else 1).
    pub fn element_count(&self, name: &str) -> Option<u32> {
        self.spec(name)?;
        Some(self.support.element_count(name))
    }

    /// True when field `name` holds an array.
    pub fn is_array(&self, name: &str) -> bool {
        self.support.is_array(name)
    }

    /// The enum state strings of field `name`: the record's states for
    /// bi/bo/mbbi/mbbo `VAL`, the menu's choices for menu fields.
    pub fn enum_strings(&self, name: &str) -> Option<Vec<&str>> {
        match self.field_type(name)? {
            FieldType::Enum => self.support.enum_strings(name),
            FieldType::Menu(menu) => Some(menu.choices.to_vec()),
            _ => None,
        }
    }

    /// Reads field `name`, or `None` if the record has no such field.
    pub fn get_field(&self, name: &str) -> Option<FieldValue> {
        let spec = self.spec(name)?;
        if let Some(v) = self.get_modeled(name) {
            return Some(v);
        }
        match (spec.field_type, self.extras.get(name)) {
            (FieldType::InLink | FieldType::OutLink, Some(FieldValue::String(text))) => {
                Some(FieldValue::String(link_as_base_prints(text)))
            }
            (_, Some(value)) => Some(value.clone()),
            (_, None) => Some(initial_value(spec)),
        }
    }

    fn get_modeled(&self, name: &str) -> Option<FieldValue> {
        use FieldValue::{Enum, Int};
        let text = |s: &str| Some(FieldValue::String(s.to_string()));
        match name {
            "NAME" => return text(&self.name),
            "DESC" => return text(&self.desc),
            "SCAN" => return Some(Enum(self.scan)),
            "PINI" => return Some(Enum(self.pini)),
            "PHAS" => return Some(Int(self.phas.into())),
            "UDF" => return Some(Int(self.udf.into())),
            "UDFS" => return Some(Enum(self.udfs)),
            "STAT" => return Some(Enum(self.alarm.stat)),
            "SEVR" => return Some(Enum(self.alarm.sevr)),
            "NSTA" => return Some(Enum(self.alarm.nsta)),
            "NSEV" => return Some(Enum(self.alarm.nsev)),
            "ACKS" => return Some(Enum(self.alarm.acks)),
            "ACKT" => return Some(Enum(self.alarm.ackt.into())),
            "PACT" => return Some(Int(self.pact.into())),
            "RPRO" => return Some(Int(self.rpro.into())),
            "LCNT" => return Some(Int(self.lcnt.into())),
            _ => {}
        }
        self.support.get(name)
    }

    /// Writes field `name` as a Channel Access put does, timestamping any
    /// processing with the current time. See [`Record::put_field_at`].
    pub fn put_field(&mut self, name: &str, value: FieldValue) -> Result<Changes, PutError> {
        self.put_field_at(name, value, SystemTime::now())
    }

    /// Writes field `name` as a Channel Access put does (`dbPutField`):
    /// the value is converted to the field's type (strings parsed, state and
    /// menu names looked up), read-only fields are refused, writing `VAL`
    /// clears `UDF`, and a passive record is processed when the field is
    /// `pp(TRUE)` (`VAL` of every type but calc, alarm limits, ...) or is `PROC`.
    pub fn put_field_at(&mut self, name: &str, value: FieldValue, now: SystemTime) -> Result<Changes, PutError> {
        let (mut changes, process) = self.put_without_processing(name, value)?;
        if process {
            changes.merge(self.process(now));
        }
        Ok(changes)
    }

    /// The storing half of a put: returns the changes and whether the
    /// record must now be processed.
    pub(crate) fn put_without_processing(
        &mut self,
        name: &str,
        value: FieldValue,
    ) -> Result<(Changes, bool), PutError> {
        let spec = self.spec(name).ok_or_else(|| PutError::NoSuchField(name.to_string()))?;
        if spec.read_only() {
            return Err(PutError::ReadOnly(spec.name));
        }
        let mut changes = Changes::default();
        if self.support.is_array(name) {
            let array = match value {
                FieldValue::Array(a) => a,
                FieldValue::String(s) => Value::String(vec![s.into()]),
                FieldValue::Int(v) => Value::Double(vec![v as f64]),
                FieldValue::Double(v) => Value::Double(vec![v]),
                FieldValue::Enum(v) => Value::Enum(vec![v]),
            };
            let before = self.get_field("NORD");
            self.put_array(spec.name, array)?;
            if before != self.get_field("NORD") {
                changes.post("NORD", DBE_VALUE | DBE_LOG);
            }
        } else {
            let value = coerce(spec, value, Some(self))?;
            let old_scan = (self.scan, self.phas);
            self.store(spec, value)?;
            if old_scan != (self.scan, self.phas) {
                changes.scan_changed = true;
            }
        }
        if name == "VAL" {
            self.udf = self.support.value_is_nan();
        }
        let process = name == "PROC" || (spec.process_passive() && self.scan == 0);
        if !(name == "VAL" && spec.process_passive()) {
            changes.post(spec.name, DBE_VALUE | DBE_LOG);
        }
        changes.property |= spec.property() || STATE_STRINGS.contains(&spec.name);
        Ok((changes, process))
    }

    /// Stores an array into field `name`.
    fn put_array(&mut self, name: &'static str, value: Value) -> Result<(), PutError> {
        self.support.put_array(name, value).unwrap_or_else(|| Err(PutError::NoSuchField(name.into())))
    }

    /// Stores an already-coerced value.
    fn store(&mut self, spec: &'static FieldSpec, value: FieldValue) -> Result<(), PutError> {
        let name = spec.name;
        if spec.field_type == FieldType::InLink {
            self.links_to_read = std::sync::OnceLock::new();
        }
        let f = || value.as_f64().unwrap_or(0.0);
        let e = || match value {
            FieldValue::Enum(v) => v,
            _ => f() as u16,
        };
        let t = || value.to_text();
        match name {
            "DESC" => self.desc = t(),
            "SCAN" => self.scan = e(),
            "PINI" => self.pini = e(),
            "PHAS" => self.phas = f() as i16,
            "UDF" => self.udf = f() != 0.0,
            "UDFS" => self.udfs = e(),
            _ => {
                if !self.support.put(name, &value)? {
                    self.extras.insert(name, value);
                }
            }
        }
        Ok(())
    }

    /// Processes the record (`dbProcess`) at time `now`: output drive
    /// limits, calc evaluation, alarm checks, timestamp and monitor events.
    /// Input links are not read and output links not written: that is what
    /// [`super::Database::process`] adds.
    pub fn process(&mut self, now: SystemTime) -> Changes {
        self.process_with(&[], now).0
    }

    /// Processes the record with the values the database read from its
    /// input links, time-stamped `now`; returns the changes and what the database
    /// must do next.
    pub fn process_with(&mut self, inputs: &[(&'static str, FieldValue)], now: SystemTime) -> (Changes, Follow) {
        let stamp = EpicsTime::from_system_time(now).unwrap_or(EpicsTime::EPOCH);
        self.run_support(inputs, now, Some(stamp), false)
    }

    /// [`Record::process_with`] with the time stamp `TSE`/`TSEL` give it (`None`: it
    /// keeps its time, as base's when no event time is to be had).
    pub(crate) fn process_stamped(
        &mut self,
        inputs: &[(&'static str, FieldValue)],
        now: SystemTime,
        stamp: Option<EpicsTime>,
    ) -> (Changes, Follow) {
        self.run_support(inputs, now, stamp, false)
    }

    /// Continues an asynchronous processing whose delay is over (see
    /// [`Follow::resume_after`]), with the links the type reads at this step.
    pub(crate) fn resume_with(
        &mut self,
        inputs: &[(&'static str, FieldValue)],
        now: SystemTime,
        stamp: Option<EpicsTime>,
    ) -> (Changes, Follow) {
        self.run_support(inputs, now, stamp, true)
    }

    fn run_support(
        &mut self,
        inputs: &[(&'static str, FieldValue)],
        now: SystemTime,
        stamp: Option<EpicsTime>,
        resuming: bool,
    ) -> (Changes, Follow) {
        let mut changes = Changes { processed: true, ..Changes::default() };
        if let Some(time) = stamp {
            self.time = time;
        }
        let mut ctx = Process {
            now,
            record_type: self.record_type,
            alarm: &mut self.alarm,
            udf: &mut self.udf,
            udfs: self.udfs,
            fields: &mut self.extras,
            inputs,
            changes: &mut changes,
            follow: Follow::default(),
        };
        let value_mask = if resuming { self.support.resume(&mut ctx) } else { self.support.process(&mut ctx) };
        let follow = std::mem::take(&mut ctx.follow);
        if follow.resume_after.is_some() {
            // Still under way: as calcout and seq in base, alarms are committed and VAL
            // posted only when the processing ends (their monitor() runs then).
            self.pact = true;
            return (changes, follow);
        }
        let alarm_mask = self.commit_alarms(&mut changes);
        changes.post("VAL", value_mask | alarm_mask);
        (changes, follow)
    }

    /// `recGblResetAlarms`: the pending alarm becomes `STAT`/`SEVR`; the events of `VAL`.
    fn commit_alarms(&mut self, changes: &mut Changes) -> u16 {
        let alarm_mask = self.alarm.commit();
        if alarm_mask != 0 {
            changes.post("STAT", DBE_VALUE | DBE_ALARM);
            changes.post("SEVR", DBE_VALUE);
            changes.post("ACKS", DBE_VALUE);
        }
        alarm_mask
    }

    /// The period of the record's watchdog (histogram's `SDEL`), if it has one running.
    pub(crate) fn watchdog_period(&self) -> Option<Duration> {
        self.record_type().field("SDEL")?;
        let seconds = self.get_field("SDEL")?.as_f64()?;
        (seconds > 0.0).then(|| Duration::try_from_secs_f64(seconds).ok()).flatten()
    }

    /// The watchdog fired at `now`: what it posts (the value, stamped now), if anything.
    pub(crate) fn run_watchdog(&mut self, now: SystemTime) -> Option<Changes> {
        if !self.support.watchdog() {
            return None;
        }
        if let Ok(time) = EpicsTime::from_system_time(now) {
            self.time = time;
        }
        let mut changes = Changes::default();
        changes.post("VAL", DBE_VALUE | DBE_LOG);
        Some(changes)
    }

    /// `PACT`: an asynchronous processing is under way.
    pub fn active(&self) -> bool {
        self.pact
    }

    /// Ends an asynchronous processing, after its forward link; true when a put asked
    /// for processing meanwhile (`RPRO`, which it clears: base's `recGblFwdLink`).
    pub(crate) fn finish_active(&mut self) -> bool {
        self.pact = false;
        std::mem::take(&mut self.rpro)
    }

    /// A put (or a link of a put's chain) asked an active record to process: it will,
    /// once the processing under way ends (`RPRO`).
    pub(crate) fn request_reprocessing(&mut self) {
        self.rpro = true;
    }

    /// A processing request starts a processing: `LCNT` counts from zero again.
    pub(crate) fn reset_busy_count(&mut self) {
        self.lcnt = 0;
    }

    /// What dbProcess does with a request to process an active record: nothing, but
    /// after [`MAX_BUSY_REQUESTS`] of them the record shows SCAN/INVALID (once).
    pub(crate) fn refuse_while_active(&mut self) -> Changes {
        let mut changes = Changes::default();
        if self.alarm.stat == alarm_status::SCAN {
            return changes;
        }
        let earlier = self.lcnt;
        self.lcnt = self.lcnt.wrapping_add(1);
        if earlier < MAX_BUSY_REQUESTS || self.alarm.sevr >= severity::INVALID {
            return changes;
        }
        self.alarm.raise(alarm_status::SCAN, severity::INVALID);
        let alarm_mask = self.commit_alarms(&mut changes);
        changes.post("VAL", alarm_mask | DBE_VALUE | DBE_LOG);
        changes
    }

    /// `TSE`, as the database reads it to time-stamp a processing.
    pub(crate) fn time_stamp_event(&self) -> i64 {
        match self.extras.get("TSE") {
            Some(FieldValue::Int(v)) => *v,
            Some(other) => other.as_f64().unwrap_or(0.0) as i64,
            None => 0,
        }
    }

    /// `TSE` read through `TSEL` (`dbGetLink(TSEL, DBR_SHORT, &TSE)`): stored, not posted.
    pub(crate) fn set_time_stamp_event(&mut self, event: f64) {
        self.extras.insert("TSE", FieldValue::Int(FieldType::Short.wrap_int(event as i64)));
    }

    /// The raw text of a link field (as written, before base's printing of modifiers).
    pub(crate) fn link_text(&self, field: &str) -> Option<&str> {
        match self.extras.get(field) {
            Some(FieldValue::String(text)) => Some(text),
            _ => None,
        }
    }

    /// The input link fields of this record that name a record, with their links.
    pub fn input_links(&self) -> Vec<(&'static str, Link)> {
        self.links_of(self.support.input_links())
    }

    /// The input links read before processing (`resuming`: before resuming), that
    /// name a record.
    pub(crate) fn links_to_read(&self, resuming: bool) -> ReadLinks {
        if resuming {
            // The group whose turn it is (seq): not cached.
            self.links_of(self.support.links_read_before_resuming()).into()
        } else {
            self.links_to_read.get_or_init(|| self.links_of(self.support.links_read_before_processing()).into()).clone()
        }
    }

    /// Link fields among `fields` that name a record, with their links.
    pub(crate) fn links_of_fields(&self, fields: &'static [&'static str]) -> Vec<(&'static str, Link)> {
        self.links_of(fields)
    }

    /// `SIMM` as `SIML` set it (the menu's index, kept within it).
    pub(crate) fn set_simulation_mode(&mut self, mode: u16) {
        let choices = match self.record_type().field("SIMM").map(|s| s.field_type) {
            Some(FieldType::Menu(menu)) => menu.choices.len() as u16,
            _ => 2,
        };
        if mode < choices {
            self.extras.insert("SIMM", FieldValue::Enum(mode));
        }
    }

    /// Keeps the value read through `SIOL` in `SVAL`, for the types that have it.
    pub(crate) fn keep_simulated_value(&mut self, value: &FieldValue) {
        if let Some(spec) = self.spec("SVAL")
            && let Ok(value) = coerce(spec, value.clone(), Some(self))
        {
            let _ = self.store(spec, value);
        }
    }

    fn links_of(&self, fields: &'static [&'static str]) -> Vec<(&'static str, Link)> {
        fields
            .iter()
            .filter_map(|&field| match self.extras.get(field) {
                Some(FieldValue::String(text)) => match Link::parse_input(text) {
                    Ok(CalcInput::Link(link)) => Some((field, link)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// Applies a `DBR_PUT_ACKT` write.
    pub(crate) fn put_ackt(&mut self, ackt: bool) -> Changes {
        let mut changes = Changes::default();
        if self.alarm.ackt != ackt {
            self.alarm.ackt = ackt;
            changes.post("ACKT", DBE_VALUE | DBE_ALARM);
            if !ackt && self.alarm.acks > self.alarm.sevr {
                self.alarm.acks = self.alarm.sevr;
                changes.post("ACKS", DBE_VALUE | DBE_ALARM);
            }
        }
        changes
    }

    /// Applies a `DBR_PUT_ACKS` write.
    pub(crate) fn put_acks(&mut self, acks: u16) -> Changes {
        let mut changes = Changes::default();
        if acks >= self.alarm.acks {
            self.alarm.acks = 0;
            changes.post("ACKS", DBE_VALUE | DBE_ALARM);
        }
        changes
    }
}

/// An input or output link's text as base's dbGetField gives it: a link to a PV with
/// both its modifiers, the defaults written out (`"AO CP"` → `"AO CP NMS"`, `"AO"` →
/// `"AO NPP NMS"`); constants, JSON and hardware addresses as written.
pub(crate) fn link_as_base_prints(text: &str) -> String {
    let text = text.trim();
    let constant = text.parse::<f64>().is_ok() || text.starts_with(['{', '[', '"', '@', '#']);
    if text.is_empty() || constant {
        return text.to_owned();
    }
    let mut tokens = text.split_whitespace();
    let target = tokens.next().unwrap_or_default();
    let (mut process, mut severity) = ("NPP", "NMS");
    for token in tokens {
        match token {
            "NPP" | "PP" | "CA" | "CP" | "CPP" => process = token,
            "NMS" | "MS" | "MSS" | "MSI" => severity = token,
            _ => {}
        }
    }
    format!("{target} {process} {severity}")
}

/// The default value of an unmodeled field (its `.dbd` `initial`).
pub(crate) fn initial_value(spec: &'static FieldSpec) -> FieldValue {
    let zero = match spec.field_type {
        FieldType::Enum | FieldType::Menu(_) => FieldValue::Enum(0),
        FieldType::Float | FieldType::Double => FieldValue::Double(0.0),
        t if t.is_text() => FieldValue::String(String::new()),
        _ => FieldValue::Int(0),
    };
    if spec.initial.is_empty() {
        return zero;
    }
    coerce(spec, FieldValue::String(spec.initial.to_string()), None).unwrap_or(zero)
}

/// Converts `value` to the canonical form for `spec`'s type (runtime put
/// rules: strings truncated, numbers wrapped as C casts do).
pub(crate) fn coerce(
    spec: &'static FieldSpec,
    value: FieldValue,
    record: Option<&Record>,
) -> Result<FieldValue, PutError> {
    let field = spec.name;
    let bad = |reason: String| PutError::BadValue { field, reason };
    // A string whose size the record sets (lsi, lso, printf: SIZV) is cut to that size.
    let field_type = match record.and_then(|r| r.support.field_type(field)) {
        Some(sized @ FieldType::String { .. }) => sized,
        _ => spec.field_type,
    };
    Ok(match field_type {
        FieldType::String { size } => {
            FieldValue::String(truncate_to(&value.to_text(), usize::from(size) - 1).to_string())
        }
        FieldType::Device | FieldType::InLink | FieldType::OutLink | FieldType::FwdLink => {
            FieldValue::String(value.to_text())
        }
        FieldType::Float | FieldType::Double => {
            let v = match &value {
                FieldValue::String(s) => parse_number(s).ok_or_else(|| bad(format!("{s:?} is not a number")))?,
                other => other.as_f64().ok_or_else(|| bad("not a number".into()))?,
            };
            FieldValue::Double(if field_type == FieldType::Float { f64::from(v as f32) } else { v })
        }
        FieldType::Enum => {
            let states = record.and_then(|r| r.enum_strings(field));
            match &value {
                FieldValue::String(s) => {
                    let states = states.unwrap_or_default();
                    // put_enum_str: an exact state name; mbbi only matches defined states.
                    let by_name = record
                        .and_then(|r| r.support.state_index(s))
                        .or_else(|| states.iter().position(|st| st == s).map(|i| i as u16));
                    match by_name {
                        Some(i) => FieldValue::Enum(i),
                        None => match s.trim().parse::<u16>() {
                            Ok(i) if usize::from(i) < states.len() => FieldValue::Enum(i),
                            _ => return Err(PutError::BadChoice { field, value: s.clone() }),
                        },
                    }
                }
                other => FieldValue::Enum(other.as_f64().unwrap_or(0.0) as i64 as u16),
            }
        }
        FieldType::Menu(menu) => {
            // SSCN's initial 65535 ("unchanged") lies outside the menu, as in EPICS.
            if spec.initial == "65535" && value.as_f64() == Some(65535.0) {
                return Ok(FieldValue::Enum(65535));
            }
            match &value {
                FieldValue::String(s) => {
                    FieldValue::Enum(menu.index_of(s).ok_or_else(|| PutError::BadChoice { field, value: s.clone() })?)
                }
                other => {
                    let v = other.as_f64().unwrap_or(-1.0);
                    if !(0.0..menu.choices.len() as f64).contains(&v) {
                        return Err(PutError::BadChoice { field, value: v.to_string() });
                    }
                    FieldValue::Enum(v as u16)
                }
            }
        }
        _ => {
            let v = match &value {
                FieldValue::String(s) => match parse_integer(s) {
                    Some(v) => v,
                    None => parse_number(s)
                        .filter(|v| v.is_finite())
                        .map(|v| v as i64)
                        .ok_or_else(|| bad(format!("{s:?} is not an integer")))?,
                },
                FieldValue::Int(v) => *v,
                FieldValue::Enum(v) => i64::from(*v),
                other => other.as_f64().map(|v| v as i64).ok_or_else(|| bad("not a number".into()))?,
            };
            FieldValue::Int(field_type.wrap_int(v))
        }
    })
}

/// Wraps converted waveform elements into the range of the `FTVL` type.
pub(crate) fn wrap_elements(element: FieldType, value: Value) -> Value {
    match (element, value) {
        (FieldType::UShort, Value::Long(v)) => Value::Long(v.into_iter().map(|x| i32::from(x as u16)).collect()),
        (FieldType::ULong, Value::Double(v)) => Value::Double(v.into_iter().map(|x| f64::from(x as u32)).collect()),
        (FieldType::Int64 | FieldType::UInt64, Value::Double(v)) => {
            Value::Double(v.into_iter().map(|x| x.trunc()).collect())
        }
        (FieldType::String { .. }, Value::String(v)) => Value::String(
            v.into_iter().map(|s| crate::proto::dbr::CaString::new(&s.as_bytes()[..s.len().min(39)])).collect(),
        ),
        (_, other) => other,
    }
}

pub(crate) fn zeros(native: NativeType, n: usize) -> Value {
    match native {
        NativeType::String => Value::String(vec![Default::default(); n]),
        NativeType::Short => Value::Short(vec![0; n]),
        NativeType::Float => Value::Float(vec![0.0; n]),
        NativeType::Enum => Value::Enum(vec![0; n]),
        NativeType::Char => Value::Char(vec![0; n]),
        NativeType::Long => Value::Long(vec![0; n]),
        NativeType::Double => Value::Double(vec![0.0; n]),
    }
}

/// The first `n` elements of `value`, zero-padded when it has fewer.
pub(crate) fn truncate_value(value: &Value, n: usize) -> Value {
    fn fit<T: Clone + Default>(v: &[T], n: usize) -> Vec<T> {
        let mut out: Vec<T> = v[..v.len().min(n)].to_vec();
        out.resize(n, T::default());
        out
    }
    match value {
        Value::String(v) => Value::String(fit(v, n)),
        Value::Short(v) => Value::Short(fit(v, n)),
        Value::Float(v) => Value::Float(fit(v, n)),
        Value::Enum(v) => Value::Enum(fit(v, n)),
        Value::Char(v) => Value::Char(fit(v, n)),
        Value::Long(v) => Value::Long(fit(v, n)),
        Value::Double(v) => Value::Double(fit(v, n)),
    }
}

pub(crate) fn hash_value(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.len().hash(&mut h);
    match value {
        Value::String(v) => v.hash(&mut h),
        Value::Short(v) => v.hash(&mut h),
        Value::Float(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
        Value::Enum(v) => v.hash(&mut h),
        Value::Char(v) => v.hash(&mut h),
        Value::Long(v) => v.hash(&mut h),
        Value::Double(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_and_writable_fields_round_trip() {
        for rtype in RecordType::all() {
            let mut record = Record::new(rtype, "R");
            for spec in rtype.fields() {
                let value = record.get_field(spec.name);
                assert!(value.is_some(), "{rtype}.{}", spec.name);
                assert!(record.field_type(spec.name).is_some());
                if spec.read_only()
                    || spec.name == "PROC"
                    || (rtype == RecordType::named("calc") && spec.name == "CALC")
                {
                    continue;
                }
                let value = value.unwrap();
                record.put_field_at(spec.name, value.clone(), SystemTime::UNIX_EPOCH).unwrap_or_else(|e| {
                    panic!("{rtype}.{} = {value:?}: {e}", spec.name);
                });
                // Processing may change VAL (calc) or the alarm fields; others keep what was written.
                let nan = matches!(value, FieldValue::Double(v) if v.is_nan());
                if spec.name != "VAL" && spec.name != "UDF" && !nan {
                    assert_eq!(record.get_field(spec.name), Some(value), "{rtype}.{}", spec.name);
                }
            }
        }
    }

    #[test]
    fn field_types_match_the_dbd() {
        let ai = Record::new(RecordType::named("ai"), "x");
        assert_eq!(ai.field_type("DESC"), Some(FieldType::String { size: 41 }));
        assert_eq!(ai.field_type("PREC"), Some(FieldType::Short));
        assert_eq!(ai.field_type("HOPR"), Some(FieldType::Double));
        assert_eq!(ai.field_type("SCAN"), Some(FieldType::Menu(&MENU_SCAN)));
        assert_eq!(ai.field_type("TIME"), None, "DBF_NOACCESS");
        let li = Record::new(RecordType::named("longin"), "x");
        assert_eq!(li.field_type("HOPR"), Some(FieldType::Long));
        assert_eq!(li.field_type("DRVH"), None);
        let bi = Record::new(RecordType::named("bi"), "x");
        assert_eq!(bi.field_type("ZNAM"), Some(FieldType::String { size: 26 }));
        assert_eq!(bi.enum_strings("VAL").unwrap().len(), 2);
        let wf = Record::new(RecordType::named("waveform"), "x");
        assert_eq!(wf.field_type("NELM"), Some(FieldType::ULong));
        assert_eq!(wf.field_type("VAL"), Some(FieldType::UChar));
        assert_eq!(wf.get_field("SSCN"), Some(FieldValue::Enum(65535)));
        assert_eq!(wf.get_field("UDFS"), Some(FieldValue::Enum(3)));
        assert_eq!(Record::split_channel("a:b.EGU"), ("a:b", "EGU"));
        assert_eq!(Record::split_channel("a:b"), ("a:b", "VAL"));
    }

    #[test]
    fn links_read_back_as_base_prints_them() {
        // What EPICS base 7's IOC answered for these INP fields.
        for (written, read) in [
            ("T:AO CP", "T:AO CP NMS"),
            ("T:AO", "T:AO NPP NMS"),
            ("T:AO.VAL", "T:AO.VAL NPP NMS"),
            ("T:AO.EGU NPP", "T:AO.EGU NPP NMS"),
            ("5", "5"),
            ("NOPE", "NOPE NPP NMS"),
            ("T:AO PP MS", "T:AO PP MS"),
            ("T:AO CPP MSI", "T:AO CPP MSI"),
            ("NOPE CA", "NOPE CA NMS"),
            ("T:AO MSS", "T:AO NPP MSS"),
            ("  T:AO   PP  ", "T:AO PP NMS"),
            ("", ""),
            ("{const: 3}", "{const: 3}"),
        ] {
            assert_eq!(link_as_base_prints(written), read, "{written:?}");
        }
    }

    #[test]
    fn constants_parse_as_base_7_reads_them() {
        assert_eq!(Constant::parse(" 1.5 "), Some(Constant::Number(1.5)));
        assert_eq!(Constant::parse("{const: 2}"), Some(Constant::Number(2.0)));
        assert_eq!(Constant::parse(r#"{"const": true}"#), Some(Constant::Number(1.0)));
        assert_eq!(Constant::parse(r#"{const: "x y"}"#), Some(Constant::Text("x y".into())));
        assert_eq!(Constant::parse("[1, 2.5]"), Some(Constant::Numbers(vec![1.0, 2.5])));
        assert_eq!(Constant::parse(r#"{const: ["a", "b"]}"#), Some(Constant::Texts(vec!["a".into(), "b".into()])));
        assert_eq!(Constant::parse("[]"), Some(Constant::Numbers(vec![])));
        assert_eq!(Constant::parse(r#"[1, "a"]"#), None);
        assert_eq!(Constant::parse(r#"{ca: "PV"}"#), None);
        assert_eq!(Constant::parse("PV.VAL"), None);
        assert_eq!(Constant::parse(" "), None);
        let wf = Constant::parse("[1, 2, 3]").unwrap();
        assert_eq!(wf.field_value(Some(2)), Some(FieldValue::Array(Value::Double(vec![1.0, 2.0]))));
        assert_eq!(wf.field_value(None), Some(FieldValue::Double(1.0)));
        assert_eq!(Constant::parse("[]").unwrap().field_value(None), None);
        assert_eq!(Link::parse_input("{const: 3}"), Ok(CalcInput::Constant(3.0)));
        assert!(matches!(Link::parse_input(r#"{ca: "PV"}"#), Err(LinkError::Unsupported(_))));
    }

    #[test]
    fn links_parse() {
        assert_eq!(Link::parse_input("  "), Ok(CalcInput::None));
        assert_eq!(Link::parse_input("1.5"), Ok(CalcInput::Constant(1.5)));
        let CalcInput::Link(link) = Link::parse_input("X:y.HOPR CPP MSI").unwrap() else { panic!() };
        assert_eq!((link.record.as_str(), link.field.as_str()), ("X:y", "HOPR"));
        assert!(link.process_on_change && link.process_passive);
        assert_eq!(link.severity_mode, SeverityMode::Msi);
        assert!(Link::parse_input("@hw").is_err());
    }

    #[test]
    fn changes_merge_and_mask() {
        let mut a = Changes::default();
        a.post("VAL", DBE_VALUE);
        a.post("VAL", DBE_ALARM);
        a.post("NORD", 0);
        let mut b = Changes { property: true, ..Changes::default() };
        b.post("EGU", DBE_VALUE);
        a.merge(b);
        assert_eq!(a.mask_for("VAL"), DBE_VALUE | DBE_ALARM | DBE_PROPERTY);
        assert_eq!(a.mask_for("NORD"), DBE_PROPERTY);
        assert_eq!(a.posts().len(), 2);
    }

    #[test]
    fn initial_alarm_state() {
        let r = Record::new(RecordType::named("ai"), "x");
        assert_eq!((r.alarm().stat, r.alarm().sevr), (alarm_status::UDF, severity::INVALID));
        let mut r = Record::new(RecordType::named("ai"), "x");
        r.load_field("VAL", "1", 10).unwrap();
        r.init_alarm();
        assert_eq!((r.alarm().stat, r.alarm().sevr), (alarm_status::UDF, severity::NO_ALARM));
    }
}
