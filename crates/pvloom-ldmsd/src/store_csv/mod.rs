//! ldmsd's `store_csv` plugin: one CSV file per storage policy container and schema, at
//! `<path>/<container>/<schema>`, a `#`-prefixed header line written once when the file is
//! opened for the first set, then one row per update (`store_csv.c`, `store_csv_common.c`,
//! commit 279bd1b8).
//!
//! Supported options: `path` (required), `altheader` (header in `<file>.HEADER`),
//! `time_format` (0: `Time,Time_usec` as `sec.usec,usec`; 1: `Time_msec,Time_usec`),
//! `userdata`, `expand_array` (default true: one column per element, `name0,name1,…`),
//! `array_sep`/`array_lquote`/`array_rquote` (when not expanded), `ietfcsv` (quoted header
//! names and strings), `buffer`/`buffertype`. Rollover (`rollover`, `rolltype`), `typeheader`
//! > 0, `rename_*` and `create_*` are refused as unsupported rather than ignored.

mod cfmt;
pub mod format;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pvloom_ldms::set::{SetData, SetMeta};

use crate::config::PluginConfig;

pub use cfmt::g as printf_g;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bad configuration value.
    #[error("store_csv: {0}")]
    Config(String),
    /// A set or option this store cannot write.
    #[error("store_csv: unsupported: {0}")]
    Unsupported(String),
    /// A metric named by `strgp_metric_add` is not in the set.
    #[error("store_csv: the set has no metric '{0}'")]
    NoMetric(String),
    /// File I/O.
    #[error("store_csv: {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// When rows reach the file (`buffer=`, `buffertype=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// `buffer=0`: after every update.
    Always,
    /// `buffer=1` (default): when the stdio-sized buffer fills, and at close.
    Auto,
    /// `buffer=N buffertype=3`: after every N updates.
    Records(u64),
    /// `buffer=N buffertype=4`: after N KiB written.
    Bytes(u64),
}

/// store_csv's configuration (`config name=store_csv ...`).
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    /// Root directory (`path=`).
    pub path: PathBuf,
    /// Header in a separate `.HEADER` file.
    pub altheader: bool,
    /// `time_format=1`: milliseconds since the epoch and the remaining microseconds.
    pub time_msec: bool,
    /// Print each metric's user data before its value.
    pub userdata: bool,
    /// One column per array element (default true).
    pub expand_array: bool,
    /// Element separator of an unexpanded array (default `:`).
    pub array_sep: char,
    /// Opening quote of an unexpanded array (default `"`).
    pub array_lquote: char,
    /// Closing quote of an unexpanded array (default `"`).
    pub array_rquote: char,
    /// Quote header names and string values.
    pub ietfcsv: bool,
    /// Flush policy.
    pub flush: Flush,
}

fn boolean(cfg: &PluginConfig, key: &str, dflt: bool) -> Result<bool, StoreError> {
    match cfg.get(key) {
        None => Ok(dflt),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "t" => Ok(true),
            "0" | "false" | "no" | "n" | "f" => Ok(false),
            _ => Err(StoreError::Config(format!("{key}={v} is not a boolean"))),
        },
    }
}

fn first_char(cfg: &PluginConfig, key: &str, dflt: char) -> char {
    cfg.get(key).and_then(|v| v.chars().next()).unwrap_or(dflt)
}

impl CsvOptions {
    /// Options with `path` and every default.
    pub fn new(path: impl Into<PathBuf>) -> CsvOptions {
        CsvOptions {
            path: path.into(),
            altheader: false,
            time_msec: false,
            userdata: false,
            expand_array: true,
            array_sep: ':',
            array_lquote: '"',
            array_rquote: '"',
            ietfcsv: false,
            flush: Flush::Auto,
        }
    }

    /// Read the options from `config name=store_csv ...`.
    pub fn from_config(cfg: &PluginConfig) -> Result<CsvOptions, StoreError> {
        let cerr = |m: String| StoreError::Config(m);
        let path = cfg.get("path").ok_or_else(|| cerr("`path` is not set".into()))?;
        for k in [
            "rollover",
            "rolltype",
            "rollempty",
            "rollagain",
            "rename_template",
            "rename_uid",
            "rename_gid",
            "rename_perm",
            "create_uid",
            "create_gid",
            "create_perm",
        ] {
            if cfg.get(k).is_some() {
                return Err(StoreError::Unsupported(format!("{k}=")));
            }
        }
        if cfg.get("typeheader").is_some_and(|v| v != "0") {
            return Err(StoreError::Unsupported("typeheader > 0".into()));
        }
        let mut o = CsvOptions::new(path);
        o.altheader = boolean(cfg, "altheader", false)?;
        o.time_msec = match cfg.get("time_format").unwrap_or("0") {
            "0" => false,
            "1" => true,
            v => return Err(cerr(format!("time_format={v}: 0 or 1"))),
        };
        o.userdata = boolean(cfg, "userdata", false)?;
        o.expand_array = boolean(cfg, "expand_array", true)?;
        o.array_sep = first_char(cfg, "array_sep", ':');
        o.array_lquote = first_char(cfg, "array_lquote", '"');
        o.array_rquote = first_char(cfg, "array_rquote", '"');
        o.ietfcsv = boolean(cfg, "ietfcsv", false)?;
        o.flush = match (cfg.get("buffer"), cfg.get("buffertype")) {
            (None, None) => Flush::Auto,
            (None, Some(_)) => return Err(cerr("buffertype without buffer".into())),
            (Some(b), t) => {
                let n: u64 = b.parse().map_err(|_| cerr(format!("buffer={b}")))?;
                match (n, t) {
                    (0, None) => Flush::Always,
                    (1, None) => Flush::Auto,
                    (0 | 1, Some(_)) => return Err(cerr("no/auto buffer with a buffer type".into())),
                    (_, None) => return Err(cerr("buffer size without buffertype".into())),
                    (n, Some("3")) => Flush::Records(n),
                    (n, Some("4")) => Flush::Bytes(n * 1024),
                    (_, Some(t)) => return Err(cerr(format!("buffertype={t}: 3 or 4"))),
                }
            }
        };
        Ok(o)
    }

    /// The data file of a container and schema: `<path>/<container>/<schema>`.
    pub fn data_path(&self, container: &str, schema: &str) -> PathBuf {
        self.path.join(container).join(schema)
    }

    /// The header file: the data file, or `<data file>.HEADER` with `altheader`.
    pub fn header_path(&self, container: &str, schema: &str) -> PathBuf {
        let p = self.data_path(container, schema);
        if self.altheader {
            let mut s = p.into_os_string();
            s.push(".HEADER");
            s.into()
        } else {
            p
        }
    }
}

/// The columns of a storage policy: the metrics given by `strgp_metric_add`, in that order,
/// or every metric of the set in index order if none were given.
pub fn columns(meta: &SetMeta, metrics: &[String]) -> Result<Vec<usize>, StoreError> {
    if metrics.is_empty() {
        return Ok((0..meta.card()).collect());
    }
    metrics.iter().map(|m| meta.index_of(m).ok_or_else(|| StoreError::NoMetric(m.clone()))).collect()
}

/// One open CSV store (a container and schema).
pub struct CsvStore {
    opts: CsvOptions,
    container: String,
    schema: String,
    metrics: Vec<String>,
    file: BufWriter<File>,
    data_path: PathBuf,
    header_done: bool,
    row: String,
    stores: u64,
    bytes: u64,
    last_flush: u64,
}

impl CsvStore {
    /// Open (append to) `<path>/<container>/<schema>`, creating the container directory.
    /// `metrics` is the strgp's metric list (empty: all).
    pub fn open(opts: &CsvOptions, container: &str, schema: &str, metrics: &[String]) -> Result<CsvStore, StoreError> {
        let dir = opts.path.join(container);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let data_path = opts.data_path(container, schema);
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&data_path)
            .map_err(|source| StoreError::Io { path: data_path.clone(), source })?;
        tracing::debug!(path = %data_path.display(), "store_csv: opened");
        Ok(CsvStore {
            opts: opts.clone(),
            container: container.into(),
            schema: schema.into(),
            metrics: metrics.to_vec(),
            file: BufWriter::with_capacity(4096, f),
            data_path,
            header_done: false,
            row: String::with_capacity(4096),
            stores: 0,
            bytes: 0,
            last_flush: 0,
        })
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io { path: self.data_path.clone(), source }
    }

    /// Write the header (first time) and the row(s) of one consistent update of a set.
    pub fn store(&mut self, meta: &SetMeta, data: &SetData) -> Result<(), StoreError> {
        let cols = columns(meta, &self.metrics)?;
        if !self.header_done {
            let Some(h) = format::header(&self.opts, meta, data, &cols)? else {
                tracing::warn!(set = %meta.instance_name, "store_csv: empty list, header deferred");
                return Ok(());
            };
            let hp = self.opts.header_path(&self.container, &self.schema);
            if self.opts.altheader {
                std::fs::write(&hp, h.as_bytes()).map_err(|source| StoreError::Io { path: hp, source })?;
            } else {
                self.file.write_all(h.as_bytes()).map_err(|e| self.io(e))?;
                self.file.flush().map_err(|e| self.io(e))?;
            }
            self.header_done = true;
        }
        self.row.clear();
        format::rows(&mut self.row, &self.opts, meta, data, &cols, data.trans.ts)?;
        self.file.write_all(self.row.as_bytes()).map_err(|e| self.io(e))?;
        self.stores += 1;
        self.bytes += self.row.len() as u64;
        let due = match self.opts.flush {
            Flush::Always => true,
            Flush::Auto => false,
            Flush::Records(n) => self.stores - self.last_flush >= n,
            Flush::Bytes(n) => self.bytes - self.last_flush >= n,
        };
        if due {
            self.last_flush = if matches!(self.opts.flush, Flush::Bytes(_)) { self.bytes } else { self.stores };
            self.flush()?;
        }
        Ok(())
    }

    /// Push buffered rows to the file (`flush_store`).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.file.flush().map_err(|e| self.io(e))
    }

    /// The data file's path.
    pub fn path(&self) -> &Path {
        &self.data_path
    }
}

impl Drop for CsvStore {
    fn drop(&mut self) {
        if let Err(e) = self.file.flush() {
            tracing::warn!(path = %self.data_path.display(), "store_csv: flush at close failed: {e}");
        }
    }
}
