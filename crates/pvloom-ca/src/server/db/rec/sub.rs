//! Subroutine (`subRecord`): loads with every field, but no subroutine can be
//! registered (there is no compiled code), so processing always raises
//! BAD_SUB/INVALID, as base does when `SNAM` names no registered function.

use crate::proto::constants::{alarm_status, severity};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef = RecordTypeDef {
    name: "sub",
    fields: &[FIELDS, INPUT_LINKS, FIELDS_2, ARGS, LAST_ARGS, FIELDS_3],
    new: || Box::new(Subroutine),
};

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "INAM": s(40), RO;
    "SNAM": s(40);
};

static FIELDS_2: &[FieldSpec] = fields! {
    "EGU": s(16), PROP;
    "HOPR": D, PROP;
    "LOPR": D, PROP;
    "HIHI": D, PP | PROP;
    "LOLO": D, PP | PROP;
    "HIGH": D, PP | PROP;
    "LOW": D, PP | PROP;
    "PREC": S, PROP;
    "BRSV": SEVR, PP;
    "HHSV": SEVR, PP | PROP;
    "LLSV": SEVR, PP | PROP;
    "HSV": SEVR, PP | PROP;
    "LSV": SEVR, PP | PROP;
    "HYST": D;
    "ADEL": D;
    "MDEL": D;
};

static FIELDS_3: &[FieldSpec] = fields! {
    "LALM": D, RO;
    "ALST": D, RO;
    "MLST": D, RO;
};

/// A sub record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subroutine;

impl RecordSupport for Subroutine {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        ctx.raise(alarm_status::BAD_SUB, severity::INVALID);
        0
    }

    fn loads_read_only(&self, _name: &str) -> bool {
        // INAM and the argument types and counts are configuration a .db file gives.
        true
    }
}
