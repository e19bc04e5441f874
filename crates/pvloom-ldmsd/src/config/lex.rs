//! ldmsd's config-file lexing: comments, blank lines, `\` continuation, `verb attr=value`
//! tokens, enclosing-quote stripping and `${VAR}` expansion (`ldmsd_config.c`,
//! `ldmsd_request_util.c`, `ovis_util/util.c`, commit 279bd1b8).

use super::ConfigErrorKind as K;

/// One attribute token: `name=value`, or a bare keyword (`value` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Attribute name.
    pub name: String,
    /// Value after `=` (quotes stripped, variables expanded); `None` for a keyword.
    pub value: Option<String>,
}

/// A logical line (continuations joined) split into its verb and attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCommand {
    /// Line number (1-based) where the command starts.
    pub line: usize,
    /// The verb (`load`, `config`, ...).
    pub verb: String,
    /// Attributes in the order written.
    pub attrs: Vec<Attr>,
}

/// Position of the `#` that starts a comment: at the start of the line or after whitespace
/// (`a=#x` is a value, not a comment).
fn comment_start(line: &str) -> Option<usize> {
    let mut after_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && after_space {
            return Some(i);
        }
        after_space = c.is_ascii_whitespace();
    }
    None
}

/// Split a file's text into logical lines: comments cut, whitespace trimmed, a trailing `\`
/// joining the next line (the `\` becomes a space). Returns (first line number, text).
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let s = match comment_start(raw) {
            Some(c) => &raw[..c],
            None => raw,
        };
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        if acc.is_empty() {
            start = no;
        }
        if s == "\\" {
            // ldmsd treats a lone `\` as the end of the pending command.
        } else if let Some(head) = s.strip_suffix('\\') {
            acc.push_str(head);
            acc.push(' ');
            continue;
        } else {
            acc.push_str(s);
        }
        let cmd = acc.trim_end();
        if !cmd.is_empty() {
            out.push((start, cmd.to_string()));
        }
        acc.clear();
    }
    let cmd = acc.trim_end();
    if !cmd.is_empty() {
        out.push((start, cmd.to_string()));
    }
    out
}

/// Expand `${NAME}` (NAME of ASCII letters, digits and `_`) with `lookup`; an unset variable
/// expands to the empty string, as `str_repl_env_vars` does. `$NAME` without braces is kept
/// as written (ldmsd does not expand it); `$(...)` command substitution is refused.
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, K> {
    if value.contains("$(") {
        return Err(K::Unsupported(format!("command substitution in `{value}`")));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(p) = rest.find("${") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let n = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        if n > 0 && after.as_bytes().get(n) == Some(&b'}') {
            out.push_str(&lookup(&after[..n]).unwrap_or_default());
            rest = &after[n + 1..];
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Split one logical line into verb and attributes. Tokens are separated by spaces and tabs;
/// a value that starts with `"` must end with one, and both are removed (a quoted value
/// cannot hold spaces: ldmsd splits the line before it strips quotes).
pub fn split(line: usize, text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<RawCommand, K> {
    let mut toks = text.split([' ', '\t']).filter(|t| !t.is_empty());
    let verb = toks.next().ok_or(K::Empty)?.to_string();
    let mut attrs = Vec::new();
    for t in toks {
        let (name, value) = match t.split_once('=') {
            Some((n, v)) => {
                let v = match v.strip_prefix('"') {
                    Some(q) => q.strip_suffix('"').ok_or_else(|| K::Quote(t.to_string()))?,
                    None => v,
                };
                (n, Some(expand(v, lookup)?))
            }
            None => (t, None),
        };
        if name.is_empty() {
            return Err(K::BadToken(t.to_string()));
        }
        attrs.push(Attr { name: name.to_string(), value });
    }
    Ok(RawCommand { line, verb, attrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn comments_continuations_blank_lines() {
        let t = "# head\n\nload name=a # tail\n  config name=a \\\n   producer=p\\\n instance=i\nx a=#v\n";
        let l = logical_lines(t);
        assert_eq!(
            l,
            vec![
                (3, "load name=a".to_string()),
                (4, "config name=a  producer=p instance=i".to_string()),
                (7, "x a=#v".to_string())
            ]
        );
    }

    #[test]
    fn quotes_and_variables() {
        let env = |k: &str| (k == "HOST").then(|| "h1".to_string());
        let c = split(1, "prdcr_add name=\"${HOST}x\" host=${HOST} port=$PORT k", &env).unwrap();
        assert_eq!(c.verb, "prdcr_add");
        let v: Vec<_> = c.attrs.iter().map(|a| (a.name.as_str(), a.value.as_deref())).collect();
        assert_eq!(v, [("name", Some("h1x")), ("host", Some("h1")), ("port", Some("$PORT")), ("k", None)]);
        assert_eq!(expand("${NOPE}/a${", &none).unwrap(), "/a${");
        assert!(split(1, "a b=\"x y\"", &none).is_err());
        assert!(expand("$(hostname)", &none).is_err());
    }
}
