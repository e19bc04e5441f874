//! Aggregator mode: producers (daemons this one connects to), updaters (which of their
//! sets to pull, how often, or by push) and storage policies (which updated sets go to
//! which store), as ldmsd's `prdcr_*`, `updtr_*` and `strgp_*` commands configure them.
//!
//! Every set pulled from a producer is also served again under its own name, as an ldmsd
//! aggregator does, so aggregators stack. A producer that goes away is reconnected every
//! `reconnect` interval; its sets are withdrawn while it is gone and come back with it.
//!
//! `prdcr_subscribe` asks the matching producers to forward messages (MSG_SUB on their
//! connection, again after every reconnect); what they forward lands on the daemon's bus,
//! whose own subscribers get it with one more hop counted.
//!
//! Threads: connection events and update completions arrive as runtime callbacks (worker
//! threads); updater ticks are runtime timers. All of them take the one aggregator lock
//! for bookkeeping only, never across a blocking call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use pvloom_core::{RuntimeHandle, TimerHandle};
use pvloom_ldms::bus::MsgBus;
use pvloom_ldms::client::{DirReply, Set, SetSnapshot, Xprt, XprtConfig, XprtEvent, XprtEventKind};
use pvloom_ldms::request::{DIR_ADD, DIR_DEL, DIR_F_NOTIFY, LOOKUP_BY_INSTANCE, XPRT_PUSH_F_CHANGE};
use pvloom_ldms::server::{SetHandle, SetRegistry};
use pvloom_ldms::set::LocalSet;
use regex::Regex;

use super::{Core, Refusal, errno};
use crate::config::{Cmd, MatchSel, PrdcrType, Push};
use crate::sampler::next_sample_us;
use crate::store_csv::CsvStore;

/// A producer's connection state (`prdcr_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerState {
    /// Added, not started.
    Stopped,
    /// Connecting (or waiting to reconnect).
    Connecting,
    /// Connected; its sets are being pulled.
    Connected,
}

/// One producer as `prdcr_status` reports it.
#[derive(Debug, Clone)]
pub struct ProducerStatus {
    /// Its name.
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// The host as `prdcr_add` gave it.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The reconnect interval, µs.
    pub reconnect_us: u64,
    /// Connection state.
    pub state: ProducerState,
    /// Sets pulled from it now.
    pub sets: Vec<String>,
    /// The schema of each of `sets`, in the same order.
    pub set_schemas: Vec<String>,
    /// Connections made so far (reconnects included).
    pub connects: u64,
    /// The message channels it is asked to forward (`prdcr_subscribe`).
    pub subscriptions: Vec<String>,
}

/// One updater as `updtr_status` reports it.
#[derive(Debug, Clone)]
pub(crate) struct UpdaterStatus {
    pub name: String,
    pub interval_us: u64,
    /// `None` once the updater runs asynchronously (ldmsd reports offset 0, `sync` false).
    pub offset_us: Option<i64>,
    pub push: Push,
    pub auto: bool,
    pub running: bool,
    /// The producers its `updtr_prdcr_add` regexes match now: (name, host, port, state).
    pub producers: Vec<(String, String, u16, ProducerState)>,
}

/// One storage policy as `strgp_status` reports it.
#[derive(Debug, Clone)]
pub(crate) struct StrgpStatus {
    pub name: String,
    /// The store plugin instance it was given.
    pub plugin: String,
    pub container: String,
    pub schema: Option<String>,
    pub regex: Option<String>,
    pub flush_us: u64,
    pub running: bool,
    /// Its `strgp_prdcr_add` regexes, newest first (ldmsd keeps them that way).
    pub producers: Vec<String>,
    pub metrics: Vec<String>,
}

/// One set pulled from a producer, as `prdcr_set_status` reports it.
#[derive(Debug, Clone)]
pub(crate) struct PrdcrSetStatus {
    pub producer: String,
    pub inst: String,
    pub schema: String,
    /// The producer name the set itself carries.
    pub origin: String,
    pub timestamp: (u32, u32),
    pub duration: (u32, u32),
}

/// One `prdcr_subscribe` of one producer.
#[derive(Clone)]
struct MsgSub {
    channel: String,
    is_regex: bool,
    rate: i64,
}

/// ldmsd's guess whether a channel name is a regex: it holds one of `$()*+.:?[\]^{|}`.
fn looks_like_regex(s: &str) -> bool {
    s.chars().any(|c| "$()*+.:?[\\]^{|}".contains(c))
}

struct Mirror {
    remote: Set,
    local: Option<SetHandle>,
    last_gn: Option<u64>,
    pushing: bool,
}

struct Producer {
    host: String,
    port: u16,
    reconnect: Duration,
    state: ProducerState,
    xprt: Option<Xprt>,
    /// Bumped on every connect and stop: callbacks of an older connection are ignored.
    epoch: u64,
    sets: BTreeMap<String, Mirror>,
    /// Sets the directory named that are not pulled yet: a lookup in flight (true) or
    /// one that failed (false), tried again at the next update interval as ldmsd does.
    unresolved: BTreeMap<String, bool>,
    /// The directory request of this connection failed: asked again at the next interval.
    dir_failed: bool,
    connects: u64,
    retry: Option<TimerHandle>,
    msg_subs: Vec<MsgSub>,
}

struct Updater {
    interval_us: u64,
    offset_us: i64,
    /// Scheduled on the wall clock's interval boundaries plus the offset (ldmsd's
    /// synchronous task): always from `updtr_add` (ldmsd takes a missing offset as
    /// 0), until an `updtr_start` gives an interval without an offset.
    sync: bool,
    /// `auto_interval=true` (reported only; pvloom keeps to the updater's interval).
    auto: bool,
    push: Push,
    prdcr_res: Vec<Regex>,
    matches: Vec<(Regex, MatchSel)>,
    timer: Option<TimerHandle>,
    running: bool,
}

struct Strgp {
    plugin: String,
    flush_us: u64,
    container: String,
    schema: Option<String>,
    regex: Option<Regex>,
    prdcr_res: Vec<Regex>,
    metrics: Vec<String>,
    running: bool,
    /// One CSV file per schema (a regex policy can store several).
    stores: HashMap<String, CsvStore>,
}

#[derive(Default)]
struct State {
    producers: BTreeMap<String, Producer>,
    updaters: BTreeMap<String, Updater>,
    strgps: BTreeMap<String, Strgp>,
    /// Store options by store plugin name, copied at strgp_start.
    store_options: HashMap<String, crate::store_csv::CsvOptions>,
}

struct Inner {
    rt: RuntimeHandle,
    registry: Arc<SetRegistry>,
    bus: Arc<MsgBus>,
    state: Mutex<State>,
}

/// The aggregator half of a daemon.
pub(crate) struct Aggregator {
    inner: Arc<Inner>,
}

fn regex(re: &str) -> Result<Regex, String> {
    Regex::new(re).map_err(|e| format!("bad regex {re:?}: {e}"))
}

fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

impl Aggregator {
    pub fn new(rt: RuntimeHandle, registry: Arc<SetRegistry>, bus: Arc<MsgBus>) -> Aggregator {
        Aggregator { inner: Arc::new(Inner { rt, registry, bus, state: Mutex::new(State::default()) }) }
    }

    pub fn status(&self) -> Vec<ProducerStatus> {
        let st = self.inner.state.lock();
        st.producers
            .iter()
            .map(|(name, p)| ProducerStatus {
                name: name.clone(),
                addr: format!("{}:{}", p.host, p.port),
                host: p.host.clone(),
                port: p.port,
                reconnect_us: u64::try_from(p.reconnect.as_micros()).unwrap_or(u64::MAX),
                state: p.state,
                sets: p.sets.keys().cloned().collect(),
                set_schemas: p.sets.values().map(|m| m.remote.schema().to_string()).collect(),
                connects: p.connects,
                subscriptions: p.msg_subs.iter().map(|m| m.channel.clone()).collect(),
            })
            .collect()
    }

    pub fn updaters(&self) -> Vec<UpdaterStatus> {
        let st = self.inner.state.lock();
        st.updaters
            .iter()
            .map(|(name, u)| UpdaterStatus {
                name: name.clone(),
                interval_us: u.interval_us,
                offset_us: u.sync.then_some(u.offset_us),
                push: u.push,
                auto: u.auto,
                running: u.running,
                producers: st
                    .producers
                    .iter()
                    .filter(|(pname, _)| u.prdcr_res.iter().any(|r| r.is_match(pname)))
                    .map(|(pname, p)| (pname.clone(), p.host.clone(), p.port, p.state))
                    .collect(),
            })
            .collect()
    }

    pub fn strgps(&self) -> Vec<StrgpStatus> {
        let st = self.inner.state.lock();
        st.strgps
            .iter()
            .map(|(name, s)| StrgpStatus {
                name: name.clone(),
                plugin: s.plugin.clone(),
                container: s.container.clone(),
                schema: s.schema.clone(),
                regex: s.regex.as_ref().map(|r| r.as_str().to_string()),
                flush_us: s.flush_us,
                running: s.running,
                producers: s.prdcr_res.iter().rev().map(|r| r.as_str().to_string()).collect(),
                metrics: s.metrics.clone(),
            })
            .collect()
    }

    pub fn producer_sets(&self) -> Vec<PrdcrSetStatus> {
        let st = self.inner.state.lock();
        st.producers
            .iter()
            .flat_map(|(pname, p)| {
                p.sets.iter().map(move |(inst, m)| {
                    let (ts, dur) = (m.remote.transaction_timestamp(), m.remote.transaction_duration());
                    PrdcrSetStatus {
                        producer: pname.clone(),
                        inst: inst.clone(),
                        schema: m.remote.schema().to_string(),
                        origin: m.remote.producer(),
                        timestamp: (ts.sec, ts.usec),
                        duration: (dur.sec, dur.usec),
                    }
                })
            })
            .collect()
    }

    pub(super) fn apply(&self, cmd: &Cmd, daemon: &Core) -> Result<(), Refusal> {
        let mut st = self.inner.state.lock();
        let missing = |what: &str, name: &str| Refusal::new(errno::ENOENT, format!("no {what} named {name:?}"));
        let exists = |what: &str, name: &str| Refusal::new(errno::EEXIST, format!("{what} {name:?} exists"));
        match cmd {
            Cmd::PrdcrAdd { name, host, port, xprt, ty, reconnect_us, auth, .. } => {
                super::check_xprt(xprt)?;
                if *ty != PrdcrType::Active {
                    return Err("only type=active producers are supported".into());
                }
                if let Some(a) = auth.as_deref().filter(|a| *a != "none") {
                    return Err(format!("auth {a:?} is not supported (only none)").into());
                }
                if st.producers.contains_key(name) {
                    return Err(exists("producer", name));
                }
                let reconnect = Duration::from_micros(u64::try_from(*reconnect_us).unwrap_or(0).max(100_000));
                st.producers.insert(
                    name.clone(),
                    Producer {
                        host: host.clone(),
                        port: *port,
                        reconnect,
                        state: ProducerState::Stopped,
                        xprt: None,
                        epoch: 0,
                        sets: BTreeMap::new(),
                        connects: 0,
                        retry: None,
                        unresolved: BTreeMap::new(),
                        dir_failed: false,
                        msg_subs: Vec::new(),
                    },
                );
                Ok(())
            }
            Cmd::PrdcrStart { name, reconnect_us } => {
                let p = st.producers.get_mut(name).ok_or_else(|| missing("producer", name))?;
                if let Some(us) = reconnect_us {
                    p.reconnect = Duration::from_micros(u64::try_from(*us).unwrap_or(0).max(100_000));
                }
                drop(st);
                connect(&self.inner, name);
                Ok(())
            }
            Cmd::PrdcrStartRegex { regex: re, .. } => {
                let re = regex(re)?;
                let names: Vec<_> = st.producers.keys().filter(|n| re.is_match(n)).cloned().collect();
                drop(st);
                names.iter().for_each(|n| connect(&self.inner, n));
                Ok(())
            }
            Cmd::PrdcrStop { name } => {
                st.producers.get(name).ok_or_else(|| missing("producer", name))?;
                stop_producer(&mut st, name);
                Ok(())
            }
            Cmd::PrdcrStopRegex { regex: re } => {
                let re = regex(re)?;
                let names: Vec<_> = st.producers.keys().filter(|n| re.is_match(n)).cloned().collect();
                names.iter().for_each(|n| stop_producer(&mut st, n));
                Ok(())
            }
            Cmd::PrdcrDel { name } => {
                st.producers.get(name).ok_or_else(|| missing("producer", name))?;
                stop_producer(&mut st, name);
                st.producers.remove(name);
                Ok(())
            }
            Cmd::PrdcrSubscribe { regex: re, channel, rx_rate } => {
                let re = regex(re)?;
                let sub = MsgSub { channel: channel.clone(), is_regex: looks_like_regex(channel), rate: *rx_rate };
                let mut now = Vec::new();
                if !st.producers.keys().any(|n| re.is_match(n)) {
                    tracing::warn!(regex = re.as_str(), "prdcr_subscribe matches no producer (yet): it does nothing");
                }
                for (pname, p) in st.producers.iter_mut().filter(|(n, _)| re.is_match(n)) {
                    // A channel a producer already forwards stays as it is (ldmsd: EEXIST).
                    if p.msg_subs.iter().any(|m| m.channel == sub.channel) {
                        continue;
                    }
                    p.msg_subs.push(sub.clone());
                    if let Some(x) = p.xprt.as_ref().filter(|_| p.state == ProducerState::Connected) {
                        now.push((pname.clone(), x.clone()));
                    }
                }
                drop(st);
                for (pname, x) in now {
                    msg_subscribe(&pname, &x, &sub);
                }
                Ok(())
            }
            Cmd::PrdcrUnsubscribe { regex: re, channel } => {
                let re = regex(re)?;
                let mut now = Vec::new();
                for (pname, p) in st.producers.iter_mut().filter(|(n, _)| re.is_match(n)) {
                    let Some(i) = p.msg_subs.iter().position(|m| &m.channel == channel) else { continue };
                    let sub = p.msg_subs.remove(i);
                    if let Some(x) = p.xprt.as_ref().filter(|_| p.state == ProducerState::Connected) {
                        now.push((pname.clone(), x.clone(), sub));
                    }
                }
                drop(st);
                for (pname, x, sub) in now {
                    x.msg_unsubscribe_cb(&sub.channel, sub.is_regex, move |_, st| {
                        if st.status != 0 {
                            tracing::warn!(producer = pname, channel = st.pattern, "unsubscribe refused: {}", st.text);
                        }
                    });
                }
                Ok(())
            }
            Cmd::UpdtrAdd { name, interval_us, offset_us, push, auto_interval, .. } => {
                if st.updaters.contains_key(name) {
                    return Err(exists("updater", name));
                }
                let interval_us =
                    interval_us.map_or(Ok(2_000_000), |i| u64::try_from(i).map_err(|_| "bad interval"))?;
                st.updaters.insert(
                    name.clone(),
                    Updater {
                        interval_us: interval_us.max(1),
                        offset_us: offset_us.unwrap_or(0),
                        sync: true,
                        auto: *auto_interval,
                        push: *push,
                        prdcr_res: Vec::new(),
                        matches: Vec::new(),
                        timer: None,
                        running: false,
                    },
                );
                Ok(())
            }
            Cmd::UpdtrPrdcrAdd { name, regex: re } => {
                let re = regex(re)?;
                st.updaters.get_mut(name).ok_or_else(|| missing("updater", name))?.prdcr_res.push(re);
                Ok(())
            }
            Cmd::UpdtrPrdcrDel { name, regex: re } => {
                let u = st.updaters.get_mut(name).ok_or_else(|| missing("updater", name))?;
                u.prdcr_res.retain(|r| r.as_str() != re);
                Ok(())
            }
            Cmd::UpdtrMatchAdd { name, regex: re, sel } => {
                let re = regex(re)?;
                st.updaters.get_mut(name).ok_or_else(|| missing("updater", name))?.matches.push((re, *sel));
                Ok(())
            }
            Cmd::UpdtrStart { name, interval_us, offset_us, auto_interval } => {
                let u = st.updaters.get_mut(name).ok_or_else(|| missing("updater", name))?;
                if let Some(i) = interval_us {
                    u.interval_us = u64::try_from(*i).map_err(|_| "bad interval")?.max(1);
                    // As ldmsd: a new interval without an offset schedules asynchronously.
                    if offset_us.is_none() {
                        u.offset_us = 0;
                        u.sync = false;
                    }
                }
                if let Some(o) = offset_us {
                    u.offset_us = *o;
                    u.sync = true;
                }
                if let Some(a) = auto_interval {
                    u.auto = *a;
                }
                u.running = true;
                let push = u.push;
                drop(st);
                if push == Push::Off {
                    schedule_updater(&self.inner, name);
                } else {
                    // Sets already pulled start pushing now; later ones when looked up.
                    let mut st = self.inner.state.lock();
                    start_pushes(&self.inner, &mut st);
                }
                Ok(())
            }
            Cmd::UpdtrStop { name } | Cmd::UpdtrDel { name } => {
                let u = st.updaters.get_mut(name).ok_or_else(|| missing("updater", name))?;
                u.running = false;
                if let Some(t) = u.timer.take() {
                    t.cancel();
                }
                if matches!(cmd, Cmd::UpdtrDel { .. }) {
                    st.updaters.remove(name);
                }
                Ok(())
            }
            Cmd::StrgpAdd { name, plugin, container, schema, regex: re, flush_us, .. } => {
                if st.strgps.contains_key(name) {
                    return Err(exists("storage policy", name));
                }
                let re = re.as_deref().map(regex).transpose()?;
                st.strgps.insert(
                    name.clone(),
                    Strgp {
                        plugin: plugin.clone(),
                        flush_us: flush_us.map_or(0, |f| u64::try_from(f).unwrap_or(0)),
                        container: container.clone(),
                        schema: schema.clone(),
                        regex: re,
                        prdcr_res: Vec::new(),
                        metrics: Vec::new(),
                        running: false,
                        stores: HashMap::new(),
                    },
                );
                Ok(())
            }
            Cmd::StrgpPrdcrAdd { name, regex: re } => {
                let re = regex(re)?;
                st.strgps.get_mut(name).ok_or_else(|| missing("storage policy", name))?.prdcr_res.push(re);
                Ok(())
            }
            Cmd::StrgpMetricAdd { name, metric } => {
                st.strgps.get_mut(name).ok_or_else(|| missing("storage policy", name))?.metrics.push(metric.clone());
                Ok(())
            }
            Cmd::StrgpStart { name } => {
                let plugin = st.strgps.get(name).ok_or_else(|| missing("storage policy", name))?.plugin.clone();
                let opts = daemon
                    .store_options(&plugin)
                    .ok_or_else(|| format!("store plugin {plugin:?} is not loaded and configured"))?;
                st.store_options.insert(plugin, opts);
                st.strgps.get_mut(name).expect("checked").running = true;
                Ok(())
            }
            Cmd::StrgpStop { name } | Cmd::StrgpDel { name } => {
                let s = st.strgps.get_mut(name).ok_or_else(|| missing("storage policy", name))?;
                s.running = false;
                for store in s.stores.values_mut() {
                    let _ = store.flush();
                }
                if matches!(cmd, Cmd::StrgpDel { .. }) {
                    st.strgps.remove(name);
                }
                Ok(())
            }
            other => Err(Refusal::new(errno::ENOSYS, format!("{other:?} is not supported"))),
        }
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock();
        let names: Vec<_> = st.producers.keys().cloned().collect();
        names.iter().for_each(|n| stop_producer(&mut st, n));
        for u in st.updaters.values_mut() {
            if let Some(t) = u.timer.take() {
                t.cancel();
            }
        }
        for s in st.strgps.values_mut() {
            for store in s.stores.values_mut() {
                let _ = store.flush();
            }
        }
    }
}

/// Ask a connected producer to forward `sub`'s messages (its answer is logged).
fn msg_subscribe(producer: &str, x: &Xprt, sub: &MsgSub) {
    let pname = producer.to_string();
    x.msg_subscribe_cb(&sub.channel, sub.is_regex, sub.rate, move |_, st| {
        if st.status == 0 {
            tracing::debug!(producer = pname, channel = st.pattern, "producer forwards the channel");
        } else {
            tracing::warn!(producer = pname, channel = st.pattern, "message subscription refused: {}", st.text);
        }
    });
}

fn stop_producer(st: &mut State, name: &str) {
    let Some(p) = st.producers.get_mut(name) else { return };
    p.epoch += 1;
    p.state = ProducerState::Stopped;
    if let Some(t) = p.retry.take() {
        t.cancel();
    }
    if let Some(x) = p.xprt.take() {
        x.close();
    }
    for (_, m) in std::mem::take(&mut p.sets) {
        if let Some(h) = m.local {
            h.unpublish();
        }
    }
}

fn connect(inner: &Arc<Inner>, name: &str) {
    let (addr, epoch) = {
        let mut st = inner.state.lock();
        let Some(p) = st.producers.get_mut(name) else { return };
        if p.state != ProducerState::Stopped && p.retry.is_none() && p.xprt.is_some() {
            return;
        }
        p.epoch += 1;
        p.retry = None;
        p.state = ProducerState::Connecting;
        (super::resolve(&p.host, p.port), p.epoch)
    };
    let addr = match addr {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(producer = name, "{e}");
            return retry_later(inner, name, epoch);
        }
    };
    let weak = Arc::downgrade(inner);
    let pname = name.to_string();
    let on_event = move |x: &Xprt, ev: &XprtEvent| {
        if let Some(inner) = weak.upgrade() {
            on_xprt_event(&inner, &pname, epoch, x, ev);
        }
    };
    let mut config = XprtConfig::default();
    // What the producer forwards goes to the daemon's bus; the rail connect message says
    // whether this daemon's service is on (a C ldmsd refuses MSG_SUB from one that is off).
    config.conn.bus = Some(inner.bus.clone());
    config.conn.session.conn_msg.msg_enabled = u32::from(inner.bus.is_enabled());
    let xprt = Xprt::connect_cb(&inner.rt, addr, config, on_event);
    let mut st = inner.state.lock();
    if let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) {
        p.xprt = Some(xprt);
    } else {
        xprt.close();
    }
}

fn retry_later(inner: &Arc<Inner>, name: &str, epoch: u64) {
    let mut st = inner.state.lock();
    let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) else { return };
    p.state = ProducerState::Connecting;
    let weak = Arc::downgrade(inner);
    let pname = name.to_string();
    p.retry = Some(inner.rt.call_later(p.reconnect, move || {
        if let Some(inner) = weak.upgrade() {
            connect(&inner, &pname);
        }
    }));
}

fn on_xprt_event(inner: &Arc<Inner>, name: &str, epoch: u64, x: &Xprt, ev: &XprtEvent) {
    match ev.kind {
        XprtEventKind::Connected => {
            let subs = {
                let mut st = inner.state.lock();
                let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) else { return };
                p.state = ProducerState::Connected;
                p.connects += 1;
                // Set here too: a `prdcr_subscribe` seeing Connected must find the xprt.
                p.xprt.get_or_insert_with(|| x.clone());
                p.msg_subs.clone()
            };
            tracing::info!(producer = name, peer = %x.peer_addr(), "producer connected");
            // As ldmsd: the message subscriptions first, then the directory.
            for sub in &subs {
                msg_subscribe(name, x, sub);
            }
            request_dir(inner, name, epoch, x);
        }
        XprtEventKind::Rejected | XprtEventKind::Error | XprtEventKind::Disconnected => {
            {
                let mut st = inner.state.lock();
                let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) else { return };
                p.xprt = None;
                // Before the sets go, so no one sees a producer without sets still Connected.
                p.state = ProducerState::Connecting;
                p.unresolved.clear();
                p.dir_failed = false;
                for (_, m) in std::mem::take(&mut p.sets) {
                    if let Some(h) = m.local {
                        h.unpublish();
                    }
                }
            }
            tracing::info!(producer = name, reason = ?ev.reason, "producer {:?}; reconnecting", ev.kind);
            retry_later(inner, name, epoch);
        }
        XprtEventKind::SetDelete => {
            if let Some(set) = &ev.set_name {
                forget_set(inner, name, epoch, set);
            }
        }
        _ => {}
    }
}

fn forget_set(inner: &Arc<Inner>, name: &str, epoch: u64, set: &str) {
    let mut st = inner.state.lock();
    let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) else { return };
    p.unresolved.remove(set);
    if let Some(m) = p.sets.remove(set)
        && let Some(h) = m.local
    {
        h.unpublish();
    }
}

fn request_dir(inner: &Arc<Inner>, name: &str, epoch: u64, x: &Xprt) {
    let weak = Arc::downgrade(inner);
    let pname = name.to_string();
    x.dir_cb(DIR_F_NOTIFY, move |x, r| {
        if let Some(inner) = weak.upgrade() {
            on_dir(&inner, &pname, epoch, x, r);
        }
    });
}

fn request_lookup(inner: &Arc<Inner>, name: &str, epoch: u64, x: &Xprt, set: &str) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let pname = name.to_string();
    let sname = set.to_string();
    x.lookup_cb(set, LOOKUP_BY_INSTANCE, move |_, r, _| {
        let Some(inner) = weak.upgrade() else { return };
        match r {
            Ok(remote) => adopt(&inner, &pname, epoch, remote),
            Err(e) => {
                tracing::debug!(producer = pname, set = sname, "lookup failed, tried again next interval: {e}");
                let mut st = inner.state.lock();
                if let Some(p) = st.producers.get_mut(&pname).filter(|p| p.epoch == epoch)
                    && let Some(in_flight) = p.unresolved.get_mut(&sname)
                {
                    *in_flight = false;
                }
            }
        }
    });
}

fn on_dir(inner: &Arc<Inner>, name: &str, epoch: u64, x: &Xprt, r: Result<DirReply, pvloom_ldms::client::OpError>) {
    let (added, deleted): (Vec<String>, Vec<String>) = match r {
        Ok(DirReply::Part(part)) => (part.entries.iter().map(|e| e.name.clone()).collect(), vec![]),
        Ok(DirReply::Update { kind, entries }) if kind == DIR_ADD => {
            (entries.iter().map(|e| e.name.clone()).collect(), vec![])
        }
        Ok(DirReply::Update { kind, entries }) if kind == DIR_DEL => {
            (vec![], entries.iter().map(|e| e.name.clone()).collect())
        }
        Ok(DirReply::Update { .. }) => return,
        Err(e) => {
            tracing::debug!(producer = name, "dir failed, asked again next interval: {e}");
            let mut st = inner.state.lock();
            if let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) {
                p.dir_failed = true;
            }
            return;
        }
    };
    for set in deleted {
        forget_set(inner, name, epoch, &set);
    }
    for set in added {
        {
            let mut st = inner.state.lock();
            if !wanted(&st, name, &set, None) {
                continue;
            }
            let Some(p) = st.producers.get_mut(name).filter(|p| p.epoch == epoch) else { return };
            if p.sets.contains_key(&set) || p.unresolved.get(&set) == Some(&true) {
                continue;
            }
            p.unresolved.insert(set.clone(), true);
        }
        request_lookup(inner, name, epoch, x, &set);
    }
}

/// Is this set of producer `prdcr` pulled by some updater? (`schema` when known.)
fn wanted(st: &State, prdcr: &str, set: &str, schema: Option<&str>) -> bool {
    st.updaters.values().any(|u| updater_wants(u, prdcr, set, schema))
}

fn updater_wants(u: &Updater, prdcr: &str, set: &str, schema: Option<&str>) -> bool {
    u.prdcr_res.iter().any(|r| r.is_match(prdcr))
        && (u.matches.is_empty()
            || u.matches.iter().any(|(r, sel)| match sel {
                MatchSel::Inst => r.is_match(set),
                // Unknown before the lookup: look it up and decide with the schema.
                MatchSel::Schema => schema.is_none_or(|s| r.is_match(s)),
            }))
}

fn adopt(inner: &Arc<Inner>, prdcr: &str, epoch: u64, remote: Set) {
    let mut st = inner.state.lock();
    if !wanted(&st, prdcr, remote.name(), Some(remote.schema())) {
        return;
    }
    let Some(p) = st.producers.get_mut(prdcr).filter(|p| p.epoch == epoch) else { return };
    p.unresolved.remove(remote.name());
    p.sets.insert(remote.name().to_string(), Mirror { remote, local: None, last_gn: None, pushing: false });
    start_pushes(inner, &mut st);
}

/// Register push for every pulled set some running push updater wants.
fn start_pushes(inner: &Arc<Inner>, st: &mut State) {
    let State { producers, updaters, .. } = st;
    for (pname, p) in producers.iter_mut() {
        for m in p.sets.values_mut().filter(|m| !m.pushing) {
            let push = updaters.values().find(|u| {
                u.running && u.push != Push::Off && updater_wants(u, pname, m.remote.name(), Some(m.remote.schema()))
            });
            if push.is_some() {
                m.pushing = true;
                let weak = Arc::downgrade(inner);
                let (pname, epoch) = (pname.clone(), p.epoch);
                m.remote.register_push(XPRT_PUSH_F_CHANGE, move |set, r, _flags| {
                    if let (Some(inner), Ok(snap)) = (weak.upgrade(), r) {
                        updated(&inner, &pname, epoch, set, &snap);
                    }
                });
            }
        }
    }
}

fn schedule_updater(inner: &Arc<Inner>, name: &str) {
    let mut st = inner.state.lock();
    let Some(u) = st.updaters.get_mut(name).filter(|u| u.running) else { return };
    let now = wall_us();
    let at = next_sample_us(now, u.interval_us, u.offset_us);
    let weak = Arc::downgrade(inner);
    let uname = name.to_string();
    u.timer = Some(inner.rt.call_later(Duration::from_micros(at - now), move || {
        if let Some(inner) = weak.upgrade() {
            tick(&inner, &uname);
            schedule_updater(&inner, &uname);
        }
    }));
}

/// One updater interval: update every set it pulls.
fn tick(inner: &Arc<Inner>, updater: &str) {
    retry_failed_requests(inner, updater);
    let sets: Vec<(String, u64, Set)> = {
        let st = inner.state.lock();
        let Some(u) = st.updaters.get(updater) else { return };
        st.producers
            .iter()
            .filter(|(_, p)| p.state == ProducerState::Connected)
            .flat_map(|(pname, p)| {
                p.sets
                    .values()
                    .filter(|m| updater_wants(u, pname, m.remote.name(), Some(m.remote.schema())))
                    .map(|m| (pname.clone(), p.epoch, m.remote.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for (pname, epoch, set) in sets {
        let weak = Arc::downgrade(inner);
        set.update_cb(move |set, r, _flags| {
            let Some(inner) = weak.upgrade() else { return };
            match r {
                Ok(snap) => updated(&inner, &pname, epoch, set, &snap),
                Err(e) => tracing::debug!(producer = pname, set = set.name(), "update failed: {e}"),
            }
        });
    }
}

/// Ask again for the directories and lookups that failed on the producers `updater`
/// pulls from (ldmsd's updater retries a set's lookup each interval until it succeeds).
fn retry_failed_requests(inner: &Arc<Inner>, updater: &str) {
    let mut dirs = Vec::new();
    let mut lookups = Vec::new();
    {
        let mut st = inner.state.lock();
        let State { producers, updaters, .. } = &mut *st;
        let Some(u) = updaters.get(updater) else { return };
        for (pname, p) in producers
            .iter_mut()
            .filter(|(n, p)| p.state == ProducerState::Connected && u.prdcr_res.iter().any(|r| r.is_match(n)))
        {
            let Some(x) = p.xprt.clone() else { continue };
            if std::mem::take(&mut p.dir_failed) {
                dirs.push((pname.clone(), p.epoch, x.clone()));
            }
            for (set, in_flight) in p.unresolved.iter_mut().filter(|(_, f)| !**f) {
                *in_flight = true;
                lookups.push((pname.clone(), p.epoch, x.clone(), set.clone()));
            }
        }
    }
    for (pname, epoch, x) in dirs {
        request_dir(inner, &pname, epoch, &x);
    }
    for (pname, epoch, x, set) in lookups {
        request_lookup(inner, &pname, epoch, &x, &set);
    }
}

/// A pulled set has new data: serve it again and store it.
fn updated(inner: &Arc<Inner>, prdcr: &str, epoch: u64, set: &Set, snap: &SetSnapshot) {
    let mut st = inner.state.lock();
    let State { producers, strgps, store_options, .. } = &mut *st;
    let Some(p) = producers.get_mut(prdcr).filter(|p| p.epoch == epoch) else { return };
    let Some(m) = p.sets.get_mut(set.name()) else { return };
    mirror(&inner.registry, m, snap);
    if !snap.is_consistent() || m.last_gn == Some(snap.data_gn()) {
        return;
    }
    m.last_gn = Some(snap.data_gn());
    for (sname, s) in strgps.iter_mut().filter(|(_, s)| s.running) {
        let schema = &snap.meta.schema_name;
        let by_schema = s.schema.as_deref() == Some(schema.as_str());
        let by_regex = s.regex.as_ref().is_some_and(|r| r.is_match(schema));
        if !(by_schema || by_regex) || !(s.prdcr_res.is_empty() || s.prdcr_res.iter().any(|r| r.is_match(prdcr))) {
            continue;
        }
        let Some(opts) = store_options.get(&s.plugin) else { continue };
        if !s.stores.contains_key(schema) {
            match CsvStore::open(opts, &s.container, schema, &s.metrics) {
                Ok(store) => {
                    s.stores.insert(schema.clone(), store);
                }
                Err(e) => {
                    tracing::error!(strgp = sname, "cannot open the store: {e}");
                    s.running = false;
                    continue;
                }
            }
        }
        let data = match snap.data() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(strgp = sname, set = set.name(), "pulled data does not decode: {e}");
                continue;
            }
        };
        if let Some(store) = s.stores.get_mut(schema)
            && let Err(e) = store.store(&snap.meta, data)
        {
            tracing::error!(strgp = sname, "store failed: {e}");
        }
    }
}

/// Serve the pulled set's latest image under its own name.
fn mirror(registry: &Arc<SetRegistry>, m: &mut Mirror, snap: &SetSnapshot) {
    if let Some(h) = &m.local {
        let same_meta = h.read(|s| s.meta_gn() == snap.meta.meta_gn && s.data_bytes().len() == snap.data_bytes.len());
        if same_meta {
            h.update(|s| s.replace_data(&snap.data_bytes)).unwrap_or_else(|e| tracing::warn!("mirror: {e}"));
            return;
        }
        h.unpublish();
        m.local = None;
    }
    let image = match snap.meta.encode() {
        Ok(mut img) => {
            img.extend_from_slice(&snap.data_bytes);
            img
        }
        Err(e) => return tracing::warn!(set = m.remote.name(), "cannot re-encode the meta: {e}"),
    };
    match LocalSet::from_image(image) {
        Ok(mut local) => {
            for (k, v) in m.remote.info() {
                local.set_info(k, v);
            }
            match registry.publish(local) {
                Ok(h) => m.local = Some(h),
                Err(e) => tracing::warn!(set = m.remote.name(), "cannot serve the pulled set: {e}"),
            }
        }
        Err(e) => tracing::warn!(set = m.remote.name(), "pulled image refused: {e}"),
    }
}
