//! Multi-bit binary input (`mbbiRecord`): 16 named states.

use super::shared::*;
use super::types::*;
use super::{FieldSpec, Process, RecordSupport, RecordTypeDef};
use crate::server::db::record::PutError;
use crate::server::db::value::*;

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "mbbi", fields: FIELDS, new: || Box::new(Mbbi::default()) };

static FIELDS: &[FieldSpec] = multibit_fields! {
    "INP": InLink;
    "AFTC": D;
    "AFVL": D, RO;
    "SIOL": InLink;
    "SVAL": ULong;
};

/// The state of a mbbi record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mbbi(pub Multi);

impl RecordSupport for Mbbi {
    support_boilerplate!();

    fn get(&self, name: &str) -> Option<FieldValue> {
        get_multi(&self.0, name)
    }

    fn put(&mut self, name: &'static str, value: &FieldValue) -> Result<bool, PutError> {
        Ok(set_multi(&mut self.0, name, value))
    }

    fn process(&mut self, ctx: &mut Process<'_>) -> u16 {
        process_multi(&mut self.0, ctx)
    }

    fn enum_strings(&self, _name: &str) -> Option<Vec<&str>> {
        Some(self.0.states[..self.0.state_count()].iter().map(String::as_str).collect())
    }

    fn state_index(&self, text: &str) -> Option<u16> {
        // mbbi's put_enum_str matches every state, defined or not.
        self.0.states.iter().position(|st| st == text).map(|i| i as u16)
    }

    fn value_loaded(&mut self) {
        self.0.mlst = self.0.val;
        self.0.lalm = self.0.val;
    }
}
