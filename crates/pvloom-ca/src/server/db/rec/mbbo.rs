//! Multi-bit binary output (`mbboRecord`): 16 named states.

use super::mbbi::MultiRecord;
use super::types::*;
use super::{FieldSpec, RecordTypeDef};

pub(super) static TYPE: RecordTypeDef =
    RecordTypeDef { name: "mbbo", fields: &[FIELDS], new: || Box::new(MultiRecord::new(true)) };

static FIELDS: &[FieldSpec] = multibit_fields! {
    "DOL": InLink;
    "OMSL": OMSL;
    "OUT": OutLink;
    "RBV": ULong, RO;
    "ORBV": ULong, RO;
    "SIOL": OutLink;
    "IVOA": IVOA;
    "IVOV": UShort;
};
