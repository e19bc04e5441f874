//! Channel Access errors as the exceptions `pvloom.ca` defines (caproto's names).

use pvloom_ca::client::CaError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::errors::{PvloomError, WouldDeadlock};

/// The exception class `name` of `pvloom.ca`, or `None` when that module cannot be
/// imported (the native module used on its own).
fn facade_class<'py>(py: Python<'py>, name: &str) -> Option<Bound<'py, PyType>> {
    let module = py.import("pvloom.ca").ok()?;
    module.getattr(name).ok()?.cast_into::<PyType>().ok()
}

/// An instance of `pvloom.ca.<class>` with `message`, falling back to `fallback`.
fn facade_error(py: Python<'_>, class: &str, message: String, fallback: fn(String) -> PyErr) -> PyErr {
    match facade_class(py, class).and_then(|cls| cls.call1((message.clone(),)).ok()) {
        Some(instance) => PyErr::from_value(instance),
        None => fallback(message),
    }
}

/// The Python exception for a client error:
///
/// | error | exception |
/// |---|---|
/// | timeouts (connection, read, write) | `CaprotoTimeoutError` (a `TimeoutError`) |
/// | error status from the server | `ErrorResponseReceived` (`.status`, `.pv_name`) |
/// | no read/write access | `AccessRightsError` (a `PermissionError`) |
/// | circuit lost mid-operation | `DeadCircuitError` |
/// | context closed | `ContextDisconnectedError` |
/// | bad value | `CaprotoValueError` (a `ValueError`) |
/// | blocking call on an I/O thread | `pvloom.WouldDeadlock` |
///
/// All but the last are `pvloom.ca.CaprotoError`, a `pvloom.PvloomError`.
pub fn ca_error_to_py(py: Python<'_>, err: CaError) -> PyErr {
    let message = err.to_string();
    match err {
        CaError::Core(pvloom_core::Error::WouldDeadlock) => WouldDeadlock::new_err(message),
        CaError::Core(pvloom_core::Error::Interrupted) => PyKeyboardInterrupt::new_err("interrupted"),
        CaError::Timeout { .. } | CaError::ConnectionTimeout { .. } => {
            facade_error(py, "CaprotoTimeoutError", message, PyTimeoutError::new_err)
        }
        CaError::Core(core) if core.is_timeout() => {
            facade_error(py, "CaprotoTimeoutError", message, PyTimeoutError::new_err)
        }
        CaError::Server { name, status, .. } => {
            let err = facade_error(py, "ErrorResponseReceived", message, PvloomError::new_err);
            let value = err.value(py);
            let _ = value.setattr("status", status);
            let _ = value.setattr("pv_name", name);
            err
        }
        CaError::NoReadAccess { .. } | CaError::NoWriteAccess { .. } => {
            facade_error(py, "AccessRightsError", message, PvloomError::new_err)
        }
        CaError::Disconnected { .. } => facade_error(py, "DeadCircuitError", message, PvloomError::new_err),
        CaError::Cleared(_) => facade_error(py, "ContextDisconnectedError", message, PvloomError::new_err),
        CaError::BadValue { .. } => facade_error(py, "CaprotoValueError", message, PvloomError::new_err),
        _ => facade_error(py, "CaprotoError", message, PvloomError::new_err),
    }
}

/// `CaprotoTimeoutError` for an operation on `name` that got no answer within
/// `timeout` seconds; the message tells whether the PV never connected.
pub fn timeout_error(py: Python<'_>, name: &str, operation: &str, timeout: Option<f64>, connected: bool) -> PyErr {
    let within = timeout.map_or_else(String::new, |t| format!(" within {t:.3} s"));
    let message = if connected {
        format!("{name}: the server did not answer the {operation}{within}")
    } else {
        format!("{name}: could not connect{within} (no server answered the search, or the circuit did not come up)")
    };
    facade_error(py, "CaprotoTimeoutError", message, PyTimeoutError::new_err)
}
