//! Array analog input (`aaiRecord`): `INP` read into `VAL`, `NELM` elements of `FTVL`.
//! The state and processing are the waveform's ([`Waveform`]) in the role of this type.

use super::types::*;
use super::waveform::{ArrayRole, Waveform};
use super::{FieldSpec, RecordTypeDef, menus};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "aai", fields: &[FIELDS], new: || Box::new(Waveform::with_role(ArrayRole::Input)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "PREC": S, PROP;
    "INP": InLink;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "NELM": ULong, RO, "1";
    "FTVL": FieldType::Menu(&MENU_FTYPE), RO;
    "NORD": ULong, RO;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SIOL": InLink;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "MPST": FieldType::Menu(&menus::MENU_AAI_POST);
    "APST": FieldType::Menu(&menus::MENU_AAI_POST);
    "HASH": ULong;
};
