//! The shape meminfo and vmstat share: one `name value` line per metric, every metric a
//! U64 in file order after the common ones; the metric list is the file's at config time.

use std::path::PathBuf;
use std::time::Instant;

use pvloom_ldms::set::{LocalSet, MetricSpec, Timestamp, ValueType};

use super::base::{BASE_METRICS, BaseConfig};
use super::procfile::{ProcFile, lines, name_values, token, u64_field};
use super::{Sampler, SamplerError, end_time};
use crate::config::PluginConfig;

/// How one of these samplers differs from the other.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    /// Plugin and default schema name.
    pub plugin: &'static str,
    /// File under the root.
    pub rel_path: &'static str,
    /// meminfo: a line without a number ends the metric list (config) or the sample, and a
    /// trailing `:` is cut from names. vmstat: such a line is an error.
    pub lenient: bool,
}

/// A configured (or not yet configured) key/value sampler.
#[derive(Debug)]
pub struct KeyValue {
    flavor: Flavor,
    file: ProcFile,
    card: Option<usize>,
    /// One sample's values, kept between samples.
    values: Vec<u64>,
}

impl KeyValue {
    /// A sampler of `flavor` reading under `root`.
    pub fn new(flavor: Flavor, root: PathBuf) -> KeyValue {
        KeyValue { file: ProcFile::new(&root, flavor.rel_path), flavor, card: None, values: Vec::new() }
    }
}

impl Sampler for KeyValue {
    fn plugin(&self) -> &'static str {
        self.flavor.plugin
    }

    /// Read the file's metric names and create the set.
    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        if self.card.is_some() {
            return Err(SamplerError::State("set already created"));
        }
        let base = BaseConfig::from_config(self.flavor.plugin, cfg, self.flavor.plugin)?;
        let lenient = self.flavor.lenient;
        let mut names = Vec::new();
        let path = self.file.path().to_path_buf();
        let buf = self.file.read()?;
        for (i, l) in lines(buf).enumerate() {
            let parsed = token(l).and_then(|(n, rest)| u64_field(rest).map(|_| n));
            let Some(mut name) = parsed else {
                if lenient {
                    break;
                }
                return Err(SamplerError::Parse { path, msg: format!("line {} is not `name value`", i + 1) });
            };
            if lenient && name.last() == Some(&b':') {
                name = &name[..name.len() - 1];
            }
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        let metrics = BaseConfig::metrics(names.iter().map(|n| MetricSpec::new(n, ValueType::U64, 1, false)));
        let set = base.create_set(metrics)?;
        self.card = Some(set.meta().card());
        Ok(vec![set])
    }

    /// One sample: every line's value into the next metric.
    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        let card = self.card.ok_or(SamplerError::State("sample before config"))?;
        let t0 = Instant::now();
        set.transaction_begin(now);
        let mut bad = None;
        let room = card.saturating_sub(BASE_METRICS);
        self.values.clear();
        match self.file.read() {
            Ok(buf) => {
                if let Some(i) = name_values(buf, room, &mut self.values)
                    && !self.flavor.lenient
                {
                    bad = Some(format!("line {} is not `name value`", i + 1));
                }
            }
            Err(e) => {
                set.transaction_end(end_time(now, t0));
                return Err(e);
            }
        }
        let written = set.set_u64s(BASE_METRICS, &self.values);
        set.transaction_end(end_time(now, t0));
        written?;
        match bad {
            Some(msg) => Err(self.file.bad(msg)),
            None => Ok(()),
        }
    }
}
