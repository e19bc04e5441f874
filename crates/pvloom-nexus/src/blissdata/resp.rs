//! Reading Redis answers without trusting their shape.

use redis::Value;

/// A stream entry: its id and its field/value pairs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| v.as_slice())
    }

    /// The `ms` part of a `ms-seq` id.
    pub(crate) fn id_parts(&self) -> Option<(u64, u64)> {
        let (a, b) = self.id.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => bytes(v).map(|b| String::from_utf8_lossy(b).into_owned()),
    }
}

/// A field value as an unsigned integer.
pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

fn items(v: &Value) -> Option<Vec<&Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a.iter().collect()),
        Value::Map(m) => Some(m.iter().flat_map(|(k, v)| [k, v]).collect()),
        _ => None,
    }
}

fn pairs(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(m) => Some(m.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(a) if a.len() % 2 == 0 => Some(a.chunks(2).map(|c| (&c[0], &c[1])).collect()),
        _ => None,
    }
}

/// One entry `[id, [field, value, …]]`.
pub(crate) fn entry(v: &Value) -> Result<Entry, String> {
    let parts = items(v).ok_or("stream entry is not an array")?;
    let [id, fields] = parts.as_slice() else {
        return Err(format!("stream entry has {} parts, not 2", parts.len()));
    };
    let id = text(id).ok_or("stream entry id is not a string")?;
    let fields = pairs(fields).ok_or_else(|| format!("entry {id}: fields are not pairs"))?;
    let mut out = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        let k = bytes(k).ok_or_else(|| format!("entry {id}: a field name is not a string"))?;
        let v = bytes(v).ok_or_else(|| format!("entry {id}: a field value is not a string"))?;
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(Entry { id, fields: out })
}

/// XRANGE / XREVRANGE answers: a list of entries.
pub(crate) fn entries(v: &Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        _ => items(v).ok_or("stream range is not an array")?.into_iter().map(entry).collect(),
    }
}

/// XREAD answers: per stream key, its entries. Nil (timeout) is empty.
pub(crate) fn xread(v: &Value) -> Result<Vec<(String, Vec<Entry>)>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => {
            m.iter().map(|(k, v)| Ok((text(k).ok_or("XREAD stream name is not a string")?, entries(v)?))).collect()
        }
        Value::Array(a) => a
            .iter()
            .map(|s| {
                let parts = items(s).ok_or("XREAD stream part is not an array")?;
                let [k, v] = parts.as_slice() else {
                    return Err("XREAD stream part has not 2 items".to_string());
                };
                Ok((text(k).ok_or("XREAD stream name is not a string")?, entries(v)?))
            })
            .collect(),
        _ => Err("XREAD answer is neither nil nor an array".into()),
    }
}
