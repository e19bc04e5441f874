//! `.substitutions` files for `dbLoadTemplate` (the grammar of base's
//! `dbLoadTemplate.y` and its lexer, as facts; this is pvloom's own parser).
//!
//! ```text
//! file     := (global | template | include)*
//! global   := "global" "{" definitions "}"
//! template := "file" NAME "{" (pattern | rows) "}"
//! pattern  := "pattern" "{" NAME* "}" (global | WORD? "{" VALUE* "}")*
//! rows     := (global | WORD? "{" definitions "}")*
//! include  := "include" NAME          (msi's; base's IOC parser lacks it)
//! ```
//!
//! Words are `[A-Za-z0-9_+:./\\[]<>;-]+`; quoted values (`"…"` or `'…'`) keep their
//! escapes, which macro expansion removes later; `#` starts a comment; commas are
//! optional. Each row loads the template with the macros: the caller's, then every
//! `global` seen so far (later wins), then the row's own.

/// One `dbLoadRecords` a substitutions file asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The template file, as written.
    pub file: String,
    /// Macro definitions in `macParseDefns` form (`A=1,B="two"`), later ones win.
    pub macros: String,
    /// Line of the row in the substitutions file.
    pub line: usize,
}

/// A substitutions file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct SubstError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quote(String),
    Equals,
    Comma,
    Open,
    Close,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Quote(q) => format!("\"{q}\""),
            Tok::Equals => "'='".into(),
            Tok::Comma => "','".into(),
            Tok::Open => "'{'".into(),
            Tok::Close => "'}'".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_-+:./\\[]<>;".contains(&c)
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    file: &'a str,
    peeked: Option<(Tok, usize)>,
}

impl Lexer<'_> {
    fn error(&self, line: usize, reason: String) -> SubstError {
        SubstError { file: self.file.to_string(), line, reason }
    }

    fn lex(&mut self) -> Result<(Tok, usize), SubstError> {
        loop {
            let Some(&c) = self.src.get(self.pos) else { return Ok((Tok::Eof, self.line)) };
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.src.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let (c, line, start) = (self.src[self.pos], self.line, self.pos);
        self.pos += 1;
        let tok = match c {
            b'=' => Tok::Equals,
            b',' => Tok::Comma,
            b'{' => Tok::Open,
            b'}' => Tok::Close,
            b'"' | b'\'' => {
                loop {
                    match self.src.get(self.pos) {
                        None | Some(b'\n') => return Err(self.error(line, "unterminated quoted string".into())),
                        Some(&b'\\') if self.src.get(self.pos + 1).is_some_and(|&n| n != b'\n') => self.pos += 2,
                        Some(&q) if q == c => break,
                        Some(_) => self.pos += 1,
                    }
                }
                self.pos += 1;
                Tok::Quote(String::from_utf8_lossy(&self.src[start + 1..self.pos - 1]).into_owned())
            }
            c if is_word(c) => {
                while self.src.get(self.pos).is_some_and(|&c| is_word(c)) {
                    self.pos += 1;
                }
                Tok::Word(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
            }
            other => {
                let shown = String::from_utf8_lossy(&self.src[start..]).chars().next().unwrap_or(other as char);
                return Err(self.error(line, format!("invalid character '{shown}'")));
            }
        };
        Ok((tok, line))
    }

    fn next(&mut self) -> Result<(Tok, usize), SubstError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn peek(&mut self) -> Result<&Tok, SubstError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex()?);
        }
        Ok(self.peeked.as_ref().map(|(t, _)| t).unwrap_or(&Tok::Eof))
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<usize, SubstError> {
        let (tok, line) = self.next()?;
        if tok == want {
            Ok(line)
        } else {
            Err(self.error(line, format!("expected {} {context}, found {}", want.describe(), tok.describe())))
        }
    }
}

/// Appends `name=value` to a definitions string; quoted values stay quoted so commas
/// and spaces inside them survive `macParseDefns`.
fn push_def(defs: &mut String, name: &str, value: &Tok) {
    if !defs.is_empty() {
        defs.push(',');
    }
    defs.push_str(name);
    defs.push('=');
    match value {
        Tok::Quote(q) => {
            defs.push('"');
            defs.push_str(q);
            defs.push('"');
        }
        Tok::Word(w) => defs.push_str(w),
        _ => {}
    }
}

fn join(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(",")
}

/// Reads an included substitutions file by name.
pub type SubstLoader<'a> = dyn Fn(&str) -> std::io::Result<String> + 'a;

/// Deepest `include` nesting (stops include loops).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Parses a substitutions file into the loads it asks for, in order. `macros` are the
/// caller's (`dbLoadTemplate(file, "macros")`), overridden by globals and rows.
pub fn parse_substitutions(
    text: &str,
    file: &str,
    macros: &str,
    loader: &SubstLoader<'_>,
) -> Result<Vec<Instance>, SubstError> {
    let mut globals = String::new();
    let mut out = Vec::new();
    parse_file(text, file, macros, &mut globals, loader, 0, &mut out)?;
    Ok(out)
}

fn parse_file(
    text: &str,
    file: &str,
    macros: &str,
    globals: &mut String,
    loader: &SubstLoader<'_>,
    depth: usize,
    out: &mut Vec<Instance>,
) -> Result<(), SubstError> {
    let mut lx = Lexer { src: text.as_bytes(), pos: 0, line: 1, file, peeked: None };
    loop {
        let (tok, line) = lx.next()?;
        match tok {
            Tok::Eof => return Ok(()),
            Tok::Word(w) if w == "global" => global(&mut lx, globals)?,
            Tok::Word(w) if w == "include" => {
                let (name, at) = lx.next()?;
                let name = match name {
                    Tok::Word(n) | Tok::Quote(n) => n,
                    other => {
                        return Err(
                            lx.error(at, format!("expected a file name after include, found {}", other.describe()))
                        );
                    }
                };
                if depth + 1 >= MAX_INCLUDE_DEPTH {
                    return Err(lx.error(at, format!("include {name:?} nested too deeply (include loop?)")));
                }
                let text = loader(&name).map_err(|e| lx.error(at, format!("cannot include {name:?}: {e}")))?;
                parse_file(&text, &name, macros, globals, loader, depth + 1, out)?;
            }
            Tok::Word(w) if w == "file" => template(&mut lx, macros, globals, out)?,
            other => {
                return Err(
                    lx.error(line, format!("expected 'file', 'global' or 'include', found {}", other.describe()))
                );
            }
        }
    }
}

fn global(lx: &mut Lexer<'_>, globals: &mut String) -> Result<(), SubstError> {
    lx.expect(Tok::Open, "after global")?;
    definitions(lx, globals)
}

/// `NAME=VALUE` pairs up to the closing brace (consumed).
fn definitions(lx: &mut Lexer<'_>, defs: &mut String) -> Result<(), SubstError> {
    loop {
        let (tok, line) = lx.next()?;
        match tok {
            Tok::Close => return Ok(()),
            Tok::Comma => {}
            Tok::Word(name) => {
                lx.expect(Tok::Equals, &format!("after {name:?}"))?;
                let (value, at) = lx.next()?;
                if !matches!(value, Tok::Word(_) | Tok::Quote(_)) {
                    return Err(lx.error(at, format!("expected a value for {name:?}, found {}", value.describe())));
                }
                push_def(defs, &name, &value);
            }
            other => return Err(lx.error(line, format!("expected NAME=VALUE or '}}', found {}", other.describe()))),
        }
    }
}

fn template(lx: &mut Lexer<'_>, macros: &str, globals: &mut String, out: &mut Vec<Instance>) -> Result<(), SubstError> {
    let (name, at) = lx.next()?;
    let file = match name {
        Tok::Word(n) | Tok::Quote(n) => n,
        other => return Err(lx.error(at, format!("expected a template file name, found {}", other.describe()))),
    };
    lx.expect(Tok::Open, &format!("after file {file}"))?;
    let pattern = matches!(lx.peek()?, Tok::Word(w) if w == "pattern");
    let mut names = Vec::new();
    if pattern {
        lx.next()?;
        lx.expect(Tok::Open, "after pattern")?;
        loop {
            let (tok, line) = lx.next()?;
            match tok {
                Tok::Close => break,
                Tok::Comma => {}
                Tok::Word(n) => names.push(n),
                other => return Err(lx.error(line, format!("expected a macro name, found {}", other.describe()))),
            }
        }
    }
    loop {
        let (tok, line) = lx.next()?;
        let row_line = match tok {
            Tok::Close => return Ok(()),
            Tok::Word(w) if w == "global" => {
                global(lx, globals)?;
                continue;
            }
            Tok::Open => line,
            // Base's deprecated form: a word before a row's brace (ignored, with a warning).
            Tok::Word(w) if *lx.peek()? == Tok::Open => {
                tracing::warn!(
                    "{}:{line}: substitutions: the word {w:?} before '{{' is deprecated syntax and ignored",
                    lx.file
                );
                lx.next()?;
                line
            }
            other => return Err(lx.error(line, format!("expected '{{' to start a row, found {}", other.describe()))),
        };
        let mut own = String::new();
        if pattern {
            let mut count = 0;
            loop {
                let (tok, at) = lx.next()?;
                match tok {
                    Tok::Close => break,
                    Tok::Comma => {}
                    value @ (Tok::Word(_) | Tok::Quote(_)) => {
                        match names.get(count) {
                            Some(n) => push_def(&mut own, n, &value),
                            // Base warns and loads the row with the values it could name.
                            None => tracing::warn!(
                                "{}:{at}: substitutions: too many values, the pattern names {} macros",
                                lx.file,
                                names.len()
                            ),
                        }
                        count += 1;
                    }
                    other => return Err(lx.error(at, format!("expected a value or '}}', found {}", other.describe()))),
                }
            }
        } else {
            definitions(lx, &mut own)?;
        }
        out.push(Instance { file: file.clone(), macros: join(&[macros, globals, &own]), line: row_line });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::Macros;

    fn no_include(name: &str) -> std::io::Result<String> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string()))
    }

    fn parse(text: &str, macros: &str) -> Vec<(String, String, usize)> {
        parse_substitutions(text, "t.substitutions", macros, &no_include)
            .unwrap()
            .into_iter()
            .map(|i| (i.file, i.macros, i.line))
            .collect()
    }

    fn value(defs: &str, name: &str) -> String {
        Macros::parse(defs).unwrap().expand(&format!("$({name})")).unwrap()
    }

    #[test]
    fn pattern_form_with_globals() {
        let rows = parse(
            "# motors\nglobal { SYS = \"BL:\" }\nfile \"motor.db\" {\n  pattern { M, DESC }\n  { m1, \"first, fast\" }\n  \
             {m2 \"second\"}\n  global { SYS=XF: }\n  {m3, third}\n}\n",
            "EXTRA=1",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, "motor.db");
        assert_eq!(rows[0].2, 5);
        assert_eq!(value(&rows[0].1, "M"), "m1");
        assert_eq!(value(&rows[0].1, "DESC"), "first, fast");
        assert_eq!(value(&rows[0].1, "SYS"), "BL:");
        assert_eq!(value(&rows[0].1, "EXTRA"), "1");
        assert_eq!(value(&rows[1].1, "DESC"), "second");
        // A global inside a template applies to the rows after it.
        assert_eq!(value(&rows[2].1, "SYS"), "XF:");
        assert_eq!(value(&rows[2].1, "M"), "m3");
    }

    #[test]
    fn plain_form_rows_and_later_definitions_win() {
        let rows = parse("file x.db { {A=1, B=2} {A=3} }\nglobal {B=9}\nfile 'y.db' { { } {B=4} }", "B=0");
        assert_eq!(rows.len(), 4);
        assert_eq!((value(&rows[0].1, "A"), value(&rows[0].1, "B")), ("1".into(), "2".into()));
        // Row macros do not leak into the next row.
        assert_eq!((value(&rows[1].1, "A"), value(&rows[1].1, "B")), ("3".into(), "0".into()));
        assert_eq!(rows[2].0, "y.db");
        assert_eq!(value(&rows[2].1, "B"), "9", "a global overrides the caller's macros");
        assert_eq!(value(&rows[3].1, "B"), "4", "a row overrides the globals");
    }

    #[test]
    fn quoted_values_keep_escapes_until_expansion() {
        let rows = parse(r#"file x.db { pattern {V} {"say \"hi\""} {'single, quoted'} {a, extra} }"#, "");
        assert_eq!(rows.len(), 3);
        assert_eq!(value(&rows[0].1, "V"), r#"say "hi""#);
        assert_eq!(value(&rows[1].1, "V"), "single, quoted");
        // Too many values: base warns and loads the row with those the pattern names.
        assert_eq!(value(&rows[2].1, "V"), "a");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = parse_substitutions("file x.db {\n pattern {A}\n {1, =}\n}", "s.substitutions", "", &no_include)
            .unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("s.substitutions", 3));
        assert!(err.reason.contains("expected a value"), "{err}");
        let err = parse_substitutions("file x.db {\n {A=1 B}\n}", "s", "", &no_include).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = parse_substitutions("\n\nfile x.db { {A=\"open}\n}", "s", "", &no_include).unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        let err = parse_substitutions("file x.db { {A=1} ", "s", "", &no_include).unwrap_err();
        assert!(err.reason.contains("end of file"), "{err}");
        let err = parse_substitutions("oops", "s", "", &no_include).unwrap_err();
        assert!(err.to_string().starts_with("s:1: expected 'file'"), "{err}");
        let err = parse_substitutions("file x.db { {A=1} } @", "s", "", &no_include).unwrap_err();
        assert!(err.reason.contains("invalid character '@'"), "{err}");
    }

    #[test]
    fn includes_share_globals() {
        let loader = |name: &str| -> std::io::Result<String> {
            match name {
                "common.substitutions" => Ok("global { P=INC: }\nfile a.db { {N=1} }\n".into()),
                "loop.substitutions" => Ok("include \"loop.substitutions\"".into()),
                _ => no_include(name),
            }
        };
        let rows =
            parse_substitutions("include \"common.substitutions\"\nfile b.db { {N=2} }", "s", "", &loader).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].file, "a.db");
        assert_eq!(value(&rows[1].macros, "P"), "INC:");
        let err = parse_substitutions("include loop.substitutions", "s", "", &loader).unwrap_err();
        assert!(err.reason.contains("nested too deeply"), "{err}");
        let err = parse_substitutions("include missing.substitutions", "s", "", &loader).unwrap_err();
        assert!(err.reason.contains("cannot include"), "{err}");
    }
}
