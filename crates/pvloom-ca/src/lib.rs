//! EPICS Channel Access (protocol 4.13) for pvloom.
//!
//! [`proto`] is the sans-I/O core shared by the client and the server.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod proto;
pub mod repeater;
pub mod server;
