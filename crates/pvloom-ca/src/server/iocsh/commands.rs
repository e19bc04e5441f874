//! What `dbl`, `dbpr`, `dbgf` print and how `dbpf` reads its value (`dbTest.c`'s
//! output shapes: `DBF_TYPE: value` in 10-column tab stops, `dbpr`'s `FIELD: value`
//! cells in 20-column stops).

use crate::proto::Value;
use crate::server::db::{Database, FieldType, FieldValue, Record};

/// The `DBF_` name of a field type.
pub fn dbf_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::String { .. } => "STRING",
        FieldType::Char => "CHAR",
        FieldType::UChar => "UCHAR",
        FieldType::Short => "SHORT",
        FieldType::UShort => "USHORT",
        FieldType::Long => "LONG",
        FieldType::ULong => "ULONG",
        FieldType::Int64 => "INT64",
        FieldType::UInt64 => "UINT64",
        FieldType::Float => "FLOAT",
        FieldType::Double => "DOUBLE",
        FieldType::Enum => "ENUM",
        FieldType::Menu(_) => "MENU",
        FieldType::Device => "DEVICE",
        FieldType::InLink => "INLINK",
        FieldType::OutLink => "OUTLINK",
        FieldType::FwdLink => "FWDLINK",
    }
}

/// Pads `text` with spaces to the next multiple of `tab` columns.
fn cell(out: &mut String, text: &str, tab: usize) {
    out.push_str(text);
    let len = text.chars().count();
    out.extend(std::iter::repeat_n(' ', tab - len % tab));
}

/// A field's value as `dbGetString` gives it: menus and enums by their text.
pub fn field_text(record: &Record, field: &str) -> Option<String> {
    let value = record.get_field(field)?;
    Some(match (value, record.field_type(field)?) {
        (FieldValue::Enum(i), FieldType::Menu(menu)) => {
            menu.choice(i).map(str::to_owned).unwrap_or_else(|| i.to_string())
        }
        (FieldValue::Enum(i), FieldType::Enum) => record
            .enum_strings(field)
            .and_then(|s| s.get(usize::from(i)).map(|s| (*s).to_owned()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| i.to_string()),
        (FieldValue::Array(array), _) => array_text(&array).join(" "),
        (other, _) => other.to_text(),
    })
}

fn array_text(array: &Value) -> Vec<String> {
    match array {
        Value::String(v) => v.iter().map(|s| format!("\"{}\"", s.to_string_lossy())).collect(),
        other => other.to_f64_vec().unwrap_or_default().iter().map(f64::to_string).collect(),
    }
}

/// `dbgf NAME`: `DBF_DOUBLE:         1.5`, `DBF_LONG[3]:        1 2 3`, enums as strings.
pub fn dbgf(db: &Database, name: &str) -> String {
    let Some((id, field)) = db.resolve(name) else { return format!("PV '{name}' not found\n") };
    let record = db.record(id);
    let Some(field_type) = record.field_type(field) else { return format!("PV '{name}' not found\n") };
    let mut out = String::new();
    match record.get_field(field) {
        Some(FieldValue::Array(array)) => {
            let items = array_text(&array);
            let head = format!("DBF_{}[{}]: ", dbf_name(field_type), items.len());
            cell(&mut out, &head, 10);
            if items.is_empty() {
                out.push_str("(empty)");
            }
            for item in items {
                cell(&mut out, &item, 10);
            }
        }
        Some(_) => {
            let text = field_text(record, field).unwrap_or_default();
            if matches!(field_type, FieldType::Enum | FieldType::Menu(_)) || field_type.is_text() {
                cell(&mut out, "DBF_STRING: ", 10);
                out.push('"');
                out.push_str(&text.escape_default().to_string());
                out.push('"');
            } else {
                cell(&mut out, &format!("DBF_{}: ", dbf_name(field_type)), 10);
                out.push_str(&text);
            }
        }
        None => out.push_str("failed."),
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// The fields `dbpr` shows at level 0 (the ones every record has that people look at).
const LEVEL0: &[&str] = &["ASG", "DESC", "DISA", "DISP", "DISV", "NAME", "SEVR", "STAT", "TPRO", "VAL"];

/// `dbpr NAME [level]`: level 0 the usual fields, higher levels every field.
pub fn dbpr(db: &Database, name: &str, level: i64) -> String {
    let Some((id, _)) = db.resolve(name) else { return format!("PV '{name}' not found\n") };
    let record = db.record(id);
    let mut names: Vec<&str> = record.record_type().fields().map(|spec| spec.name).collect();
    if level <= 0 {
        names.retain(|n| LEVEL0.contains(n));
    }
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    let mut line = String::new();
    for field in names {
        let Some(text) = field_text(record, field) else { continue };
        let item = format!("{field}: {text}");
        if line.len() + item.len() > 79 && !line.is_empty() {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clear();
        }
        cell(&mut line, &item, 20);
    }
    if !line.is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `dbl [type] [fields]`: record names (of one type, or all for `*` or nothing), each
/// followed by the quoted values of the listed fields, `, "value"`.
pub fn dbl(db: &Database, record_type: Option<&str>, fields: Option<&str>) -> String {
    let record_type = record_type.filter(|t| !t.is_empty() && *t != "*");
    let fields: Vec<&str> = fields.map(|f| f.split(' ').filter(|f| !f.is_empty()).collect()).unwrap_or_default();
    let mut ids: Vec<_> = db.ids().collect();
    // Base lists by record type (the .dbd's order), then load order.
    ids.sort_by_key(|&id| db.record(id).record_type().name());
    let mut out = String::new();
    let mut any_type = record_type.is_none();
    for id in ids {
        let record = db.record(id);
        if record_type.is_some_and(|t| t != record.record_type().name()) {
            continue;
        }
        any_type = true;
        out.push_str(record.name());
        for field in &fields {
            match field_text(record, field) {
                Some(text) => out.push_str(&format!(", \"{text}\"")),
                None if *field == "recordType" => out.push_str(&format!(", \"{}\"", record.record_type())),
                None => out.push_str(", "),
            }
        }
        out.push('\n');
    }
    if !any_type {
        out.push_str("No record type\n");
    }
    out
}

/// The value `dbpf` writes: a JSON-style array for array fields (`[1, 2, 3]`), else text
/// the field converts as a CA string put would.
pub fn put_value(record: &Record, field: &str, text: &str) -> FieldValue {
    let is_array = record.element_count(field).is_some_and(|n| n > 1);
    let trimmed = text.trim();
    if is_array && trimmed.starts_with('[') && trimmed.ends_with(']') {
        let inner = &trimmed[1..trimmed.len() - 1];
        let items: Vec<&str> = inner.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if let Some(numbers) = items.iter().map(|s| s.parse::<f64>().ok()).collect::<Option<Vec<f64>>>() {
            return FieldValue::Array(Value::Double(numbers));
        }
        let strings = items.iter().map(|s| s.trim_matches('"').into()).collect();
        return FieldValue::Array(Value::String(strings));
    }
    FieldValue::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::{Macros, parse_db};
    use std::time::SystemTime;

    fn db() -> Database {
        let defs = parse_db(
            "record(ai, \"T:AI\") { field(VAL, 1.5) field(DESC, \"an ai\") field(SCAN, \"1 second\") }\n\
             record(bo, \"T:BO\") { field(ZNAM, Off) field(ONAM, On) field(VAL, 1) }\n\
             record(waveform, \"T:WF\") { field(FTVL, LONG) field(NELM, 4) }",
            "t.db",
            &Macros::new(),
        )
        .unwrap();
        Database::from_defs(defs, SystemTime::now()).unwrap()
    }

    #[test]
    fn dbgf_prints_type_and_value() {
        let db = db();
        assert_eq!(dbgf(&db, "T:AI"), "DBF_DOUBLE:         1.5\n");
        assert_eq!(dbgf(&db, "T:AI.DESC"), "DBF_STRING:         \"an ai\"\n");
        assert_eq!(dbgf(&db, "T:AI.SCAN"), "DBF_STRING:         \"1 second\"\n");
        assert_eq!(dbgf(&db, "T:BO"), "DBF_STRING:         \"On\"\n");
        assert_eq!(dbgf(&db, "T:WF"), "DBF_LONG[0]:        (empty)\n");
        assert_eq!(dbgf(&db, "NOPE"), "PV 'NOPE' not found\n");
    }

    #[test]
    fn dbl_lists_by_type_with_fields() {
        let db = db();
        assert_eq!(dbl(&db, None, None), "T:AI\nT:BO\nT:WF\n");
        assert_eq!(dbl(&db, Some("ai"), Some("DESC  VAL recordType NOPE")), "T:AI, \"an ai\", \"1.5\", \"ai\", \n");
        assert_eq!(dbl(&db, Some("calc"), None), "No record type\n");
    }

    #[test]
    fn dbpr_levels() {
        let db = db();
        let short = dbpr(&db, "T:AI", 0);
        assert!(short.contains("DESC: an ai") && short.contains("NAME: T:AI") && short.contains("VAL: 1.5"), "{short}");
        assert!(!short.contains("HOPR"), "{short}");
        assert!(dbpr(&db, "T:AI", 1).contains("HOPR: 0"));
    }

    #[test]
    fn dbpf_reads_arrays_as_json() {
        let db = db();
        let wf = db.record(db.find("T:WF").unwrap());
        assert_eq!(put_value(wf, "VAL", "[1, 2,3]"), FieldValue::Array(Value::Double(vec![1.0, 2.0, 3.0])));
        let ai = db.record(db.find("T:AI").unwrap());
        assert_eq!(put_value(ai, "VAL", "[1]"), FieldValue::String("[1]".into()));
    }
}
