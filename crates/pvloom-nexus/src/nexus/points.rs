//! Point encoding helpers: size checks for fixed-shape batches and padding of
//! variable-shape points to a common shape.
//!
//! Variable-shape streams are stored padded: the dataset is `[points, d1_max, d2_max…]`
//! where `dk_max` is the largest extent seen so far (the dataset grows in place when a
//! bigger point arrives), cells outside a point hold the fill value (NaN for floats, 0
//! otherwise), and a companion `<name>_shape` dataset (`int64 [points, rank]`) records
//! each point's true shape.

/// Elementwise maximum of two shapes of equal rank.
pub fn grow_shape(current: &[usize], point: &[usize]) -> Vec<usize> {
    current.iter().zip(point).map(|(&a, &b)| a.max(b)).collect()
}

/// One point of `shape` (C-order, `elem` bytes per element) copied into a C-order block of
/// `target` (each extent ≥ the point's), the rest filled with `fill` (one element's bytes).
pub fn pad_point(bytes: &[u8], shape: &[usize], target: &[usize], elem: usize, fill: &[u8]) -> Vec<u8> {
    debug_assert_eq!(shape.len(), target.len());
    debug_assert_eq!(fill.len(), elem);
    let total: usize = target.iter().product();
    let mut out = Vec::with_capacity(total * elem);
    for _ in 0..total {
        out.extend_from_slice(fill);
    }
    let n: usize = shape.iter().product();
    if n == 0 {
        return out;
    }
    // Copy row by row: the last axis is contiguous in both.
    let row = *shape.last().unwrap_or(&1);
    let rows = n / row.max(1);
    let rank = shape.len();
    let mut index = vec![0usize; rank.saturating_sub(1)];
    for r in 0..rows {
        let mut offset = 0usize;
        for (k, &i) in index.iter().enumerate() {
            offset = offset * target[k] + i;
        }
        if rank > 0 {
            offset *= target[rank - 1];
        }
        let src = &bytes[r * row * elem..(r + 1) * row * elem];
        out[offset * elem..(offset + row) * elem].copy_from_slice(src);
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Checks that a batch's bytes fit its count and the stream's point size.
pub fn check_fixed(count: usize, bytes: &[u8], point_size: usize) -> Result<(), String> {
    if bytes.len() != count * point_size {
        return Err(format!(
            "{count} points of {point_size} bytes need {} bytes, got {}",
            count * point_size,
            bytes.len()
        ));
    }
    Ok(())
}

/// Checks a variable-shape point against the stream's rank and element size.
pub fn check_variable(shape: &[usize], bytes: &[u8], rank: usize, elem: usize) -> Result<(), String> {
    if shape.len() != rank {
        return Err(format!("point of rank {} in a stream of rank {rank}", shape.len()));
    }
    let need = shape.iter().product::<usize>() * elem;
    if bytes.len() != need {
        return Err(format!("point of shape {shape:?} needs {need} bytes, got {}", bytes.len()));
    }
    Ok(())
}

/// A JSON point as the string stored in the file (compact JSON; a JSON string is stored as
/// its text, not quoted).
pub fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (0usize..4).prop_flat_map(|rank| {
            (proptest::collection::vec(0usize..5, rank), proptest::collection::vec(0usize..3, rank))
        })
    }

    proptest! {
        #[test]
        fn padding_keeps_every_element_and_fills_the_rest((shape, extra) in shapes(), elem in 1usize..4) {
            let target: Vec<usize> = shape.iter().zip(&extra).map(|(a, b)| a + b).collect();
            let n: usize = shape.iter().product();
            let bytes: Vec<u8> = (0..n * elem).map(|i| (i % 251) as u8 + 1).collect();
            let fill = vec![0u8; elem];
            let out = pad_point(&bytes, &shape, &target, elem, &fill);
            prop_assert_eq!(out.len(), target.iter().product::<usize>() * elem);
            // Walk every target cell: inside the point it is the point's element, outside fill.
            let total: usize = target.iter().product();
            for cell in 0..total {
                let mut rest = cell;
                let mut idx = vec![0; target.len()];
                for k in (0..target.len()).rev() {
                    idx[k] = rest % target[k];
                    rest /= target[k];
                }
                let inside = idx.iter().zip(&shape).all(|(i, s)| i < s);
                let got = &out[cell * elem..(cell + 1) * elem];
                if inside {
                    let mut src = 0;
                    for k in 0..shape.len() { src = src * shape[k] + idx[k]; }
                    prop_assert_eq!(got, &bytes[src * elem..(src + 1) * elem]);
                } else {
                    prop_assert_eq!(got, &fill[..]);
                }
            }
        }

        #[test]
        fn grown_shape_covers_both(a in proptest::collection::vec(0usize..10, 3), b in proptest::collection::vec(0usize..10, 3)) {
            let g = grow_shape(&a, &b);
            for k in 0..3 {
                prop_assert!(g[k] >= a[k] && g[k] >= b[k]);
                prop_assert!(g[k] == a[k] || g[k] == b[k]);
            }
        }

        #[test]
        fn fixed_sizes_are_checked(count in 0usize..50, size in 1usize..64, delta in -2i64..3) {
            let len = (count * size) as i64 + delta;
            prop_assume!(len >= 0);
            let bytes = vec![0u8; len as usize];
            prop_assert_eq!(check_fixed(count, &bytes, size).is_ok(), delta == 0);
        }
    }

    #[test]
    fn json_text_keeps_strings_bare() {
        assert_eq!(json_text(&serde_json::json!("abc")), "abc");
        assert_eq!(json_text(&serde_json::json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }
}
