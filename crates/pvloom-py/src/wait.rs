//! Waiting without holding the GIL, in slices, so Ctrl-C is noticed.

use std::time::{Duration, Instant};

use pvloom_core::Error;
use pyo3::prelude::*;

use crate::errors::to_py;

/// Longest time a wait goes without checking for signals.
const SLICE: Duration = Duration::from_millis(50);

/// A Python timeout (`None`: forever; negative: forever, as `threading` treats -1).
pub fn deadline(timeout: Option<f64>) -> Option<Instant> {
    match timeout {
        // Infinite or absurdly large timeouts mean "forever", as in `threading`.
        Some(secs) if secs >= 0.0 => Instant::now().checked_add(Duration::try_from_secs_f64(secs).ok()?),
        _ => None,
    }
}

/// Call `attempt(slice_end)` with the GIL released until it yields a value or the
/// deadline passes (`Ok(None)`); checks signals between slices.
pub fn wait_sliced<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Instant) -> Result<Option<T>, Error> + Send,
) -> PyResult<Option<T>> {
    loop {
        let now = Instant::now();
        let slice_end = match deadline {
            Some(deadline) => deadline.min(now + SLICE),
            None => now + SLICE,
        };
        if let Some(value) = py.detach(|| attempt(slice_end)).map_err(to_py)? {
            return Ok(Some(value));
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(None);
        }
    }
}

/// A Python duration in seconds: negative → zero, too large or infinite → `None`
/// (forever), NaN → a `ValueError`.
pub fn duration(secs: f64) -> PyResult<Option<Duration>> {
    if secs.is_nan() {
        return Err(pyo3::exceptions::PyValueError::new_err("a duration cannot be NaN"));
    }
    Ok(Duration::try_from_secs_f64(secs.max(0.0)).ok())
}
