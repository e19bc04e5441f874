//! The process variable database of the CA server: EPICS `.db` files,
//! records, alarms, calc expressions, and conversion to DBR payloads.
//!
//! Sans-I/O: nothing here reads files, sleeps or reads the clock on its
//! own (apart from the `put_*` convenience methods that take
//! `SystemTime::now()`); the server drives processing and scanning.
//!
//! * [`parse_db`] / [`parse_db_with`] read a database file with [`Macros`]
//!   into validated [`RecordDef`]s.
//! * [`Record`] holds one record: [`Record::get_field`], [`Record::put_field`],
//!   [`Record::process`], [`Record::dbr_data`], [`Record::put_dbr`].
//! * [`Database`] owns the records, resolves `NAME.FIELD` channel names and
//!   aliases, and processes calc records by reading their input links.
//! * Delayed processing (calcout's `ODLY`, seq's `DLYn`, reprocessing asked for
//!   while a record is active) waits in the database's deadlines: the caller asks
//!   [`Database::next_deadline`] and calls [`Database::run_due`] with the time it is
//!   then, so tests drive it with a fake clock.

pub mod alarm;
pub mod calc;
mod dbr;
pub mod parse;
pub mod rec;
pub mod record;
pub mod relaxed_json;
pub mod value;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

pub use alarm::{AlarmState, LimitAlarms};
pub use calc::{CalcError, CalcExpr};
pub use dbr::GetError;
pub use parse::{ExistingRecords, IncludeLoader, MacroError, Macros, ParseOptions, RecordDef, parse_db, parse_db_with};
pub use rec::{
    Analog, Binary, Calc, Deadband, Display, FieldSpec, Follow, Limits, Long, Multi, OutputWrite, Process,
    RecordSupport, RecordType, RecordTypeDef, Text, Waveform,
};
pub use record::{CalcInput, Changes, Link, LinkError, LoadError, PutEffect, PutError, Record, SeverityMode};
pub use value::{FieldType, FieldValue, Menu};

use crate::proto::constants::{DBE_ALARM, DBE_VALUE, alarm_status, severity};
use crate::proto::dbr::EpicsTime;

/// A database file that cannot be loaded: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct DbError {
    /// The file (as named to the parser or in `include`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in the line after macro expansion).
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

/// Index of a record in a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub usize);

/// How many records one processing chain (a scan, a put, an event and everything its
/// links process) may process before giving up. Loops end earlier: as base's PACT, a
/// record already processed in the chain is not processed again. The bound keeps a
/// database of CP links that feed each other from processing without end.
pub const MAX_CHAIN_PROCESSING: usize = 100_000;

/// The records of a server, by name and alias.
#[derive(Debug, Clone, Default)]
pub struct Database {
    records: Vec<Record>,
    names: HashMap<String, RecordId, foldhash::fast::RandomState>,
    /// For each record, the records whose `CP`/`CPP` input links name it; built
    /// when needed, dropped whenever records or links may have changed.
    change_listeners: Option<HashMap<RecordId, Vec<(RecordId, String)>>>,
    /// The chain each record last processed in (PACT for the chain running now).
    processed_in: Vec<u64>,
    /// The chain running now, and how many records it processed.
    chain: u64,
    chain_len: usize,
    /// The chain running now started with a client's put (base's `PUTF`): an active
    /// record that a link of it would process is asked to process again (`RPRO`).
    chain_from_put: bool,
    /// Work waiting for its time (delayed outputs, seq groups, reprocessing), by
    /// deadline and then by order of request. The database reads no clock: the
    /// server asks [`Database::next_deadline`] and calls [`Database::run_due`].
    deadlines: BTreeMap<(SystemTime, u64), Deferred>,
    /// Requests made so far, to order those of the same deadline.
    deferred_count: u64,
    /// Records whose watchdog (histogram's `SDEL`) waits in `deadlines`.
    watchdogs: std::collections::HashSet<RecordId>,
}

/// Work the database does later, at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deferred {
    /// Continue the asynchronous processing of an active record (base's delayed
    /// process callback); `from_put`: the processing began in a put's chain.
    Resume { record: RecordId, from_put: bool },
    /// Process a record in a chain of its own (base's `scanOnce`, after `RPRO`).
    Reprocess { record: RecordId },
    /// A record's periodic monitor (histogram's `SDEL`), re-armed with its period then.
    Watchdog { record: RecordId },
}

/// A record or alias of that name exists already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record or alias {0:?} already exists")]
pub struct NameTaken(pub String);

/// Where simulation mode redirects a record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simulation {
    /// An input record reads `SIOL` instead of `INP`.
    Input,
    /// An output record writes `SIOL` instead of `OUT`.
    Output,
}

impl Database {
    /// An empty database.
    pub fn new() -> Self {
        Database::default()
    }

    /// Builds a database from parsed definitions and processes the records
    /// with `PINI` set, as `iocInit` does, at time `now`.
    pub fn from_defs(defs: Vec<RecordDef>, now: SystemTime) -> Result<Self, DbError> {
        let mut db = Database::new();
        for def in defs {
            let (file, line) = (def.file.clone(), def.line);
            db.add(def.into_record()).map_err(|taken| DbError { file, line, column: 1, reason: taken.to_string() })?;
        }
        db.start_watchdogs(now);
        let pini: Vec<RecordId> = db.ids().filter(|&id| db.records[id.0].pini()).collect();
        for id in pini {
            db.process(id, now);
        }
        Ok(db)
    }

    /// Parses `text` and adds its records (see [`parse_db_with`] and [`Database::from_defs`]).
    pub fn load(
        &mut self,
        text: &str,
        file: &str,
        macros: &Macros,
        options: &ParseOptions<'_>,
        now: SystemTime,
    ) -> Result<Vec<RecordId>, DbError> {
        let defs = parse_db_with(text, file, macros, options)?;
        let mut added = Vec::new();
        for def in defs {
            let (file, line) = (def.file.clone(), def.line);
            added.push(self.add(def.into_record()).map_err(|taken| DbError {
                file,
                line,
                column: 1,
                reason: taken.to_string(),
            })?);
        }
        for &id in &added {
            self.arm_watchdog(id, now);
            if self.records[id.0].pini() {
                self.process(id, now);
            }
        }
        Ok(added)
    }

    /// Adds a record; its name and aliases must be new.
    ///
    /// # Errors
    /// [`NameTaken`] when a record or alias of that name exists.
    pub fn add(&mut self, record: Record) -> Result<RecordId, NameTaken> {
        let id = RecordId(self.records.len());
        let names: Vec<String> = std::iter::once(record.name().to_string()).chain(record.aliases().to_vec()).collect();
        if let Some(taken) = names.iter().find(|n| self.names.contains_key(*n)) {
            return Err(NameTaken(taken.clone()));
        }
        for name in names {
            self.names.insert(name, id);
        }
        self.records.push(record);
        self.change_listeners = None;
        Ok(id)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record id.
    pub fn ids(&self) -> impl Iterator<Item = RecordId> + use<> {
        (0..self.records.len()).map(RecordId)
    }

    /// The record named `name` (or with that alias).
    pub fn find(&self, name: &str) -> Option<RecordId> {
        self.names.get(name).copied()
    }

    /// Resolves a channel name `NAME[.FIELD]` to a record and field,
    /// if the record exists and has the field (what a server answers
    /// a SEARCH for).
    pub fn resolve<'c>(&self, channel: &'c str) -> Option<(RecordId, &'c str)> {
        let (record, field) = Record::split_channel(channel);
        let id = self.find(record)?;
        self.records[id.0].field_type(field)?;
        Some((id, field))
    }

    /// The record `id`.
    pub fn record(&self, id: RecordId) -> &Record {
        &self.records[id.0]
    }

    /// The record `id`, mutably.
    pub fn record_mut(&mut self, id: RecordId) -> &mut Record {
        self.change_listeners = None;
        &mut self.records[id.0]
    }

    /// Records scanned periodically, grouped by period (shortest first),
    /// each group in `PHAS` order.
    pub fn periodic(&self) -> Vec<(Duration, Vec<RecordId>)> {
        let mut groups: Vec<(Duration, Vec<RecordId>)> = Vec::new();
        for id in self.ids() {
            if let Some(period) = self.records[id.0].scan_period() {
                match groups.iter_mut().find(|(p, _)| *p == period) {
                    Some((_, ids)) => ids.push(id),
                    None => groups.push((period, vec![id])),
                }
            }
        }
        groups.sort_by_key(|(p, _)| *p);
        for (_, ids) in &mut groups {
            ids.sort_by_key(|id| self.records[id.0].phase());
        }
        groups
    }

    /// Processes record `id` at `now`: the record first reads its input
    /// links (alarm severity propagating per `MS`/`MSS`/`MSI`; a link to a
    /// missing record or field raises LINK/INVALID; a `PP` link processes a
    /// passive target first), then writes its output links (processing a
    /// passive target of a `PP` link), processes the targets of fanout-style
    /// links, and follows its forward link (`FLNK`). Returns the changes of
    /// every record processed, this one first.
    ///
    /// A record whose asynchronous processing is under way (`PACT`: calcout waiting
    /// `ODLY`, seq between groups) is not processed: as base's dbProcess, the request
    /// is counted in `LCNT` and the record raises SCAN/INVALID after
    /// [`record::MAX_BUSY_REQUESTS`] of them.
    pub fn process(&mut self, id: RecordId, now: SystemTime) -> Vec<(RecordId, Changes)> {
        self.begin_chain(false);
        let mut results = Vec::new();
        self.process_chain(id, now, &mut results, false);
        results
    }

    /// When the earliest delayed work is due: an output after calcout's `ODLY`, a seq
    /// group after its `DLYn`, or the processing a put asked of an active record. The
    /// server calls [`Database::run_due`] at that time (or at once, if it is past).
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.deadlines.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Runs the delayed work due at `now`, each in a chain of its own and in order of
    /// deadline, as base's callback tasks do; work it schedules that is due at once
    /// (a seq group without delay) runs in this call too. Returns the changes.
    pub fn run_due(&mut self, now: SystemTime) -> Vec<(RecordId, Changes)> {
        let mut results = Vec::new();
        // Records that keep starting each other with no delay (a seq whose forward link
        // starts another seq, which starts the first) would never let this return: as
        // a chain, the call stops after this many processings and the rest waits for
        // the next call.
        let mut budget = MAX_CHAIN_PROCESSING;
        while budget > 0
            && let Some(done) = self.run_next_due(now)
        {
            budget = budget.saturating_sub(done.len().max(1));
            results.extend(done);
        }
        results
    }

    /// Runs the earliest piece of delayed work if it is due at `now` (one resumption
    /// or reprocessing, with the chain it starts); `None` when nothing is due. A
    /// server posts each piece's changes before the next runs, as base's separate
    /// callback and scanOnce tasks post theirs.
    pub fn run_next_due(&mut self, now: SystemTime) -> Option<Vec<(RecordId, Changes)>> {
        let entry = self.deadlines.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let mut results = Vec::new();
        match entry.remove() {
            Deferred::Resume { record, from_put } => {
                self.begin_chain(from_put);
                self.resume_chain(record, now, &mut results);
            }
            Deferred::Reprocess { record } => {
                self.begin_chain(false);
                self.process_chain(record, now, &mut results, false);
            }
            Deferred::Watchdog { record } => {
                self.watchdogs.remove(&record);
                if let Some(changes) = self.records[record.0].run_watchdog(now) {
                    results.push((record, changes));
                }
                self.arm_watchdog(record, now);
            }
        }
        Some(results)
    }

    /// Starts every record's watchdog that is not running (histogram's `SDEL`), as
    /// `iocInit`'s init_record does.
    pub fn start_watchdogs(&mut self, now: SystemTime) {
        for id in 0..self.records.len() {
            self.arm_watchdog(RecordId(id), now);
        }
    }

    /// Starts record `id`'s watchdog (histogram's `SDEL`) if it has one and it is not
    /// running yet (base's wdogInit, at init and when `SDEL` is written).
    fn arm_watchdog(&mut self, id: RecordId, now: SystemTime) {
        let Some(period) = self.records[id.0].watchdog_period() else { return };
        if self.watchdogs.insert(id) {
            self.defer(now.checked_add(period).unwrap_or(now), Deferred::Watchdog { record: id });
        }
    }

    fn defer(&mut self, deadline: SystemTime, work: Deferred) {
        self.deferred_count += 1;
        self.deadlines.insert((deadline, self.deferred_count), work);
    }

    /// A new processing chain: every record may process once in it.
    fn begin_chain(&mut self, from_put: bool) {
        self.chain += 1;
        self.chain_len = 0;
        self.chain_from_put = from_put;
        self.processed_in.resize(self.records.len(), 0);
    }

    /// `dbProcess` of record `id` in the chain running now; `by_link`: asked by a
    /// link of another record (a `PP` link, `FLNK`, a fanout link: base's
    /// processTarget), rather than by a scan, an event or a `CP` link.
    fn process_chain(&mut self, id: RecordId, now: SystemTime, results: &mut Vec<(RecordId, Changes)>, by_link: bool) {
        if self.processed_in[id.0] == self.chain {
            return;
        }
        if self.records[id.0].active() {
            // processTarget: a put's chain reaching a record busy with its own
            // processing marks it for one more processing when it is done.
            if by_link && self.chain_from_put {
                self.records[id.0].request_reprocessing();
            }
            let changes = self.records[id.0].refuse_while_active();
            if !changes.is_empty() {
                results.push((id, changes));
            }
            return;
        }
        if self.chain_len >= MAX_CHAIN_PROCESSING {
            tracing::warn!(
                record = self.records[id.0].name(),
                "a processing chain passed {MAX_CHAIN_PROCESSING} records: stopped"
            );
            return;
        }
        self.processed_in[id.0] = self.chain;
        self.chain_len += 1;
        self.records[id.0].reset_busy_count();
        let slot = results.len();
        results.push((id, Changes::default()));
        self.read_disable_link(id);
        if self.records[id.0].disabled() {
            // dbProcess: a disabled record only shows DISABLE with DISS; no processing, no FLNK.
            let changes = self.records[id.0].mark_disabled();
            results[slot].1.merge(changes);
            return;
        }
        let (changes, follow) = self.run_record(id, now, results, false);
        results[slot].1.merge(changes);
        self.follow_up(id, slot, follow, now, results);
    }

    /// Continues the asynchronous processing of record `id` (its delay is over), in
    /// the chain running now.
    fn resume_chain(&mut self, id: RecordId, now: SystemTime, results: &mut Vec<(RecordId, Changes)>) {
        if !self.records[id.0].active() {
            return;
        }
        self.processed_in[id.0] = self.chain;
        self.chain_len += 1;
        let slot = results.len();
        results.push((id, Changes::default()));
        let (changes, follow) = self.run_record(id, now, results, true);
        results[slot].1.merge(changes);
        self.follow_up(id, slot, follow, now, results);
    }

    /// What follows a processing (or resumption) of record `id`: its output writes,
    /// fanout links and events; then, unless it asked to be resumed later, its forward
    /// link and the end of its active state; `CP` listeners of what it posted.
    fn follow_up(
        &mut self,
        id: RecordId,
        slot: usize,
        follow: Follow,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
    ) {
        for write in follow.outputs {
            self.write_link(id, &write, now, results);
        }
        for link_field in follow.process_links {
            if let Some(target) = self.link_target(id, link_field) {
                self.process_chain(target, now, results, true);
            }
        }
        for event in follow.events {
            let scanned: Vec<RecordId> = self.ids().filter(|&r| self.records[r.0].scans_on_event(&event)).collect();
            for target in scanned {
                self.process_chain(target, now, results, false);
            }
        }
        if let Some(delay) = follow.resume_after {
            let deadline = now.checked_add(delay).unwrap_or(now + Duration::from_secs(u64::from(u32::MAX)));
            self.defer(deadline, Deferred::Resume { record: id, from_put: self.chain_from_put });
        } else {
            // dbScanFwdLink: only a passive target processes (dbScanPassive).
            if let Some(next) = self.records[id.0].forward_link().and_then(|name| self.find(&name))
                && self.records[next.0].scan() == 0
            {
                self.process_chain(next, now, results, true);
            }
            // recGblFwdLink: the forward link saw the record still active; then a put
            // that came meanwhile gets its processing, in a chain of its own.
            if self.records[id.0].active() && self.records[id.0].finish_active() {
                self.defer(now, Deferred::Reprocess { record: id });
            }
        }
        self.process_listeners(id, slot, now, results);
    }

    /// `CP`/`CPP` links: the records reading `id` through one process when the field
    /// they read posted a value or alarm change in `results[slot]` (a `CPP` link only
    /// when its record is passive).
    fn process_listeners(
        &mut self,
        id: RecordId,
        slot: usize,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
    ) {
        let Some(listeners) = self.change_listeners().get(&id) else { return };
        let Some((_, changes)) = results.get(slot) else { return };
        let due: Vec<RecordId> = listeners
            .iter()
            .filter(|(_, field)| changes.mask_for(field) & (DBE_VALUE | DBE_ALARM) != 0)
            .map(|(listener, _)| *listener)
            .collect();
        for listener in due {
            self.process_chain(listener, now, results, false);
        }
    }

    fn change_listeners(&mut self) -> &HashMap<RecordId, Vec<(RecordId, String)>> {
        if self.change_listeners.is_none() {
            let mut index: HashMap<RecordId, Vec<(RecordId, String)>> = HashMap::new();
            for (i, record) in self.records.iter().enumerate() {
                for (_, link) in record.input_links() {
                    let passive_only = link.process_passive;
                    if !link.process_on_change || (passive_only && record.scan() != 0) {
                        continue;
                    }
                    if let Some(&target) = self.names.get(&link.record) {
                        index.entry(target).or_default().push((RecordId(i), link.field.clone()));
                    }
                }
            }
            self.change_listeners = Some(index);
        }
        self.change_listeners.get_or_insert_default()
    }

    /// Posts the named event as `post_event`/`postEvent` do: every record with
    /// `SCAN` Event and that `EVNT` processes. Returns the changes.
    pub fn post_event(&mut self, event: &str, now: SystemTime) -> Vec<(RecordId, Changes)> {
        let mut results = Vec::new();
        let scanned: Vec<RecordId> = self.ids().filter(|&r| self.records[r.0].scans_on_event(event)).collect();
        // Each record an event scans processes in its own chain, as base queues them.
        for target in scanned {
            self.begin_chain(false);
            self.process_chain(target, now, &mut results, false);
        }
        results
    }

    /// `SDIS`, when it names a record, sets `DISA` before processing (as dbProcess reads it).
    fn read_disable_link(&mut self, id: RecordId) {
        let Some(text) = self.records[id.0].link_text("SDIS") else { return };
        let Ok(CalcInput::Link(link)) = Link::parse_input(text) else { return };
        let value = self.find(&link.record).and_then(|t| self.records[t.0].get_field(&link.field));
        if let Some(v) = value.and_then(|v| v.as_f64()) {
            let _ = self.records[id.0].put_without_processing("DISA", FieldValue::Int(v as i64));
        }
    }

    /// The record a link field of record `id` names, if it exists.
    fn link_target(&self, id: RecordId, link_field: &str) -> Option<RecordId> {
        let text = self.records[id.0].get_field(link_field)?.to_text();
        match Link::parse_input(&text) {
            Ok(CalcInput::Link(link)) => self.find(&link.record),
            _ => None,
        }
    }

    /// `dbPutLink`: writes `write.value` to the target of an output link of
    /// record `id`; a `PP` link processes a passive target.
    fn write_link(
        &mut self,
        id: RecordId,
        write: &OutputWrite,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
    ) {
        let Some(text) = self.records[id.0].get_field(write.link_field).map(|v| v.to_text()) else { return };
        let Ok(CalcInput::Link(link)) = Link::parse_input(&text) else { return };
        // A target that is not in this database would be a CA link in base, which
        // drops the write while disconnected.
        let Some(target) = self.find(&link.record).filter(|&t| self.records[t.0].field_type(&link.field).is_some())
        else {
            return;
        };
        let mut value = write.value.clone();
        // dbPut writes at most the elements the target holds.
        if let FieldValue::Array(array) = &value {
            let max = self.records[target.0].element_count(&link.field).unwrap_or(1) as usize;
            if array.len() > max {
                value = FieldValue::Array(record::truncate_value(array, max));
            }
        }
        let Ok((changes, process)) = self.records[target.0].put_without_processing(&link.field, value) else {
            return;
        };
        let passive = self.records[target.0].scan() == 0;
        if (link.process_passive && passive) || (process && link.field == "PROC") {
            let slot = results.len();
            self.process_chain(target, now, results, true);
            if let Some((_, first)) = results.get_mut(slot) {
                first.merge(changes);
            }
        } else {
            results.push((target, changes));
            self.process_listeners(target, results.len() - 1, now, results);
        }
    }

    /// Reads the input links of record `id` for this step (`dbGetLink`), its time
    /// stamp, and runs its processing (`resuming`: the continuation after a delay).
    fn run_record(
        &mut self,
        id: RecordId,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
        resuming: bool,
    ) -> (Changes, Follow) {
        let mut raised = Vec::new();
        let simulation = if resuming { None } else { self.simulation(id, now, results, &mut raised) };
        let mut links = self.records[id.0].links_to_read(resuming);
        if simulation == Some(Simulation::Input) {
            // The value comes from SIOL instead of INP, taken by the record as INP's.
            let mut redirected: Vec<_> = links.iter().filter(|(field, _)| *field != "INP").cloned().collect();
            redirected.extend(self.records[id.0].links_of_fields(&["SIOL"]));
            links = redirected.into();
        }
        let mut inputs = Vec::with_capacity(links.len());
        for (link_field, link) in links.iter() {
            if let Some(value) = self.read_link(link, now, results, &mut raised) {
                inputs.push((*link_field, value));
            }
        }
        if simulation == Some(Simulation::Input) {
            let record = &mut self.records[id.0];
            let value = match inputs.iter().position(|(f, _)| *f == "SIOL") {
                Some(i) => {
                    let value = inputs.remove(i).1;
                    record.keep_simulated_value(&value);
                    Some(value)
                }
                // A constant SIOL loaded SVAL at init; reading it changes nothing.
                None => record.get_field("SVAL"),
            };
            if let Some(value) = value {
                inputs.push(("INP", value));
            }
        }
        let stamp = self.time_stamp(id, now, results, &mut raised);
        let record = &mut self.records[id.0];
        for (stat, sevr) in raised {
            record.raise_alarm(stat, sevr);
        }
        let (changes, mut follow) = if resuming {
            record.resume_with(&inputs, now, stamp)
        } else {
            record.process_stamped(&inputs, now, stamp)
        };
        if simulation == Some(Simulation::Output) {
            // Written to SIOL instead of OUT.
            for write in &mut follow.outputs {
                if write.link_field == "OUT" {
                    write.link_field = "SIOL";
                }
            }
        }
        (changes, follow)
    }

    /// Simulation mode as `recGblGetSimm` and the record's readValue/writeValue see it:
    /// `SIML`, when a database link, read into `SIMM`; when `SIMM` is set, the `SIMM`
    /// alarm at `SIMS` severity and which way the value is redirected. `None`: the
    /// record's type has no simulation mode, or it is off.
    fn simulation(
        &mut self,
        id: RecordId,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
        raised: &mut Vec<(u16, u16)>,
    ) -> Option<Simulation> {
        let record = &self.records[id.0];
        let siol = record.record_type().field("SIOL")?;
        if let Some((_, link)) = record.links_of_fields(&["SIML"]).pop() {
            // A failed read leaves SIMM (and raises LINK, as dbTryGetLink's caller does).
            if let Some(mode) = self.read_link(&link, now, results, raised).and_then(|v| v.as_f64()) {
                self.records[id.0].set_simulation_mode(mode as u16);
            }
        }
        let record = &self.records[id.0];
        let mode = record.get_field("SIMM").and_then(|v| v.as_f64()).unwrap_or(0.0);
        if mode == 0.0 {
            return None;
        }
        let sims = record.get_field("SIMS").and_then(|v| v.as_f64()).unwrap_or(0.0) as u16;
        raised.push((alarm_status::SIMM, sims));
        Some(if siol.field_type == FieldType::OutLink { Simulation::Output } else { Simulation::Input })
    }

    /// `dbGetLink` of a database link: processes a passive target of a `PP` link
    /// first; the value read, and into `raised` the alarm the link's severity mode
    /// passes on (LINK/INVALID when the target does not exist).
    fn read_link(
        &mut self,
        link: &Link,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
        raised: &mut Vec<(u16, u16)>,
    ) -> Option<FieldValue> {
        let target = self.find(&link.record).filter(|&t| self.records[t.0].field_type(&link.field).is_some());
        let Some(target) = target else {
            raised.push((alarm_status::LINK, severity::INVALID));
            return None;
        };
        if link.process_passive && self.records[target.0].scan() == 0 {
            self.process_chain(target, now, results, true);
        }
        let source = &self.records[target.0];
        let (stat, sevr) = (source.alarm().stat, source.alarm().sevr);
        match link.severity_mode {
            SeverityMode::Nms => {}
            SeverityMode::Ms => raised.push((alarm_status::LINK, sevr)),
            SeverityMode::Mss => raised.push((stat, sevr)),
            SeverityMode::Msi if sevr == severity::INVALID => raised.push((alarm_status::LINK, sevr)),
            SeverityMode::Msi => {}
        }
        source.get_field(&link.field)
    }

    /// The time stamp of this processing of record `id`, as `recGblGetTimeStamp`
    /// gives it; `None`: the record keeps its time stamp.
    ///
    /// * `TSEL` naming a `.TIME` field: the time stamp of that record (none if it
    ///   does not exist: base reports it and leaves the time).
    /// * `TSEL` naming another field: its value is read into `TSE` first.
    /// * `TSE` 0: `now`. `TSE` -2 (`epicsTimeEventDeviceTime`): the time of the
    ///   record an input's soft device support reads (see
    ///   [`RecordSupport::device_time_link`]), when `TSEL` is constant; else kept.
    /// * Any other `TSE` (-1, event numbers): kept. A soft IOC has no event time
    ///   provider, so base's `epicsTimeGetEvent` fails and leaves the time as it was
    ///   (probed: base 7.0.10's IOC keeps the time at the EPICS epoch).
    fn time_stamp(
        &mut self,
        id: RecordId,
        now: SystemTime,
        results: &mut Vec<(RecordId, Changes)>,
        raised: &mut Vec<(u16, u16)>,
    ) -> Option<EpicsTime> {
        let tsel = self.records[id.0].link_text("TSEL").map(Link::parse_input);
        let tsel_is_link = matches!(tsel, Some(Ok(CalcInput::Link(_))));
        if let Some(Ok(CalcInput::Link(link))) = tsel {
            if link.field == "TIME" {
                return match self.find(&link.record) {
                    Some(source) => Some(self.records[source.0].time()),
                    None => {
                        tracing::debug!(record = self.records[id.0].name(), "TSEL names no record: time stamp kept");
                        None
                    }
                };
            }
            if let Some(event) = self.read_link(&link, now, results, raised).and_then(|v| v.as_f64()) {
                self.records[id.0].set_time_stamp_event(event);
            }
        }
        const CURRENT_TIME: i64 = 0;
        const DEVICE_TIME: i64 = -2;
        match self.records[id.0].time_stamp_event() {
            CURRENT_TIME => Some(EpicsTime::from_system_time(now).unwrap_or(EpicsTime::EPOCH)),
            DEVICE_TIME if !tsel_is_link => {
                let record = &self.records[id.0];
                let device_link = record.support().device_time_link()?;
                let Ok(CalcInput::Link(link)) = Link::parse_input(record.link_text(device_link)?) else { return None };
                let source =
                    self.find(&link.record).filter(|&t| self.records[t.0].field_type(&link.field).is_some())?;
                Some(self.records[source.0].time())
            }
            event => {
                tracing::debug!(
                    record = self.records[id.0].name(),
                    event,
                    "no event time in a soft IOC: time stamp kept"
                );
                None
            }
        }
    }

    /// Writes `field` of record `id` like a CA put; when that processes the
    /// record, calc links are read and forward links followed as in
    /// [`Database::process`].
    pub fn put_field(
        &mut self,
        id: RecordId,
        field: &str,
        value: FieldValue,
        now: SystemTime,
    ) -> Result<Vec<(RecordId, Changes)>, PutError> {
        if self.records[id.0].field_type(field).is_some_and(|t| t == FieldType::InLink) || field == "SCAN" {
            self.change_listeners = None;
        }
        let (first, process) = self.records[id.0].put_without_processing(field, value)?;
        if field == "SDEL" {
            self.arm_watchdog(id, now);
        }
        let active = self.records[id.0].active();
        if !process || active {
            if process {
                // dbPutField to an active record: it processes again once done (RPRO).
                self.records[id.0].request_reprocessing();
            }
            self.begin_chain(true);
            let mut results = vec![(id, first)];
            self.process_listeners(id, 0, now, &mut results);
            return Ok(results);
        }
        self.begin_chain(true);
        let mut results = Vec::new();
        self.process_chain(id, now, &mut results, false);
        if let Some((_, changes)) = results.first_mut() {
            let mut merged = first;
            merged.merge(std::mem::take(changes));
            *changes = merged;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(text: &str) -> Database {
        let defs = parse_db(text, "t.db", &Macros::new()).unwrap();
        Database::from_defs(defs, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)).unwrap()
    }

    #[test]
    fn channels_resolve_by_name_alias_and_field() {
        let db = db("record(ai, a) { alias(b) field(SCAN, \"2 second\") field(PHAS, 1) }\n\
                     record(bo, c) { field(SCAN, \"2 second\") }");
        let a = db.find("a").unwrap();
        assert_eq!(db.resolve("b.EGU"), Some((a, "EGU")));
        assert_eq!(db.resolve("a"), Some((a, "VAL")));
        assert_eq!(db.resolve("a.NOPE"), None);
        assert_eq!(db.resolve("zz"), None);
        let periodic = db.periodic();
        assert_eq!(periodic.len(), 1);
        assert_eq!(periodic[0].1, vec![db.find("c").unwrap(), a], "PHAS order");
        let mut other = Database::new();
        other.add(Record::new(RecordType::named("ai"), "a")).unwrap();
        assert!(other.add(Record::new(RecordType::named("ao"), "a")).is_err());
    }

    #[test]
    fn calc_links_propagate_severity() {
        let mut db = db("record(ai, src) { field(HIHI, 1) field(HHSV, MAJOR) }\n\
                         record(calc, ms) { field(CALC, A) field(INPA, \"src MS\") }\n\
                         record(calc, msi) { field(CALC, A) field(INPA, \"src MSI\") }\n\
                         record(calc, broken) { field(CALC, A) field(INPA, \"nowhere\") }");
        let now = SystemTime::now();
        let src = db.find("src").unwrap();
        db.put_field(src, "VAL", FieldValue::Double(5.0), now).unwrap();
        let ms = db.find("ms").unwrap();
        db.process(ms, now);
        let r = db.record(ms);
        assert_eq!(r.get_field("VAL"), Some(FieldValue::Double(5.0)));
        assert_eq!((r.alarm().stat, r.alarm().sevr), (alarm_status::LINK, severity::MAJOR));
        let msi = db.find("msi").unwrap();
        db.process(msi, now);
        assert_eq!(db.record(msi).alarm().sevr, severity::NO_ALARM);
        let broken = db.find("broken").unwrap();
        db.process(broken, now);
        assert_eq!(db.record(broken).alarm().sevr, severity::INVALID);
    }

    #[test]
    fn cp_links_process_on_change() {
        let mut db = db("record(ao, src) { }\n\
                         record(calc, cp) { field(CALC, \"A*2\") field(INPA, \"src CP\") }\n\
                         record(calc, cpp) { field(SCAN, \"1 second\") field(CALC, \"A\") field(INPA, \"src CPP\") }\n\
                         record(calc, chained) { field(CALC, \"A+1\") field(INPA, \"cp CP\") }\n\
                         record(ao, npp) { field(OUT, \"src\") }");
        let now = SystemTime::now();
        let src = db.find("src").unwrap();
        db.put_field(src, "VAL", FieldValue::Double(3.0), now).unwrap();
        let val = |db: &Database, name: &str| db.record(db.find(name).unwrap()).get_field("VAL");
        assert_eq!(val(&db, "cp"), Some(FieldValue::Double(6.0)));
        assert_eq!(val(&db, "chained"), Some(FieldValue::Double(7.0)), "cp's change reached chained");
        assert_eq!(val(&db, "cpp"), Some(FieldValue::Double(0.0)), "CPP: only a passive record processes");
        let npp = db.find("npp").unwrap();
        db.put_field(npp, "VAL", FieldValue::Double(5.0), now).unwrap();
        // dbPut posts no monitor for a pp(TRUE) VAL written without processing: no CP either.
        assert_eq!(val(&db, "cp"), Some(FieldValue::Double(6.0)));
    }

    #[test]
    fn disabled_records_do_not_process() {
        let mut db = db("record(bo, gate) { }\n\
                         record(calc, c) { field(CALC, \"VAL+1\") field(SDIS, \"gate\") field(DISS, MINOR) field(FLNK, d) }\n\
                         record(calc, d) { field(CALC, \"VAL+1\") }");
        let now = SystemTime::now();
        let (gate, c) = (db.find("gate").unwrap(), db.find("c").unwrap());
        db.process(c, now);
        assert_eq!(db.record(c).get_field("VAL"), Some(FieldValue::Double(1.0)));
        db.put_field(gate, "VAL", FieldValue::Enum(1), now).unwrap();
        db.process(c, now);
        let r = db.record(c);
        assert_eq!(r.get_field("VAL"), Some(FieldValue::Double(1.0)), "DISA 1 = DISV: not processed");
        assert_eq!((r.alarm().stat, r.alarm().sevr), (alarm_status::DISABLE, severity::MINOR));
        assert_eq!(db.record(db.find("d").unwrap()).get_field("VAL"), Some(FieldValue::Double(1.0)), "no FLNK");
    }

    #[test]
    fn forward_link_loops_stop() {
        let mut db = db("record(ai, a) { field(FLNK, b) }\nrecord(ai, b) { field(FLNK, a) }");
        let a = db.find("a").unwrap();
        assert_eq!(db.process(a, SystemTime::now()).len(), 2);
        // The next scan is a new chain: both process again.
        assert_eq!(db.process(a, SystemTime::now()).len(), 2);
    }

    #[test]
    fn long_flnk_and_cp_chains_run_to_their_end() {
        // Base has no depth limit, only PACT: 200 records each way.
        let mut text = String::from("record(calc, f0) { field(CALC, \"VAL+1\") field(FLNK, f1) }\n");
        text.push_str("record(calc, c0) { field(CALC, \"VAL+1\") }\n");
        for k in 1..200 {
            let next = if k < 199 { format!(" field(FLNK, f{})", k + 1) } else { String::new() };
            text.push_str(&format!("record(calc, f{k}) {{ field(INPA, f{}) field(CALC, \"A+1\"){next} }}\n", k - 1));
            text.push_str(&format!("record(calc, c{k}) {{ field(INPA, \"c{} CP\") field(CALC, \"A+1\") }}\n", k - 1));
        }
        let mut db = db(&text);
        let now = SystemTime::now();
        for head in ["f0", "c0"] {
            let id = db.find(head).unwrap();
            assert_eq!(db.process(id, now).len(), 200, "{head}'s chain");
            assert_eq!(db.process(id, now).len(), 200, "{head}'s chain, again");
        }
        let val = |db: &Database, name: &str| db.record(db.find(name).unwrap()).get_field("VAL");
        assert_eq!(val(&db, "f199"), Some(FieldValue::Double(201.0)));
        assert_eq!(val(&db, "c199"), Some(FieldValue::Double(201.0)));
    }

    #[test]
    fn a_record_written_through_a_link_still_processes_later_in_the_chain() {
        // `w` writes t.A without processing it; its FLNK then processes t, which must
        // not count as already processed (PACT is about processing, not changes).
        let mut db = db("record(ao, w) { field(VAL, \"4\") field(OUT, \"t.A\") field(FLNK, t) }\n\
                         record(calc, t) { field(CALC, \"A*10\") }");
        let w = db.find("w").unwrap();
        db.process(w, SystemTime::now());
        assert_eq!(db.record(db.find("t").unwrap()).get_field("VAL"), Some(FieldValue::Double(40.0)));
    }

    #[test]
    fn time_stamps_follow_tse_and_tsel_as_in_a_soft_ioc() {
        use rec::testing::{at, db as load, number, process_at, stamp};
        let mut db = load(
            "record(ao, src) { field(VAL, 1) }\n\
             record(ao, event) { field(VAL, -2) }\n\
             record(ai, now) { field(INP, src) }\n\
             record(ai, best) { field(INP, src) field(TSE, -1) }\n\
             record(ai, numbered) { field(INP, src) field(TSE, 5) }\n\
             record(ai, device) { field(INP, src) field(TSE, -2) }\n\
             record(ai, device_const) { field(INP, 3) field(TSE, -2) }\n\
             record(calc, no_device) { field(CALC, 1) field(TSE, -2) }\n\
             record(ai, tsel_time) { field(INP, src) field(TSEL, \"src.TIME\") }\n\
             record(ai, tsel_value) { field(INP, src) field(TSEL, event) }\n\
             record(ai, tsel_missing_time) { field(INP, src) field(TSEL, \"nope.TIME\") }\n\
             record(ai, tsel_missing) { field(INP, src) field(TSEL, nope) }",
        );
        let epoch = stamp(&db, "now");
        process_at(&mut db, "src", at(1.0));
        for name in ["now", "best", "numbered", "device", "device_const", "no_device", "tsel_time"] {
            process_at(&mut db, name, at(2.0));
        }
        for name in ["tsel_value", "tsel_missing_time", "tsel_missing"] {
            process_at(&mut db, name, at(2.0));
        }
        assert_eq!(stamp(&db, "now"), 2.0, "TSE 0: the processing time");
        assert_eq!(stamp(&db, "best"), epoch, "TSE -1: no event time provider, time kept");
        assert_eq!(stamp(&db, "numbered"), epoch, "TSE 5: likewise");
        assert_eq!(stamp(&db, "device"), 1.0, "TSE -2: soft device support takes INP's record's time");
        assert_eq!(stamp(&db, "device_const"), epoch, "TSE -2 with a constant INP: kept");
        assert_eq!(stamp(&db, "no_device"), epoch, "TSE -2 without device support: kept");
        assert_eq!(stamp(&db, "tsel_time"), 1.0, "TSEL .TIME: that record's time");
        assert_eq!(number(&db, "tsel_value.TSE"), -2.0, "TSEL to a value: read into TSE");
        assert_eq!(stamp(&db, "tsel_value"), epoch, "TSE -2 from TSEL: device time not taken (TSEL not constant)");
        assert_eq!(stamp(&db, "tsel_missing_time"), epoch);
        let missing = db.record(db.find("tsel_missing").unwrap());
        assert_eq!((missing.alarm().stat, missing.alarm().sevr), (alarm_status::LINK, severity::INVALID));
        assert_eq!(stamp(&db, "tsel_missing"), 2.0, "TSE stays 0: the processing time");
    }

    #[test]
    fn deadlines_of_the_same_time_run_in_request_order() {
        use rec::testing::{at, db as load, number, process_at};
        let mut db = load(
            "record(ao, out) { }\n\
             record(calcout, first) { field(CALC, 1) field(ODLY, 1) field(OUT, out) }\n\
             record(calcout, second) { field(CALC, 2) field(ODLY, 1) field(OUT, out) }",
        );
        process_at(&mut db, "first", at(0.0));
        process_at(&mut db, "second", at(0.0));
        db.run_due(at(5.0));
        assert_eq!(number(&db, "out"), 2.0, "second's output came last");
        assert_eq!(db.next_deadline(), None);
    }
}
