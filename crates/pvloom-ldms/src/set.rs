//! (filled by the set work)
