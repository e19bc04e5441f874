//! The scan's JSON document: reading it into a [`ScanMeta`], and writing one.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{BlissError, STREAM_PREFIX};
use crate::model::{Dtype, Encoding, ScanIdentity, ScanMeta, StreamDesc};

/// Largest scan document accepted (blissdata itself caps `info` at 1 MiB).
pub(crate) const MAX_DOC_BYTES: usize = 8 << 20;
/// Most data streams accepted in one scan.
pub(crate) const MAX_STREAMS: usize = 4096;
/// Most dimensions of one point.
const MAX_NDIM: usize = 32;

/// A scan document, read.
#[derive(Debug, Clone)]
pub(crate) struct ScanDoc {
    pub meta: ScanMeta,
    pub state_key: String,
    /// Redis key of each stream of `meta.streams`, same order.
    pub stream_keys: Vec<String>,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str, key: &str, path: &str) -> Result<&'a Value, BlissError> {
    obj.get(name).ok_or_else(|| BlissError::malformed(key, format!("field {path}{name} missing")))
}

fn object<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Map<String, Value>, BlissError> {
    v.as_object().ok_or_else(|| BlissError::malformed(key, format!("field {path} is not an object")))
}

fn pk(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String, BlissError> {
    let pk = field(obj, "pk", key, path)?
        .as_str()
        .ok_or_else(|| BlissError::malformed(key, format!("field {path}pk is not a string")))?;
    if pk.is_empty() || pk.len() > 64 || !pk.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(BlissError::malformed(key, format!("field {path}pk {pk:?} is not a ULID")));
    }
    Ok(pk.to_owned())
}

fn opt_str(obj: &Map<String, Value>, name: &str, key: &str) -> Result<String, BlissError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(BlissError::malformed(key, format!("field id.{name} is not a string"))),
    }
}

fn identity(v: &Value, key: &str) -> Result<ScanIdentity, BlissError> {
    let id = object(v, key, "id")?;
    let name = field(id, "name", key, "id.")?
        .as_str()
        .ok_or_else(|| BlissError::malformed(key, "field id.name is not a string"))?
        .to_owned();
    let number = field(id, "number", key, "id.")?
        .as_u64()
        .ok_or_else(|| BlissError::malformed(key, "field id.number is not an unsigned integer"))?;
    Ok(ScanIdentity {
        name,
        number,
        session: opt_str(id, "session", key)?,
        proposal: opt_str(id, "proposal", key)?,
        collection: opt_str(id, "collection", key)?,
        dataset: opt_str(id, "dataset", key)?,
        path: opt_str(id, "path", key)?,
        data_policy: opt_str(id, "data_policy", key)?,
    })
}

/// A stream's `encoding` object.
pub(crate) fn encoding(v: &Value, key: &str, path: &str) -> Result<Encoding, BlissError> {
    let enc = object(v, key, path)?;
    let kind = enc.get("type").and_then(Value::as_str);
    match kind {
        Some("json") => Ok(Encoding::Json),
        Some("numeric") => {
            let dtype = enc
                .get("dtype_str")
                .and_then(Value::as_str)
                .ok_or_else(|| BlissError::malformed(key, format!("field {path}.dtype_str missing or not a string")))?;
            let dtype =
                Dtype::parse(dtype).map_err(|e| BlissError::malformed(key, format!("field {path}.dtype_str: {e}")))?;
            let shape = enc
                .get("shape")
                .and_then(Value::as_array)
                .ok_or_else(|| BlissError::malformed(key, format!("field {path}.shape missing or not an array")))?;
            if shape.len() > MAX_NDIM {
                return Err(BlissError::malformed(key, format!("field {path}.shape has {} dimensions", shape.len())));
            }
            let shape = shape
                .iter()
                .map(|d| match d.as_i64() {
                    Some(d) if d >= -1 && d <= u32::MAX as i64 => Ok(d),
                    _ => Err(BlissError::malformed(key, format!("field {path}.shape: {d} is not a dimension"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Encoding::Numeric { dtype, shape })
        }
        Some(other) => Err(BlissError::malformed(key, format!("field {path}.type: unknown encoding {other:?}"))),
        None => Err(BlissError::malformed(key, format!("field {path}.type missing or not a string"))),
    }
}

/// Parses a scan document (the text `JSON.GET key` answers).
pub(crate) fn parse(key: &str, text: &[u8]) -> Result<ScanDoc, BlissError> {
    if text.len() > MAX_DOC_BYTES {
        return Err(BlissError::malformed(key, format!("document of {} bytes (limit {MAX_DOC_BYTES})", text.len())));
    }
    let doc: Value =
        serde_json::from_slice(text).map_err(|e| BlissError::malformed(key, format!("document is not JSON: {e}")))?;
    let doc = object(&doc, key, "(document)")?;
    let identity = identity(field(doc, "id", key, "")?, key)?;
    let info = field(doc, "info", key, "")?.clone();
    if !info.is_object() {
        return Err(BlissError::malformed(key, "field info is not an object"));
    }
    let state = object(field(doc, "state_stream", key, "")?, key, "state_stream")?;
    let state_key = format!("{STREAM_PREFIX}{}", pk(state, key, "state_stream.")?);
    let streams = object(field(doc, "data_streams", key, "")?, key, "data_streams")?;
    if streams.len() > MAX_STREAMS {
        return Err(BlissError::malformed(key, format!("{} data streams (limit {MAX_STREAMS})", streams.len())));
    }
    let mut descs = Vec::with_capacity(streams.len());
    let mut stream_keys = Vec::with_capacity(streams.len());
    for (name, model) in streams {
        let path = format!("data_streams.{name}");
        let model = object(model, key, &path)?;
        stream_keys.push(format!("{STREAM_PREFIX}{}", pk(model, key, &format!("{path}."))?));
        let encoding = encoding(field(model, "encoding", key, &format!("{path}."))?, key, &format!("{path}.encoding"))?;
        let info = match model.get("info") {
            Some(Value::Object(m)) => m.clone(),
            // Older blissdata stored "" when a stream had no info.
            None | Some(Value::Null) | Some(Value::String(_)) => Map::new(),
            Some(_) => return Err(BlissError::malformed(key, format!("field {path}.info is not an object"))),
        };
        descs.push(StreamDesc { name: Arc::from(name.as_str()), encoding, info });
    }
    Ok(ScanDoc { meta: ScanMeta { key: key.to_owned(), identity, info, streams: descs }, state_key, stream_keys })
}

/// A stream's `encoding` object as blissdata's encoders write it.
pub(crate) fn encoding_json(encoding: &Encoding) -> Value {
    match encoding {
        Encoding::Json => json!({"type": "json"}),
        Encoding::Numeric { dtype, shape } => {
            json!({"type": "numeric", "dtype_str": dtype.to_string(), "shape": shape})
        }
    }
}

fn null_if_empty(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { Value::String(s.to_owned()) }
}

/// A new scan document, with the primary keys given.
pub(crate) fn build(scan_pk: &str, id_pk: &str, state_pk: &str, meta: &ScanMeta, stream_pks: &[String]) -> Value {
    let id = &meta.identity;
    let mut streams = Map::new();
    for (desc, pk) in meta.streams.iter().zip(stream_pks) {
        streams.insert(
            desc.name.to_string(),
            json!({"pk": pk, "encoding": encoding_json(&desc.encoding), "info": Value::Object(desc.info.clone())}),
        );
    }
    let info = if meta.info.is_object() { meta.info.clone() } else { json!({}) };
    json!({
        "pk": scan_pk,
        "id": {
            "pk": id_pk,
            "name": id.name,
            "number": id.number,
            "data_policy": id.data_policy,
            "session": null_if_empty(&id.session),
            "proposal": null_if_empty(&id.proposal),
            "collection": null_if_empty(&id.collection),
            "dataset": null_if_empty(&id.dataset),
            "path": null_if_empty(&id.path),
        },
        "info": info,
        "state_stream": {"pk": state_pk, "encoding": null, "info": null},
        "data_streams": streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_documents_parse_back() {
        let meta = ScanMeta {
            key: "esrf:scan:A".into(),
            identity: ScanIdentity { name: "ascan".into(), number: 3, session: "s".into(), ..Default::default() },
            info: json!({"title": "t"}),
            streams: vec![StreamDesc {
                name: "a:b".into(),
                encoding: Encoding::Numeric { dtype: Dtype::parse("<u2").unwrap(), shape: vec![4, -1] },
                info: Map::new(),
            }],
        };
        let doc = build("A", "B", "C", &meta, &["D".into()]);
        let parsed = parse("esrf:scan:A", doc.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.meta, meta);
        assert_eq!(parsed.state_key, "esrf:stream:C");
        assert_eq!(parsed.stream_keys, ["esrf:stream:D"]);
    }

    #[test]
    fn bad_documents_name_the_field() {
        let cases = [
            (r#"{"id": 1}"#, "field id is not an object"),
            (r#"[1]"#, "not an object"),
            (
                r#"{"id": {"name": "a", "number": 1}, "info": {}, "state_stream": {"pk": "X"}, "data_streams": {"s": {"pk": "Y", "encoding": {"type": "zarr"}}}}"#,
                "unknown encoding \"zarr\"",
            ),
            (
                r#"{"id": {"name": "a", "number": 1}, "info": {}, "state_stream": {"pk": "X"}, "data_streams": {"s": {"pk": "Y", "encoding": {"type": "numeric", "dtype_str": "<f3", "shape": []}}}}"#,
                "data_streams.s.encoding.dtype_str",
            ),
            (r#"{"id": {"name": "a", "number": -1}}"#, "id.number"),
            ("not json", "not JSON"),
        ];
        for (text, expected) in cases {
            let err = parse("esrf:scan:K", text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected) && err.starts_with("esrf:scan:K"), "{text}: {err}");
        }
    }
}
