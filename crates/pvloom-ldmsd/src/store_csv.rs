//! placeholder, filled by the daemon work
