//! What `sampler_base.c` gives every sampler: the common configuration attributes, the
//! three leading metrics (`component_id` as a meta metric, `job_id` and `app_id` as data)
//! and the set's creation with ownership and permissions.
//!
//! Job data: sampler_base copies `job_id`/`app_id` from a job set (`job_set=`, default
//! `job_info`) when one exists. pvloom has no job sampler yet, so both stay 0, as they do in
//! ldmsd when the job set is missing.

use std::path::Path;

use pvloom_ldms::set::{LocalSet, MetricSpec, SetInfo, ValueType};

use super::{SamplerError, sizing};
use crate::config::{Owner, PluginConfig};

/// Index of `component_id` (meta) in every sampler set.
pub const COMPONENT_ID: usize = 0;
/// Index of `job_id`.
pub const JOB_ID: usize = 1;
/// Index of `app_id`.
pub const APP_ID: usize = 2;
/// Number of the common metrics; a sampler's own metrics start here.
pub const BASE_METRICS: usize = 3;
/// Permission bits of a new set when `perm=` is not given (`ldms_set_new`: 0440).
pub const DEFAULT_PERM: u32 = 0o440;

/// The sampler_base part of a configuration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseConfig {
    /// Producer name.
    pub producer: String,
    /// Set instance name.
    pub instance: String,
    /// Schema name (`schema=`, or the sampler's default).
    pub schema: String,
    /// Component id (0 if not given).
    pub component_id: u64,
    /// Set owner.
    pub uid: u32,
    /// Set group.
    pub gid: u32,
    /// Set permissions.
    pub perm: u32,
    /// Name of the job set consulted for job_id/app_id.
    pub job_set: String,
}

/// Effective uid and gid of this process (from `/proc/self/status`), the owner `ldms_set_new`
/// gives a set.
fn effective_ids() -> (u32, u32) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Uid:"), field("Gid:"))
}

/// Look a user or group name up in an `/etc/passwd`-style file (`name:x:id:...`).
fn lookup_name(file: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

impl BaseConfig {
    /// Check the common attributes of `cfg` (`producer` and `instance` are required) for a
    /// sampler whose default schema name is `default_schema`.
    pub fn from_config(
        plugin: &'static str,
        cfg: &PluginConfig,
        default_schema: &str,
    ) -> Result<BaseConfig, SamplerError> {
        let err = |msg: String| SamplerError::Config { plugin, msg };
        let producer = cfg.producer.clone().ok_or_else(|| err("config is missing producer=".into()))?;
        let instance = cfg.instance.clone().ok_or_else(|| err("config is missing instance=".into()))?;
        let (euid, egid) = effective_ids();
        let resolve = |o: &Option<Owner>, file: &str, dflt: u32, what: &str| match o {
            None => Ok(dflt),
            Some(Owner::Id(i)) => Ok(*i),
            Some(Owner::Name(n)) => {
                lookup_name(Path::new(file), n).ok_or_else(|| err(format!("the {what} '{n}' does not exist")))
            }
        };
        Ok(BaseConfig {
            producer,
            instance,
            schema: cfg.schema.clone().unwrap_or_else(|| default_schema.to_string()),
            component_id: cfg.component_id.unwrap_or(0),
            uid: resolve(&cfg.uid, "/etc/passwd", euid, "user")?,
            gid: resolve(&cfg.gid, "/etc/group", egid, "group")?,
            perm: cfg.perm.unwrap_or(DEFAULT_PERM),
            job_set: cfg.job_set.clone().unwrap_or_else(|| "job_info".into()),
        })
    }

    /// The schema's metrics: the three common ones, then `own`.
    pub fn metrics(own: impl IntoIterator<Item = MetricSpec>) -> Vec<MetricSpec> {
        let mut m = vec![
            MetricSpec::new("component_id", ValueType::U64, 1, true),
            MetricSpec::new("job_id", ValueType::U64, 1, false),
            MetricSpec::new("app_id", ValueType::U64, 1, false),
        ];
        m.extend(own);
        m
    }

    /// Create the set as `base_set_new` does: laid out with ldmsd's sizes and digest, then
    /// `component_id` written (meta gn 1 → 2), `job_id` and `app_id` set to 0.
    pub fn create_set(&self, metrics: Vec<MetricSpec>) -> Result<LocalSet, SamplerError> {
        let schema = sizing::ldmsd_schema(&self.schema, &self.instance, metrics);
        let info = SetInfo {
            producer: self.producer.clone(),
            instance: self.instance.clone(),
            uid: self.uid,
            gid: self.gid,
            perm: self.perm,
            meta_gn: 1,
        };
        let mut set = LocalSet::new(&schema, &info)?;
        set.set_u64(COMPONENT_ID, self.component_id)?;
        set.set_u64(JOB_ID, 0)?;
        set.set_u64(APP_ID, 0)?;
        Ok(set)
    }
}
