//! DBR type codes and their wire geometry (metadata size, element size).

use crate::proto::error::DbrError;

/// Element type of a DBR value array; the "field type" of a channel.
///
/// The discriminant is the plain `DBR_*` code (0..=6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum NativeType {
    /// 40-byte NUL-terminated strings (`dbr_string_t`).
    String = 0,
    /// Signed 16-bit integers (`DBR_SHORT`, alias `DBR_INT`).
    Short = 1,
    /// IEEE 32-bit floats.
    Float = 2,
    /// Unsigned 16-bit enum indices.
    Enum = 3,
    /// Unsigned 8-bit integers (`DBR_CHAR`, often byte arrays / long strings).
    Char = 4,
    /// Signed 32-bit integers.
    Long = 5,
    /// IEEE 64-bit floats.
    Double = 6,
}

impl NativeType {
    /// All native types in code order.
    pub const ALL: [NativeType; 7] = [
        NativeType::String,
        NativeType::Short,
        NativeType::Float,
        NativeType::Enum,
        NativeType::Char,
        NativeType::Long,
        NativeType::Double,
    ];

    /// The native type with the given plain `DBR_*` code, if any.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Plain `DBR_*` code of this type.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Bytes one element occupies on the wire.
    pub const fn element_size(self) -> usize {
        match self {
            NativeType::String => crate::proto::constants::MAX_STRING_SIZE,
            NativeType::Short | NativeType::Enum => 2,
            NativeType::Float | NativeType::Long => 4,
            NativeType::Char => 1,
            NativeType::Double => 8,
        }
    }

    /// Position of this type in per-native tables.
    const fn index(self) -> usize {
        self as usize
    }
}

/// Which metadata family a DBR type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbrClass {
    /// Value only (`DBR_*`, codes 0..=6).
    Plain,
    /// Alarm status and severity (`DBR_STS_*`, 7..=13).
    Status,
    /// Alarm plus timestamp (`DBR_TIME_*`, 14..=20).
    Time,
    /// Alarm plus display metadata (`DBR_GR_*`, 21..=27).
    Graphic,
    /// Alarm plus display and control metadata (`DBR_CTRL_*`, 28..=34).
    Control,
    /// Alarm acknowledge-transient flag write (`DBR_PUT_ACKT`, 35).
    PutAckt,
    /// Alarm acknowledge-severity write (`DBR_PUT_ACKS`, 36).
    PutAcks,
    /// String with status and alarm acknowledgement state (`DBR_STSACK_STRING`, 37).
    StsackString,
    /// Record type name (`DBR_CLASS_NAME`, 38).
    ClassName,
}

impl DbrClass {
    /// The five families that exist for every native type.
    pub const FAMILIES: [DbrClass; 5] =
        [DbrClass::Plain, DbrClass::Status, DbrClass::Time, DbrClass::Graphic, DbrClass::Control];
}

macro_rules! dbr_types {
    ($($variant:ident = $code:literal, $name:literal;)*) => {
        /// A DBR request/payload type: the `data_type` header field of data messages.
        ///
        /// The discriminant is the wire code (0..=38).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum DbrType {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($code), ").")]
                $variant = $code,
            )*
        }

        impl DbrType {
            /// Every DBR type in code order.
            pub const ALL: [DbrType; 39] = [$(DbrType::$variant,)*];

            /// The EPICS identifier, e.g. `"DBR_TIME_DOUBLE"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DbrType::$variant => $name,)*
                }
            }
        }
    };
}

dbr_types! {
    String = 0, "DBR_STRING";
    Short = 1, "DBR_SHORT";
    Float = 2, "DBR_FLOAT";
    Enum = 3, "DBR_ENUM";
    Char = 4, "DBR_CHAR";
    Long = 5, "DBR_LONG";
    Double = 6, "DBR_DOUBLE";
    StsString = 7, "DBR_STS_STRING";
    StsShort = 8, "DBR_STS_SHORT";
    StsFloat = 9, "DBR_STS_FLOAT";
    StsEnum = 10, "DBR_STS_ENUM";
    StsChar = 11, "DBR_STS_CHAR";
    StsLong = 12, "DBR_STS_LONG";
    StsDouble = 13, "DBR_STS_DOUBLE";
    TimeString = 14, "DBR_TIME_STRING";
    TimeShort = 15, "DBR_TIME_SHORT";
    TimeFloat = 16, "DBR_TIME_FLOAT";
    TimeEnum = 17, "DBR_TIME_ENUM";
    TimeChar = 18, "DBR_TIME_CHAR";
    TimeLong = 19, "DBR_TIME_LONG";
    TimeDouble = 20, "DBR_TIME_DOUBLE";
    GrString = 21, "DBR_GR_STRING";
    GrShort = 22, "DBR_GR_SHORT";
    GrFloat = 23, "DBR_GR_FLOAT";
    GrEnum = 24, "DBR_GR_ENUM";
    GrChar = 25, "DBR_GR_CHAR";
    GrLong = 26, "DBR_GR_LONG";
    GrDouble = 27, "DBR_GR_DOUBLE";
    CtrlString = 28, "DBR_CTRL_STRING";
    CtrlShort = 29, "DBR_CTRL_SHORT";
    CtrlFloat = 30, "DBR_CTRL_FLOAT";
    CtrlEnum = 31, "DBR_CTRL_ENUM";
    CtrlChar = 32, "DBR_CTRL_CHAR";
    CtrlLong = 33, "DBR_CTRL_LONG";
    CtrlDouble = 34, "DBR_CTRL_DOUBLE";
    PutAckt = 35, "DBR_PUT_ACKT";
    PutAcks = 36, "DBR_PUT_ACKS";
    StsackString = 37, "DBR_STSACK_STRING";
    ClassName = 38, "DBR_CLASS_NAME";
}

/// Byte offset of the value array, per native type, for each family.
/// These include the RISC alignment pads of `db_access.h` (e.g. TIME_SHORT's
/// `RISC_pad`, TIME_CHAR's two pads, STS/TIME_DOUBLE's 32-bit pad).
const STATUS_OFFSETS: [usize; 7] = [4, 4, 4, 4, 5, 4, 8];
const TIME_OFFSETS: [usize; 7] = [12, 14, 12, 14, 15, 12, 16];
/// GR_STRING has no display metadata: it is laid out like STS_STRING.
const GRAPHIC_OFFSETS: [usize; 7] = [4, 24, 40, 422, 19, 36, 64];
/// CTRL_STRING is laid out like STS_STRING; CTRL_ENUM like GR_ENUM.
const CONTROL_OFFSETS: [usize; 7] = [4, 28, 48, 422, 21, 44, 80];

impl DbrType {
    /// Decodes a wire type code.
    pub fn from_code(code: u16) -> Result<Self, DbrError> {
        Self::ALL.get(usize::from(code)).copied().ok_or(DbrError::UnknownType(code))
    }

    /// Wire code of this type.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Metadata family of this type.
    pub const fn class(self) -> DbrClass {
        match self.code() {
            0..=6 => DbrClass::Plain,
            7..=13 => DbrClass::Status,
            14..=20 => DbrClass::Time,
            21..=27 => DbrClass::Graphic,
            28..=34 => DbrClass::Control,
            35 => DbrClass::PutAckt,
            36 => DbrClass::PutAcks,
            37 => DbrClass::StsackString,
            _ => DbrClass::ClassName,
        }
    }

    /// Element type of the value array (`native_type` in caproto, `DBR_XXXXToEpicsType`).
    ///
    /// PUT_ACKT/PUT_ACKS carry `u16` values and map to [`NativeType::Enum`];
    /// STSACK_STRING and CLASS_NAME carry strings.
    pub const fn native(self) -> NativeType {
        match self.class() {
            DbrClass::PutAckt | DbrClass::PutAcks => NativeType::Enum,
            DbrClass::StsackString | DbrClass::ClassName => NativeType::String,
            _ => match self.code() % 7 {
                0 => NativeType::String,
                1 => NativeType::Short,
                2 => NativeType::Float,
                3 => NativeType::Enum,
                4 => NativeType::Char,
                5 => NativeType::Long,
                _ => NativeType::Double,
            },
        }
    }

    /// The type of `class` whose values are `native`; `None` for the special classes.
    pub fn from_parts(native: NativeType, class: DbrClass) -> Option<Self> {
        let family = match class {
            DbrClass::Plain => 0,
            DbrClass::Status => 1,
            DbrClass::Time => 2,
            DbrClass::Graphic => 3,
            DbrClass::Control => 4,
            _ => return None,
        };
        Self::from_code(family * 7 + native.code()).ok()
    }

    /// Same native type, other metadata family (e.g. DOUBLE → TIME_DOUBLE).
    ///
    /// Special types (35..=38) have no promoted forms and yield `None`.
    pub fn promote_to(self, class: DbrClass) -> Option<Self> {
        if self.is_special() {
            return None;
        }
        Self::from_parts(self.native(), class)
    }

    /// True for PUT_ACKT, PUT_ACKS, STSACK_STRING and CLASS_NAME.
    pub const fn is_special(self) -> bool {
        self.code() >= 35
    }

    /// Size of the metadata block, including alignment pads before the value.
    pub const fn value_offset(self) -> usize {
        let native = self.native().index();
        match self.class() {
            DbrClass::Plain | DbrClass::PutAckt | DbrClass::PutAcks | DbrClass::ClassName => 0,
            DbrClass::Status => STATUS_OFFSETS[native],
            DbrClass::Time => TIME_OFFSETS[native],
            DbrClass::Graphic => GRAPHIC_OFFSETS[native],
            DbrClass::Control => CONTROL_OFFSETS[native],
            DbrClass::StsackString => 8,
        }
    }

    /// Bytes per value element.
    pub const fn element_size(self) -> usize {
        self.native().element_size()
    }

    /// Unpadded payload size for `count` elements (metadata + values).
    ///
    /// Computed in `u64` so untrusted counts cannot overflow.
    pub const fn payload_size(self, count: u32) -> u64 {
        self.value_offset() as u64 + count as u64 * self.element_size() as u64
    }

    /// Payload size for `count` elements rounded up to the 8-byte message alignment.
    pub const fn padded_payload_size(self, count: u32) -> u64 {
        crate::proto::header::align8_u64(self.payload_size(count))
    }
}

impl std::fmt::Display for DbrType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u16> for DbrType {
    type Error = DbrError;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        Self::from_code(code)
    }
}

impl From<DbrType> for u16 {
    fn from(data_type: DbrType) -> u16 {
        data_type.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in 0..=38u16 {
            assert_eq!(DbrType::from_code(code).unwrap().code(), code);
        }
        assert_eq!(DbrType::from_code(39), Err(DbrError::UnknownType(39)));
    }

    /// `sizeof(struct dbr_*)` for one element, from db_access.h.
    #[test]
    fn single_element_sizes_match_c_struct_layouts() {
        let expected = [
            (DbrType::StsChar, 6),
            (DbrType::StsDouble, 16),
            (DbrType::TimeShort, 16),
            (DbrType::TimeChar, 16),
            (DbrType::TimeDouble, 24),
            (DbrType::GrShort, 26),
            (DbrType::GrFloat, 44),
            (DbrType::GrEnum, 424),
            (DbrType::GrChar, 20),
            (DbrType::GrLong, 40),
            (DbrType::GrDouble, 72),
            (DbrType::CtrlShort, 30),
            (DbrType::CtrlFloat, 52),
            (DbrType::CtrlChar, 22),
            (DbrType::CtrlLong, 48),
            (DbrType::CtrlDouble, 88),
            (DbrType::StsackString, 48),
            (DbrType::ClassName, 40),
        ];
        for (data_type, size) in expected {
            assert_eq!(data_type.payload_size(1), size, "{data_type}");
        }
    }

    #[test]
    fn promotion_keeps_the_native_type() {
        assert_eq!(DbrType::Double.promote_to(DbrClass::Time), Some(DbrType::TimeDouble));
        assert_eq!(DbrType::CtrlEnum.promote_to(DbrClass::Plain), Some(DbrType::Enum));
        assert_eq!(DbrType::PutAcks.promote_to(DbrClass::Time), None);
        for data_type in DbrType::ALL.iter().filter(|t| !t.is_special()) {
            for class in DbrClass::FAMILIES {
                let promoted = data_type.promote_to(class).unwrap();
                assert_eq!(promoted.native(), data_type.native());
                assert_eq!(promoted.class(), class);
            }
        }
    }

    #[test]
    fn special_types_have_sensible_natives() {
        assert_eq!(DbrType::PutAckt.native(), NativeType::Enum);
        assert_eq!(DbrType::StsackString.native(), NativeType::String);
        assert_eq!(DbrType::ClassName.native(), NativeType::String);
    }
}
