//! Multi-bit binary input (`mbbiRecord`): 16 named states.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "mbbi", fields: &[FIELDS], new: || Box::new(MultiRecord::new(false)) };

static FIELDS: &[FieldSpec] = multibit_fields! {
    "INP": InLink;
    "AFTC": D;
    "AFVL": D, RO;
    "SIOL": InLink;
    "SVAL": ULong;
};

/// The state of an mbbi or mbbo record.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiRecord {
    /// `VAL`, the 16 states' names, values and severities.
    pub multi: Multi,
    /// An output record (mbbo) rather than an input (mbbi).
    pub output: bool,
}

impl MultiRecord {
    pub(super) fn new(output: bool) -> Self {
        MultiRecord { multi: Multi::default(), output }
    }
}

impl RecordSupport for MultiRecord {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_multi(&self.multi, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_multi(&mut self.multi, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        if let Some(v) = value_input(ctx, self.output) {
            self.multi.val = integer(&v) as u16;
        }
        let mask = process_multi(&mut self.multi, ctx);
        if self.output {
            write_output(ctx, FieldValue::Enum(self.multi.val));
        }
        mask
    }

    fn enum_strings(&self, _name: &str) -> Option<Vec<&str>> {
        Some(self.multi.states[..self.multi.state_count()].iter().map(String::as_str).collect())
    }

    fn state_index(&self, text: &str) -> Option<u16> {
        // mbbi's put_enum_str matches every state, defined or not.
        self.multi.states.iter().position(|st| st == text).map(|i| i as u16)
    }

    fn value_loaded(&mut self) {
        self.multi.mlst = self.multi.val;
        self.multi.lalm = self.multi.val;
    }

    fn input_links(&self) -> &'static [&'static str] {
        value_links(self.output)
    }

    fn constant_target(&self, link_field: &str) -> Option<&'static str> {
        (link_field == value_link(self.output)).then_some("VAL")
    }
}
