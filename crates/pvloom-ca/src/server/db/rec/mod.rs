//! Record support, one module per record type (EPICS' `recAi.c` style).
//!
//! Each module declares its type's field table once ([`FieldSpec`]s, as the
//! type's `.dbd` does) and implements [`RecordSupport`] for the fields it
//! models itself; every other field of the table is kept generically by the
//! [`Record`](super::Record) with its `.dbd` initial value. Parsing, `get`,
//! `put`, `dbpr` and `dbl` all read the same table. Adding a record type is
//! one module plus its line in `REGISTRY`.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::alarm::AlarmState;
use super::record::{Changes, PutError};
use super::value::*;
use crate::proto::dbr::Value;

const RO: u8 = 1;
const PP: u8 = 2;
const PROP: u8 = 4;

/// Static description of one field, from the record type's `.dbd`.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field name, e.g. `"HOPR"`.
    pub name: &'static str,
    /// Database type. For an array `VAL` this is a placeholder; the
    /// real element type follows `FTVL` (see [`super::Record::field_type`]).
    pub field_type: FieldType,
    flags: u8,
    /// Value before the database sets one (`initial(...)` in the `.dbd`).
    pub initial: &'static str,
}

impl FieldSpec {
    /// Clients may not write this field (`SPC_NOMOD`).
    pub fn read_only(&self) -> bool {
        self.flags & RO != 0
    }

    /// Writing this field processes a passive record (`pp(TRUE)`).
    pub fn process_passive(&self) -> bool {
        self.flags & PP != 0
    }

    /// Writing this field changes metadata: subscribers get `DBE_PROPERTY` (`prop(YES)`).
    pub fn property(&self) -> bool {
        self.flags & PROP != 0
    }
}

macro_rules! fields {
    ($($name:literal : $ty:expr $(, $flags:expr $(, $init:literal)?)?;)*) => {
        &[$($crate::server::db::rec::FieldSpec::new(
            $name,
            $ty,
            0 $(| $flags)?,
            fields!(@init $($($init)?)?),
        ),)*]
    };
    (@init $init:literal) => { $init };
    (@init) => { "" };
}

impl FieldSpec {
    pub(crate) const fn new(name: &'static str, field_type: FieldType, flags: u8, initial: &'static str) -> Self {
        FieldSpec { name, field_type, flags, initial }
    }
}

/// Field-type shorthands for the tables.
#[allow(non_upper_case_globals)]
pub(crate) mod types {
    pub(crate) use super::super::value::FieldType::{
        Double as D, Enum as E, FwdLink, InLink, Int64, Long as L, OutLink, Short as S, UChar, ULong, UShort,
    };
    use super::super::value::*;

    pub(crate) const fn s(size: u16) -> FieldType {
        FieldType::String { size }
    }
    pub(crate) const SEVR: FieldType = FieldType::Menu(&MENU_ALARM_SEVR);
    pub(crate) const STAT: FieldType = FieldType::Menu(&MENU_ALARM_STAT);
    pub(crate) const SCAN: FieldType = FieldType::Menu(&MENU_SCAN);
    pub(crate) const YESNO: FieldType = FieldType::Menu(&MENU_YES_NO);
    pub(crate) const SIMM: FieldType = FieldType::Menu(&MENU_SIMM);
    pub(crate) const OMSL: FieldType = FieldType::Menu(&MENU_OMSL);
    pub(crate) const IVOA: FieldType = FieldType::Menu(&MENU_IVOA);
    pub(crate) const CONVERT: FieldType = FieldType::Menu(&MENU_CONVERT);
    pub(crate) const RO: u8 = super::RO;
    pub(crate) const PP: u8 = super::PP;
    pub(crate) const PROP: u8 = super::PROP;
}

use types::*;

/// Menus of the record types (their `.dbd` `menu(...)` blocks).
pub(crate) mod menus;

/// The `dbCommon` fields every record has.
pub(crate) static COMMON_FIELDS: &[FieldSpec] = fields! {
    "NAME": s(61), RO;
    "DESC": s(41);
    "ASG": s(29);
    "SCAN": SCAN;
    "PINI": FieldType::Menu(&MENU_PINI);
    "PHAS": S;
    "EVNT": s(40);
    "TSE": S;
    "TSEL": InLink;
    "DTYP": FieldType::Device;
    "DISV": S, 0, "1";
    "DISA": S;
    "SDIS": InLink;
    "DISP": UChar;
    "PROC": UChar;
    "STAT": STAT, RO, "UDF";
    "SEVR": SEVR, RO;
    "AMSG": s(40), RO;
    "NSTA": STAT, RO;
    "NSEV": SEVR, RO;
    "ACKS": SEVR, RO;
    "ACKT": YESNO, RO, "YES";
    "DISS": SEVR;
    "LCNT": UChar, RO;
    "PACT": UChar, RO;
    "PUTF": UChar, RO;
    "RPRO": UChar, RO;
    "PRIO": FieldType::Menu(&MENU_PRIORITY);
    "TPRO": UChar;
    "UDF": UChar, PP, "1";
    "UDFS": SEVR, 0, "INVALID";
    "FLNK": FwdLink;
};

/// Implements the boilerplate [`RecordSupport`] methods of a `Clone` state.
macro_rules! support_boilerplate {
    () => {
        fn clone_box(&self) -> Box<dyn $crate::server::db::rec::RecordSupport> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn eq_dyn(&self, other: &dyn $crate::server::db::rec::RecordSupport) -> bool {
            other.as_any().downcast_ref::<Self>().is_some_and(|o| o == self)
        }
    };
}

#[macro_use]
pub(crate) mod shared;
mod a_sub;
mod aai;
mod aao;
mod ai;
mod ao;
mod bi;
mod bo;
mod calc;
mod calcout;
mod compress;
mod dfanout;
mod event;
mod fanout;
mod histogram;
mod int64in;
mod int64out;
mod longin;
mod longout;
mod lsi;
mod lso;
mod mbbi;
mod mbbi_direct;
mod mbbo;
mod mbbo_direct;
mod permissive;
mod printf;
mod sel;
mod seq;
mod state;
mod stringin;
mod stringout;
mod sub;
mod sub_array;
mod waveform;

pub use calc::Calc;
pub(crate) use shared::STATE_STRINGS;
pub use shared::{Analog, Binary, Deadband, Display, Long, Multi, Text};
pub use waveform::Waveform;

/// Every record type served, in `.dbd` name order of registration.
static REGISTRY: &[&RecordTypeDef] = &[
    &ai::TYPE,
    &ao::TYPE,
    &bi::TYPE,
    &bo::TYPE,
    &longin::TYPE,
    &longout::TYPE,
    &stringin::TYPE,
    &stringout::TYPE,
    &mbbi::TYPE,
    &mbbo::TYPE,
    &waveform::TYPE,
    &calc::TYPE,
    &calcout::TYPE,
    &seq::TYPE,
    &fanout::TYPE,
    &dfanout::TYPE,
    &int64in::TYPE,
    &int64out::TYPE,
    &lsi::TYPE,
    &lso::TYPE,
    &mbbi_direct::TYPE,
    &mbbo_direct::TYPE,
    &aai::TYPE,
    &aao::TYPE,
    &sub_array::TYPE,
    &sel::TYPE,
    &permissive::TYPE,
    &state::TYPE,
    &sub::TYPE,
    &a_sub::TYPE,
    &event::TYPE,
    &histogram::TYPE,
    &printf::TYPE,
    &compress::TYPE,
];

/// Each registered type's fields by name (own first, as `fields` lists them), keyed by
/// the type's definition.
type FieldIndex = HashMap<usize, HashMap<&'static str, &'static FieldSpec, FastState>, FastState>;
type FastState = foldhash::fast::FixedState;

fn field_index() -> &'static FieldIndex {
    static INDEX: OnceLock<FieldIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        RecordType::all()
            .map(|t| {
                let mut by_name = HashMap::with_hasher(FastState::default());
                for f in t.fields() {
                    by_name.entry(f.name).or_insert(f);
                }
                (t.0 as *const RecordTypeDef as usize, by_name)
            })
            .collect()
    })
}

/// What the database needs to know of a record type: its name, its own
/// fields and how to make the type-specific state of a new record.
pub struct RecordTypeDef {
    /// The type's name in `.db` files, e.g. `"longin"`.
    pub name: &'static str,
    /// The type-specific fields in `.dbd` order (the common `dbCommon` fields come on
    /// top): the type's own tables and the groups it shares with others.
    pub fields: &'static [&'static [FieldSpec]],
    /// The state of a record before the database sets any field.
    pub new: fn() -> Box<dyn RecordSupport>,
}

/// A record type this database implements.
#[derive(Clone, Copy)]
pub struct RecordType(&'static RecordTypeDef);

impl RecordType {
    /// Every supported type.
    pub fn all() -> impl Iterator<Item = RecordType> {
        REGISTRY.iter().map(|def| RecordType(def))
    }

    /// The type's name in `.db` files, e.g. `"longin"`.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The type named `name`, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|t| t.name() == name)
    }

    /// The type named `name`; panics when it is not registered (for tests and literals).
    pub fn named(name: &str) -> Self {
        Self::from_name(name).unwrap_or_else(|| panic!("record type {name:?} is not registered"))
    }

    /// Every field of this type: its own, then the common ones.
    pub fn fields(self) -> impl Iterator<Item = &'static FieldSpec> {
        self.0.fields.iter().flat_map(|group| group.iter()).chain(COMMON_FIELDS.iter())
    }

    /// The description of field `name`, if this type has it.
    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        // Every get, put and link read looks fields up by name: a scan of a calc's 150
        // names was a quarter of a processing's time.
        match field_index().get(&(self.0 as *const RecordTypeDef as usize)) {
            Some(fields) => fields.get(name).copied(),
            None => self.fields().find(|f| f.name == name),
        }
    }

    pub(crate) fn new_support(self) -> Box<dyn RecordSupport> {
        (self.0.new)()
    }
}

impl PartialEq for RecordType {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}
impl Eq for RecordType {}
impl std::hash::Hash for RecordType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}
impl PartialOrd for RecordType {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RecordType {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}
impl std::fmt::Debug for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordType({})", self.name())
    }
}
impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Display, alarm and control limits of one field, before narrowing to a DBR type.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Engineering units.
    pub units: String,
    /// Display precision.
    pub precision: i16,
    /// Upper and lower display limits.
    pub display: (f64, f64),
    /// `HIHI`, `HIGH`, `LOW`, `LOLO` as reported (NaN when not alarming).
    pub alarm: [f64; 4],
    /// Upper and lower control limits.
    pub control: (f64, f64),
}

/// The fields a record keeps generically (those its type does not model).
pub type FieldStore = BTreeMap<&'static str, FieldValue>;

/// A write to an output link that processing asks for (`dbPutLink`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputWrite {
    /// The link field, e.g. `"OUT"` or `"LNK3"`.
    pub link_field: &'static str,
    /// The value written to the link's target.
    pub value: FieldValue,
}

/// What the database must do after processing a record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Follow {
    /// Writes to output links.
    pub outputs: Vec<OutputWrite>,
    /// Links whose targets to process (fanout, seq), by link field.
    pub process_links: Vec<&'static str>,
    /// Named events posted (`postEvent`): records with `SCAN` Event and this `EVNT` process.
    pub events: Vec<String>,
    /// The processing is not done: the record stays active (`PACT`) and the database
    /// calls [`RecordSupport::resume`] after this delay (base's delayed callback,
    /// `callbackRequestProcessCallbackDelayed`). Alarms are committed, `VAL` posted and
    /// the forward link followed only when a processing or resumption ends without one.
    pub resume_after: Option<Duration>,
}

/// What one processing of a record sees and produces besides the type's own state.
pub struct Process<'a> {
    /// The processing time.
    pub now: SystemTime,
    /// The record's type (for the initial values of fields never set).
    pub record_type: RecordType,
    /// The record's alarm state: raise alarms here (committed after processing).
    pub alarm: &'a mut AlarmState,
    /// `UDF`: processing clears it when the value becomes defined.
    pub udf: &'a mut bool,
    /// `UDFS`: severity of an undefined value.
    pub udfs: u16,
    /// The generically kept fields (read configuration, write results).
    pub fields: &'a mut FieldStore,
    /// Values read from the input links, by link field (only links to records).
    pub inputs: &'a [(&'static str, FieldValue)],
    /// Monitor events for fields other than `VAL`.
    pub changes: &'a mut Changes,
    /// Output writes and links to process, done by the database after this processing.
    pub follow: Follow,
}

impl Process<'_> {
    /// Raises `UDF` with `UDFS` severity when the value is undefined; true if it is.
    pub fn raise_udf(&mut self) -> bool {
        if *self.udf {
            self.alarm.raise(crate::proto::constants::alarm_status::UDF, self.udfs);
        }
        *self.udf
    }

    /// The value read from input link `link_field`, if it names a record.
    pub fn input(&self, link_field: &str) -> Option<&FieldValue> {
        self.inputs.iter().find(|(f, _)| *f == link_field).map(|(_, v)| v)
    }

    /// A generically kept field: its value, or its `.dbd` initial value when never set.
    pub fn get(&self, name: &'static str) -> FieldValue {
        match self.fields.get(name) {
            Some(v) => v.clone(),
            None => self.record_type.field(name).map(super::record::initial_value).unwrap_or(FieldValue::Int(0)),
        }
    }

    /// A generically kept field as a number (0 when not numeric).
    pub fn number(&self, name: &'static str) -> f64 {
        self.get(name).as_f64().unwrap_or(0.0)
    }

    /// A generically kept menu or enum field as its index.
    pub fn index(&self, name: &'static str) -> u16 {
        match self.get(name) {
            FieldValue::Enum(v) => v,
            other => other.as_f64().unwrap_or(0.0) as u16,
        }
    }

    /// True when link field `name` holds a link or constant (is not empty).
    pub fn link_set(&self, name: &'static str) -> bool {
        !self.get(name).to_text().trim().is_empty()
    }

    /// Writes `value` through output link `link_field` after this processing, if the link is set.
    pub fn write(&mut self, link_field: &'static str, value: FieldValue) {
        if self.link_set(link_field) {
            self.follow.outputs.push(OutputWrite { link_field, value });
        }
    }

    /// Posts the named event (`postEvent`); an empty name posts nothing.
    pub fn post_event(&mut self, name: &str) {
        let name = name.trim();
        if !name.is_empty() {
            self.follow.events.push(name.to_string());
        }
    }

    /// Stays active and asks to be resumed after `delay` (negative or NaN seconds: at
    /// once, but still later, from the database's queue of deadlines, as base's callback
    /// task runs a zero delay).
    pub fn resume_after(&mut self, seconds: f64) {
        let delay =
            if seconds > 0.0 { Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX) } else { Duration::ZERO };
        self.follow.resume_after = Some(delay);
    }

    /// Raises an alarm for this processing (`recGblSetSevr`).
    pub fn raise(&mut self, stat: u16, sevr: u16) {
        self.alarm.raise(stat, sevr);
    }

    /// Stores `value` into generically kept field `name`, posting it when it changed.
    pub fn set(&mut self, name: &'static str, value: FieldValue) {
        use crate::proto::constants::{DBE_LOG, DBE_VALUE};
        if self.fields.get(name) != Some(&value) {
            self.fields.insert(name, value);
            self.changes.post(name, DBE_VALUE | DBE_LOG);
        }
    }
}

/// The behaviour of one record type (EPICS' `rset`): the fields it keeps in
/// its own state, processing, and the metadata of its fields.
pub trait RecordSupport: std::fmt::Debug + Send + Sync + 'static {
    /// A copy of this state.
    fn clone_box(&self) -> Box<dyn RecordSupport>;

    /// For callers that need the concrete type.
    fn as_any(&self) -> &dyn Any;

    /// True when `other` is the same type in the same state.
    fn eq_dyn(&self, other: &dyn RecordSupport) -> bool;

    /// Reads a field this type keeps in its own state (`None`: kept generically).
    fn get(&self, _name: &str) -> Option<FieldValue> {
        None
    }

    /// Stores an already-coerced value into this type's own state; `Ok(false)`
    /// when the field is kept generically (it is then stored there).
    fn put(&mut self, _name: &'static str, _value: &FieldValue) -> Result<bool, PutError> {
        Ok(false)
    }

    /// Processes the record (`process` of the rset); returns the event mask of `VAL`.
    /// A type that completes later calls [`Process::resume_after`].
    fn process(&mut self, ctx: &mut Process<'_>) -> u16;

    /// Continues an asynchronous processing when its delay is over (`process` called
    /// again with `PACT` set); returns the event mask of `VAL`. It may ask for another
    /// delay (seq's next group). Only types that call [`Process::resume_after`] get here.
    fn resume(&mut self, _ctx: &mut Process<'_>) -> u16 {
        0
    }

    /// The input links read before [`RecordSupport::process`] (by default every link
    /// of [`RecordSupport::input_links`]); seq reads its `DOLn` group by group instead.
    fn links_read_before_processing(&self) -> &'static [&'static str] {
        self.input_links()
    }

    /// The input links read before [`RecordSupport::resume`] (seq: the `DOLn` of the
    /// group whose turn it is).
    fn links_read_before_resuming(&self) -> &'static [&'static str] {
        &[]
    }

    /// The link whose record's time stamp soft device support copies when `TSE` is -2
    /// (`epicsTimeEventDeviceTime`) and `TSEL` is constant: `INP` of the input records
    /// with soft device support (devAiSoft and its kin read `dbGetTimeStamp(INP)`).
    /// Records without device support leave their time stamp untouched.
    fn device_time_link(&self) -> Option<&'static str> {
        self.input_links().contains(&"INP").then_some("INP")
    }

    /// Display, alarm and control limits of `field` (`get_units`,
    /// `get_precision`, `get_graphic_double`, ...). `limits` holds the type's range.
    fn limits(&self, _field: &str, _field_type: FieldType, limits: &mut Limits) {
        // Record types without graphic support report zeros (dbAccess' get_graphics).
        limits.display = (0.0, 0.0);
        limits.control = (0.0, 0.0);
    }

    /// The state strings of enum field `name` (`get_enum_strs`).
    fn enum_strings(&self, _name: &str) -> Option<Vec<&str>> {
        None
    }

    /// The state a string written to enum field `VAL` names (`put_enum_str`),
    /// when the type looks further than [`RecordSupport::enum_strings`].
    fn state_index(&self, _text: &str) -> Option<u16> {
        None
    }

    /// The field type of `name` when it differs from the table (an array's `VAL` follows `FTVL`).
    fn field_type(&self, _name: &str) -> Option<FieldType> {
        None
    }

    /// How many elements field `name` holds at most (1 unless an array).
    fn element_count(&self, _name: &str) -> u32 {
        1
    }

    /// True when field `name` holds an array (a `.db` file gives it as `[..]`).
    fn is_array(&self, _name: &str) -> bool {
        false
    }

    /// Stores an array written to field `name`; `None` when `name` is no array field.
    fn put_array(&mut self, _name: &str, _value: Value) -> Option<Result<(), PutError>> {
        None
    }

    /// True when `VAL` is NaN (a NaN written to `VAL` leaves it undefined).
    fn value_is_nan(&self) -> bool {
        false
    }

    /// After a database file set `VAL`, the last posted values follow it (as `init_record` does).
    fn value_loaded(&mut self) {}

    /// The input link fields the database reads before processing.
    fn input_links(&self) -> &'static [&'static str] {
        &[]
    }

    /// True for a read-only field that a database file may still set (`SIZV`).
    fn loads_read_only(&self, _name: &str) -> bool {
        false
    }

    /// The type's `init_record`, once the database file set every field (before
    /// constant links are loaded).
    fn init_record(&mut self) {}

    /// A periodic monitor (histogram's `SDEL` watchdog): true when the value changed
    /// since it was last posted, which the database then posts; called every `SDEL`.
    fn watchdog(&mut self) -> bool {
        false
    }

    /// The field a constant in input link `link_field` is loaded into when
    /// the database file sets the link (`recGblInitConstantLink`).
    fn constant_target(&self, _link_field: &str) -> Option<&'static str> {
        None
    }
}

/// Helpers for the record types' unit tests: a database from `.db` text, processed at a fixed time.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::{Duration, SystemTime};

    use super::super::{Database, FieldValue, Macros, parse_db};

    /// The fixed processing time of the tests.
    pub fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// Loads `text` as a database (processing `PINI` records).
    pub fn db(text: &str) -> Database {
        Database::from_defs(parse_db(text, "t.db", &Macros::new()).unwrap(), now()).unwrap()
    }

    /// Field `channel` (`REC.FIELD`) of `db`.
    pub fn get(db: &Database, channel: &str) -> FieldValue {
        let (id, field) = db.resolve(channel).unwrap_or_else(|| panic!("no channel {channel}"));
        db.record(id).get_field(field).unwrap()
    }

    /// Field `channel` as a number.
    pub fn number(db: &Database, channel: &str) -> f64 {
        get(db, channel).as_f64().unwrap_or_else(|| panic!("{channel} is not a number"))
    }

    /// `seconds` after [`now`]: the fake clock of the tests of delays.
    pub fn at(seconds: f64) -> SystemTime {
        now() + Duration::from_secs_f64(seconds)
    }

    /// Writes `value` to `channel` as a CA put does (processing when the field is PP),
    /// then runs the delayed work due at once, as the server does before answering.
    pub fn put(db: &mut Database, channel: &str, value: FieldValue) {
        put_at(db, channel, value, now());
    }

    /// [`put`] at time `when`.
    pub fn put_at(db: &mut Database, channel: &str, value: FieldValue, when: SystemTime) {
        let (id, field) = db.resolve(channel).unwrap_or_else(|| panic!("no channel {channel}"));
        let field = field.to_string();
        db.put_field(id, &field, value, when).unwrap();
        db.run_due(when);
    }

    /// Processes record `name`, then runs the delayed work due at once.
    pub fn process(db: &mut Database, name: &str) {
        process_at(db, name, now());
    }

    /// [`process`] at time `when`.
    pub fn process_at(db: &mut Database, name: &str, when: SystemTime) {
        let id = db.find(name).unwrap();
        db.process(id, when);
        db.run_due(when);
    }

    /// The time stamp of record `name` as seconds after [`now`] (negative before it).
    pub fn stamp(db: &Database, name: &str) -> f64 {
        let time = db.record(db.find(name).unwrap()).time().to_system_time();
        match time.duration_since(now()) {
            Ok(after) => after.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        }
    }

    /// `(STAT, SEVR)` of record `name`.
    pub fn alarm(db: &Database, name: &str) -> (u16, u16) {
        let a = db.record(db.find(name).unwrap()).alarm();
        (a.stat, a.sevr)
    }
}
