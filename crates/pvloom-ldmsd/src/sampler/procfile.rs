//! A `/proc` file read again and again into one buffer, and the hand-written number parsing
//! the samplers use (the `sscanf` forms `%s %lu`, `%lg`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::SamplerError;

/// An open `/proc` file and a reusable buffer holding its latest contents.
#[derive(Debug)]
pub struct ProcFile {
    path: PathBuf,
    file: Option<File>,
    /// Initialised bytes, grown as the file needs; `len` of them are the file's.
    buf: Vec<u8>,
    len: usize,
}

impl ProcFile {
    /// `root` joined with `rel` (`"proc/meminfo"`); nothing is opened yet.
    pub fn new(root: &Path, rel: &str) -> ProcFile {
        ProcFile { path: root.join(rel), file: None, buf: vec![0; 8192], len: 0 }
    }
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Read the whole file again from offset 0 of the open file (the C samplers `fseek`
    /// to 0 and read again) and return its bytes. Reopens the file if it was closed or a
    /// read fails.
    pub fn read(&mut self) -> Result<&[u8], SamplerError> {
        let ok = match &self.file {
            Some(f) => Self::fill(f, &mut self.buf).map(|n| self.len = n).is_ok(),
            None => false,
        };
        if !ok {
            let io = |source| SamplerError::Io { path: self.path.clone(), source };
            let f = File::open(&self.path).map_err(io)?;
            self.len = Self::fill(&f, &mut self.buf).map_err(io)?;
            self.file = Some(f);
        }
        Ok(&self.buf[..self.len])
    }

    /// Positioned reads from 0 until end of file: two syscalls for a file that fits, where
    /// `seek` + `read_to_end` took five (it also asks the size and the position, which
    /// /proc cannot tell).
    fn fill(f: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match f.read_at(&mut buf[len..], len as u64) {
                Ok(0) => return Ok(len),
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    /// A parse error for this file.
    pub fn bad(&self, msg: impl Into<String>) -> SamplerError {
        SamplerError::Parse { path: self.path.clone(), msg: msg.into() }
    }
}

/// Split off the next whitespace-delimited token (`%s`): the token and the rest.
pub fn token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = s.iter().position(|c| !c.is_ascii_whitespace())?;
    let s = &s[start..];
    let end = s.iter().position(u8::is_ascii_whitespace).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// `%lu`: skip whitespace, read decimal digits (saturating, as `strtoul` does); `None` if
/// there are none. Returns the value and the rest.
pub fn u64_field(s: &[u8]) -> Option<(u64, &[u8])> {
    let start = s.iter().position(|c| !c.is_ascii_whitespace())?;
    let s = &s[start..];
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let v = s[..n].iter().fold(0u64, |v, &d| v.saturating_mul(10).saturating_add((d - b'0') as u64));
    Some((v, &s[n..]))
}

/// The value of each `name value...` line (`%s %lu`, the rest of the line ignored) of
/// `buf`, at most `max` of them, appended to `out`; empty lines are skipped. Returns the
/// 0-based index (among non-empty lines) of the first line of another form, where it
/// stopped. The same as [`lines`] + [`token`] + [`u64_field`] per line, in one pass over
/// the bytes: those three walked each line three times and were most of vmstat's own
/// cost (195 lines a sample).
pub fn name_values(buf: &[u8], max: usize, out: &mut Vec<u64>) -> Option<usize> {
    // Whitespace inside a line: what `is_ascii_whitespace` accepts, less the line end.
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\x0c');
    let mut i = 0;
    let mut line = 0;
    let mut taken = 0;
    while i < buf.len() && taken < max {
        if buf[i] == b'\n' {
            i += 1;
            continue;
        }
        while i < buf.len() && blank(buf[i]) {
            i += 1;
        }
        // The name: at least one byte before the next blank.
        let name_start = i;
        while i < buf.len() && buf[i] != b'\n' && !blank(buf[i]) {
            i += 1;
        }
        let named = i > name_start;
        while i < buf.len() && blank(buf[i]) {
            i += 1;
        }
        if i < buf.len() && buf[i] == b'+' {
            i += 1;
        }
        let digits_start = i;
        let mut v = 0u64;
        while i < buf.len() && buf[i].is_ascii_digit() {
            v = v.saturating_mul(10).saturating_add(u64::from(buf[i] - b'0'));
            i += 1;
        }
        if !named || i == digits_start {
            return Some(line);
        }
        out.push(v);
        taken += 1;
        line += 1;
        i = memchr::memchr(b'\n', &buf[i..]).map_or(buf.len(), |at| i + at + 1);
    }
    None
}

/// `%lg`: a whitespace-delimited decimal floating-point token.
pub fn f64_field(s: &[u8]) -> Option<(f64, &[u8])> {
    let (t, rest) = token(s)?;
    let v = std::str::from_utf8(t).ok()?.parse().ok()?;
    Some((v, rest))
}

/// The lines of a buffer (without their `\n`); empty lines are skipped. (`memchr`
/// finds the line ends: the byte-at-a-time split was a third of vmstat's parsing.)
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', buf)
        .chain(std::iter::once(buf.len()))
        .map(move |end| {
            let line = &buf[start.min(end)..end];
            start = end + 1;
            line
        })
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let (t, r) = token(b"  MemTotal:   24684084 kB").unwrap();
        assert_eq!(t, b"MemTotal:");
        assert_eq!(u64_field(r).unwrap().0, 24684084);
        assert_eq!(u64_field(b" 99999999999999999999999").unwrap().0, u64::MAX);
        assert!(u64_field(b" kB").is_none());
        assert_eq!(f64_field(b" 0.25 1").unwrap().0, 0.25);
        assert_eq!(lines(b"a\nb\n\nc").count(), 3);
    }

    /// What the three-pass parse gives for the same bytes.
    fn per_line(buf: &[u8], max: usize) -> (Vec<u64>, Option<usize>) {
        let mut out = Vec::new();
        for (i, l) in lines(buf).enumerate().take(max) {
            match token(l).and_then(|(_, rest)| u64_field(rest)) {
                Some((v, _)) => out.push(v),
                None => return (out, Some(i)),
            }
        }
        (out, None)
    }

    #[test]
    fn name_values_parse_as_the_line_by_line_forms_do() {
        let cases: &[&[u8]] = &[
            b"nr_free_pages 5049383\nnr_zone_inactive_anon 0\n",
            b"MemTotal:       24684084 kB\nMemFree:        20197532 kB\n\nHugePages_Total:       0\n",
            b"a 1\n\n\nb +2\nc 99999999999999999999999 tail\n  d\t4",
            b"a 1\nnot a number\nb 2\n",
            b"a 1\n   \nb 2\n",
            b"a\nb 2\n",
            b" 5\n",
            b"",
            b"\n\n",
            b"x 7",
        ];
        for &case in cases {
            for max in [0, 1, 2, 100] {
                let mut out = Vec::new();
                let stopped = name_values(case, max, &mut out);
                assert_eq!((out, stopped), per_line(case, max), "{:?} max {max}", String::from_utf8_lossy(case));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn name_values_agree_on_any_bytes(
            bytes in proptest::collection::vec(proptest::sample::select(b" \t\n+0123456789ab:\r".to_vec()), 0..200),
            max in 0usize..40,
        ) {
            let mut out = Vec::new();
            let stopped = name_values(&bytes, max, &mut out);
            proptest::prop_assert_eq!((out, stopped), per_line(&bytes, max));
        }
    }
}
