//! numpy dtypes as HDF5 types, byte order kept: the file stores a stream's elements exactly
//! as the source sent them (big-endian stays big-endian), so writes need no conversion.

use std::ffi::c_void;

use hdf5_metno_sys::h5i::hid_t;
use hdf5_metno_sys::h5t::*;

use super::error::NexusError;
use super::h5::{Id, cstr, error};
use crate::model::{ByteOrder, Dtype, ElementType};

fn copy(t: hid_t) -> Result<Id, NexusError> {
    let raw = unsafe { H5Tcopy(t) };
    if raw < 0 { Err(error("H5Tcopy")) } else { Ok(Id::from_raw(raw)) }
}

/// The HDF5 type of `dtype`, as h5py maps numpy dtypes (bool as the `FALSE`/`TRUE` enum,
/// complex as the `r`/`i` compound, half floats as a 16-bit IEEE float).
pub(crate) fn h5_type(dtype: Dtype) -> Result<Id, NexusError> {
    let big = dtype.order == ByteOrder::Big;
    let pick = |le: hid_t, be: hid_t| if big { be } else { le };
    use ElementType::*;
    Ok(match dtype.element {
        I8 => copy(*H5T_STD_I8LE)?,
        U8 => copy(*H5T_STD_U8LE)?,
        I16 => copy(pick(*H5T_STD_I16LE, *H5T_STD_I16BE))?,
        I32 => copy(pick(*H5T_STD_I32LE, *H5T_STD_I32BE))?,
        I64 => copy(pick(*H5T_STD_I64LE, *H5T_STD_I64BE))?,
        U16 => copy(pick(*H5T_STD_U16LE, *H5T_STD_U16BE))?,
        U32 => copy(pick(*H5T_STD_U32LE, *H5T_STD_U32BE))?,
        U64 => copy(pick(*H5T_STD_U64LE, *H5T_STD_U64BE))?,
        F32 => copy(pick(*H5T_IEEE_F32LE, *H5T_IEEE_F32BE))?,
        F64 => copy(pick(*H5T_IEEE_F64LE, *H5T_IEEE_F64BE))?,
        F16 => {
            let t = copy(pick(*H5T_IEEE_F32LE, *H5T_IEEE_F32BE))?;
            unsafe {
                if H5Tset_fields(t.raw(), 15, 10, 5, 0, 10) < 0
                    || H5Tset_size(t.raw(), 2) < 0
                    || H5Tset_ebias(t.raw(), 15) < 0
                {
                    return Err(error("H5Tset_fields(f2)"));
                }
            }
            t
        }
        Bool => {
            let base = copy(*H5T_STD_I8LE)?;
            let raw = unsafe { H5Tenum_create(base.raw()) };
            if raw < 0 {
                return Err(error("H5Tenum_create"));
            }
            let t = Id::from_raw(raw);
            for (name, value) in [("FALSE", 0i8), ("TRUE", 1i8)] {
                let n = cstr(name);
                if unsafe { H5Tenum_insert(t.raw(), n.as_ptr(), &value as *const i8 as *const c_void) } < 0 {
                    return Err(error("H5Tenum_insert"));
                }
            }
            t
        }
        C64 | C128 => {
            let (part, size) = match dtype.element {
                C64 => (pick(*H5T_IEEE_F32LE, *H5T_IEEE_F32BE), 4),
                _ => (pick(*H5T_IEEE_F64LE, *H5T_IEEE_F64BE), 8),
            };
            let raw = unsafe { H5Tcreate(H5T_class_t::H5T_COMPOUND, 2 * size) };
            if raw < 0 {
                return Err(error("H5Tcreate(complex)"));
            }
            let t = Id::from_raw(raw);
            for (name, offset) in [("r", 0), ("i", size)] {
                let n = cstr(name);
                if unsafe { H5Tinsert(t.raw(), n.as_ptr(), offset, part) } < 0 {
                    return Err(error("H5Tinsert"));
                }
            }
            t
        }
    })
}

/// The fill value of padded (variable-shape) datasets: NaN for floats, 0 otherwise; in the
/// dtype's byte order.
pub(crate) fn fill_value(dtype: Dtype) -> Vec<u8> {
    let big = dtype.order == ByteOrder::Big;
    let order = |mut b: Vec<u8>| {
        if big {
            b.reverse();
        }
        b
    };
    match dtype.element {
        ElementType::F16 => order(0x7e00u16.to_le_bytes().to_vec()),
        ElementType::F32 => order(f32::NAN.to_le_bytes().to_vec()),
        ElementType::F64 => order(f64::NAN.to_le_bytes().to_vec()),
        ElementType::C64 => {
            let mut v = order(f32::NAN.to_le_bytes().to_vec());
            v.extend_from_within(..);
            v
        }
        ElementType::C128 => {
            let mut v = order(f64::NAN.to_le_bytes().to_vec());
            v.extend_from_within(..);
            v
        }
        e => vec![0; e.size()],
    }
}
