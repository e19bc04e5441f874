//! The `.db` file parser and macro substitution (`dbLex.l`, `dbYacc.y`, `macCore.c`).
//!
//! Grammar (whitespace and `#` comments between tokens):
//!
//! ```text
//! database := item*
//! item     := "include" STRING
//!           | ("record" | "grecord") "(" TYPE "," NAME ")" body?
//!           | "alias" "(" NAME "," ALIAS ")"
//! body     := "{" ( "field" "(" NAME "," VALUE ")"
//!               | "info" "(" NAME "," VALUE ")"
//!               | "alias" "(" ALIAS ")" )* "}"
//! ```
//!
//! Strings are `"quoted"` (C escapes translated, no newlines) or bare
//! words of `[A-Za-z0-9_+:.;<>\[\]-]`; a `VALUE` may also be a JSON-like
//! `[...]` or `{...}` kept as text. The record type `*` amends an existing
//! record. Macros `$(NAME)`, `${NAME}`, `$(NAME=default)` and scoped
//! `$(NAME,X=1)` are expanded line by line before parsing, except in
//! comments and inside single quotes.

use std::collections::HashMap;
use std::io;

use super::DbError;
use super::rec::RecordType;
use super::record::Record;

/// Deepest macro nesting accepted before expansion is declared runaway.
pub const MAX_MACRO_DEPTH: usize = 64;
/// Longest result of expanding one line.
pub const MAX_EXPANDED_LINE: usize = 1 << 20;
/// Longest record name (EPICS' `PVNAME_STRINGSZ` - 1).
pub const MAX_RECORD_NAME: usize = 60;

/// A set of macro definitions, as given to `dbLoadRecords` or `softIoc -m`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Macros {
    defs: Vec<(String, String)>,
}

/// Why a macro definition string or an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct MacroError {
    /// Byte offset in the expanded text where the problem starts.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl Macros {
    /// No macros.
    pub fn new() -> Self {
        Macros::default()
    }

    /// Parses `"P=XF:,R=1"` (`macParseDefns`): pairs separated by commas,
    /// whitespace around names and values ignored, values may be quoted
    /// (`'` or `"`, quotes removed on expansion) and may contain escapes
    /// and references to other macros. A name without `=` is ignored.
    pub fn parse(defs: &str) -> Result<Self, MacroError> {
        let mut macros = Macros::new();
        let bytes = defs.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            let name_start = i;
            let (name_end, next) = scan_definition(bytes, i, b"=,");
            let name = defs[name_start..name_end].trim().to_string();
            i = next;
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let value_start = i;
                let (value_end, next) = scan_definition(bytes, i, b",");
                let value = defs[value_start..value_end].trim_end().to_string();
                i = next;
                if name.is_empty() {
                    return Err(MacroError { offset: name_start, reason: "macro definition without a name".into() });
                }
                macros.set(&name, &value);
            }
        }
        Ok(macros)
    }

    /// Defines (or redefines) `name` with the raw `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.defs.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.defs.push((name.to_string(), value.to_string())),
        }
    }

    /// A copy with `name` defined as well.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.set(name, value);
        self
    }

    /// Every definition, raw, in definition order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.defs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The raw (unexpanded) value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.defs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Expands every macro reference in `text` (one line of a file).
    pub fn expand(&self, text: &str) -> Result<String, MacroError> {
        self.expand_with(text, true)
    }

    /// Expands every macro reference in `text`, a `#` included: an iocsh line is
    /// expanded whole (macLib knows no comments; iocsh skips `#` lines before).
    pub fn expand_all(&self, text: &str) -> Result<String, MacroError> {
        self.expand_with(text, false)
    }

    fn expand_with(&self, text: &str, comments: bool) -> Result<String, MacroError> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let mut expander = Expander { macros: self, scopes: Vec::new(), visiting: Vec::new() };
        let mut out = Vec::new();
        let end = expander.trans(text.as_bytes(), 0, 0, b"", &mut Some(&mut out), comments)?;
        debug_assert_eq!(end, text.len());
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Scans a name or value of a definition string up to an unquoted,
/// unescaped terminator; returns (end, position of the terminator).
fn scan_definition(bytes: &[u8], mut i: usize, terms: &[u8]) -> (usize, usize) {
    let mut quote = 0u8;
    while i < bytes.len() {
        let c = bytes[i];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'\'' || c == b'"' {
            quote = c;
        } else if c == b'\\' && i + 1 < bytes.len() {
            i += 2;
            continue;
        } else if terms.contains(&c) {
            return (i, i);
        }
        i += 1;
    }
    (i, i)
}

struct Expander<'a> {
    macros: &'a Macros,
    scopes: Vec<(String, String)>,
    visiting: Vec<String>,
}

type Out<'o> = Option<&'o mut Vec<u8>>;

impl Expander<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        self.macros.get(name).map(str::to_string)
    }

    fn push(out: &mut Out<'_>, bytes: &[u8], at: usize) -> Result<(), MacroError> {
        if let Some(out) = out {
            if out.len() + bytes.len() > MAX_EXPANDED_LINE {
                return Err(MacroError { offset: at, reason: "macro expansion is too long".into() });
            }
            out.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Copies/expands `src[pos..]` up to a terminator in `terms` (at the top
    /// level: to the end), returning the terminator's position. At `level` > 0
    /// quotes and escapes are removed (they are the macro writer's, not the file's).
    fn trans(
        &mut self,
        src: &[u8],
        mut pos: usize,
        level: usize,
        terms: &[u8],
        out: &mut Out<'_>,
        top: bool,
    ) -> Result<usize, MacroError> {
        let discard = level > 0;
        let mut quote = 0u8;
        while pos < src.len() {
            let c = src[pos];
            if quote == 0 && terms.contains(&c) {
                return Ok(pos);
            }
            if quote != 0 {
                if c == quote {
                    quote = 0;
                    if discard {
                        pos += 1;
                        continue;
                    }
                }
            } else if c == b'"' || c == b'\'' {
                quote = c;
                if discard {
                    pos += 1;
                    continue;
                }
            } else if top && c == b'#' {
                // A comment: the rest of the line is copied untouched.
                Self::push(out, &src[pos..], pos)?;
                return Ok(src.len());
            }
            if c == b'$' && quote != b'\'' && matches!(src.get(pos + 1), Some(b'(' | b'{')) {
                pos = self.refer(src, pos, level, out)?;
                continue;
            }
            if c == b'\\' && pos + 1 < src.len() {
                if !discard {
                    Self::push(out, &src[pos..pos + 1], pos)?;
                }
                Self::push(out, &src[pos + 1..pos + 2], pos)?;
                pos += 2;
                continue;
            }
            Self::push(out, &src[pos..pos + 1], pos)?;
            pos += 1;
        }
        if !terms.is_empty() {
            return Err(MacroError { offset: pos, reason: "unterminated macro reference".into() });
        }
        Ok(pos)
    }

    /// Expands the reference starting at `src[start] == '$'`; returns the position after it.
    fn refer(&mut self, src: &[u8], start: usize, level: usize, out: &mut Out<'_>) -> Result<usize, MacroError> {
        if level >= MAX_MACRO_DEPTH {
            return Err(MacroError { offset: start, reason: "macros nested too deeply".into() });
        }
        let close = if src[start + 1] == b'(' { b')' } else { b'}' };
        let terms_name = [b'=', b',', close];
        let terms_value = [b',', close];
        let mut name = Vec::new();
        let mut pos = self.trans(src, start + 2, level + 1, &terms_name, &mut Some(&mut name), false)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let mut default = None;
        if src[pos] == b'=' {
            default = Some(pos + 1);
            pos = self.trans(src, pos + 1, level + 1, &terms_value, &mut None, false)?;
        }
        let scopes_before = self.scopes.len();
        while src[pos] == b',' {
            let mut sub = Vec::new();
            pos = self.trans(src, pos + 1, level + 1, &terms_name, &mut Some(&mut sub), false)?;
            if src[pos] == b'=' {
                let mut value = Vec::new();
                pos = self.trans(src, pos + 1, level + 1, &terms_value, &mut Some(&mut value), false)?;
                let sub = String::from_utf8_lossy(&sub).trim().to_string();
                self.scopes.push((sub, String::from_utf8_lossy(&value).into_owned()));
            }
        }
        let end = pos + 1; // past the closing bracket
        if out.is_none() {
            // Only finding the end of an unused default value.
            self.scopes.truncate(scopes_before);
            return Ok(end);
        }
        let result = match self.lookup(&name) {
            Some(raw) => {
                if self.visiting.contains(&name) {
                    Err(MacroError { offset: start, reason: format!("macro {name:?} is recursive") })
                } else {
                    self.visiting.push(name.clone());
                    let mut buf = Vec::new();
                    let r = self.trans(raw.as_bytes(), 0, level + 1, b"", &mut Some(&mut buf), false);
                    self.visiting.pop();
                    r.and_then(|_| Self::push(out, &buf, start)).map_err(|e| MacroError { offset: start, ..e })
                }
            }
            None => match default {
                Some(at) => self.trans(src, at, level + 1, &terms_value, out, false).map(|_| ()),
                None => Err(MacroError { offset: start, reason: format!("macro {name:?} is undefined") }),
            },
        };
        self.scopes.truncate(scopes_before);
        result.map(|_| end)
    }
}

/// Reads an included file by name: the include loader of [`ParseOptions`].
pub type IncludeLoader = dyn Fn(&str) -> io::Result<String>;

/// Options of [`parse_db_with`].
#[derive(Clone, Copy)]
pub struct ParseOptions<'a> {
    /// Reads an included file by the name given in `include "name"`. Without
    /// a loader, `include` is an error naming the file.
    pub loader: Option<&'a IncludeLoader>,
    /// Largest waveform `NELM` accepted (default 16 Mi elements).
    pub max_elements: u32,
    /// Deepest nesting of includes (default 16), which also stops include cycles.
    pub max_include_depth: usize,
    /// Largest input accepted, per file, in bytes (default 64 MiB).
    pub max_file_len: usize,
    /// Records loaded before this file (by earlier `dbLoadRecords`), by name: the type
    /// of `record(*, NAME)` when `NAME` is not in this file. Without it `*` only
    /// amends records of the same file.
    pub existing: Option<&'a ExistingRecords<'a>>,
}

/// The type of a record loaded before, by name (see [`ParseOptions::existing`]).
pub type ExistingRecords<'a> = dyn Fn(&str) -> Option<RecordType> + 'a;

impl Default for ParseOptions<'_> {
    fn default() -> Self {
        ParseOptions {
            loader: None,
            max_elements: 16 * 1024 * 1024,
            max_include_depth: 16,
            max_file_len: 64 << 20,
            existing: None,
        }
    }
}

impl std::fmt::Debug for ParseOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseOptions")
            .field("loader", &self.loader.is_some())
            .field("max_elements", &self.max_elements)
            .field("max_include_depth", &self.max_include_depth)
            .field("max_file_len", &self.max_file_len)
            .field("existing", &self.existing.is_some())
            .finish()
    }
}

impl<'a> ParseOptions<'a> {
    /// Default options with an include loader.
    pub fn with_loader(loader: &'a IncludeLoader) -> Self {
        ParseOptions { loader: Some(loader), ..ParseOptions::default() }
    }
}

/// One record as a database file defines it (all its `record(...)` blocks
/// merged), already validated: every field value has been applied to a
/// [`Record`] of its type.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordDef {
    /// The record type.
    pub record_type: RecordType,
    /// The record name.
    pub name: String,
    /// `field(NAME, value)` items in file order (later ones win).
    pub fields: Vec<(String, String)>,
    /// `info(name, value)` items.
    pub info: Vec<(String, String)>,
    /// Alias names.
    pub aliases: Vec<String>,
    /// File of the first definition.
    pub file: String,
    /// Line of the first definition.
    pub line: usize,
    record: Record,
}

impl RecordDef {
    /// The record built from this definition.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Gives the built record.
    pub fn into_record(self) -> Record {
        self.record
    }
}

/// Parses a database file with no include loader and default limits.
pub fn parse_db(text: &str, file: &str, macros: &Macros) -> Result<Vec<RecordDef>, DbError> {
    parse_db_with(text, file, macros, &ParseOptions::default())
}

/// Parses a database file: macro substitution, includes through
/// `options.loader`, record and field validation. Errors name the file,
/// line and column.
pub fn parse_db_with(
    text: &str,
    file: &str,
    macros: &Macros,
    options: &ParseOptions<'_>,
) -> Result<Vec<RecordDef>, DbError> {
    let mut state = State { defs: Vec::new(), names: HashMap::new() };
    parse_file(text, file, macros, options, 0, &mut state)?;
    for def in &mut state.defs {
        // The initial severity follows UDF as the file left it: base sets it before
        // init_record loads constant links (which leaves SEVR as it was).
        def.record.init_alarm();
        def.record.init_record();
    }
    Ok(state.defs)
}

struct State {
    defs: Vec<RecordDef>,
    /// Record names and aliases → index into `defs`.
    names: HashMap<String, usize>,
}

fn parse_file(
    text: &str,
    file: &str,
    macros: &Macros,
    options: &ParseOptions<'_>,
    depth: usize,
    state: &mut State,
) -> Result<(), DbError> {
    let err = |line: usize, column: usize, reason: String| DbError { file: file.to_string(), line, column, reason };
    if text.len() > options.max_file_len {
        return Err(err(1, 1, format!("file is larger than the limit of {} bytes", options.max_file_len)));
    }
    let mut expanded = String::with_capacity(text.len());
    let mut total = 0usize;
    for (index, line) in text.split('\n').enumerate() {
        let line_out = macros.expand(line).map_err(|e| err(index + 1, e.offset + 1, e.reason))?;
        total += line_out.len() + 1;
        if total > options.max_file_len {
            return Err(err(index + 1, 1, "macro expansion makes the file too large".into()));
        }
        if index > 0 {
            expanded.push('\n');
        }
        expanded.push_str(&line_out);
    }
    let mut parser = Parser { src: expanded.as_bytes(), text: &expanded, pos: 0, file, line_starts: Vec::new() };
    parser.line_starts = std::iter::once(0).chain(expanded.match_indices('\n').map(|(i, _)| i + 1)).collect();
    parser.database(macros, options, depth, state)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    LBrace,
    RBrace,
    Comma,
    Str(String),
    Bare(String),
    Json(String),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Comma => "','".into(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Bare(s) | Tok::Json(s) => format!("'{s}'"),
            Tok::Eof => "end of file".into(),
        }
    }

    fn text(self) -> Option<String> {
        match self {
            Tok::Str(s) | Tok::Bare(s) | Tok::Json(s) => Some(s),
            _ => None,
        }
    }
}

fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_-+:.[]<>;".contains(&c)
}

struct Parser<'t> {
    src: &'t [u8],
    text: &'t str,
    pos: usize,
    file: &'t str,
    line_starts: Vec<usize>,
}

const DBD_KEYWORDS: [&str; 10] =
    ["menu", "recordtype", "device", "driver", "link", "registrar", "function", "variable", "breaktable", "path"];

impl Parser<'_> {
    fn location(&self, pos: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= pos);
        let start = self.line_starts[line - 1];
        let column = self.text[start..pos.min(self.text.len())].chars().count() + 1;
        (line, column)
    }

    fn error_at(&self, pos: usize, reason: impl Into<String>) -> DbError {
        let (line, column) = self.location(pos);
        DbError { file: self.file.to_string(), line, column, reason: reason.into() }
    }

    fn skip_blank(&mut self) {
        while self.pos < self.src.len() {
            match self.src[self.pos] {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' => {
                    while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Reads the next token; `value` allows a JSON-like `[...]`/`{...}` value.
    fn next(&mut self, value: bool) -> Result<(Tok, usize), DbError> {
        self.skip_blank();
        let start = self.pos;
        let Some(&c) = self.src.get(self.pos) else {
            return Ok((Tok::Eof, start));
        };
        let tok = match c {
            b'(' => Tok::Open,
            b')' => Tok::Close,
            b',' => Tok::Comma,
            b'{' if value => return self.json(start),
            b'[' if value => return self.json(start),
            b'{' => Tok::LBrace,
            b'}' => Tok::RBrace,
            b'"' => return self.quoted(start),
            c if is_bare(c) => {
                let mut end = start;
                while end < self.src.len() && is_bare(self.src[end]) {
                    end += 1;
                }
                self.pos = end;
                return Ok((Tok::Bare(self.text[start..end].to_string()), start));
            }
            c => {
                let shown = self.text[start..].chars().next().unwrap_or('?');
                let reason = if c.is_ascii_graphic() {
                    format!("invalid character '{shown}'")
                } else {
                    format!("invalid character {shown:?}")
                };
                return Err(self.error_at(start, reason));
            }
        };
        self.pos += 1;
        Ok((tok, start))
    }

    fn quoted(&mut self, start: usize) -> Result<(Tok, usize), DbError> {
        let mut i = start + 1;
        let mut out = String::new();
        loop {
            match self.src.get(i) {
                None | Some(b'\n') => {
                    return Err(self.error_at(start, "unterminated string: closing quote missing"));
                }
                Some(b'"') => break,
                Some(b'\\') if i + 1 < self.src.len() && self.src[i + 1] != b'\n' => {
                    let (ch, used) = translate_escape(&self.text[i + 1..]);
                    out.push(ch);
                    i += 1 + used;
                }
                Some(_) => {
                    let ch = self.text[i..].chars().next().unwrap_or('?');
                    out.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        self.pos = i + 1;
        Ok((Tok::Str(out), start))
    }

    /// A JSON-like value: balanced brackets, strings honoured, kept as text.
    fn json(&mut self, start: usize) -> Result<(Tok, usize), DbError> {
        let mut depth = 0usize;
        let mut i = start;
        let mut quote = 0u8;
        while i < self.src.len() {
            let c = self.src[i];
            if quote != 0 {
                if c == b'\\' {
                    i += 1;
                } else if c == quote {
                    quote = 0;
                }
            } else {
                match c {
                    b'"' | b'\'' => quote = c,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            self.pos = i + 1;
                            return Ok((Tok::Json(self.text[start..=i].to_string()), start));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        Err(self.error_at(start, "unterminated JSON value: closing bracket missing"))
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<usize, DbError> {
        let (tok, at) = self.next(false)?;
        if tok == want {
            Ok(at)
        } else {
            Err(self.error_at(at, format!("expected {} {context}, found {}", want.describe(), tok.describe())))
        }
    }

    fn string(&mut self, what: &str, value: bool) -> Result<(String, usize), DbError> {
        let (tok, at) = self.next(value)?;
        let described = tok.describe();
        match tok.text() {
            Some(s) => Ok((s, at)),
            None => Err(self.error_at(at, format!("expected {what}, found {described}"))),
        }
    }

    fn check_name(&self, name: &str, at: usize) -> Result<(), DbError> {
        if name.is_empty() {
            return Err(self.error_at(at, "record or alias name cannot be empty"));
        }
        if name.len() > MAX_RECORD_NAME {
            return Err(self.error_at(at, format!("record name {name:?} is longer than {MAX_RECORD_NAME} characters")));
        }
        if let Some(c) = name.chars().find(|c| matches!(c, ' ' | '\t' | '"' | '\'' | '.' | '$') || c.is_control()) {
            return Err(self.error_at(at, format!("bad character {c:?} in record name {name:?}")));
        }
        Ok(())
    }

    fn database(
        &mut self,
        macros: &Macros,
        options: &ParseOptions<'_>,
        depth: usize,
        state: &mut State,
    ) -> Result<(), DbError> {
        loop {
            let (tok, at) = self.next(false)?;
            match tok {
                Tok::Eof => return Ok(()),
                Tok::Bare(word) if word == "include" => {
                    let (name, name_at) = self.string("a file name after include", false)?;
                    self.include(&name, name_at, macros, options, depth, state)?;
                }
                Tok::Bare(word) if word == "record" || word == "grecord" => self.record(at, state, options)?,
                Tok::Bare(word) if word == "alias" => {
                    self.expect(Tok::Open, "after alias")?;
                    let (target, target_at) = self.string("a record name", false)?;
                    self.expect(Tok::Comma, "in alias")?;
                    let (alias, alias_at) = self.string("an alias name", false)?;
                    self.expect(Tok::Close, "after alias")?;
                    self.check_name(&alias, alias_at)?;
                    let Some(&index) = state.names.get(&target) else {
                        return Err(
                            self.error_at(target_at, format!("alias {alias:?} refers to unknown record {target:?}"))
                        );
                    };
                    self.add_alias(state, index, alias, alias_at)?;
                }
                Tok::Bare(word) if DBD_KEYWORDS.contains(&word.as_str()) || word == "addpath" => {
                    return Err(self.error_at(at, format!("'{word}' belongs in a .dbd file, not a database file")));
                }
                other => {
                    return Err(
                        self.error_at(at, format!("expected record, alias or include, found {}", other.describe()))
                    );
                }
            }
        }
    }

    fn include(
        &mut self,
        name: &str,
        at: usize,
        macros: &Macros,
        options: &ParseOptions<'_>,
        depth: usize,
        state: &mut State,
    ) -> Result<(), DbError> {
        let Some(loader) = options.loader else {
            return Err(self.error_at(at, format!("cannot include {name:?}: no include loader was given")));
        };
        if depth + 1 > options.max_include_depth {
            return Err(self.error_at(at, format!("include {name:?} nested too deeply (include loop?)")));
        }
        let text = loader(name).map_err(|e| self.error_at(at, format!("cannot include {name:?}: {e}")))?;
        parse_file(&text, name, macros, options, depth + 1, state)
    }

    fn add_alias(&self, state: &mut State, index: usize, alias: String, at: usize) -> Result<(), DbError> {
        if let Some(&existing) = state.names.get(&alias) {
            if existing == index && state.defs[index].aliases.contains(&alias) {
                return Ok(());
            }
            return Err(self.error_at(at, format!("alias {alias:?} is already the name of a record or alias")));
        }
        state.names.insert(alias.clone(), index);
        let def = &mut state.defs[index];
        def.record.add_alias(&alias);
        def.aliases.push(alias);
        Ok(())
    }

    fn record(&mut self, at: usize, state: &mut State, options: &ParseOptions<'_>) -> Result<(), DbError> {
        self.expect(Tok::Open, "after record")?;
        let (type_name, type_at) = self.string("a record type", false)?;
        self.expect(Tok::Comma, "between record type and name")?;
        let (name, name_at) = self.string("a record name", false)?;
        self.expect(Tok::Close, "after the record name")?;
        self.check_name(&name, name_at)?;
        let index = match state.names.get(&name) {
            Some(&index) => {
                let def = &state.defs[index];
                if def.name != name {
                    return Err(self.error_at(name_at, format!("{name:?} is an alias of {:?}", def.name)));
                }
                if type_name != "*" && type_name != def.record_type.name() {
                    return Err(self.error_at(
                        type_at,
                        format!(
                            "record {name:?} of type {} (defined at {}:{}) redefined with type {type_name:?}",
                            def.record_type, def.file, def.line
                        ),
                    ));
                }
                index
            }
            None => {
                let record_type = if type_name == "*" {
                    // A record of an earlier file: its fields are applied to it by the loader.
                    options.existing.and_then(|existing| existing(&name)).ok_or_else(|| {
                        self.error_at(type_at, format!("record {name:?} not found (type \"*\" amends a record)"))
                    })?
                } else {
                    RecordType::from_name(&type_name)
                        .ok_or_else(|| self.error_at(type_at, format!("unknown record type {type_name:?}")))?
                };
                let (line, _) = self.location(at);
                state.defs.push(RecordDef {
                    record_type,
                    name: name.clone(),
                    fields: Vec::new(),
                    info: Vec::new(),
                    aliases: Vec::new(),
                    file: self.file.to_string(),
                    line,
                    record: Record::new(record_type, &name),
                });
                state.names.insert(name.clone(), state.defs.len() - 1);
                state.defs.len() - 1
            }
        };
        self.skip_blank();
        if self.src.get(self.pos) != Some(&b'{') {
            return Ok(());
        }
        let open_at = self.pos;
        self.pos += 1;
        loop {
            let (tok, item_at) = self.next(false)?;
            match tok {
                Tok::RBrace => return Ok(()),
                Tok::Eof => {
                    let (line, _) = self.location(open_at);
                    return Err(self.error_at(
                        item_at,
                        format!("missing '}}' at the end of record {name:?} (opened at line {line})"),
                    ));
                }
                Tok::Bare(word) if word == "field" || word == "info" => {
                    self.expect(Tok::Open, &format!("after {word}"))?;
                    let (item, item_name_at) = self.string(&format!("a {word} name"), false)?;
                    self.expect(Tok::Comma, &format!("after the {word} name"))?;
                    let (value, value_at) = self.string(&format!("a {word} value"), true)?;
                    self.expect(Tok::Close, &format!("after the {word} value"))?;
                    let def = &mut state.defs[index];
                    if word == "info" {
                        if item.is_empty() {
                            return Err(self.error_at(item_name_at, "info name cannot be empty"));
                        }
                        def.record.add_info(&item, &value);
                        def.info.push((item, value));
                    } else {
                        if def.record_type.field(&item).is_none() {
                            return Err(self.error_at(
                                item_name_at,
                                format!("record type {} has no field {item:?}", def.record_type),
                            ));
                        }
                        def.record.load_field(&item, &value, options.max_elements).map_err(|reason| {
                            self.error_at(value_at, format!("can't set \"{name}.{item}\" to {value:?}: {reason}"))
                        })?;
                        def.fields.push((item, value));
                    }
                }
                Tok::Bare(word) if word == "alias" => {
                    self.expect(Tok::Open, "after alias")?;
                    let (alias, alias_at) = self.string("an alias name", false)?;
                    self.expect(Tok::Close, "after the alias name")?;
                    self.check_name(&alias, alias_at)?;
                    self.add_alias(state, index, alias, alias_at)?;
                }
                Tok::Bare(word) if word == "include" => {
                    return Err(self.error_at(item_at, "include inside a record body is not supported"));
                }
                other => {
                    return Err(self.error_at(
                        item_at,
                        format!("expected field, info, alias or '}}' in record {name:?}, found {}", other.describe()),
                    ));
                }
            }
        }
    }
}

/// Translates one C escape (the text after the backslash); returns the
/// character and how many bytes of `rest` it used.
fn translate_escape(rest: &str) -> (char, usize) {
    let b = rest.as_bytes();
    let simple = match b[0] {
        b'a' => Some('\x07'),
        b'b' => Some('\x08'),
        b'f' => Some('\x0c'),
        b'n' => Some('\n'),
        b'r' => Some('\r'),
        b't' => Some('\t'),
        b'v' => Some('\x0b'),
        _ => None,
    };
    if let Some(c) = simple {
        return (c, 1);
    }
    if b[0] == b'x' {
        let digits = b[1..].iter().take(2).take_while(|c| c.is_ascii_hexdigit()).count();
        if digits > 0 {
            let v = u8::from_str_radix(&rest[1..1 + digits], 16).unwrap_or(0);
            return (char::from(v), 1 + digits);
        }
    }
    if (b'0'..=b'7').contains(&b[0]) {
        let digits = b.iter().take(3).take_while(|c| (b'0'..=b'7').contains(c)).count();
        let v = u32::from_str_radix(&rest[..digits], 8).unwrap_or(0);
        return (char::from_u32(v).unwrap_or('?'), digits);
    }
    let c = rest.chars().next().unwrap_or('\\');
    (c, c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_definitions_parse_like_macparsedefns() {
        let m = Macros::parse(" P = XF: , R=1,Q='a,b', E=\"x y\" ,U").unwrap();
        assert_eq!(m.get("P"), Some("XF:"));
        assert_eq!(m.get("R"), Some("1"));
        assert_eq!(m.get("Q"), Some("'a,b'"));
        assert_eq!(m.get("E"), Some("\"x y\""));
        assert_eq!(m.get("U"), None);
        assert_eq!(m.expand("$(Q)|${E}").unwrap(), "a,b|x y");
    }

    #[test]
    fn expansion_rules() {
        let m = Macros::parse("P=XF:,R=$(P)ai,S=$(T=dflt),A=$(B),B=$(A)").unwrap();
        assert_eq!(m.expand("$(R)1").unwrap(), "XF:ai1");
        assert_eq!(m.expand("$(S)").unwrap(), "dflt");
        assert_eq!(m.expand("$(X=$(P)x)").unwrap(), "XF:x");
        assert_eq!(m.expand("$(P=$(UNDEFINED))").unwrap(), "XF:", "unused default is not expanded");
        assert_eq!(m.expand("$(Y,Y=scoped)").unwrap(), "scoped");
        assert_eq!(m.expand("'$(P)' \"$(P)\"").unwrap(), "'$(P)' \"XF:\"");
        assert_eq!(m.expand("a \\$(P)").unwrap(), "a \\$(P)");
        assert_eq!(m.expand("x # $(UNDEFINED)").unwrap(), "x # $(UNDEFINED)");
        assert!(m.expand("$(A)").unwrap_err().reason.contains("recursive"));
        let err = m.expand("ab$(NOPE)").unwrap_err();
        assert_eq!((err.offset, err.reason.as_str()), (2, "macro \"NOPE\" is undefined"));
        assert!(m.expand("$(P").unwrap_err().reason.contains("unterminated"));
    }

    #[test]
    fn exponential_expansion_is_bounded() {
        let mut m = Macros::new().with("M0", "xxxxxxxxxxxxxxxx");
        for i in 1..40 {
            m.set(&format!("M{i}"), &format!("$(M{})$(M{})", i - 1, i - 1));
        }
        assert!(m.expand("$(M39)").unwrap_err().reason.contains("too long"));
    }

    #[test]
    fn escapes_translate() {
        assert_eq!(translate_escape("n"), ('\n', 1));
        assert_eq!(translate_escape("x41z"), ('A', 3));
        assert_eq!(translate_escape("101"), ('A', 3));
        assert_eq!(translate_escape("\""), ('"', 1));
    }
}
