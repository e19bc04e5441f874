//! The LDMS server: placeholder, filled by the server work.
