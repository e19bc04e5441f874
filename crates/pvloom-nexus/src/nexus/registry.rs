//! Which files this process's writers hold open.
//!
//! A file in SWMR write mode cannot get new groups, and HDF5 (serial) cannot open one file
//! twice for writing, so two scans can never write one file at the same time. The first
//! scan to claim a file owns it until it ends; a scan whose file is claimed when it begins
//! writes its entry to a sibling file `<stem>_<N>.h5` instead (N its scan number; logged).
//! The same sibling is used when an existing file will not open for writing (another
//! process writes it, a killed SWMR writer left it marked, it is not HDF5): such a file is
//! never modified. Scans one after another append entries to the same file as usual.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;

static OPEN: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn key(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() { path.to_owned() } else { std::env::current_dir().unwrap_or_default().join(path) };
    match (abs.parent().and_then(|d| d.canonicalize().ok()), abs.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => abs,
    }
}

/// A file claimed by one writer; released on drop.
#[derive(Debug)]
pub struct Claim(PathBuf);

impl Claim {
    /// Claims `path`, or `None` if another writer holds it.
    pub fn try_claim(path: &Path) -> Option<Claim> {
        let k = key(path);
        let mut open = OPEN.lock();
        if open.insert(k.clone()) { Some(Claim(k)) } else { None }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        OPEN.lock().remove(&self.0);
    }
}
