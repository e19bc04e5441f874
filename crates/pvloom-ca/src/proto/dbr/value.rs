//! Typed value arrays and the byte strings DBR text fields hold.

use std::fmt;

use crate::proto::dbr::types::NativeType;

/// Text from a DBR field: raw bytes without the NUL terminator.
///
/// EPICS strings are byte strings with no declared encoding, so they are
/// kept as bytes to survive a round trip; use [`CaString::to_string_lossy`]
/// to display them.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct CaString(Vec<u8>);

impl CaString {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        CaString(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Gives the raw bytes back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text, with invalid UTF-8 replaced.
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl fmt::Debug for CaString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

impl fmt::Display for CaString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl From<&str> for CaString {
    fn from(text: &str) -> Self {
        CaString(text.as_bytes().to_vec())
    }
}

impl From<String> for CaString {
    fn from(text: String) -> Self {
        CaString(text.into_bytes())
    }
}

impl From<&[u8]> for CaString {
    fn from(bytes: &[u8]) -> Self {
        CaString(bytes.to_vec())
    }
}

impl PartialEq<str> for CaString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for CaString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// The value array of a DBR payload, one variant per native type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `DBR_STRING` elements (at most 39 bytes each).
    String(Vec<CaString>),
    /// `DBR_SHORT` elements.
    Short(Vec<i16>),
    /// `DBR_FLOAT` elements.
    Float(Vec<f32>),
    /// `DBR_ENUM` indices (also PUT_ACKT/PUT_ACKS values).
    Enum(Vec<u16>),
    /// `DBR_CHAR` elements.
    Char(Vec<u8>),
    /// `DBR_LONG` elements.
    Long(Vec<i32>),
    /// `DBR_DOUBLE` elements.
    Double(Vec<f64>),
}

/// Why a value cannot be converted to another native type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A string element is not a number.
    #[error("string {0:?} is not a number")]
    NotANumber(String),
}

impl Value {
    /// Element type of the array.
    pub fn native_type(&self) -> NativeType {
        match self {
            Value::String(_) => NativeType::String,
            Value::Short(_) => NativeType::Short,
            Value::Float(_) => NativeType::Float,
            Value::Enum(_) => NativeType::Enum,
            Value::Char(_) => NativeType::Char,
            Value::Long(_) => NativeType::Long,
            Value::Double(_) => NativeType::Double,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Value::String(v) => v.len(),
            Value::Short(v) => v.len(),
            Value::Float(v) => v.len(),
            Value::Enum(v) => v.len(),
            Value::Char(v) => v.len(),
            Value::Long(v) => v.len(),
            Value::Double(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty array of the given type.
    pub fn empty(native: NativeType) -> Self {
        match native {
            NativeType::String => Value::String(Vec::new()),
            NativeType::Short => Value::Short(Vec::new()),
            NativeType::Float => Value::Float(Vec::new()),
            NativeType::Enum => Value::Enum(Vec::new()),
            NativeType::Char => Value::Char(Vec::new()),
            NativeType::Long => Value::Long(Vec::new()),
            NativeType::Double => Value::Double(Vec::new()),
        }
    }

    /// The elements as `f64`, for numeric arrays (`None` for strings).
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        Some(match self {
            Value::String(_) => return None,
            Value::Short(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Value::Float(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Value::Enum(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Value::Char(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Value::Long(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Value::Double(v) => v.clone(),
        })
    }

    /// Converts every element to `target`, as a server does when a client asks
    /// for a type other than the channel's native one.
    ///
    /// Numbers convert with Rust's saturating `as` casts; numbers become
    /// strings in their shortest round-trip form; strings become numbers by
    /// parsing (surrounding whitespace ignored).
    pub fn convert(&self, target: NativeType) -> Result<Value, ConvertError> {
        if self.native_type() == target {
            return Ok(self.clone());
        }
        if let Value::String(strings) = self {
            let numbers = strings
                .iter()
                .map(|s| {
                    let text = s.to_string_lossy();
                    text.trim().parse::<f64>().map_err(|_| ConvertError::NotANumber(text.into_owned()))
                })
                .collect::<Result<Vec<f64>, _>>()?;
            return Ok(Value::Double(numbers).convert_numeric(target));
        }
        if target == NativeType::String {
            return Ok(Value::String(self.format_elements()));
        }
        Ok(self.convert_numeric(target))
    }

    fn format_elements(&self) -> Vec<CaString> {
        fn fmt_all<T: ToString>(v: &[T]) -> Vec<CaString> {
            v.iter().map(|x| CaString::from(x.to_string())).collect()
        }
        match self {
            Value::String(v) => v.clone(),
            Value::Short(v) => fmt_all(v),
            Value::Float(v) => fmt_all(v),
            Value::Enum(v) => fmt_all(v),
            Value::Char(v) => fmt_all(v),
            Value::Long(v) => fmt_all(v),
            Value::Double(v) => fmt_all(v),
        }
    }

    /// Numeric-to-numeric conversion; string input must be handled by the caller.
    fn convert_numeric(&self, target: NativeType) -> Value {
        macro_rules! cast_all {
            ($v:expr) => {
                match target {
                    NativeType::Short => Value::Short($v.iter().map(|&x| x as i16).collect()),
                    NativeType::Float => Value::Float($v.iter().map(|&x| x as f32).collect()),
                    NativeType::Enum => Value::Enum($v.iter().map(|&x| x as u16).collect()),
                    NativeType::Char => Value::Char($v.iter().map(|&x| x as u8).collect()),
                    NativeType::Long => Value::Long($v.iter().map(|&x| x as i32).collect()),
                    NativeType::Double => Value::Double($v.iter().map(|&x| x as f64).collect()),
                    NativeType::String => self.clone(),
                }
            };
        }
        match self {
            Value::String(_) => self.clone(),
            Value::Short(v) => cast_all!(v),
            Value::Float(v) => cast_all!(v),
            Value::Enum(v) => cast_all!(v),
            Value::Char(v) => cast_all!(v),
            Value::Long(v) => cast_all!(v),
            Value::Double(v) => cast_all!(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_conversions() {
        let value = Value::Double(vec![1.5, -2.0, 70000.0]);
        assert_eq!(value.convert(NativeType::Long).unwrap(), Value::Long(vec![1, -2, 70000]));
        assert_eq!(value.convert(NativeType::Short).unwrap(), Value::Short(vec![1, -2, i16::MAX]));
    }

    #[test]
    fn string_conversions() {
        let value = Value::String(vec![" 3.25 ".into(), "7".into()]);
        assert_eq!(value.convert(NativeType::Double).unwrap(), Value::Double(vec![3.25, 7.0]));
        assert_eq!(Value::Long(vec![42]).convert(NativeType::String).unwrap(), Value::String(vec!["42".into()]));
        assert!(matches!(
            Value::String(vec!["abc".into()]).convert(NativeType::Long),
            Err(ConvertError::NotANumber(_))
        ));
    }

    #[test]
    fn ca_string_keeps_raw_bytes() {
        let s = CaString::new(vec![0xB5, b'A']);
        assert_eq!(s.as_bytes(), &[0xB5, b'A']);
        assert_eq!(s.to_string_lossy(), "\u{FFFD}A");
        assert_eq!(CaString::from("mA"), "mA");
    }
}
