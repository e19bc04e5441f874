//! C `printf` number forms store_csv uses that Rust does not have: `%.Ng`.

/// `printf("%.*g", prec, x)` (glibc): `prec` significant digits, fixed notation when the
/// decimal exponent is in `-4..prec`, else `d.ddde±XX`; trailing zeros and a trailing point
/// removed.
pub fn g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    let p = prec.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{:.*e}", p - 1, x);
    let (mant, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if exp >= -4 && exp < p as i32 {
        let f = format!("{:.*}", (p as i32 - 1 - exp) as usize, x);
        strip(&f).to_string()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mant), exp.abs())
    }
}

fn strip(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

#[cfg(test)]
mod tests {
    use super::g;

    #[test]
    fn like_glibc() {
        // Expected strings are what glibc's printf("%.17g") / ("%.9g") prints.
        assert_eq!(g(0.1, 17), "0.10000000000000001");
        assert_eq!(g(1000000000000.25, 17), "1000000000000.25");
        assert_eq!(g(-1234.5678, 17), "-1234.5678");
        assert_eq!(g(1.5, 17), "1.5");
        assert_eq!(g(100.0, 17), "100");
        assert_eq!(g(1e20, 17), "1e+20");
        assert_eq!(g(1.25e-5, 17), "1.2500000000000001e-05");
        assert_eq!(g(0.0001, 9), "0.0001");
        assert_eq!(g(0.1f32 as f64, 9), "0.100000001");
        assert_eq!(g(1000.5f32 as f64, 9), "1000.5");
        assert_eq!(g(123456789012.0, 9), "1.23456789e+11");
        assert_eq!(g(0.0, 17), "0");
        assert_eq!(g(-0.0, 17), "-0");
        assert_eq!(g(f64::INFINITY, 17), "inf");
    }
}
