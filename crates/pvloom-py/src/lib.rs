//! `pvloom._pvloom`: the native half of the `pvloom` Python package.
//!
//! Every blocking call releases the GIL and waits in short slices, checking for
//! signals between them, so other Python threads run and Ctrl-C interrupts the wait.
//! Every callback runs with pvloom-core's contract: an exception goes to the error
//! hook (by default Python's own "Exception ignored in" report) and is counted.

mod ca;
mod chirp;
mod errors;
mod gil;
mod ldms;
mod nexus;
mod outcome;
mod runtime;
mod sync;
mod wait;

use pyo3::prelude::*;

/// mimalloc for the extension's own (Rust) allocations, as the `pvloom` binary uses: the
/// per-update and per-message paths allocate small blocks on one thread and free them
/// on another, where glibc's allocator was a sixth of a client's CPU. Python objects
/// keep Python's allocator, C libraries (HDF5) the C one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _pvloom(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PvloomError", py.get_type::<errors::PvloomError>())?;
    m.add("WouldDeadlock", py.get_type::<errors::WouldDeadlock>())?;
    m.add("IllegalTransition", py.get_type::<errors::IllegalTransition>())?;
    m.add_class::<runtime::PyRuntime>()?;
    m.add_class::<runtime::PyTimer>()?;
    m.add_class::<outcome::PyCompletion>()?;
    m.add_class::<sync::PyEvent>()?;
    m.add_class::<sync::PyQueue>()?;
    m.add_class::<sync::PyAsyncResult>()?;
    m.add_class::<sync::PyLock>()?;
    m.add_class::<sync::PyRLock>()?;
    m.add_class::<sync::PyLauncher>()?;
    m.add_class::<sync::PyHubTrigger>()?;
    m.add_class::<sync::PyThread>()?;
    m.add_class::<sync::PyThreadContext>()?;
    m.add_class::<sync::PyThreadResource>()?;
    ca::register(m)?;
    ldms::register(m)?;
    chirp::register(m)?;
    nexus::register(m)?;
    m.add_function(pyo3::wrap_pyfunction!(runtime::_shutdown_all, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
