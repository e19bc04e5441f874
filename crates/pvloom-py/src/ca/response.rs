//! A reading (read reply or subscription update) as seen from Python.

use std::sync::Arc;

use pvloom_ca::client::{Metadata, Response, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyTuple};

/// One reading of a channel, kept as the Rust client delivered it; `data()` and
/// `metadata()` convert on demand (the facade caches them).
#[pyclass(name = "CaResponse", module = "pvloom._pvloom", frozen)]
pub struct PyCaResponse {
    pub(crate) response: Arc<Response>,
}

/// `numpy.frombuffer`, or `None` without numpy.
static FROMBUFFER: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

fn frombuffer(py: Python<'_>) -> Option<&Bound<'_, PyAny>> {
    FROMBUFFER
        .get_or_init(py, || py.import("numpy").and_then(|np| np.getattr("frombuffer")).ok().map(Bound::unbind))
        .as_ref()
        .map(|f| f.bind(py))
}

/// Native-endian bytes of a numeric array, in a `bytearray` (so the array built on
/// it is writable), with its numpy dtype and `array` typecode.
macro_rules! numeric_bytes {
    ($py:expr, $values:expr, $size:literal) => {{
        let values = $values;
        PyByteArray::new_with($py, values.len() * $size, |buf: &mut [u8]| {
            for (chunk, value) in buf.chunks_exact_mut($size).zip(values.iter()) {
                chunk.copy_from_slice(&value.to_ne_bytes());
            }
            Ok(())
        })?
    }};
}

/// The value as caproto gives it: a numpy array for numbers (native byte order;
/// `array.array` without numpy), a list of `bytes` for strings.
pub fn value_to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    let (buffer, dtype, typecode) = match value {
        Value::String(items) => {
            let items: Vec<Bound<'_, PyBytes>> = items.iter().map(|s| PyBytes::new(py, s.as_bytes())).collect();
            return Ok(PyList::new(py, items)?.into_any().unbind());
        }
        Value::Short(v) => (numeric_bytes!(py, v, 2), "i2", "h"),
        Value::Float(v) => (numeric_bytes!(py, v, 4), "f4", "f"),
        Value::Enum(v) => (numeric_bytes!(py, v, 2), "u2", "H"),
        Value::Char(v) => (PyByteArray::new(py, v), "u1", "B"),
        Value::Long(v) => (numeric_bytes!(py, v, 4), "i4", "i"),
        Value::Double(v) => (numeric_bytes!(py, v, 8), "f8", "d"),
    };
    match frombuffer(py) {
        Some(frombuffer) => Ok(frombuffer.call1((buffer, dtype))?.unbind()),
        None => Ok(py.import("array")?.getattr("array")?.call1((typecode, buffer))?.unbind()),
    }
}

/// The metadata as a dict of caproto's field names (`None` for plain types).
pub fn metadata_to_py<'py>(py: Python<'py>, metadata: &Metadata) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(alarm) = metadata.alarm() else { return Ok(None) };
    let dict = PyDict::new(py);
    dict.set_item("status", alarm.status)?;
    dict.set_item("severity", alarm.severity)?;
    if let Some(stamp) = metadata.timestamp() {
        dict.set_item("secondsSinceEpoch", stamp.secs)?;
        dict.set_item("nanoSeconds", stamp.nanos)?;
    }
    if let Some(info) = metadata.graphic() {
        dict.set_item("units", PyBytes::new(py, info.units.as_bytes()))?;
        dict.set_item("precision", info.precision)?;
        dict.set_item("upper_disp_limit", info.upper_disp_limit)?;
        dict.set_item("lower_disp_limit", info.lower_disp_limit)?;
        dict.set_item("upper_alarm_limit", info.upper_alarm_limit)?;
        dict.set_item("upper_warning_limit", info.upper_warning_limit)?;
        dict.set_item("lower_warning_limit", info.lower_warning_limit)?;
        dict.set_item("lower_alarm_limit", info.lower_alarm_limit)?;
    }
    if let Some(control) = metadata.control() {
        dict.set_item("upper_ctrl_limit", control.upper_ctrl_limit)?;
        dict.set_item("lower_ctrl_limit", control.lower_ctrl_limit)?;
    }
    if let Some(strings) = metadata.enum_strings() {
        let items: Vec<Bound<'_, PyBytes>> = strings.iter().map(|s| PyBytes::new(py, s.as_bytes())).collect();
        dict.set_item("enum_strings", PyTuple::new(py, items)?)?;
    }
    if let Metadata::StatusAck { ackt, acks, .. } = metadata {
        dict.set_item("ackt", ackt)?;
        dict.set_item("acks", acks)?;
    }
    Ok(Some(dict))
}

#[pymethods]
impl PyCaResponse {
    /// The DBR type code the server sent (caproto's `ChannelType` value).
    #[getter]
    fn data_type(&self) -> u16 {
        self.response.data_type.code()
    }

    /// Elements sent.
    #[getter]
    fn data_count(&self) -> u32 {
        self.response.data_count
    }

    /// ECA status code of the reply (with severity bits; 1 is `ECA_NORMAL`).
    #[getter]
    fn status(&self) -> u32 {
        self.response.status
    }

    /// The value: a numpy array for numbers, a list of `bytes` for strings.
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        value_to_py(py, &self.response.data.value)
    }

    /// The metadata fields as a dict, or `None` for plain types.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        metadata_to_py(py, &self.response.data.metadata)
    }

    fn __repr__(&self) -> String {
        format!("<CaResponse {} count={}>", self.response.data_type, self.response.data_count)
    }
}
