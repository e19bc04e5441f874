//! `procstat` (`sampler/procstat/procstat.c`, the plugin `load name=procstat` loads;
//! `procstat2` is a different plugin): `/proc/stat`.
//!
//! Metrics after the common ones: `cores_up`; the summary `cpu` row as `cpu_enabled`,
//! `user`, `nice`, `sys`, `idle`, `iowait`, `irq`, `softirq`, `steal`, `guest`, `guest_nice`;
//! the scalar lines present at config time, in file order (`intr` → `hwintr_count`, `ctxt` →
//! `context_switches`, `processes`, `procs_running`, `procs_blocked`, `softirq` →
//! `softirq_count`; `btime` and `page` are skipped); then per-core U64 arrays
//! `per_core_cpu_enabled` .. `per_core_guest_nice` of `maxcpu` elements (default: the number
//! of `cpuN` rows); with `sc_clk_tck=1` a last meta metric `sc_clk_tck`, written at the first
//! sample.
//!
//! Per core, element 0 of a row is 1 (the cpu line is there) and the columns follow. A core
//! missing from the numbering (offline) gets a zero row, as do the cores between the last
//! row and `maxcpu`; rows past `maxcpu` are ignored. `cores_up` counts the rows present and
//! `cpu_enabled` is 1 if any is.

use std::path::PathBuf;
use std::time::Instant;

use pvloom_ldms::set::{LocalSet, MetricSpec, MetricValue, Timestamp, ValueType};

use super::base::{BASE_METRICS, BaseConfig};
use super::procfile::{ProcFile, lines, token, u64_field};
use super::{Sampler, SamplerError, check_configured, check_unconfigured, end_time};
use crate::config::PluginConfig;

/// The summary metrics (column 0 is `cpu_enabled`).
pub const SUMMARY: [&str; 11] =
    ["cpu_enabled", "user", "nice", "sys", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"];
/// The per-core arrays, in the same column order (the C sampler's names, `softirqd` included).
pub const PER_CORE: [&str; 11] = [
    "per_core_cpu_enabled",
    "per_core_user",
    "per_core_nice",
    "per_core_sys",
    "per_core_idle",
    "per_core_iowait",
    "per_core_irq",
    "per_core_softirqd",
    "per_core_steal",
    "per_core_guest",
    "per_core_guest_nice",
];
/// Columns per row (enabled flag and ten counters).
const COLS: usize = SUMMARY.len();
/// `sysconf(_SC_CLK_TCK)` on Linux.
pub const CLK_TCK: u64 = 100;

/// The scalar lines: file keyword and metric name.
pub const SCALARS: [(&str, &str); 6] = [
    ("intr", "hwintr_count"),
    ("ctxt", "context_switches"),
    ("processes", "processes"),
    ("procs_running", "procs_running"),
    ("procs_blocked", "procs_blocked"),
    ("softirq", "softirq_count"),
];

/// The procstat sampler.
#[derive(Debug)]
pub struct Procstat {
    file: ProcFile,
    maxcpu: usize,
    /// Metric index of each [`SCALARS`] line kept at config time.
    scalars: [Option<usize>; 6],
    /// Per-core rows, kept between samples (`core[cpu][col]`).
    core: Vec<[u64; COLS]>,
    tick_pending: bool,
    tick_idx: Option<usize>,
    first_array: usize,
    configured: bool,
}

/// A `cpu` line's number (`cpu12` → 12); `None` for the summary `cpu` and for bad names.
fn cpu_number(name: &[u8]) -> Option<Result<usize, ()>> {
    let rest = &name[3..];
    if rest.is_empty() {
        return None;
    }
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return Some(Err(()));
    }
    Some(std::str::from_utf8(&rest[..n]).ok().and_then(|s| s.parse().ok()).ok_or(()))
}

/// Zero the rows of the cores from `next` up to `upto` (missing from the file), as far as
/// the previous row's width.
fn zero_rows(core: &mut [[u64; COLS]], next: &mut Option<usize>, upto: usize, width: usize) {
    if let Some(c) = next.as_mut() {
        while *c < upto.min(core.len()) {
            core[*c][..width.min(COLS)].fill(0);
            *c += 1;
        }
    }
}

impl Procstat {
    /// A sampler reading `root/proc/stat`.
    pub fn new(root: PathBuf) -> Procstat {
        Procstat {
            file: ProcFile::new(&root, "proc/stat"),
            maxcpu: 0,
            scalars: [None; 6],
            core: Vec::new(),
            tick_pending: false,
            tick_idx: None,
            first_array: 0,
            configured: false,
        }
    }
}

/// What config learns from the file: the number of cpu rows and the scalar lines in order.
fn scan(buf: &[u8]) -> (usize, Vec<usize>) {
    let mut cpus = 0usize;
    let mut seen = Vec::new();
    for l in lines(buf) {
        let Some((name, _)) = token(l) else { continue };
        if name.starts_with(b"cpu") {
            if let Some(Ok(n)) = cpu_number(name) {
                cpus = cpus.max(n + 1);
            }
            continue;
        }
        if let Some(k) = SCALARS.iter().position(|(kw, _)| kw.as_bytes() == name)
            && !seen.contains(&k)
        {
            seen.push(k);
        }
    }
    (cpus, seen)
}

impl Sampler for Procstat {
    fn plugin(&self) -> &'static str {
        "procstat"
    }

    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        check_unconfigured(self.configured)?;
        for d in ["set", "metrics_type"] {
            if cfg.get(d).is_some() {
                return Err(SamplerError::Config {
                    plugin: "procstat",
                    msg: format!("config argument {d} has been deprecated"),
                });
            }
        }
        let base = BaseConfig::from_config("procstat", cfg, "procstat")?;
        let maxcpu = match cfg.get("maxcpu") {
            Some(v) => Some(v.trim().parse::<i64>().map_err(|_| SamplerError::Config {
                plugin: "procstat",
                msg: format!("config: maxcpu value bad: {v}"),
            })?),
            None => None,
        };
        let tick = cfg.get("sc_clk_tck").is_some_and(|v| v.starts_with('1'));
        let (cpus, seen) = scan(self.file.read()?);
        self.maxcpu = match maxcpu {
            Some(m) if m >= 1 => m as usize,
            _ => cpus,
        };
        let u64m = |n: &str| MetricSpec::new(n, ValueType::U64, 1, false);
        let mut own = vec![u64m("cores_up")];
        own.extend(SUMMARY.iter().map(|n| u64m(n)));
        for &k in &seen {
            self.scalars[k] = Some(BASE_METRICS + own.len());
            own.push(u64m(SCALARS[k].1));
        }
        self.first_array = BASE_METRICS + own.len();
        own.extend(PER_CORE.iter().map(|n| MetricSpec::new(n, ValueType::U64Array, self.maxcpu as u32, false)));
        if tick {
            self.tick_idx = Some(BASE_METRICS + own.len());
            own.push(MetricSpec::new("sc_clk_tck", ValueType::U64, 1, true));
        }
        self.tick_pending = tick;
        self.core = vec![[0; COLS]; self.maxcpu];
        let set = base.create_set(BaseConfig::metrics(own))?;
        self.configured = true;
        Ok(vec![set])
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        check_configured(self.configured)?;
        let t0 = Instant::now();
        let maxcpu = self.maxcpu;
        let mut sum = [0u64; COLS];
        let mut scalars = [None::<u64>; 6];
        let mut short = false;
        // Next cpu row expected; `None` before the summary row.
        let mut next: Option<usize> = None;
        let mut width = 0usize;
        let buf = self.file.read()?;
        let core = &mut self.core;
        for l in lines(buf) {
            let Some((name, mut rest)) = token(l) else { continue };
            if name.starts_with(b"cpu") {
                if next.is_some_and(|c| c >= maxcpu) {
                    continue;
                }
                let row: &mut [u64; COLS] = match cpu_number(name) {
                    None => &mut sum,
                    Some(Err(())) => {
                        short = true;
                        break;
                    }
                    Some(Ok(n)) => {
                        if next.is_none() || n >= maxcpu {
                            continue;
                        }
                        zero_rows(core, &mut next, n, width);
                        next = Some(n + 1);
                        core[n][0] = 1;
                        &mut core[n]
                    }
                };
                let mut col = 0;
                while col + 1 < COLS {
                    let Some((v, r)) = u64_field(rest) else { break };
                    col += 1;
                    row[col] = v;
                    rest = r;
                }
                if width > 0 && col < width {
                    short = true;
                    break;
                }
                width = col;
                if next.is_none() {
                    next = Some(0);
                }
                continue;
            }
            zero_rows(core, &mut next, maxcpu, width);
            if let Some(k) = SCALARS.iter().position(|(kw, _)| kw.as_bytes() == name)
                && let Some((v, _)) = u64_field(rest)
            {
                scalars[k] = Some(v);
            }
        }
        set.transaction_begin(now);
        let r = if short {
            Err(self.file.bad("short cpu row"))
        } else {
            (|| {
                let mut ncore = 0;
                for (j, idx) in (self.first_array..self.first_array + COLS).enumerate() {
                    for (i, row) in self.core.iter().enumerate() {
                        if j == 0 {
                            ncore += row[0];
                        }
                        set.set_elem(idx, i, &MetricValue::U64(row[j]))?;
                    }
                }
                sum[0] = (ncore > 0) as u64;
                for (j, v) in sum.iter().enumerate() {
                    set.set_u64(BASE_METRICS + 1 + j, *v)?;
                }
                for (k, idx) in self.scalars.iter().enumerate() {
                    if let (Some(idx), Some(v)) = (idx, scalars[k]) {
                        set.set_u64(*idx, v)?;
                    }
                }
                set.set_u64(BASE_METRICS, ncore)?;
                if let (true, Some(i)) = (self.tick_pending, self.tick_idx) {
                    set.set_u64(i, CLK_TCK)?;
                    self.tick_pending = false;
                }
                Ok::<(), SamplerError>(())
            })()
        };
        set.transaction_end(end_time(now, t0));
        r
    }
}
