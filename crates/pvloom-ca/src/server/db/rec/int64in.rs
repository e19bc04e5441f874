//! 64-bit integer input (`int64inRecord`): `INP` read into `VAL`, limit alarms, deadbands.

use super::longin::LongRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "int64in", fields: &[FIELDS], new: || Box::new(LongRecord::wide(false)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": Int64, PP;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": Int64, PROP;
    "LOPR": Int64, PROP;
    "HIHI": Int64, PP | PROP;
    "LOLO": Int64, PP | PROP;
    "HIGH": Int64, PP | PROP;
    "LOW": Int64, PP | PROP;
    "HHSV": SEVR, PP;
    "LLSV": SEVR, PP;
    "HSV": SEVR, PP;
    "LSV": SEVR, PP;
    "HYST": Int64;
    "AFTC": D;
    "AFVL": D, RO;
    "ADEL": Int64;
    "MDEL": Int64;
    "LALM": Int64, RO;
    "ALST": Int64, RO;
    "MLST": Int64, RO;
    "SIOL": InLink;
    "SVAL": Int64;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};
