//! Array analog output (`aaoRecord`): `DOL` read in closed loop, `VAL` written to `OUT`.
//! The state and processing are the waveform's ([`Waveform`]) in the role of this type.

use super::types::*;
use super::waveform::{ArrayRole, Waveform};
use super::{FieldSpec, RecordTypeDef, menus};
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "aao", fields: &[FIELDS], new: || Box::new(Waveform::with_role(ArrayRole::Output)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "PREC": S, PROP;
    "OUT": OutLink;
    "DOL": InLink;
    "OMSL": OMSL;
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "NELM": ULong, RO, "1";
    "FTVL": FieldType::Menu(&MENU_FTYPE), RO;
    "NORD": ULong, RO;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SIOL": OutLink;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
    "MPST": FieldType::Menu(&menus::MENU_AAO_POST);
    "APST": FieldType::Menu(&menus::MENU_AAO_POST);
    "HASH": ULong;
};
