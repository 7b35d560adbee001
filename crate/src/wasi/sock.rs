//! `sock_*`: the sandbox has no network and never hands out a socket, so every call is
//! `EBADF` for an fd that is not open and `ENOTSOCK` for one that is (as wasmtime answers
//! for a non-socket fd). Nothing is read from or written to guest memory.

use wasip1::ERRNO_NOTSOCK;

use super::{Cx, SysResult};

fn not_a_socket(cx: &Cx<'_>, fd: u32) -> SysResult {
    cx.wasi.fds.get(fd)?;
    Err(ERRNO_NOTSOCK.into())
}

/// `sock_accept(fd, flags) -> fd`.
pub(crate) fn sock_accept(cx: &mut Cx<'_>, fd: u32, _flags: u32, _ro_fd_ptr: u32) -> SysResult {
    not_a_socket(cx, fd)
}

/// `sock_recv(fd, ri_data, ri_flags) -> (ro_datalen, ro_flags)`.
pub(crate) fn sock_recv(
    cx: &mut Cx<'_>,
    fd: u32,
    _ri_data_ptr: u32,
    _ri_data_len: u32,
    _ri_flags: u32,
    _ro_datalen_ptr: u32,
    _ro_flags_ptr: u32,
) -> SysResult {
    not_a_socket(cx, fd)
}

/// `sock_send(fd, si_data, si_flags) -> so_datalen`.
pub(crate) fn sock_send(
    cx: &mut Cx<'_>,
    fd: u32,
    _si_data_ptr: u32,
    _si_data_len: u32,
    _si_flags: u32,
    _so_datalen_ptr: u32,
) -> SysResult {
    not_a_socket(cx, fd)
}

/// `sock_shutdown(fd, how)`.
pub(crate) fn sock_shutdown(cx: &mut Cx<'_>, fd: u32, _how: u32) -> SysResult {
    not_a_socket(cx, fd)
}
