//! `loadavg`: `/proc/loadavg` (`1.5 0.25 0.1 3/412 9876`) as `load1min`, `load5min`,
//! `load15min` (D64), `runnable`, `scheduling_entities`, `newest_pid` (U64)
//! (`sampler/loadavg/loadavg.c`). `metrics=` picks a subset (schema `loadavg` + six 0/1
//! digits then); the keyword `force_integer` stores the loads as U64 `100 × load` (schema
//! `loadavgi…`).

use std::path::PathBuf;
use std::time::Instant;

use pvloom_ldms::set::{LocalSet, MetricSpec, MetricValue, Timestamp, ValueType};

use super::base::{BASE_METRICS, BaseConfig};
use super::procfile::{ProcFile, f64_field, u64_field};
use super::{Sampler, SamplerError, check_configured, check_unconfigured, end_time};
use crate::config::PluginConfig;

/// The six metrics, in file order; the first three are loads.
pub const METRICS: [&str; 6] = ["load1min", "load5min", "load15min", "runnable", "scheduling_entities", "newest_pid"];

/// The loadavg sampler.
#[derive(Debug)]
pub struct Loadavg {
    file: ProcFile,
    collect: [bool; 6],
    force_integer: bool,
    configured: bool,
}

impl Loadavg {
    /// A sampler reading `root/proc/loadavg`.
    pub fn new(root: PathBuf) -> Loadavg {
        Loadavg {
            file: ProcFile::new(&root, "proc/loadavg"),
            collect: [true; 6],
            force_integer: false,
            configured: false,
        }
    }

    fn default_schema(&self) -> String {
        let i = if self.force_integer { "i" } else { "" };
        if self.collect.iter().all(|&c| c) {
            return format!("loadavg{i}");
        }
        let bits: String = self.collect.iter().map(|&c| if c { '1' } else { '0' }).collect();
        format!("loadavg{i}{bits}")
    }

    /// Parse the line into the six values (loads as f64, the rest as u64).
    fn parse(buf: &[u8]) -> Option<([f64; 3], [u64; 3])> {
        let (a, r) = f64_field(buf)?;
        let (b, r) = f64_field(r)?;
        let (c, r) = f64_field(r)?;
        let (run, r) = u64_field(r)?;
        let r = r.strip_prefix(b"/")?;
        let (ents, r) = u64_field(r)?;
        let (pid, _) = u64_field(r)?;
        Some(([a, b, c], [run, ents, pid]))
    }
}

impl Sampler for Loadavg {
    fn plugin(&self) -> &'static str {
        "loadavg"
    }

    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        check_unconfigured(self.configured)?;
        if cfg.get("set").is_some() {
            return Err(SamplerError::Config {
                plugin: "loadavg",
                msg: "config argument set has been deprecated".into(),
            });
        }
        self.force_integer = cfg.has_keyword("force_integer");
        if let Some(list) = cfg.get("metrics") {
            self.collect = [false; 6];
            for m in list.split(',').filter(|m| !m.is_empty()) {
                let i = METRICS.iter().position(|n| *n == m).ok_or_else(|| SamplerError::Config {
                    plugin: "loadavg",
                    msg: format!("unknown metric {m} in {list}"),
                })?;
                self.collect[i] = true;
            }
        }
        let base = BaseConfig::from_config("loadavg", cfg, &self.default_schema())?;
        self.file.read()?;
        let own = METRICS.iter().enumerate().filter(|(i, _)| self.collect[*i]).map(|(i, n)| {
            let ty = if i < 3 && !self.force_integer { ValueType::D64 } else { ValueType::U64 };
            MetricSpec::new(n, ty, 1, false)
        });
        let set = base.create_set(BaseConfig::metrics(own))?;
        self.configured = true;
        Ok(vec![set])
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        check_configured(self.configured)?;
        let t0 = Instant::now();
        // Like loadavg.c: a file that cannot be read is skipped without a transaction.
        let Ok(buf) = self.file.read() else { return Ok(()) };
        let parsed = Self::parse(buf);
        set.transaction_begin(now);
        let result = match parsed {
            None => Err(self.file.bad("not `load load load runnable/entities pid`")),
            Some((loads, counts)) => {
                for (idx, i) in (BASE_METRICS..).zip((0..6).filter(|&i| self.collect[i])) {
                    let v = match (i < 3, self.force_integer) {
                        (true, false) => MetricValue::D64(loads[i]),
                        (true, true) => MetricValue::U64((100.0 * loads[i]) as u64),
                        _ => MetricValue::U64(counts[i - 3]),
                    };
                    set.set(idx, &v)?;
                }
                Ok(())
            }
        };
        set.transaction_end(end_time(now, t0));
        result
    }
}
