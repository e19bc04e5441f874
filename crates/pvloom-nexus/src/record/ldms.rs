//! LDMS sets recorded: each set updated on an interval; an update with new data (a new
//! data generation, consistent) is one point of `S:timestamp` and of every `S:<metric>`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pvloom_core::RuntimeHandle;
use pvloom_ldms::client::{Set, SetSnapshot, Xprt, XprtConfig};
use pvloom_ldms::request::LOOKUP_BY_INSTANCE;
use pvloom_ldms::set::{MetricValue, RecordInst};
use serde_json::Value as Json;

use super::point::{Sample, SampleValue};
use super::{RecordError, RecordStats};
use crate::model::{Dtype, ElementType, Encoding, StreamDesc};

/// `HOST:PORT/SET`: one set of one daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdmsSource {
    pub host: String,
    pub port: u16,
    pub set: String,
}

impl FromStr for LdmsSource {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<LdmsSource, RecordError> {
        let bad = || RecordError::BadLdmsSource(s.to_owned());
        let (addr, set) = s.split_once('/').ok_or_else(bad)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() || set.is_empty() {
            return Err(bad());
        }
        Ok(LdmsSource { host: host.to_owned(), port, set: set.to_owned() })
    }
}

impl fmt::Display for LdmsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.set)
    }
}

/// How one metric is written, from its first value.
fn metric_encoding(value: &MetricValue) -> Encoding {
    use ElementType as E;
    let numeric = |element, shape: Vec<i64>| Encoding::Numeric { dtype: Dtype::little(element), shape };
    let array = |element, n: usize| numeric(element, vec![n as i64]);
    match value {
        MetricValue::Char(_) | MetricValue::U8(_) => numeric(E::U8, vec![]),
        MetricValue::S8(_) => numeric(E::I8, vec![]),
        MetricValue::U16(_) => numeric(E::U16, vec![]),
        MetricValue::S16(_) => numeric(E::I16, vec![]),
        MetricValue::U32(_) => numeric(E::U32, vec![]),
        MetricValue::S32(_) => numeric(E::I32, vec![]),
        MetricValue::U64(_) => numeric(E::U64, vec![]),
        MetricValue::S64(_) => numeric(E::I64, vec![]),
        MetricValue::F32(_) => numeric(E::F32, vec![]),
        MetricValue::D64(_) | MetricValue::Timestamp(_) => numeric(E::F64, vec![]),
        MetricValue::U8Array(v) => array(E::U8, v.len()),
        MetricValue::S8Array(v) => array(E::I8, v.len()),
        MetricValue::U16Array(v) => array(E::U16, v.len()),
        MetricValue::S16Array(v) => array(E::I16, v.len()),
        MetricValue::U32Array(v) => array(E::U32, v.len()),
        MetricValue::S32Array(v) => array(E::I32, v.len()),
        MetricValue::U64Array(v) => array(E::U64, v.len()),
        MetricValue::S64Array(v) => array(E::I64, v.len()),
        MetricValue::F32Array(v) => array(E::F32, v.len()),
        MetricValue::D64Array(v) => array(E::F64, v.len()),
        // Text, lists and records have no fixed numeric shape: one JSON value per point.
        MetricValue::CharArray(_)
        | MetricValue::List(_)
        | MetricValue::RecordInst(_)
        | MetricValue::RecordArray { .. } => Encoding::Json,
    }
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn record_json(record: &RecordInst) -> Json {
    Json::Array(record.members.iter().map(metric_json).collect())
}

/// A metric as JSON: numbers, arrays of numbers, text, lists and records as arrays.
fn metric_json(value: &MetricValue) -> Json {
    match value {
        MetricValue::Char(c) => Json::String(char::from(*c).to_string()),
        MetricValue::U8(v) => (*v).into(),
        MetricValue::S8(v) => (*v).into(),
        MetricValue::U16(v) => (*v).into(),
        MetricValue::S16(v) => (*v).into(),
        MetricValue::U32(v) => (*v).into(),
        MetricValue::S32(v) => (*v).into(),
        MetricValue::U64(v) => (*v).into(),
        MetricValue::S64(v) => (*v).into(),
        MetricValue::F32(v) => (*v).into(),
        MetricValue::D64(v) => (*v).into(),
        MetricValue::CharArray(v) => Json::String(text(v)),
        MetricValue::U8Array(v) => v.clone().into(),
        MetricValue::S8Array(v) => v.clone().into(),
        MetricValue::U16Array(v) => v.clone().into(),
        MetricValue::S16Array(v) => v.clone().into(),
        MetricValue::U32Array(v) => v.clone().into(),
        MetricValue::S32Array(v) => v.clone().into(),
        MetricValue::U64Array(v) => v.clone().into(),
        MetricValue::S64Array(v) => v.clone().into(),
        MetricValue::F32Array(v) => v.clone().into(),
        MetricValue::D64Array(v) => v.clone().into(),
        MetricValue::Timestamp(t) => (f64::from(t.sec) + f64::from(t.usec) * 1e-6).into(),
        MetricValue::List(entries) => Json::Array(entries.iter().map(|e| metric_json(&e.value)).collect()),
        MetricValue::RecordInst(record) => record_json(record),
        MetricValue::RecordArray { elems, .. } => Json::Array(elems.iter().map(record_json).collect()),
    }
}

fn le<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

/// A metric as one point of its stream (the encoding `metric_encoding` chose).
fn metric_sample(value: &MetricValue) -> SampleValue {
    let bytes = match value {
        MetricValue::Char(v) | MetricValue::U8(v) => vec![*v],
        MetricValue::S8(v) => v.to_le_bytes().to_vec(),
        MetricValue::U16(v) => v.to_le_bytes().to_vec(),
        MetricValue::S16(v) => v.to_le_bytes().to_vec(),
        MetricValue::U32(v) => v.to_le_bytes().to_vec(),
        MetricValue::S32(v) => v.to_le_bytes().to_vec(),
        MetricValue::U64(v) => v.to_le_bytes().to_vec(),
        MetricValue::S64(v) => v.to_le_bytes().to_vec(),
        MetricValue::F32(v) => v.to_le_bytes().to_vec(),
        MetricValue::D64(v) => v.to_le_bytes().to_vec(),
        MetricValue::Timestamp(t) => (f64::from(t.sec) + f64::from(t.usec) * 1e-6).to_le_bytes().to_vec(),
        MetricValue::U8Array(v) => v.clone(),
        MetricValue::S8Array(v) => le(v, i8::to_le_bytes),
        MetricValue::U16Array(v) => le(v, u16::to_le_bytes),
        MetricValue::S16Array(v) => le(v, i16::to_le_bytes),
        MetricValue::U32Array(v) => le(v, u32::to_le_bytes),
        MetricValue::S32Array(v) => le(v, i32::to_le_bytes),
        MetricValue::U64Array(v) => le(v, u64::to_le_bytes),
        MetricValue::S64Array(v) => le(v, i64::to_le_bytes),
        MetricValue::F32Array(v) => le(v, f32::to_le_bytes),
        MetricValue::D64Array(v) => le(v, f64::to_le_bytes),
        other => return SampleValue::Json(metric_json(other)),
    };
    SampleValue::Fixed(bytes)
}

/// The set's updater thread; [`LdmsRecording::stop`] ends it.
pub(crate) struct LdmsRecording {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    xprt: Xprt,
}

fn resolve(source: &LdmsSource) -> Result<SocketAddr, RecordError> {
    let error = |message: String| RecordError::Ldms { source_name: source.to_string(), message };
    (source.host.as_str(), source.port)
        .to_socket_addrs()
        .map_err(|e| error(format!("resolving {}: {e}", source.host)))?
        .next()
        .ok_or_else(|| error(format!("{} has no address", source.host)))
}

/// The points of one update, or None when it brings nothing new.
fn samples(first_stream: usize, snap: &SetSnapshot, metrics: usize) -> Vec<Sample> {
    let ts = snap.timestamp();
    let epoch = f64::from(ts.sec) + f64::from(ts.usec) * 1e-6;
    let mut out = Vec::with_capacity(metrics + 1);
    out.push(Sample { stream: first_stream, value: SampleValue::Fixed(epoch.to_le_bytes().to_vec()) });
    for i in 0..metrics {
        let value = match snap.value(i) {
            Some(value) => metric_sample(value),
            None => SampleValue::Json(Json::Null),
        };
        out.push(Sample { stream: first_stream + 1 + i, value });
    }
    out
}

impl LdmsRecording {
    pub fn start(
        runtime: &RuntimeHandle,
        source: &LdmsSource,
        interval: Duration,
        connect_timeout: Duration,
        streams: &mut Vec<StreamDesc>,
        tx: flume::Sender<Vec<Sample>>,
        stats: Arc<RecordStats>,
    ) -> Result<LdmsRecording, RecordError> {
        let error = |message: String| RecordError::Ldms { source_name: source.to_string(), message };
        let config = XprtConfig { timeout: connect_timeout, ..XprtConfig::default() };
        let xprt = Xprt::connect(runtime, resolve(source)?, config).map_err(|e| error(format!("connect: {e}")))?;
        let set: Set = xprt
            .lookup(&source.set, LOOKUP_BY_INSTANCE)
            .map_err(|e| error(format!("lookup: {e}")))?
            .into_iter()
            .next()
            .ok_or_else(|| error("lookup found no set".into()))?;
        let first = set.update().map_err(|e| error(format!("update: {e}")))?;
        let metrics = set.card();
        let first_stream = streams.len();
        let mut info = serde_json::Map::new();
        info.insert("ldms_set".into(), source.to_string().into());
        info.insert("schema".into(), set.schema().into());
        info.insert("producer".into(), set.producer().into());
        let mut ts_info = info.clone();
        ts_info.insert("units".into(), "s".into());
        streams.push(StreamDesc {
            name: format!("{}:timestamp", source.set).into(),
            encoding: Encoding::Numeric { dtype: Dtype::little(ElementType::F64), shape: vec![] },
            info: ts_info,
        });
        for i in 0..metrics {
            let desc = set.metric_desc(i).ok_or_else(|| error(format!("metric {i} has no descriptor")))?;
            let encoding = first.value(i).map_or(Encoding::Json, metric_encoding);
            let mut metric_info = info.clone();
            if let Some(unit) = desc.unit.as_deref().filter(|u| !u.is_empty()) {
                metric_info.insert("units".into(), unit.into());
            }
            streams.push(StreamDesc {
                name: format!("{}:{}", source.set, desc.name).into(),
                encoding,
                info: metric_info,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let name = source.to_string();
            std::thread::Builder::new()
                .name(format!("record {name}"))
                .spawn(move || {
                    let mut last_gn = None;
                    let mut next = Instant::now();
                    let mut snap = Some(first);
                    while !stop.load(Ordering::Acquire) {
                        let current = match snap.take() {
                            Some(s) => Ok(s),
                            None => set.update(),
                        };
                        match current {
                            Ok(s) if s.is_consistent() && last_gn != Some(s.data_gn()) => {
                                last_gn = Some(s.data_gn());
                                if tx.try_send(samples(first_stream, &s, metrics)).is_ok() {
                                    stats.updates.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!("record {name}: update failed: {e}"),
                        }
                        next += interval;
                        let now = Instant::now();
                        if next > now {
                            // Short naps so that stop is seen promptly.
                            while !stop.load(Ordering::Acquire) && Instant::now() < next {
                                std::thread::sleep((next - Instant::now()).min(Duration::from_millis(20)));
                            }
                        } else {
                            next = now;
                        }
                    }
                })
                .map_err(|e| error(format!("spawning its thread: {e}")))?
        };
        Ok(LdmsRecording { stop, thread: Some(thread), xprt })
    }

    /// End the updates; returns once the thread is gone.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.xprt.close();
    }
}

impl Drop for LdmsRecording {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        let s: LdmsSource = "127.0.0.1:10444/node1/meminfo".parse().unwrap();
        assert_eq!((s.host.as_str(), s.port, s.set.as_str()), ("127.0.0.1", 10444, "node1/meminfo"));
        assert_eq!(s.to_string(), "127.0.0.1:10444/node1/meminfo");
        for bad in ["127.0.0.1:10444", "host/set", ":1/x", "h:p/x", "h:1/"] {
            assert!(bad.parse::<LdmsSource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_map_to_their_encodings_and_points() {
        let cases = [
            (MetricValue::U64(7), Some(8)),
            (MetricValue::S16Array(vec![1, -2, 3]), Some(6)),
            (MetricValue::D64Array(vec![0.5; 4]), Some(32)),
            (MetricValue::Char(b'x'), Some(1)),
            (MetricValue::CharArray(b"abc\0\0".to_vec()), None),
        ];
        for (value, size) in cases {
            let encoding = metric_encoding(&value);
            assert_eq!(encoding.point_size(), size, "{value:?}");
            match (metric_sample(&value), size) {
                (SampleValue::Fixed(bytes), Some(size)) => assert_eq!(bytes.len(), size),
                (SampleValue::Json(json), None) => assert_eq!(json, Json::String("abc".into())),
                (other, _) => panic!("{value:?} gave {other:?}"),
            }
        }
        let s16 = metric_sample(&MetricValue::S16Array(vec![1, -2]));
        assert!(matches!(s16, SampleValue::Fixed(b) if b == [1, 0, 0xfe, 0xff]));
    }
}
