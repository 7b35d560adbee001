//! The process: `args_*`, `environ_*`, `proc_exit`, `proc_raise`.
//!
//! Arguments and environment are exactly the caller's (nothing comes from the host), stored
//! NUL-terminated as the guest receives them.

use super::{Cx, Fail, SysResult, UNSUPPORTED};

/// Writes a `char**`-style list: pointers at `list_ptr`, NUL-terminated strings packed at
/// `buf_ptr`. Both ranges are checked before anything is written.
fn write_list(cx: &mut Cx<'_>, items: &[Vec<u8>], list_ptr: u32, buf_ptr: u32) -> SysResult {
    let count = u32::try_from(items.len()).map_err(|_| wasip1::ERRNO_2BIG)?;
    let pointers_len = count.checked_mul(4).ok_or(wasip1::ERRNO_FAULT)?;
    let buf_len = items.iter().map(Vec::len).sum::<usize>();
    let buf_len = u32::try_from(buf_len).map_err(|_| wasip1::ERRNO_2BIG)?;
    cx.mem.check(list_ptr, pointers_len)?;
    cx.mem.check(buf_ptr, buf_len)?;
    let mut offset = 0u32;
    for (i, item) in (0u32..).zip(items) {
        // Both in range: checked above.
        let string_ptr = buf_ptr.checked_add(offset).ok_or(wasip1::ERRNO_FAULT)?;
        let slot = i
            .checked_mul(4)
            .and_then(|o| list_ptr.checked_add(o))
            .ok_or(wasip1::ERRNO_FAULT)?;
        cx.mem.write_u32(slot, string_ptr)?;
        cx.mem.write(string_ptr, item)?;
        offset += item.len() as u32;
    }
    cx.moved += u64::from(pointers_len) + u64::from(buf_len);
    Ok(())
}

fn write_sizes(cx: &mut Cx<'_>, items: &[Vec<u8>], count_ptr: u32, size_ptr: u32) -> SysResult {
    let count = u32::try_from(items.len()).map_err(|_| wasip1::ERRNO_2BIG)?;
    let size =
        u32::try_from(items.iter().map(Vec::len).sum::<usize>()).map_err(|_| wasip1::ERRNO_2BIG)?;
    cx.mem.check(count_ptr, 4)?;
    cx.mem.check(size_ptr, 4)?;
    cx.mem.write_u32(count_ptr, count)?;
    cx.mem.write_u32(size_ptr, size)?;
    Ok(())
}

/// `args_get(argv, argv_buf)`.
pub(crate) fn args_get(cx: &mut Cx<'_>, argv_ptr: u32, argv_buf_ptr: u32) -> SysResult {
    let args = core::mem::take(&mut cx.wasi.args);
    let result = write_list(cx, &args, argv_ptr, argv_buf_ptr);
    cx.wasi.args = args;
    result
}

/// `args_sizes_get() -> (argc, argv_buf_size)`.
pub(crate) fn args_sizes_get(cx: &mut Cx<'_>, argc_ptr: u32, argv_buf_size_ptr: u32) -> SysResult {
    let args = core::mem::take(&mut cx.wasi.args);
    let result = write_sizes(cx, &args, argc_ptr, argv_buf_size_ptr);
    cx.wasi.args = args;
    result
}

/// `environ_get(environ, environ_buf)`.
pub(crate) fn environ_get(cx: &mut Cx<'_>, environ_ptr: u32, environ_buf_ptr: u32) -> SysResult {
    let env = core::mem::take(&mut cx.wasi.env);
    let result = write_list(cx, &env, environ_ptr, environ_buf_ptr);
    cx.wasi.env = env;
    result
}

/// `environ_sizes_get() -> (environc, environ_buf_size)`.
pub(crate) fn environ_sizes_get(
    cx: &mut Cx<'_>,
    environc_ptr: u32,
    environ_buf_size_ptr: u32,
) -> SysResult {
    let env = core::mem::take(&mut cx.wasi.env);
    let result = write_sizes(cx, &env, environc_ptr, environ_buf_size_ptr);
    cx.wasi.env = env;
    result
}

/// `proc_exit(rval)`: ends the call with `exit_code: Some(rval)`, a result.
pub(crate) fn proc_exit(_cx: &mut Cx<'_>, rval: u32) -> SysResult {
    Err(Fail::Stop(wasmi::Error::i32_exit(rval as i32)))
}

/// `proc_raise(sig)`: there are no signals in the sandbox; `ENOSYS` (as wasmtime).
pub(crate) fn proc_raise(_cx: &mut Cx<'_>, _sig: u32) -> SysResult {
    Err(UNSUPPORTED.into())
}
