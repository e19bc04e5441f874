//! String input (`stringinRecord`).

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "stringin", fields: FIELDS, new: || Box::new(Stringin::default()) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(40), PP;
    "OVAL": s(40), RO;
    "INP": InLink;
    "MPST": FieldType::Menu(&MENU_STRING_POST);
    "APST": FieldType::Menu(&MENU_STRING_POST);
    "SIOL": InLink;
    "SVAL": s(40), PP;
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of a stringin record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stringin(pub Text);

impl RecordSupport for Stringin {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_text(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_text(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        process_text(&mut self.0, ctx)
    }

    fn value_loaded(&mut self) {
        self.0.oval = self.0.val.clone();
    }
}
