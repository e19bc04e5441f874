//! Subroutine (`subRecord`): loads with every field, but no subroutine can be
//! registered (there is no compiled code), so processing always raises
//! BAD_SUB/INVALID, as base does when `SNAM` names no registered function.

use crate::proto::constants::{alarm_status, severity};

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef = RecordTypeDef { name: "sub", fields: FIELDS, new: || Box::new(Subroutine) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": D, PP;
    "INAM": s(40), RO;
    "SNAM": s(40);
    "INPA": InLink;
    "INPB": InLink;
    "INPC": InLink;
    "INPD": InLink;
    "INPE": InLink;
    "INPF": InLink;
    "INPG": InLink;
    "INPH": InLink;
    "INPI": InLink;
    "INPJ": InLink;
    "INPK": InLink;
    "INPL": InLink;
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
    "A": D, PP;
    "B": D, PP;
    "C": D, PP;
    "D": D, PP;
    "E": D, PP;
    "F": D, PP;
    "G": D, PP;
    "H": D, PP;
    "I": D, PP;
    "J": D, PP;
    "K": D, PP;
    "L": D, PP;
    "LA": D, RO;
    "LB": D, RO;
    "LC": D, RO;
    "LD": D, RO;
    "LE": D, RO;
    "LF": D, RO;
    "LG": D, RO;
    "LH": D, RO;
    "LI": D, RO;
    "LJ": D, RO;
    "LK": D, RO;
    "LL": D, RO;
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
