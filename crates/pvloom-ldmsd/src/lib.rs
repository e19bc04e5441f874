//! pvloom's LDMS daemon (`pvloom ldmsd`): the pieces that make it an `ldmsd`.
//!
//! - [`config`]: ldmsd's configuration language (the subset pvloom runs), parsed into
//!   commands with file and line, so that an unsupported line is a clear error.
//! - [`sampler`]: samplers that fill sets from `/proc` (meminfo, vmstat, loadavg, procstat,
//!   procnetdev2), the configuration-driven `test_sampler` and the example samplers
//!   (`array_example`, `list_sampler`, `record_sampler`), scheduled by interval and offset.
//! - [`store_csv`]: ldmsd's `store_csv` file layout.
//! - [`daemon`]: the running daemon: commands applied in order, the set server, the
//!   sampler thread, and aggregation (producers, updaters, storage policies).
#![warn(missing_docs)]

pub mod config;
pub mod daemon;
pub mod sampler;
pub mod store_csv;
