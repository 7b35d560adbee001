//! The checked view WASI functions use to touch guest memory.
//!
//! It wraps [`GuestMemory`] (every access bounds-checked, never clamped) and turns an
//! out-of-bounds (pointer, length) into the errno `EFAULT` for the guest. That is a choice:
//! the preview1 documents say a function given an out-of-bounds pointer "shall trap", and
//! wasmtime traps. nestbox answers `EFAULT` because the host is safe either way (nothing is
//! read or written outside the guest's memory), while an errno reaches the guest's own error
//! handling (Rust's `io::Error`, C's `errno`, Go's `error`), so the program can report what
//! went wrong on its stderr, which the caller keeps. It adds the fixed-width little-endian
//! accessors and the iovec reader the syscalls need, with checked arithmetic on every guest
//! offset.
//!
//! The same syscalls serve both tiers, over one of two backends:
//! - the interpreter's: wasmi's memory lent as a `&mut [u8]` for the call, read in place
//!   (a read borrows, nothing is copied);
//! - the native tier's (feature `native-tier`, wasm32 only): the guest's JS
//!   `WebAssembly.Memory`, whose bytes are not nestbox's own. Its `buffer` is taken once per
//!   WASI call (the guest cannot grow its memory while a syscall runs; after a growth the old
//!   buffer is detached, so a later call takes the new one), and exactly the ranges a syscall
//!   reads or writes are copied, after the same bounds check.

use std::borrow::Cow;

use wasip1::{ERRNO_FAULT, ERRNO_ILSEQ, ERRNO_INVAL, ERRNO_NAMETOOLONG, Errno};

use crate::memory::GuestMemory;

/// Most iovecs one call may pass, as Linux's `IOV_MAX`: `readv`/`writev` answer `EINVAL`
/// beyond it, and it bounds the host-side list.
pub(crate) const IOV_MAX: u32 = 1024;

/// Longest path a guest may pass, as Linux's `PATH_MAX` (`ENAMETOOLONG` beyond).
pub(crate) const PATH_MAX: u32 = 4096;

/// One guest buffer of an iovec list: `(ptr, len)`, already checked to lie in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Iovec {
    pub ptr: u32,
    pub len: u32,
}

/// A bounds-checked view of guest memory whose errors are `EFAULT`.
pub(crate) struct WasiMemory<'a> {
    inner: Backend<'a>,
}

/// Where the guest's bytes are.
enum Backend<'a> {
    /// The interpreter's memory, lent for one host call.
    Slice(GuestMemory<'a>),
    /// The native tier's: a view of the guest's `WebAssembly.Memory` buffer.
    #[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
    Js(JsMemory),
}

impl<'a> WasiMemory<'a> {
    pub(crate) fn new(data: &'a mut [u8]) -> Self {
        Self {
            inner: Backend::Slice(GuestMemory::new(data)),
        }
    }

    /// The memory's size in bytes.
    #[cfg_attr(not(feature = "native-tier"), allow(dead_code))]
    pub(crate) fn size_bytes(&self) -> u64 {
        match &self.inner {
            Backend::Slice(m) => m.size_bytes() as u64,
            #[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
            Backend::Js(m) => u64::from(m.len),
        }
    }

    /// The `len` bytes at `ptr`: borrowed from the interpreter's memory, copied from a JS one.
    pub(crate) fn read(&self, ptr: u32, len: u32) -> Result<Cow<'_, [u8]>, Errno> {
        match &self.inner {
            Backend::Slice(m) => m.read(ptr, len).map(Cow::Borrowed).map_err(|_| ERRNO_FAULT),
            #[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
            Backend::Js(m) => m.read(ptr, len).map(Cow::Owned),
        }
    }

    /// Copies `bytes` to `ptr`, all or nothing.
    pub(crate) fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        match &mut self.inner {
            Backend::Slice(m) => m.write(ptr, bytes).map_err(|_| ERRNO_FAULT),
            #[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
            Backend::Js(m) => m.write(ptr, bytes),
        }
    }

    /// Checks that `len` bytes at `ptr` are inside memory, without touching them.
    pub(crate) fn check(&self, ptr: u32, len: u32) -> Result<(), Errno> {
        let size = self.size_bytes();
        match u64::from(ptr).checked_add(u64::from(len)) {
            Some(end) if end <= size => Ok(()),
            _ => Err(ERRNO_FAULT),
        }
    }

    pub(crate) fn write_u32(&mut self, ptr: u32, value: u32) -> Result<(), Errno> {
        self.write(ptr, &value.to_le_bytes())
    }

    pub(crate) fn write_u64(&mut self, ptr: u32, value: u64) -> Result<(), Errno> {
        self.write(ptr, &value.to_le_bytes())
    }

    /// A guest path: at most [`PATH_MAX`] bytes of UTF-8 without NUL.
    pub(crate) fn read_path(&self, ptr: u32, len: u32) -> Result<String, Errno> {
        if len > PATH_MAX {
            return Err(ERRNO_NAMETOOLONG);
        }
        let bytes = self.read(ptr, len)?;
        if bytes.contains(&0) {
            return Err(ERRNO_INVAL);
        }
        core::str::from_utf8(&bytes)
            .map(str::to_owned)
            .map_err(|_| ERRNO_ILSEQ)
    }

    /// An iovec (or ciovec) list of `iovs_len` entries at `iovs_ptr`; every buffer is checked
    /// to lie in memory, and their total length must fit in a `u32` (`EINVAL` otherwise, as
    /// `writev` does when the sum overflows).
    pub(crate) fn read_iovecs(&self, iovs_ptr: u32, iovs_len: u32) -> Result<Vec<Iovec>, Errno> {
        if iovs_len > IOV_MAX {
            return Err(ERRNO_INVAL);
        }
        let bytes_len = iovs_len.checked_mul(8).ok_or(ERRNO_FAULT)?;
        let raw = self.read(iovs_ptr, bytes_len)?;
        let mut list = Vec::with_capacity(iovs_len as usize);
        let mut total = 0u32;
        for chunk in raw.chunks_exact(8) {
            let (p, l) = chunk.split_at(4);
            let ptr = u32::from_le_bytes(p.try_into().map_err(|_| ERRNO_FAULT)?);
            let len = u32::from_le_bytes(l.try_into().map_err(|_| ERRNO_FAULT)?);
            total = total.checked_add(len).ok_or(ERRNO_INVAL)?;
            list.push(Iovec { ptr, len });
        }
        for iov in &list {
            self.check(iov.ptr, iov.len)?;
        }
        Ok(list)
    }

    /// Scatters `bytes` over an iovec list (for reads), in order, after the first `skip`
    /// bytes of the list (already filled); returns how many were placed (at most what the
    /// list has room for after `skip`). Nothing is buffered on the host.
    pub(crate) fn scatter(
        &mut self,
        iovs: &[Iovec],
        skip: usize,
        bytes: &[u8],
    ) -> Result<usize, Errno> {
        let mut skip = skip;
        let mut done = 0usize;
        for iov in iovs {
            let len = iov.len as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            let rest = bytes.get(done..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(len - skip);
            let at = u32::try_from(skip)
                .ok()
                .and_then(|s| iov.ptr.checked_add(s))
                .ok_or(ERRNO_FAULT)?;
            self.write(at, rest.get(..n).unwrap_or_default())?;
            skip = 0;
            done += n;
        }
        Ok(done)
    }
}

/// The total length of an iovec list (fits in `u32`: checked when it was read).
pub(crate) fn total_len(iovs: &[Iovec]) -> u32 {
    iovs.iter().fold(0u32, |acc, i| acc.saturating_add(i.len))
}

/// The native tier's guest memory: a `Uint8Array` over its `WebAssembly.Memory`'s buffer as
/// it was when the WASI call began.
#[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
pub(crate) struct JsMemory {
    view: js_sys::Uint8Array,
    /// The buffer's length (a memory of 4 GiB or more reads as 0 here: every access is
    /// `EFAULT`, which fails closed; the native tier's limits keep memories far smaller).
    len: u32,
}

#[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
impl WasiMemory<'static> {
    /// A view of `memory` (`None`: a guest without an exported memory, where every pointer is
    /// `EFAULT`, as in the interpreter).
    pub(crate) fn js(memory: Option<&js_sys::WebAssembly::Memory>) -> Self {
        let view = match memory {
            Some(m) => js_sys::Uint8Array::new(&m.buffer()),
            None => js_sys::Uint8Array::new_with_length(0),
        };
        let len = view.length();
        Self {
            inner: Backend::Js(JsMemory { view, len }),
        }
    }
}

#[cfg(all(feature = "native-tier", target_arch = "wasm32"))]
impl JsMemory {
    /// The view of `len` bytes at `ptr`, checked to lie in the buffer.
    fn range(&self, ptr: u32, len: u32) -> Result<js_sys::Uint8Array, Errno> {
        let end = ptr.checked_add(len).ok_or(ERRNO_FAULT)?;
        if end > self.len {
            return Err(ERRNO_FAULT);
        }
        let sub = self.view.subarray(ptr, end);
        // A buffer detached under us (it cannot be: the guest is suspended in this call)
        // would give a shorter view; `copy_to`/`copy_from` would panic, so it is EFAULT.
        if sub.length() != len {
            return Err(ERRNO_FAULT);
        }
        Ok(sub)
    }

    fn read(&self, ptr: u32, len: u32) -> Result<Vec<u8>, Errno> {
        let sub = self.range(ptr, len)?;
        let mut out = vec![0u8; len as usize];
        sub.copy_to(&mut out);
        Ok(out)
    }

    fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        let len = u32::try_from(bytes.len()).map_err(|_| ERRNO_FAULT)?;
        let sub = self.range(ptr, len)?;
        sub.copy_from(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_efault() {
        let mut buf = vec![0u8; 16];
        let m = WasiMemory::new(&mut buf);
        assert_eq!(m.read(15, 2), Err(ERRNO_FAULT));
        assert_eq!(m.read(12, 8), Err(ERRNO_FAULT));
        assert_eq!(m.read(u32::MAX, 1), Err(ERRNO_FAULT));
    }

    #[test]
    fn the_interpreters_memory_is_read_in_place_and_checked_without_a_copy() {
        let mut buf = b"0123456789".to_vec();
        let mut m = WasiMemory::new(&mut buf);
        assert_eq!(m.size_bytes(), 10);
        assert!(matches!(m.read(2, 3), Ok(Cow::Borrowed(b"234"))));
        assert_eq!(m.check(0, 10), Ok(()));
        assert_eq!(m.check(10, 0), Ok(()));
        assert_eq!(m.check(10, 1), Err(ERRNO_FAULT));
        assert_eq!(m.check(u32::MAX, u32::MAX), Err(ERRNO_FAULT));
        assert_eq!(m.write(8, b"abc"), Err(ERRNO_FAULT));
        m.write(7, b"abc").expect("fits exactly");
        assert_eq!(m.read(0, 10).as_deref(), Ok(&b"0123456abc"[..]));
        let empty = WasiMemory::new(&mut []);
        assert_eq!(empty.read(0, 0).as_deref(), Ok(&b""[..]));
        assert_eq!(empty.check(0, 1), Err(ERRNO_FAULT));
    }

    #[test]
    fn iovec_totals_must_not_overflow() {
        let mut buf = vec![0u8; 64];
        // Two iovecs of len 0x8000_0000 each: their sum overflows u32.
        buf[4..8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        buf[12..16].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        let m = WasiMemory::new(&mut buf);
        assert_eq!(m.read_iovecs(0, 2), Err(ERRNO_INVAL));
        // One of them alone does not fit in memory.
        assert_eq!(m.read_iovecs(0, 1), Err(ERRNO_FAULT));
        assert_eq!(m.read_iovecs(0, u32::MAX), Err(ERRNO_INVAL));
        assert_eq!(m.read_iovecs(60, 1), Err(ERRNO_FAULT));
    }

    #[test]
    fn paths_are_utf8_without_nul() {
        let mut buf = b"a\0b\xffok".to_vec();
        let m = WasiMemory::new(&mut buf);
        assert_eq!(m.read_path(0, 3), Err(ERRNO_INVAL));
        assert_eq!(m.read_path(3, 1), Err(ERRNO_ILSEQ));
        assert_eq!(m.read_path(4, 2).as_deref(), Ok("ok"));
        assert_eq!(m.read_path(0, PATH_MAX + 1), Err(ERRNO_NAMETOOLONG));
    }
}
