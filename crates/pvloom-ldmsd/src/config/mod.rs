//! ldmsd's configuration language: the file a daemon is started with (`-c`) and the lines
//! `ldmsd_controller` sends, parsed into typed [`Command`]s, each with its file and line.
//!
//! The lexing follows `ldmsd_config.c` / `ldmsd_request_util.c` (see [`lex`]); the verbs and
//! attributes follow the handlers in `ldmsd_request.c`. A verb pvloom does not run, an
//! attribute the verb does not take, a missing required attribute or a bad value is a
//! [`ConfigError`] naming `file:line`; nothing is skipped silently.

pub mod lex;
mod parse;
pub mod time;

use std::collections::BTreeMap;
use std::path::Path;

pub use lex::{Attr, RawCommand};
/// A [`RawCommand`] (verb and attributes, from a line or an LDMSD request) to a [`Cmd`].
pub(crate) use parse::command as command_from_raw;

/// What went wrong on a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The line holds no verb.
    #[error("empty command")]
    Empty,
    /// A verb pvloom does not support (or ldmsd does not know).
    #[error("unsupported command `{0}`")]
    UnknownVerb(String),
    /// An attribute the verb does not take.
    #[error("`{verb}` does not take the attribute `{attr}`")]
    UnknownAttr {
        /// The verb.
        verb: String,
        /// The attribute.
        attr: String,
    },
    /// A required attribute is absent.
    #[error("`{verb}` needs `{attr}=`")]
    Missing {
        /// The verb.
        verb: String,
        /// The attribute.
        attr: String,
    },
    /// An attribute given twice.
    #[error("attribute `{0}` given twice")]
    Duplicate(String),
    /// A value that does not parse.
    #[error("bad value `{value}` for `{attr}`: {why}")]
    BadValue {
        /// The attribute.
        attr: String,
        /// The value as written.
        value: String,
        /// Why it is refused.
        why: String,
    },
    /// A value beginning with `"` that does not end with one.
    #[error("unterminated quote in `{0}`")]
    Quote(String),
    /// A token that is neither `name=value` nor a keyword.
    #[error("bad token `{0}`")]
    BadToken(String),
    /// A feature of the language pvloom does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
}

/// A configuration error at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ConfigError {
    /// The file (or the name given to [`Parser::parse_str`]).
    pub file: String,
    /// 1-based line number where the command starts (0 when the file could not be read).
    pub line: usize,
    /// The problem.
    pub kind: ConfigErrorKind,
}

/// Where an `updtr_match_add` regex is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchSel {
    /// The set instance name (`match=inst`).
    Inst,
    /// The schema name (`match=schema`).
    Schema,
}

/// An updater's push mode (`push=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Push {
    /// Pull on the interval (no `push=`).
    #[default]
    Off,
    /// Push on every transaction end (`push=true` / `yes`).
    Always,
    /// Push when the set changes (`push=onchange`).
    OnChange,
}

/// A producer's connection type (`type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrdcrType {
    /// This daemon connects (`active`).
    Active,
    /// The producer connects to this daemon (`passive`).
    Passive,
}

/// A user or group given by number or by name (`uid=`, `gid=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A numeric id.
    Id(u32),
    /// A name to look up (`/etc/passwd`, `/etc/group`).
    Name(String),
}

/// `config name=...`: a plugin's configuration. The sampler_base attributes are typed;
/// every other attribute is kept in `attrs` and every keyword in `keywords`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PluginConfig {
    /// The plugin instance (configuration) name.
    pub name: String,
    /// `producer=`.
    pub producer: Option<String>,
    /// `instance=`.
    pub instance: Option<String>,
    /// `component_id=`: read as sampler_base does (non-digits before the number skipped).
    pub component_id: Option<u64>,
    /// `schema=` (an empty value means the default).
    pub schema: Option<String>,
    /// `uid=`.
    pub uid: Option<Owner>,
    /// `gid=`.
    pub gid: Option<Owner>,
    /// `perm=`: octal, 1..=0o777.
    pub perm: Option<u32>,
    /// `job_set=`.
    pub job_set: Option<String>,
    /// Other `attr=value` pairs.
    pub attrs: BTreeMap<String, String>,
    /// Bare keywords (e.g. loadavg's `force_integer`).
    pub keywords: Vec<String>,
}

impl PluginConfig {
    /// A configuration with only a name (handy for tests and defaults).
    pub fn named(name: &str) -> PluginConfig {
        PluginConfig { name: name.into(), ..Default::default() }
    }
    /// A plugin-specific attribute.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
    /// True if the keyword was given.
    pub fn has_keyword(&self, kw: &str) -> bool {
        self.keywords.iter().any(|k| k == kw)
    }
}

/// A supported command.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Cmd {
    /// `load name= [plugin=]`: `plugin` defaults to `name`.
    Load { name: String, plugin: String },
    /// `config name= ...`.
    Config(PluginConfig),
    /// `start name= interval= [offset=]` (µs).
    Start { name: String, interval_us: i64, offset_us: Option<i64> },
    /// `stop name=`.
    Stop { name: String },
    /// `term name=`.
    Term { name: String },
    /// `listen xprt= port= [host=] [auth=]`.
    Listen { xprt: String, port: u16, host: Option<String>, auth: Option<String> },
    /// `msg_enable`: the message service on.
    MsgEnable,
    /// `msg_disable`: the message service off (ldmsd's state at start).
    MsgDisable,
    /// `prdcr_subscribe regex= message_channel= [rx_rate=]`: the producers whose names
    /// match `regex` forward the messages named `channel` (a regex when it holds one of
    /// `$()*+.:?[\]^{|}`, as ldmsd guesses) to this daemon, at most `rx_rate` bytes/s
    /// (-1: unlimited). `message_tag=` and the older `stream=` name the channel too. As in
    /// ldmsd it applies to the producers added before it; a later `prdcr_add` is not
    /// subscribed.
    PrdcrSubscribe { regex: String, channel: String, rx_rate: i64 },
    /// `prdcr_unsubscribe regex= message_channel=`: undo a `prdcr_subscribe`.
    PrdcrUnsubscribe { regex: String, channel: String },
    /// `env NAME=value ...`: also applied to the `${NAME}` expansion of later lines.
    Env { vars: Vec<(String, String)> },
    /// `set_memory size=` (bytes, `ovis_get_mem_size` suffixes).
    SetMemory { bytes: u64 },
    /// `prdcr_add name= host= port= xprt= type= reconnect=` (`interval=` is the old name).
    PrdcrAdd {
        name: String,
        host: String,
        port: u16,
        xprt: String,
        ty: PrdcrType,
        reconnect_us: i64,
        auth: Option<String>,
        perm: Option<u32>,
    },
    /// `prdcr_start name= [reconnect=]`.
    PrdcrStart { name: String, reconnect_us: Option<i64> },
    /// `prdcr_start_regex regex= [reconnect=]`.
    PrdcrStartRegex { regex: String, reconnect_us: Option<i64> },
    /// `prdcr_stop name=`.
    PrdcrStop { name: String },
    /// `prdcr_stop_regex regex=`.
    PrdcrStopRegex { regex: String },
    /// `prdcr_del name=`.
    PrdcrDel { name: String },
    /// `updtr_add name= [interval=] [offset=] [push=] [auto_interval=] [perm=]`.
    UpdtrAdd {
        name: String,
        interval_us: Option<i64>,
        offset_us: Option<i64>,
        push: Push,
        auto_interval: bool,
        perm: Option<u32>,
    },
    /// `updtr_prdcr_add name= regex=`.
    UpdtrPrdcrAdd { name: String, regex: String },
    /// `updtr_prdcr_del name= regex=`.
    UpdtrPrdcrDel { name: String, regex: String },
    /// `updtr_match_add name= regex= [match=inst|schema]` (default `inst`).
    UpdtrMatchAdd { name: String, regex: String, sel: MatchSel },
    /// `updtr_start name= [interval=] [offset=] [auto_interval=]`.
    UpdtrStart { name: String, interval_us: Option<i64>, offset_us: Option<i64>, auto_interval: Option<bool> },
    /// `updtr_stop name=`.
    UpdtrStop { name: String },
    /// `updtr_del name=`.
    UpdtrDel { name: String },
    /// `strgp_add name= plugin= container= [schema=] [regex=] [flush=] [perm=]`: one of
    /// `schema` or `regex` is needed.
    StrgpAdd {
        name: String,
        plugin: String,
        container: String,
        schema: Option<String>,
        regex: Option<String>,
        flush_us: Option<i64>,
        perm: Option<u32>,
    },
    /// `strgp_prdcr_add name= regex=`.
    StrgpPrdcrAdd { name: String, regex: String },
    /// `strgp_metric_add name= metric=`.
    StrgpMetricAdd { name: String, metric: String },
    /// `strgp_start name=`.
    StrgpStart { name: String },
    /// `strgp_stop name=`.
    StrgpStop { name: String },
    /// `strgp_del name=`.
    StrgpDel { name: String },
}

/// A command with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// The file name.
    pub file: String,
    /// 1-based line where the command starts.
    pub line: usize,
    /// The command.
    pub cmd: Cmd,
}

/// Where `${VAR}` values come from.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A parser with its environment for `${VAR}` expansion (the process environment unless
/// given, plus whatever `env` lines set).
pub struct Parser {
    lookup: Lookup,
    set: BTreeMap<String, String>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// Expansion from the process environment.
    pub fn new() -> Parser {
        Parser { lookup: Box::new(|k| std::env::var(k).ok()), set: BTreeMap::new() }
    }
    /// Expansion from a fixed map (tests, sandboxes).
    pub fn with_env(env: BTreeMap<String, String>) -> Parser {
        Parser { lookup: Box::new(move |k| env.get(k).cloned()), set: BTreeMap::new() }
    }

    fn var(&self, k: &str) -> Option<String> {
        self.set.get(k).cloned().or_else(|| (self.lookup)(k))
    }

    /// Parse one logical line (no comment or continuation handling beyond that of
    /// [`lex::logical_lines`]): the interactive path. `Ok(None)` for a blank or comment line.
    pub fn parse_line(&mut self, text: &str) -> Result<Option<Cmd>, ConfigErrorKind> {
        let mut lines = lex::logical_lines(text);
        if lines.len() > 1 {
            return Err(ConfigErrorKind::Unsupported("more than one command in a line".into()));
        }
        let Some((no, t)) = lines.pop() else { return Ok(None) };
        let raw = lex::split(no, &t, &|k| self.var(k))?;
        let cmd = parse::command(&raw)?;
        if let Cmd::Env { vars } = &cmd {
            self.set.extend(vars.iter().cloned());
        }
        Ok(Some(cmd))
    }

    /// Parse a whole configuration text; `file` names it in errors. Stops at the first error.
    pub fn parse_str(&mut self, text: &str, file: &str) -> Result<Vec<Command>, ConfigError> {
        let mut out = Vec::new();
        for (line, t) in lex::logical_lines(text) {
            let err = |kind| ConfigError { file: file.to_string(), line, kind };
            let raw = lex::split(line, &t, &|k| self.var(k)).map_err(err)?;
            let cmd = parse::command(&raw).map_err(err)?;
            if let Cmd::Env { vars } = &cmd {
                self.set.extend(vars.iter().cloned());
            }
            out.push(Command { file: file.to_string(), line, cmd });
        }
        Ok(out)
    }

    /// Read and parse a configuration file.
    pub fn parse_file(&mut self, path: &Path) -> Result<Vec<Command>, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            kind: ConfigErrorKind::Io(e.to_string()),
        })?;
        self.parse_str(&text, &file)
    }
}

/// Parse a configuration file with the process environment.
pub fn parse_file(path: &Path) -> Result<Vec<Command>, ConfigError> {
    Parser::new().parse_file(path)
}

/// Parse configuration text with the process environment; `file` names it in errors.
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Command>, ConfigError> {
    Parser::new().parse_str(text, file)
}
