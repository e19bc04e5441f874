//! `vmstat`: `/proc/vmstat`, one U64 per `name value` line; a line of another form is an
//! error; schema `vmstat` (`sampler/vmstat/vmstat.c`).

use std::path::PathBuf;

use super::keyvalue::{Flavor, KeyValue};

/// The vmstat flavor of [`KeyValue`].
pub const FLAVOR: Flavor = Flavor { plugin: "vmstat", rel_path: "proc/vmstat", lenient: false };

/// A vmstat sampler reading `root/proc/vmstat`.
pub fn new(root: PathBuf) -> KeyValue {
    KeyValue::new(FLAVOR, root)
}
