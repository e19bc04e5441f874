//! What reads and subscriptions deliver.

use std::time::SystemTime;

use crate::proto::constants::eca_is_success;
use crate::proto::{Alarm, DbrData, DbrType, Metadata, Value};

/// One reading of a channel: a read reply or a subscription update. Owned: safe to
/// keep after the callback that received it returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The DBR type the server sent.
    pub data_type: DbrType,
    /// Elements sent.
    pub data_count: u32,
    /// ECA status of the reply (`ECA_NORMAL` on success).
    pub status: u32,
    /// Metadata and value.
    pub data: DbrData,
}

/// The reply to a read (caproto's `ReadNotifyResponse`).
pub type ReadResponse = Response;
/// A subscription update (caproto's `EventAddResponse`).
pub type EventResponse = Response;

impl Response {
    /// The value.
    pub fn value(&self) -> &Value {
        &self.data.value
    }

    /// The metadata (alarm, timestamp, limits, enum strings, depending on the class).
    pub fn metadata(&self) -> &Metadata {
        &self.data.metadata
    }

    /// Alarm status and severity, for STS and richer classes.
    pub fn alarm(&self) -> Option<Alarm> {
        self.data.metadata.alarm()
    }

    /// The server's timestamp, for TIME classes.
    pub fn timestamp(&self) -> Option<SystemTime> {
        self.data.metadata.timestamp().map(|t| t.to_system_time())
    }

    /// True if the server reported success.
    pub fn is_success(&self) -> bool {
        eca_is_success(self.status)
    }

    /// The value as `f64`s, for numeric types.
    pub fn as_f64s(&self) -> Option<Vec<f64>> {
        self.data.value.to_f64_vec()
    }

    /// The values as text (strings as they are, numbers formatted, enums as indices).
    pub fn as_strings(&self) -> Vec<String> {
        match &self.data.value {
            Value::String(items) => items.iter().map(|s| s.to_string_lossy().into_owned()).collect(),
            Value::Short(v) => v.iter().map(ToString::to_string).collect(),
            Value::Float(v) => v.iter().map(ToString::to_string).collect(),
            Value::Enum(v) => v.iter().map(ToString::to_string).collect(),
            Value::Char(v) => v.iter().map(ToString::to_string).collect(),
            Value::Long(v) => v.iter().map(ToString::to_string).collect(),
            Value::Double(v) => v.iter().map(ToString::to_string).collect(),
        }
    }
}
