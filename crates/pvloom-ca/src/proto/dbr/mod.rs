//! DBR payloads: type codes, metadata, values and their wire encoding.
//!
//! A payload is the metadata block of its type (with the alignment pads of
//! `db_access.h`) followed by `count` elements of the native type, padded to
//! a multiple of 8 bytes on the wire.

mod codec;
mod metadata;
mod time;
mod types;
mod value;
mod wire;

pub use codec::{DbrData, minimum_payload};
pub use metadata::{Alarm, ControlLimits, GraphicInfo, Metadata};
pub use time::{EpicsTime, TimeRangeError};
pub use types::{DbrClass, DbrType, NativeType};
pub use value::{CaString, ConvertError, Value};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::error::DbrError;

    fn sample_value(native: NativeType) -> Value {
        match native {
            NativeType::String => Value::String(vec!["hello".into(), "".into(), "x".repeat(39).as_str().into()]),
            NativeType::Short => Value::Short(vec![-3, 0, i16::MAX]),
            NativeType::Float => Value::Float(vec![1.5, -0.25]),
            NativeType::Enum => Value::Enum(vec![2]),
            NativeType::Char => Value::Char(vec![0, 1, 255, 7, 9]),
            NativeType::Long => Value::Long(vec![i32::MIN, 5]),
            NativeType::Double => Value::Double(vec![3.5, -1e300, 0.0]),
        }
    }

    fn sample_metadata(data_type: DbrType) -> Metadata {
        let alarm = Alarm { status: 3, severity: 2 };
        let native = data_type.native();
        let integral = !matches!(native, NativeType::Float | NativeType::Double);
        let info = GraphicInfo {
            units: "mA".into(),
            precision: if integral { 0 } else { 4 },
            upper_disp_limit: 100.0,
            lower_disp_limit: 1.0,
            upper_alarm_limit: 90.0,
            upper_warning_limit: 80.0,
            lower_warning_limit: 20.0,
            lower_alarm_limit: 10.0,
        };
        let control = ControlLimits { upper_ctrl_limit: 95.0, lower_ctrl_limit: 5.0 };
        let candidates = [
            Metadata::None,
            Metadata::Status(alarm),
            Metadata::Time { alarm, stamp: EpicsTime::new(1_000_000_000, 999_999_999) },
            Metadata::Graphic { alarm, info: info.clone() },
            Metadata::Control { alarm, info, control },
            Metadata::Enum { alarm, strings: vec!["Off".into(), "On".into(), "y".repeat(25).as_str().into()] },
            Metadata::StatusAck { alarm, ackt: 1, acks: 2 },
        ];
        candidates.into_iter().find(|m| m.fits(data_type)).expect("every type has a metadata variant")
    }

    #[test]
    fn every_type_round_trips() {
        for data_type in DbrType::ALL {
            let data = DbrData::new(sample_metadata(data_type), sample_value(data_type.native()));
            let bytes = data.encode(data_type).unwrap();
            assert_eq!(bytes.len() % 8, 0, "{data_type}");
            let count = data.count().unwrap();
            assert_eq!(bytes.len() as u64, data_type.padded_payload_size(count), "{data_type}");
            let decoded = DbrData::decode(data_type, count, &bytes).unwrap();
            assert_eq!(decoded, data, "{data_type}");
        }
    }

    #[test]
    fn zero_elements_round_trip() {
        for data_type in DbrType::ALL {
            let data = DbrData::new(sample_metadata(data_type), Value::empty(data_type.native()));
            let bytes = data.encode(data_type).unwrap();
            assert_eq!(DbrData::decode(data_type, 0, &bytes).unwrap(), data);
        }
    }

    #[test]
    fn time_double_exact_bytes() {
        let data = DbrData::new(
            Metadata::Time { alarm: Alarm { status: 0, severity: 0 }, stamp: EpicsTime::new(0x3B9A_CA00, 500) },
            Value::Double(vec![1.0]),
        );
        let bytes = data.encode(DbrType::TimeDouble).unwrap();
        #[rustfmt::skip]
        let expected: [u8; 24] = [
            0, 0, 0, 0,                 // status, severity
            0x3B, 0x9A, 0xCA, 0x00,     // seconds past 1990
            0, 0, 0x01, 0xF4,           // nanoseconds
            0, 0, 0, 0,                 // RISC_pad
            0x3F, 0xF0, 0, 0, 0, 0, 0, 0, // 1.0
        ];
        assert_eq!(&bytes[..], &expected);
    }

    /// The DBR_GR_SHORT reply of the spec's example conversation.
    #[test]
    fn gr_short_example_from_the_spec() {
        #[rustfmt::skip]
        let payload: [u8; 32] = [
            0x00, 0x05, 0x00, 0x02, 0x43, 0x6f, 0x75, 0x6e, 0x74, 0x73, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
            0x00, 0x08, 0x00, 0x06, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let data = DbrData::decode(DbrType::GrShort, 1, &payload).unwrap();
        let info = data.metadata.graphic().unwrap();
        assert_eq!(data.metadata.alarm().unwrap().status, 5);
        assert_eq!(data.metadata.alarm().unwrap().severity, 2);
        assert_eq!(info.units, "Counts");
        assert_eq!(info.upper_disp_limit, 10.0);
        assert_eq!(info.upper_alarm_limit, 8.0);
        assert_eq!(info.lower_alarm_limit, 2.0);
        assert_eq!(data.value, Value::Short(vec![0]));
        assert_eq!(&data.encode(DbrType::GrShort).unwrap()[..], &payload);
    }

    #[test]
    fn lone_string_may_be_short() {
        // "0\0" plus non-zero junk in the padding, as in the spec's example.
        let payload = [0x30, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x01];
        let data = DbrData::decode(DbrType::String, 1, &payload).unwrap();
        assert_eq!(data.value, Value::String(vec!["0".into()]));
        let unterminated = [b'a'; 8];
        assert_eq!(
            DbrData::decode(DbrType::String, 1, &unterminated),
            Err(DbrError::StringNotTerminated { field: "DBR_STRING value" })
        );
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert!(matches!(
            DbrData::decode(DbrType::Double, 2, &[0; 8]),
            Err(DbrError::PayloadTooShort { needed: 16, .. })
        ));
        // A huge count with a tiny payload must fail before allocating.
        assert!(matches!(DbrData::decode(DbrType::Double, u32::MAX, &[0; 8]), Err(DbrError::PayloadTooShort { .. })));
        assert!(matches!(DbrData::decode(DbrType::String, 2, &[b'z'; 80]), Err(DbrError::StringNotTerminated { .. })));
        let mut gr_enum = vec![0u8; 424];
        gr_enum[4..6].copy_from_slice(&17i16.to_be_bytes());
        assert_eq!(DbrData::decode(DbrType::GrEnum, 1, &gr_enum), Err(DbrError::InvalidEnumStringCount(17)));
    }

    #[test]
    fn encoding_checks_types_and_lengths() {
        let doubles = DbrData::plain(Value::Double(vec![1.0]));
        assert!(matches!(doubles.encode(DbrType::Long), Err(DbrError::ValueTypeMismatch { .. })));
        assert!(matches!(doubles.encode(DbrType::TimeDouble), Err(DbrError::MetadataMismatch { .. })));
        let long_string = DbrData::plain(Value::String(vec!["z".repeat(40).as_str().into()]));
        assert!(matches!(long_string.encode(DbrType::String), Err(DbrError::StringTooLong { max: 39, .. })));
    }

    #[test]
    fn natural_types() {
        let data =
            DbrData::new(Metadata::Time { alarm: Alarm::default(), stamp: EpicsTime::EPOCH }, Value::Long(vec![]));
        assert_eq!(data.natural_type(), Some(DbrType::TimeLong));
        assert_eq!(DbrData::plain(Value::Char(vec![])).natural_type(), Some(DbrType::Char));
    }

    #[test]
    fn a_million_doubles() {
        let values: Vec<f64> = (0..1_000_000).map(f64::from).collect();
        let data = DbrData::plain(Value::Double(values));
        let bytes = data.encode(DbrType::Double).unwrap();
        assert_eq!(bytes.len(), 8_000_000);
        assert_eq!(DbrData::decode(DbrType::Double, 1_000_000, &bytes).unwrap(), data);
    }
}
