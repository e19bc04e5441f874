//! Channel names as EPICS base's IOC takes them: `REC.FIELD`, long strings `REC.FIELD$`,
//! and server-side channel filters — `REC.FIELD{"arr":{…},"dbnd":{…},"ts":{},"sync":{…}}`, the
//! `.{…}` shorthand for VAL, and `REC.[s:e]` / `[s:i:e]` / `[i]` for `arr` — with base's
//! relaxed JSON (bare keys). Gets and monitors go through the filters; puts write the
//! whole field, as base does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::backend::{MonitorGate, PvBackend, Status};
use super::db::record::truncate_value;
use super::states::NamedStates;
use crate::proto::{DbrData, DbrType, EpicsTime, Metadata, Value};

/// A channel name taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    /// `REC` or `REC.FIELD` (`REC.` with nothing after names VAL).
    pub base: String,
    /// `$`: a string or link field served as a char array.
    pub long_string: bool,
    /// Filters in the order given.
    pub filters: Vec<Filter>,
}

/// One server-side filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `arr`: elements `s..=e` every `i` (negative indices count from the end).
    Arr {
        /// First element.
        start: i64,
        /// Last element.
        end: i64,
        /// Step (0 or less: 1).
        incr: i64,
    },
    /// `dbnd`: a monitor update only when the value moved more than the deadband since
    /// the last one sent (`rel`: percent of that value).
    Dbnd {
        /// Percent of the last value sent, not an absolute amount.
        relative: bool,
        /// The deadband.
        amount: f64,
    },
    /// `ts`: the time of the read or update, not the record's.
    Ts,
    /// `sync`: monitor updates passed, dropped or replaced by the last one held back,
    /// as the named state (iocsh's `dbStateSet`/`dbStateClear`) stands at each update.
    Sync {
        /// How updates follow the state.
        mode: SyncMode,
        /// The state's name (it must exist when the channel is made).
        state: String,
    },
}

/// The `sync` filter's modes, as base names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// The last update before the state went set.
    Before,
    /// The first update after the state went set.
    First,
    /// The last update before the state went clear.
    Last,
    /// The first update after the state went clear.
    After,
    /// Every update while the state is set.
    While,
    /// Every update while the state is clear.
    Unless,
}

impl SyncMode {
    const ALL: [(&'static str, SyncMode); 6] = [
        ("before", SyncMode::Before),
        ("first", SyncMode::First),
        ("last", SyncMode::Last),
        ("after", SyncMode::After),
        ("while", SyncMode::While),
        ("unless", SyncMode::Unless),
    ];

    fn named(name: &str) -> Option<SyncMode> {
        SyncMode::ALL.iter().find(|(n, _)| *n == name).map(|&(_, m)| m)
    }
}

impl ChannelSpec {
    /// `None` for a name base would not resolve: a bad filter, an unknown filter, `$`
    /// without a field.
    pub fn parse(name: &str) -> Option<ChannelSpec> {
        let Some(dot) = name.find('.') else {
            return Some(ChannelSpec { base: name.to_owned(), long_string: false, filters: Vec::new() });
        };
        let rest = &name[dot + 1..];
        let field_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        let field = if field_len == 0 { "VAL" } else { &rest[..field_len] };
        let mut tail = &rest[field_len..];
        let long_string = tail.starts_with('$');
        if long_string {
            tail = &tail[1..];
        }
        let mut filters = Vec::new();
        if tail.starts_with('[') {
            let close = tail.find(']')?;
            filters.push(parse_brackets(&tail[1..close])?);
            tail = &tail[close + 1..];
        }
        if !tail.is_empty() {
            if !tail.starts_with('{') {
                return None;
            }
            filters.extend(parse_filter_json(tail)?);
        }
        // Nothing after the dot but filters: `REC.{…}` is VAL's.
        Some(ChannelSpec { base: format!("{}.{field}", &name[..dot]), long_string, filters })
    }
}

/// `s:e`, `s:i:e`, `i`, with either end left out (`[:3]`, `[-2:]`).
fn parse_brackets(text: &str) -> Option<Filter> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    let num = |s: &str, default: i64| if s.is_empty() { Some(default) } else { s.parse().ok() };
    let (start, incr, end) = match parts.as_slice() {
        [one] => {
            let i = num(one, 0)?;
            (i, 1, i)
        }
        [s, e] => (num(s, 0)?, 1, num(e, -1)?),
        [s, i, e] => (num(s, 0)?, num(i, 1)?, num(e, -1)?),
        _ => return None,
    };
    Some(Filter::Arr { start, end, incr })
}

/// The `{…}` part: one key per filter, base's JSON with bare keys allowed.
fn parse_filter_json(text: &str) -> Option<Vec<Filter>> {
    let value = super::db::relaxed_json::parse(text)?;
    let object = value.as_object()?;
    let mut filters = Vec::new();
    // serde_json's map keeps keys sorted; base applies them in the order written.
    let mut keys: Vec<(&String, usize)> =
        object.keys().map(|k| (k, text.find(k.as_str()).unwrap_or(usize::MAX))).collect();
    keys.sort_by_key(|&(_, at)| at);
    for (key, _) in keys {
        let opts = object.get(key)?.as_object()?;
        let number = |k: &str| opts.get(k).and_then(serde_json::Value::as_f64);
        filters.push(match key.as_str() {
            "arr" => {
                let int = |k: &str, default: i64| match opts.get(k) {
                    None => Some(default),
                    Some(v) => v.as_i64(),
                };
                Filter::Arr { start: int("s", 0)?, end: int("e", -1)?, incr: int("i", 1)? }
            }
            "dbnd" => {
                if let Some(a) = number("abs") {
                    Filter::Dbnd { relative: false, amount: a }
                } else if let Some(r) = number("rel") {
                    Filter::Dbnd { relative: true, amount: r }
                } else {
                    let mode = opts.get("m").and_then(serde_json::Value::as_str).unwrap_or("abs");
                    let relative = match mode {
                        "abs" => false,
                        "rel" => true,
                        _ => return None,
                    };
                    Filter::Dbnd { relative, amount: number("d").unwrap_or(0.0) }
                }
            }
            "ts" => Filter::Ts,
            "sync" => parse_sync(opts)?,
            _ => return None,
        });
    }
    Some(filters)
}

/// `sync`'s options: `{m: "while", s: "name"}`, or a mode as the key of the state's
/// name (`{while: "name"}`); a mode is required.
fn parse_sync(opts: &serde_json::Map<String, serde_json::Value>) -> Option<Filter> {
    let (mut mode, mut state) = (None, None);
    for (key, value) in opts {
        let text = value.as_str()?;
        match key.as_str() {
            "m" => mode = Some(SyncMode::named(text)?),
            "s" => state = Some(text.to_owned()),
            tag => {
                mode = Some(SyncMode::named(tag)?);
                state = Some(text.to_owned());
            }
        }
    }
    Some(Filter::Sync { mode: mode?, state: state.unwrap_or_default() })
}

/// A field channel with filters: reads are sliced and restamped, monitors gated.
pub struct FilteredField {
    inner: Arc<dyn PvBackend>,
    filters: Vec<Filter>,
    states: Arc<NamedStates>,
}

impl FilteredField {
    /// `inner` seen through `filters`; `sync` filters read their state from `states`.
    pub fn new(inner: Arc<dyn PvBackend>, filters: Vec<Filter>, states: Arc<NamedStates>) -> FilteredField {
        FilteredField { inner, filters, states }
    }
}

/// `(start, incr, count)` of `arr` over `len` elements, indices as base wraps them.
fn arr_window(start: i64, end: i64, incr: i64, len: usize) -> (usize, usize, usize) {
    let len_i = len as i64;
    let wrap = |i: i64| if i < 0 { (i + len_i).max(0) } else { i };
    let (s, e) = (wrap(start), wrap(end).min(len_i - 1));
    let incr = incr.max(1);
    if len == 0 || s > e || s >= len_i {
        return (0, 1, 0);
    }
    let count = ((e - s) / incr + 1) as usize;
    (s as usize, incr as usize, count)
}

fn select<T: Clone>(v: &[T], start: usize, incr: usize, count: usize) -> Vec<T> {
    v.iter().skip(start).step_by(incr).take(count).cloned().collect()
}

fn slice_value(value: &Value, start: i64, end: i64, incr: i64) -> Value {
    let (s, i, n) = arr_window(start, end, incr, value.len());
    match value {
        Value::String(v) => Value::String(select(v, s, i, n)),
        Value::Short(v) => Value::Short(select(v, s, i, n)),
        Value::Float(v) => Value::Float(select(v, s, i, n)),
        Value::Enum(v) => Value::Enum(select(v, s, i, n)),
        Value::Char(v) => Value::Char(select(v, s, i, n)),
        Value::Long(v) => Value::Long(select(v, s, i, n)),
        Value::Double(v) => Value::Double(select(v, s, i, n)),
    }
}

impl PvBackend for FilteredField {
    fn native_type(&self) -> DbrType {
        self.inner.native_type()
    }

    fn element_count(&self) -> u32 {
        let mut n = self.inner.element_count() as usize;
        for f in &self.filters {
            // On a scalar base's arr changes nothing.
            if let Filter::Arr { start, end, incr } = *f
                && n > 1
            {
                n = arr_window(start, end, incr, n).2;
            }
        }
        n as u32
    }

    fn read(&self, data_type: DbrType, count: u32) -> Result<DbrData, Status> {
        let mut data = self.inner.read(data_type, 0)?;
        let array = self.inner.element_count() > 1;
        for f in &self.filters {
            match *f {
                Filter::Arr { start, end, incr } if array => data.value = slice_value(&data.value, start, end, incr),
                Filter::Ts => {
                    if let Metadata::Time { stamp, .. } = &mut data.metadata
                        && let Ok(now) = EpicsTime::from_system_time(SystemTime::now())
                    {
                        *stamp = now;
                    }
                }
                _ => {}
            }
        }
        if count > 0 {
            data.value = truncate_value(&data.value, count as usize);
        }
        Ok(data)
    }

    fn write(&self, data_type: DbrType, data: &DbrData) -> Result<u16, Status> {
        self.inner.write(data_type, data)
    }

    fn writable(&self) -> bool {
        self.inner.writable()
    }

    fn access_group(&self) -> Option<String> {
        self.inner.access_group()
    }

    fn monitor_gate(&self) -> Option<Box<dyn MonitorGate>> {
        let stages: Vec<GateStage> = self
            .filters
            .iter()
            .filter_map(|f| match f {
                Filter::Dbnd { relative, amount } => Some(GateStage::Deadband(Deadband::new(*relative, *amount))),
                Filter::Sync { mode, state } => Some(GateStage::Sync(SyncGate {
                    mode: *mode,
                    // Checked when the channel was made; a state that is gone reads clear,
                    // as base's dbStateGet of no state.
                    state: self.states.find(state).unwrap_or_default(),
                    held: None,
                    was_set: false,
                })),
                _ => None,
            })
            .collect();
        (!stages.is_empty()).then(|| Box::new(GateChain(stages)) as Box<dyn MonitorGate>)
    }
}

/// base's `dbnd` on one subscription: the first update passes; later ones when the
/// scalar value moved more than the deadband from the last one sent. Arrays and strings
/// always pass.
#[derive(Debug, Clone)]
struct Deadband {
    relative: bool,
    amount: f64,
    hysteresis: f64,
    last: f64,
}

impl Deadband {
    fn new(relative: bool, amount: f64) -> Deadband {
        Deadband { relative, amount, hysteresis: if relative { 0.0 } else { amount }, last: f64::NAN }
    }

    fn admit(&mut self, value: &Value) -> bool {
        let v = match value {
            Value::Short(v) if v.len() == 1 => f64::from(v[0]),
            Value::Float(v) if v.len() == 1 => f64::from(v[0]),
            Value::Enum(v) if v.len() == 1 => f64::from(v[0]),
            Value::Char(v) if v.len() == 1 => f64::from(v[0]),
            Value::Long(v) if v.len() == 1 => f64::from(v[0]),
            Value::Double(v) if v.len() == 1 => v[0],
            _ => return true,
        };
        // As recGblCheckDeadband: NaN on either side always moves.
        if (self.last - v).abs() <= self.hysteresis {
            return false;
        }
        self.last = v;
        if self.relative {
            self.hysteresis = v * self.amount / 100.0;
        }
        true
    }
}

/// base's `sync` on one subscription: each update is passed, dropped, or exchanged for
/// the one held back before it, by the state now and the state at the update before.
struct SyncGate {
    mode: SyncMode,
    state: Arc<AtomicBool>,
    /// The update before this one (`before`, `last`).
    held: Option<DbrData>,
    /// The state at the update before this one.
    was_set: bool,
}

impl SyncGate {
    fn pass(&mut self, data: DbrData) -> Option<DbrData> {
        let set = self.state.load(Ordering::Acquire);
        let (went_set, went_clear) = (set && !self.was_set, !set && self.was_set);
        let out = match self.mode {
            SyncMode::While => return set.then_some(data),
            SyncMode::Unless => return (!set).then_some(data),
            SyncMode::First => went_set.then_some(data),
            SyncMode::After => went_clear.then_some(data),
            SyncMode::Before | SyncMode::Last => {
                let edge = if self.mode == SyncMode::Before { went_set } else { went_clear };
                let earlier = self.held.replace(data);
                if edge { earlier } else { None }
            }
        };
        self.was_set = set;
        out
    }
}

enum GateStage {
    Deadband(Deadband),
    Sync(SyncGate),
}

/// A subscription's filters in the order the channel name gives them.
struct GateChain(Vec<GateStage>);

impl MonitorGate for GateChain {
    fn pass(&mut self, mut data: DbrData) -> Option<DbrData> {
        for stage in &mut self.0 {
            data = match stage {
                GateStage::Deadband(d) => d.admit(&data.value).then_some(data)?,
                GateStage::Sync(s) => s.pass(data)?,
            };
        }
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> Option<ChannelSpec> {
        ChannelSpec::parse(name)
    }

    #[test]
    fn names_parse_as_base_reads_them() {
        assert_eq!(spec("AO").unwrap().base, "AO");
        assert!(spec("AO").unwrap().filters.is_empty());
        assert_eq!(spec("AO.EGU$").unwrap(), ChannelSpec { base: "AO.EGU".into(), long_string: true, filters: vec![] });
        assert_eq!(spec("SO.$").unwrap().base, "SO.VAL");
        let arr = |start, end, incr| Filter::Arr { start, end, incr };
        assert_eq!(spec(r#"WF.{"arr":{"s":2,"e":5}}"#).unwrap().filters, [arr(2, 5, 1)]);
        assert_eq!(spec(r#"WF.VAL{arr:{s:1,e:-2,i:3}}"#).unwrap().filters, [arr(1, -2, 3)]);
        assert_eq!(spec("WF.[2:5]").unwrap().filters, [arr(2, 5, 1)]);
        assert_eq!(spec("WF.[1:3:9]").unwrap().filters, [arr(1, 9, 3)]);
        assert_eq!(spec("WF.[4]").unwrap().filters, [arr(4, 4, 1)]);
        assert_eq!(spec("WF.[-2:]").unwrap().filters, [arr(-2, -1, 1)]);
        assert_eq!(spec("WF.[:3]").unwrap().filters, [arr(0, 3, 1)]);
        assert_eq!(spec(r#"WF.[2:5]{"ts":{}}"#).unwrap().filters, [arr(2, 5, 1), Filter::Ts]);
        assert_eq!(
            spec(r#"AO.{"ts":{},"dbnd":{"rel":10}}"#).unwrap().filters,
            [Filter::Ts, Filter::Dbnd { relative: true, amount: 10.0 }]
        );
        assert_eq!(spec("AO.{dbnd:{d:0.5}}").unwrap().filters, [Filter::Dbnd { relative: false, amount: 0.5 }]);
        for bad in
            [r#"AO.{"bogus":{}}"#, r#"AO.{"arr":{"s":2"#, "AO.[1:2:3:4]", "AO.[x]", "AO.VAL junk", r#"AO.{"arr":3}"#]
        {
            assert!(spec(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn arr_windows_wrap_and_clip_as_base() {
        let v = Value::Double((0..10).map(f64::from).collect());
        let got = |s, e, i| match slice_value(&v, s, e, i) {
            Value::Double(d) => d,
            _ => unreachable!(),
        };
        assert_eq!(got(2, 5, 1), [2.0, 3.0, 4.0, 5.0]);
        assert_eq!(got(1, -2, 3), [1.0, 4.0, 7.0]);
        assert_eq!(got(-3, -1, 1), [7.0, 8.0, 9.0]);
        assert_eq!(got(0, -1, 0), (0..10).map(f64::from).collect::<Vec<_>>());
        assert!(got(8, 2, 1).is_empty());
        assert!(got(20, -1, 1).is_empty());
        assert_eq!(got(5, 50, 2), [5.0, 7.0, 9.0]);
    }

    #[test]
    fn deadbands_send_as_base_did_for_the_same_puts() {
        // Sequences and results observed on EPICS base 7's IOC.
        let run = |relative, amount, start: f64, puts: &[f64]| {
            let mut d = Deadband::new(relative, amount);
            std::iter::once(start).chain(puts.iter().copied()).filter(|v| d.admit(&Value::Double(vec![*v]))).collect()
        };
        let abs: Vec<f64> = run(false, 0.5, 1.0, &[1.2, 1.4, 1.6, 1.7, 2.2, 2.0, 1.5]);
        assert_eq!(abs, [1.0, 1.6, 2.2, 1.5]);
        let rel: Vec<f64> = run(true, 10.0, 1.5, &[1.0, 1.05, 1.2, 1.25, 1.4, 2.0, 2.1, 2.3]);
        assert_eq!(rel, [1.5, 1.0, 1.2, 1.4, 2.0, 2.3]);
        let mut d = Deadband::new(false, 1.0);
        assert!(d.admit(&Value::Double(vec![1.0, 2.0])), "arrays pass");
        assert!(d.admit(&Value::Double(vec![1.0])));
        assert!(!d.admit(&Value::Double(vec![1.5])));
    }

    fn update(v: f64) -> DbrData {
        DbrData { metadata: Metadata::None, value: Value::Double(vec![v]) }
    }

    /// What one subscription in `mode` sends for updates 1..=7 with the state toggled
    /// as in tests/ioc_sync_filter.rs (clear; set before 3; clear before 5; set before 7).
    fn sync_run(mode: SyncMode) -> Vec<f64> {
        let state = Arc::new(AtomicBool::new(false));
        let mut gate = SyncGate { mode, state: state.clone(), held: None, was_set: false };
        let mut sent = Vec::new();
        for v in 0..=7 {
            match v {
                3 | 7 => state.store(true, Ordering::Release),
                5 => state.store(false, Ordering::Release),
                _ => {}
            }
            if let Some(d) = gate.pass(update(f64::from(v))) {
                sent.push(d.value.to_f64_vec().unwrap()[0]);
            }
        }
        sent
    }

    #[test]
    fn sync_modes_pass_drop_or_exchange_updates_by_the_state() {
        assert_eq!(sync_run(SyncMode::While), [3.0, 4.0, 7.0]);
        assert_eq!(sync_run(SyncMode::Unless), [0.0, 1.0, 2.0, 5.0, 6.0]);
        assert_eq!(sync_run(SyncMode::First), [3.0, 7.0]);
        assert_eq!(sync_run(SyncMode::Last), [4.0]);
        assert_eq!(sync_run(SyncMode::Before), [2.0, 6.0]);
        assert_eq!(sync_run(SyncMode::After), [5.0]);
    }

    #[test]
    fn sync_options_take_both_spellings_and_need_a_mode() {
        let sync = |mode, state: &str| Some(vec![Filter::Sync { mode, state: state.into() }]);
        assert_eq!(spec(r#"X.{sync:{m:"while",s:"run"}}"#).map(|s| s.filters), sync(SyncMode::While, "run"));
        assert_eq!(spec(r#"X.{"sync":{"before":"gate"}}"#).map(|s| s.filters), sync(SyncMode::Before, "gate"));
        assert_eq!(spec(r#"X.{sync:{s:"run"}}"#), None, "no mode");
        assert_eq!(spec(r#"X.{sync:{m:"sometimes",s:"run"}}"#), None, "no such mode");
    }

    proptest::proptest! {
        /// Channel names come from the network: any text parses or is refused, never panics.
        #[test]
        fn any_channel_name_parses_or_is_refused(name in "\\PC{0,60}", tail in "[.{}\\[\\]:\"a-z0-9,$-]{0,40}") {
            let _ = ChannelSpec::parse(&name);
            let _ = ChannelSpec::parse(&format!("REC{tail}"));
        }
    }
}
