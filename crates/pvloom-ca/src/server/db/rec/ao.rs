//! Analog output (`aoRecord`): drive limits, limit alarms, deadbands.

use super::ai::AnalogRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "ao", fields: &[FIELDS], new: || Box::new(AnalogRecord::new(true)) };

static FIELDS: &[FieldSpec] = fields! {
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
