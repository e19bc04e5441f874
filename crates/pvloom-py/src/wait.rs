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
        Some(secs) if secs >= 0.0 => Instant::now().checked_add(Duration::from_secs_f64(secs)),
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
