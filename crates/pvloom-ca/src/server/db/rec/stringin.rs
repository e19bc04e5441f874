//! String input (`stringinRecord`).

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "stringin", fields: &[FIELDS], new: || Box::new(TextRecord::new(false)) };

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

/// The state of a stringin or stringout record.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRecord {
    /// `VAL`, `OVAL`, `MPST`, `APST`.
    pub text: Text,
    /// An output record (stringout) rather than an input (stringin).
    pub output: bool,
}

impl TextRecord {
    pub(super) fn new(output: bool) -> Self {
        TextRecord { text: Text::default(), output }
    }
}

impl RecordSupport for TextRecord {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_text(&self.text, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_text(&mut self.text, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            self.text.val = truncate_to(&v.to_text(), 39).to_string();
        }
        let mask = process_text(&mut self.text, ctx);
        if self.output {
            write_output(ctx, FieldValue::String(self.text.val.clone()));
        }
        mask
    }

    fn value_loaded(&mut self) {
        self.text.oval = self.text.val.clone();
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
