//! 32-bit integer output (`longoutRecord`): drive limits.

use super::longin::LongRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "longout", fields: &[FIELDS], new: || Box::new(LongRecord::new(true)) };

static FIELDS: &[FieldSpec] = fields! {
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
