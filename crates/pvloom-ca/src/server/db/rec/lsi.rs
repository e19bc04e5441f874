//! Long string input (`lsiRecord`): a string of up to `SIZV` - 1 bytes read from `INP`.
//! Channels see `VAL` and `OVAL` as strings (as `DBR_STRING`, at most 39 bytes; whole
//! as `VAL$`); a `.db` file can set at most 40 bytes of `VAL`, a constant `INP` all of it.

use crate::proto::constants::{DBE_LOG, DBE_VALUE};

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef, menus};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "lsi", fields: &[FIELDS], new: || Box::new(LongString::new(false)) };

static FIELDS: &[FieldSpec] = fields! {
    "VAL": s(41), PP;
    "OVAL": s(41), RO;
    "SIZV": UShort, RO, "41";
    "LEN": ULong, RO;
    "OLEN": ULong, RO;
    "INP": InLink;
    "MPST": FieldType::Menu(&menus::MENU_POST);
    "APST": FieldType::Menu(&menus::MENU_POST);
    "SIML": InLink;
    "SIMM": YESNO;
    "SIMS": SEVR;
    "SIOL": InLink;
    "OLDSIMM": SIMM, RO;
    "SSCN": SCAN, 0, "65535";
    "SDLY": D, 0, "-1.0";
};

/// The state of an lsi or lso record.
#[derive(Debug, Clone, PartialEq)]
pub struct LongString {
    /// `VAL`, `OVAL`, `MPST`, `APST`.
    pub text: Text,
    /// Capacity of `VAL` in bytes, with the terminating nul (`SIZV`).
    pub sizv: u16,
    /// An output record (lso) rather than an input (lsi).
    pub output: bool,
    /// `LEN`: bytes of `VAL` with the nul, 0 until a value was set.
    pub len: u32,
    /// `OLEN`: `LEN` as last posted.
    pub olen: u32,
}

impl LongString {
    pub(super) fn new(output: bool) -> Self {
        LongString { text: Text::default(), sizv: 41, output, len: 0, olen: 0 }
    }

    fn set_value(&mut self, text: &str) {
        self.text.val = truncate_to(text, usize::from(self.sizv).saturating_sub(1)).to_string();
        self.len = self.text.val.len() as u32 + 1;
    }
}

impl RecordSupport for LongString {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        match name {
            "SIZV" => Some(FieldValue::Int(self.sizv.into())),
            "LEN" => Some(FieldValue::Int(self.len.into())),
            "OLEN" => Some(FieldValue::Int(self.olen.into())),
            _ => get_text(&self.text, name),
        }
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        match name {
            // init_record: SIZV is at least 16 and at most 32767.
            "SIZV" => self.sizv = (value.as_f64().unwrap_or(41.0) as u16).clamp(16, 0x7fff),
            "VAL" => self.set_value(&value.to_text()),
            _ => return Ok(set_text(&mut self.text, name, value)),
        }
        Ok(true)
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            self.set_value(&v.to_text());
        }
        let posted = self.text.oval != self.text.val;
        let mask = process_text(&mut self.text, ctx);
        if posted {
            ctx.changes.post("LEN", DBE_VALUE | DBE_LOG);
            if self.olen != self.len {
                ctx.changes.post("OLEN", DBE_VALUE | DBE_LOG);
            }
            self.olen = self.len;
        }
        if self.output {
            write_output(ctx, FieldValue::String(self.text.val.clone()));
        }
        mask
    }

    fn field_type(&self, name: &str) -> Option<FieldType> {
        matches!(name, "VAL" | "OVAL").then_some(FieldType::String { size: self.sizv })
    }

    fn loads_read_only(&self, name: &str) -> bool {
        name == "SIZV"
    }

    fn value_loaded(&mut self) {
        self.text.oval = self.text.val.clone();
        self.olen = self.len;
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
