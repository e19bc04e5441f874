//! An iocsh interpreter for soft-IOC startup scripts (`st.cmd`) and the interactive
//! shell, on top of the [`db`](crate::server::db) database and the CA [`Server`].
//!
//! Each line goes through iocsh's steps: leading blanks skipped; `#` lines are
//! comments (echoed from scripts unless `#-`); the line is macro-expanded against the
//! environment (`epicsEnvSet` values, then the process environment; `$(NAME)`,
//! `${NAME}`, `$(NAME=default)`), a line naming an undefined macro is reported and not
//! run; script lines are echoed; then it is split into words ([`lex`]) and the command
//! runs. `< file` runs another script, `> file` / `2> file` redirect a command's output.
//! An unknown command is reported as base 7.0.10's iocsh does (`ERROR st.cmd line 5: Command 'X' not
//! registered.`; older bases said "Command X not found.") and the script goes on.
//!
//! Records load into a [`Database`] until `iocInit`, which processes `PINI` records,
//! reads the access security file and starts serving (a CA [`Server`] configured
//! from this shell's environment, so `epicsEnvSet("EPICS_CAS_SERVER_PORT", …)` before
//! `iocInit` counts, as in base).

mod commands;
pub mod lex;
pub mod subst;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::db::{Database, DbError, FieldValue, Macros, ParseOptions, parse_db_with};
use super::states::NamedStates;
use super::{AccessRules, DbIoc, Server, ServerConfig};

pub use lex::{LexError, Redirect, Words, split};
pub use subst::{Instance, SubstError, parse_substitutions};

/// Something the shell could not do.
#[derive(Debug, thiserror::Error)]
pub enum IocshError {
    /// A file that cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A database file that does not parse or load.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A substitutions file that does not parse.
    #[error(transparent)]
    Subst(#[from] SubstError),
    /// A template row whose database failed: the row's place, then the database's error.
    #[error("{file}:{line}: {source}")]
    Template {
        /// The substitutions file.
        file: String,
        /// The row's line.
        line: usize,
        /// What went wrong loading it.
        source: Box<IocshError>,
    },
    /// Bad macro definitions (`"P=X:,R"`-style strings).
    #[error("macros {text:?}: {reason}")]
    Macros {
        /// The definitions.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

fn io_error(path: &Path, source: std::io::Error) -> IocshError {
    IocshError::Io { path: path.display().to_string(), source }
}

/// What a line asks the caller to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading.
    Continue,
    /// `exit`: stop this script (or the interactive shell).
    Exit,
}

/// Called when softIoc's exit record (`-x PREFIX`: `PREFIX:exit`) is processed, with
/// the exit status (0 when its `A` is 0, else 1).
pub type ExitHandler = Arc<dyn Fn(i32) + Send + Sync>;

type Sink = Box<dyn Write + Send>;

/// Commands this shell knows, with their argument names (for `help`).
const COMMANDS: &[(&str, &str)] = &[
    ("asSetFilename", "ascf"),
    ("asSetSubstitutions", "substitutions"),
    ("cd", "directory"),
    ("dbLoadDatabase", "file [path] [substitutions]"),
    ("dbLoadRecords", "file [macros]"),
    ("dbLoadTemplate", "file [macros]"),
    ("dbStateClear", "name"),
    ("dbStateCreate", "name"),
    ("dbStateSet", "name"),
    ("dbStateShow", "name level"),
    ("dbStateShowAll", "level"),
    ("dbgf", "'record name'"),
    ("dbl", "'record type' fields"),
    ("dbpf", "'record name' value"),
    ("dbpr", "'record name' 'interest level'"),
    ("echo", "string"),
    ("epicsEnvSet", "name [value]"),
    ("epicsEnvShow", "[name]"),
    ("epicsEnvUnset", "name"),
    ("epicsThreadSleep", "seconds"),
    ("exit", ""),
    ("help", "[command ...]"),
    ("iocInit", ""),
    ("iocshLoad", "pathname [macros]"),
    ("pwd", ""),
];

/// Deepest nesting of `<` and `iocshLoad` (stops include loops).
pub const MAX_SCRIPT_DEPTH: usize = 32;

/// The shell: environment, working directory, the database being loaded, and once
/// `iocInit` ran, the served IOC.
pub struct Iocsh {
    env: BTreeMap<String, String>,
    /// `iocshLoad(file, macros)` scopes, innermost last.
    scopes: Vec<Macros>,
    cwd: PathBuf,
    db: Database,
    ioc: Option<Arc<DbIoc>>,
    server: Option<Server>,
    access_file: Option<PathBuf>,
    access_macros: String,
    access_rules: Option<AccessRules>,
    exit_records: Vec<String>,
    exit_handler: Option<ExitHandler>,
    /// `dbStateCreate`'s states, made before or after `iocInit`.
    states: Arc<NamedStates>,
    out: Sink,
    err: Sink,
    depth: usize,
    errors: usize,
}

impl std::fmt::Debug for Iocsh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iocsh")
            .field("cwd", &self.cwd)
            .field("records", &self.records())
            .field("initialized", &self.ioc.is_some())
            .finish()
    }
}

impl Default for Iocsh {
    fn default() -> Self {
        Iocsh::new()
    }
}

impl Iocsh {
    /// A shell with the process environment, in the current directory, printing to
    /// stdout and stderr.
    pub fn new() -> Self {
        Iocsh {
            env: std::env::vars().collect(),
            scopes: Vec::new(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            db: Database::new(),
            ioc: None,
            server: None,
            access_file: None,
            access_macros: String::new(),
            access_rules: None,
            exit_records: Vec::new(),
            exit_handler: None,
            states: NamedStates::new(),
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            depth: 0,
            errors: 0,
        }
    }

    /// Prints to `out` and `err` instead of stdout and stderr.
    pub fn with_output(mut self, out: impl Write + Send + 'static, err: impl Write + Send + 'static) -> Self {
        self.out = Box::new(out);
        self.err = Box::new(err);
        self
    }

    /// Replaces the environment (the process's by default).
    pub fn with_env(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = env.into_iter().collect();
        self
    }

    /// Sets the working directory that relative paths start from.
    pub fn with_cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = dir.into();
        self
    }

    /// The working directory.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// A variable of this shell's environment.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// Sets a variable (`epicsEnvSet`).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.to_owned(), value.to_owned());
    }

    /// Records loaded (or served, after `iocInit`).
    pub fn records(&self) -> usize {
        match &self.ioc {
            Some(ioc) => ioc.len(),
            None => self.db.len(),
        }
    }

    /// True once `iocInit` ran.
    pub fn is_initialized(&self) -> bool {
        self.ioc.is_some()
    }

    /// The CA server, once `iocInit` ran.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// The served database, once `iocInit` ran.
    pub fn ioc(&self) -> Option<&Arc<DbIoc>> {
        self.ioc.as_ref()
    }

    /// Errors reported while running lines so far.
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// Called when an exit record is processed (see [`Iocsh::load_exit_records`]).
    pub fn set_exit_handler(&mut self, handler: ExitHandler) {
        self.exit_handler = Some(handler);
    }

    /// Access rules to serve with, instead of an `asSetFilename` file (the CLI's
    /// `--access`, which also takes pattern-rule files).
    pub fn set_access_rules(&mut self, rules: AccessRules) {
        self.access_rules = Some(rules);
    }

    /// `asSetFilename`: the `.acf` file read at `iocInit`.
    pub fn set_access_file(&mut self, path: &str) {
        self.access_file = Some(self.resolve(path));
    }

    /// `asSetSubstitutions`: macros expanded in the `.acf` file.
    pub fn set_access_substitutions(&mut self, macros: &str) {
        self.access_macros = macros.to_owned();
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_path_buf() } else { self.cwd.join(path) }
    }

    /// The macros a line is expanded with: the environment, then `iocshLoad` scopes.
    fn line_macros(&self) -> Macros {
        let mut macros = Macros::new();
        for (name, value) in &self.env {
            macros.set(name, value);
        }
        for scope in &self.scopes {
            for (name, value) in scope.pairs() {
                macros.set(name, value);
            }
        }
        macros
    }

    /// Where `include` in a `.db` file looks: `EPICS_DB_INCLUDE_PATH` (as base's
    /// default `dbPath`), else the working directory; then the including file's own
    /// directory (a convenience base lacks).
    fn include_dirs(&self, file: &Path) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = match self.env("EPICS_DB_INCLUDE_PATH") {
            Some(list) if !list.is_empty() => list.split(':').map(|d| self.resolve(d)).collect(),
            _ => vec![self.cwd.clone()],
        };
        if let Some(parent) = file.parent() {
            dirs.push(parent.to_path_buf());
        }
        dirs
    }

    /// `dbLoadRecords(file, macros)`: parses the file and adds its records (a record
    /// already loaded with the same type is amended, as base does). Returns how many
    /// records were new.
    pub fn load_records(&mut self, file: &str, macros: &str) -> Result<usize, IocshError> {
        if self.ioc.is_some() {
            return Err(IocshError::Other("dbLoadRecords: can't load records after iocInit".into()));
        }
        let path = self.resolve(file);
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        self.load_text(&text, file, &path, macros)
    }

    fn load_text(&mut self, text: &str, name: &str, path: &Path, macros: &str) -> Result<usize, IocshError> {
        let parsed =
            Macros::parse(macros).map_err(|e| IocshError::Macros { text: macros.to_owned(), reason: e.reason })?;
        let dirs = self.include_dirs(path);
        let loader = move |include: &str| {
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "not found in the include path");
            for dir in &dirs {
                match std::fs::read_to_string(dir.join(include)) {
                    Ok(text) => return Ok(text),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let db = &self.db;
        let existing = |record: &str| db.find(record).map(|id| db.record(id).record_type());
        let options = ParseOptions { existing: Some(&existing), ..ParseOptions::with_loader(&loader) };
        let defs = parse_db_with(text, name, &parsed, &options)?;
        let max_elements = options.max_elements;
        let mut added = 0;
        for def in defs {
            match self.db.find(&def.name) {
                Some(id) => {
                    let existing = self.db.record(id).record_type();
                    if existing != def.record_type {
                        return Err(DbError {
                            file: def.file.clone(),
                            line: def.line,
                            column: 1,
                            reason: format!(
                                "record {:?} of type {existing} redefined with type {}",
                                def.name, def.record_type
                            ),
                        }
                        .into());
                    }
                    let record = self.db.record_mut(id);
                    for (field, value) in &def.fields {
                        record.load_field(field, value, max_elements).map_err(|e| DbError {
                            file: def.file.clone(),
                            line: def.line,
                            column: 1,
                            reason: format!("can't set \"{}.{field}\" to {value:?}: {e}", def.name),
                        })?;
                    }
                    for (info, value) in &def.info {
                        record.add_info(info, value);
                    }
                    record.init_record();
                }
                None => {
                    let (file, line) = (def.file.clone(), def.line);
                    self.db.add(def.into_record()).map_err(|taken| DbError {
                        file,
                        line,
                        column: 1,
                        reason: taken.to_string(),
                    })?;
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// `dbLoadTemplate(file, macros)`: every row of a substitutions file loads its
    /// template. Template paths are relative to the working directory, as in base.
    pub fn load_template(&mut self, file: &str, macros: &str) -> Result<usize, IocshError> {
        let path = self.resolve(file);
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let cwd = self.cwd.clone();
        let loader = move |name: &str| {
            std::fs::read_to_string(cwd.join(name)).or_else(|_| std::fs::read_to_string(dir.join(name)))
        };
        let instances = parse_substitutions(&text, file, macros, &loader)?;
        let mut added = 0;
        for instance in instances {
            added += self.load_records(&instance.file, &instance.macros).map_err(|e| IocshError::Template {
                file: file.to_owned(),
                line: instance.line,
                source: Box::new(e),
            })?;
        }
        Ok(added)
    }

    /// softIoc's `-x PREFIX`: `PREFIX:exit` (processing it calls the exit handler with
    /// 0 when its `A` is 0, else 1) and `PREFIX:BaseVersion`.
    pub fn load_exit_records(&mut self, prefix: &str) -> Result<(), IocshError> {
        // Base's exit record is a `sub` record calling the registered `exit` function:
        // here the put watcher does what that function does.
        let version = self.env("EPICS_VERSION_FULL").map(str::to_owned);
        let version = version.unwrap_or_else(|| format!("pvloom {}", env!("CARGO_PKG_VERSION")));
        let text = format!(
            "record(sub, \"$(IOC):exit\") {{\n    field(DESC, \"Exit subroutine\")\n    field(SCAN, \"Passive\")\n    field(SNAM, \"exit\")\n}}\n\
             record(stringin, \"$(IOC):BaseVersion\") {{\n    field(DESC, \"EPICS Base Version\")\n    \
             field(VAL, \"{}\")\n    field(PINI, \"YES\")\n    field(DISP, 1)\n}}\n",
            version.escape_default()
        );
        let macros = format!("IOC={prefix}");
        self.load_text(&text, "softIocExit.db", &self.cwd.join("softIocExit.db"), &macros)?;
        self.exit_records.push(format!("{prefix}:exit"));
        Ok(())
    }

    /// `iocInit`: processes `PINI` records, reads the access security file, and serves.
    pub fn init(&mut self) -> Result<(), IocshError> {
        if self.ioc.is_some() {
            return Err(IocshError::Other("iocInit: the IOC is already initialized".into()));
        }
        let rules = match (&self.access_rules, &self.access_file) {
            (Some(rules), _) => rules.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
                let macros = Macros::parse(&self.access_macros)
                    .map_err(|e| IocshError::Macros { text: self.access_macros.clone(), reason: e.reason })?;
                let mut expanded = String::with_capacity(text.len());
                for (n, line) in text.lines().enumerate() {
                    let line = macros
                        .expand(line)
                        .map_err(|e| IocshError::Other(format!("{}:{}: {}", path.display(), n + 1, e.reason)))?;
                    expanded.push_str(&line);
                    expanded.push('\n');
                }
                AccessRules::from_file_text(&expanded)
                    .map_err(|e| IocshError::Other(format!("access security {}: {e}", path.display())))?
            }
            (None, None) => AccessRules::new(),
        };
        let mut db = std::mem::take(&mut self.db);
        let now = SystemTime::now();
        db.start_watchdogs(now);
        let pini: Vec<_> = db.ids().filter(|&id| db.record(id).pini()).collect();
        for id in pini {
            db.process(id, now);
        }
        let records = db.len();
        let ioc = DbIoc::with_states(db, self.states.clone());
        let env = self.env.clone();
        let config = ServerConfig::from_lookup(|name| env.get(name).cloned());
        let server = Server::builder()
            .config(config)
            .access_rules(rules)
            .start()
            .map_err(|e| IocshError::Other(format!("iocInit: starting the CA server: {e}")))?;
        ioc.serve(&server);
        for name in &self.exit_records {
            let handler = self.exit_handler.clone();
            ioc.watch_puts(
                name,
                Arc::new(move |record, field| {
                    // What processes a sub record: its value, PROC, or an input A..L.
                    let processes =
                        matches!(field, "VAL" | "PROC") || (field.len() == 1 && ("A"..="L").contains(&field));
                    if !processes {
                        return;
                    }
                    let a = record.get_field("A").and_then(|v| v.as_f64()).unwrap_or(0.0);
                    let code = if a == 0.0 { 0 } else { 1 };
                    tracing::info!("exit record {} processed: exit status {code}", record.name());
                    if let Some(handler) = &handler {
                        handler(code);
                    }
                }),
            );
        }
        let _ = writeln!(self.out, "pvloom ioc: {records} records served on port {}", server.port());
        let _ = writeln!(self.out, "iocRun: All initialization complete");
        let _ = self.out.flush();
        self.ioc = Some(ioc);
        self.server = Some(server);
        Ok(())
    }

    /// Runs a script file (`iocsh st.cmd`). Errors inside it are reported and counted,
    /// not returned (iocsh goes on); only a file that cannot be read is an error.
    pub fn run_file(&mut self, path: &str) -> Result<(), IocshError> {
        let full = self.resolve(path);
        let text = std::fs::read_to_string(&full).map_err(|e| io_error(&full, e))?;
        if self.depth == 0 {
            self.set_env("IOCSH_STARTUP_SCRIPT", path);
        }
        // iocsh names a script by its last path component.
        let name = Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.run_script(&text, &name);
        Ok(())
    }

    /// Runs the lines of a script named `name` (for messages).
    pub fn run_script(&mut self, text: &str, name: &str) {
        for (index, raw) in text.lines().enumerate() {
            if self.run_line(raw, Some((name, index + 1))) == Flow::Exit {
                break;
            }
        }
        let _ = self.out.flush();
    }

    /// The interactive shell: a prompt (`IOCSH_PS1`, default `epics> `) when `prompt`,
    /// lines from `input` until EOF or `exit`; true if `exit` ended it.
    pub fn run_interactive(&mut self, input: &mut dyn BufRead, prompt: bool) -> bool {
        let mut line = String::new();
        let mut exited = false;
        loop {
            if prompt {
                let ps1 = self.env("IOCSH_PS1").unwrap_or("epics> ").to_owned();
                let _ = write!(self.out, "{ps1}");
                let _ = self.out.flush();
            }
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if self.run_line(line.trim_end_matches(['\n', '\r']), None) == Flow::Exit {
                exited = true;
                break;
            }
            let _ = self.out.flush();
        }
        let _ = self.out.flush();
        exited
    }

    fn report(&mut self, at: Option<(&str, usize)>, message: &str) {
        self.errors += 1;
        let _ = match at {
            Some((file, line)) => writeln!(self.err, "ERROR {file} line {line}: {message}"),
            // Typed lines: base's iocsh prints the bare message.
            None => writeln!(self.err, "{message}"),
        };
        let _ = self.err.flush();
    }

    /// Runs one line; `at` is (script name, line number), `None` when typed.
    pub fn run_line(&mut self, raw: &str, at: Option<(&str, usize)>) -> Flow {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() {
            return Flow::Continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if at.is_some() && !comment.starts_with('-') {
                let _ = writeln!(self.out, "{raw}");
            }
            return Flow::Continue;
        }
        let line = match self.line_macros().expand_all(raw) {
            Ok(line) => line,
            Err(e) => {
                self.report(at, &format!("macLib: {} (expanding string {raw})", e.reason));
                return Flow::Continue;
            }
        };
        if at.is_some() {
            let _ = writeln!(self.out, "{line}");
        }
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            return Flow::Continue;
        }
        let words = match split(line) {
            Ok(words) => words,
            Err(e) => {
                self.report(at, &e.to_string());
                return Flow::Continue;
            }
        };
        if words.argv.is_empty() {
            if let Some(input) = words.redirects.iter().find(|r| r.fd == 0) {
                self.include(&input.path.clone(), None, at);
            }
            return Flow::Continue;
        }
        if words.argv[0] == "exit" {
            return Flow::Exit;
        }
        // Output redirections: the command writes to the files instead.
        let mut saved: Vec<(u8, Sink)> = Vec::new();
        for redirect in words.redirects.iter().filter(|r| r.fd == 1 || r.fd == 2) {
            let path = self.resolve(&redirect.path);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(redirect.append)
                .truncate(!redirect.append)
                .open(&path);
            match file {
                Ok(file) => {
                    let sink: Sink = Box::new(file);
                    let old = if redirect.fd == 1 {
                        std::mem::replace(&mut self.out, sink)
                    } else {
                        std::mem::replace(&mut self.err, sink)
                    };
                    saved.push((redirect.fd, old));
                }
                Err(e) => {
                    self.restore(saved);
                    self.report(at, &format!("Can't open \"{}\": {e}", redirect.path));
                    return Flow::Continue;
                }
            }
        }
        let args: Vec<&str> = words.argv.iter().map(String::as_str).collect();
        self.command(&args, at);
        let _ = self.out.flush();
        self.restore(saved);
        Flow::Continue
    }

    fn restore(&mut self, saved: Vec<(u8, Sink)>) {
        for (fd, sink) in saved.into_iter().rev() {
            let _ = if fd == 1 { self.out.flush() } else { self.err.flush() };
            if fd == 1 {
                self.out = sink;
            } else {
                self.err = sink;
            }
        }
    }

    fn include(&mut self, path: &str, macros: Option<&str>, at: Option<(&str, usize)>) {
        if self.depth >= MAX_SCRIPT_DEPTH {
            self.report(at, &format!("{path}: scripts nested too deeply (include loop?)"));
            return;
        }
        let scope = match macros.map(Macros::parse).transpose() {
            Ok(scope) => scope,
            Err(e) => {
                self.report(at, &format!("iocshLoad: macros {macros:?}: {}", e.reason));
                return;
            }
        };
        let pushed = scope.is_some();
        if let Some(scope) = scope {
            self.scopes.push(scope);
        }
        self.depth += 1;
        let result = self.run_file(path);
        self.depth -= 1;
        if pushed {
            self.scopes.pop();
        }
        if let Err(e) = result {
            let message = match &e {
                IocshError::Io { source, .. } => format!("Can't open {path}: {source}"),
                other => other.to_string(),
            };
            self.report(at, &message);
        }
    }

    fn command(&mut self, args: &[&str], at: Option<(&str, usize)>) {
        let arg = |i: usize| args.get(i).copied();
        let name = args[0];
        match name {
            "epicsEnvSet" => match (arg(1), arg(2)) {
                (Some(var), value) => self.set_env(var, value.unwrap_or("")),
                (None, _) => {
                    let _ = writeln!(self.err, "Usage: epicsEnvSet name [value]");
                }
            },
            "epicsEnvUnset" => match arg(1) {
                Some(var) => {
                    self.env.remove(var);
                }
                None => {
                    let _ = writeln!(self.err, "Usage: epicsEnvUnset name");
                }
            },
            "epicsEnvShow" => match arg(1) {
                Some(var) => {
                    let text = match self.env(var) {
                        Some(value) => format!("{var}={value}"),
                        None => format!("{var} is not an environment variable."),
                    };
                    let _ = writeln!(self.out, "{text}");
                }
                None => {
                    let text: String = self.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    let _ = write!(self.out, "{text}");
                }
            },
            "echo" => {
                let _ = writeln!(self.out, "{}", args[1..].join(" "));
            }
            "pwd" => {
                let _ = writeln!(self.out, "{}", self.cwd.display());
            }
            "cd" => match arg(1) {
                Some(dir) => {
                    let target = self.resolve(dir);
                    match std::fs::canonicalize(&target) {
                        Ok(full) if full.is_dir() => self.cwd = full,
                        Ok(_) => self.report(at, &format!("cd {dir}: not a directory")),
                        Err(e) => self.report(at, &format!("cd {dir}: {e}")),
                    }
                }
                None => self.report(at, "Missing directory name"),
            },
            "epicsThreadSleep" => {
                let seconds = arg(1).and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite()).unwrap_or(0.0);
                // Bounded: a script's pause, never a hang.
                std::thread::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
            }
            "iocshLoad" | "iocsh" => match arg(1) {
                Some(path) => self.include(path, arg(2), at),
                None => self.report(at, &format!("Usage: {name} pathname [macros]")),
            },
            "dbLoadRecords" => match arg(1) {
                Some(file) => {
                    if let Err(e) = self.load_records(file, arg(2).unwrap_or("")) {
                        self.report(at, &format!("dbLoadRecords(\"{file}\"): {e}"));
                    }
                }
                None => self.report(at, "Usage: dbLoadRecords file [macros]"),
            },
            "dbLoadTemplate" => match arg(1) {
                Some(file) => {
                    if let Err(e) = self.load_template(file, arg(2).unwrap_or("")) {
                        self.report(at, &format!("dbLoadTemplate(\"{file}\"): {e}"));
                    }
                }
                None => self.report(at, "must specify variable substitution file"),
            },
            "dbLoadDatabase" => match arg(1) {
                // A .dbd defines record types and device support, compiled into pvloom.
                Some(file) if file.ends_with(".dbd") => {
                    tracing::info!("dbLoadDatabase(\"{file}\"): record types are built in, nothing to load");
                }
                Some(file) => {
                    if let Err(e) = self.load_records(file, arg(3).unwrap_or("")) {
                        self.report(at, &format!("dbLoadDatabase(\"{file}\"): {e}"));
                    }
                }
                None => self.report(at, "Usage: dbLoadDatabase file [path] [substitutions]"),
            },
            "asSetFilename" => match arg(1) {
                Some(file) => self.set_access_file(file),
                None => self.access_file = None,
            },
            "asSetSubstitutions" => self.set_access_substitutions(arg(1).unwrap_or("")),
            "iocInit" => {
                if let Err(e) = self.init() {
                    self.report(at, &e.to_string());
                }
            }
            "dbl" => {
                let text = self.with_db(|db| commands::dbl(db, arg(1), arg(2)));
                let _ = write!(self.out, "{text}");
            }
            "dbpr" => match arg(1) {
                Some(record) => {
                    let level = arg(2).and_then(|l| l.parse().ok()).unwrap_or(0);
                    let text = self.with_db(|db| commands::dbpr(db, record, level));
                    let _ = write!(self.out, "{text}");
                }
                None => {
                    let _ = writeln!(self.out, "Usage: dbpr \"pv name\", level");
                }
            },
            "dbgf" => match (arg(1), &self.ioc) {
                (None, _) => {
                    let _ = writeln!(self.out, "Usage: dbgf \"pv name\"");
                }
                (Some(_), None) => {
                    let _ = writeln!(self.out, "dbgf only works after iocInit");
                }
                (Some(record), Some(ioc)) => {
                    let text = ioc.with_database(|db| commands::dbgf(db, record));
                    let _ = write!(self.out, "{text}");
                }
            },
            "dbpf" => self.dbpf(arg(1), arg(2), at),
            // As base: a missing name or an unknown state is ignored without a word.
            "dbStateCreate" => {
                if let Some(state) = arg(1) {
                    self.states.create(state);
                }
            }
            "dbStateSet" | "dbStateClear" => {
                if let Some(state) = arg(1) {
                    self.states.change(state, name == "dbStateSet");
                }
            }
            "dbStateShow" | "dbStateShowAll" => {
                let all = name == "dbStateShowAll";
                let level: i64 = arg(if all { 1 } else { 2 }).and_then(|l| l.parse().ok()).unwrap_or(0);
                let wanted = if all { None } else { arg(1) };
                for (state, set) in self.states.list() {
                    if wanted.is_some_and(|w| w != state) || (!all && wanted.is_none()) {
                        continue;
                    }
                    let value = if set { "TRUE" } else { "FALSE" };
                    let _ = if all || level >= 1 {
                        writeln!(self.out, "'{state}' : {value}")
                    } else {
                        writeln!(self.out, "{value}")
                    };
                }
            }
            "help" => self.help(&args[1..]),
            _ if name.ends_with("_registerRecordDeviceDriver") => {
                tracing::info!("{name}: record and device support are built in, nothing to register");
            }
            _ => self.report(at, &format!("Command '{name}' not registered.")),
        }
    }

    fn with_db<R>(&self, f: impl FnOnce(&Database) -> R) -> R {
        match &self.ioc {
            Some(ioc) => ioc.with_database(f),
            None => f(&self.db),
        }
    }

    fn dbpf(&mut self, name: Option<&str>, value: Option<&str>, at: Option<(&str, usize)>) {
        let (Some(name), Some(value)) = (name, value) else {
            let _ = writeln!(self.out, "Usage: dbpf \"pv name\", \"value\"");
            return;
        };
        let Some(ioc) = self.ioc.clone() else {
            let _ = writeln!(self.out, "dbpf only works after iocInit");
            return;
        };
        let put: Option<FieldValue> = ioc.with_database(|db| {
            let (id, field) = db.resolve(name)?;
            Some(commands::put_value(db.record(id), field, value))
        });
        let Some(put) = put else {
            let _ = writeln!(self.out, "PV '{name}' not found");
            return;
        };
        if let Err(e) = ioc.put(name, put) {
            self.report(at, &format!("dbpf {name}: {e}"));
        }
        let text = ioc.with_database(|db| commands::dbgf(db, name));
        let _ = write!(self.out, "{text}");
    }

    fn help(&mut self, names: &[&str]) {
        let mut text = String::new();
        if names.is_empty() {
            for (i, (name, _)) in COMMANDS.iter().enumerate() {
                text.push_str(&format!("{name:<20}"));
                if i % 4 == 3 {
                    text.push('\n');
                }
            }
            text.push_str("\n\nType 'help <command>' to see the arguments of <command>.\n");
        } else {
            for want in names {
                for (name, args) in COMMANDS.iter().filter(|(n, _)| glob(want, n)) {
                    text.push_str(&format!("\n{name} {args}\n"));
                }
            }
        }
        let _ = write!(self.out, "{text}");
    }
}

/// `*` and `?` glob matching (help's command patterns).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests;
