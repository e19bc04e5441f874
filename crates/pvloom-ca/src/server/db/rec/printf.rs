//! Formatted string (`printfRecord`): `VAL` is `FMT` with each conversion
//! taking the next of `INP0`..`INP9` (a `*` width or precision takes one too);
//! a conversion whose link is empty or unreadable prints `IVLS`, a bad one
//! prints itself. `VAL` holds `SIZV` - 1 bytes and is written to `OUT`.
//! Channels see `VAL` as a string (`DBR_STRING`, at most 39 bytes).

use crate::proto::dbr::Value;
use crate::server::db::record::{Constant, PutError};

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "printf", fields: &[FIELDS], new: || Box::new(Printf::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(41), RO;
    "SIZV": UShort, RO, "41";
    "LEN": ULong, RO;
    "OUT": OutLink;
    "FMT": s(81), PP;
    "IVLS": s(16), 0, "LNK";
    "INP0": InLink;
    "INP1": InLink;
    "INP2": InLink;
    "INP3": InLink;
    "INP4": InLink;
    "INP5": InLink;
    "INP6": InLink;
    "INP7": InLink;
    "INP8": InLink;
    "INP9": InLink;
};

static INPUTS: [&str; 10] = ["INP0", "INP1", "INP2", "INP3", "INP4", "INP5", "INP6", "INP7", "INP8", "INP9"];

/// The state of a printf record.
#[derive(Debug, Clone, PartialEq)]
pub struct Printf {
    /// The formatted string (`VAL`).
    pub val: String,
    /// Capacity of `VAL` in bytes, with the terminating nul (`SIZV`).
    pub sizv: u16,
}

impl Default for Printf {
    fn default() -> Self {
        Printf { val: String::new(), sizv: 41 }
    }
}

/// One `%` directive of `FMT`.
#[derive(Debug, Default)]
struct Directive {
    left: bool,
    plus: bool,
    space: bool,
    alternate: bool,
    zero: bool,
    width: i64,
    precision: Option<i64>,
    /// `h` count (1 short, 2 char) or `l` count (1 long, 2 long long).
    short: u8,
    long: u8,
    conversion: char,
}

/// Where a conversion's argument comes from: the next input link's value,
/// read by the database (`true`: from a link) or a constant, or nothing (prints `IVLS`).
fn next_argument(ctx: &Process<'_>, next: &mut usize) -> Option<(FieldValue, bool)> {
    let link = *INPUTS.get(*next)?;
    *next += 1;
    if let Some(v) = ctx.input(link) {
        return Some((v.clone(), true));
    }
    Constant::parse(&ctx.get(link).to_text()).and_then(|c| c.field_value(None)).map(|v| (v, false))
}

fn pad(body: String, d: &Directive, numeric: bool) -> String {
    let width = d.width.max(0) as usize;
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if d.left {
        format!("{body}{}", " ".repeat(fill))
    } else if d.zero && numeric {
        let sign_len = usize::from(body.starts_with(['-', '+', ' ']));
        let (sign, digits) = body.split_at(sign_len);
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

fn signed(v: i64, d: &Directive) -> String {
    let sign = if v < 0 {
        "-"
    } else if d.plus {
        "+"
    } else if d.space {
        " "
    } else {
        ""
    };
    format!("{sign}{}", v.unsigned_abs())
}

/// C's `%e` mantissa and an exponent of at least two digits.
fn exponential(v: f64, precision: usize, upper: bool) -> String {
    let text = format!("{v:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exponent.abs())
}

/// C's `%g`: `%e` or `%f` by the exponent, trailing zeros removed unless `#`.
fn general(v: f64, precision: usize, alternate: bool, upper: bool) -> String {
    let p = precision.max(1);
    let exponent = if v == 0.0 { 0 } else { v.abs().log10().floor() as i64 };
    let strip = |s: String| {
        if alternate || !s.contains('.') {
            return s;
        }
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if exponent < -4 || exponent >= p as i64 {
        let text = exponential(v, p - 1, upper);
        let (mantissa, rest) = text.split_at(text.find(['e', 'E']).unwrap_or(text.len()));
        format!("{}{rest}", strip(mantissa.to_string()))
    } else {
        strip(format!("{v:.*}", (p as i64 - 1 - exponent).max(0) as usize))
    }
}

fn float(v: f64, d: &Directive) -> String {
    let precision = d.precision.unwrap_or(6).max(0) as usize;
    let v = if d.short > 0 { f64::from(v as f32) } else { v };
    let body = match d.conversion {
        'e' | 'E' => exponential(v, precision, d.conversion == 'E'),
        'g' | 'G' => general(v, precision, d.alternate, d.conversion == 'G'),
        _ => format!("{v:.precision$}"),
    };
    let body = if body.starts_with('-') {
        body
    } else if d.plus {
        format!("+{body}")
    } else if d.space {
        format!(" {body}")
    } else {
        body
    };
    pad(body, d, true)
}

/// Formats one conversion of `value`, or `None` when the value does not fit it.
fn convert(d: &Directive, value: &FieldValue) -> Option<String> {
    let number = || match value {
        FieldValue::Int(v) => Some(*v as f64),
        FieldValue::String(s) => parse_number(s),
        other => other.as_f64(),
    };
    let integer = || match value {
        FieldValue::Int(v) => Some(*v),
        _ => number().filter(|v| v.is_finite()).map(|v| v as i64),
    };
    Some(match d.conversion {
        'd' | 'i' => {
            let v = integer()?;
            let v = match (d.short, d.long) {
                (2, _) => i64::from(v as i8),
                (1, _) => i64::from(v as i16),
                (_, 2) => v,
                _ => i64::from(v as i32),
            };
            pad(signed(v, d), d, true)
        }
        'o' | 'x' | 'X' | 'u' => {
            let v = integer()?;
            let v = match (d.short, d.long) {
                (2, _) => u64::from(v as u8),
                (1, _) => u64::from(v as u16),
                (_, 2) => v as u64,
                _ => u64::from(v as u32),
            };
            let body = match d.conversion {
                'o' => format!("{}{v:o}", if d.alternate && v != 0 { "0" } else { "" }),
                'x' => format!("{}{v:x}", if d.alternate && v != 0 { "0x" } else { "" }),
                'X' => format!("{}{v:X}", if d.alternate && v != 0 { "0X" } else { "" }),
                _ => v.to_string(),
            };
            pad(body, d, true)
        }
        'c' => pad(char::from(integer()? as u8).to_string(), d, false),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => float(number()?, d),
        _ => {
            // %s reads its link as DBR_STRING (39 bytes); %ls as DBR_CHAR, which only a
            // char array gives (a string field, even an lsi's, fails: IVLS).
            let text = if d.long == 0 {
                truncate_to(&value.to_text(), 39).to_string()
            } else {
                match value {
                    FieldValue::Array(Value::Char(bytes)) => {
                        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                        String::from_utf8_lossy(&bytes[..end]).into_owned()
                    }
                    _ => return None,
                }
            };
            let limit = d.precision.map_or(text.len(), |p| p.max(0) as usize);
            pad(truncate_to(&text, limit).to_string(), d, false)
        }
    })
}

/// `doPrintf`: formats `fmt` with arguments from the input links.
fn format_record(fmt: &str, ivls: &str, ctx: &Process<'_>, link_failed: &mut bool) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut text = String::from('%');
        let mut d = Directive::default();
        let mut bad = false;
        let mut bad_link = false;
        let mut in_precision = false;
        let mut finished = false;
        for c in chars.by_ref() {
            text.push(c);
            match c {
                '-' => d.left = true,
                '+' => d.plus = true,
                ' ' => d.space = true,
                '#' => d.alternate = true,
                '0' if !in_precision && d.width == 0 => d.zero = true,
                '0'..='9' => {
                    let digit = i64::from(c as u8 - b'0');
                    if in_precision {
                        d.precision = Some(d.precision.unwrap_or(0) * 10 + digit);
                    } else {
                        d.width = d.width * 10 + digit;
                    }
                }
                '.' => {
                    in_precision = true;
                    d.precision = Some(0);
                }
                '*' => match next_argument(ctx, &mut next).and_then(|(v, _)| v.as_f64()) {
                    Some(v) if in_precision => d.precision = Some(v as i64),
                    Some(v) => d.width = v as i64,
                    None => bad_link = true,
                },
                'h' if d.long == 0 && d.short < 2 => d.short += 1,
                'l' if d.short == 0 && d.long < 2 => d.long += 1,
                'h' | 'l' => bad = true,
                _ => {
                    bad |= !"diouxXeEfFgGcs%".contains(c);
                    d.conversion = c;
                    finished = true;
                    break;
                }
            }
        }
        if !finished {
            break;
        }
        if d.width < 0 {
            d.width = -d.width;
            d.left = true;
        }
        if bad {
            out.push_str(&text);
            continue;
        }
        if d.conversion == '%' {
            out.push('%');
            continue;
        }
        let formatted = if bad_link {
            None
        } else {
            next_argument(ctx, &mut next).and_then(|(value, from_link)| {
                let formatted = convert(&d, &value);
                // A link read the conversion's type cannot take fails as dbGetLink does.
                *link_failed |= formatted.is_none() && from_link;
                formatted
            })
        };
        match formatted {
            Some(s) => out.push_str(&s),
            None => out.push_str(ivls),
        }
    }
    out
}

impl RecordSupport for Printf {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        match name {
            "VAL" => Some(FieldValue::String(self.val.clone())),
            "SIZV" => Some(FieldValue::Int(self.sizv.into())),
            _ => None,
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        match name {
            // init_record: SIZV is at least 16 and at most 32767.
            "SIZV" => self.sizv = (value.as_f64().unwrap_or(41.0) as u16).clamp(16, 0x7fff),
            "VAL" => self.val = value.to_text(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        use crate::proto::constants::{DBE_LOG, DBE_VALUE};
        let mut link_failed = false;
        let text = format_record(&ctx.get("FMT").to_text(), &ctx.get("IVLS").to_text(), ctx, &mut link_failed);
        if link_failed {
            ctx.raise(crate::proto::constants::alarm_status::LINK, crate::proto::constants::severity::INVALID);
        }
        self.val = truncate_to(&text, usize::from(self.sizv).saturating_sub(1)).to_string();
        *ctx.udf = false;
        ctx.set("LEN", FieldValue::Int(self.val.len() as i64 + 1));
        ctx.changes.post("LEN", DBE_VALUE | DBE_LOG);
        ctx.write("OUT", FieldValue::String(self.val.clone()));
        DBE_VALUE | DBE_LOG
    }

    fn field_type(&self, name: &str) -> Option<FieldType> {
        (name == "VAL").then_some(FieldType::String { size: self.sizv })
    }

    fn loads_read_only(&self, name: &str) -> bool {
        name == "SIZV"
    }

    fn input_links(&self) -> &'static [&'static str] {
        &INPUTS
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::server::db::FieldValue::{Double, Int, String as Text};

    #[test]
    fn formats_as_c_printf() {
        let mut db = db(r#"
            record(ao, x) { field(VAL, 3.14159) }
            record(longout, n) { field(VAL, -42) }
            record(stringout, name) { field(VAL, "pump") }
            record(stringout, dest) { }
            record(printf, p) {
                field(SIZV, 80)
                field(FMT, "%s: %5.2f|%-4d|%04x|%e|%g|%%|%*d|%d")
                field(INP0, "name") field(INP1, "x") field(INP2, "n") field(INP3, "255")
                field(INP4, "x") field(INP5, "0.0001") field(INP6, "3") field(INP7, "n")
                field(OUT, "dest PP")
            }
            record(printf, short) { field(SIZV, 6) field(FMT, "%d and more %s") field(INP0, "n") field(INP1, "name") }
        "#);
        process(&mut db, "p");
        let expected = "pump:  3.14|-42 |00ff|3.141590e+00|0.0001|%|-42|LNK";
        assert_eq!(get(&db, "p"), Text(expected.into()), "INP8 is empty: IVLS");
        assert_eq!(get(&db, "p.LEN"), Int(expected.len() as i64 + 1), "with the nul");
        assert_eq!(get(&db, "dest"), Text(expected[..39].into()), "VAL written to OUT, a 40-byte string");
        process(&mut db, "short");
        assert_eq!(get(&db, "short"), Text("-42 and more pu".into()), "SIZV 6 is raised to 16, holding 15 bytes");
        put(&mut db, "x", Double(1.0e-7));
        process(&mut db, "p");
        assert!(get(&db, "p").to_text().contains("1.000000e-07"));
    }
}
