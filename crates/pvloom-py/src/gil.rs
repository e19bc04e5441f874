//! Attaching pvloom's I/O threads to Python cheaply.
//!
//! `Python::attach` on a thread Python does not know makes a thread state and, when the
//! attach ends, destroys it — with its frame stack, which CPython maps and unmaps each
//! time: a callback per message spent more time in mmap than in Python. An I/O thread
//! therefore keeps one thread state for its whole life, made on its first callback.

use std::cell::Cell;

use pyo3::{Python, ffi};

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` attached to Python, keeping this thread's Python thread state afterwards
/// when it is one of pvloom's I/O or delivery threads.
pub(crate) fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    if !KEPT.with(Cell::get) {
        KEPT.with(|k| k.set(true));
        let ours = std::thread::current().name().is_some_and(|n| n.starts_with("pvloom"));
        // SAFETY: on a thread of ours with no Python thread state yet, Ensure makes its thread state
        // and takes the GIL; SaveThread gives the GIL back and keeps the state (the
        // gilstate count stays at one, so later attaches never destroy it).
        if ours && unsafe { ffi::Py_IsInitialized() } != 0 && unsafe { ffi::PyGILState_GetThisThreadState() }.is_null()
        {
            unsafe {
                let _ = ffi::PyGILState_Ensure();
                ffi::PyEval_SaveThread();
            }
        }
    }
    Python::attach(f)
}
