//! Field types (`DBF_*`), menus and field values.

use std::time::Duration;

use crate::proto::dbr::{NativeType, Value};

/// A menu: the fixed choice strings of a `DBF_MENU` field.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Menu {
    /// The menu's name in EPICS base, e.g. `"menuScan"`.
    pub name: &'static str,
    /// The choices, in index order.
    pub choices: &'static [&'static str],
}

impl Menu {
    /// Index of a choice given by name, or by its decimal index (as EPICS accepts both).
    pub fn index_of(&self, text: &str) -> Option<u16> {
        if let Some(index) = self.choices.iter().position(|c| *c == text) {
            return u16::try_from(index).ok();
        }
        let index: u16 = text.trim().parse().ok()?;
        (usize::from(index) < self.choices.len()).then_some(index)
    }

    /// The choice string at `index`.
    pub fn choice(&self, index: u16) -> Option<&'static str> {
        self.choices.get(usize::from(index)).copied()
    }
}

/// `menuScan`: how a record is scanned.
pub static MENU_SCAN: Menu = Menu {
    name: "menuScan",
    choices: &[
        "Passive",
        "Event",
        "I/O Intr",
        "10 second",
        "5 second",
        "2 second",
        "1 second",
        ".5 second",
        ".2 second",
        ".1 second",
    ],
};

/// The period of a periodic `SCAN` choice (`None` for Passive, Event and I/O Intr).
pub fn scan_period(scan: u16) -> Option<Duration> {
    Some(match scan {
        3 => Duration::from_secs(10),
        4 => Duration::from_secs(5),
        5 => Duration::from_secs(2),
        6 => Duration::from_secs(1),
        7 => Duration::from_millis(500),
        8 => Duration::from_millis(200),
        9 => Duration::from_millis(100),
        _ => return None,
    })
}

/// `menuAlarmSevr`: alarm severities.
pub static MENU_ALARM_SEVR: Menu = Menu { name: "menuAlarmSevr", choices: &["NO_ALARM", "MINOR", "MAJOR", "INVALID"] };

/// `menuAlarmStat`: alarm conditions, indexed like
/// [`alarm_status`](crate::proto::constants::alarm_status).
pub static MENU_ALARM_STAT: Menu = Menu {
    name: "menuAlarmStat",
    choices: &[
        "NO_ALARM",
        "READ",
        "WRITE",
        "HIHI",
        "HIGH",
        "LOLO",
        "LOW",
        "STATE",
        "COS",
        "COMM",
        "TIMEOUT",
        "HWLIMIT",
        "CALC",
        "SCAN",
        "LINK",
        "SOFT",
        "BAD_SUB",
        "UDF",
        "DISABLE",
        "SIMM",
        "READ_ACCESS",
        "WRITE_ACCESS",
    ],
};

/// `menuFtype`: element types of array records (waveform `FTVL`).
pub static MENU_FTYPE: Menu = Menu {
    name: "menuFtype",
    choices: &[
        "STRING", "CHAR", "UCHAR", "SHORT", "USHORT", "LONG", "ULONG", "INT64", "UINT64", "FLOAT", "DOUBLE", "ENUM",
    ],
};

/// `menuPini`: process at initialisation.
pub static MENU_PINI: Menu = Menu { name: "menuPini", choices: &["NO", "YES", "RUN", "RUNNING", "PAUSE", "PAUSED"] };
/// `menuPriority`: scan priority.
pub static MENU_PRIORITY: Menu = Menu { name: "menuPriority", choices: &["LOW", "MEDIUM", "HIGH"] };
/// `menuYesNo`.
pub static MENU_YES_NO: Menu = Menu { name: "menuYesNo", choices: &["NO", "YES"] };
/// `menuSimm`: simulation mode.
pub static MENU_SIMM: Menu = Menu { name: "menuSimm", choices: &["NO", "YES", "RAW"] };
/// `menuOmsl`: output mode select.
pub static MENU_OMSL: Menu = Menu { name: "menuOmsl", choices: &["supervisory", "closed_loop"] };
/// `menuIvoa`: invalid output action.
pub static MENU_IVOA: Menu =
    Menu { name: "menuIvoa", choices: &["Continue normally", "Don't drive outputs", "Set output to IVOV"] };
/// `menuConvert`: linear conversions (breakpoint tables are not supported).
pub static MENU_CONVERT: Menu = Menu { name: "menuConvert", choices: &["NO CONVERSION", "SLOPE", "LINEAR"] };
/// `aoOIF`: output increment/full.
pub static MENU_AO_OIF: Menu = Menu { name: "aoOIF", choices: &["Full", "Incremental"] };
/// `stringinPOST` / `stringoutPOST`: when to post monitors.
pub static MENU_STRING_POST: Menu = Menu { name: "stringinPOST", choices: &["On Change", "Always"] };
/// `waveformPOST`: when to post monitors (note the order differs from `stringinPOST`).
pub static MENU_WAVEFORM_POST: Menu = Menu { name: "waveformPOST", choices: &["Always", "On Change"] };
/// `longoutOOPT`: when to write the output.
pub static MENU_LONGOUT_OOPT: Menu = Menu {
    name: "longoutOOPT",
    choices: &["Every Time", "On Change", "When Zero", "When Non-zero", "Transition To Zero", "Transition To Non-zero"],
};

/// A field's database type (`DBF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Fixed-size string; `size` includes the terminating NUL, so at most `size - 1` bytes.
    String {
        /// Storage size in bytes including the NUL.
        size: u16,
    },
    /// Signed 8-bit integer.
    Char,
    /// Unsigned 8-bit integer.
    UChar,
    /// Signed 16-bit integer.
    Short,
    /// Unsigned 16-bit integer.
    UShort,
    /// Signed 32-bit integer.
    Long,
    /// Unsigned 32-bit integer.
    ULong,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 64-bit integer.
    UInt64,
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// Enumerated value whose state strings the record defines (bi/bo/mbbi/mbbo `VAL`).
    Enum,
    /// Choice from a fixed menu.
    Menu(&'static Menu),
    /// Device type (`DTYP`), kept as text.
    Device,
    /// Input link (text).
    InLink,
    /// Output link (text).
    OutLink,
    /// Forward link (text).
    FwdLink,
}

impl FieldType {
    /// The CA type a channel to this field has (EPICS' `dbDBRnewToDBRold` mapping:
    /// USHORT → LONG, ULONG/INT64/UINT64 → DOUBLE, UCHAR → CHAR, links → STRING).
    pub fn native(self) -> NativeType {
        match self {
            FieldType::String { .. }
            | FieldType::Device
            | FieldType::InLink
            | FieldType::OutLink
            | FieldType::FwdLink => NativeType::String,
            FieldType::Char | FieldType::UChar => NativeType::Char,
            FieldType::Short => NativeType::Short,
            FieldType::UShort | FieldType::Long => NativeType::Long,
            FieldType::ULong | FieldType::Int64 | FieldType::UInt64 | FieldType::Double => NativeType::Double,
            FieldType::Float => NativeType::Float,
            FieldType::Enum | FieldType::Menu(_) => NativeType::Enum,
        }
    }

    /// The `menuFtype` element type for a waveform's `FTVL` index (EPICS falls back to UCHAR).
    pub fn from_ftvl(ftvl: u16) -> FieldType {
        match ftvl {
            0 => FieldType::String { size: 40 },
            1 => FieldType::Char,
            3 => FieldType::Short,
            4 => FieldType::UShort,
            5 => FieldType::Long,
            6 => FieldType::ULong,
            7 => FieldType::Int64,
            8 => FieldType::UInt64,
            9 => FieldType::Float,
            10 => FieldType::Double,
            11 => FieldType::Enum,
            _ => FieldType::UChar,
        }
    }

    /// True for the integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            FieldType::Char
                | FieldType::UChar
                | FieldType::Short
                | FieldType::UShort
                | FieldType::Long
                | FieldType::ULong
                | FieldType::Int64
                | FieldType::UInt64
        )
    }

    /// True for text-valued fields (strings, links, DTYP).
    pub fn is_text(self) -> bool {
        self.native() == NativeType::String
    }

    /// The menu, for menu fields.
    pub fn menu(self) -> Option<&'static Menu> {
        match self {
            FieldType::Menu(menu) => Some(menu),
            _ => None,
        }
    }

    /// Wraps an integer into this type's range the way a C assignment does.
    pub(crate) fn wrap_int(self, v: i64) -> i64 {
        match self {
            FieldType::Char => i64::from(v as i8),
            FieldType::UChar => i64::from(v as u8),
            FieldType::Short => i64::from(v as i16),
            FieldType::UShort | FieldType::Enum | FieldType::Menu(_) => i64::from(v as u16),
            FieldType::Long => i64::from(v as i32),
            FieldType::ULong => i64::from(v as u32),
            _ => v,
        }
    }
}

/// The value of one field, in the canonical form for its [`FieldType`]:
///
/// | field type | variant |
/// |---|---|
/// | strings, links, DTYP | [`FieldValue::String`] |
/// | integers | [`FieldValue::Int`] |
/// | FLOAT, DOUBLE | [`FieldValue::Double`] |
/// | ENUM, MENU | [`FieldValue::Enum`] |
/// | waveform `VAL` | [`FieldValue::Array`] |
///
/// [`Record::put_field`](super::Record::put_field) accepts any variant and
/// converts it to the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Text.
    String(String),
    /// Any integer.
    Int(i64),
    /// Any floating-point number.
    Double(f64),
    /// An enum or menu index.
    Enum(u16),
    /// An array (waveform `VAL`), in the CA native element type.
    Array(Value),
}

impl FieldValue {
    /// The value as a number, if it is one (strings are parsed).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::String(s) => parse_number(s),
            FieldValue::Int(v) => Some(*v as f64),
            FieldValue::Double(v) => Some(*v),
            FieldValue::Enum(v) => Some(f64::from(*v)),
            FieldValue::Array(a) => a.to_f64_vec()?.first().copied(),
        }
    }

    /// The value as text, for string fields (numbers are formatted).
    pub fn to_text(&self) -> String {
        match self {
            FieldValue::String(s) => s.clone(),
            FieldValue::Int(v) => v.to_string(),
            FieldValue::Double(v) => v.to_string(),
            FieldValue::Enum(v) => v.to_string(),
            FieldValue::Array(a) => match a.convert(NativeType::String) {
                Ok(Value::String(s)) => s.first().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                _ => String::new(),
            },
        }
    }
}

/// Parses a number the way EPICS' string conversions do: decimal or
/// floating point, `0x` hexadecimal integers, `NaN`/`Inf`; surrounding
/// whitespace ignored; the empty string is zero.
pub fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    let (negative, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let v = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if negative { -v } else { v });
    }
    let lower = body.to_ascii_lowercase();
    let special = match lower.as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "infinity" => Some(f64::INFINITY),
        _ => None,
    };
    if let Some(v) = special {
        return Some(if negative { -v } else { v });
    }
    if !body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Parses an integer the way EPICS' `epicsParseInt64` with base 0 does:
/// decimal, `0x` hex or leading-`0` octal; the empty string is zero.
/// A number with a fraction is refused.
pub fn parse_integer(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0);
    }
    let (negative, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let magnitude = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        u64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<u64>().ok()?
    };
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        // Unsigned 64-bit values above i64::MAX keep their bit pattern.
        Some(magnitude as i64)
    }
}

/// Truncates `text` to at most `max` bytes without splitting a character.
pub fn truncate_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_epics() {
        assert_eq!(parse_number(""), Some(0.0));
        assert_eq!(parse_number(" 1.5e3 "), Some(1500.0));
        assert_eq!(parse_number("0x10"), Some(16.0));
        assert_eq!(parse_number("-0x10"), Some(-16.0));
        assert!(parse_number("NaN").unwrap().is_nan());
        assert_eq!(parse_number("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("1.2.3"), None);
        assert_eq!(parse_integer("010"), Some(8));
        assert_eq!(parse_integer("-0x10"), Some(-16));
        assert_eq!(parse_integer("1.5"), None);
        assert_eq!(parse_integer(""), Some(0));
    }

    #[test]
    fn menus_accept_names_and_indices() {
        assert_eq!(MENU_SCAN.index_of("1 second"), Some(6));
        assert_eq!(MENU_SCAN.index_of("6"), Some(6));
        assert_eq!(MENU_SCAN.index_of("10"), None);
        assert_eq!(MENU_SCAN.index_of("2 seconds"), None);
        assert_eq!(scan_period(7), Some(Duration::from_millis(500)));
        assert_eq!(scan_period(0), None);
        assert_eq!(MENU_ALARM_STAT.choice(17), Some("UDF"));
    }

    #[test]
    fn native_types_follow_db_dbr_mapping() {
        assert_eq!(FieldType::UShort.native(), NativeType::Long);
        assert_eq!(FieldType::ULong.native(), NativeType::Double);
        assert_eq!(FieldType::UChar.native(), NativeType::Char);
        assert_eq!(FieldType::InLink.native(), NativeType::String);
        assert_eq!(FieldType::Menu(&MENU_SCAN).native(), NativeType::Enum);
        assert_eq!(FieldType::from_ftvl(42), FieldType::UChar);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_to("héllo", 2), "h");
        assert_eq!(truncate_to("abc", 5), "abc");
    }
}
