//! Serving an EPICS database: every `NAME` and `NAME.FIELD` channel of its records,
//! periodic scanning, delayed processing (calcout's `ODLY`, seq's `DLYn`) at the
//! database's deadlines, processing chains, and posting what changed.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::SystemTime;

use parking_lot::Mutex;
use pvloom_core::completion::{Completer, Completion, completion};
use pvloom_core::{RuntimeHandle, TimerHandle};

use super::backend::{PvBackend, Status};
use super::db::{Changes, Database, FieldType, FieldValue, GetError, PutError, Record, RecordId};
use super::filter::{ChannelSpec, Filter, FilteredField};
use super::registry::ServedPv;
use super::states::NamedStates;
use super::{Server, TimerHandles};
use crate::proto::constants::{ECA_BADCOUNT, ECA_BADTYPE, ECA_NORMAL, ECA_NOWTACCESS, ECA_PUTFAIL};
use crate::proto::{ControlLimits, DbrClass, DbrData, DbrType, GraphicInfo, Metadata, Value};

/// The channels opened on each record: (field, channel).
type OpenChannels = HashMap<RecordId, Vec<(String, Weak<ServedPv>)>>;

/// Called after a put to a watched record succeeded: the record and the field written.
pub type PutWatcher = Arc<dyn Fn(&Record, &str) + Send + Sync>;

/// The database behind a server and the channels clients opened on it.
pub struct DbIoc {
    db: Mutex<Database>,
    channels: Mutex<OpenChannels>,
    watchers: Mutex<HashMap<RecordId, PutWatcher>>,
    /// Named states the channels' `sync` filters follow.
    states: Arc<NamedStates>,
    _timers: Mutex<TimerHandles>,
    /// Itself, for the timers it arms.
    me: Weak<DbIoc>,
    /// The runtime whose timers run delayed processing, once served.
    runtime: OnceLock<RuntimeHandle>,
    /// The timer armed for the database's next deadline, with that deadline. Locked
    /// after `db`, never before.
    wake_up: Mutex<Option<(SystemTime, TimerHandle)>>,
    /// Clients' puts waiting for the delayed processing their chains started.
    pending_puts: Mutex<Vec<PendingPut>>,
}

impl std::fmt::Debug for DbIoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIoc").field("records", &self.db.lock().len()).finish()
    }
}

struct RecordField {
    ioc: Weak<DbIoc>,
    id: RecordId,
    field: String,
    native: DbrType,
    count: u32,
    writable: bool,
    /// `FIELD$`: the string served as `count` chars, NUL-terminated.
    long_string: bool,
}

/// Elements of a link field's `$` channel (base's `PVLINK_STRINGSZ`).
const LINK_STRING_SIZE: u32 = 1024;

impl RecordField {
    /// A client's write: the put and the processing it starts, posted; with `notify`,
    /// the completion of the delayed processing its chain started, if any.
    fn write_then(
        &self,
        data_type: DbrType,
        data: &DbrData,
        notify: bool,
    ) -> Result<(u16, Option<Completion<Status>>), Status> {
        let ioc = self.ioc.upgrade().ok_or(ECA_PUTFAIL)?;
        let now = SystemTime::now();
        let results = {
            let mut db = ioc.db.lock();
            if matches!(data_type.class(), DbrClass::PutAckt | DbrClass::PutAcks) {
                let changes =
                    db.record_mut(self.id).put_dbr_at(&self.field, data_type, data, now).map_err(|e| eca_of_put(&e))?;
                vec![(self.id, changes)]
            } else {
                let whole = self.count > 1 && self.field == "VAL";
                let value = if self.long_string {
                    self.long_string_value(&data.value)
                } else if whole || data.value.native_type() == crate::proto::NativeType::String {
                    field_value(&data.value, whole)
                } else {
                    field_value(&data.value, false)
                }
                .ok_or(ECA_PUTFAIL)?;
                db.put_field(self.id, &self.field, value, now).map_err(|e| {
                    tracing::debug!(field = self.field, "put refused: {e}");
                    eca_of_put(&e)
                })?
            }
        };
        ioc.post(&results);
        // Before the delayed work due now runs: it may be what the put waits for.
        let pending = if notify { ioc.await_chain(&results) } else { None };
        ioc.run_due_work();
        ioc.notify_put(self.id, &self.field);
        // Already posted to every affected channel, this one included.
        Ok((0, pending))
    }

    /// `FIELD$` read: the field's text as chars (with its NUL; all `count` when asked for
    /// a fixed count) and the record's metadata.
    fn read_long_string(&self, db: &Database, data_type: DbrType, count: u32) -> Result<DbrData, Status> {
        let record = db.record(self.id);
        let text = match record.get_field(&self.field) {
            Some(FieldValue::String(text)) => text,
            _ => return Err(ECA_BADTYPE),
        };
        // The metadata of a char array: the field's alarm (and time); for GR and CTRL no
        // units and zero limits, as base gives a string field read as chars.
        let (class, display) = match data_type.class() {
            c @ (DbrClass::Graphic | DbrClass::Control) => (DbrClass::Status, Some(c)),
            c => (c, None),
        };
        let meta_type = DbrType::from_parts(crate::proto::NativeType::String, class).ok_or(ECA_BADTYPE)?;
        let mut data = record.dbr_data(&self.field, meta_type, None).map_err(|e| eca_of_get(&e))?;
        if let (Some(display), Metadata::Status(alarm)) = (display, &data.metadata) {
            let (alarm, info) = (*alarm, GraphicInfo::default());
            data.metadata = if display == DbrClass::Graphic {
                Metadata::Graphic { alarm, info }
            } else {
                Metadata::Control { alarm, info, control: ControlLimits::default() }
            };
        }
        let mut chars = text.into_bytes();
        chars.truncate(self.count as usize - 1);
        chars.push(0);
        let chars = if count > 0 {
            super::db::record::truncate_value(&Value::Char(chars), count as usize)
        } else {
            Value::Char(chars)
        };
        data.value = chars.convert(data_type.native()).map_err(|_| ECA_BADTYPE)?;
        Ok(data)
    }

    /// `FIELD$` write: the chars up to the first NUL (at most `count - 1`) as the string.
    fn long_string_value(&self, value: &Value) -> Option<FieldValue> {
        let Value::Char(chars) = value.convert(crate::proto::NativeType::Char).ok()? else { return None };
        let end = chars.iter().position(|&c| c == 0).unwrap_or(chars.len()).min(self.count as usize - 1);
        Some(FieldValue::String(String::from_utf8_lossy(&chars[..end]).into_owned()))
    }
}

fn eca_of_get(err: &GetError) -> Status {
    match err {
        GetError::BadCount { .. } => ECA_BADCOUNT,
        _ => ECA_BADTYPE,
    }
}

fn eca_of_put(err: &PutError) -> Status {
    match err {
        PutError::ReadOnly { .. } => ECA_NOWTACCESS,
        PutError::BadType(_) => ECA_BADTYPE,
        _ => ECA_PUTFAIL,
    }
}

/// The first element (or the whole array for waveforms) as a field value.
fn field_value(value: &Value, whole_array: bool) -> Option<FieldValue> {
    if whole_array {
        return Some(FieldValue::Array(value.clone()));
    }
    Some(match value {
        Value::String(v) => FieldValue::String(v.first()?.to_string_lossy().into_owned()),
        Value::Short(v) => FieldValue::Int((*v.first()?).into()),
        Value::Char(v) => FieldValue::Int((*v.first()?).into()),
        Value::Long(v) => FieldValue::Int((*v.first()?).into()),
        Value::Enum(v) => FieldValue::Enum(*v.first()?),
        Value::Float(v) => FieldValue::Double((*v.first()?).into()),
        Value::Double(v) => FieldValue::Double(*v.first()?),
    })
}

impl PvBackend for RecordField {
    fn native_type(&self) -> DbrType {
        self.native
    }

    fn element_count(&self) -> u32 {
        self.count
    }

    fn read(&self, data_type: DbrType, count: u32) -> Result<DbrData, Status> {
        let ioc = self.ioc.upgrade().ok_or(ECA_BADTYPE)?;
        let db = ioc.db.lock();
        if self.long_string {
            return self.read_long_string(&db, data_type, count);
        }
        db.record(self.id).dbr_data(&self.field, data_type, (count > 0).then_some(count)).map_err(|e| eca_of_get(&e))
    }

    fn write(&self, data_type: DbrType, data: &DbrData) -> Result<u16, Status> {
        self.write_then(data_type, data, false).map(|(events, _)| events)
    }

    fn write_notify(&self, data_type: DbrType, data: &DbrData) -> Result<(u16, Option<Completion<Status>>), Status> {
        self.write_then(data_type, data, true)
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn access_group(&self) -> Option<String> {
        let ioc = self.ioc.upgrade()?;
        let db = ioc.db.lock();
        match db.record(self.id).get_field("ASG") {
            Some(super::db::FieldValue::String(group)) if !group.is_empty() => Some(group),
            _ => None,
        }
    }
}

/// A client's put (`WRITE_NOTIFY`) answered when the processing it started is over, as
/// base's dbPutNotify: when no record of its chain is active any more, those its delayed
/// parts went on to make active included.
struct PendingPut {
    /// Records of the put's chain still active.
    waiting: Vec<RecordId>,
    done: Completer<Status>,
}

impl DbIoc {
    /// Wrap a loaded database.
    pub fn new(db: Database) -> Arc<Self> {
        DbIoc::with_states(db, NamedStates::new())
    }

    /// Wrap a loaded database whose `sync` filters follow `states` (iocsh's).
    pub fn with_states(db: Database, states: Arc<NamedStates>) -> Arc<Self> {
        Arc::new_cyclic(|me| DbIoc {
            db: Mutex::new(db),
            channels: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            states,
            _timers: Mutex::new(Vec::new()),
            me: me.clone(),
            runtime: OnceLock::new(),
            wake_up: Mutex::new(None),
            pending_puts: Mutex::new(Vec::new()),
        })
    }

    /// The named states of `sync` filters.
    pub fn states(&self) -> &Arc<NamedStates> {
        &self.states
    }

    /// After processing (its changes posted): runs the delayed work already due, one
    /// piece at a time, posting each before the next runs as base's separate callback
    /// and scanOnce tasks post theirs (a client's outbox may still merge updates of one
    /// channel that follow each other closely); a seq group without delay is written
    /// before the put that started it is answered. Then arms the timer for the next
    /// deadline.
    fn run_due_work(&self) {
        // Records that start each other without delay would keep this thread here: after
        // this many pieces the rest waits for the timer (armed at once), and the thread
        // serves its clients meanwhile.
        const PIECES_AT_ONCE: usize = 1_000;
        for _ in 0..PIECES_AT_ONCE {
            let results = {
                let mut db = self.db.lock();
                match db.run_next_due(SystemTime::now()) {
                    Some(results) => results,
                    None => {
                        self.arm_wake_up(db.next_deadline());
                        return;
                    }
                }
            };
            self.post(&results);
            self.settle_pending_puts(&results);
        }
        let db = self.db.lock();
        self.arm_wake_up(db.next_deadline());
    }

    /// After a piece of delayed work processed `piece`: the puts waiting on one of those
    /// records now wait on whatever of it is still active; those with nothing left are
    /// answered.
    fn settle_pending_puts(&self, piece: &[(RecordId, Changes)]) {
        let finished: Vec<PendingPut> = {
            let db = self.db.lock();
            let mut pending = self.pending_puts.lock();
            for put in pending.iter_mut() {
                if piece.iter().any(|(id, _)| put.waiting.contains(id)) {
                    put.waiting.extend(piece.iter().map(|(id, _)| *id).filter(|&id| db.record(id).active()));
                }
                put.waiting.retain(|&id| db.record(id).active());
                put.waiting.dedup();
            }
            let (finished, waiting) = std::mem::take(&mut *pending).into_iter().partition(|p| p.waiting.is_empty());
            *pending = waiting;
            finished
        };
        for put in finished {
            put.done.succeed(ECA_NORMAL);
        }
    }

    /// Registers a client's put to answer when the records of `results` that are
    /// active have finished; `None` when none is.
    fn await_chain(&self, results: &[(RecordId, Changes)]) -> Option<Completion<Status>> {
        let waiting: Vec<RecordId> = {
            let db = self.db.lock();
            let mut ids: Vec<RecordId> =
                results.iter().map(|(id, _)| *id).filter(|&id| db.record(id).active()).collect();
            ids.dedup();
            ids
        };
        if waiting.is_empty() {
            return None;
        }
        let (done, completion) = completion::<Status>();
        self.pending_puts.lock().push(PendingPut { waiting, done });
        Some(completion)
    }

    /// Arms the timer for `deadline` unless one is armed for it or earlier.
    fn arm_wake_up(&self, deadline: Option<SystemTime>) {
        let (Some(deadline), Some(runtime)) = (deadline, self.runtime.get()) else { return };
        let mut wake_up = self.wake_up.lock();
        if let Some((armed, timer)) = wake_up.as_ref() {
            if *armed <= deadline {
                return;
            }
            timer.cancel();
        }
        let delay = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let ioc = self.me.clone();
        let timer = runtime.call_later(delay, move || {
            if let Some(ioc) = ioc.upgrade() {
                ioc.run_deadlines(deadline);
            }
        });
        *wake_up = Some((deadline, timer));
    }

    /// The timer armed for `deadline` fired: run what is due and post it.
    fn run_deadlines(&self, deadline: SystemTime) {
        {
            // The documented order: `db`, then `wake_up`.
            let _db = self.db.lock();
            let mut wake_up = self.wake_up.lock();
            if wake_up.as_ref().is_some_and(|(armed, _)| *armed == deadline) {
                *wake_up = None;
            }
        }
        // A timer may fire a little before the wall clock reaches its deadline: nothing
        // is due then, and the timer is armed again.
        self.run_due_work();
    }

    /// Reads the database (iocsh's `dbl`, `dbpr`, `dbgf`).
    pub fn with_database<R>(&self, f: impl FnOnce(&Database) -> R) -> R {
        f(&self.db.lock())
    }

    /// Writes `value` to the channel `name` (`REC` or `REC.FIELD`) as a client put
    /// would (iocsh's `dbpf`): processing, forward links, posts to subscribers, watchers.
    pub fn put(&self, name: &str, value: FieldValue) -> Result<(), PutError> {
        let (id, field, results) = {
            let mut db = self.db.lock();
            let (id, field) = db.resolve(name).ok_or_else(|| PutError::NoSuchField(name.to_owned()))?;
            let field = field.to_owned();
            let results = db.put_field(id, &field, value, SystemTime::now())?;
            (id, field, results)
        };
        self.post(&results);
        self.run_due_work();
        self.notify_put(id, &field);
        Ok(())
    }

    /// Calls `watcher` after every successful put to record `name` (by a client or
    /// [`DbIoc::put`]); false when there is no such record. softIoc's `-x` exit record
    /// is such a watcher.
    pub fn watch_puts(&self, name: &str, watcher: PutWatcher) -> bool {
        let Some(id) = self.db.lock().find(name) else { return false };
        self.watchers.lock().insert(id, watcher);
        true
    }

    fn notify_put(&self, id: RecordId, field: &str) {
        let Some(watcher) = self.watchers.lock().get(&id).cloned() else { return };
        let db = self.db.lock();
        watcher(db.record(id), field);
    }

    /// Records in the database.
    pub fn len(&self) -> usize {
        self.db.lock().len()
    }

    /// True without records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel `name` (`REC`, `REC.FIELD`, `REC.FIELD$`, with filters), made on
    /// first use.
    fn channel(self: &Arc<Self>, name: &str) -> Option<Arc<ServedPv>> {
        let spec = ChannelSpec::parse(name)?;
        // As base: a sync filter naming no existing state makes no channel.
        let states_exist = spec.filters.iter().all(|f| match f {
            Filter::Sync { state, .. } => self.states.find(state).is_some(),
            _ => true,
        });
        if !states_exist {
            return None;
        }
        let (id, field, native, count, writable) = {
            let db = self.db.lock();
            let (id, field) = db.resolve(&spec.base)?;
            let record = db.record(id);
            let writable = record.record_type().field(field).is_none_or(|spec| !spec.read_only());
            if spec.long_string {
                // As base: string and link fields only, NELM their size (links 1024).
                let size = match record.field_type(field)? {
                    FieldType::String { size } => u32::from(size),
                    FieldType::InLink | FieldType::OutLink | FieldType::FwdLink => LINK_STRING_SIZE,
                    _ => return None,
                };
                (id, field.to_owned(), DbrType::Char, size, writable)
            } else {
                let native = DbrType::from_parts(record.native_type(field)?, DbrClass::Plain)?;
                let count = record.element_count(field).unwrap_or(1).max(1);
                (id, field.to_owned(), native, count, writable)
            }
        };
        let field_backend = RecordField {
            ioc: Arc::downgrade(self),
            id,
            field: field.clone(),
            native,
            count,
            writable,
            long_string: spec.long_string,
        };
        let served = if spec.filters.is_empty() {
            ServedPv::new(name.to_owned(), Arc::new(field_backend))
        } else {
            let filtered = FilteredField::new(Arc::new(field_backend), spec.filters, self.states.clone());
            ServedPv::new_transient(name.to_owned(), Arc::new(filtered))
        };
        let mut channels = self.channels.lock();
        let list = channels.entry(id).or_default();
        // Searches for filtered names resolve afresh each time: what they left is pruned
        // here, or a record that never posts would collect them.
        list.retain(|(_, pv)| pv.strong_count() > 0);
        list.push((field, Arc::downgrade(&served)));
        Some(served)
    }

    /// Post what processing changed to the channels clients hold.
    fn post(&self, results: &[(RecordId, Changes)]) {
        let mut targets: Vec<(Arc<ServedPv>, u16)> = Vec::new();
        {
            let mut channels = self.channels.lock();
            for (id, changes) in results {
                let Some(list) = channels.get_mut(id) else { continue };
                list.retain(|(_, pv)| pv.strong_count() > 0);
                for (field, pv) in list.iter() {
                    let mask = changes.mask_for(field);
                    if mask != 0
                        && let Some(pv) = pv.upgrade()
                    {
                        targets.push((pv, mask));
                    }
                }
            }
        }
        for (pv, mask) in targets {
            pv.post(mask);
        }
    }

    /// Process one record now (as a periodic scan would) and post the changes.
    pub fn process(&self, name: &str) -> bool {
        let results = {
            let mut db = self.db.lock();
            let Some(id) = db.find(name) else { return false };
            db.process(id, SystemTime::now())
        };
        self.post(&results);
        self.run_due_work();
        true
    }

    /// Serve this database on `server`: channels resolve on demand, periodic records
    /// are processed on the server's I/O threads.
    pub fn serve(self: &Arc<Self>, server: &Server) {
        let ioc = Arc::downgrade(self);
        server.registry().set_resolver(Arc::new(move |name: &str| ioc.upgrade()?.channel(name)));
        let _ = self.runtime.set(server.runtime().clone());
        let (periodic, first_deadline) = {
            let db = self.db.lock();
            (db.periodic(), db.next_deadline())
        };
        // Delayed processing started at load (PINI) waits for the server's timers.
        self.arm_wake_up(first_deadline);
        let mut timers = self._timers.lock();
        for (period, ids) in periodic {
            let ioc = Arc::downgrade(self);
            timers.push(server.runtime().call_every(period, move || {
                let Some(ioc) = ioc.upgrade() else { return };
                let now = SystemTime::now();
                let results: Vec<(RecordId, Changes)> = {
                    let mut db = ioc.db.lock();
                    ids.iter().flat_map(|&id| db.process(id, now)).collect()
                };
                ioc.post(&results);
                ioc.run_due_work();
            }));
        }
    }
}

impl Drop for DbIoc {
    fn drop(&mut self) {
        for timer in self._timers.get_mut().iter() {
            timer.cancel();
        }
        if let Some((_, timer)) = self.wake_up.get_mut() {
            timer.cancel();
        }
    }
}
