//! CA PVs recorded: one monitor per PV, each update a point of `P:value` and `P:epoch`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use pvloom_ca::client::{CallbackHandle, ClientConfig, Context, Pv, Response, SubscribeOptions, Subscription, Value};

use super::point::{Sample, SampleValue};
use super::{RecordError, RecordStats};
use crate::model::{Dtype, ElementType, Encoding, StreamDesc};

/// The monitors; dropping this ends them.
pub(crate) struct CaRecording {
    // Field order is drop order: callbacks first, then subscriptions, PVs, the context.
    _handles: Vec<CallbackHandle>,
    _subscriptions: Vec<Subscription>,
    _pvs: Vec<Pv>,
    _context: Context,
}

fn element(value: &Value) -> Option<ElementType> {
    Some(match value {
        Value::String(_) => return None,
        Value::Short(_) => ElementType::I16,
        Value::Float(_) => ElementType::F32,
        Value::Enum(_) => ElementType::U16,
        Value::Char(_) => ElementType::U8,
        Value::Long(_) => ElementType::I32,
        Value::Double(_) => ElementType::F64,
    })
}

fn le_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(_) => Vec::new(),
        Value::Short(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Value::Float(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Value::Enum(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Value::Char(v) => v.clone(),
        Value::Long(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Value::Double(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// How one PV's values are written, decided from its first reading.
#[derive(Clone, Copy)]
enum Shape {
    Scalar,
    /// Arrays: their length may change (EPICS dynamic arrays), so each point has its own.
    Array,
    Strings,
}

fn sample_value(shape: Shape, value: &Value) -> SampleValue {
    match (shape, value) {
        (Shape::Strings, Value::String(items)) if items.len() == 1 => {
            SampleValue::Json(serde_json::Value::String(items[0].to_string()))
        }
        (Shape::Strings, Value::String(items)) => {
            SampleValue::Json(items.iter().map(|s| serde_json::Value::String(s.to_string())).collect())
        }
        (Shape::Scalar, value) => SampleValue::Fixed(le_bytes(value)),
        (_, value) => SampleValue::Variable(vec![value.len()], le_bytes(value)),
    }
}

impl CaRecording {
    pub fn start(
        names: &[String],
        config: Option<ClientConfig>,
        connect_timeout: Duration,
        streams: &mut Vec<StreamDesc>,
        tx: flume::Sender<Vec<Sample>>,
        stats: Arc<RecordStats>,
    ) -> Result<CaRecording, RecordError> {
        let context = match config {
            Some(config) => Context::builder().config(config).build()?,
            None => Context::new()?,
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let pvs = context.get_pvs(&refs);
        let mut handles = Vec::new();
        let mut subscriptions = Vec::new();
        for pv in &pvs {
            pv.wait_for_connection(Some(connect_timeout))?;
            let first = pv.read()?;
            let (shape, encoding) = match element(first.value()) {
                None => (Shape::Strings, Encoding::Json),
                Some(element) if first.value().len() == 1 && pv.element_count() == Some(1) => {
                    (Shape::Scalar, Encoding::Numeric { dtype: Dtype::little(element), shape: vec![] })
                }
                Some(element) => (Shape::Array, Encoding::Numeric { dtype: Dtype::little(element), shape: vec![-1] }),
            };
            let value_stream = streams.len();
            let mut info = serde_json::Map::new();
            info.insert("pv".into(), pv.name().into());
            streams.push(StreamDesc { name: format!("{}:value", pv.name()).into(), encoding, info: info.clone() });
            info.insert("units".into(), "s".into());
            streams.push(StreamDesc {
                name: format!("{}:epoch", pv.name()).into(),
                encoding: Encoding::Numeric { dtype: Dtype::little(ElementType::F64), shape: vec![] },
                info,
            });
            let subscription = pv.subscribe(SubscribeOptions::default());
            let (tx, stats) = (tx.clone(), stats.clone());
            handles.push(subscription.add_callback(move |update: Arc<Response>| {
                let epoch = update
                    .timestamp()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(f64::NAN, |d| d.as_secs_f64());
                let value = Sample { stream: value_stream, value: sample_value(shape, update.value()) };
                let time = Sample { stream: value_stream + 1, value: SampleValue::Fixed(epoch.to_le_bytes().to_vec()) };
                // Never wait on a callback thread: a full queue loses the update, counted.
                if tx.try_send(vec![value, time]).is_ok() {
                    stats.updates.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }));
            subscriptions.push(subscription);
        }
        Ok(CaRecording { _handles: handles, _subscriptions: subscriptions, _pvs: pvs, _context: context })
    }
}
