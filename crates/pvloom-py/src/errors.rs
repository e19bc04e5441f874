//! pvloom errors as Python exceptions.

use pvloom_core::Error;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyTimeoutError};
use pyo3::prelude::*;

pyo3::create_exception!(pvloom, PvloomError, PyException, "Base class of pvloom's errors.");
pyo3::create_exception!(
    pvloom,
    WouldDeadlock,
    PvloomError,
    "A blocking pvloom call was made on an I/O thread (from an Inline callback); use the non-blocking form."
);
pyo3::create_exception!(pvloom, IllegalTransition, PvloomError, "A state machine refused a transition.");

/// The Python exception for a pvloom error.
pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::WouldDeadlock => WouldDeadlock::new_err(err.to_string()),
        Error::Timeout(_) => PyTimeoutError::new_err(err.to_string()),
        Error::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
        Error::IllegalTransition { .. } => IllegalTransition::new_err(err.to_string()),
        other => PvloomError::new_err(other.to_string()),
    }
}
