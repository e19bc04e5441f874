//! Bounds-checked big-endian reading and fixed-width text fields.

use bytes::BufMut;

use crate::proto::dbr::value::CaString;
use crate::proto::error::DbrError;

/// A cursor over a payload. Every read is bounds-checked and yields the
/// error given at construction when the payload runs out, so a lying
/// header can never cause a panic.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    short_error: DbrError,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], short_error: DbrError) -> Self {
        Reader { bytes, position: 0, short_error }
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], DbrError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.short_error.clone())?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DbrError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn skip_to(&mut self, position: usize) -> Result<(), DbrError> {
        if position < self.position {
            return Ok(());
        }
        self.take(position - self.position).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DbrError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DbrError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DbrError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DbrError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DbrError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn f32(&mut self) -> Result<f32, DbrError> {
        Ok(f32::from_be_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DbrError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// A fixed-width text field read up to its first NUL, or its full width
    /// when there is none (units and enum strings written by some servers fill
    /// the field completely).
    pub(crate) fn lenient_text(&mut self, width: usize) -> Result<CaString, DbrError> {
        let field = self.take(width)?;
        let end = field.iter().position(|&b| b == 0).unwrap_or(width);
        Ok(CaString::new(&field[..end]))
    }
}

/// Extracts a NUL-terminated string from a fixed-width field.
pub(crate) fn terminated_text(field: &[u8], name: &'static str) -> Result<CaString, DbrError> {
    let end = field.iter().position(|&b| b == 0).ok_or(DbrError::StringNotTerminated { field: name })?;
    Ok(CaString::new(&field[..end]))
}

/// Writes `text` NUL-padded into a field of `width` bytes, keeping room for the NUL.
pub(crate) fn put_text<B: BufMut>(
    buf: &mut B,
    text: &CaString,
    width: usize,
    name: &'static str,
) -> Result<(), DbrError> {
    check_text(text, width, name)?;
    buf.put_slice(text.as_bytes());
    buf.put_bytes(0, width - text.len());
    Ok(())
}

/// Verifies `text` fits a `width`-byte field with its NUL and contains none itself.
pub(crate) fn check_text(text: &CaString, width: usize, name: &'static str) -> Result<(), DbrError> {
    if text.len() >= width {
        return Err(DbrError::StringTooLong { field: name, len: text.len(), max: width - 1 });
    }
    if text.as_bytes().contains(&0) {
        return Err(DbrError::NulInString { field: name });
    }
    Ok(())
}
