//! `meminfo`: `/proc/meminfo`, one U64 per line (kB as the kernel gives them), names without
//! their `:`; schema `meminfo` (`sampler/meminfo/meminfo.c`).

use std::path::PathBuf;

use super::keyvalue::{Flavor, KeyValue};

/// The meminfo flavor of [`KeyValue`].
pub const FLAVOR: Flavor = Flavor { plugin: "meminfo", rel_path: "proc/meminfo", lenient: true };

/// A meminfo sampler reading `root/proc/meminfo`.
pub fn new(root: PathBuf) -> KeyValue {
    KeyValue::new(FLAVOR, root)
}
