//! Stream entry payloads: numeric (raw C-order, or msgpack `[shape, bytes]` when a dimension
//! varies) and JSON, decoded into [`Points`] and encoded from them.

use crate::model::{Encoding, Points};

/// Most points one entry may claim (`len`).
pub(crate) const MAX_ENTRY_POINTS: u64 = 1 << 32;

/// One data entry's content, after the id check.
pub(crate) struct Batch<'a> {
    pub len: u64,
    pub payload: &'a [u8],
}

/// Decodes one entry's payload into `out`, which must be of the encoding's kind.
pub(crate) fn decode_into(encoding: &Encoding, batch: &Batch<'_>, out: &mut Points) -> Result<(), String> {
    if batch.len == 0 || batch.len > MAX_ENTRY_POINTS {
        return Err(format!("field len {} out of range", batch.len));
    }
    match (encoding, out) {
        (Encoding::Json, Points::Json(points)) => {
            if batch.len != 1 {
                return Err(format!("field len {} on a JSON stream (one point per entry)", batch.len));
            }
            let value = serde_json::from_slice(batch.payload).map_err(|e| format!("field payload is not JSON: {e}"))?;
            points.push(value);
            Ok(())
        }
        (Encoding::Numeric { dtype, shape }, Points::Variable(points)) => {
            let (point_shape, data) = unpack_variable(batch.payload)?;
            if point_shape.len() != shape.len()
                || point_shape.iter().zip(shape).any(|(&got, &want)| want >= 0 && got as i64 != want)
            {
                return Err(format!("field payload: point shape {point_shape:?} does not fit the stream's {shape:?}"));
            }
            let point_bytes = point_shape
                .iter()
                .try_fold(dtype.element.size(), |acc, &d| acc.checked_mul(d))
                .ok_or("field payload: point shape overflows")?;
            let expected = (batch.len as usize).checked_mul(point_bytes).ok_or("field len overflows")?;
            if data.len() != expected {
                return Err(format!(
                    "field payload: {} bytes for {} points of shape {point_shape:?} {dtype} ({expected} expected)",
                    data.len(),
                    batch.len
                ));
            }
            if point_bytes == 0 {
                points.extend((0..batch.len).map(|_| (point_shape.clone(), Vec::new())));
            } else {
                points.extend(data.chunks(point_bytes).map(|c| (point_shape.clone(), c.to_vec())));
            }
            Ok(())
        }
        (Encoding::Numeric { dtype, shape }, Points::Fixed { count, bytes }) => {
            let point_bytes = encoding.point_size().ok_or("stream shape is not fixed")?;
            let expected = (batch.len as usize).checked_mul(point_bytes).ok_or("field len overflows")?;
            if batch.payload.len() != expected {
                return Err(format!(
                    "field payload: {} bytes for {} points of shape {shape:?} {dtype} ({expected} expected)",
                    batch.payload.len(),
                    batch.len
                ));
            }
            bytes.extend_from_slice(batch.payload);
            *count += batch.len as usize;
            Ok(())
        }
        _ => Err("points of another kind than the stream's encoding".into()),
    }
}

/// Empty points of the encoding's kind.
pub(crate) fn empty(encoding: &Encoding) -> Points {
    match encoding {
        Encoding::Json => Points::Json(Vec::new()),
        e if e.is_variable() => Points::Variable(Vec::new()),
        _ => Points::Fixed { count: 0, bytes: Vec::new() },
    }
}

fn unpack_variable(payload: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let mut rd = payload;
    let bad = |what: &str| format!("field payload is not msgpack [shape, bytes]: {what}");
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| bad(&e.to_string()))?;
    if n != 2 {
        return Err(bad(&format!("array of {n}")));
    }
    let ndim = rmp::decode::read_array_len(&mut rd).map_err(|e| bad(&e.to_string()))?;
    if ndim > 32 {
        return Err(bad(&format!("{ndim} dimensions")));
    }
    let mut shape = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        let d: u64 = rmp::decode::read_int(&mut rd).map_err(|e| bad(&e.to_string()))?;
        shape.push(usize::try_from(d).map_err(|_| bad("dimension too large"))?);
    }
    let len = rmp::decode::read_bin_len(&mut rd).map_err(|e| bad(&e.to_string()))? as usize;
    if rd.len() != len {
        return Err(bad(&format!("bin of {len} bytes but {} follow", rd.len())));
    }
    Ok((shape, rd))
}

/// One entry's fields: (payload, len).
pub(crate) type Encoded = (Vec<u8>, u64);

/// Encodes points into entries as blissdata's encoders do. Fixed points go into one entry;
/// variable and JSON points one entry per point.
pub(crate) fn encode(encoding: &Encoding, points: &Points) -> Result<Vec<Encoded>, String> {
    match (encoding, points) {
        (Encoding::Json, Points::Json(values)) => Ok(values.iter().map(|v| (v.to_string().into_bytes(), 1)).collect()),
        (Encoding::Numeric { dtype, .. }, Points::Variable(points)) if encoding.is_variable() => points
            .iter()
            .map(|(shape, data)| {
                let expected = shape.iter().product::<usize>() * dtype.element.size();
                if data.len() != expected {
                    return Err(format!("a point of shape {shape:?} {dtype} has {} bytes, not {expected}", data.len()));
                }
                let mut buf = Vec::with_capacity(data.len() + 16 + 9 * shape.len());
                let write = |buf: &mut Vec<u8>| -> Result<(), String> {
                    rmp::encode::write_array_len(buf, 2).map_err(|e| e.to_string())?;
                    rmp::encode::write_array_len(buf, shape.len() as u32).map_err(|e| e.to_string())?;
                    for &d in shape {
                        rmp::encode::write_uint(buf, d as u64).map_err(|e| e.to_string())?;
                    }
                    rmp::encode::write_bin(buf, data).map_err(|e| e.to_string())
                };
                write(&mut buf).map_err(|e| format!("msgpack: {e}"))?;
                Ok((buf, 1))
            })
            .collect(),
        (Encoding::Numeric { .. }, Points::Fixed { count, bytes }) if !encoding.is_variable() => {
            let size = encoding.point_size().unwrap_or(0);
            if size.checked_mul(*count) != Some(bytes.len()) {
                return Err(format!("{count} points of {size} bytes carried in {} bytes", bytes.len()));
            }
            if *count == 0 { Ok(Vec::new()) } else { Ok(vec![(bytes.clone(), *count as u64)]) }
        }
        _ => Err("points of another kind than the stream's encoding".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dtype;

    fn numeric(dtype: &str, shape: Vec<i64>) -> Encoding {
        Encoding::Numeric { dtype: Dtype::parse(dtype).unwrap(), shape }
    }

    #[test]
    fn variable_points_round_trip() {
        let enc = numeric("<i4", vec![-1]);
        let points = Points::Variable(vec![(vec![2], vec![1, 0, 0, 0, 2, 0, 0, 0]), (vec![0], vec![])]);
        let entries = encode(&enc, &points).unwrap();
        let mut out = empty(&enc);
        for (payload, len) in &entries {
            decode_into(&enc, &Batch { len: *len, payload }, &mut out).unwrap();
        }
        assert_eq!(out, points);
    }

    #[test]
    fn bad_payloads_are_errors() {
        let enc = numeric("<f8", vec![2]);
        let mut out = empty(&enc);
        let err = decode_into(&enc, &Batch { len: 2, payload: &[0; 24] }, &mut out).unwrap_err();
        assert!(err.contains("24 bytes for 2 points"), "{err}");
        let var = numeric("<f8", vec![-1]);
        let mut out = empty(&var);
        for junk in [&b""[..], b"\x92\x91\x01", b"\x92\x91\x02\xc4\x08abcdefgh", b"\xff"] {
            assert!(decode_into(&var, &Batch { len: 1, payload: junk }, &mut out).is_err());
        }
        let mut out = empty(&Encoding::Json);
        assert!(decode_into(&Encoding::Json, &Batch { len: 1, payload: b"{" }, &mut out).is_err());
    }
}
