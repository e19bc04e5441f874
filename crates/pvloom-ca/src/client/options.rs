//! Options and small value types of the client API, shared by the API and the core.

use std::time::Duration;

use crate::proto::constants::{DBE_ALARM, DBE_VALUE};
use crate::proto::{DbrClass, DbrType, Value};

/// Whether a PV is connected, as told to connection-state callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The channel exists on a live circuit.
    Connected,
    /// The channel is gone (circuit lost, server cleared it); pvloom searches again.
    Disconnected,
}

impl ConnectionState {
    /// caproto's names: `"connected"` / `"disconnected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
        }
    }
}

/// Options of a read. The default reads the native type, all elements, with notify.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// The DBR type to ask for; `None`: the native type promoted to `class`.
    pub data_type: Option<DbrType>,
    /// The class when `data_type` is `None` (plain when `None`).
    pub class: Option<DbrClass>,
    /// Elements to ask for; `None`: all (the channel's count).
    pub data_count: Option<u32>,
    /// How long the blocking form waits (and when the callback gets a timeout);
    /// `None`: the context's default.
    pub timeout: Option<Duration>,
    /// READ_NOTIFY (true, the default in practice) or the obsolete READ.
    pub notify: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { data_type: None, class: None, data_count: None, timeout: None, notify: true }
    }
}

impl ReadOptions {
    /// Read as the given class (e.g. `DbrClass::Time`).
    pub fn class(class: DbrClass) -> Self {
        ReadOptions { class: Some(class), notify: true, ..Default::default() }
    }
}

/// Options of a write.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// WRITE_NOTIFY: the server reports completion (and errors). Otherwise a plain
    /// WRITE, complete once sent.
    pub notify: bool,
    /// The DBR type to send; `None`: the value's own type (the server converts).
    pub data_type: Option<DbrType>,
    /// How long the blocking form waits; `None`: the context's default.
    pub timeout: Option<Duration>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { notify: true, data_type: None, timeout: None }
    }
}

/// What a subscription asks for.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeOptions {
    /// DBR type of the updates; `None`: the native type promoted to `class`.
    pub data_type: Option<DbrType>,
    /// Class when `data_type` is `None` (default: TIME, so updates carry timestamps).
    pub class: DbrClass,
    /// Elements per update; `None`: the channel's count.
    pub data_count: Option<u32>,
    /// Events to report (`DBE_VALUE | DBE_ALARM` by default).
    pub mask: u16,
    /// Updates that may wait for the callback before older ones are coalesced away
    /// (Ordered delivery only). Large enough to absorb the bursts a single socket read
    /// brings (a 64 KiB read holds ~1600 small updates); sustained overload is handled
    /// per circuit with EVENTS_OFF, which bounds the total.
    pub queue: usize,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            data_type: None,
            class: DbrClass::Time,
            data_count: None,
            mask: DBE_VALUE | DBE_ALARM,
            queue: 4096,
        }
    }
}

/// A value to write: anything convertible to a [`Value`].
pub struct DbrValue(pub Value);

impl From<Value> for DbrValue {
    fn from(value: Value) -> Self {
        DbrValue(value)
    }
}

macro_rules! dbr_value_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<$t> for DbrValue {
            fn from(v: $t) -> Self { DbrValue(Value::$variant(vec![v])) }
        }
        impl From<Vec<$t>> for DbrValue {
            fn from(v: Vec<$t>) -> Self { DbrValue(Value::$variant(v)) }
        }
        impl From<&[$t]> for DbrValue {
            fn from(v: &[$t]) -> Self { DbrValue(Value::$variant(v.to_vec())) }
        }
    )*};
}

dbr_value_from!(f64 => Double, f32 => Float, i32 => Long, i16 => Short, u8 => Char);

impl From<&str> for DbrValue {
    fn from(v: &str) -> Self {
        DbrValue(Value::String(vec![v.into()]))
    }
}

impl From<String> for DbrValue {
    fn from(v: String) -> Self {
        DbrValue(Value::String(vec![v.into()]))
    }
}

impl From<Vec<String>> for DbrValue {
    fn from(v: Vec<String>) -> Self {
        DbrValue(Value::String(v.into_iter().map(Into::into).collect()))
    }
}
