//! Shared by the guest programs: errno names (so every language prints the same words), a
//! one-line result printer, and the preview1 calls Rust's std does not expose
//! (`path_open` relative to a chosen directory fd, `random_get`, `fd_seek` on any fd, clocks).

use std::io;

/// WASI preview1 errno names, indexed by value (the spec's `errno` enum; wasi-libc's E* values).
const ERRNO_NAMES: [&str; 77] = [
    "ESUCCESS",
    "E2BIG",
    "EACCES",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "EAFNOSUPPORT",
    "EAGAIN",
    "EALREADY",
    "EBADF",
    "EBADMSG",
    "EBUSY",
    "ECANCELED",
    "ECHILD",
    "ECONNABORTED",
    "ECONNREFUSED",
    "ECONNRESET",
    "EDEADLK",
    "EDESTADDRREQ",
    "EDOM",
    "EDQUOT",
    "EEXIST",
    "EFAULT",
    "EFBIG",
    "EHOSTUNREACH",
    "EIDRM",
    "EILSEQ",
    "EINPROGRESS",
    "EINTR",
    "EINVAL",
    "EIO",
    "EISCONN",
    "EISDIR",
    "ELOOP",
    "EMFILE",
    "EMLINK",
    "EMSGSIZE",
    "EMULTIHOP",
    "ENAMETOOLONG",
    "ENETDOWN",
    "ENETRESET",
    "ENETUNREACH",
    "ENFILE",
    "ENOBUFS",
    "ENODEV",
    "ENOENT",
    "ENOEXEC",
    "ENOLCK",
    "ENOLINK",
    "ENOMEM",
    "ENOMSG",
    "ENOPROTOOPT",
    "ENOSPC",
    "ENOSYS",
    "ENOTCONN",
    "ENOTDIR",
    "ENOTEMPTY",
    "ENOTRECOVERABLE",
    "ENOTSOCK",
    "ENOTSUP",
    "ENOTTY",
    "ENXIO",
    "EOVERFLOW",
    "EOWNERDEAD",
    "EPERM",
    "EPIPE",
    "EPROTO",
    "EPROTONOSUPPORT",
    "EPROTOTYPE",
    "ERANGE",
    "EROFS",
    "ESPIPE",
    "ESRCH",
    "ESTALE",
    "ETIMEDOUT",
    "ETXTBSY",
    "EXDEV",
    "ENOTCAPABLE",
];

/// The errno's name, or `errno(N)` for a value outside the spec.
pub fn errno_name(errno: i32) -> String {
    match usize::try_from(errno).ok().and_then(|i| ERRNO_NAMES.get(i)) {
        Some(name) => (*name).to_string(),
        None => format!("errno({errno})"),
    }
}

/// The name of the errno behind an I/O error. std reports the runtime's errno as the raw OS
/// error; an error std made up itself (no errno) prints as `std:<ErrorKind>`.
pub fn err_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => errno_name(errno),
        None => format!("std:{:?}", err.kind()),
    }
}

/// `ok` or the errno name.
pub fn outcome<T>(result: &io::Result<T>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(err) => err_name(err),
    }
}

/// Prints `label: ok` or `label: ENAME` and hands the result back.
pub fn step<T>(label: &str, result: io::Result<T>) -> io::Result<T> {
    println!("{label}: {}", outcome(&result));
    result
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The raw `wasi_snapshot_preview1` functions the programs call directly.
pub mod raw {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        pub fn path_open(
            fd: u32,
            dirflags: u32,
            path_ptr: *const u8,
            path_len: usize,
            oflags: u32,
            fs_rights_base: u64,
            fs_rights_inheriting: u64,
            fdflags: u32,
            opened_fd_ptr: *mut u32,
        ) -> u32;
        pub fn fd_close(fd: u32) -> u32;
        pub fn path_symlink(
            old_path_ptr: *const u8,
            old_path_len: usize,
            fd: u32,
            new_path_ptr: *const u8,
            new_path_len: usize,
        ) -> u32;
        pub fn fd_prestat_get(fd: u32, prestat_ptr: *mut u32) -> u32;
        pub fn fd_prestat_dir_name(fd: u32, path_ptr: *mut u8, path_len: usize) -> u32;
        pub fn fd_seek(fd: u32, offset: i64, whence: u32, newoffset_ptr: *mut u64) -> u32;
        pub fn fd_pread(
            fd: u32,
            iovs_ptr: *const Iovec,
            iovs_len: usize,
            offset: u64,
            nread_ptr: *mut usize,
        ) -> u32;
        pub fn fd_pwrite(
            fd: u32,
            iovs_ptr: *const Iovec,
            iovs_len: usize,
            offset: u64,
            nwritten_ptr: *mut usize,
        ) -> u32;
        pub fn random_get(buf_ptr: *mut u8, buf_len: usize) -> u32;
        pub fn clock_time_get(id: u32, precision: u64, time_ptr: *mut u64) -> u32;
        pub fn clock_res_get(id: u32, resolution_ptr: *mut u64) -> u32;
    }

    /// `iovec` / `ciovec`: a pointer and a length (32-bit each on wasm32).
    #[repr(C)]
    pub struct Iovec {
        pub buf: *const u8,
        pub buf_len: usize,
    }

    pub const CLOCKID_REALTIME: u32 = 0;
    pub const CLOCKID_MONOTONIC: u32 = 1;
    pub const WHENCE_SET: u32 = 0;
    pub const WHENCE_CUR: u32 = 1;
    pub const WHENCE_END: u32 = 2;
    pub const OFLAGS_CREAT: u32 = 1;
    pub const OFLAGS_DIRECTORY: u32 = 2;
    /// `fd_read` only: asking for rights the directory cannot grant fails with ENOTCAPABLE
    /// whatever the path, which would hide what the path check decided.
    pub const RIGHTS_FD_READ: u64 = 1 << 1;
}

/// The fd of the preopened directory whose guest name is `name`, found the way libc does it:
/// `fd_prestat_get` from fd 3 up until EBADF.
pub fn preopen_fd(name: &str) -> Option<u32> {
    for fd in 3..64u32 {
        let mut prestat = [0u32; 2]; // tag (0 = dir), pr_name_len
        // SAFETY: `prestat` is 8 writable bytes, the size of `prestat` in preview1.
        if unsafe { raw::fd_prestat_get(fd, prestat.as_mut_ptr()) } != 0 {
            return None;
        }
        let mut buf = vec![0u8; prestat[1] as usize];
        // SAFETY: `buf` has exactly the length the runtime asked for.
        if unsafe { raw::fd_prestat_dir_name(fd, buf.as_mut_ptr(), buf.len()) } == 0
            && buf.strip_suffix(b"\0").unwrap_or(&buf) == name.as_bytes()
        {
            return Some(fd);
        }
    }
    None
}

const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

/// `path_open(dirfd, path)` straight to the runtime, with no libc path resolution in between,
/// following symlinks and asking only to read: the opened fd, or the errno name.
pub fn raw_open(dirfd: u32, path: &str, oflags: u32) -> Result<u32, String> {
    let mut opened = 0u32;
    // SAFETY: `path` is a live slice; `opened` is a writable u32.
    let errno = unsafe {
        raw::path_open(
            dirfd,
            LOOKUP_SYMLINK_FOLLOW,
            path.as_ptr(),
            path.len(),
            oflags,
            raw::RIGHTS_FD_READ,
            0,
            0,
            &mut opened,
        )
    };
    if errno == 0 {
        Ok(opened)
    } else {
        Err(errno_name(errno as i32))
    }
}

/// `path_symlink(target, dirfd, link)`: `ok` or the errno name.
pub fn raw_symlink(target: &str, dirfd: u32, link: &str) -> String {
    // SAFETY: both paths are live slices.
    let errno = unsafe {
        raw::path_symlink(
            target.as_ptr(),
            target.len(),
            dirfd,
            link.as_ptr(),
            link.len(),
        )
    };
    if errno == 0 {
        "ok".to_string()
    } else {
        errno_name(errno as i32)
    }
}

/// `clock_time_get(id)` in nanoseconds, or the errno name.
pub fn clock_ns(id: u32) -> Result<u64, String> {
    let mut t = 0u64;
    // SAFETY: `t` is a writable u64.
    let errno = unsafe { raw::clock_time_get(id, 1, &mut t) };
    if errno == 0 {
        Ok(t)
    } else {
        Err(errno_name(errno as i32))
    }
}
