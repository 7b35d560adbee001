//! The only way host code touches guest memory: a bounds-checked view.
//!
//! A (pointer, length) that overflows or leaves linear memory is an error — never a clamp
//! (browser_wasi_shim's `Uint8Array.slice` clamps silently; wiggle's `GuestPtr` does not).

use crate::error::{Error, ErrorCode, TrapCode};

/// A bounds-checked view of one guest's linear memory, lent to a host function for the
/// duration of one host call.
pub struct GuestMemory<'a> {
    data: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    pub(crate) fn new(data: &'a mut [u8]) -> Self {
        Self { data }
    }

    /// A view of a guest without memory: every access is out of bounds.
    pub fn empty() -> GuestMemory<'static> {
        GuestMemory { data: &mut [] }
    }

    /// The memory's current size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    fn range(&self, ptr: u32, len: u32) -> Result<core::ops::Range<usize>, Error> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize);
        match end {
            Some(end) if end <= self.data.len() => Ok(start..end),
            _ => Err(out_of_bounds(ptr, len, self.data.len())),
        }
    }

    /// The `len` bytes at `ptr`.
    ///
    /// # Errors
    ///
    /// `TRAP` (`memory_out_of_bounds`) if any of them is outside the memory.
    pub fn read(&self, ptr: u32, len: u32) -> Result<&[u8], Error> {
        let r = self.range(ptr, len)?;
        Ok(&self.data[r])
    }

    /// Copies `bytes` to `ptr`, all or nothing.
    ///
    /// # Errors
    ///
    /// `TRAP` (`memory_out_of_bounds`) if the range leaves the memory; nothing is written.
    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| out_of_bounds(ptr, u32::MAX, self.data.len()))?;
        let r = self.range(ptr, len)?;
        self.data[r].copy_from_slice(bytes);
        Ok(())
    }

    /// The UTF-8 string of `len` bytes at `ptr`.
    ///
    /// # Errors
    ///
    /// `TRAP` if out of bounds; `INVALID_ARGUMENT` if the bytes are not UTF-8.
    pub fn read_str(&self, ptr: u32, len: u32) -> Result<&str, Error> {
        let bytes = self.read(ptr, len)?;
        core::str::from_utf8(bytes).map_err(|e| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("guest string at {ptr} (len {len}) is not valid UTF-8: {e}"),
            )
        })
    }

    /// The little-endian `u32` at `ptr`.
    ///
    /// # Errors
    ///
    /// `TRAP` if out of bounds.
    pub fn read_u32(&self, ptr: u32) -> Result<u32, Error> {
        let b = self.read(ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes a little-endian `u32` at `ptr`.
    ///
    /// # Errors
    ///
    /// `TRAP` if out of bounds.
    pub fn write_u32(&mut self, ptr: u32, value: u32) -> Result<(), Error> {
        self.write(ptr, &value.to_le_bytes())
    }
}

pub(crate) fn out_of_bounds(ptr: u32, len: u32, size: usize) -> Error {
    Error::trap(
        TrapCode::MemoryOutOfBounds,
        format!("guest range ptr={ptr} len={len} is outside linear memory of {size} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_bounds_reads_and_writes() {
        let mut buf = vec![0u8; 16];
        let mut m = GuestMemory::new(&mut buf);
        m.write(12, b"abcd").expect("fits exactly");
        assert_eq!(m.read(12, 4).expect("read"), b"abcd");
        assert_eq!(m.read(16, 0).expect("empty range at the end"), b"");
        m.write_u32(0, 0xdead_beef).expect("u32");
        assert_eq!(m.read_u32(0).expect("u32"), 0xdead_beef);
    }

    #[test]
    fn out_of_bounds_is_an_error_never_a_clamp() {
        let mut buf = vec![7u8; 16];
        let mut m = GuestMemory::new(&mut buf);
        for (ptr, len) in [
            (13, 4),
            (16, 1),
            (u32::MAX, 1),
            (1, u32::MAX),
            (u32::MAX, u32::MAX),
        ] {
            let e = m.read(ptr, len).expect_err("oob read");
            assert_eq!(e.code(), ErrorCode::Trap);
            assert_eq!(e.details().trap_code, Some(TrapCode::MemoryOutOfBounds));
        }
        assert!(m.write(14, b"xyz").is_err());
        assert_eq!(buf, vec![7u8; 16], "a failed write writes nothing");
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut buf = vec![0xff, 0xfe];
        let m = GuestMemory::new(&mut buf);
        assert_eq!(
            m.read_str(0, 2).expect_err("not utf-8").code(),
            ErrorCode::InvalidArgument
        );
    }
}
