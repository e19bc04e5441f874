//! The Channel Access client, with caproto's threading-client API in Rust.
//!
//! - [`Context`]: searches (UDP, libca-like backoff, beacon anomalies), opens one
//!   circuit per server and priority, reconnects by itself.
//! - [`Pv`]: `read`/`write` (blocking, with timeouts) and `read_async`/`write_async`
//!   (completion handles), `subscribe`, connection and access-rights callbacks,
//!   `go_idle`, `wait_for_connection`, `time_since_last_heard`.
//! - [`Subscription`]: starts with its first callback, ends with its last; a callback
//!   goes away when its [`CallbackHandle`] is dropped.
//! - [`Batch`]: many reads and writes sent together.
//!
//! Callbacks follow pvloom-core's contract: with `max_workers = 0` they run Inline on
//! the circuit's I/O thread; otherwise on ordered workers, one bounded queue per
//! subscription (coalescing to the newest update). When callbacks fall behind, the
//! circuit asks its server for EVENTS_OFF and resumes with EVENTS_ON once caught up.

mod batch;
mod circuit;
mod config;
mod context;
mod core;
pub mod endpoint;
mod error;
mod op;
mod options;
mod pv;
mod response;
mod search;
pub mod search_engine;
mod subscription;

pub use batch::Batch;
pub use config::{ClientConfig, ConfigError, DEFAULT_MAX_ARRAY_BYTES};
pub use context::{Context, ContextBuilder};
pub use error::{CaError, CaResult};
pub use options::{ConnectionState, DbrValue, ReadOptions, SubscribeOptions, WriteOptions};
pub use pv::Pv;
pub use response::{EventResponse, ReadResponse, Response};
pub use subscription::{CallbackHandle, Subscription};

pub use crate::proto::command::AccessRights;
pub use crate::proto::{DbrClass, DbrData, DbrType, Metadata, Value};
