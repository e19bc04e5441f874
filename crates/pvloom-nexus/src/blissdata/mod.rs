//! BLISS scans in Redis, as blissdata 2.x lays them out.
//!
//! - [`ScanWatcher`] follows `_SCAN_HISTORY_` and hands out the keys of new scans.
//! - [`ScanReader`] turns one scan (`esrf:scan:<ULID>`) into [`crate::model::ScanEvent`]s.
//! - [`ScanPublisher`] writes [`crate::model::ScanEvent`]s as a scan blissdata's own
//!   reader loads.
//!
//! The layout (facts of blissdata 2.4, protocol version 1):
//! - `_PROTOCOL_VERSION_`: a string key holding `1`.
//! - `esrf:scan:<ULID>`: a RedisJSON document `{pk, id: {pk, name, number, data_policy,
//!   session, proposal, collection, dataset, path}, info, state_stream: {pk, encoding, info},
//!   data_streams: {<name>: {pk, encoding, info}}}`, indexed by RediSearch as `esrf:scan:index`.
//! - `esrf:stream:<pk>`: Redis streams. The state stream has entries `{state: <0..4>}` with
//!   automatic ids; a data stream has entries with id `<first index>-1` and fields `payload`
//!   (and `len` when more than one point), ended by the seal
//!   `18446744073709551615-18446744073709551615` with field `id` = total points.
//! - `_SCAN_HISTORY_`: a stream of `{key: esrf:scan:<ULID>}`, capped near 2048 entries.

mod codec;
mod conn;
mod doc;
mod error;
mod publisher;
mod reader;
mod resp;
mod ulid;
mod watcher;

pub use conn::CLIENT_NAME;
pub use error::BlissError;
pub use publisher::ScanPublisher;
pub use reader::{ReaderOptions, ScanReader};
pub use watcher::ScanWatcher;

/// The stream of new scans' keys.
pub const SCAN_HISTORY: &str = "_SCAN_HISTORY_";
/// The key holding the blissdata protocol version.
pub const PROTOCOL_KEY: &str = "_PROTOCOL_VERSION_";
/// The protocol version this module reads and writes.
pub const PROTOCOL_VERSION: i64 = 1;
/// The id of a data stream's sealing entry.
pub const SEAL_ID: &str = "18446744073709551615-18446744073709551615";
/// The prefix of scan keys.
pub const SCAN_PREFIX: &str = "esrf:scan:";
/// The prefix of stream keys (state and data).
pub const STREAM_PREFIX: &str = "esrf:stream:";
