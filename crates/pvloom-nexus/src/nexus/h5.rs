//! A thin, owning layer over the HDF5 C library: handles that close themselves, and calls
//! that turn HDF5's error stack (with its errno) into [`NexusError`].
//!
//! HDF5 (Debian's serial build) is not thread-safe: every call goes through [`lock`].

use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::ptr;

use hdf5_metno_sys::h5::{H5open, herr_t, hsize_t};
use hdf5_metno_sys::h5a::{H5Acreate2, H5Adelete, H5Aexists, H5Awrite};
use hdf5_metno_sys::h5d::{H5Dcreate2, H5Dflush, H5Dget_space, H5Dget_type, H5Dopen2, H5Dset_extent, H5Dwrite};
use hdf5_metno_sys::h5e::{H5E_DEFAULT, H5E_WALK_DOWNWARD, H5E_error2_t, H5Eclear2, H5Eset_auto2, H5Ewalk2};
use hdf5_metno_sys::h5f::{
    H5F_ACC_RDWR, H5F_ACC_TRUNC, H5F_LIBVER_LATEST, H5F_SCOPE_GLOBAL, H5Fclose, H5Fcreate, H5Fflush, H5Fopen,
    H5Fstart_swmr_write,
};
use hdf5_metno_sys::h5g::{H5Gcreate2, H5Gopen2};
use hdf5_metno_sys::h5i::{H5Idec_ref, hid_t};
use hdf5_metno_sys::h5l::{H5Lcreate_external, H5Lcreate_soft, H5Ldelete, H5Lexists};
use hdf5_metno_sys::h5p::{
    H5P_CLS_DATASET_CREATE, H5P_CLS_FILE_ACCESS, H5P_CLS_LINK_CREATE, H5P_DEFAULT, H5Pcreate, H5Pset_chunk,
    H5Pset_create_intermediate_group, H5Pset_external, H5Pset_fill_value, H5Pset_libver_bounds,
};
use hdf5_metno_sys::h5s::{
    H5S_ALL, H5S_SCALAR, H5S_SELECT_SET, H5S_UNLIMITED, H5Screate, H5Screate_simple, H5Sselect_hyperslab,
};
use hdf5_metno_sys::h5t::{
    H5T_C_S1, H5T_CSET_UTF8, H5T_STR_NULLPAD, H5T_VARIABLE, H5T_class_t, H5Tcopy, H5Tget_class, H5Tset_cset,
    H5Tset_size, H5Tset_strpad,
};
use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

use super::error::NexusError;

static LOCK: ReentrantMutex<()> = ReentrantMutex::new(());

/// Serialises HDF5 calls within the process; also initialises the library once.
pub(crate) fn lock() -> ReentrantMutexGuard<'static, ()> {
    let guard = LOCK.lock();
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| unsafe {
        H5open();
        // Errors come back as values; the automatic stderr printer stays off.
        H5Eset_auto2(H5E_DEFAULT, None, ptr::null_mut());
    });
    guard
}

/// An HDF5 identifier this process owns; dropping it releases the reference.
#[derive(Debug)]
pub(crate) struct Id(hid_t);

impl Id {
    /// Takes ownership of a valid identifier.
    pub(crate) fn from_raw(raw: hid_t) -> Id {
        Id(raw)
    }

    pub(crate) fn raw(&self) -> hid_t {
        self.0
    }
}

impl Drop for Id {
    fn drop(&mut self) {
        let _guard = lock();
        unsafe {
            H5Idec_ref(self.0);
        }
    }
}

unsafe extern "C" fn collect(_n: c_uint, err: *const H5E_error2_t, data: *mut c_void) -> herr_t {
    let out = unsafe { &mut *(data as *mut Vec<String>) };
    let err = unsafe { &*err };
    let text = |p: *const c_char| {
        if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() }
    };
    out.push(format!("{}: {}", text(err.func_name), text(err.desc).replace('\n', " ").trim_end()));
    0
}

/// The error for a failed call named `op`, from HDF5's current error stack.
pub(crate) fn error(op: &str) -> NexusError {
    let mut lines: Vec<String> = Vec::new();
    unsafe {
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, Some(collect), &mut lines as *mut _ as *mut c_void);
        H5Eclear2(H5E_DEFAULT);
    }
    let summary = lines.first().cloned().unwrap_or_else(|| "no HDF5 error stack".into());
    let detail = lines.join("; ");
    let os = os_cause(&detail).map(std::io::Error::from_raw_os_error);
    NexusError::Hdf5 { op: op.to_owned(), summary, detail, os }
}

/// HDF5 writes an OS failure as `errno = 27, error message = 'File too large'`.
pub(crate) fn os_cause(detail: &str) -> Option<i32> {
    let at = detail.find("errno = ")? + "errno = ".len();
    let digits: String = detail[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn id(raw: hid_t, op: &str) -> Result<Id, NexusError> {
    if raw < 0 { Err(error(op)) } else { Ok(Id(raw)) }
}

fn check(status: herr_t, op: &str) -> Result<(), NexusError> {
    if status < 0 { Err(error(op)) } else { Ok(()) }
}

pub(crate) fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

fn fapl_latest() -> Result<Id, NexusError> {
    let fapl = id(unsafe { H5Pcreate(*H5P_CLS_FILE_ACCESS) }, "H5Pcreate(fapl)")?;
    check(unsafe { H5Pset_libver_bounds(fapl.raw(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) }, "H5Pset_libver_bounds")?;
    Ok(fapl)
}

/// Creates (truncating) or opens a file read-write, with the latest format (SWMR needs it).
pub(crate) fn open_file(path: &std::path::Path, create: bool) -> Result<Id, NexusError> {
    let fapl = fapl_latest()?;
    let name = cstr(&path.to_string_lossy());
    let raw = unsafe {
        if create {
            H5Fcreate(name.as_ptr(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.raw())
        } else {
            H5Fopen(name.as_ptr(), H5F_ACC_RDWR, fapl.raw())
        }
    };
    id(raw, if create { "H5Fcreate" } else { "H5Fopen" })
}

pub(crate) fn start_swmr(file: &Id) -> Result<(), NexusError> {
    check(unsafe { H5Fstart_swmr_write(file.raw()) }, "H5Fstart_swmr_write")
}

pub(crate) fn flush(file: &Id) -> Result<(), NexusError> {
    check(unsafe { H5Fflush(file.raw(), H5F_SCOPE_GLOBAL) }, "H5Fflush")
}

pub(crate) fn flush_dataset(dset: &Id) -> Result<(), NexusError> {
    check(unsafe { H5Dflush(dset.raw()) }, "H5Dflush")
}

/// Closes a file now (rather than at drop), reporting a failure.
pub(crate) fn close_file(file: Id) -> Result<(), NexusError> {
    let raw = file.0;
    std::mem::forget(file);
    check(unsafe { H5Fclose(raw) }, "H5Fclose")
}

pub(crate) fn exists(loc: &Id, name: &str) -> bool {
    let n = cstr(name);
    unsafe { H5Lexists(loc.raw(), n.as_ptr(), H5P_DEFAULT) > 0 }
}

pub(crate) fn create_group(loc: &Id, name: &str) -> Result<Id, NexusError> {
    let n = cstr(name);
    id(
        unsafe { H5Gcreate2(loc.raw(), n.as_ptr(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Gcreate2({name})"),
    )
}

pub(crate) fn open_group(loc: &Id, name: &str) -> Result<Id, NexusError> {
    let n = cstr(name);
    id(unsafe { H5Gopen2(loc.raw(), n.as_ptr(), H5P_DEFAULT) }, &format!("H5Gopen2({name})"))
}

/// A soft link `name` in `loc` to the absolute path `target`.
pub(crate) fn soft_link(loc: &Id, name: &str, target: &str) -> Result<(), NexusError> {
    let (n, t) = (cstr(name), cstr(target));
    let lcpl = id(unsafe { H5Pcreate(*H5P_CLS_LINK_CREATE) }, "H5Pcreate(lcpl)")?;
    unsafe { H5Pset_create_intermediate_group(lcpl.raw(), 1) };
    check(
        unsafe { H5Lcreate_soft(t.as_ptr(), loc.raw(), n.as_ptr(), lcpl.raw(), H5P_DEFAULT) },
        &format!("H5Lcreate_soft({name})"),
    )
}

/// A soft link `name` in `loc` to `target` (as given: absolute or relative), no
/// intermediate groups.
pub(crate) fn soft_link_plain(loc: &Id, name: &str, target: &str) -> Result<(), NexusError> {
    let (n, t) = (cstr(name), cstr(target));
    check(
        unsafe { H5Lcreate_soft(t.as_ptr(), loc.raw(), n.as_ptr(), H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Lcreate_soft({name})"),
    )
}

/// An external link `name` in `loc` to `target` in the file `file`.
pub(crate) fn external_link(loc: &Id, name: &str, file: &str, target: &str) -> Result<(), NexusError> {
    let (n, f, t) = (cstr(name), cstr(file), cstr(target));
    check(
        unsafe { H5Lcreate_external(f.as_ptr(), t.as_ptr(), loc.raw(), n.as_ptr(), H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Lcreate_external({name})"),
    )
}

/// Removes the link `name` from `loc` (the object goes with its last link).
pub(crate) fn delete_link(loc: &Id, name: &str) -> Result<(), NexusError> {
    let n = cstr(name);
    check(unsafe { H5Ldelete(loc.raw(), n.as_ptr(), H5P_DEFAULT) }, &format!("H5Ldelete({name})"))
}

/// Removes the attribute `name` of `loc`, if it has one.
pub(crate) fn delete_attr(loc: &Id, name: &str) -> Result<(), NexusError> {
    let n = cstr(name);
    unsafe {
        if H5Aexists(loc.raw(), n.as_ptr()) > 0 {
            check(H5Adelete(loc.raw(), n.as_ptr()), &format!("H5Adelete({name})"))?;
        }
    }
    Ok(())
}

/// True if `loc` has the attribute `name`.
pub(crate) fn attr_exists(loc: &Id, name: &str) -> bool {
    let n = cstr(name);
    unsafe { H5Aexists(loc.raw(), n.as_ptr()) > 0 }
}

/// A dataset of type `t` and shape `dims` whose raw data is in files outside HDF5:
/// `(name, offset, size)` each, size `None` to the file's end.
pub(crate) fn dataset_external(
    loc: &Id,
    name: &str,
    t: &Id,
    dims: &[u64],
    files: &[(String, u64, Option<u64>)],
) -> Result<Id, NexusError> {
    let n = cstr(name);
    let space = simple_space(dims, None)?;
    let dcpl = id(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, "H5Pcreate(dcpl)")?;
    for (file, offset, size) in files {
        let f = cstr(file);
        let offset = i64::try_from(*offset).map_err(|_| NexusError::Event(format!("offset {offset} too large")))?;
        let size = size.unwrap_or(hdf5_metno_sys::h5f::H5F_UNLIMITED);
        check(
            unsafe { H5Pset_external(dcpl.raw(), f.as_ptr(), offset as _, size) },
            &format!("H5Pset_external({file})"),
        )?;
    }
    id(
        unsafe { H5Dcreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, dcpl.raw(), H5P_DEFAULT) },
        &format!("H5Dcreate2({name})"),
    )
}

/// A hyperslab selection (`stride`/`block` default to ones).
pub(crate) struct Hyperslab {
    pub start: Vec<u64>,
    pub stride: Option<Vec<u64>>,
    pub count: Vec<u64>,
    pub block: Option<Vec<u64>>,
}

/// One mapping of a virtual dataset: `vspace` of it from `src` of `file`'s `dataset`.
pub(crate) struct VirtualSource {
    pub vspace: Hyperslab,
    pub file: String,
    pub dataset: String,
    pub src_extent: Vec<u64>,
    pub src: Hyperslab,
}

fn select(space: &Id, h: &Hyperslab) -> Result<(), NexusError> {
    let opt = |v: &Option<Vec<u64>>| v.as_ref().map_or(ptr::null(), |v| v.as_ptr());
    check(
        unsafe {
            H5Sselect_hyperslab(
                space.raw(),
                H5S_SELECT_SET,
                h.start.as_ptr(),
                opt(&h.stride),
                h.count.as_ptr(),
                opt(&h.block),
            )
        },
        "H5Sselect_hyperslab",
    )
}

/// A virtual dataset of type `t` and shape `dims` over `sources`.
pub(crate) fn dataset_virtual(
    loc: &Id,
    name: &str,
    t: &Id,
    dims: &[u64],
    sources: &[VirtualSource],
) -> Result<Id, NexusError> {
    let n = cstr(name);
    let space = simple_space(dims, None)?;
    let dcpl = id(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, "H5Pcreate(dcpl)")?;
    for s in sources {
        let vspace = simple_space(dims, None)?;
        select(&vspace, &s.vspace)?;
        let src = simple_space(&s.src_extent, None)?;
        select(&src, &s.src)?;
        let (f, d) = (cstr(&s.file), cstr(&s.dataset));
        check(
            unsafe { hdf5_metno_sys::h5p::H5Pset_virtual(dcpl.raw(), vspace.raw(), f.as_ptr(), d.as_ptr(), src.raw()) },
            &format!("H5Pset_virtual({}::{})", s.file, s.dataset),
        )?;
    }
    id(
        unsafe { H5Dcreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, dcpl.raw(), H5P_DEFAULT) },
        &format!("H5Dcreate2({name})"),
    )
}

/// A compound type of `size` bytes with these members (name, byte offset, type).
pub(crate) fn compound_type(size: usize, members: &[(&str, usize, &Id)]) -> Result<Id, NexusError> {
    use hdf5_metno_sys::h5t::{H5Tcreate, H5Tinsert};
    let t = id(unsafe { H5Tcreate(H5T_class_t::H5T_COMPOUND, size) }, "H5Tcreate(compound)")?;
    for (name, offset, member) in members {
        let n = cstr(name);
        check(unsafe { H5Tinsert(t.raw(), n.as_ptr(), *offset, member.raw()) }, &format!("H5Tinsert({name})"))?;
    }
    Ok(t)
}

/// The native long double (numpy's `float128` as h5py writes it), or its `r`/`i` complex.
pub(crate) fn long_double_type(complex: bool) -> Result<Id, NexusError> {
    let t = id(unsafe { H5Tcopy(*hdf5_metno_sys::h5t::H5T_NATIVE_LDOUBLE) }, "H5Tcopy(ldouble)")?;
    if !complex {
        return Ok(t);
    }
    let size = unsafe { hdf5_metno_sys::h5t::H5Tget_size(t.raw()) };
    compound_type(2 * size, &[("r", 0, &t), ("i", size, &t)])
}

/// The variable-length UTF-8 string type.
pub(crate) fn vlen_str() -> Result<Id, NexusError> {
    let t = id(unsafe { H5Tcopy(*H5T_C_S1) }, "H5Tcopy")?;
    check(unsafe { H5Tset_size(t.raw(), H5T_VARIABLE) }, "H5Tset_size")?;
    check(unsafe { H5Tset_cset(t.raw(), H5T_CSET_UTF8) }, "H5Tset_cset")?;
    Ok(t)
}

/// Bytes of the strings rewritten in place at the end (`end_time`, `end_reason`, string
/// positions in `instrument/positioners`). They
/// are fixed-size: a variable-length string rewritten in place moves to a new global heap
/// object, and a SWMR reader holding the file open then fails to read it ("bad heap index").
pub(crate) const REWRITABLE_STR: usize = 512;

fn fixed_str() -> Result<Id, NexusError> {
    let t = id(unsafe { H5Tcopy(*H5T_C_S1) }, "H5Tcopy")?;
    check(unsafe { H5Tset_size(t.raw(), REWRITABLE_STR) }, "H5Tset_size")?;
    check(unsafe { H5Tset_strpad(t.raw(), H5T_STR_NULLPAD) }, "H5Tset_strpad")?;
    check(unsafe { H5Tset_cset(t.raw(), H5T_CSET_UTF8) }, "H5Tset_cset")?;
    Ok(t)
}

/// `value` NUL-padded to [`REWRITABLE_STR`] bytes, cut at a character boundary if longer.
fn padded(value: &str) -> Vec<u8> {
    let mut end = value.len().min(REWRITABLE_STR);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = value.as_bytes()[..end].to_vec();
    bytes.resize(REWRITABLE_STR, 0);
    bytes
}

/// A scalar fixed-size UTF-8 string dataset that can be rewritten while SWMR readers follow.
pub(crate) fn dataset_rewritable_str(loc: &Id, name: &str, value: &str) -> Result<Id, NexusError> {
    dataset_raw(loc, name, &fixed_str()?, &[], &padded(value))
}

/// Rewrites a dataset made by [`dataset_rewritable_str`].
pub(crate) fn rewrite_rewritable_str(loc: &Id, name: &str, value: &str) -> Result<(), NexusError> {
    rewrite_raw(loc, name, &fixed_str()?, &padded(value))
}

fn simple_space(dims: &[u64], max: Option<&[u64]>) -> Result<Id, NexusError> {
    if dims.is_empty() {
        return id(unsafe { H5Screate(H5S_SCALAR) }, "H5Screate");
    }
    let max_ptr = max.map_or(ptr::null(), |m| m.as_ptr());
    id(unsafe { H5Screate_simple(dims.len() as i32, dims.as_ptr(), max_ptr) }, "H5Screate_simple")
}

/// Writes a string attribute (variable-length UTF-8), replacing any existing one.
pub(crate) fn attr_str(loc: &Id, name: &str, value: &str) -> Result<(), NexusError> {
    attr_strs(loc, name, &[value], true)
}

/// Writes a string attribute; `scalar` false makes it a 1-D array.
pub(crate) fn attr_strs(loc: &Id, name: &str, values: &[&str], scalar: bool) -> Result<(), NexusError> {
    let n = cstr(name);
    unsafe {
        if H5Aexists(loc.raw(), n.as_ptr()) > 0 {
            check(H5Adelete(loc.raw(), n.as_ptr()), "H5Adelete")?;
        }
    }
    let t = vlen_str()?;
    let space = if scalar { simple_space(&[], None)? } else { simple_space(&[values.len() as u64], None)? };
    let a = id(
        unsafe { H5Acreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Acreate2({name})"),
    )?;
    let owned: Vec<CString> = values.iter().map(|v| cstr(v)).collect();
    let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    check(unsafe { H5Awrite(a.raw(), t.raw(), ptrs.as_ptr() as *const c_void) }, &format!("H5Awrite({name})"))
}

/// Writes a numeric attribute of type `t` from raw bytes (one element per `values` entry).
pub(crate) fn attr_raw(loc: &Id, name: &str, t: &Id, bytes: &[u8], dims: &[u64]) -> Result<(), NexusError> {
    let n = cstr(name);
    unsafe {
        if H5Aexists(loc.raw(), n.as_ptr()) > 0 {
            check(H5Adelete(loc.raw(), n.as_ptr()), "H5Adelete")?;
        }
    }
    let space = simple_space(dims, None)?;
    let a = id(
        unsafe { H5Acreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Acreate2({name})"),
    )?;
    check(unsafe { H5Awrite(a.raw(), t.raw(), bytes.as_ptr() as *const c_void) }, &format!("H5Awrite({name})"))
}

/// A scalar string dataset.
pub(crate) fn dataset_str(loc: &Id, name: &str, value: &str) -> Result<Id, NexusError> {
    let n = cstr(name);
    let t = vlen_str()?;
    let space = simple_space(&[], None)?;
    let d = id(
        unsafe { H5Dcreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Dcreate2({name})"),
    )?;
    let c = cstr(value);
    let p: *const c_char = c.as_ptr();
    check(
        unsafe { H5Dwrite(d.raw(), t.raw(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p as *const _ as *const c_void) },
        &format!("H5Dwrite({name})"),
    )?;
    Ok(d)
}

/// A fixed-size dataset of type `t` with these bytes.
pub(crate) fn dataset_raw(loc: &Id, name: &str, t: &Id, dims: &[u64], bytes: &[u8]) -> Result<Id, NexusError> {
    let n = cstr(name);
    let space = simple_space(dims, None)?;
    let d = id(
        unsafe { H5Dcreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) },
        &format!("H5Dcreate2({name})"),
    )?;
    // An empty array (a `[0]` shape) has nothing to write.
    if !bytes.is_empty() {
        check(
            unsafe { H5Dwrite(d.raw(), t.raw(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.as_ptr() as *const c_void) },
            &format!("H5Dwrite({name})"),
        )?;
    }
    Ok(d)
}

/// An empty, chunked dataset, unlimited along every axis (axis 0 is the point axis), with
/// an optional fill value (bytes of one element of `t`).
pub(crate) fn dataset_extendable(
    loc: &Id,
    name: &str,
    t: &Id,
    dims: &[u64],
    chunk: &[u64],
    fill: Option<&[u8]>,
) -> Result<Id, NexusError> {
    let n = cstr(name);
    let max = vec![H5S_UNLIMITED; dims.len()];
    let space = simple_space(dims, Some(&max))?;
    let dcpl = id(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, "H5Pcreate(dcpl)")?;
    check(unsafe { H5Pset_chunk(dcpl.raw(), chunk.len() as i32, chunk.as_ptr()) }, "H5Pset_chunk")?;
    if let Some(fill) = fill {
        check(unsafe { H5Pset_fill_value(dcpl.raw(), t.raw(), fill.as_ptr() as *const c_void) }, "H5Pset_fill_value")?;
    }
    id(
        unsafe { H5Dcreate2(loc.raw(), n.as_ptr(), t.raw(), space.raw(), H5P_DEFAULT, dcpl.raw(), H5P_DEFAULT) },
        &format!("H5Dcreate2({name})"),
    )
}

pub(crate) fn open_dataset(loc: &Id, name: &str) -> Result<Id, NexusError> {
    let n = cstr(name);
    id(unsafe { H5Dopen2(loc.raw(), n.as_ptr(), H5P_DEFAULT) }, &format!("H5Dopen2({name})"))
}

/// True if the existing dataset `name` holds strings (of any kind).
pub(crate) fn is_string_dataset(loc: &Id, name: &str) -> Result<bool, NexusError> {
    let d = open_dataset(loc, name)?;
    let t = id(unsafe { H5Dget_type(d.raw()) }, &format!("H5Dget_type({name})"))?;
    Ok(unsafe { H5Tget_class(t.raw()) } == H5T_class_t::H5T_STRING)
}

/// Overwrites the existing scalar dataset `name` with bytes of type `t`.
pub(crate) fn rewrite_raw(loc: &Id, name: &str, t: &Id, bytes: &[u8]) -> Result<(), NexusError> {
    let d = open_dataset(loc, name)?;
    check(
        unsafe { H5Dwrite(d.raw(), t.raw(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.as_ptr() as *const c_void) },
        &format!("H5Dwrite({name})"),
    )
}

pub(crate) fn set_extent(dset: &Id, dims: &[u64]) -> Result<(), NexusError> {
    check(unsafe { H5Dset_extent(dset.raw(), dims.as_ptr()) }, "H5Dset_extent")
}

/// Writes `buf` (elements of memory type `t`, C-order over `count`) into the block of
/// `dset` that starts at `start`.
pub(crate) fn write_block(
    dset: &Id,
    t: &Id,
    start: &[u64],
    count: &[u64],
    buf: *const c_void,
) -> Result<(), NexusError> {
    let file_space = id(unsafe { H5Dget_space(dset.raw()) }, "H5Dget_space")?;
    let zero: *const hsize_t = ptr::null();
    check(
        unsafe { H5Sselect_hyperslab(file_space.raw(), H5S_SELECT_SET, start.as_ptr(), zero, count.as_ptr(), zero) },
        "H5Sselect_hyperslab",
    )?;
    let mem_space = simple_space(count, None)?;
    check(unsafe { H5Dwrite(dset.raw(), t.raw(), mem_space.raw(), file_space.raw(), H5P_DEFAULT, buf) }, "H5Dwrite")
}

/// The HDF5 library's version, `1.10.8`.
pub(crate) fn lib_version() -> String {
    let (mut a, mut b, mut c) = (0, 0, 0);
    unsafe { hdf5_metno_sys::h5::H5get_libversion(&mut a, &mut b, &mut c) };
    format!("{a}.{b}.{c}")
}

#[cfg(test)]
mod tests {
    use super::os_cause;

    #[test]
    fn os_cause_is_read_from_the_stack_text() {
        let text =
            "H5FD__sec2_write: file write failed: time = x, errno = 28, error message = 'No space left on device'";
        assert_eq!(os_cause(text), Some(28));
        assert_eq!(os_cause("H5Dwrite: can't write data"), None);
    }
}
