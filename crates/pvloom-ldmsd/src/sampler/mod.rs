//! Samplers: plugins that fill sets from `/proc`, as ldmsd's meminfo, vmstat, loadavg,
//! procstat and procnetdev2 do, the configuration-driven `test_sampler` and the example
//! samplers (`array_example`, `list_sampler`, `record_sampler`), with sampler_base's common part ([`base`]), ldmsd's schema sizing and
//! digest ([`sizing`]) and the wall-clock schedule ([`schedule`]).
//!
//! A sampler is configured once (`config name=...`), which reads its `/proc` file to decide
//! the metric list and creates the set(s), then sampled on its schedule: each sample is one
//! transaction (begin, values, end) on the set.

pub mod base;
mod digest;
pub mod examples;
pub mod keyvalue;
pub mod loadavg;
pub mod meminfo;
pub mod procfile;
pub mod procnetdev2;
pub mod procstat;
pub mod schedule;
pub mod sizing;
pub mod test_sampler;
pub mod values;
pub mod vmstat;

use std::path::{Path, PathBuf};

use pvloom_ldms::set::{LocalSet, SetError, Timestamp};

use crate::config::PluginConfig;

pub use schedule::next_sample_us;

/// A sampler failure.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// A bad or missing configuration attribute.
    #[error("{plugin}: {msg}")]
    Config {
        /// The plugin.
        plugin: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A `/proc` file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A `/proc` file's contents do not have the expected form.
    #[error("{}: {msg}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// `sample` before a successful `configure`, or `configure` twice.
    #[error("{0}")]
    State(&'static str),
    /// The set refused a value or a layout.
    #[error(transparent)]
    Set(#[from] SetError),
}

/// A sampler plugin.
pub trait Sampler: Send {
    /// The plugin name (`load name=` / `plugin=`).
    fn plugin(&self) -> &'static str;
    /// Create the set(s) from the configuration (`producer`, `instance`, `component_id`,
    /// `schema`, `uid`, `gid`, `perm` and the plugin's own attributes).
    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError>;
    /// Take one sample into `set` (one the sampler created): transaction begun at `now`,
    /// values read and written, transaction ended.
    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError>;
}

/// The plugins [`sampler_by_name`] knows.
pub const SAMPLERS: [&str; 9] = [
    "meminfo",
    "vmstat",
    "loadavg",
    "procnetdev2",
    "procstat",
    "test_sampler",
    "array_example",
    "list_sampler",
    "record_sampler",
];

/// A new, unconfigured sampler reading the real `/proc`.
pub fn sampler_by_name(name: &str) -> Option<Box<dyn Sampler>> {
    sampler_with_root(name, Path::new("/"))
}

/// A new sampler whose `/proc` paths are taken under `root` (`root/proc/meminfo`), so that
/// tests can feed fixture files.
pub fn sampler_with_root(name: &str, root: &Path) -> Option<Box<dyn Sampler>> {
    let root = root.to_path_buf();
    Some(match name {
        "meminfo" => Box::new(meminfo::new(root)),
        "vmstat" => Box::new(vmstat::new(root)),
        "loadavg" => Box::new(loadavg::Loadavg::new(root)),
        "procnetdev2" => Box::new(procnetdev2::Procnetdev2::new(root)),
        "procstat" => Box::new(procstat::Procstat::new(root)),
        "test_sampler" => Box::new(test_sampler::TestSampler::new()),
        "array_example" => Box::new(examples::ArrayExample::new()),
        "list_sampler" => Box::new(examples::ListSampler::new()),
        "record_sampler" => Box::new(examples::RecordSampler::new()),
        _ => return None,
    })
}

/// `configure` may run once.
pub(crate) fn check_unconfigured(configured: bool) -> Result<(), SamplerError> {
    if configured { Err(SamplerError::State("set already created")) } else { Ok(()) }
}

/// `sample` needs a configured sampler.
pub(crate) fn check_configured(configured: bool) -> Result<(), SamplerError> {
    if configured { Ok(()) } else { Err(SamplerError::State("sample before config")) }
}

/// The current wall-clock time as a set timestamp.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp { sec: d.as_secs() as u32, usec: d.subsec_micros() }
}

/// `start` plus the time elapsed since `t0`: a transaction's end time.
pub(crate) fn end_time(start: Timestamp, t0: std::time::Instant) -> Timestamp {
    let us = start.sec as u64 * 1_000_000 + start.usec as u64 + t0.elapsed().as_micros() as u64;
    Timestamp { sec: (us / 1_000_000) as u32, usec: (us % 1_000_000) as u32 }
}
