//! What a Channel Access client operation can fail with.

use std::sync::Arc;
use std::time::Duration;

use crate::proto::constants::eca_name;

/// A client error, naming the PV where there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The PV did not connect in time (no server answered its search, or the circuit
    /// did not come up).
    #[error("{name}: not connected after {timeout:?} (no server answered)")]
    ConnectionTimeout {
        /// The PV.
        name: String,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The server did not answer in time.
    #[error("{name}: {operation} timed out after {timeout:?}")]
    Timeout {
        /// The PV.
        name: String,
        /// `read`, `write`, ...
        operation: &'static str,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The circuit closed while the operation was outstanding.
    #[error("{name}: disconnected during {operation}")]
    Disconnected {
        /// The PV.
        name: String,
        /// The operation.
        operation: &'static str,
    },
    /// The server grants no read access.
    #[error("{name}: no read access")]
    NoReadAccess {
        /// The PV.
        name: String,
    },
    /// The server grants no write access.
    #[error("{name}: no write access (read-only)")]
    NoWriteAccess {
        /// The PV.
        name: String,
    },
    /// The server answered with an error status.
    #[error("{name}: {operation} failed: {message} (ECA status {status:#x})")]
    Server {
        /// The PV.
        name: String,
        /// The operation.
        operation: &'static str,
        /// The ECA status code.
        status: u32,
        /// The status's meaning, and the server's text if it sent one.
        message: String,
    },
    /// The value could not be encoded or converted for this channel.
    #[error("{name}: bad value: {reason}")]
    BadValue {
        /// The PV.
        name: String,
        /// Why.
        reason: String,
    },
    /// The PV was cleared or the context closed.
    #[error("{0}: channel cleared")]
    Cleared(String),
    /// Configuration from the environment is unusable.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// An I/O error (sockets).
    #[error("I/O: {0}")]
    Io(Arc<std::io::Error>),
    /// A runtime error (for example `WouldDeadlock` on an I/O thread).
    #[error(transparent)]
    Core(#[from] pvloom_core::Error),
}

impl From<std::io::Error> for CaError {
    fn from(err: std::io::Error) -> Self {
        CaError::Io(Arc::new(err))
    }
}

impl CaError {
    /// An error status from the server.
    pub fn server(name: &str, operation: &'static str, status: u32, detail: Option<&str>) -> Self {
        let mut message = eca_name(status).unwrap_or("unknown ECA status").to_owned();
        if let Some(detail) = detail.filter(|d| !d.is_empty()) {
            message.push_str(": ");
            message.push_str(detail);
        }
        CaError::Server { name: name.to_owned(), operation, status, message }
    }

    /// Turn a completion's error back into a `CaError`, naming timeouts.
    pub fn from_core(err: pvloom_core::Error, name: &str, operation: &'static str) -> Self {
        match err {
            pvloom_core::Error::Timeout(timeout) => CaError::Timeout { name: name.to_owned(), operation, timeout },
            pvloom_core::Error::Failed(inner) => match inner.downcast_ref::<CaError>() {
                Some(ca) => ca.clone(),
                None => CaError::Core(pvloom_core::Error::Failed(inner)),
            },
            pvloom_core::Error::Abandoned => CaError::Disconnected { name: name.to_owned(), operation },
            other => CaError::Core(other),
        }
    }

    /// Wrap for a completion.
    pub fn into_core(self) -> pvloom_core::Error {
        match self {
            CaError::Core(core) => core,
            other => pvloom_core::Error::failed(other),
        }
    }

    /// True for the timeout variants.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CaError::Timeout { .. } | CaError::ConnectionTimeout { .. })
            || matches!(self, CaError::Core(core) if core.is_timeout())
    }
}

/// Shorthand for client results.
pub type CaResult<T> = Result<T, CaError>;
