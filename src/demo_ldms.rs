//! The LDMS half of `pvloom demo`: an embedded `pvloom ldmsd` on loopback sampling
//! meminfo and loadavg, plus a set that mirrors the demo IOC's PVs (CA monitors feeding an
//! LDMS set), read back live through pvloom's LDMS client: updates for the samplers'
//! sets, pushes for the mirrored one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use parking_lot::Mutex;
use pvloom_ldms::client::{Set, SetSnapshot, Xprt, XprtConfig};
use pvloom_ldms::request::{LOOKUP_RE, XPRT_PUSH_F_CHANGE};
use pvloom_ldms::server::SetHandle;
use pvloom_ldms::set::{LocalSet, MetricSpec, MetricValue, Schema, SetInfo, ValueType};
use pvloom_ldmsd::config::parse_str;
use pvloom_ldmsd::daemon::{Daemon, DaemonOptions};
use pvloom_ldmsd::sampler::now;

const SAMPLERS: &str = "\
load name=meminfo
config name=meminfo producer=pvloom-demo instance=pvloom-demo/meminfo component_id=1
start name=meminfo interval=500000 offset=0
load name=loadavg
config name=loadavg producer=pvloom-demo instance=pvloom-demo/loadavg component_id=1
start name=loadavg interval=500000 offset=0
";

/// The mirrored set's name and metrics (after component_id).
pub const MIRROR: &str = "pvloom-demo/ca";
const WALK: usize = 1;
const RAMP: usize = 2;

/// What the demo's LDMS client saw of one set.
#[derive(Default)]
pub struct Watched {
    /// The latest snapshot.
    pub latest: Mutex<Option<Arc<SetSnapshot>>>,
    /// Updates or pushes received.
    pub count: AtomicU64,
}

/// The embedded daemon, the mirrored set and the client watching it all.
pub struct LdmsDemo {
    daemon: Daemon,
    mirror: SetHandle,
    xprt: Xprt,
    sets: Vec<(Set, Arc<Watched>)>,
    /// Where the daemon listens.
    pub addr: SocketAddr,
}

impl LdmsDemo {
    /// Start the daemon with its samplers and the mirror set, connect the client, look
    /// every set up and register for pushes of the mirror.
    pub fn start() -> anyhow::Result<LdmsDemo> {
        let daemon = Daemon::new(DaemonOptions { io_threads: 1, ..DaemonOptions::default() })?;
        daemon.apply_all(&parse_str(SAMPLERS, "demo.conf")?)?;
        let schema = Schema {
            name: "pvloom_demo".into(),
            metrics: vec![
                MetricSpec::new("component_id", ValueType::U64, 1, true),
                MetricSpec::new("RANDOM_WALK", ValueType::D64, 1, false),
                MetricSpec::new("RAMP", ValueType::S32, 1, false),
            ],
            digest: None,
            meta_sz: None,
            heap_sz: None,
        };
        let info = SetInfo {
            producer: "pvloom-demo".into(),
            instance: MIRROR.into(),
            uid: 0,
            gid: 0,
            perm: 0o444,
            meta_gn: 1,
        };
        let mut set = LocalSet::new(&schema, &info)?;
        set.set(0, &MetricValue::U64(1))?;
        let mirror = daemon.registry().publish(set).context("publishing the mirror set")?;
        let addr = daemon.listen("127.0.0.1:0".parse()?)?;
        let rt = daemon.runtime().handle();
        let xprt = Xprt::connect(&rt, addr, XprtConfig::default()).context("connecting the LDMS client")?;
        let mut sets = Vec::new();
        for set in xprt.lookup(".*", LOOKUP_RE).context("LDMS lookup")? {
            let watched = Arc::new(Watched::default());
            if set.name() == MIRROR {
                let w = watched.clone();
                set.register_push(XPRT_PUSH_F_CHANGE, move |_, r, _| {
                    if let Ok(snap) = r {
                        w.count.fetch_add(1, Ordering::Relaxed);
                        *w.latest.lock() = Some(snap);
                    }
                });
            }
            sets.push((set, watched));
        }
        sets.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        Ok(LdmsDemo { daemon, mirror, xprt, sets, addr })
    }

    /// Feed the mirror set from a CA monitor of the walk or the ramp (one transaction each).
    pub fn mirror_handle(&self) -> SetHandle {
        self.mirror.clone()
    }

    /// Ask for fresh data of every sampler set (non-blocking; the mirror is pushed).
    pub fn poll(&self) {
        for (set, watched) in self.sets.iter().filter(|(s, _)| s.name() != MIRROR) {
            let w = watched.clone();
            set.update_cb(move |_, r, _| {
                if let Ok(snap) = r {
                    w.count.fetch_add(1, Ordering::Relaxed);
                    *w.latest.lock() = Some(snap);
                }
            });
        }
    }

    /// One display line per set.
    pub fn lines(&self) -> Vec<String> {
        self.sets
            .iter()
            .map(|(set, w)| {
                let latest = w.latest.lock().clone();
                let text = latest.as_deref().map_or_else(|| "(waiting)".to_owned(), |s| describe(set.name(), s));
                let how = if set.name() == MIRROR { "pushes" } else { "updates" };
                format!("  LDMS {:<22} {text:<46} {:>5} {how}", set.name(), w.count.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// `name: N updates` for each set.
    pub fn summary(&self) -> String {
        let how = |name: &str| if name == MIRROR { "pushes" } else { "updates" };
        let parts: Vec<String> = self
            .sets
            .iter()
            .map(|(s, w)| format!("{} {} {}", s.name(), w.count.load(Ordering::Relaxed), how(s.name())))
            .collect();
        parts.join(", ")
    }

    /// Samples the daemon's samplers took.
    pub fn samples(&self) -> u64 {
        self.daemon.samples()
    }

    /// Stop the client (the daemon stops when dropped).
    pub fn close(&self) {
        self.xprt.close();
    }
}

fn value(s: &SetSnapshot, name: &str) -> String {
    match s.value_by_name(name) {
        Some(MetricValue::U64(v)) => v.to_string(),
        Some(MetricValue::S32(v)) => v.to_string(),
        Some(MetricValue::D64(v)) => format!("{v:.3}"),
        Some(v) => format!("{v:?}"),
        None => "?".into(),
    }
}

fn describe(name: &str, s: &SetSnapshot) -> String {
    let state = if s.is_consistent() { "" } else { " (inconsistent)" };
    let text = if name.ends_with("meminfo") {
        format!("MemFree {} kB  MemAvailable {} kB", value(s, "MemFree"), value(s, "MemAvailable"))
    } else if name.ends_with("loadavg") {
        format!("load1min {}  runnable {}", value(s, "load1min"), value(s, "runnable"))
    } else {
        format!("RANDOM_WALK {}  RAMP {}", value(s, "RANDOM_WALK"), value(s, "RAMP"))
    };
    format!("{text}{state}")
}

/// Write one CA value into the mirror set as one transaction.
pub fn mirror_value(handle: &SetHandle, walk: Option<f64>, ramp: Option<i32>) {
    let t = now();
    let _ = handle.transaction(t, t, |s| {
        if let Some(w) = walk {
            s.set(WALK, &MetricValue::D64(w))?;
        }
        if let Some(r) = ramp {
            s.set(RAMP, &MetricValue::S32(r))?;
        }
        Ok::<(), pvloom_ldms::set::SetError>(())
    });
}
