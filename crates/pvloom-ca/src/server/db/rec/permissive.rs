//! Permissive (`permissiveRecord`): a status `VAL` and a wait flag `WFLG`,
//! posted when they change.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "permissive", fields: &[FIELDS], new: || Box::new(Permissive) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": UShort, PP;
    "WFLG": UShort, PP;
    "LABL": s(20), PP;
    "OVAL": UShort, RO;
    "OFLG": UShort, RO;
};

/// A permissive record keeps every field generically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Permissive;

impl RecordSupport for Permissive {
    support_boilerplate!();

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        *ctx.udf = false;
        let (val, wflg) = (ctx.get("VAL"), ctx.get("WFLG"));
        let mut mask = 0;
        if ctx.get("OVAL") != val {
            ctx.fields.insert("OVAL", val);
            mask = DBE_VALUE | DBE_LOG;
        }
        if ctx.get("OFLG") != wflg {
            ctx.fields.insert("OFLG", wflg);
            ctx.changes.post("WFLG", DBE_VALUE | DBE_LOG);
        }
        mask
    }
}
