//! Record types, their fields, and record processing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::proto::constants::{DBE_ALARM, DBE_LOG, DBE_PROPERTY, DBE_VALUE, alarm_status, severity};
use crate::proto::dbr::{EpicsTime, NativeType, Value};

use super::alarm::{AlarmState, LimitAlarms, check_binary, check_deadband, check_multi};
use super::calc::{CalcExpr, NUM_ARGS};
use super::value::*;

/// The record types this database implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Analog input.
    Ai,
    /// Analog output.
    Ao,
    /// Binary input.
    Bi,
    /// Binary output.
    Bo,
    /// 32-bit integer input.
    Longin,
    /// 32-bit integer output.
    Longout,
    /// String input.
    Stringin,
    /// String output.
    Stringout,
    /// Multi-bit binary input.
    Mbbi,
    /// Multi-bit binary output.
    Mbbo,
    /// Array.
    Waveform,
    /// Calculation.
    Calc,
}

impl RecordType {
    /// Every supported type.
    pub const ALL: [RecordType; 12] = [
        RecordType::Ai,
        RecordType::Ao,
        RecordType::Bi,
        RecordType::Bo,
        RecordType::Longin,
        RecordType::Longout,
        RecordType::Stringin,
        RecordType::Stringout,
        RecordType::Mbbi,
        RecordType::Mbbo,
        RecordType::Waveform,
        RecordType::Calc,
    ];

    /// The type's name in `.db` files, e.g. `"longin"`.
    pub const fn name(self) -> &'static str {
        match self {
            RecordType::Ai => "ai",
            RecordType::Ao => "ao",
            RecordType::Bi => "bi",
            RecordType::Bo => "bo",
            RecordType::Longin => "longin",
            RecordType::Longout => "longout",
            RecordType::Stringin => "stringin",
            RecordType::Stringout => "stringout",
            RecordType::Mbbi => "mbbi",
            RecordType::Mbbo => "mbbo",
            RecordType::Waveform => "waveform",
            RecordType::Calc => "calc",
        }
    }

    /// The type named `name`, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The type-specific fields (the common `dbCommon` fields come on top).
    fn own_fields(self) -> &'static [FieldSpec] {
        match self {
            RecordType::Ai => AI_FIELDS,
            RecordType::Ao => AO_FIELDS,
            RecordType::Bi => BI_FIELDS,
            RecordType::Bo => BO_FIELDS,
            RecordType::Longin => LONGIN_FIELDS,
            RecordType::Longout => LONGOUT_FIELDS,
            RecordType::Stringin => STRINGIN_FIELDS,
            RecordType::Stringout => STRINGOUT_FIELDS,
            RecordType::Mbbi => MBBI_FIELDS,
            RecordType::Mbbo => MBBO_FIELDS,
            RecordType::Waveform => WAVEFORM_FIELDS,
            RecordType::Calc => CALC_FIELDS,
        }
    }

    /// Every field of this type: its own, then the common ones.
    pub fn fields(self) -> impl Iterator<Item = &'static FieldSpec> {
        self.own_fields().iter().chain(COMMON_FIELDS.iter())
    }

    /// The description of field `name`, if this type has it.
    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        self.fields().find(|f| f.name == name)
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const RO: u8 = 1;
const PP: u8 = 2;
const PROP: u8 = 4;

/// Static description of one field, from the record type's `.dbd`.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field name, e.g. `"HOPR"`.
    pub name: &'static str,
    /// Database type. For a waveform's `VAL` this is a placeholder; the
    /// real element type follows `FTVL` (see [`Record::field_type`]).
    pub field_type: FieldType,
    flags: u8,
    /// Value before the database sets one (`initial(...)` in the `.dbd`).
    pub initial: &'static str,
}

impl FieldSpec {
    /// Clients may not write this field (`SPC_NOMOD`).
    pub fn read_only(&self) -> bool {
        self.flags & RO != 0
    }

    /// Writing this field processes a passive record (`pp(TRUE)`).
    pub fn process_passive(&self) -> bool {
        self.flags & PP != 0
    }

    /// Writing this field changes metadata: subscribers get `DBE_PROPERTY` (`prop(YES)`).
    pub fn property(&self) -> bool {
        self.flags & PROP != 0
    }
}

macro_rules! fields {
    ($($name:literal : $ty:expr $(, $flags:expr $(, $init:literal)?)?;)*) => {
        &[$(FieldSpec {
            name: $name,
            field_type: $ty,
            flags: 0 $(| $flags)?,
            initial: fields!(@init $($($init)?)?),
        },)*]
    };
    (@init $init:literal) => { $init };
    (@init) => { "" };
}

const fn s(size: u16) -> FieldType {
    FieldType::String { size }
}
use super::value::FieldType::{
    Double as D, Enum as E, FwdLink, InLink, Long as L, OutLink, Short as S, UChar, ULong, UShort,
};
const SEVR: FieldType = FieldType::Menu(&MENU_ALARM_SEVR);
const STAT: FieldType = FieldType::Menu(&MENU_ALARM_STAT);
const SCAN: FieldType = FieldType::Menu(&MENU_SCAN);
const YESNO: FieldType = FieldType::Menu(&MENU_YES_NO);
const SIMM: FieldType = FieldType::Menu(&MENU_SIMM);
const OMSL: FieldType = FieldType::Menu(&MENU_OMSL);
const IVOA: FieldType = FieldType::Menu(&MENU_IVOA);
const CONVERT: FieldType = FieldType::Menu(&MENU_CONVERT);

static COMMON_FIELDS: &[FieldSpec] = fields! {
    "NAME": s(61), RO;
    "DESC": s(41);
    "ASG": s(29);
    "SCAN": SCAN;
    "PINI": FieldType::Menu(&MENU_PINI);
    "PHAS": S;
    "EVNT": s(40);
    "TSE": S;
    "TSEL": InLink;
    "DTYP": FieldType::Device;
    "DISV": S, 0, "1";
    "DISA": S;
    "SDIS": InLink;
    "DISP": UChar;
    "PROC": UChar;
    "STAT": STAT, RO, "UDF";
    "SEVR": SEVR, RO;
    "AMSG": s(40), RO;
    "NSTA": STAT, RO;
    "NSEV": SEVR, RO;
    "ACKS": SEVR, RO;
    "ACKT": YESNO, RO, "YES";
    "DISS": SEVR;
    "LCNT": UChar, RO;
    "PACT": UChar, RO;
    "PUTF": UChar, RO;
    "RPRO": UChar, RO;
    "PRIO": FieldType::Menu(&MENU_PRIORITY);
    "TPRO": UChar;
    "UDF": UChar, PP, "1";
    "UDFS": SEVR, 0, "INVALID";
    "FLNK": FwdLink;
};

static AI_FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "INP": InLink;
    "PREC": S, PROP;
    "LINR": CONVERT, PP;
    "EGUF": D, PP;
    "EGUL": D, PP;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "AOFF": D, PP;
    "ASLO": D, PP, "1";
    "SMOO": D;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "AFTC": D;
    "ADEL": D;
    "MDEL": D;
    "LALM": D, RO;
    "AFVL": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
    "ESLO": D, PP, "1";
    "EOFF": D, PP;
    "ROFF": ULong, PP;
    "RVAL": L, PP;
    "ORAW": L, RO;
    "SIOL": InLink;
    "SVAL": D;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

static AO_FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "OVAL": D;
    "OUT": OutLink;
    "OROC": D;
    "DOL": InLink;
    "OMSL": OMSL;
    "OIF": FieldType::Menu(&MENU_AO_OIF);
    "PREC": S, PROP;
    "LINR": CONVERT, PP;
    "EGUF": D, PP;
    "EGUL": D, PP;
    "EGU": s(16), PROP;
    "ROFF": ULong, PP;
    "EOFF": D, PP;
    "ESLO": D, PP, "1";
    "DRVH": D, PP | PROP;
    "DRVL": D, PP | PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "AOFF": D, PP;
    "ASLO": D, PP;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "ADEL": D;
    "MDEL": D;
    "RVAL": L, PP;
    "ORAW": L, RO;
    "RBV": L, RO;
    "ORBV": L, RO;
    "PVAL": D, RO;
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": D;
};

static BI_FIELDS: &[FieldSpec] = fields! {
    "INP": InLink;
    "VAL": E, PP;
    "ZSV": SEVR, PP;
    "OSV": SEVR, PP;
    "COSV": SEVR, PP;
    "ZNAM": s(26), PP | PROP;
    "ONAM": s(26), PP | PROP;
    "RVAL": ULong, PP;
    "ORAW": ULong, RO;
    "MASK": ULong, RO;
    "LALM": UShort, RO;
    "MLST": UShort, RO;
    "SIOL": InLink;
    "SVAL": ULong;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

static BO_FIELDS: &[FieldSpec] = fields! {
    "VAL": E, PP;
    "OMSL": OMSL;
    "DOL": InLink;
    "OUT": OutLink;
    "HIGH": D;
    "ZNAM": s(26), PP | PROP;
    "ONAM": s(26), PP | PROP;
    "RVAL": ULong, PP;
    "ORAW": ULong, RO;
    "MASK": ULong, RO;
    "ZSV": SEVR, PP;
    "OSV": SEVR, PP;
    "COSV": SEVR, PP;
    "RBV": ULong, RO;
    "ORBV": ULong, RO;
    "MLST": UShort, RO;
    "LALM": UShort, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": SIMM;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": UShort;
};

static LONGIN_FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": L, PROP;
    "LOPR": L, PROP;
    "HIHI": L, PP | PROP;
    "LOLO": L, PP | PROP;
    "HIGH": L, PP | PROP;
    "LOW": L, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": L;
    "AFTC": D;
    "AFVL": D, RO;
    "ADEL": L;
    "MDEL": L;
    "LALM": L, RO;
    "ALST": L, RO;
    "MLST": L, RO;
    "SIOL": InLink;
    "SVAL": L;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

static LONGOUT_FIELDS: &[FieldSpec] = fields! {
    "VAL": L, PP;
    "OUT": OutLink;
    "DOL": InLink;
    "OMSL": OMSL;
    "EGU": s(16), PROP;
    "DRVH": L, PP | PROP;
    "DRVL": L, PP | PROP;
    "HOPR": L, PROP;
    "LOPR": L, PROP;
    "HIHI": L, PP | PROP;
    "LOLO": L, PP | PROP;
    "HIGH": L, PP | PROP;
    "LOW": L, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": L;
    "ADEL": L;
    "MDEL": L;
    "LALM": L, RO;
    "ALST": L, RO;
    "MLST": L, RO;
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": L;
    "PVAL": L;
    "OOCH": YESNO, 0, "1";
    "OOPT": FieldType::Menu(&MENU_LONGOUT_OOPT);
};

static STRINGIN_FIELDS: &[FieldSpec] = fields! {
    "VAL": s(40), PP;
    "OVAL": s(40), RO;
    "INP": InLink;
    "MPST": FieldType::Menu(&MENU_STRING_POST);
    "APST": FieldType::Menu(&MENU_STRING_POST);
    "SIOL": InLink;
    "SVAL": s(40), PP;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

static STRINGOUT_FIELDS: &[FieldSpec] = fields! {
    "VAL": s(40), PP;
    "OVAL": s(40), RO;
    "DOL": InLink;
    "OMSL": OMSL;
    "OUT": OutLink;
    "MPST": FieldType::Menu(&MENU_STRING_POST);
    "APST": FieldType::Menu(&MENU_STRING_POST);
    "SIOL": OutLink;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "IVOA": IVOA;
    "IVOV": s(40);
};

/// The mbbi/mbbo state fields, in state order.
pub(crate) const STATE_STRINGS: [&str; 16] = [
    "ZRST", "ONST", "TWST", "THST", "FRST", "FVST", "SXST", "SVST", "EIST", "NIST", "TEST", "ELST", "TVST", "TTST",
    "FTST", "FFST",
];
pub(crate) const STATE_VALUES: [&str; 16] = [
    "ZRVL", "ONVL", "TWVL", "THVL", "FRVL", "FVVL", "SXVL", "SVVL", "EIVL", "NIVL", "TEVL", "ELVL", "TVVL", "TTVL",
    "FTVL", "FFVL",
];
pub(crate) const STATE_SEVERITIES: [&str; 16] = [
    "ZRSV", "ONSV", "TWSV", "THSV", "FRSV", "FVSV", "SXSV", "SVSV", "EISV", "NISV", "TESV", "ELSV", "TVSV", "TTSV",
    "FTSV", "FFSV",
];

macro_rules! multibit_fields {
    ($($extra:tt)*) => {
        fields! {
            "VAL": E, PP;
            "NOBT": UShort;
            "ZRVL": ULong, PP; "ONVL": ULong, PP; "TWVL": ULong, PP; "THVL": ULong, PP;
            "FRVL": ULong, PP; "FVVL": ULong, PP; "SXVL": ULong, PP; "SVVL": ULong, PP;
            "EIVL": ULong, PP; "NIVL": ULong, PP; "TEVL": ULong, PP; "ELVL": ULong, PP;
            "TVVL": ULong, PP; "TTVL": ULong, PP; "FTVL": ULong, PP; "FFVL": ULong, PP;
            "ZRST": s(26), PP | PROP; "ONST": s(26), PP | PROP; "TWST": s(26), PP | PROP; "THST": s(26), PP | PROP;
            "FRST": s(26), PP | PROP; "FVST": s(26), PP | PROP; "SXST": s(26), PP | PROP; "SVST": s(26), PP | PROP;
            "EIST": s(26), PP | PROP; "NIST": s(26), PP | PROP; "TEST": s(26), PP | PROP; "ELST": s(26), PP | PROP;
            "TVST": s(26), PP | PROP; "TTST": s(26), PP | PROP; "FTST": s(26), PP | PROP; "FFST": s(26), PP | PROP;
            "ZRSV": SEVR, PP; "ONSV": SEVR, PP; "TWSV": SEVR, PP; "THSV": SEVR, PP;
            "FRSV": SEVR, PP; "FVSV": SEVR, PP; "SXSV": SEVR, PP; "SVSV": SEVR, PP;
            "EISV": SEVR, PP; "NISV": SEVR, PP; "TESV": SEVR, PP; "ELSV": SEVR, PP;
            "TVSV": SEVR, PP; "TTSV": SEVR, PP; "FTSV": SEVR, PP; "FFSV": SEVR, PP;
            "UNSV": SEVR, PP;
            "COSV": SEVR, PP;
            "RVAL": ULong, PP;
            "ORAW": ULong, RO;
            "MASK": ULong, RO;
            "MLST": UShort, RO;
            "LALM": UShort, RO;
            "SDEF": S, RO;
            "SHFT": UShort;
            "SIML": InLink;
            "SIMM": SIMM;
            "SIMS": SEVR;
            "SSCN": SCAN, 0, "65535";
            "SDLY": D, 0, "-1.0";
            $($extra)*
        }
    };
}

static MBBI_FIELDS: &[FieldSpec] = multibit_fields! {
    "INP": InLink;
    "AFTC": D;
    "AFVL": D, RO;
    "SIOL": InLink;
    "SVAL": ULong;
};

static MBBO_FIELDS: &[FieldSpec] = multibit_fields! {
    "DOL": InLink;
    "OMSL": OMSL;
    "OUT": OutLink;
    "RBV": ULong, RO;
    "ORBV": ULong, RO;
    "SIOL": OutLink;
    "IVOA": IVOA;
    "IVOV": UShort;
};

static WAVEFORM_FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "RARM": S, PP;
    "PREC": S, PROP;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "NELM": ULong, RO, "1";
    "FTVL": FieldType::Menu(&MENU_FTYPE), RO;
    "BUSY": S, RO;
    "NORD": ULong, RO;
    "SIOL": InLink;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "MPST": FieldType::Menu(&MENU_WAVEFORM_POST);
    "APST": FieldType::Menu(&MENU_WAVEFORM_POST);
    "HASH": ULong;
};

/// The calc input link fields, `INPA`..`INPL`.
pub(crate) const CALC_INPUTS: [&str; NUM_ARGS] =
    ["INPA", "INPB", "INPC", "INPD", "INPE", "INPF", "INPG", "INPH", "INPI", "INPJ", "INPK", "INPL"];
const CALC_ARGS: [&str; NUM_ARGS] = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L"];
const CALC_LAST: [&str; NUM_ARGS] = ["LA", "LB", "LC", "LD", "LE", "LF", "LG", "LH", "LI", "LJ", "LK", "LL"];

static CALC_FIELDS: &[FieldSpec] = fields! {
    "VAL": D;
    "CALC": s(80), PP, "0";
    "INPA": InLink; "INPB": InLink; "INPC": InLink; "INPD": InLink; "INPE": InLink; "INPF": InLink;
    "INPG": InLink; "INPH": InLink; "INPI": InLink; "INPJ": InLink; "INPK": InLink; "INPL": InLink;
    "EGU": s(16), PROP;
    "PREC": S, PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "AFTC": D;
    "AFVL": D, RO;
    "HYST": D;
    "ADEL": D;
    "MDEL": D;
    "A": D, PP; "B": D, PP; "C": D, PP; "D": D, PP; "E": D, PP; "F": D, PP;
    "G": D, PP; "H": D, PP; "I": D, PP; "J": D, PP; "K": D, PP; "L": D, PP;
    "LA": D, RO; "LB": D, RO; "LC": D, RO; "LD": D, RO; "LE": D, RO; "LF": D, RO;
    "LG": D, RO; "LH": D, RO; "LI": D, RO; "LJ": D, RO; "LK": D, RO; "LL": D, RO;
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
};

/// Display properties shared by numeric records: `EGU`, `PREC`, `HOPR`, `LOPR`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Display {
    /// Engineering units.
    pub egu: String,
    /// Display precision.
    pub prec: i16,
    /// Upper display limit.
    pub hopr: f64,
    /// Lower display limit.
    pub lopr: f64,
}

/// Monitor (`MDEL`) and archive (`ADEL`) deadbands with the last posted values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Deadband {
    /// Monitor deadband.
    pub mdel: f64,
    /// Archive deadband.
    pub adel: f64,
    /// Last value posted with `DBE_VALUE`.
    pub mlst: f64,
    /// Last value posted with `DBE_LOG`.
    pub alst: f64,
}

/// Fields of ai, ao and (inside [`Calc`]) calc records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analog {
    /// `VAL`.
    pub val: f64,
    /// `EGU`, `PREC`, `HOPR`, `LOPR`.
    pub display: Display,
    /// Limit alarms.
    pub limits: LimitAlarms,
    /// Deadbands.
    pub deadband: Deadband,
    /// Upper drive limit (ao only).
    pub drvh: f64,
    /// Lower drive limit (ao only).
    pub drvl: f64,
}

/// Fields of longin and longout records. Limits are kept as `f64`, which
/// holds every `i32` exactly; their field type is `DBF_LONG`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Long {
    /// `VAL`.
    pub val: i32,
    /// `EGU`, `HOPR`, `LOPR` (`PREC` is unused).
    pub display: Display,
    /// Limit alarms.
    pub limits: LimitAlarms,
    /// Deadbands.
    pub deadband: Deadband,
    /// Upper drive limit (longout only).
    pub drvh: i32,
    /// Lower drive limit (longout only).
    pub drvl: i32,
}

/// Fields of bi and bo records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Binary {
    /// `VAL` (0 or 1).
    pub val: u16,
    /// Name of state 0.
    pub znam: String,
    /// Name of state 1.
    pub onam: String,
    /// Severity of state 0.
    pub zsv: u16,
    /// Severity of state 1.
    pub osv: u16,
    /// Change-of-state severity.
    pub cosv: u16,
    /// Last alarmed state.
    pub lalm: u16,
    /// Last posted value.
    pub mlst: u16,
}

/// Fields of mbbi and mbbo records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Multi {
    /// `VAL`: the state index.
    pub val: u16,
    /// State names `ZRST`..`FFST`.
    pub states: [String; 16],
    /// Raw state values `ZRVL`..`FFVL`.
    pub values: [u32; 16],
    /// State severities `ZRSV`..`FFSV`.
    pub severities: [u16; 16],
    /// Severity of an undefined state.
    pub unsv: u16,
    /// Change-of-state severity.
    pub cosv: u16,
    /// Last alarmed state.
    pub lalm: u16,
    /// Last posted value.
    pub mlst: u16,
}

impl Multi {
    /// Number of state strings up to the last non-empty one (mbbi `get_enum_strs`).
    pub fn state_count(&self) -> usize {
        self.states.iter().rposition(|s| !s.is_empty()).map_or(0, |i| i + 1)
    }
}

/// Fields of stringin and stringout records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Text {
    /// `VAL` (at most 39 bytes).
    pub val: String,
    /// Value last posted (`OVAL`).
    pub oval: String,
    /// Monitor post policy (0 = On Change, 1 = Always).
    pub mpst: u16,
    /// Archive post policy (0 = On Change, 1 = Always).
    pub apst: u16,
}

/// Fields of waveform records.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    /// The `NORD` valid elements, in the CA native type of `FTVL`.
    pub data: Value,
    /// Element type (`menuFtype` index).
    pub ftvl: u16,
    /// Capacity.
    pub nelm: u32,
    /// `EGU`, `PREC`, `HOPR`, `LOPR`.
    pub display: Display,
    /// Monitor post policy (0 = Always, 1 = On Change).
    pub mpst: u16,
    /// Archive post policy (0 = Always, 1 = On Change).
    pub apst: u16,
    hash: u64,
}

impl Waveform {
    /// Number of valid elements.
    pub fn nord(&self) -> u32 {
        self.data.len() as u32
    }

    /// The element type.
    pub fn element_type(&self) -> FieldType {
        FieldType::from_ftvl(self.ftvl)
    }
}

/// An input link of a calc record, parsed from its text.
#[derive(Debug, Clone, PartialEq)]
pub enum CalcInput {
    /// No link.
    None,
    /// A constant, loaded into the argument once.
    Constant(f64),
    /// A database link to another record's field.
    Link(Link),
}

/// A database link `REC[.FIELD] [NPP|PP|CA|CP|CPP] [NMS|MS|MSS|MSI]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Target record name.
    pub record: String,
    /// Target field (`VAL` when not given).
    pub field: String,
    /// Process the target before reading it if it is passive (`PP`).
    pub process_passive: bool,
    /// Process this record whenever the target posts a value (`CP`, `CPP`).
    pub process_on_change: bool,
    /// How alarm severity propagates: `NMS`, `MS`, `MSS` or `MSI`.
    pub severity_mode: SeverityMode,
}

/// Maximize-severity modes of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeverityMode {
    /// Do not propagate.
    #[default]
    Nms,
    /// Propagate severity with status LINK.
    Ms,
    /// Propagate severity and status.
    Mss,
    /// Propagate only INVALID severity.
    Msi,
}

impl Link {
    /// Parses link text into an input: empty → none, a number → constant,
    /// otherwise a database link. Hardware (`@`, `#`) and JSON links are refused.
    pub fn parse_input(text: &str) -> Result<CalcInput, LinkError> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(CalcInput::None);
        }
        if let Some(v) = parse_number(t) {
            return Ok(CalcInput::Constant(v));
        }
        if t.starts_with(['@', '#', '{', '[']) {
            return Err(LinkError::Unsupported(t.to_string()));
        }
        let mut words = t.split_whitespace();
        let target = words.next().unwrap_or_default();
        let (record, field) = match target.split_once('.') {
            Some((r, f)) => (r, f),
            None => (target, "VAL"),
        };
        if record.is_empty() || field.is_empty() {
            return Err(LinkError::Malformed(t.to_string()));
        }
        let mut link = Link {
            record: record.to_string(),
            field: field.to_string(),
            process_passive: false,
            process_on_change: false,
            severity_mode: SeverityMode::Nms,
        };
        for word in words {
            match word {
                "NPP" | "CA" => {}
                "PP" => link.process_passive = true,
                "CP" => link.process_on_change = true,
                "CPP" => {
                    link.process_on_change = true;
                    link.process_passive = true
                }
                "NMS" => link.severity_mode = SeverityMode::Nms,
                "MS" => link.severity_mode = SeverityMode::Ms,
                "MSS" => link.severity_mode = SeverityMode::Mss,
                "MSI" => link.severity_mode = SeverityMode::Msi,
                other => return Err(LinkError::BadModifier { modifier: other.to_string(), link: t.to_string() }),
            }
        }
        Ok(CalcInput::Link(link))
    }
}

/// Why link text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A hardware (`@`, `#`) or JSON link: only constants and database links are served.
    #[error("link {0:?} is not supported: only constants and database links are")]
    Unsupported(String),
    /// No record or field name.
    #[error("bad link {0:?}")]
    Malformed(String),
    /// A word that is no process or severity modifier.
    #[error("bad link modifier {modifier:?} in {link:?}")]
    BadModifier {
        /// The word.
        modifier: String,
        /// The whole link text.
        link: String,
    },
}

/// Why a field cannot be set from database-file text (`field(NAME, "text")`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The record type has no such field.
    #[error("record type {record_type} has no field {field:?}")]
    NoSuchField {
        /// The record's type.
        record_type: RecordType,
        /// The field named.
        field: String,
    },
    /// `NAME` comes from the record header only.
    #[error("the NAME field cannot be set")]
    NameField,
    /// A read-only field (other than `NELM` and `FTVL`, which a file sets).
    #[error("field {0} is read-only")]
    ReadOnly(String),
    /// Text longer than the string field holds.
    #[error("string of {length} bytes is too long for {field} (at most {max})")]
    StringTooLong {
        /// The field.
        field: String,
        /// Bytes given.
        length: usize,
        /// Bytes the field holds.
        max: usize,
    },
    /// `NELM` that is no integer.
    #[error("bad NELM {0:?}")]
    BadNelm(String),
    /// `NELM` above the configured element limit.
    #[error("NELM {nelm} exceeds the limit of {max} elements")]
    NelmTooLarge {
        /// `NELM` given.
        nelm: i64,
        /// The limit.
        max: u32,
    },
    /// An integer (or enum) field given something else.
    #[error("bad value for field {field}: {text:?} is not an integer")]
    NotAnInteger {
        /// The field.
        field: String,
        /// The text given.
        text: String,
    },
    /// A waveform `VAL` that is not a `[..]` list.
    #[error("waveform VAL must be a [..] list")]
    NotAList,
    /// The value is refused as a put would refuse it.
    #[error("{}", load_message(.0))]
    Refused(PutError),
}

/// A put's refusal worded for a database file.
fn load_message(err: &PutError) -> String {
    err.to_string().replacen("bad value for ", "bad value for field ", 1)
}

/// Fields of calc records.
#[derive(Debug, Clone, PartialEq)]
pub struct Calc {
    /// `VAL`, display, limits and deadbands.
    pub analog: Analog,
    /// The compiled `CALC` expression.
    pub expr: CalcExpr,
    /// Arguments `A`..`L`.
    pub args: [f64; NUM_ARGS],
    /// Arguments as last posted (`LA`..`LL`).
    pub last_args: [f64; NUM_ARGS],
    /// Input links `INPA`..`INPL`.
    pub inputs: [CalcInput; NUM_ARGS],
}

/// The type-specific part of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// ai.
    Ai(Analog),
    /// ao.
    Ao(Analog),
    /// bi.
    Bi(Binary),
    /// bo.
    Bo(Binary),
    /// longin.
    Longin(Long),
    /// longout.
    Longout(Long),
    /// stringin.
    Stringin(Text),
    /// stringout.
    Stringout(Text),
    /// mbbi.
    Mbbi(Multi),
    /// mbbo.
    Mbbo(Multi),
    /// waveform.
    Waveform(Waveform),
    /// calc.
    Calc(Box<Calc>),
}

/// Why a write to a field was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PutError {
    /// The record has no such field.
    #[error("no field {0:?}")]
    NoSuchField(String),
    /// The field may not be written.
    #[error("field {0} is read-only")]
    ReadOnly(&'static str),
    /// The value cannot be converted to the field's type.
    #[error("bad value for {field}: {reason}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A string names no state or menu choice.
    #[error("{value:?} is not a choice of {field}")]
    BadChoice {
        /// The field.
        field: &'static str,
        /// The string given.
        value: String,
    },
    /// More elements than the field holds.
    #[error("{count} elements do not fit {field} (at most {max})")]
    TooManyElements {
        /// The field.
        field: &'static str,
        /// Elements given.
        count: usize,
        /// Capacity.
        max: u32,
    },
    /// The DBR type cannot be written (e.g. CLASS_NAME).
    #[error("{0} cannot be written")]
    BadType(crate::proto::dbr::DbrType),
}

/// What a put or a processing changed: the monitor events the server
/// should post, per field of the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    fields: Vec<(&'static str, u16)>,
    /// Metadata changed: every channel of the record gets `DBE_PROPERTY`.
    pub property: bool,
    /// The record was processed.
    pub processed: bool,
    /// `SCAN` or `PHAS` changed: the server should reschedule the record.
    pub scan_changed: bool,
}

/// The result of a put, as the brief of the server names it.
pub type PutEffect = Changes;

impl Changes {
    /// Adds `mask` to the events of `field`.
    pub fn post(&mut self, field: &'static str, mask: u16) {
        if mask == 0 {
            return;
        }
        match self.fields.iter_mut().find(|(f, _)| *f == field) {
            Some((_, m)) => *m |= mask,
            None => self.fields.push((field, mask)),
        }
    }

    /// The events for subscribers of `field` (including `DBE_PROPERTY`).
    pub fn mask_for(&self, field: &str) -> u16 {
        let own = self.fields.iter().find(|(f, _)| *f == field).map_or(0, |(_, m)| *m);
        own | if self.property { DBE_PROPERTY } else { 0 }
    }

    /// The per-field events (without the record-wide `DBE_PROPERTY`).
    pub fn posts(&self) -> &[(&'static str, u16)] {
        &self.fields
    }

    /// True when nothing needs posting.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && !self.property
    }

    /// Merges another set of changes into this one.
    pub fn merge(&mut self, other: Changes) {
        for (field, mask) in other.fields {
            self.post(field, mask);
        }
        self.property |= other.property;
        self.processed |= other.processed;
        self.scan_changed |= other.scan_changed;
    }
}

/// One record: common fields, type-specific fields, alarm state, timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    name: String,
    desc: String,
    scan: u16,
    pini: u16,
    phas: i16,
    udf: bool,
    udfs: u16,
    alarm: AlarmState,
    time: EpicsTime,
    kind: Kind,
    extras: BTreeMap<&'static str, FieldValue>,
    info: Vec<(String, String)>,
    aliases: Vec<String>,
}

impl Record {
    /// A record of `record_type` with every field at its default, as EPICS
    /// creates it before the database sets any field.
    pub fn new(record_type: RecordType, name: &str) -> Record {
        let analog = Analog::default();
        let long = Long::default();
        let kind = match record_type {
            RecordType::Ai => Kind::Ai(analog),
            RecordType::Ao => Kind::Ao(analog),
            RecordType::Bi => Kind::Bi(Binary::default()),
            RecordType::Bo => Kind::Bo(Binary::default()),
            RecordType::Longin => Kind::Longin(long),
            RecordType::Longout => Kind::Longout(long),
            RecordType::Stringin => Kind::Stringin(Text::default()),
            RecordType::Stringout => Kind::Stringout(Text::default()),
            RecordType::Mbbi => Kind::Mbbi(Multi::default()),
            RecordType::Mbbo => Kind::Mbbo(Multi::default()),
            RecordType::Waveform => Kind::Waveform(Waveform {
                data: Value::Char(vec![0]),
                ftvl: 2,
                nelm: 1,
                display: Display::default(),
                mpst: 0,
                apst: 0,
                hash: 0,
            }),
            RecordType::Calc => Kind::Calc(Box::new(Calc {
                analog,
                expr: CalcExpr::zero(),
                args: [0.0; NUM_ARGS],
                last_args: [0.0; NUM_ARGS],
                inputs: std::array::from_fn(|_| CalcInput::None),
            })),
        };
        let mut record = Record {
            name: name.to_string(),
            desc: String::new(),
            scan: 0,
            pini: 0,
            phas: 0,
            udf: true,
            udfs: severity::INVALID,
            alarm: AlarmState::default(),
            time: EpicsTime::EPOCH,
            kind,
            extras: BTreeMap::new(),
            info: Vec::new(),
            aliases: Vec::new(),
        };
        record.init_alarm();
        record
    }

    /// Sets a field from database-file text (`field(NAME, "text")`), with
    /// the load-time rules: strings too long for the field are refused, and
    /// setting `VAL` clears `UDF`. `max_elements` bounds a waveform's `NELM`.
    pub fn load_field(&mut self, name: &str, text: &str, max_elements: u32) -> Result<(), LoadError> {
        let rtype = self.record_type();
        let spec =
            rtype.field(name).ok_or_else(|| LoadError::NoSuchField { record_type: rtype, field: name.to_string() })?;
        if name == "NAME" {
            return Err(LoadError::NameField);
        }
        if spec.read_only() && !matches!(name, "NELM" | "FTVL") {
            return Err(LoadError::ReadOnly(name.to_string()));
        }
        if let FieldType::String { size } = spec.field_type
            && text.len() >= usize::from(size)
        {
            return Err(LoadError::StringTooLong {
                field: name.to_string(),
                length: text.len(),
                max: usize::from(size) - 1,
            });
        }
        if rtype == RecordType::Waveform && name == "VAL" {
            return self.load_waveform_value(text);
        }
        if name == "NELM" {
            let nelm = parse_integer(text).ok_or_else(|| LoadError::BadNelm(text.to_string()))?;
            if nelm > i64::from(max_elements) {
                return Err(LoadError::NelmTooLarge { nelm, max: max_elements });
            }
        }
        let not_an_integer = || LoadError::NotAnInteger { field: name.to_string(), text: text.to_string() };
        if spec.field_type.is_integer() && parse_integer(text).is_none() {
            // dbPutStringNum parses integers strictly: no fractions or junk.
            return Err(not_an_integer());
        }
        let value = if spec.field_type == FieldType::Enum {
            // dbPutStringNum: a plain number, whatever states are defined.
            let v = parse_integer(text).ok_or_else(not_an_integer)?;
            FieldValue::Enum(v as u16)
        } else {
            coerce(spec, FieldValue::String(text.to_string()), Some(self)).map_err(LoadError::Refused)?
        };
        self.store(spec, value).map_err(LoadError::Refused)?;
        if name == "VAL" {
            self.udf = self.value_is_nan();
            self.sync_last_posted();
        }
        Ok(())
    }

    fn load_waveform_value(&mut self, text: &str) -> Result<(), LoadError> {
        let t = text.trim();
        let inner = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or(LoadError::NotAList)?;
        let items: Vec<String> = if inner.trim().is_empty() {
            Vec::new()
        } else {
            inner.split(',').map(|s| s.trim().trim_matches('"').to_string()).collect()
        };
        let value = Value::String(items.into_iter().map(Into::into).collect());
        self.put_waveform(value).map_err(LoadError::Refused)?;
        self.udf = false;
        Ok(())
    }

    /// Sets the initial severity as `iocInit` does: a record whose value is
    /// undefined starts with `STAT` UDF and `SEVR` = `UDFS`.
    pub(crate) fn init_alarm(&mut self) {
        if self.alarm.stat == alarm_status::UDF && self.alarm.nsev == 0 {
            self.alarm.sevr = if self.udf { self.udfs } else { severity::NO_ALARM };
        }
    }

    /// Adds an `info(name, value)` item.
    pub fn add_info(&mut self, name: &str, value: &str) {
        match self.info.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.info.push((name.to_string(), value.to_string())),
        }
    }

    /// Adds an alias name.
    pub fn add_alias(&mut self, alias: &str) {
        if !self.aliases.iter().any(|a| a == alias) {
            self.aliases.push(alias.to_string());
        }
    }

    /// The record's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The record's type.
    pub fn record_type(&self) -> RecordType {
        match self.kind {
            Kind::Ai(_) => RecordType::Ai,
            Kind::Ao(_) => RecordType::Ao,
            Kind::Bi(_) => RecordType::Bi,
            Kind::Bo(_) => RecordType::Bo,
            Kind::Longin(_) => RecordType::Longin,
            Kind::Longout(_) => RecordType::Longout,
            Kind::Stringin(_) => RecordType::Stringin,
            Kind::Stringout(_) => RecordType::Stringout,
            Kind::Mbbi(_) => RecordType::Mbbi,
            Kind::Mbbo(_) => RecordType::Mbbo,
            Kind::Waveform(_) => RecordType::Waveform,
            Kind::Calc(_) => RecordType::Calc,
        }
    }

    /// The type-specific fields.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// `DESC`.
    pub fn desc(&self) -> &str {
        &self.desc
    }

    /// `SCAN` as a `menuScan` index.
    pub fn scan(&self) -> u16 {
        self.scan
    }

    /// The scan period of a periodic record.
    pub fn scan_period(&self) -> Option<Duration> {
        scan_period(self.scan)
    }

    /// `PHAS`: order among records of the same scan period.
    pub fn phase(&self) -> i16 {
        self.phas
    }

    /// True when the record is processed once at start-up (`PINI` YES).
    pub fn pini(&self) -> bool {
        self.pini == 1
    }

    /// `UDF`: the value was never defined.
    pub fn udf(&self) -> bool {
        self.udf
    }

    /// The alarm state (`STAT`, `SEVR`, ...).
    pub fn alarm(&self) -> &AlarmState {
        &self.alarm
    }

    /// Time of the last processing (`TIME`).
    pub fn time(&self) -> EpicsTime {
        self.time
    }

    /// `info(...)` items, in file order.
    pub fn info(&self) -> &[(String, String)] {
        &self.info
    }

    /// Alias names.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The forward link target (`FLNK`), if any.
    pub fn forward_link(&self) -> Option<String> {
        match self.extras.get("FLNK") {
            Some(FieldValue::String(s)) if !s.trim().is_empty() => {
                let target = s.split_whitespace().next().unwrap_or_default();
                Some(target.split('.').next().unwrap_or(target).to_string())
            }
            _ => None,
        }
    }

    /// Raises a pending alarm that the next processing commits
    /// (`recGblSetSevr`), e.g. a link alarm found by the server.
    pub fn raise_alarm(&mut self, stat: u16, sevr: u16) {
        self.alarm.raise(stat, sevr);
    }

    /// Splits a channel name `NAME.FIELD` into record and field (`VAL` by default).
    pub fn split_channel(channel: &str) -> (&str, &str) {
        match channel.split_once('.') {
            Some((record, field)) if !field.is_empty() => (record, field),
            Some((record, _)) => (record, "VAL"),
            None => (channel, "VAL"),
        }
    }

    fn spec(&self, name: &str) -> Option<&'static FieldSpec> {
        self.record_type().field(name)
    }

    /// The database type of field `name` (a waveform's `VAL` follows `FTVL`).
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        let spec = self.spec(name)?;
        if let Kind::Waveform(w) = &self.kind
            && name == "VAL"
        {
            return Some(w.element_type());
        }
        Some(spec.field_type)
    }

    /// How many elements field `name` holds at most (`NELM` for a waveform's `VAL`, else 1).
    pub fn element_count(&self, name: &str) -> Option<u32> {
        self.spec(name)?;
        Some(match &self.kind {
            Kind::Waveform(w) if name == "VAL" => w.nelm,
            _ => 1,
        })
    }

    /// The enum state strings of field `name`: the record's states for
    /// bi/bo/mbbi/mbbo `VAL`, the menu's choices for menu fields.
    pub fn enum_strings(&self, name: &str) -> Option<Vec<&str>> {
        match (self.field_type(name)?, &self.kind) {
            (FieldType::Enum, Kind::Bi(b) | Kind::Bo(b)) => {
                let count = if !b.onam.is_empty() {
                    2
                } else if !b.znam.is_empty() {
                    1
                } else {
                    2
                };
                Some([b.znam.as_str(), b.onam.as_str()][..count].to_vec())
            }
            (FieldType::Enum, Kind::Mbbi(m) | Kind::Mbbo(m)) => {
                Some(m.states[..m.state_count()].iter().map(String::as_str).collect())
            }
            (FieldType::Menu(menu), _) => Some(menu.choices.to_vec()),
            _ => None,
        }
    }

    /// Reads field `name`, or `None` if the record has no such field.
    pub fn get_field(&self, name: &str) -> Option<FieldValue> {
        let spec = self.spec(name)?;
        if let Some(v) = self.get_modeled(name) {
            return Some(v);
        }
        Some(self.extras.get(name).cloned().unwrap_or_else(|| initial_value(spec)))
    }

    fn get_modeled(&self, name: &str) -> Option<FieldValue> {
        use FieldValue::{Double, Enum, Int};
        let text = |s: &str| Some(FieldValue::String(s.to_string()));
        match name {
            "NAME" => return text(&self.name),
            "DESC" => return text(&self.desc),
            "SCAN" => return Some(Enum(self.scan)),
            "PINI" => return Some(Enum(self.pini)),
            "PHAS" => return Some(Int(self.phas.into())),
            "UDF" => return Some(Int(self.udf.into())),
            "UDFS" => return Some(Enum(self.udfs)),
            "STAT" => return Some(Enum(self.alarm.stat)),
            "SEVR" => return Some(Enum(self.alarm.sevr)),
            "NSTA" => return Some(Enum(self.alarm.nsta)),
            "NSEV" => return Some(Enum(self.alarm.nsev)),
            "ACKS" => return Some(Enum(self.alarm.acks)),
            "ACKT" => return Some(Enum(self.alarm.ackt.into())),
            _ => {}
        }
        match &self.kind {
            Kind::Ai(a) | Kind::Ao(a) => get_analog(a, name),
            Kind::Calc(c) => {
                if let Some(i) = CALC_ARGS.iter().position(|n| *n == name) {
                    return Some(Double(c.args[i]));
                }
                if let Some(i) = CALC_LAST.iter().position(|n| *n == name) {
                    return Some(Double(c.last_args[i]));
                }
                if name == "CALC" {
                    return text(c.expr.source());
                }
                get_analog(&c.analog, name)
            }
            Kind::Longin(l) | Kind::Longout(l) => match name {
                "VAL" => Some(Int(l.val.into())),
                "DRVH" => Some(Int(l.drvh.into())),
                "DRVL" => Some(Int(l.drvl.into())),
                _ => get_display(&l.display, name)
                    .or_else(|| get_limits(&l.limits, name))
                    .or_else(|| get_deadband(&l.deadband, name))
                    .map(|v| match v {
                        Double(d) if name != "AFTC" => Int(d as i64),
                        other => other,
                    }),
            },
            Kind::Bi(b) | Kind::Bo(b) => match name {
                "VAL" => Some(Enum(b.val)),
                "ZNAM" => text(&b.znam),
                "ONAM" => text(&b.onam),
                "ZSV" => Some(Enum(b.zsv)),
                "OSV" => Some(Enum(b.osv)),
                "COSV" => Some(Enum(b.cosv)),
                "LALM" => Some(Int(b.lalm.into())),
                "MLST" => Some(Int(b.mlst.into())),
                _ => None,
            },
            Kind::Mbbi(m) | Kind::Mbbo(m) => {
                if let Some(i) = STATE_STRINGS.iter().position(|n| *n == name) {
                    return text(&m.states[i]);
                }
                if let Some(i) = STATE_VALUES.iter().position(|n| *n == name) {
                    return Some(Int(m.values[i].into()));
                }
                if let Some(i) = STATE_SEVERITIES.iter().position(|n| *n == name) {
                    return Some(Enum(m.severities[i]));
                }
                match name {
                    "VAL" => Some(Enum(m.val)),
                    "UNSV" => Some(Enum(m.unsv)),
                    "COSV" => Some(Enum(m.cosv)),
                    "LALM" => Some(Int(m.lalm.into())),
                    "MLST" => Some(Int(m.mlst.into())),
                    "SDEF" => Some(Int(i64::from(m.state_count() > 0 || m.values.iter().any(|v| *v != 0)))),
                    _ => None,
                }
            }
            Kind::Stringin(t) | Kind::Stringout(t) => match name {
                "VAL" => text(&t.val),
                "OVAL" => text(&t.oval),
                "MPST" => Some(Enum(t.mpst)),
                "APST" => Some(Enum(t.apst)),
                _ => None,
            },
            Kind::Waveform(w) => match name {
                "VAL" => Some(FieldValue::Array(w.data.clone())),
                "NELM" => Some(Int(w.nelm.into())),
                "NORD" => Some(Int(w.nord().into())),
                "FTVL" => Some(Enum(w.ftvl)),
                "MPST" => Some(Enum(w.mpst)),
                "APST" => Some(Enum(w.apst)),
                _ => get_display(&w.display, name),
            },
        }
    }

    /// Writes field `name` as a Channel Access put does, timestamping any
    /// processing with the current time. See [`Record::put_field_at`].
    pub fn put_field(&mut self, name: &str, value: FieldValue) -> Result<Changes, PutError> {
        self.put_field_at(name, value, SystemTime::now())
    }

    /// Writes field `name` as a Channel Access put does (`dbPutField`):
    /// the value is converted to the field's type (strings parsed, state and
    /// menu names looked up), read-only fields are refused, writing `VAL`
    /// clears `UDF`, and a passive record is processed when the field is
    /// `pp(TRUE)` (`VAL` of every type but calc, alarm limits, ...) or is `PROC`.
    pub fn put_field_at(&mut self, name: &str, value: FieldValue, now: SystemTime) -> Result<Changes, PutError> {
        let (mut changes, process) = self.put_without_processing(name, value)?;
        if process {
            changes.merge(self.process(now));
        }
        Ok(changes)
    }

    /// The storing half of a put: returns the changes and whether the
    /// record must now be processed.
    pub(crate) fn put_without_processing(
        &mut self,
        name: &str,
        value: FieldValue,
    ) -> Result<(Changes, bool), PutError> {
        let spec = self.spec(name).ok_or_else(|| PutError::NoSuchField(name.to_string()))?;
        if spec.read_only() {
            return Err(PutError::ReadOnly(spec.name));
        }
        let mut changes = Changes::default();
        if self.record_type() == RecordType::Waveform && name == "VAL" {
            let array = match value {
                FieldValue::Array(a) => a,
                FieldValue::String(s) => Value::String(vec![s.into()]),
                FieldValue::Int(v) => Value::Double(vec![v as f64]),
                FieldValue::Double(v) => Value::Double(vec![v]),
                FieldValue::Enum(v) => Value::Enum(vec![v]),
            };
            let before = self.waveform().map(Waveform::nord);
            self.put_waveform(array)?;
            if before != self.waveform().map(Waveform::nord) {
                changes.post("NORD", DBE_VALUE | DBE_LOG);
            }
        } else {
            let value = coerce(spec, value, Some(self))?;
            let old_scan = (self.scan, self.phas);
            self.store(spec, value)?;
            if old_scan != (self.scan, self.phas) {
                changes.scan_changed = true;
            }
        }
        if name == "VAL" {
            self.udf = self.value_is_nan();
        }
        let process = name == "PROC" || (spec.process_passive() && self.scan == 0);
        if !(name == "VAL" && spec.process_passive()) {
            changes.post(spec.name, DBE_VALUE | DBE_LOG);
        }
        changes.property |= spec.property() || STATE_STRINGS.contains(&spec.name);
        Ok((changes, process))
    }

    pub(crate) fn waveform(&self) -> Option<&Waveform> {
        match &self.kind {
            Kind::Waveform(w) => Some(w),
            _ => None,
        }
    }

    /// Stores a waveform value, converted to the element type; NORD becomes its length.
    fn put_waveform(&mut self, value: Value) -> Result<(), PutError> {
        let Kind::Waveform(w) = &mut self.kind else {
            return Err(PutError::NoSuchField("VAL".into()));
        };
        if value.len() > w.nelm as usize {
            return Err(PutError::TooManyElements { field: "VAL", count: value.len(), max: w.nelm });
        }
        let element = w.element_type();
        let converted =
            value.convert(element.native()).map_err(|e| PutError::BadValue { field: "VAL", reason: e.to_string() })?;
        w.data = wrap_elements(element, converted);
        Ok(())
    }

    fn value_is_nan(&self) -> bool {
        match &self.kind {
            Kind::Ai(a) | Kind::Ao(a) => a.val.is_nan(),
            Kind::Calc(c) => c.analog.val.is_nan(),
            _ => false,
        }
    }

    /// After loading VAL, the last-posted values follow it (as `init_record` does).
    fn sync_last_posted(&mut self) {
        match &mut self.kind {
            Kind::Ai(a) | Kind::Ao(a) => {
                a.deadband.mlst = a.val;
                a.deadband.alst = a.val;
                a.limits.lalm = a.val;
            }
            Kind::Calc(c) => {
                c.analog.deadband.mlst = c.analog.val;
                c.analog.deadband.alst = c.analog.val;
            }
            Kind::Longin(l) | Kind::Longout(l) => {
                l.deadband.mlst = l.val.into();
                l.deadband.alst = l.val.into();
                l.limits.lalm = l.val.into();
            }
            Kind::Bi(b) | Kind::Bo(b) => {
                b.mlst = b.val;
                b.lalm = b.val;
            }
            Kind::Mbbi(m) | Kind::Mbbo(m) => {
                m.mlst = m.val;
                m.lalm = m.val;
            }
            Kind::Stringin(t) | Kind::Stringout(t) => t.oval = t.val.clone(),
            Kind::Waveform(_) => {}
        }
    }

    /// Stores an already-coerced value.
    fn store(&mut self, spec: &'static FieldSpec, value: FieldValue) -> Result<(), PutError> {
        let name = spec.name;
        let f = || value.as_f64().unwrap_or(0.0);
        let e = || match value {
            FieldValue::Enum(v) => v,
            _ => f() as u16,
        };
        let t = || value.to_text();
        match name {
            "DESC" => self.desc = t(),
            "SCAN" => self.scan = e(),
            "PINI" => self.pini = e(),
            "PHAS" => self.phas = f() as i16,
            "UDF" => self.udf = f() != 0.0,
            "UDFS" => self.udfs = e(),
            _ => {
                if !self.store_modeled(name, &value)? {
                    self.extras.insert(name, value);
                }
            }
        }
        Ok(())
    }

    fn store_modeled(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        let f = value.as_f64().unwrap_or(0.0);
        let e = match value {
            FieldValue::Enum(v) => *v,
            _ => f as u16,
        };
        let t = || value.to_text();
        let stored = match &mut self.kind {
            Kind::Ai(a) | Kind::Ao(a) => set_analog(a, name, f, t),
            Kind::Calc(c) => {
                if let Some(i) = CALC_ARGS.iter().position(|n| *n == name) {
                    c.args[i] = f;
                    true
                } else if let Some(i) = CALC_INPUTS.iter().position(|n| *n == name) {
                    let input = Link::parse_input(&t())
                        .map_err(|err| PutError::BadValue { field: name, reason: err.to_string() })?;
                    if let CalcInput::Constant(v) = input {
                        c.args[i] = v;
                    }
                    c.inputs[i] = input;
                    false // the text is kept in the extras too
                } else if name == "CALC" {
                    let text = t();
                    c.expr = CalcExpr::compile(&text)
                        .map_err(|err| PutError::BadValue { field: name, reason: format!("CALC {err}") })?;
                    true
                } else {
                    set_analog(&mut c.analog, name, f, t)
                }
            }
            Kind::Longin(l) | Kind::Longout(l) => match name {
                "VAL" => {
                    l.val = f as i32;
                    true
                }
                "DRVH" => {
                    l.drvh = f as i32;
                    true
                }
                "DRVL" => {
                    l.drvl = f as i32;
                    true
                }
                _ => {
                    set_display(&mut l.display, name, f, t)
                        || set_limits(&mut l.limits, name, f)
                        || set_deadband(&mut l.deadband, name, f)
                }
            },
            Kind::Bi(b) | Kind::Bo(b) => {
                match name {
                    "VAL" => b.val = e,
                    "ZNAM" => b.znam = t(),
                    "ONAM" => b.onam = t(),
                    "ZSV" => b.zsv = e,
                    "OSV" => b.osv = e,
                    "COSV" => b.cosv = e,
                    _ => return Ok(false),
                }
                true
            }
            Kind::Mbbi(m) | Kind::Mbbo(m) => {
                if let Some(i) = STATE_STRINGS.iter().position(|n| *n == name) {
                    m.states[i] = t();
                } else if let Some(i) = STATE_VALUES.iter().position(|n| *n == name) {
                    m.values[i] = f as u32;
                } else if let Some(i) = STATE_SEVERITIES.iter().position(|n| *n == name) {
                    m.severities[i] = e;
                } else {
                    match name {
                        "VAL" => m.val = e,
                        "UNSV" => m.unsv = e,
                        "COSV" => m.cosv = e,
                        _ => return Ok(false),
                    }
                }
                true
            }
            Kind::Stringin(s) | Kind::Stringout(s) => {
                match name {
                    "VAL" => s.val = t(),
                    "MPST" => s.mpst = e,
                    "APST" => s.apst = e,
                    _ => return Ok(false),
                }
                true
            }
            Kind::Waveform(w) => match name {
                "NELM" | "FTVL" => {
                    if name == "NELM" {
                        w.nelm = (f as u32).max(1);
                    } else {
                        w.ftvl = if e > 11 { 2 } else { e };
                    }
                    // As init_record: NORD is 1 for a one-element array, else 0.
                    let native = w.element_type().native();
                    w.data = zeros(native, usize::from(w.nelm == 1));
                    true
                }
                "MPST" => {
                    w.mpst = e;
                    true
                }
                "APST" => {
                    w.apst = e;
                    true
                }
                _ => set_display(&mut w.display, name, f, t),
            },
        };
        Ok(stored)
    }

    /// Processes the record (`dbProcess`) at time `now`: output drive
    /// limits, calc evaluation, alarm checks, timestamp and monitor events.
    pub fn process(&mut self, now: SystemTime) -> Changes {
        let mut changes = Changes { processed: true, ..Changes::default() };
        self.time = EpicsTime::from_system_time(now).unwrap_or(EpicsTime::EPOCH);
        let udf = self.udf;
        let udfs = self.udfs;
        let raise_udf = |alarm: &mut AlarmState| {
            if udf {
                alarm.raise(alarm_status::UDF, udfs);
            }
            udf
        };
        let mut value_mask = 0u16;
        let is_output = self.kind_is_output();
        let alarm = &mut self.alarm;
        match &mut self.kind {
            Kind::Ai(a) => {
                if !raise_udf(alarm) {
                    a.limits.check(a.val, alarm);
                }
                value_mask |= deadband_mask(&mut a.deadband, a.val);
            }
            Kind::Ao(a) => {
                if a.drvh > a.drvl {
                    a.val = a.val.clamp(a.drvl, a.drvh);
                }
                if !raise_udf(alarm) {
                    a.limits.check(a.val, alarm);
                }
                value_mask |= deadband_mask(&mut a.deadband, a.val);
            }
            Kind::Calc(c) => {
                let result = c.expr.eval(&c.args, c.analog.val);
                c.analog.val = result;
                self.udf = result.is_nan();
                if self.udf {
                    alarm.raise(alarm_status::UDF, udfs);
                } else {
                    c.analog.limits.check(result, alarm);
                }
                value_mask |= deadband_mask(&mut c.analog.deadband, result);
                for ((name, arg), last) in CALC_ARGS.iter().zip(c.args).zip(c.last_args.iter_mut()) {
                    if arg.to_bits() != last.to_bits() {
                        changes.post(name, DBE_VALUE | DBE_LOG);
                        *last = arg;
                    }
                }
            }
            Kind::Longin(l) | Kind::Longout(l) => {
                if is_output && l.drvh > l.drvl {
                    l.val = l.val.clamp(l.drvl, l.drvh);
                }
                if !raise_udf(alarm) {
                    l.limits.check(f64::from(l.val), alarm);
                }
                value_mask |= deadband_mask(&mut l.deadband, f64::from(l.val));
            }
            Kind::Bi(b) | Kind::Bo(b) => {
                if !raise_udf(alarm) {
                    check_binary(b.val, b.zsv, b.osv, b.cosv, &mut b.lalm, alarm);
                }
                if b.mlst != b.val {
                    b.mlst = b.val;
                    value_mask |= DBE_VALUE | DBE_LOG;
                }
            }
            Kind::Mbbi(m) | Kind::Mbbo(m) => {
                if !raise_udf(alarm) {
                    check_multi(m.val, &m.severities, m.unsv, m.cosv, &mut m.lalm, alarm);
                }
                if m.mlst != m.val {
                    m.mlst = m.val;
                    value_mask |= DBE_VALUE | DBE_LOG;
                }
            }
            Kind::Stringin(t) | Kind::Stringout(t) => {
                self.udf = false;
                let changed = t.oval != t.val;
                if changed || t.mpst == 1 {
                    value_mask |= DBE_VALUE;
                }
                if changed || t.apst == 1 {
                    value_mask |= DBE_LOG;
                }
                if changed {
                    t.oval = t.val.clone();
                }
            }
            Kind::Waveform(w) => {
                self.udf = false;
                let hash = hash_value(&w.data);
                let changed = hash != w.hash;
                w.hash = hash;
                if w.mpst == 0 || changed {
                    value_mask |= DBE_VALUE;
                }
                if w.apst == 0 || changed {
                    value_mask |= DBE_LOG;
                }
            }
        }
        let alarm_mask = self.alarm.commit();
        if alarm_mask != 0 {
            changes.post("STAT", DBE_VALUE | DBE_ALARM);
            changes.post("SEVR", DBE_VALUE);
            changes.post("ACKS", DBE_VALUE);
        }
        changes.post("VAL", value_mask | alarm_mask);
        changes
    }

    fn kind_is_output(&self) -> bool {
        matches!(self.kind, Kind::Ao(_) | Kind::Longout(_) | Kind::Bo(_) | Kind::Mbbo(_) | Kind::Stringout(_))
    }

    /// The calc input links (`INPA`..`INPL` that name a record), by argument index.
    pub fn calc_inputs(&self) -> Vec<(usize, &Link)> {
        match &self.kind {
            Kind::Calc(c) => c
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, input)| match input {
                    CalcInput::Link(link) => Some((i, link)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Processes a calc record with the values its links read: for every
    /// input that is a database link, `inputs[i]` becomes argument `i`;
    /// other arguments keep their value (constants, or what clients wrote).
    /// For other record types this is [`Record::process`].
    pub fn process_calc(&mut self, inputs: &[f64; NUM_ARGS], now: SystemTime) -> Changes {
        if let Kind::Calc(c) = &mut self.kind {
            for (i, input) in c.inputs.iter().enumerate() {
                if matches!(input, CalcInput::Link(_)) {
                    c.args[i] = inputs[i];
                }
            }
        }
        self.process(now)
    }

    /// Applies a `DBR_PUT_ACKT` write.
    pub(crate) fn put_ackt(&mut self, ackt: bool) -> Changes {
        let mut changes = Changes::default();
        if self.alarm.ackt != ackt {
            self.alarm.ackt = ackt;
            changes.post("ACKT", DBE_VALUE | DBE_ALARM);
            if !ackt && self.alarm.acks > self.alarm.sevr {
                self.alarm.acks = self.alarm.sevr;
                changes.post("ACKS", DBE_VALUE | DBE_ALARM);
            }
        }
        changes
    }

    /// Applies a `DBR_PUT_ACKS` write.
    pub(crate) fn put_acks(&mut self, acks: u16) -> Changes {
        let mut changes = Changes::default();
        if acks >= self.alarm.acks {
            self.alarm.acks = 0;
            changes.post("ACKS", DBE_VALUE | DBE_ALARM);
        }
        changes
    }
}

fn deadband_mask(d: &mut Deadband, val: f64) -> u16 {
    let mut mask = 0;
    let (mdel, adel) = (d.mdel, d.adel);
    if check_deadband(&mut d.mlst, val, mdel) {
        mask |= DBE_VALUE;
    }
    if check_deadband(&mut d.alst, val, adel) {
        mask |= DBE_LOG;
    }
    mask
}

fn get_display(d: &Display, name: &str) -> Option<FieldValue> {
    Some(match name {
        "EGU" => FieldValue::String(d.egu.clone()),
        "PREC" => FieldValue::Int(d.prec.into()),
        "HOPR" => FieldValue::Double(d.hopr),
        "LOPR" => FieldValue::Double(d.lopr),
        _ => return None,
    })
}

fn set_display(d: &mut Display, name: &str, f: f64, t: impl Fn() -> String) -> bool {
    match name {
        "EGU" => d.egu = t(),
        "PREC" => d.prec = f as i16,
        "HOPR" => d.hopr = f,
        "LOPR" => d.lopr = f,
        _ => return false,
    }
    true
}

fn get_limits(l: &LimitAlarms, name: &str) -> Option<FieldValue> {
    Some(match name {
        "HIHI" => FieldValue::Double(l.hihi),
        "HIGH" => FieldValue::Double(l.high),
        "LOW" => FieldValue::Double(l.low),
        "LOLO" => FieldValue::Double(l.lolo),
        "HYST" => FieldValue::Double(l.hyst),
        "LALM" => FieldValue::Double(l.lalm),
        "HHSV" => FieldValue::Enum(l.hhsv),
        "HSV" => FieldValue::Enum(l.hsv),
        "LSV" => FieldValue::Enum(l.lsv),
        "LLSV" => FieldValue::Enum(l.llsv),
        _ => return None,
    })
}

fn set_limits(l: &mut LimitAlarms, name: &str, f: f64) -> bool {
    match name {
        "HIHI" => l.hihi = f,
        "HIGH" => l.high = f,
        "LOW" => l.low = f,
        "LOLO" => l.lolo = f,
        "HYST" => l.hyst = f,
        "HHSV" => l.hhsv = f as u16,
        "HSV" => l.hsv = f as u16,
        "LSV" => l.lsv = f as u16,
        "LLSV" => l.llsv = f as u16,
        _ => return false,
    }
    true
}

fn get_deadband(d: &Deadband, name: &str) -> Option<FieldValue> {
    Some(match name {
        "MDEL" => FieldValue::Double(d.mdel),
        "ADEL" => FieldValue::Double(d.adel),
        "MLST" => FieldValue::Double(d.mlst),
        "ALST" => FieldValue::Double(d.alst),
        _ => return None,
    })
}

fn set_deadband(d: &mut Deadband, name: &str, f: f64) -> bool {
    match name {
        "MDEL" => d.mdel = f,
        "ADEL" => d.adel = f,
        _ => return false,
    }
    true
}

fn get_analog(a: &Analog, name: &str) -> Option<FieldValue> {
    match name {
        "VAL" => Some(FieldValue::Double(a.val)),
        "DRVH" => Some(FieldValue::Double(a.drvh)),
        "DRVL" => Some(FieldValue::Double(a.drvl)),
        _ => get_display(&a.display, name)
            .or_else(|| get_limits(&a.limits, name))
            .or_else(|| get_deadband(&a.deadband, name)),
    }
}

fn set_analog(a: &mut Analog, name: &str, f: f64, t: impl Fn() -> String) -> bool {
    match name {
        "VAL" => a.val = f,
        "DRVH" => a.drvh = f,
        "DRVL" => a.drvl = f,
        _ => {
            return set_display(&mut a.display, name, f, t)
                || set_limits(&mut a.limits, name, f)
                || set_deadband(&mut a.deadband, name, f);
        }
    }
    true
}

/// The default value of an unmodeled field (its `.dbd` `initial`).
fn initial_value(spec: &'static FieldSpec) -> FieldValue {
    let zero = match spec.field_type {
        FieldType::Enum | FieldType::Menu(_) => FieldValue::Enum(0),
        FieldType::Float | FieldType::Double => FieldValue::Double(0.0),
        t if t.is_text() => FieldValue::String(String::new()),
        _ => FieldValue::Int(0),
    };
    if spec.initial.is_empty() {
        return zero;
    }
    coerce(spec, FieldValue::String(spec.initial.to_string()), None).unwrap_or(zero)
}

/// Converts `value` to the canonical form for `spec`'s type (runtime put
/// rules: strings truncated, numbers wrapped as C casts do).
pub(crate) fn coerce(
    spec: &'static FieldSpec,
    value: FieldValue,
    record: Option<&Record>,
) -> Result<FieldValue, PutError> {
    let field = spec.name;
    let bad = |reason: String| PutError::BadValue { field, reason };
    let field_type = spec.field_type;
    Ok(match field_type {
        FieldType::String { size } => {
            FieldValue::String(truncate_to(&value.to_text(), usize::from(size) - 1).to_string())
        }
        FieldType::Device | FieldType::InLink | FieldType::OutLink | FieldType::FwdLink => {
            FieldValue::String(value.to_text())
        }
        FieldType::Float | FieldType::Double => {
            let v = match &value {
                FieldValue::String(s) => parse_number(s).ok_or_else(|| bad(format!("{s:?} is not a number")))?,
                other => other.as_f64().ok_or_else(|| bad("not a number".into()))?,
            };
            FieldValue::Double(if field_type == FieldType::Float { f64::from(v as f32) } else { v })
        }
        FieldType::Enum => {
            let states = record.and_then(|r| r.enum_strings(field));
            match &value {
                FieldValue::String(s) => {
                    let states = states.unwrap_or_default();
                    // put_enum_str: an exact state name; mbbi only matches defined states.
                    let by_name = match record.map(|r| &r.kind) {
                        Some(Kind::Mbbi(m) | Kind::Mbbo(m)) => m.states.iter().position(|st| st == s),
                        _ => states.iter().position(|st| st == s),
                    };
                    match by_name {
                        Some(i) => FieldValue::Enum(i as u16),
                        None => match s.trim().parse::<u16>() {
                            Ok(i) if usize::from(i) < states.len() => FieldValue::Enum(i),
                            _ => return Err(PutError::BadChoice { field, value: s.clone() }),
                        },
                    }
                }
                other => FieldValue::Enum(other.as_f64().unwrap_or(0.0) as i64 as u16),
            }
        }
        FieldType::Menu(menu) => {
            // SSCN's initial 65535 ("unchanged") lies outside the menu, as in EPICS.
            if spec.initial == "65535" && value.as_f64() == Some(65535.0) {
                return Ok(FieldValue::Enum(65535));
            }
            match &value {
                FieldValue::String(s) => {
                    FieldValue::Enum(menu.index_of(s).ok_or_else(|| PutError::BadChoice { field, value: s.clone() })?)
                }
                other => {
                    let v = other.as_f64().unwrap_or(-1.0);
                    if !(0.0..menu.choices.len() as f64).contains(&v) {
                        return Err(PutError::BadChoice { field, value: v.to_string() });
                    }
                    FieldValue::Enum(v as u16)
                }
            }
        }
        _ => {
            let v = match &value {
                FieldValue::String(s) => match parse_integer(s) {
                    Some(v) => v,
                    None => parse_number(s)
                        .filter(|v| v.is_finite())
                        .map(|v| v as i64)
                        .ok_or_else(|| bad(format!("{s:?} is not an integer")))?,
                },
                FieldValue::Int(v) => *v,
                FieldValue::Enum(v) => i64::from(*v),
                other => other.as_f64().map(|v| v as i64).ok_or_else(|| bad("not a number".into()))?,
            };
            FieldValue::Int(field_type.wrap_int(v))
        }
    })
}

/// Wraps converted waveform elements into the range of the `FTVL` type.
fn wrap_elements(element: FieldType, value: Value) -> Value {
    match (element, value) {
        (FieldType::UShort, Value::Long(v)) => Value::Long(v.into_iter().map(|x| i32::from(x as u16)).collect()),
        (FieldType::ULong, Value::Double(v)) => Value::Double(v.into_iter().map(|x| f64::from(x as u32)).collect()),
        (FieldType::Int64 | FieldType::UInt64, Value::Double(v)) => {
            Value::Double(v.into_iter().map(|x| x.trunc()).collect())
        }
        (FieldType::String { .. }, Value::String(v)) => Value::String(
            v.into_iter().map(|s| crate::proto::dbr::CaString::new(&s.as_bytes()[..s.len().min(39)])).collect(),
        ),
        (_, other) => other,
    }
}

pub(crate) fn zeros(native: NativeType, n: usize) -> Value {
    match native {
        NativeType::String => Value::String(vec![Default::default(); n]),
        NativeType::Short => Value::Short(vec![0; n]),
        NativeType::Float => Value::Float(vec![0.0; n]),
        NativeType::Enum => Value::Enum(vec![0; n]),
        NativeType::Char => Value::Char(vec![0; n]),
        NativeType::Long => Value::Long(vec![0; n]),
        NativeType::Double => Value::Double(vec![0.0; n]),
    }
}

/// The first `n` elements of `value`, zero-padded when it has fewer.
pub(crate) fn truncate_value(value: &Value, n: usize) -> Value {
    fn fit<T: Clone + Default>(v: &[T], n: usize) -> Vec<T> {
        let mut out: Vec<T> = v[..v.len().min(n)].to_vec();
        out.resize(n, T::default());
        out
    }
    match value {
        Value::String(v) => Value::String(fit(v, n)),
        Value::Short(v) => Value::Short(fit(v, n)),
        Value::Float(v) => Value::Float(fit(v, n)),
        Value::Enum(v) => Value::Enum(fit(v, n)),
        Value::Char(v) => Value::Char(fit(v, n)),
        Value::Long(v) => Value::Long(fit(v, n)),
        Value::Double(v) => Value::Double(fit(v, n)),
    }
}

fn hash_value(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.len().hash(&mut h);
    match value {
        Value::String(v) => v.hash(&mut h),
        Value::Short(v) => v.hash(&mut h),
        Value::Float(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
        Value::Enum(v) => v.hash(&mut h),
        Value::Char(v) => v.hash(&mut h),
        Value::Long(v) => v.hash(&mut h),
        Value::Double(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_and_writable_fields_round_trip() {
        for rtype in RecordType::ALL {
            let mut record = Record::new(rtype, "R");
            for spec in rtype.fields() {
                let value = record.get_field(spec.name);
                assert!(value.is_some(), "{rtype}.{}", spec.name);
                assert!(record.field_type(spec.name).is_some());
                if spec.read_only() || spec.name == "PROC" || (rtype == RecordType::Calc && spec.name == "CALC") {
                    continue;
                }
                let value = value.unwrap();
                record.put_field_at(spec.name, value.clone(), SystemTime::UNIX_EPOCH).unwrap_or_else(|e| {
                    panic!("{rtype}.{} = {value:?}: {e}", spec.name);
                });
                // Processing may change VAL (calc) or the alarm fields; others keep what was written.
                if spec.name != "VAL" && spec.name != "UDF" {
                    assert_eq!(record.get_field(spec.name), Some(value), "{rtype}.{}", spec.name);
                }
            }
        }
    }

    #[test]
    fn field_types_match_the_dbd() {
        let ai = Record::new(RecordType::Ai, "x");
        assert_eq!(ai.field_type("DESC"), Some(FieldType::String { size: 41 }));
        assert_eq!(ai.field_type("PREC"), Some(FieldType::Short));
        assert_eq!(ai.field_type("HOPR"), Some(FieldType::Double));
        assert_eq!(ai.field_type("SCAN"), Some(FieldType::Menu(&MENU_SCAN)));
        assert_eq!(ai.field_type("TIME"), None, "DBF_NOACCESS");
        let li = Record::new(RecordType::Longin, "x");
        assert_eq!(li.field_type("HOPR"), Some(FieldType::Long));
        assert_eq!(li.field_type("DRVH"), None);
        let bi = Record::new(RecordType::Bi, "x");
        assert_eq!(bi.field_type("ZNAM"), Some(FieldType::String { size: 26 }));
        assert_eq!(bi.enum_strings("VAL").unwrap().len(), 2);
        let wf = Record::new(RecordType::Waveform, "x");
        assert_eq!(wf.field_type("NELM"), Some(FieldType::ULong));
        assert_eq!(wf.field_type("VAL"), Some(FieldType::UChar));
        assert_eq!(wf.get_field("SSCN"), Some(FieldValue::Enum(65535)));
        assert_eq!(wf.get_field("UDFS"), Some(FieldValue::Enum(3)));
        assert_eq!(Record::split_channel("a:b.EGU"), ("a:b", "EGU"));
        assert_eq!(Record::split_channel("a:b"), ("a:b", "VAL"));
    }

    #[test]
    fn links_parse() {
        assert_eq!(Link::parse_input("  "), Ok(CalcInput::None));
        assert_eq!(Link::parse_input("1.5"), Ok(CalcInput::Constant(1.5)));
        let CalcInput::Link(link) = Link::parse_input("X:y.HOPR CPP MSI").unwrap() else { panic!() };
        assert_eq!((link.record.as_str(), link.field.as_str()), ("X:y", "HOPR"));
        assert!(link.process_on_change && link.process_passive);
        assert_eq!(link.severity_mode, SeverityMode::Msi);
        assert!(Link::parse_input("@hw").is_err());
    }

    #[test]
    fn changes_merge_and_mask() {
        let mut a = Changes::default();
        a.post("VAL", DBE_VALUE);
        a.post("VAL", DBE_ALARM);
        a.post("NORD", 0);
        let mut b = Changes { property: true, ..Changes::default() };
        b.post("EGU", DBE_VALUE);
        a.merge(b);
        assert_eq!(a.mask_for("VAL"), DBE_VALUE | DBE_ALARM | DBE_PROPERTY);
        assert_eq!(a.mask_for("NORD"), DBE_PROPERTY);
        assert_eq!(a.posts().len(), 2);
    }

    #[test]
    fn initial_alarm_state() {
        let r = Record::new(RecordType::Ai, "x");
        assert_eq!((r.alarm().stat, r.alarm().sevr), (alarm_status::UDF, severity::INVALID));
        let mut r = Record::new(RecordType::Ai, "x");
        r.load_field("VAL", "1", 10).unwrap();
        r.init_alarm();
        assert_eq!((r.alarm().stat, r.alarm().sevr), (alarm_status::UDF, severity::NO_ALARM));
    }
}
