//! Locating the shared LDMS captures, for the capture tests.

use std::fs;
use std::path::{Path, PathBuf};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/ldms-captures");

/// The capture root; fails (never skips) when it is missing.
pub fn root() -> PathBuf {
    let p = PathBuf::from(CAPTURES);
    assert!(
        p.join("README.md").is_file(),
        "LDMS captures not found at {} (expected ../shared/ldms-captures next to the repo root)",
        p.display()
    );
    p
}

/// Scenario directories below `dir`: those holding a chunks.jsonl (msg-bus has two).
pub fn scenarios(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.join("chunks.jsonl").is_file() {
        out.push(dir.to_path_buf());
    }
    let mut subs: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    subs.sort();
    for s in subs {
        scenarios(&s, out);
    }
}
