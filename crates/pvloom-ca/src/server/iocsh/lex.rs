//! Splitting one iocsh line into words (`iocsh.cpp`'s `Tokenize::split`, as a fact
//! list: separators are space, tab, `(`, `)`, `,` and CR outside quotes; quotes may
//! start mid-word and are removed; a backslash outside quotes takes the next character
//! literally; inside quotes nothing is special but the closing quote; `<` redirects
//! input, `>`, `>>` and `N>` output).
//!
//! Both call styles come out the same: `dbLoadRecords("a.db", "P=X:")` and
//! `dbLoadRecords a.db P=X:` are the words `dbLoadRecords`, `a.db`, `P=X:`.

/// Where a redirection sends a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 0 for input (`<`), 1 for stdout, 2 for stderr (`2>`), …
    pub fd: u8,
    /// Append (`>>`) rather than truncate.
    pub append: bool,
    /// The file.
    pub path: String,
}

/// One line split into words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Redirections, in line order.
    pub redirects: Vec<Redirect>,
}

/// A line that cannot be split: iocsh's own wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    /// `<` or `>` without a file name, or two redirections of one stream.
    #[error("Illegal redirection.")]
    IllegalRedirection,
    /// A quote left open at the end of the line.
    #[error("Unbalanced quote.")]
    UnbalancedQuote,
    /// A backslash as the last character.
    #[error("Trailing backslash.")]
    TrailingBackslash,
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '(' | ')' | ',' | '\r')
}

/// Splits `line` (already macro-expanded) into words and redirections.
pub fn split(line: &str) -> Result<Words, LexError> {
    let mut words = Words::default();
    let mut chars = line.chars().peekable();
    // The word being built, and whether the next word is a redirection's file.
    let mut word: Option<String> = None;
    let mut pending: Option<(u8, bool)> = None;
    let mut quote: Option<char> = None;
    let finish = |word: &mut Option<String>, pending: &mut Option<(u8, bool)>, words: &mut Words| {
        if let Some(w) = word.take() {
            match pending.take() {
                Some((fd, append)) => words.redirects.push(Redirect { fd, append, path: w }),
                None => words.argv.push(w),
            }
        }
    };
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                word.get_or_insert_with(String::new).push(c);
            }
            continue;
        }
        match c {
            '\\' => match chars.next() {
                Some(next) => word.get_or_insert_with(String::new).push(next),
                None => return Err(LexError::TrailingBackslash),
            },
            '"' | '\'' => {
                quote = Some(c);
                // An empty quoted string is still a word.
                word.get_or_insert_with(String::new);
            }
            '<' | '>' => {
                finish(&mut word, &mut pending, &mut words);
                if pending.is_some() {
                    return Err(LexError::IllegalRedirection);
                }
                let fd = u8::from(c == '>');
                let append = c == '>' && chars.next_if_eq(&'>').is_some();
                pending = Some((fd, append));
            }
            '1'..='9' if word.is_none() && chars.peek() == Some(&'>') => {
                finish(&mut word, &mut pending, &mut words);
                if pending.is_some() {
                    return Err(LexError::IllegalRedirection);
                }
                chars.next();
                let append = chars.next_if_eq(&'>').is_some();
                pending = Some((c as u8 - b'0', append));
            }
            c if is_separator(c) => finish(&mut word, &mut pending, &mut words),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(LexError::UnbalancedQuote);
    }
    finish(&mut word, &mut pending, &mut words);
    if pending.is_some() {
        return Err(LexError::IllegalRedirection);
    }
    let mut fds: Vec<u8> = words.redirects.iter().map(|r| r.fd).collect();
    fds.sort_unstable();
    if fds.windows(2).any(|w| w[0] == w[1]) {
        return Err(LexError::IllegalRedirection);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        split(line).unwrap().argv
    }

    #[test]
    fn both_call_styles_give_the_same_words() {
        let want = vec!["dbLoadRecords", "db/a.db", "P=X:,R=1"];
        assert_eq!(argv(r#"dbLoadRecords("db/a.db", "P=X:,R=1")"#), want);
        assert_eq!(argv("dbLoadRecords db/a.db P=X:,R=1"), vec!["dbLoadRecords", "db/a.db", "P=X:", "R=1"]);
        assert_eq!(argv("dbLoadRecords db/a.db 'P=X:,R=1'"), want);
        assert_eq!(argv("  iocInit  "), vec!["iocInit"]);
        assert_eq!(argv("iocInit()"), vec!["iocInit"]);
    }

    #[test]
    fn quotes_start_mid_word_and_keep_separators() {
        assert_eq!(argv(r#"epicsEnvSet(A, "x, (y)")"#), vec!["epicsEnvSet", "A", "x, (y)"]);
        assert_eq!(argv(r#"echo ab"c d"e"#), vec!["echo", "abc de"]);
        assert_eq!(argv(r#"dbpf X """#), vec!["dbpf", "X", ""]);
        // Inside quotes a backslash is an ordinary character.
        assert_eq!(argv(r#"echo "a\b""#), vec!["echo", r"a\b"]);
        assert_eq!(argv(r#"echo 'it"s'"#), vec!["echo", "it\"s"]);
    }

    #[test]
    fn backslashes_escape_outside_quotes() {
        assert_eq!(argv(r"echo a\ b\,c\(d"), vec!["echo", "a b,c(d"]);
        assert_eq!(argv(r#"echo \"x"#), vec!["echo", "\"x"]);
        assert_eq!(split(r"echo a\"), Err(LexError::TrailingBackslash));
    }

    #[test]
    fn errors_use_iocsh_wording() {
        assert_eq!(split(r#"echo "open"#), Err(LexError::UnbalancedQuote));
        assert_eq!(LexError::UnbalancedQuote.to_string(), "Unbalanced quote.");
        assert_eq!(split("dbl >"), Err(LexError::IllegalRedirection));
        assert_eq!(split("dbl > a > b"), Err(LexError::IllegalRedirection));
        assert_eq!(split("< a < b"), Err(LexError::IllegalRedirection));
    }

    #[test]
    fn redirections() {
        let w = split("< common.cmd").unwrap();
        assert!(w.argv.is_empty());
        assert_eq!(w.redirects, vec![Redirect { fd: 0, append: false, path: "common.cmd".into() }]);
        let w = split("dbl >> out.txt 2>err.txt").unwrap();
        assert_eq!(w.argv, vec!["dbl"]);
        assert_eq!(
            w.redirects,
            vec![
                Redirect { fd: 1, append: true, path: "out.txt".into() },
                Redirect { fd: 2, append: false, path: "err.txt".into() },
            ]
        );
        // A digit inside a word is not a redirection.
        assert_eq!(argv("dbpf X 12"), vec!["dbpf", "X", "12"]);
    }
}
