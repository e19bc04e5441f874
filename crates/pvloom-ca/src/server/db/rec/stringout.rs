//! String output (`stringoutRecord`).

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "stringout", fields: FIELDS, new: || Box::new(Stringout::default()) };

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

/// The state of a stringout record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stringout(pub Text);

impl RecordSupport for Stringout {
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
