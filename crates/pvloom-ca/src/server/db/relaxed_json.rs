//! JSON as EPICS base 7 reads it in database files and channel names: object keys may be
//! bare identifiers (`{const: 3, arr: {s: 2}}`), as JSON5 allows.

/// Parses relaxed JSON text; `None` if it is not JSON even with bare keys quoted.
pub fn parse(text: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&quote_bare_keys(text)).ok()
}

/// `{arr:{s:2}}` → `{"arr":{"s":2}}`: a bare identifier followed by `:` becomes a string;
/// string contents (with their escapes) are copied untouched.
fn quote_bare_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !(d.is_ascii_alphanumeric() || d == '_') {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let word = &text[i..end];
            if text[end..].trim_start().starts_with(':') {
                out.push('"');
                out.push_str(word);
                out.push('"');
            } else {
                out.push_str(word);
            }
            continue;
        }
        in_string = c == '"';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_keys_are_quoted_and_strings_kept() {
        assert_eq!(parse("{const: 3.5}"), Some(json!({"const": 3.5})));
        assert_eq!(parse("{arr:{s:2,e:-1}}"), Some(json!({"arr": {"s": 2, "e": -1}})));
        assert_eq!(parse(r#"{const: "a: b \" é"}"#), Some(json!({"const": "a: b \" é"})));
        assert_eq!(parse("[1, 2, true, null]"), Some(json!([1, 2, true, null])));
        assert_eq!(parse("{const: }"), None);
        assert_eq!(parse("AO.VAL PP"), None);
    }
}
