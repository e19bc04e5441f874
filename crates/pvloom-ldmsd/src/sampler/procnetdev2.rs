//! `procnetdev2`: `/proc/net/dev` as a LIST `netdev_list` of `netdev` records, one per
//! interface, after the record type (`sampler/procnetdev2/procnetdev2.c`). The heap holds
//! 256 records (`MAXIFACE`). `ifaces=a,b` keeps only those interfaces, `exclude=a,b` drops
//! those (ifaces wins when both are given).

use std::path::PathBuf;
use std::time::Instant;

use pvloom_ldms::set::{ListEntry, LocalSet, MetricSpec, MetricValue, RecordInst, Timestamp, ValueType};

use super::base::{BASE_METRICS, BaseConfig};
use super::procfile::{ProcFile, lines, token, u64_field};
use super::{Sampler, SamplerError, check_configured, check_unconfigured, end_time, sizing};
use crate::config::PluginConfig;

/// Most interfaces the heap is sized for (and the most `ifaces=`/`exclude=` entries).
pub const MAXIFACE: usize = 256;
/// Bytes of the `name` member (`IFNAMSIZ`), NUL included.
pub const IFNAMSIZ: usize = 16;

/// Record members after `name`, with their units, in `/proc/net/dev` column order.
pub const COUNTERS: [(&str, &str); 16] = [
    ("rx_bytes", "bytes"),
    ("rx_packets", "packets"),
    ("rx_errs", "packets"),
    ("rx_drop", "packets"),
    ("rx_fifo", "events"),
    ("rx_frame", "events"),
    ("rx_compressed", "packets"),
    ("rx_multicast", "packets"),
    ("tx_bytes", "bytes"),
    ("tx_packets", "packets"),
    ("tx_errs", "packets"),
    ("tx_drop", "packets"),
    ("tx_fifo", "events"),
    ("tx_colls", "events"),
    ("tx_carrier", "events"),
    ("tx_compressed", "packets"),
];

/// The `netdev` record type.
pub fn record_type() -> MetricSpec {
    let mut name = MetricSpec::new("name", ValueType::CharArray, IFNAMSIZ as u32, false);
    name.unit = Some(String::new());
    let mut members = vec![name];
    members.extend(
        COUNTERS
            .iter()
            .map(|(n, u)| MetricSpec { unit: Some(u.to_string()), ..MetricSpec::new(n, ValueType::U64, 1, false) }),
    );
    MetricSpec { unit: None, members, ..MetricSpec::new("netdev", ValueType::RecordType, 0, true) }
}

/// One interface's line: its name (NUL-padded to [`IFNAMSIZ`]) and counters.
type Row = ([u8; IFNAMSIZ], [u64; 16]);

/// The procnetdev2 sampler.
#[derive(Debug)]
pub struct Procnetdev2 {
    file: ProcFile,
    ifaces: Vec<String>,
    exclude: Vec<String>,
    configured: bool,
    /// This sample's interfaces, kept between samples.
    rows: Vec<Row>,
    /// The interfaces the list holds now, in list order, with each record instance's data
    /// offset: while the interfaces stay the same, a sample writes the counters in place
    /// (as the C sampler keeps its record handles) instead of laying the heap out again.
    layout: Vec<([u8; IFNAMSIZ], u32)>,
}

fn names(plugin: &'static str, key: &str, v: Option<&str>) -> Result<Vec<String>, SamplerError> {
    let list: Vec<String> = v.unwrap_or("").split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    if list.len() > MAXIFACE {
        return Err(SamplerError::Config { plugin, msg: format!("too many {key}: {}", list.len()) });
    }
    Ok(list)
}

impl Procnetdev2 {
    /// A sampler reading `root/proc/net/dev`.
    pub fn new(root: PathBuf) -> Procnetdev2 {
        Procnetdev2 {
            file: ProcFile::new(&root, "proc/net/dev"),
            ifaces: Vec::new(),
            exclude: Vec::new(),
            configured: false,
            rows: Vec::new(),
            layout: Vec::new(),
        }
    }

    /// Counters into the record instances the list already holds; false if the interfaces
    /// are not the ones laid out (or the set refuses), so the list must be built again.
    fn write_in_place(&self, set: &mut LocalSet) -> bool {
        self.rows.len() == self.layout.len()
            && self.rows.iter().zip(&self.layout).all(|((name, _), (laid, _))| name == laid)
            && self
                .rows
                .iter()
                .zip(&self.layout)
                .all(|((_, counters), (_, off))| set.set_record_u64s(*off, 1, counters).is_ok())
    }

    /// Build the list afresh from the rows, and note where each record instance went.
    fn rebuild(&mut self, set: &mut LocalSet, list_idx: usize) -> Result<(), SamplerError> {
        let rec_type = BASE_METRICS as u32;
        let entries = self
            .rows
            .iter()
            .map(|(name, counters)| {
                let mut members = Vec::with_capacity(17);
                members.push(MetricValue::CharArray(name.to_vec()));
                members.extend(counters.iter().map(|&c| MetricValue::U64(c)));
                let r = RecordInst { set_data_off: 0, rec_type, members };
                ListEntry { heap_off: 0, value: MetricValue::RecordInst(r) }
            })
            .collect();
        self.layout.clear();
        set.update_values(|v| v[list_idx] = Some(MetricValue::List(entries)))?;
        if let Some(Some(MetricValue::List(laid))) = set.data()?.values.get(list_idx) {
            for (e, (name, _)) in laid.iter().zip(&self.rows) {
                if let MetricValue::RecordInst(r) = &e.value {
                    self.layout.push((*name, r.set_data_off));
                }
            }
        }
        if self.layout.len() != self.rows.len() {
            self.layout.clear();
        }
        Ok(())
    }

    fn wanted(ifaces: &[String], exclude: &[String], name: &str) -> bool {
        if !ifaces.is_empty() {
            return ifaces.iter().any(|i| i == name);
        }
        !exclude.iter().any(|i| i == name)
    }

    /// One data line (`  eth0: 1 2 ... 16`) as name and counters.
    fn parse_line(l: &[u8]) -> Option<(&[u8], [u64; 16])> {
        let colon = l.iter().position(|&c| c == b':')?;
        let (name, _) = token(&l[..colon])?;
        let mut rest = &l[colon + 1..];
        let mut v = [0u64; 16];
        for x in v.iter_mut() {
            let (n, r) = u64_field(rest)?;
            *x = n;
            rest = r;
        }
        Some((name, v))
    }
}

impl Sampler for Procnetdev2 {
    fn plugin(&self) -> &'static str {
        "procnetdev2"
    }

    fn configure(&mut self, cfg: &PluginConfig) -> Result<Vec<LocalSet>, SamplerError> {
        check_unconfigured(self.configured)?;
        self.ifaces = names("procnetdev2", "ifaces", cfg.get("ifaces"))?;
        self.exclude = names("procnetdev2", "exclude", cfg.get("exclude"))?;
        let base = BaseConfig::from_config("procnetdev2", cfg, "procnetdev2")?;
        self.file.read()?;
        let rt = record_type();
        let heap = MAXIFACE * sizing::record_heap_sz(&rt);
        let list = MetricSpec { unit: None, ..MetricSpec::new("netdev_list", ValueType::List, heap as u32, false) };
        let set = base.create_set(BaseConfig::metrics([rt, list]))?;
        self.configured = true;
        Ok(vec![set])
    }

    fn sample(&mut self, set: &mut LocalSet, now: Timestamp) -> Result<(), SamplerError> {
        check_configured(self.configured)?;
        let t0 = Instant::now();
        let list_idx = BASE_METRICS + 1;
        let buf = self.file.read()?;
        self.rows.clear();
        for l in lines(buf).skip(2) {
            let Some((name, counters)) = Self::parse_line(l) else { continue };
            if !Self::wanted(&self.ifaces, &self.exclude, std::str::from_utf8(name).unwrap_or("")) {
                continue;
            }
            if self.rows.len() == MAXIFACE {
                break;
            }
            let mut n = [0u8; IFNAMSIZ];
            let k = name.len().min(IFNAMSIZ - 1);
            n[..k].copy_from_slice(&name[..k]);
            self.rows.push((n, counters));
        }
        set.transaction_begin(now);
        let r = if self.write_in_place(set) { Ok(()) } else { self.rebuild(set, list_idx) };
        set.transaction_end(end_time(now, t0));
        r
    }
}
