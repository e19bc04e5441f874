//! Building and reading primitive metric values by type, with C's conversion rules (the
//! example samplers store one integer into a metric of any type: truncated to the type's
//! width, widened from signed types with sign extension, converted to floating point).

use pvloom_ldms::set::{MetricValue, ValueType};

/// C's `(uint64_t)` of a floating-point value as x86-64 compilers emit it: values below 2^63
/// go through the signed conversion (so negatives wrap), larger ones are offset by 2^63.
pub fn float_to_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() {
        1 << 63
    } else if x < TWO63 {
        x as i64 as u64
    } else {
        ((x - TWO63) as i64 as u64) ^ (1 << 63)
    }
}

/// The first element of a primitive value as a u64 (`ldms_mval_as_u64(.., 0)`): signed
/// types and `char` sign-extended, floats converted by [`float_to_u64`].
pub fn as_u64(v: &MetricValue) -> u64 {
    use MetricValue as V;
    fn first<T: Copy>(xs: &[T], f: impl Fn(T) -> u64) -> u64 {
        xs.first().map_or(0, |&x| f(x))
    }
    match v {
        V::Char(c) => *c as i8 as i64 as u64,
        V::U8(x) => *x as u64,
        V::S8(x) => *x as i64 as u64,
        V::U16(x) => *x as u64,
        V::S16(x) => *x as i64 as u64,
        V::U32(x) => *x as u64,
        V::S32(x) => *x as i64 as u64,
        V::U64(x) => *x,
        V::S64(x) => *x as u64,
        V::F32(x) => float_to_u64(*x as f64),
        V::D64(x) => float_to_u64(*x),
        V::CharArray(a) => first(a, |c| c as i8 as i64 as u64),
        V::U8Array(a) => first(a, |x| x as u64),
        V::S8Array(a) => first(a, |x| x as i64 as u64),
        V::U16Array(a) => first(a, |x| x as u64),
        V::S16Array(a) => first(a, |x| x as i64 as u64),
        V::U32Array(a) => first(a, |x| x as u64),
        V::S32Array(a) => first(a, |x| x as i64 as u64),
        V::U64Array(a) => first(a, |x| x),
        V::S64Array(a) => first(a, |x| x as u64),
        V::F32Array(a) => first(a, |x| float_to_u64(x as f64)),
        V::D64Array(a) => first(a, float_to_u64),
        _ => 0,
    }
}

/// `v` stored into a scalar of type `ty` (or of an array type's element type) by C
/// assignment: integers truncated, floats converted; `None` for non-primitive types.
pub fn int_scalar(ty: ValueType, v: u64) -> Option<MetricValue> {
    use MetricValue as V;
    use ValueType as T;
    Some(match ty.element() {
        T::Char => V::Char(v as u8),
        T::U8 => V::U8(v as u8),
        T::S8 => V::S8(v as i8),
        T::U16 => V::U16(v as u16),
        T::S16 => V::S16(v as i16),
        T::U32 => V::U32(v as u32),
        T::S32 => V::S32(v as i32),
        T::U64 => V::U64(v),
        T::S64 => V::S64(v as i64),
        T::F32 => V::F32(v as f32),
        T::D64 => V::D64(v as f64),
        _ => return None,
    })
}

/// `elem` (a scalar of `ty`'s element type) as a value of `ty`: itself for a scalar type,
/// repeated `count` times for an array type.
pub fn filled(ty: ValueType, count: usize, elem: &MetricValue) -> MetricValue {
    use MetricValue as V;
    match elem {
        V::Char(x) if ty.is_array() => V::CharArray(vec![*x; count]),
        V::U8(x) if ty.is_array() => V::U8Array(vec![*x; count]),
        V::S8(x) if ty.is_array() => V::S8Array(vec![*x; count]),
        V::U16(x) if ty.is_array() => V::U16Array(vec![*x; count]),
        V::S16(x) if ty.is_array() => V::S16Array(vec![*x; count]),
        V::U32(x) if ty.is_array() => V::U32Array(vec![*x; count]),
        V::S32(x) if ty.is_array() => V::S32Array(vec![*x; count]),
        V::U64(x) if ty.is_array() => V::U64Array(vec![*x; count]),
        V::S64(x) if ty.is_array() => V::S64Array(vec![*x; count]),
        V::F32(x) if ty.is_array() => V::F32Array(vec![*x; count]),
        V::D64(x) if ty.is_array() => V::D64Array(vec![*x; count]),
        v => v.clone(),
    }
}

/// A value of `ty` with `count` elements, element `i` computed by `f(i)` as an integer
/// (truncated like C assignment); floats come from `g(i)` instead.
pub fn per_element(
    ty: ValueType,
    count: usize,
    f: impl Fn(usize) -> i64,
    g: impl Fn(usize) -> f64,
) -> Option<MetricValue> {
    use MetricValue as V;
    use ValueType as T;
    let ints = |i| f(i) as u64;
    Some(match ty {
        T::CharArray => V::CharArray((0..count).map(|i| ints(i) as u8).collect()),
        T::U8Array => V::U8Array((0..count).map(|i| ints(i) as u8).collect()),
        T::S8Array => V::S8Array((0..count).map(|i| ints(i) as i8).collect()),
        T::U16Array => V::U16Array((0..count).map(|i| ints(i) as u16).collect()),
        T::S16Array => V::S16Array((0..count).map(|i| ints(i) as i16).collect()),
        T::U32Array => V::U32Array((0..count).map(|i| ints(i) as u32).collect()),
        T::S32Array => V::S32Array((0..count).map(|i| ints(i) as i32).collect()),
        T::U64Array => V::U64Array((0..count).map(ints).collect()),
        T::S64Array => V::S64Array((0..count).map(|i| ints(i) as i64).collect()),
        T::F32Array => V::F32Array((0..count).map(|i| g(i) as f32).collect()),
        T::D64Array => V::D64Array((0..count).map(g).collect()),
        t if t.is_primitive() && !t.is_array() => {
            if matches!(t, T::F32 | T::D64) {
                if t == T::F32 { V::F32(g(0) as f32) } else { V::D64(g(0)) }
            } else {
                int_scalar(t, f(0) as u64)?
            }
        }
        _ => return None,
    })
}

/// `snprintf(buf, n, "%s", text)` into a fresh `n`-byte char array (NUL-padded).
pub fn c_string(text: &str, n: usize) -> MetricValue {
    let mut b = vec![0u8; n];
    let k = text.len().min(n.saturating_sub(1));
    b[..k].copy_from_slice(&text.as_bytes()[..k]);
    MetricValue::CharArray(b)
}

/// A type name as `ldms_metric_str_to_type` knows it (`u64`, `u64[]`, `u64_array`, `list`,
/// `record`, ... case-insensitive); `record` is RECORD_INST as there.
pub fn type_by_name(name: &str) -> Option<ValueType> {
    use ValueType as T;
    let n = name.to_ascii_lowercase();
    let (base, array) = match n.strip_suffix("[]").or_else(|| n.strip_suffix("_array")) {
        Some(b) => (b.to_string(), true),
        None => (n.clone(), false),
    };
    let scalar = match base.as_str() {
        "char" => T::Char,
        "u8" => T::U8,
        "s8" => T::S8,
        "u16" => T::U16,
        "s16" => T::S16,
        "u32" => T::U32,
        "s32" => T::S32,
        "u64" => T::U64,
        "s64" => T::S64,
        "f32" => T::F32,
        "d64" => T::D64,
        "list" | "list<>" if !array => return Some(T::List),
        "record" => return Some(if array { T::RecordArray } else { T::RecordInst }),
        "record_type" if !array => return Some(T::RecordType),
        "timestamp" | "ts" if !array => return Some(T::Timestamp),
        _ => return None,
    };
    if array { scalar.array_of() } else { Some(scalar) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_conversions() {
        assert_eq!(as_u64(&MetricValue::S8(-1)).wrapping_add(1), 0);
        assert_eq!(as_u64(&MetricValue::F32(1000.5)), 1000);
        assert_eq!(as_u64(&MetricValue::D64(-3.5)), (-3i64) as u64);
        assert_eq!(int_scalar(ValueType::U8, 256), Some(MetricValue::U8(0)));
        assert_eq!(type_by_name("U8_ARRAY"), Some(ValueType::U8Array));
        assert_eq!(type_by_name("d64[]"), Some(ValueType::D64Array));
        assert_eq!(type_by_name("record"), Some(ValueType::RecordInst));
        assert_eq!(type_by_name("nope"), None);
        assert_eq!(c_string("a_12", 4), MetricValue::CharArray(b"a_1\0".to_vec()));
    }
}
