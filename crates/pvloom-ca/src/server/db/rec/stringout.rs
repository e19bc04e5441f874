//! String output (`stringoutRecord`).

use super::stringin::TextRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "stringout", fields: &[FIELDS], new: || Box::new(TextRecord::new(true)) };

static FIELDS: &[FieldSpec] = fields! {
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
