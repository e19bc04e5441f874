//! Output in the formats of EPICS base's caget, caput, camonitor and cainfo.

use std::fmt::Write as _;
use std::time::SystemTime;

use pvloom_ca::client::{Metadata, Response, Value};
use pvloom_ca::proto::DbrType;
use pvloom_ca::server::db::value::{MENU_ALARM_SEVR, MENU_ALARM_STAT};

/// Alarm condition names, as EPICS's menuAlarmStat spells them.
pub fn status_name(status: u16) -> &'static str {
    MENU_ALARM_STAT.choices.get(usize::from(status)).copied().unwrap_or("UNKNOWN")
}

/// Alarm severity names (menuAlarmSevr).
pub fn severity_name(severity: u16) -> &'static str {
    MENU_ALARM_SEVR.choices.get(usize::from(severity)).copied().unwrap_or("UNKNOWN")
}

/// How to print numbers and strings, from the tools' common flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValueStyle {
    /// Enums as numbers (`-n`).
    pub enum_as_number: bool,
    /// Char arrays as a string (`-S`).
    pub char_as_string: bool,
    /// `%e` / `%f` / `%g` with this precision (`-e`, `-f`, `-g`).
    pub float: Option<(char, usize)>,
}

/// C's `%g` with 6 significant digits (what the tools print by default).
pub fn format_g(value: f64, precision: usize) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".into()
        } else if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return "0".into();
    }
    let precision = precision.max(1);
    let exponent = value.abs().log10().floor() as i32;
    if exponent < -4 || exponent >= precision as i32 {
        let formatted = format!("{:.*e}", precision - 1, value);
        let (mantissa, exp) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        format!("{}e{}{:02}", trim_zeros(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_zeros(&format!("{value:.decimals$}")).to_owned()
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text }
}

fn float(value: f64, style: ValueStyle) -> String {
    match style.float {
        Some(('e', p)) => format!("{value:.p$e}"),
        Some(('f', p)) => format!("{value:.p$}"),
        Some((_, p)) => format_g(value, p),
        None => format_g(value, 6),
    }
}

/// The elements of a value as the tools print them.
pub fn elements(response: &Response, style: ValueStyle) -> Vec<String> {
    let strings = response.metadata().enum_strings();
    match response.value() {
        Value::String(items) => items.iter().map(|s| s.to_string_lossy().into_owned()).collect(),
        Value::Enum(items) => items
            .iter()
            .map(|&i| match strings.and_then(|s| s.get(usize::from(i))) {
                Some(text) if !style.enum_as_number => text.to_string_lossy().into_owned(),
                _ => i.to_string(),
            })
            .collect(),
        Value::Char(bytes) if style.char_as_string => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            vec![String::from_utf8_lossy(&bytes[..end]).into_owned()]
        }
        Value::Char(bytes) => bytes.iter().map(ToString::to_string).collect(),
        Value::Short(v) => v.iter().map(ToString::to_string).collect(),
        Value::Long(v) => v.iter().map(ToString::to_string).collect(),
        Value::Float(v) => v.iter().map(|&x| float(f64::from(x), style)).collect(),
        Value::Double(v) => v.iter().map(|&x| float(x, style)).collect(),
    }
}

/// The value column: one element as is; arrays as `count v1 v2 ...`.
pub fn value_column(response: &Response, style: ValueStyle) -> String {
    let items = elements(response, style);
    let is_char = matches!(response.value(), Value::Char(_));
    if is_char && style.char_as_string {
        return items.join("");
    }
    if items.len() == 1 && !is_char {
        return items.into_iter().next().unwrap_or_default();
    }
    let mut out = items.len().to_string();
    for item in items {
        out.push(' ');
        out.push_str(&item);
    }
    out
}

/// `2024-05-01 13:45:10.123456`, in local time, as camonitor prints it.
pub fn timestamp(time: SystemTime) -> String {
    let local: chrono::DateTime<chrono::Local> = time.into();
    local.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// ` HIHI MAJOR` when in alarm, nothing otherwise (camonitor and caget -a).
pub fn alarm_suffix(response: &Response) -> String {
    match response.alarm() {
        Some(alarm) if alarm.severity != 0 || alarm.status != 0 => {
            format!(" {} {}", status_name(alarm.status), severity_name(alarm.severity))
        }
        _ => String::new(),
    }
}

/// One caget line: `NAME                           VALUE` (or the value alone, `-t`).
pub fn caget_line(name: &str, response: &Response, terse: bool, wide: bool, style: ValueStyle) -> String {
    let value = value_column(response, style);
    if terse {
        return value;
    }
    if wide {
        let stamp = response.timestamp().map(timestamp).unwrap_or_default();
        return format!("{name:<30} {stamp} {value}{}", alarm_suffix(response));
    }
    format!("{name:<30} {value}")
}

/// caget's multi-line report for an explicit `-d` type.
pub fn caget_detailed(name: &str, native: Option<DbrType>, response: &Response, style: ValueStyle) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{name}");
    if let Some(native) = native {
        let _ = writeln!(out, "    Native data type: {}", native.name().replacen("DBR_", "DBF_", 1));
    }
    let _ = writeln!(out, "    Request type:     {}", response.data_type.name());
    let _ = writeln!(out, "    Element count:    {}", response.data_count);
    let _ = writeln!(out, "    Value:            {}", elements(response, style).join(" "));
    if let Some(alarm) = response.alarm() {
        let _ = writeln!(out, "    Status:           {}", status_name(alarm.status));
        let _ = writeln!(out, "    Severity:         {}", severity_name(alarm.severity));
    }
    if let Some(stamp) = response.timestamp() {
        let _ = writeln!(out, "    Timestamp:        {}", timestamp(stamp));
    }
    match response.metadata() {
        Metadata::Graphic { info, .. } | Metadata::Control { info, .. } => {
            let _ = writeln!(out, "    Units:            {}", info.units);
            if matches!(response.value(), Value::Double(_) | Value::Float(_)) {
                let _ = writeln!(out, "    Precision:        {}", info.precision);
            }
            let _ = writeln!(out, "    Lo disp limit:    {}", format_g(info.lower_disp_limit, 6));
            let _ = writeln!(out, "    Hi disp limit:    {}", format_g(info.upper_disp_limit, 6));
            let _ = writeln!(out, "    Lo alarm limit:   {}", format_g(info.lower_alarm_limit, 6));
            let _ = writeln!(out, "    Lo warn limit:    {}", format_g(info.lower_warning_limit, 6));
            let _ = writeln!(out, "    Hi warn limit:    {}", format_g(info.upper_warning_limit, 6));
            let _ = writeln!(out, "    Hi alarm limit:   {}", format_g(info.upper_alarm_limit, 6));
            if let Metadata::Control { control, .. } = response.metadata() {
                let _ = writeln!(out, "    Lo ctrl limit:    {}", format_g(control.lower_ctrl_limit, 6));
                let _ = writeln!(out, "    Hi ctrl limit:    {}", format_g(control.upper_ctrl_limit, 6));
            }
        }
        Metadata::Enum { strings, .. } => {
            let _ = writeln!(out, "    Enums:            ({:2})", strings.len());
            for (index, text) in strings.iter().enumerate() {
                let _ = writeln!(out, "                      [{index:2}] {}", text.to_string_lossy());
            }
        }
        _ => {}
    }
    out.truncate(out.trim_end().len());
    out
}

/// One camonitor line.
pub fn camonitor_line(name: &str, response: &Response, style: ValueStyle) -> String {
    let stamp = response.timestamp().map(timestamp).unwrap_or_else(|| "<undefined>".into());
    format!("{name:<30} {stamp} {}{}", value_column(response, style), alarm_suffix(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvloom_ca::proto::{Alarm, DbrData, EpicsTime};

    fn response(data_type: DbrType, metadata: Metadata, value: Value) -> Response {
        let count = value.len() as u32;
        Response { data_type, data_count: count, status: 1, data: DbrData::new(metadata, value) }
    }

    #[test]
    fn percent_g_matches_c() {
        assert_eq!(format_g(1.5, 6), "1.5");
        assert_eq!(format_g(0.1 + 0.2, 6), "0.3");
        assert_eq!(format_g(123456.0, 6), "123456");
        assert_eq!(format_g(1234567.0, 6), "1.23457e+06");
        assert_eq!(format_g(0.00001234, 6), "1.234e-05");
        assert_eq!(format_g(-2.0, 6), "-2");
        assert_eq!(format_g(0.0, 6), "0");
    }

    #[test]
    fn caget_scalar_array_and_terse() {
        let scalar = response(DbrType::Double, Metadata::None, Value::Double(vec![1.5]));
        assert_eq!(caget_line("AI", &scalar, false, false, ValueStyle::default()), format!("{:<30} 1.5", "AI"));
        assert_eq!(caget_line("AI", &scalar, true, false, ValueStyle::default()), "1.5");
        let array = response(DbrType::Long, Metadata::None, Value::Long(vec![1, 2, 3]));
        assert_eq!(caget_line("WF", &array, false, false, ValueStyle::default()), format!("{:<30} 3 1 2 3", "WF"));
        let chars = response(DbrType::Char, Metadata::None, Value::Char(b"hi\0".to_vec()));
        let style = ValueStyle { char_as_string: true, ..Default::default() };
        assert_eq!(caget_line("C", &chars, true, false, style), "hi");
    }

    #[test]
    fn enums_print_their_strings_unless_numbers_are_asked_for() {
        let e = response(
            DbrType::GrEnum,
            Metadata::Enum { alarm: Alarm::default(), strings: vec!["Off".into(), "On".into()] },
            Value::Enum(vec![1]),
        );
        assert_eq!(value_column(&e, ValueStyle::default()), "On");
        assert_eq!(value_column(&e, ValueStyle { enum_as_number: true, ..Default::default() }), "1");
    }

    #[test]
    fn camonitor_shows_alarm_only_when_in_alarm() {
        let quiet = response(
            DbrType::TimeDouble,
            Metadata::Time { alarm: Alarm::default(), stamp: EpicsTime::new(0, 0) },
            Value::Double(vec![2.0]),
        );
        assert!(camonitor_line("X", &quiet, ValueStyle::default()).ends_with(" 2"));
        let alarmed = response(
            DbrType::TimeDouble,
            Metadata::Time { alarm: Alarm { status: 3, severity: 2 }, stamp: EpicsTime::new(0, 0) },
            Value::Double(vec![9.0]),
        );
        assert!(camonitor_line("X", &alarmed, ValueStyle::default()).ends_with(" 9 HIHI MAJOR"));
    }
}
