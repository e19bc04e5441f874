//! What a scan is, independent of where it comes from and where it goes.
//!
//! A source (the blissdata reader, `pvloom record`) turns its input into a sequence of
//! [`ScanEvent`]s; a sink (the NeXus writer, the blissdata publisher) consumes them. The
//! sequence is always: one [`ScanEvent::Begin`], then any mix of `State`, `Info`, `Data`,
//! `Sealed`, and finally either `State(Closed)` or a `Fault`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A scan's life as blissdata numbers it (`blissdata.redis_engine.scan.ScanState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ScanState {
    Created = 0,
    Prepared = 1,
    Started = 2,
    Stopped = 3,
    Closed = 4,
}

impl ScanState {
    pub fn from_code(code: i64) -> Option<ScanState> {
        Some(match code {
            0 => ScanState::Created,
            1 => ScanState::Prepared,
            2 => ScanState::Started,
            3 => ScanState::Stopped,
            4 => ScanState::Closed,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The identity fields blissdata's ESRF identity model carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanIdentity {
    pub name: String,
    pub number: u64,
    pub session: String,
    pub proposal: String,
    pub collection: String,
    pub dataset: String,
    pub path: String,
    pub data_policy: String,
}

/// The element type of a numeric stream: numpy's kinds b, i, u, f and c.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    F32,
    F64,
    C64,
    C128,
}

impl ElementType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::Bool | ElementType::I8 | ElementType::U8 => 1,
            ElementType::I16 | ElementType::U16 | ElementType::F16 => 2,
            ElementType::I32 | ElementType::U32 | ElementType::F32 => 4,
            ElementType::I64 | ElementType::U64 | ElementType::F64 | ElementType::C64 => 8,
            ElementType::C128 => 16,
        }
    }

    fn kind_and_size(self) -> (char, usize) {
        let kind = match self {
            ElementType::Bool => 'b',
            ElementType::I8 | ElementType::I16 | ElementType::I32 | ElementType::I64 => 'i',
            ElementType::U8 | ElementType::U16 | ElementType::U32 | ElementType::U64 => 'u',
            ElementType::F16 | ElementType::F32 | ElementType::F64 => 'f',
            ElementType::C64 | ElementType::C128 => 'c',
        };
        (kind, self.size())
    }
}

/// Byte order of a numeric stream's elements, as numpy's dtype strings write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Little,
    Big,
    /// `|`: one-byte elements, where order does not apply.
    NotApplicable,
}

/// A numpy dtype string such as `<f8`, `>i4` or `|u1`, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dtype {
    pub element: ElementType,
    pub order: ByteOrder,
}

/// A dtype string this crate does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported numeric dtype {0:?} (expected numpy's b/i/u/f/c kinds, e.g. \"<f8\")")]
pub struct UnknownDtype(pub String);

impl Dtype {
    pub const fn new(element: ElementType, order: ByteOrder) -> Dtype {
        Dtype { element, order }
    }

    /// A little-endian dtype (one-byte types get `|`), as numpy writes native types here.
    pub fn little(element: ElementType) -> Dtype {
        let order = if element.size() == 1 { ByteOrder::NotApplicable } else { ByteOrder::Little };
        Dtype { element, order }
    }

    pub fn parse(s: &str) -> Result<Dtype, UnknownDtype> {
        let bad = || UnknownDtype(s.to_owned());
        let mut chars = s.chars();
        let order = match chars.next().ok_or_else(bad)? {
            '<' => ByteOrder::Little,
            '>' => ByteOrder::Big,
            '|' => ByteOrder::NotApplicable,
            '=' if cfg!(target_endian = "little") => ByteOrder::Little,
            '=' => ByteOrder::Big,
            _ => return Err(bad()),
        };
        let kind = chars.next().ok_or_else(bad)?;
        let size: usize = chars.as_str().parse().map_err(|_| bad())?;
        use ElementType::*;
        let element = match (kind, size) {
            ('b', 1) => Bool,
            ('i', 1) => I8,
            ('i', 2) => I16,
            ('i', 4) => I32,
            ('i', 8) => I64,
            ('u', 1) => U8,
            ('u', 2) => U16,
            ('u', 4) => U32,
            ('u', 8) => U64,
            ('f', 2) => F16,
            ('f', 4) => F32,
            ('f', 8) => F64,
            ('c', 8) => C64,
            ('c', 16) => C128,
            _ => return Err(bad()),
        };
        if order == ByteOrder::NotApplicable && size != 1 {
            return Err(bad());
        }
        Ok(Dtype { element, order })
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = match self.order {
            ByteOrder::Little => '<',
            ByteOrder::Big => '>',
            ByteOrder::NotApplicable => '|',
        };
        let (kind, size) = self.element.kind_and_size();
        write!(f, "{order}{kind}{size}")
    }
}

/// How a stream's points are encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Encoding {
    /// Raw C-order elements. `shape` is one point's shape; `-1` marks a variable dimension
    /// (each point then carries its own shape).
    Numeric { dtype: Dtype, shape: Vec<i64> },
    /// One JSON value per point.
    Json,
}

impl Encoding {
    /// Whether a point's shape varies from point to point.
    pub fn is_variable(&self) -> bool {
        matches!(self, Encoding::Numeric { shape, .. } if shape.iter().any(|&d| d < 0))
    }

    /// Bytes per point of a fixed-shape numeric stream.
    pub fn point_size(&self) -> Option<usize> {
        match self {
            Encoding::Numeric { dtype, shape } if !self.is_variable() => {
                Some(shape.iter().map(|&d| d as usize).product::<usize>() * dtype.element.size())
            }
            _ => None,
        }
    }
}

/// One data stream of a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamDesc {
    /// The stream's name as blissdata names it, e.g. `timer:elapsed_time`, `diode:diode`.
    pub name: Arc<str>,
    pub encoding: Encoding,
    /// The stream's own info (units, plot hints…), as the source gave it.
    pub info: serde_json::Map<String, serde_json::Value>,
}

/// Everything known about a scan when its streams are known.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanMeta {
    /// Where the scan lives at its source, e.g. `esrf:scan:01HV…` for blissdata.
    pub key: String,
    pub identity: ScanIdentity,
    /// The scan's info document (title, filename, npoints, positioners, plots…).
    pub info: serde_json::Value,
    /// Index `i` is the stream that `Data { stream: i, .. }` refers to.
    pub streams: Vec<StreamDesc>,
}

/// Points of one stream, in the stream's encoding.
#[derive(Clone, Debug, PartialEq)]
pub enum Points {
    /// `count` points of a fixed-shape numeric stream, C-order, in the stream's dtype.
    Fixed { count: usize, bytes: Vec<u8> },
    /// Points of a variable-shape numeric stream, each with its own shape.
    Variable(Vec<(Vec<usize>, Vec<u8>)>),
    /// Points of a JSON stream.
    Json(Vec<serde_json::Value>),
}

impl Points {
    pub fn len(&self) -> usize {
        match self {
            Points::Fixed { count, .. } => *count,
            Points::Variable(points) => points.len(),
            Points::Json(points) => points.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a scan ended without being closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanFault {
    pub reason: String,
}

impl fmt::Display for ScanFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// One step of a scan, from source to sink.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanEvent {
    /// The scan and its streams; always first.
    Begin(Box<ScanMeta>),
    /// The scan moved to a new state. `Closed` is the last event of a scan that ended well.
    State(ScanState),
    /// The scan's info document changed (blissdata rewrites it at the end, with end times
    /// and final positioners); the whole new document.
    Info(serde_json::Value),
    /// Points `first_index..first_index + points.len()` of stream `stream`.
    Data { stream: usize, first_index: u64, points: Points },
    /// Stream `stream` will carry no more points; it has `total` in all.
    Sealed { stream: usize, total: u64 },
    /// The source failed; the scan ends here.
    Fault(ScanFault),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_strings_round_trip() {
        for s in ["<f8", ">i4", "|u1", "|b1", "<c16", "<f2", ">u8", "<i2"] {
            assert_eq!(Dtype::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "<", "f8", "<x4", "<f3", "<i16", "<U10", "|O", "<M8"] {
            assert!(Dtype::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn point_sizes() {
        let image = Encoding::Numeric { dtype: Dtype::parse("<u2").unwrap(), shape: vec![4, 5] };
        assert_eq!(image.point_size(), Some(40));
        let scalar = Encoding::Numeric { dtype: Dtype::parse("<f8").unwrap(), shape: vec![] };
        assert_eq!(scalar.point_size(), Some(8));
        let spectrum = Encoding::Numeric { dtype: Dtype::parse("<f4").unwrap(), shape: vec![-1] };
        assert!(spectrum.is_variable());
        assert_eq!(spectrum.point_size(), None);
        assert_eq!(Encoding::Json.point_size(), None);
    }
}
