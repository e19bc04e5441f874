//! Array subroutine (`aSubRecord`): loads with every field, but no subroutine can be
//! registered (there is no compiled code), so processing always raises
//! BAD_SUB/INVALID, as base does when `SNAM` names no registered function. The array arguments `A`..`U` and `VALA`..`VALU` are not served.

use crate::proto::constants::{alarm_status, severity};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::value::*;

/// `S_db_BadSub` (`M_dbAccess | 35`), base's status for a missing subroutine.
const S_DB_BAD_SUB: i64 = (511 << 16) | 35;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "aSub", fields: &[FIELDS, INPUT_LINKS, FIELDS_2], new: || Box::new(Subroutine) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": L;
    "OVAL": L, RO;
    "INAM": s(41), RO;
    "LFLG": FieldType::Menu(&menus::MENU_A_SUB_LFLG);
    "SUBL": InLink, RO;
    "SNAM": s(41);
    "ONAM": s(41), RO;
    "BRSV": SEVR, PP;
    "PREC": S, PROP;
    "EFLG": FieldType::Menu(&menus::MENU_A_SUB_EFLG), 0, "1";
};

static FIELDS_2: &[FieldSpec] = fields! {
    "INPM": InLink;
    "INPN": InLink;
    "INPO": InLink;
    "INPP": InLink;
    "INPQ": InLink;
    "INPR": InLink;
    "INPS": InLink;
    "INPT": InLink;
    "INPU": InLink;
    "FTA": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTB": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTC": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTD": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTE": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTF": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTG": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTH": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTI": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTJ": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTK": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTL": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTM": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTN": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTO": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTP": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTQ": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTR": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTS": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTT": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTU": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "NOA": ULong, RO, "1";
    "NOB": ULong, RO, "1";
    "NOC": ULong, RO, "1";
    "NOD": ULong, RO, "1";
    "NOE": ULong, RO, "1";
    "NOF": ULong, RO, "1";
    "NOG": ULong, RO, "1";
    "NOH": ULong, RO, "1";
    "NOI": ULong, RO, "1";
    "NOJ": ULong, RO, "1";
    "NOK": ULong, RO, "1";
    "NOL": ULong, RO, "1";
    "NOM": ULong, RO, "1";
    "NON": ULong, RO, "1";
    "NOO": ULong, RO, "1";
    "NOP": ULong, RO, "1";
    "NOQ": ULong, RO, "1";
    "NOR": ULong, RO, "1";
    "NOS": ULong, RO, "1";
    "NOT": ULong, RO, "1";
    "NOU": ULong, RO, "1";
    "NEA": ULong, RO, "1";
    "NEB": ULong, RO, "1";
    "NEC": ULong, RO, "1";
    "NED": ULong, RO, "1";
    "NEE": ULong, RO, "1";
    "NEF": ULong, RO, "1";
    "NEG": ULong, RO, "1";
    "NEH": ULong, RO, "1";
    "NEI": ULong, RO, "1";
    "NEJ": ULong, RO, "1";
    "NEK": ULong, RO, "1";
    "NEL": ULong, RO, "1";
    "NEM": ULong, RO, "1";
    "NEN": ULong, RO, "1";
    "NEO": ULong, RO, "1";
    "NEP": ULong, RO, "1";
    "NEQ": ULong, RO, "1";
    "NER": ULong, RO, "1";
    "NES": ULong, RO, "1";
    "NET": ULong, RO, "1";
    "NEU": ULong, RO, "1";
    "OUTA": OutLink;
    "OUTB": OutLink;
    "OUTC": OutLink;
    "OUTD": OutLink;
    "OUTE": OutLink;
    "OUTF": OutLink;
    "OUTG": OutLink;
    "OUTH": OutLink;
    "OUTI": OutLink;
    "OUTJ": OutLink;
    "OUTK": OutLink;
    "OUTL": OutLink;
    "OUTM": OutLink;
    "OUTN": OutLink;
    "OUTO": OutLink;
    "OUTP": OutLink;
    "OUTQ": OutLink;
    "OUTR": OutLink;
    "OUTS": OutLink;
    "OUTT": OutLink;
    "OUTU": OutLink;
    "FTVA": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVB": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVC": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVD": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVE": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVF": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVG": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVH": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVI": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVJ": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVK": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVL": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVM": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVN": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVO": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVP": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVQ": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVR": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVS": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVT": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "FTVU": FieldType::Menu(&MENU_FTYPE), RO, "DOUBLE";
    "NOVA": ULong, RO, "1";
    "NOVB": ULong, RO, "1";
    "NOVC": ULong, RO, "1";
    "NOVD": ULong, RO, "1";
    "NOVE": ULong, RO, "1";
    "NOVF": ULong, RO, "1";
    "NOVG": ULong, RO, "1";
    "NOVH": ULong, RO, "1";
    "NOVI": ULong, RO, "1";
    "NOVJ": ULong, RO, "1";
    "NOVK": ULong, RO, "1";
    "NOVL": ULong, RO, "1";
    "NOVM": ULong, RO, "1";
    "NOVN": ULong, RO, "1";
    "NOVO": ULong, RO, "1";
    "NOVP": ULong, RO, "1";
    "NOVQ": ULong, RO, "1";
    "NOVR": ULong, RO, "1";
    "NOVS": ULong, RO, "1";
    "NOVT": ULong, RO, "1";
    "NOVU": ULong, RO, "1";
    "NEVA": ULong, RO, "1";
    "NEVB": ULong, RO, "1";
    "NEVC": ULong, RO, "1";
    "NEVD": ULong, RO, "1";
    "NEVE": ULong, RO, "1";
    "NEVF": ULong, RO, "1";
    "NEVG": ULong, RO, "1";
    "NEVH": ULong, RO, "1";
    "NEVI": ULong, RO, "1";
    "NEVJ": ULong, RO, "1";
    "NEVK": ULong, RO, "1";
    "NEVL": ULong, RO, "1";
    "NEVM": ULong, RO, "1";
    "NEVN": ULong, RO, "1";
    "NEVO": ULong, RO, "1";
    "NEVP": ULong, RO, "1";
    "NEVQ": ULong, RO, "1";
    "NEVR": ULong, RO, "1";
    "NEVS": ULong, RO, "1";
    "NEVT": ULong, RO, "1";
    "NEVU": ULong, RO, "1";
    "ONVA": ULong, RO, "1";
    "ONVB": ULong, RO, "1";
    "ONVC": ULong, RO, "1";
    "ONVD": ULong, RO, "1";
    "ONVE": ULong, RO, "1";
    "ONVF": ULong, RO, "1";
    "ONVG": ULong, RO, "1";
    "ONVH": ULong, RO, "1";
    "ONVI": ULong, RO, "1";
    "ONVJ": ULong, RO, "1";
    "ONVK": ULong, RO, "1";
    "ONVL": ULong, RO, "1";
    "ONVM": ULong, RO, "1";
    "ONVN": ULong, RO, "1";
    "ONVO": ULong, RO, "1";
    "ONVP": ULong, RO, "1";
    "ONVQ": ULong, RO, "1";
    "ONVR": ULong, RO, "1";
    "ONVS": ULong, RO, "1";
    "ONVT": ULong, RO, "1";
    "ONVU": ULong, RO, "1";
};

/// A aSub record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subroutine;

impl RecordSupport for Subroutine {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        ctx.raise(alarm_status::BAD_SUB, severity::INVALID);
        // aSub's process stores the subroutine's status in VAL; without one that is S_db_BadSub.
        ctx.set("VAL", FieldValue::Int(S_DB_BAD_SUB));
        0
    }

    fn loads_read_only(&self, _name: &str) -> bool {
        // INAM and the argument types and counts are configuration a .db file gives.
        true
    }
}
