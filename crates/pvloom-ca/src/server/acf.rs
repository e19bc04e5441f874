//! The subset of EPICS access security files (`.acf`) a soft IOC needs: user and host
//! access groups, access security groups with READ/WRITE rules, and the DEFAULT group.
//!
//! ```text
//! UAG(ops) { alice, bob }
//! HAG(control_room) { cr-ws1, cr-ws2 }
//! ASG(DEFAULT) { RULE(1, READ) }
//! ASG(SETPOINTS) {
//!     RULE(1, WRITE) { UAG(ops) HAG(control_room) }
//!     RULE(1, READ)
//! }
//! ```
//! A channel belongs to the group named by its record's `ASG` field (DEFAULT when
//! empty). Its rights are the strongest rule of its group whose `UAG` and `HAG`
//! conditions the client meets; a group the file does not define grants nothing, as in
//! EPICS (where a missing DEFAULT means no access).

use std::collections::HashMap;

use crate::proto::command::AccessRights;
use crate::proto::constants::{ACCESS_RIGHT_READ, ACCESS_RIGHT_WRITE};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    rights: u32,
    uags: Vec<String>,
    hags: Vec<String>,
}

/// Why an access security file cannot be used: the line and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcfError {
    /// A `"` without its closing `"`.
    #[error("line {line}: unterminated string")]
    UnterminatedString {
        /// 1-based line.
        line: usize,
    },
    /// The file ends inside a definition.
    #[error("line {line}: unexpected end of file")]
    UnexpectedEnd {
        /// 1-based line.
        line: usize,
    },
    /// Other punctuation or a name where `expected` belongs.
    #[error("line {line}: expected '{expected}', found '{found}'")]
    Expected {
        /// 1-based line.
        line: usize,
        /// What the grammar wants here.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// A bracket inside a list of names.
    #[error("line {line}: unexpected '{found}'")]
    Unexpected {
        /// 1-based line.
        line: usize,
        /// The bracket.
        found: String,
    },
    /// `UAG(..)`, `HAG(..)` and `ASG(..)` take one name.
    #[error("line {line}: expected one name in parentheses")]
    OneName {
        /// 1-based line.
        line: usize,
    },
    /// A top-level word other than `UAG`, `HAG`, `ASG`.
    #[error("line {line}: expected UAG, HAG or ASG, found '{found}'")]
    NotADefinition {
        /// 1-based line.
        line: usize,
        /// The word.
        found: String,
    },
    /// An ASG member other than `RULE` (`INPA`..`INPL` are not part of the subset).
    #[error("line {line}: expected RULE, found '{found}' (only RULE is supported)")]
    NotARule {
        /// 1-based line.
        line: usize,
        /// The word.
        found: String,
    },
    /// `RULE` without `(level, access)`.
    #[error("line {line}: RULE takes (level, access)")]
    RuleArguments {
        /// 1-based line.
        line: usize,
    },
    /// A rule level other than 0 or 1.
    #[error("line {line}: RULE level must be 0 or 1, not '{level}'")]
    BadLevel {
        /// 1-based line.
        line: usize,
        /// The level given.
        level: String,
    },
    /// Access other than `NONE`, `READ`, `WRITE`.
    #[error("line {line}: access must be NONE, READ or WRITE, not '{access}'")]
    BadAccess {
        /// 1-based line.
        line: usize,
        /// The access given.
        access: String,
    },
    /// A rule condition other than `UAG(..)` or `HAG(..)`.
    #[error("line {line}: expected UAG or HAG in a RULE, found '{found}'")]
    NotACondition {
        /// 1-based line.
        line: usize,
        /// The word.
        found: String,
    },
    /// A rule names a group the file has not defined (before the rule).
    #[error("line {line}: {kind}({name}) is not defined")]
    Undefined {
        /// 1-based line.
        line: usize,
        /// `UAG` or `HAG`.
        kind: String,
        /// The group named.
        name: String,
    },
}

/// A parsed access security file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSecurity {
    uags: HashMap<String, Vec<String>>,
    hags: HashMap<String, Vec<String>>,
    asgs: HashMap<String, Vec<Rule>>,
}

/// Tokens of the `.acf` grammar: names (bare or quoted) and punctuation.
fn tokens(text: &str) -> Result<Vec<(String, usize)>, AcfError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let mut chars = raw.chars().peekable();
        while let Some(&c) = chars.peek() {
            match c {
                '#' => break,
                c if c.is_whitespace() => {
                    chars.next();
                }
                '{' | '}' | '(' | ')' | ',' => {
                    out.push((c.to_string(), line));
                    chars.next();
                }
                '"' => {
                    chars.next();
                    let mut word = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some(ch) => word.push(ch),
                            None => return Err(AcfError::UnterminatedString { line }),
                        }
                    }
                    out.push((word, line));
                }
                _ => {
                    let mut word = String::new();
                    while let Some(&ch) = chars.peek() {
                        if ch.is_whitespace() || "{}(),#\"".contains(ch) {
                            break;
                        }
                        word.push(ch);
                        chars.next();
                    }
                    out.push((word, line));
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(String, usize)>,
    at: usize,
}

impl Parser {
    fn line(&self) -> usize {
        self.tokens.get(self.at).or(self.tokens.last()).map_or(1, |t| t.1)
    }

    fn next(&mut self) -> Result<String, AcfError> {
        let token =
            self.tokens.get(self.at).map(|t| t.0.clone()).ok_or(AcfError::UnexpectedEnd { line: self.line() })?;
        self.at += 1;
        Ok(token)
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(|t| t.0.as_str())
    }

    fn expect(&mut self, what: &str) -> Result<(), AcfError> {
        let line = self.line();
        let token = self.next()?;
        if token == what { Ok(()) } else { Err(AcfError::Expected { line, expected: what.to_string(), found: token }) }
    }

    /// `( a, b, c )` or `{ a, b, c }`.
    fn list(&mut self, open: &str, close: &str) -> Result<Vec<String>, AcfError> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            let line = self.line();
            let token = self.next()?;
            if token == close {
                return Ok(items);
            }
            if token == "," {
                continue;
            }
            if "{}()".contains(token.as_str()) {
                return Err(AcfError::Unexpected { line, found: token });
            }
            items.push(token);
        }
    }
}

impl AccessSecurity {
    /// Parse an access security file.
    ///
    /// # Errors
    /// The line and reason of the first problem.
    pub fn parse(text: &str) -> Result<Self, AcfError> {
        let mut parser = Parser { tokens: tokens(text)?, at: 0 };
        let mut security = AccessSecurity::default();
        while parser.peek().is_some() {
            let line = parser.line();
            let keyword = parser.next()?;
            match keyword.as_str() {
                "UAG" | "HAG" => {
                    let name = single(&mut parser)?;
                    let members = if parser.peek() == Some("{") { parser.list("{", "}")? } else { Vec::new() };
                    let table = if keyword == "UAG" { &mut security.uags } else { &mut security.hags };
                    table.insert(name, members.into_iter().map(|m| m.to_ascii_lowercase()).collect());
                }
                "ASG" => {
                    let name = single(&mut parser)?;
                    let mut rules = Vec::new();
                    if parser.peek() == Some("{") {
                        parser.expect("{")?;
                        while parser.peek() != Some("}") {
                            rules.push(parse_rule(&mut parser, &security)?);
                        }
                        parser.expect("}")?;
                    }
                    security.asgs.insert(name, rules);
                }
                other => return Err(AcfError::NotADefinition { line, found: other.to_string() }),
            }
        }
        Ok(security)
    }

    /// Rights of `user` on `host` for a channel in group `asg` (DEFAULT when `None` or empty).
    pub fn rights(&self, asg: Option<&str>, host: &str, user: &str) -> AccessRights {
        let group = asg.filter(|g| !g.is_empty()).unwrap_or("DEFAULT");
        let rules = match self.asgs.get(group).or_else(|| self.asgs.get("DEFAULT")) {
            Some(rules) => rules,
            None => return AccessRights(0),
        };
        let (host, user) = (host.to_ascii_lowercase(), user.to_ascii_lowercase());
        let granted = rules
            .iter()
            .filter(|rule| {
                let user_ok = rule.uags.is_empty()
                    || rule.uags.iter().any(|g| self.uags.get(g).is_some_and(|m| m.contains(&user)));
                let host_ok = rule.hags.is_empty()
                    || rule.hags.iter().any(|g| self.hags.get(g).is_some_and(|m| m.contains(&host)));
                user_ok && host_ok
            })
            .map(|rule| rule.rights)
            .max()
            .unwrap_or(0);
        AccessRights(granted)
    }
}

fn single(parser: &mut Parser) -> Result<String, AcfError> {
    let line = parser.line();
    let items = parser.list("(", ")")?;
    match items.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(AcfError::OneName { line }),
    }
}

fn parse_rule(parser: &mut Parser, security: &AccessSecurity) -> Result<Rule, AcfError> {
    let line = parser.line();
    let keyword = parser.next()?;
    if keyword != "RULE" {
        // INPA..INPL and other ASG members are not part of this subset.
        return Err(AcfError::NotARule { line, found: keyword });
    }
    let args = parser.list("(", ")")?;
    let (level, access) = match args.as_slice() {
        [level, access] | [level, access, _] => (level, access),
        _ => return Err(AcfError::RuleArguments { line }),
    };
    if level.parse::<u8>().map_or(true, |l| l > 1) {
        return Err(AcfError::BadLevel { line, level: level.clone() });
    }
    let rights = match access.as_str() {
        "NONE" => 0,
        "READ" => ACCESS_RIGHT_READ,
        "WRITE" => ACCESS_RIGHT_READ | ACCESS_RIGHT_WRITE,
        other => return Err(AcfError::BadAccess { line, access: other.to_string() }),
    };
    let (mut uags, mut hags) = (Vec::new(), Vec::new());
    if parser.peek() == Some("{") {
        parser.expect("{")?;
        while parser.peek() != Some("}") {
            let line = parser.line();
            let kind = parser.next()?;
            let names = parser.list("(", ")")?;
            let (target, table) = match kind.as_str() {
                "UAG" => (&mut uags, &security.uags),
                "HAG" => (&mut hags, &security.hags),
                other => return Err(AcfError::NotACondition { line, found: other.to_string() }),
            };
            for name in names {
                if !table.contains_key(&name) {
                    return Err(AcfError::Undefined { line, kind: kind.clone(), name });
                }
                target.push(name);
            }
        }
        parser.expect("}")?;
    }
    Ok(Rule { rights, uags, hags })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACF: &str = r#"
# operators may write setpoints from the control room
UAG(ops) { alice, "bob" }
HAG(control_room) { cr1, cr2 }
ASG(DEFAULT) { RULE(1, READ) }
ASG(SETPOINTS) {
    RULE(1, WRITE) { UAG(ops) HAG(control_room) }
    RULE(1, READ)
}
ASG(HIDDEN) { RULE(0, NONE) }
"#;

    #[test]
    fn rules_grant_the_strongest_matching_access() {
        let acf = AccessSecurity::parse(ACF).unwrap();
        assert_eq!(acf.rights(Some("SETPOINTS"), "cr1", "alice").0, 3);
        assert_eq!(acf.rights(Some("SETPOINTS"), "CR1", "Bob").0, 3, "case-insensitive");
        assert_eq!(acf.rights(Some("SETPOINTS"), "laptop", "alice").0, 1, "host not in the HAG");
        assert_eq!(acf.rights(Some("SETPOINTS"), "cr1", "eve").0, 1, "user not in the UAG");
        assert_eq!(acf.rights(None, "cr1", "alice").0, 1, "DEFAULT");
        assert_eq!(acf.rights(Some("UNKNOWN"), "cr1", "alice").0, 1, "unknown groups fall back to DEFAULT");
        assert_eq!(acf.rights(Some("HIDDEN"), "cr1", "alice").0, 0);
        let no_default = AccessSecurity::parse("ASG(A) { RULE(1, WRITE) }").unwrap();
        assert_eq!(no_default.rights(None, "h", "u").0, 0, "no DEFAULT group: no access");
    }

    #[test]
    fn errors_name_the_line() {
        let message = |text: &str| AccessSecurity::parse(text).unwrap_err().to_string();
        assert!(message("ASG(A) {\n RULE(1, MAYBE)\n}").starts_with("line 2"));
        assert!(message("ASG(A) {\n RULE(1, READ) { UAG(nobody) }\n}").contains("not defined"));
        assert!(message("UAG(x) { a, b").contains("end of file"));
        assert!(message("XYZ(a)").starts_with("line 1"));
        assert_eq!(
            AccessSecurity::parse("ASG(A) {\n RULE(1, MAYBE)\n}"),
            Err(AcfError::BadAccess { line: 2, access: "MAYBE".into() })
        );
    }
}
