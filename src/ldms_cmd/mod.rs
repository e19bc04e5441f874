//! `pvloom ldms …`: LDMS client tools (placeholder, filled by the client work).
