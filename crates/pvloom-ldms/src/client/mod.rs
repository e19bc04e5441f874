//! The LDMS client: placeholder, filled by the client work.
