//! The sampler thread: every started sampler plugin, run on its wall-clock schedule.
//!
//! Samplers read `/proc` files, which is blocking file I/O: they get a thread of their
//! own instead of an I/O thread, so a slow `/proc` read never delays a peer's reply. One
//! thread serves every plugin from one schedule (the earliest due plugin first); a sample
//! is one transaction on each of the plugin's sets, written under the set's lock through
//! its [`SetHandle`], whose end pushes the set to registered peers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use pvloom_ldms::server::SetHandle;
use pvloom_ldms::set::Timestamp;

use crate::sampler::{Sampler, next_sample_us};

/// One loaded sampler plugin: the sampler, its sets, its schedule once started.
pub(crate) struct SamplerPlugin {
    /// The plugin it is an instance of (`load plugin=`).
    pub plugin: String,
    pub sampler: Box<dyn Sampler>,
    pub sets: Vec<SetHandle>,
    pub schedule: Option<Schedule>,
    /// Samples that failed (logged once per failure streak).
    pub failures: u64,
}

/// `start name= interval= offset=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub interval_us: u64,
    pub offset_us: i64,
    pub next_us: u64,
}

#[derive(Default)]
struct Table {
    plugins: BTreeMap<String, SamplerPlugin>,
    stopping: bool,
    samples: u64,
}

/// The sampler plugins and the thread that samples them.
pub(crate) struct Samplers {
    shared: Arc<(Mutex<Table>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

fn stamp(us: u64) -> Timestamp {
    Timestamp { sec: (us / 1_000_000) as u32, usec: (us % 1_000_000) as u32 }
}

impl Samplers {
    pub fn new() -> std::io::Result<Samplers> {
        let shared: Arc<(Mutex<Table>, Condvar)> = Arc::default();
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("ldmsd-samplers".into()).spawn(move || run(&s))?;
        Ok(Samplers { shared, thread: Some(thread) })
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, SamplerPlugin>) -> R) -> R {
        let r = f(&mut self.shared.0.lock().plugins);
        // A start or stop changes the schedule: let the thread look again.
        self.shared.1.notify_one();
        r
    }

    /// Samples taken so far (all plugins).
    pub fn samples(&self) -> u64 {
        self.shared.0.lock().samples
    }

    /// Start `name` on its schedule.
    pub fn start(&self, name: &str, interval_us: u64, offset_us: i64) -> bool {
        self.with(|p| match p.get_mut(name) {
            Some(plugin) => {
                let next_us = next_sample_us(wall_us(), interval_us, offset_us);
                plugin.schedule = Some(Schedule { interval_us, offset_us, next_us });
                true
            }
            None => false,
        })
    }
}

impl Drop for Samplers {
    fn drop(&mut self) {
        self.shared.0.lock().stopping = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &(Mutex<Table>, Condvar)) {
    let (lock, cv) = shared;
    let mut t = lock.lock();
    while !t.stopping {
        let now = wall_us();
        let due: Vec<String> = t
            .plugins
            .iter()
            .filter(|(_, p)| p.schedule.is_some_and(|s| s.next_us <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some(plugin) = t.plugins.get_mut(&name) else { continue };
            sample_plugin(&name, plugin);
            t.samples += 1;
        }
        let next = t.plugins.values().filter_map(|p| p.schedule.map(|s| s.next_us)).min();
        let now = wall_us();
        match next {
            Some(at) if at > now => {
                cv.wait_for(&mut t, Duration::from_micros(at - now));
            }
            Some(_) => {}
            None => cv.wait(&mut t),
        }
    }
}

fn sample_plugin(name: &str, plugin: &mut SamplerPlugin) {
    let Some(mut sched) = plugin.schedule else { return };
    let now = wall_us();
    let when = stamp(now);
    let mut failed = None;
    for set in &plugin.sets {
        let sampler = &mut plugin.sampler;
        if let Err(e) = set.update(|s| sampler.sample(s, when)) {
            failed = Some(format!("{}: {e}", set.name()));
        }
    }
    match failed {
        Some(why) => {
            if plugin.failures == 0 {
                tracing::error!(plugin = name, "sample failed: {why}");
            }
            plugin.failures += 1;
        }
        None => plugin.failures = 0,
    }
    // The next slot after now: a sampler that overran its interval skips the missed ones
    // rather than sampling back to back, as ldmsd's periodic events do.
    sched.next_us = next_sample_us(wall_us(), sched.interval_us, sched.offset_us);
    plugin.schedule = Some(sched);
}
