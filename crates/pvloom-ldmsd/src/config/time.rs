//! Time values as `ovis_time_str2us` reads them: a number (as `strtod` takes it), optional
//! spaces, then an optional unit: none or `us`/`micro…` (µs), `ms`/`milli…`, then any word
//! starting with `s` (seconds), `m` (minutes), `h` (hours) or `d` (days). Fractions are
//! truncated towards zero, as the C cast does.

/// Length of the longest prefix of `s` that reads as a decimal floating-point number.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if int + frac > 0 {
            i += 1 + frac;
        }
    }
    if int + frac == 0 {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let e = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if e > 0 {
            i = j + e;
        }
    }
    i
}

/// Microseconds from an ldmsd time string (`1000000`, `1s`, `100ms`, `1.5 s`, `2m`).
pub fn parse_us(s: &str) -> Option<i64> {
    let n = number_len(s);
    if n == 0 {
        return None;
    }
    let x: f64 = s[..n].parse().ok()?;
    let unit = s[n..].trim_start_matches(' ');
    let scale = if unit.is_empty() || unit == "us" || unit.starts_with("micro") {
        1.0
    } else if unit == "ms" || unit.starts_with("milli") {
        1e3
    } else {
        match unit.as_bytes()[0] {
            b's' => 1e6,
            b'm' => 6e7,
            b'h' => 3.6e9,
            b'd' => 8.64e10,
            _ => return None,
        }
    };
    let v = x * scale;
    v.is_finite().then_some(v as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_us;

    #[test]
    fn units() {
        assert_eq!(parse_us("1000000"), Some(1_000_000));
        assert_eq!(parse_us("1s"), Some(1_000_000));
        assert_eq!(parse_us("1 sec"), Some(1_000_000));
        assert_eq!(parse_us("100ms"), Some(100_000));
        assert_eq!(parse_us("250us"), Some(250));
        assert_eq!(parse_us("1.5s"), Some(1_500_000));
        assert_eq!(parse_us("2m"), Some(120_000_000));
        assert_eq!(parse_us("1h"), Some(3_600_000_000));
        assert_eq!(parse_us("-100000"), Some(-100_000));
        assert_eq!(parse_us("1e3"), Some(1000));
        assert_eq!(parse_us("x"), None);
        assert_eq!(parse_us("5 parsecs"), None);
        assert_eq!(parse_us(""), None);
    }
}
