//! Whole DBR payloads: metadata followed by the value array.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::constants::MAX_STRING_SIZE;
use crate::proto::dbr::metadata::Metadata;
use crate::proto::dbr::types::{DbrClass, DbrType, NativeType};
use crate::proto::dbr::value::{CaString, Value};
use crate::proto::dbr::wire::{Reader, check_text, put_text, terminated_text};
use crate::proto::error::DbrError;
use crate::proto::header::align8;

/// A decoded DBR payload, or one to encode: metadata plus values.
#[derive(Debug, Clone, PartialEq)]
pub struct DbrData {
    /// The metadata block (variant decided by the DBR type).
    pub metadata: Metadata,
    /// The value array.
    pub value: Value,
}

/// How many payload bytes `data_type` with `count` elements needs before padding,
/// and whether a shorter payload is still acceptable.
///
/// A lone DBR_STRING is the exception: libca writes and RSRV answers
/// CA_PROTO_READ with only `strlen + 1` bytes (padded to 8) instead of 40.
pub fn minimum_payload(data_type: DbrType, count: u32) -> u64 {
    if data_type == DbrType::String && count == 1 { 1 } else { data_type.payload_size(count) }
}

impl DbrData {
    /// Data with metadata.
    pub fn new(metadata: Metadata, value: Value) -> Self {
        DbrData { metadata, value }
    }

    /// Data of a plain type: values only.
    pub fn plain(value: Value) -> Self {
        DbrData { metadata: Metadata::None, value }
    }

    /// Element count as the header's `data_count` field.
    pub fn count(&self) -> Result<u32, DbrError> {
        u32::try_from(self.value.len()).map_err(|_| DbrError::TooManyElements(self.value.len()))
    }

    /// Decodes `count` elements of `data_type` from `payload`; trailing
    /// padding (of any content) is ignored.
    ///
    /// Never allocates more than the payload's own size justifies, whatever
    /// `count` claims.
    pub fn decode(data_type: DbrType, count: u32, payload: &[u8]) -> Result<Self, DbrError> {
        let needed = data_type.payload_size(count);
        let short = DbrError::PayloadTooShort { data_type, count, needed, actual: payload.len() };
        if (payload.len() as u64) < minimum_payload(data_type, count) {
            return Err(short);
        }
        let mut reader = Reader::new(payload, short.clone());
        let metadata = Metadata::decode(data_type, &mut reader)?;
        let native = data_type.native();
        let value = if (payload.len() as u64) < needed {
            // Only the lone-DBR_STRING case gets here (see minimum_payload).
            let field = reader.take(payload.len().min(MAX_STRING_SIZE))?;
            Value::String(vec![terminated_text(field, "DBR_STRING value")?])
        } else {
            // The length check above bounds count by payload.len(), so these
            // capacities are backed by bytes actually received.
            decode_values(native, count as usize, &mut reader)?
        };
        Ok(DbrData { metadata, value })
    }

    /// Encodes as `data_type`, padded to 8 bytes.
    pub fn encode(&self, data_type: DbrType) -> Result<Bytes, DbrError> {
        let count = self.count()?;
        let size = usize::try_from(data_type.padded_payload_size(count))
            .map_err(|_| DbrError::TooManyElements(self.value.len()))?;
        let mut buf = BytesMut::with_capacity(size);
        self.encode_into(data_type, &mut buf)?;
        let written = buf.len();
        buf.put_bytes(0, align8(written) - written);
        Ok(buf.freeze())
    }

    /// Encodes as `data_type` without trailing padding, appending to `buf`.
    pub fn encode_into<B: BufMut>(&self, data_type: DbrType, buf: &mut B) -> Result<(), DbrError> {
        if self.value.native_type() != data_type.native() {
            return Err(DbrError::ValueTypeMismatch { data_type, value: self.value.native_type() });
        }
        self.count()?;
        // Strings are checked before writing so a bad one leaves `buf` untouched.
        if let Value::String(strings) = &self.value {
            for text in strings {
                check_text(text, MAX_STRING_SIZE, "DBR_STRING value")?;
            }
        }
        if !self.metadata.fits(data_type) {
            return Err(DbrError::MetadataMismatch { data_type, metadata: self.metadata.kind() });
        }
        self.metadata.encode(data_type, buf)?;
        encode_values(&self.value, buf)
    }

    /// The DBR type whose layout matches this data best (STS for status-only
    /// string metadata, GR for enum strings); `None` when the metadata and
    /// value types cannot go together.
    pub fn natural_type(&self) -> Option<DbrType> {
        let native = self.value.native_type();
        let class = match (&self.metadata, native) {
            (Metadata::None, _) => DbrClass::Plain,
            (Metadata::Status(_), _) => DbrClass::Status,
            (Metadata::Time { .. }, _) => DbrClass::Time,
            (Metadata::Enum { .. }, NativeType::Enum) => DbrClass::Graphic,
            (Metadata::Graphic { .. }, n) if n != NativeType::Enum && n != NativeType::String => DbrClass::Graphic,
            (Metadata::Control { .. }, n) if n != NativeType::Enum && n != NativeType::String => DbrClass::Control,
            (Metadata::StatusAck { .. }, NativeType::String) => {
                return Some(DbrType::StsackString);
            }
            _ => return None,
        };
        DbrType::from_parts(native, class)
    }
}

fn decode_values(native: NativeType, count: usize, reader: &mut Reader<'_>) -> Result<Value, DbrError> {
    let bytes = reader.take(count * native.element_size())?;
    Ok(match native {
        NativeType::String => Value::String(
            bytes
                .chunks_exact(MAX_STRING_SIZE)
                .map(|field| terminated_text(field, "DBR_STRING value"))
                .collect::<Result<Vec<CaString>, _>>()?,
        ),
        NativeType::Char => Value::Char(bytes.to_vec()),
        NativeType::Short => Value::Short(bytes.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()),
        NativeType::Enum => Value::Enum(bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()),
        NativeType::Long => {
            Value::Long(bytes.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        NativeType::Float => {
            Value::Float(bytes.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        NativeType::Double => Value::Double(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
    })
}

fn encode_values<B: BufMut>(value: &Value, buf: &mut B) -> Result<(), DbrError> {
    match value {
        Value::String(v) => {
            for text in v {
                put_text(buf, text, MAX_STRING_SIZE, "DBR_STRING value")?;
            }
        }
        Value::Char(v) => buf.put_slice(v),
        Value::Short(v) => v.iter().for_each(|&x| buf.put_i16(x)),
        Value::Enum(v) => v.iter().for_each(|&x| buf.put_u16(x)),
        Value::Long(v) => v.iter().for_each(|&x| buf.put_i32(x)),
        Value::Float(v) => v.iter().for_each(|&x| buf.put_f32(x)),
        Value::Double(v) => v.iter().for_each(|&x| buf.put_f64(x)),
    }
    Ok(())
}
