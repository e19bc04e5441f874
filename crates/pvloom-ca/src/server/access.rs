//! Access rights per PV from rules on host and user names: the part of EPICS access
//! security that a soft IOC needs.

use crate::proto::command::AccessRights;
use crate::proto::constants::{ACCESS_RIGHT_READ, ACCESS_RIGHT_WRITE};

/// One rule: PVs matching `pattern` (`*` matches any run of characters), for the
/// listed hosts and users (empty: everyone), get `rights`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// PV name pattern.
    pub pattern: String,
    /// Client host names it applies to (empty: all).
    pub hosts: Vec<String>,
    /// Client user names it applies to (empty: all).
    pub users: Vec<String>,
    /// The rights granted.
    pub rights: AccessRights,
}

/// Rules tried in order; the first that matches decides. Without a match: read and
/// write (EPICS's default access security group). Or an EPICS access security file
/// ([`AccessRules::from_acf`]), where a channel's group comes from its record's ASG.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    rules: Vec<AccessRule>,
    acf: Option<super::acf::AccessSecurity>,
}

/// Why access rules cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// A rule line whose rights are not `NONE`, `READ` or `WRITE`.
    #[error("line {line}: expected NONE, READ or WRITE, got {found:?}")]
    BadRights {
        /// 1-based line.
        line: usize,
        /// The word given (none: the line ends after the pattern).
        found: Option<String>,
    },
    /// A rule line word that is not `host=..` or `user=..`.
    #[error("line {line}: unexpected {word:?} (host=... or user=...)")]
    UnexpectedWord {
        /// 1-based line.
        line: usize,
        /// The word.
        word: String,
    },
    /// An EPICS access security file that cannot be used.
    #[error(transparent)]
    Acf(#[from] super::acf::AcfError),
}

/// Read access only.
pub const READ_ONLY: AccessRights = AccessRights(ACCESS_RIGHT_READ);
/// Read and write access.
pub const READ_WRITE: AccessRights = AccessRights(ACCESS_RIGHT_READ | ACCESS_RIGHT_WRITE);
/// No access.
pub const NO_ACCESS: AccessRights = AccessRights(0);

impl AccessRules {
    /// No rules: everyone reads and writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a rule (tried after the ones added before).
    pub fn rule(mut self, rule: AccessRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Parse rules, one per line: `PATTERN RIGHTS [host=H,H] [user=U,U]`, RIGHTS being
    /// `NONE`, `READ` or `WRITE` (write includes read); `#` starts a comment.
    ///
    /// # Errors
    /// The line number and reason of the first bad line.
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let mut rules = AccessRules::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let pattern = words.next().unwrap_or_default().to_owned();
            let rights = match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("NONE") => NO_ACCESS,
                Some("READ") => READ_ONLY,
                Some("WRITE") => READ_WRITE,
                other => return Err(AccessError::BadRights { line: index + 1, found: other.map(str::to_owned) }),
            };
            let (mut hosts, mut users) = (Vec::new(), Vec::new());
            for word in words {
                let list = |v: &str| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
                if let Some(v) = word.strip_prefix("host=") {
                    hosts = list(v);
                } else if let Some(v) = word.strip_prefix("user=") {
                    users = list(v);
                } else {
                    return Err(AccessError::UnexpectedWord { line: index + 1, word: word.to_owned() });
                }
            }
            rules.rules.push(AccessRule { pattern, hosts, users, rights });
        }
        Ok(rules)
    }

    /// Rules from an EPICS access security file (`.acf` subset: UAG, HAG, ASG, RULE).
    ///
    /// # Errors
    /// The line and reason of the first problem.
    pub fn from_acf(text: &str) -> Result<Self, AccessError> {
        Ok(AccessRules { rules: Vec::new(), acf: Some(super::acf::AccessSecurity::parse(text)?) })
    }

    /// Rules from a file of either kind, told apart by content: an EPICS access
    /// security file begins (after comments) with `UAG(`, `HAG(` or `ASG(`; anything
    /// else is read as pattern rules ([`AccessRules::parse`]).
    ///
    /// # Errors
    /// The line and reason of the first problem.
    pub fn from_file_text(text: &str) -> Result<Self, AccessError> {
        if is_acf(text) { Self::from_acf(text) } else { Self::parse(text) }
    }

    /// The rights of `user` on `host` for `pv` in access security group `asg`.
    pub fn rights_in_group(&self, pv: &str, asg: Option<&str>, host: &str, user: &str) -> AccessRights {
        match &self.acf {
            Some(acf) => acf.rights(asg, host, user),
            None => self.rights(pv, host, user),
        }
    }

    /// The rights of `user` on `host` for `pv` (pattern rules).
    pub fn rights(&self, pv: &str, host: &str, user: &str) -> AccessRights {
        if let Some(acf) = &self.acf {
            return acf.rights(None, host, user);
        }
        self.rules
            .iter()
            .find(|r| {
                glob(&r.pattern, pv)
                    && (r.hosts.is_empty() || r.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
                    && (r.users.is_empty() || r.users.iter().any(|u| u == user))
            })
            .map_or(READ_WRITE, |r| r.rights)
    }
}

/// True when `text` reads as an access security file: its first word (comments and
/// blank lines skipped) is `UAG`, `HAG` or `ASG` followed by `(`.
pub(crate) fn is_acf(text: &str) -> bool {
    let Some(first) = text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).find(|l| !l.is_empty()) else {
        return false;
    };
    ["UAG", "HAG", "ASG"]
        .iter()
        .any(|keyword| first.strip_prefix(keyword).is_some_and(|rest| rest.trim_start().starts_with('(')))
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_decides_and_default_is_read_write() {
        let rules = AccessRules::parse(
            "# beamline rules\nBL:*:SETPOINT WRITE user=ops\nBL:* READ\nSECRET:* NONE host=visitor-pc\n",
        )
        .unwrap();
        assert_eq!(rules.rights("BL:M1:SETPOINT", "any", "ops"), READ_WRITE);
        assert_eq!(rules.rights("BL:M1:SETPOINT", "any", "guest"), READ_ONLY);
        assert_eq!(rules.rights("BL:M1:RBV", "any", "ops"), READ_ONLY);
        assert_eq!(rules.rights("SECRET:KEY", "visitor-pc", "x"), NO_ACCESS);
        assert_eq!(rules.rights("SECRET:KEY", "control-room", "x"), READ_WRITE);
        assert_eq!(rules.rights("OTHER", "h", "u"), READ_WRITE);
    }

    #[test]
    fn bad_lines_name_the_line() {
        assert!(AccessRules::parse("A READ\nB MAYBE\n").unwrap_err().to_string().starts_with("line 2"));
        assert!(AccessRules::parse("A READ color=red").unwrap_err().to_string().contains("color"));
        assert_eq!(
            AccessRules::parse("A\n"),
            Err(AccessError::BadRights { line: 1, found: None }),
            "a pattern without rights"
        );
    }

    #[test]
    fn files_are_told_apart_by_content() {
        assert!(is_acf("# site rules\n\nUAG(ops) { alice }\nASG(DEFAULT) { RULE(1, READ) }\n"));
        assert!(is_acf("ASG (DEFAULT) { RULE(1, WRITE) }"));
        assert!(!is_acf("BL:* READ\nASG(x) WRITE\n"));
        assert!(!is_acf("ASGX READ"));
        assert!(!is_acf("# nothing\n"));
        let acf = AccessRules::from_file_text("ASG(DEFAULT) { RULE(1, READ) }").unwrap();
        assert_eq!(acf.rights_in_group("ANY", None, "h", "u"), READ_ONLY);
        let rules = AccessRules::from_file_text("SECRET NONE\n").unwrap();
        assert_eq!(rules.rights("SECRET", "h", "u"), NO_ACCESS);
        assert!(matches!(AccessRules::from_file_text("ASG(A) { RULE(1, MAYBE) }"), Err(AccessError::Acf(_))));
    }

    #[test]
    fn glob_matches() {
        assert!(glob("A*B*C", "AxxByyC"));
        assert!(glob("*", "anything"));
        assert!(!glob("A*B", "AB C"));
        assert!(glob("AB", "AB"));
        assert!(!glob("A*A", "A"));
    }
}
