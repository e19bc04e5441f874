//! Binary output (`boRecord`): state alarms.

use super::bi::BinaryRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "bo", fields: &[FIELDS], new: || Box::new(BinaryRecord::new(true)) };

static FIELDS: &[FieldSpec] = fields! {
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
